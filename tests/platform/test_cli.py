"""The `msp` command line: settings, stages, SQL over the tables' snapshots (and as of an earlier run), and
one-line errors instead of tracebacks."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from lakehouse.cli import main
from lakehouse.context import RunContext
from lakehouse.environment import sql_catalog

VENDORS = (("VN-0001", "Contoso Distribution", "active"), ("VN-0002", "Fabrikam", "inactive"))


def publish_vendors(settings, vendors=VENDORS, run_id=None):
    """Processed vendor rows, committed through the lake and the catalog refreshed, like any run does."""
    import schemas

    ds = schemas.get("processed.vendors")
    now = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)
    rows = []
    for vid, name, status in vendors:
        row = {c.name: None for c in ds.stored_columns()}
        row.update(vendor_id=vid, vendor_name=name, category="hardware", payment_terms="net 30", status=status,
                   created_at=now, updated_at=now, _source_file="vendors/vendors/vendors_2024-01-02.csv",
                   _source_hash="1" * 64, _row_number=1, _row_hash="0" * 64, _ingested_at=now, _run_id="run-test",
                   dt="2024-01-02")
        rows.append(row)
    ctx = RunContext.create(settings, [date(2024, 1, 2)], run_id=run_id)
    ctx.write(ds, pd.DataFrame(rows), audit=False)
    sql_catalog(settings).refresh(ctx.lake)
    if run_id:
        from lakehouse.runner import RUNS_DIR

        ctx.lake.write_text(f"{RUNS_DIR}/{run_id}.json", json.dumps({"finished_at": datetime.now(UTC).isoformat()}))
    return ctx


def run_cli(monkeypatch, settings, *argv):
    monkeypatch.setenv("MSP_HOME", str(settings.home))
    monkeypatch.delenv("MSP_CONFIG", raising=False)
    return main(list(argv))


def test_sql_answers_a_query_over_a_processed_table(settings, monkeypatch, capsys):
    publish_vendors(settings)
    assert run_cli(monkeypatch, settings, "sql", "--format", "json",
                   "SELECT vendor_id, status, dt FROM processed.vendors WHERE status = 'active'") == 0
    assert json.loads(capsys.readouterr().out) == [{"vendor_id": "VN-0001", "status": "active", "dt": "2024-01-02"}]
    assert run_cli(monkeypatch, settings, "sql", "--format", "csv",
                   "SELECT count(*) AS n FROM processed.vendors") == 0
    assert capsys.readouterr().out.splitlines() == ["n", "2"]


def test_every_declared_dataset_is_a_view_even_before_it_has_data(settings, monkeypatch, capsys):
    import schemas

    publish_vendors(settings)
    run_cli(monkeypatch, settings, "sql", "--format", "json",
            "SELECT table_schema || '.' || table_name AS name FROM information_schema.tables")
    views = {r["name"] for r in json.loads(capsys.readouterr().out)}
    assert set(schemas.catalog()) <= views
    run_cli(monkeypatch, settings, "sql", "--format", "csv", "SELECT count(*) AS n FROM processed.tickets")
    assert capsys.readouterr().out.splitlines() == ["n", "0"]


def test_a_wrong_query_gets_the_sql_error_not_a_traceback(settings, monkeypatch, capsys):
    publish_vendors(settings)
    assert run_cli(monkeypatch, settings, "sql", "SELECT * FROM processed.vendorz") == 2
    shown = capsys.readouterr().err
    assert "SQL error" in shown and "vendorz" in shown and "Traceback" not in shown


def test_sql_without_a_catalog_says_what_to_do(settings, monkeypatch, capsys):
    assert run_cli(monkeypatch, settings, "sql", "SELECT 1") == 2
    assert "msp run" in capsys.readouterr().err


def test_config_prints_each_setting_with_its_source(settings, monkeypatch, capsys):
    monkeypatch.setenv("MSP_SPARK__DRIVER_MEMORY", "3g")
    assert run_cli(monkeypatch, settings, "config", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["spark.driver_memory"] == {"value": "3g", "source": "env MSP_SPARK__DRIVER_MEMORY"}
    assert shown["platform.lake_root"]["source"] == "profile local"


def test_a_configuration_error_is_reported_not_raised(settings, monkeypatch, capsys):
    monkeypatch.setenv("MSP_PROFILE", "aws")
    assert run_cli(monkeypatch, settings, "config") == 2
    assert "lake_root" in capsys.readouterr().err


def test_sql_as_of_an_earlier_run_reads_the_tables_as_they_were(settings, monkeypatch, capsys):
    import time

    publish_vendors(settings, run_id="run-first")
    time.sleep(0.01)
    publish_vendors(settings, vendors=(("VN-0003", "Initech", "active"),))
    assert run_cli(monkeypatch, settings, "sql", "--format", "csv", "SELECT vendor_id FROM processed.vendors") == 0
    assert capsys.readouterr().out.splitlines() == ["vendor_id", "VN-0003"]
    assert run_cli(monkeypatch, settings, "sql", "--format", "csv", "--as-of", "run-first",
                   "SELECT vendor_id FROM processed.vendors ORDER BY 1") == 0
    assert capsys.readouterr().out.splitlines() == ["vendor_id", "VN-0001", "VN-0002"]
    assert run_cli(monkeypatch, settings, "sql", "--as-of", "yesterday-ish", "SELECT 1") == 2
    assert "neither a run id" in capsys.readouterr().err


def test_a_reader_holding_the_catalog_open_never_blocks_a_refresh(settings):
    import duckdb

    publish_vendors(settings)
    reader = duckdb.connect(str(settings.duckdb_path), read_only=True)  # an analyst's notebook
    try:
        publish_vendors(settings, vendors=(("VN-0009", "Umbrella", "active"),))  # refreshes the catalog
        assert reader.execute("SELECT count(*) FROM processed.vendors").fetchone() == (2,)  # its old snapshot
    finally:
        reader.close()
    assert sql_catalog(settings).query("SELECT vendor_id FROM processed.vendors")["vendor_id"].tolist() == ["VN-0009"]


def test_a_refresh_rebuilds_only_the_views_of_changed_tables_and_says_which_snapshot_each_reads(settings):
    import schemas

    ctx = publish_vendors(settings)
    vendors = schemas.get("processed.vendors")
    catalog = sql_catalog(settings)
    views = catalog.query("SELECT dataset, snapshot_id, files, refreshed_at FROM msp_catalog.views")
    assert set(views["dataset"]) == set(schemas.catalog())
    first = views.set_index("dataset")
    assert first.loc["processed.vendors", "snapshot_id"] == ctx.lake.snapshot_id(vendors)
    assert first.loc["processed.vendors", "files"] == 1 and first.loc["processed.tickets", "files"] == 0
    publish_vendors(settings, vendors=(("VN-0009", "Umbrella", "active"),))
    again = catalog.query("SELECT dataset, snapshot_id, refreshed_at FROM msp_catalog.views").set_index("dataset")
    assert again.loc["processed.vendors", "snapshot_id"] == ctx.lake.snapshot_id(vendors)
    assert again.loc["processed.vendors", "refreshed_at"] > first.loc["processed.vendors", "refreshed_at"]
    unchanged = [d for d in again.index if d != "processed.vendors"]
    assert (again.loc[unchanged, "refreshed_at"] == first.loc[unchanged, "refreshed_at"]).all()
    assert catalog.query("SELECT vendor_id FROM processed.vendors")["vendor_id"].tolist() == ["VN-0009"]


def test_a_damaged_catalog_file_is_rebuilt_whole(settings):
    publish_vendors(settings)
    settings.duckdb_path.write_bytes(b"not a duckdb file")
    publish_vendors(settings, vendors=(("VN-0009", "Umbrella", "active"),))
    assert sql_catalog(settings).query("SELECT vendor_id FROM processed.vendors")["vendor_id"].tolist() == ["VN-0009"]


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "--from", "2024-01-03", "--to", "2024-01-01"], "--to 2024-01-01 is before --from 2024-01-03"),
    (["run", "--stages", "nosuchstage"], "unknown stage(s) nosuchstage"),
    (["run", "--agents", "nosuchagent"], "unknown agent(s) nosuchagent"),
    (["run", "--date", "2024-13-45"], "not a date"),
    (["lake", "history", "processed.nosuch"], "no dataset 'processed.nosuch'"),
])
def test_a_mistaken_command_prints_one_line_and_exits_non_zero(settings, monkeypatch, capsys, argv, message):
    with pytest.raises(SystemExit) if "not a date" in message else contextlib.nullcontext():
        code = run_cli(monkeypatch, settings, *argv)
        assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("query", [
    "SELECT * FROM read_csv('/etc/passwd', header=false, delim=':')",
    "SELECT * FROM glob('/root/**')",
    "SELECT * FROM read_text('/proc/self/environ')",
    "COPY (SELECT * REPLACE ('HACKED' AS vendor_name) FROM processed.vendors LIMIT 1) TO '{file}' (FORMAT parquet)",
    "EXPORT DATABASE '{home}/dump'",
    "ATTACH '{home}/other.duckdb'",
    "INSTALL httpfs",
    "CREATE TABLE x AS SELECT 1",
    "SET enable_external_access = true",
])
def test_analyst_sql_is_read_only_and_confined_to_the_lake(settings, monkeypatch, capsys, query):
    import schemas

    ctx = publish_vendors(settings)
    ds = schemas.get("processed.vendors")
    before = ctx.lake.checksum(ds)
    data_file = ctx.lake.files(ds)[0].removeprefix("file://")
    assert run_cli(monkeypatch, settings, "sql", query.format(file=data_file, home=settings.home)) == 2
    err = capsys.readouterr().err
    assert ("read-only" in err or "Permission Error" in err or "Cannot change configuration" in err) and \
        "Traceback" not in err
    assert ctx.lake.checksum(ds) == before
    assert not (settings.home / "dump").exists() and not (settings.home / "other.duckdb").exists()


def test_a_setting_of_the_wrong_type_names_the_key_its_source_and_what_is_allowed(settings, monkeypatch, capsys):
    monkeypatch.setenv("MSP_QUALITY__RETYPE_MIN_VALUES", "abc")
    assert run_cli(monkeypatch, settings, "run", "--date", "2024-01-01", "--stages", "ingest") == 2
    err = capsys.readouterr().err
    assert "quality.retype_min_values" in err and "MSP_QUALITY__RETYPE_MIN_VALUES" in err and "integer" in err
    assert "Traceback" not in err


def _msp(home, *args, **env):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    full = {**os.environ, "MSP_HOME": str(home), "PYTHONPATH": str(root), **env}
    for name in ("MSP_CRASH_AT", "MSP_FAIL_AT", "MSP_CONFIG"):
        if name not in env:
            full.pop(name, None)
    return subprocess.run([sys.executable, "-m", "lakehouse.cli", *args], env=full, capture_output=True, text=True,
                          cwd=root, timeout=600)


def _land_clients(home):
    import schemas

    folder = home / "landing" / "psa" / "clients"
    folder.mkdir(parents=True, exist_ok=True)
    names = [c.name for c in schemas.get("raw.clients").data_columns]
    rows = [",".join(f"{n}-{i}" for n in names) for i in (1, 2)]
    (folder / "clients_2024-01-01.csv").write_text("\n".join([",".join(names), *rows]) + "\n")


def test_a_full_disk_names_the_table_and_what_was_left_behind_without_a_traceback(tmp_path):
    """ENOSPC raised where a commit's data files are written (lakehouse/faults.py): one clear line, exit 1, the
    table not committed; --debug shows the traceback; once there is space the rerun loads the day."""
    import schemas
    from lakehouse.lake import Lake
    from tests.conftest import make_settings

    home = tmp_path / "home"
    _land_clients(home)
    full = _msp(home, "run", "--date", "2024-01-01", "--stages", "ingest", MSP_FAIL_AT="lake.files_written")
    assert full.returncode == 1
    shown = full.stdout + full.stderr
    assert "No space left on device while writing raw.clients: nothing of raw.clients was committed" in full.stderr
    assert "Traceback" not in shown
    assert Lake.from_settings(make_settings(home)).read_arrow(schemas.get("raw.clients")).num_rows == 0
    debug = _msp(home, "--debug", "run", "--date", "2024-01-01", "--stages", "ingest", MSP_FAIL_AT="lake.files_written")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    again = _msp(home, "run", "--date", "2024-01-01", "--stages", "ingest")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert Lake.from_settings(make_settings(home)).read_arrow(schemas.get("raw.clients")).num_rows == 2


def test_a_read_only_home_prints_one_line_and_exits_non_zero(tmp_path, monkeypatch, capsys):
    import os
    import subprocess

    from tests.conftest import make_settings

    home = tmp_path / "home"
    home.mkdir()
    mounted = False
    if os.geteuid() == 0:  # permissions do not stop root: a read-only file system does
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(home)],
                                 capture_output=True).returncode == 0
        if not mounted:
            pytest.skip("running as root without the right to mount a read-only file system")
    else:
        home.chmod(0o555)
    try:
        code = run_cli(monkeypatch, make_settings(home), "run", "--date", "2024-01-01", "--stages", "ingest")
        err = capsys.readouterr().err
    finally:
        if mounted:
            subprocess.run(["umount", str(home)], check=True)
        else:
            home.chmod(0o755)
    assert code == 2
    assert ("Read-only file system" in err or "Permission denied" in err) and str(home) in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3  # one line, wrapped by the console


def test_msp_aws_names_prints_every_name_of_a_deployment(settings, monkeypatch, capsys):
    """``msp aws names`` (and its module entry ``python -m lakehouse.awscli names``): one line per resource, the
    region from ``platform.aws_region`` when none is given, the names those of ``lakehouse.aws_names``."""
    from lakehouse import awscli
    from lakehouse.aws_names import AwsNames

    monkeypatch.setenv("MSP_PLATFORM__AWS_REGION", "eu-west-1")
    assert run_cli(monkeypatch, settings, "aws", "names", "--env", "prod", "--account", "123456789012") == 0
    printed = capsys.readouterr().out
    shown = [tuple(part.strip() for part in line.rsplit(None, 1)) for line in printed.splitlines() if line.strip()]
    names = AwsNames("prod", account="123456789012", region="eu-west-1")
    assert shown == names.rows()
    assert ("lake bucket", "msp-prod-lake-123456789012-eu-west-1") in shown
    assert awscli.main(["names", "--env", "prod", "--account", "123456789012"]) == 0
    assert capsys.readouterr().out == printed


def test_msp_as_a_process_ends_with_all_its_output_and_its_exit_code(settings):
    """The process's own command line ends without the interpreter's teardown (lakehouse.cli._exit_now): what
    it printed is all there (read through a pipe, without PYTHONUNBUFFERED), and its exit code is the
    command's."""
    import os
    import subprocess
    import sys

    from tests.processes import ROOT

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env.update(MSP_HOME=str(settings.home), PYTHONPATH=str(ROOT))

    def msp(*args):
        return subprocess.run([sys.executable, "-m", "lakehouse.cli", *args], env=env, capture_output=True, text=True,
                              cwd=ROOT, timeout=300)

    listed = msp("stages")
    assert listed.returncode == 0, listed.stderr
    assert "ingest" in listed.stdout and "quality" in listed.stdout and listed.stdout.rstrip().endswith("┘")
    shown = msp("config", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["platform.engine"]["value"] == "duckdb"
    refused = msp("run", "--date", "2024-13-45")
    assert refused.returncode == 2 and "not a date" in refused.stderr and not refused.stdout


def test_lake_check_finds_a_commit_the_catalog_does_not_name_and_a_missing_data_file(settings, monkeypatch, capsys):
    """`msp lake check`: clean after ordinary commits; then a lost commit (its metadata file written, the catalog
    still naming the one before, as when the catalog's WAL was deleted under a writer) and a data file gone
    are each found, and the command exits 1."""
    from sqlalchemy import text

    import schemas
    from lakehouse.environment import forget_catalogs
    from lakehouse.lake import Lake

    publish_vendors(settings)
    assert run_cli(monkeypatch, settings, "lake", "check") == 0
    assert "every catalog entry names its newest metadata file" in capsys.readouterr().out
    lake = Lake.from_settings(settings)
    ds = schemas.get("processed.vendors")
    before = lake.table(ds, refresh=True).metadata_location
    publish_vendors(settings, vendors=VENDORS[:1])  # the day again, with one vendor: a new snapshot
    after = lake.table(ds, refresh=True).metadata_location
    assert after != before
    with lake.catalog.engine.begin() as con:  # the catalog's pointer left behind
        con.execute(text("UPDATE iceberg_tables SET metadata_location = :b WHERE metadata_location = :a"),
                    {"a": after, "b": before})
    forget_catalogs()
    assert run_cli(monkeypatch, settings, "lake", "check", "--tables", "processed.vendors") == 1
    out = capsys.readouterr().out
    assert "ahead" in out and Path(after.removeprefix("file://")).name[:5] in out
    # the pointer put back, a data file of the current snapshot removed
    with Lake.from_settings(settings).catalog.engine.begin() as con:
        con.execute(text("UPDATE iceberg_tables SET metadata_location = :a WHERE metadata_location = :b"),
                    {"a": after, "b": before})
    forget_catalogs()
    lake = Lake.from_settings(settings)
    Path(lake.files(ds)[0].removeprefix("file://")).unlink()
    assert run_cli(monkeypatch, settings, "lake", "check") == 1
    out = capsys.readouterr().out
    assert "missing data" in out and "ahead" not in out

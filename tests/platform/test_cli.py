"""The `msp` command line: settings, stages and SQL over published tables."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pandas as pd

from lakehouse import catalog
from lakehouse.cli import main
from lakehouse.context import RunContext


def publish_vendors(settings):
    """Two processed vendor rows, published through the lake and the catalog like any job would."""
    import schemas

    ds = schemas.get("processed.vendors")
    now = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)
    rows = []
    for vid, name, status in (("VN-0001", "Contoso Distribution", "active"), ("VN-0002", "Fabrikam", "inactive")):
        row = {c.name: None for c in ds.stored_columns()}
        row.update(vendor_id=vid, vendor_name=name, category="hardware", payment_terms="net 30", status=status,
                   created_at=now, updated_at=now, _source_file="vendors/vendors/vendors_2024-01-02.csv",
                   _row_number=1, _row_hash="0" * 64, _ingested_at=now, _run_id="run-test", dt="2024-01-02")
        rows.append(row)
    ctx = RunContext.create(settings, [date(2024, 1, 2)])
    ctx.write_pandas(ds, pd.DataFrame(rows))
    catalog.refresh(settings, ctx.lake)


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

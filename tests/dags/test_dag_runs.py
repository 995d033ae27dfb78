"""Whole DAG runs with ``dag.test()`` on a tiny synthetic MSP: ingestion → quality → the agents.

The ingestion DAG runs once per export day with the data interval a backfill gives that day; the agent
DAGs and the event dispatcher then run for the days the asset events carried, as the scheduler chains
them. Meanwhile ``msp run --from --to --stages <the same stages>`` processes the same landing files in
another home; both lakes must hold the same partitions with the same rows. (Weekly training is not part of
a daily backfill, and scoring uses whatever model is promoted when it runs, so both stay out of this
comparison; their DAGs are checked for structure in test_dagbag.py.) New agents are covered as soon as
their stages are registered: the DAGs to run and the tables to check come from the stage registry.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

import schemas
from lakehouse import orchestration as orch
from lakehouse.ingest import Landing
from lakehouse.lake import Lake
from tests.dags.conftest import DagRunner, subprocess_env

DAYS = [date(2024, 1, 1), date(2024, 1, 2)]
#: Columns that say when or by which run a row was written: they differ between any two runs.
RUN_COLUMNS = {"_run_id", "run_id", "_ingested_at"}

# the tests share one scenario (minutes of DAG runs): keep them on one worker
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dag-runs")]


def backfill_logical_date(day: date) -> str:
    """``dag.test`` infers a manual run's interval as the day before its logical date: this is the
    interval (and so the export day) a backfill or scheduled run of ``day`` gets."""
    return (datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)).isoformat()


def dag_order(pipe: orch.Pipeline) -> list[str]:
    """The daily DAGs after ingestion (agents, events), in the run order of their first stage: the order
    the asset events chain them in."""
    daily = {orch.agent_dag_id(a) for a in pipe.agent_dags()} | {orch.EVENTS_DAG}
    order: list[str] = []
    for s in pipe.stages:
        dag_id = pipe.dag_of(s)
        if dag_id in daily and dag_id not in order:
            order.append(dag_id)
    return order


@pytest.fixture(scope="module")
def scenario(airflow_db, tmp_path_factory):
    from lakehouse.synth import generate

    work = tmp_path_factory.mktemp("dag-runs")
    af_home, cli_home = work / "airflow-lake", work / "cli-lake"
    generate(scale="tiny", seed=11, landing_root=af_home / "landing", truth_root=work / "truth",
             start=DAYS[0], days=len(DAYS))
    shutil.copytree(af_home / "landing", cli_home / "landing")
    pipe = orch.Pipeline(orch.load_stages())
    span = {"start": DAYS[0].isoformat(), "end": DAYS[-1].isoformat()}
    runs = [{"dag_id": orch.INGEST_DAG, "logical_date": backfill_logical_date(d)} for d in DAYS]
    runs += [{"dag_id": dag_id, "conf": span} for dag_id in dag_order(pipe)]

    stages = [s.name for dag_id in [orch.INGEST_DAG, *dag_order(pipe)] for s in pipe.by_dag.get(dag_id, [])]
    runner = DagRunner(airflow_db, work)
    handle = runner.start("pipeline", runs, af_home)
    msp = Path(sys.executable).with_name("msp")
    cli = subprocess.Popen([str(msp), "run", "--from", span["start"], "--to", span["end"], "--stages", *stages],
                           env=subprocess_env(cli_home), cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        result = runner.wait(handle, timeout=900)
        cli_out, _ = cli.communicate(timeout=900)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0, f"msp run failed:\n{cli_out[-4000:]}"
    return {"result": result, "pipe": pipe, "af": Lake(str(af_home / "lake")), "cli": Lake(str(cli_home / "lake")),
            "runs": runs}


def test_every_dag_run_succeeds(scenario):
    runs = scenario["result"]["runs"]
    assert [r["dag_id"] for r in runs] == [r["dag_id"] for r in scenario["runs"]]
    for run in runs:
        failed = {t: s for t, s in run["tasks"].items() if s != "success"}
        log = scenario["result"]["log"][-5000:]
        assert run["state"] == "success" and not failed, f"{run['dag_id']}: {failed}\n{log}"
    print({r["dag_id"]: r["seconds"] for r in runs})


def exported_days(lake: Lake) -> dict[str, set[str]]:
    """Raw dataset → the days of DAYS it has landing files for."""
    landing = Landing(lake.root.rsplit("/", 1)[0] + "/landing")
    wanted = {d.isoformat() for d in DAYS}
    return {d.qualified_name: {f.dt for f in landing.files(d)} & wanted for d in schemas.datasets("raw")}


def test_the_lake_holds_every_table_the_dags_publish(scenario):
    pipe, lake = scenario["pipe"], scenario["af"]
    exported = {name: days for name, days in exported_days(lake).items() if days}
    assert "raw.tickets" in exported
    for name, days in exported.items():
        raw = schemas.get(name)
        assert {f"dt={d}" for d in days} <= set(lake.partitions(raw)), name
        if pipe.producers.get(f"processed.{raw.name}") == orch.INGEST_DAG:
            assert {f"dt={d}" for d in days} <= set(lake.partitions(schemas.get(f"processed.{raw.name}"))), name
    for dag_id in dag_order(pipe):
        for stage in pipe.by_dag[dag_id]:
            if stage.kind == "score":  # scores need a promoted model; training is weekly, not part of this run
                continue
            for ds in pipe.outputs(stage):
                if ds.zone_root != "events":
                    assert lake.partitions(ds), f"{dag_id}: {stage.name} published nothing in {ds.qualified_name}"


def test_asset_events_carry_row_counts_and_the_export_day(scenario):
    lake = scenario["af"]
    events = [e for e in scenario["result"]["asset_events"] if e["source_dag_id"] == orch.INGEST_DAG]
    by_asset: dict[str, list[dict]] = {}
    for e in events:
        by_asset.setdefault(e["asset"], []).append(e["extra"])
    assert set(by_asset) >= {d.qualified_name for d in schemas.datasets("raw")}
    for name, days in exported_days(lake).items():
        extras = by_asset[name]
        assert [x["dates"] for x in extras] == [[d.isoformat()] for d in DAYS], name
        for day, extra in zip(DAYS, extras, strict=True):
            pointer = lake.pointer(schemas.get(name), {"dt": day.isoformat()})
            assert extra["rows"] == (pointer["rows"] if day.isoformat() in days else 0), (name, day)
    assert sum(x["rows"] for x in by_asset["raw.tickets"]) > 0
    if "processed.tickets" in by_asset:
        assert sum(x["rows"] for x in by_asset["processed.tickets"]) > 0


def content_digest(lake: Lake, ds) -> str:
    table = lake.read_arrow(ds)
    table = table.select([c for c in table.column_names if c not in RUN_COLUMNS])
    rows = sorted(repr(sorted(r.items())) for r in table.to_pylist())
    return hashlib.sha256("\n".join([",".join(table.column_names), *rows]).encode()).hexdigest()


def test_a_backfill_gives_exactly_the_partitions_and_rows_of_msp_run(scenario):
    """Same partitions holding rows, same rows in each. Published *empty* partitions may differ: the
    quality gate publishes an empty partition for every run day of a dataset that has rows on another
    day of the run, so one run over two days leaves empty partitions two one-day runs do not (both read
    as no rows)."""
    af, cli = scenario["af"], scenario["cli"]
    compared = 0
    zones = ("raw", "quarantine", "processed", "analytics", "ml-models", "events")  # upstream first
    for ds in sorted(schemas.catalog().values(), key=lambda d: (zones.index(d.zone_root), d.qualified_name)):
        a, c = af.published(ds), cli.published(ds)
        assert {k for k, p in a.items() if p["rows"]} == {k for k, p in c.items() if p["rows"]}, ds.qualified_name
        assert all(not p["rows"] for k, p in {**a, **c}.items() if k not in a or k not in c), ds.qualified_name
        if any(p["rows"] for p in a.values()):
            compared += 1
            if not RUN_COLUMNS & set(ds.arrow_schema().names):
                assert af.checksum(ds) == cli.checksum(ds), ds.qualified_name
            assert content_digest(af, ds) == content_digest(cli, ds), ds.qualified_name
    assert compared >= 10
    print(f"{compared} tables hold the same partitions and rows")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))

"""Whole DAG runs with ``dag.test()`` on a tiny synthetic MSP, each scenario in a process of its own.

**Ingestion → an agent → the event dispatcher → the agent's handler**: the ingestion tasks of ``msp_ingest``
run once per export day with the data interval a backfill gives that day; then the DAG of a throwaway agent
package (installed through the ``msp.agents`` entry point, reading ``raw.tickets``), the event DAG (every
stage of kind ``dispatch``: consensus, dispatch, digest) and the agent's DAG again run for the days the asset
events carried, as the scheduler chains them. Meanwhile ``msp run --from --to --stages <the same stages>``
processes the same landing files in another home: both lakes must hold the same partitions with the same
rows. Rerunning the agent emits no new event asset (deterministic event ids). A stage that raises fails its
task and its DAG run.

**The daily chain** (ingestion → quality gate → a real agent's DAG → events, compared with ``msp run --agents``
of the same agents): :data:`DAILY_AGENTS` picks the agents from the registry. One real agent is enough to
prove the chain (its DAG is derived like every other's, and the throwaway agent above covers events and
handlers); each agent more costs minutes of the same proof.

The throwaway agent is on ``sys.path`` only inside the tests that use it (:func:`agent_scenario`), never
while another scenario builds its pipeline: the daily scenario's DagBag (a child process) does not see it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

import schemas
from lakehouse import orchestration as orch
from tests.dags import harness
from tests.dags.conftest import DagRunner, subprocess_env

DAYS = [date(2024, 1, 1), date(2024, 1, 2)]
SPAN = {"start": DAYS[0].isoformat(), "end": DAYS[-1].isoformat()}
#: Columns that say when or by which run a row was written: they differ between any two runs.
RUN_COLUMNS = {"_run_id", "run_id", "_ingested_at"}

#: The agents of the daily chain (their DAGs, and ``msp run --agents``); the platform's stages always run.
DAILY_AGENTS = ("cpi",)

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.xdist_group("dag-runs")]


def backfill_logical_date(day: date) -> str:
    """``dag.test`` infers a manual run's interval as the day before its logical date: this is the interval
    (and so the export day) a backfill or scheduled run of ``day`` gets."""
    return (datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)).isoformat()


def lake_of(home: Path, extra_path: list[str]):
    """The lake under ``home`` with the throwaway agent importable (its event types validate)."""
    from lakehouse.lake import Lake
    from tests.conftest import make_settings

    return Lake.from_settings(make_settings(home))


def content_digest(lake, ds) -> str:
    table = lake.read_arrow(ds)
    table = table.select([c for c in table.column_names if c not in RUN_COLUMNS])
    rows = sorted(repr(sorted(r.items())) for r in table.to_pylist())
    return hashlib.sha256("\n".join([",".join(table.column_names), *rows]).encode()).hexdigest()


@pytest.fixture(scope="module")
def agent_scenario_run(airflow_db, tmp_path_factory):
    from lakehouse.synth import generate

    work = tmp_path_factory.mktemp("dag-runs-agent")
    site = work / "site"
    info = harness.write_agent_package(site, "zz", reads=("raw.tickets",), handler=True)
    with harness.agent_on_path(site, info["package"]):  # only while deriving the stages: see the module doc
        pipe = orch.Pipeline()
        events_stages = [s.name for s in pipe.dispatch]
        zz_stages = [s.name for s in pipe.by_dag["msp_zz"]]
    af_home, cli_home = work / "airflow-lake", work / "cli-lake"
    generate(scale="tiny", seed=11, landing_root=af_home / "landing", truth_root=work / "truth", start=DAYS[0],
             days=len(DAYS))
    shutil.copytree(af_home / "landing", cli_home / "landing")
    runs = [{"dag_id": orch.INGEST_DAG, "logical_date": backfill_logical_date(d), "tasks": r"\.ingest$"}
            for d in DAYS]
    runs += [{"dag_id": "msp_zz", "conf": SPAN}, {"dag_id": orch.EVENTS_DAG, "conf": SPAN},
             {"dag_id": "msp_zz", "conf": SPAN}]
    # the stages of exactly those runs: the ingestion tasks, the agent's DAG and the event DAG
    stages = ["ingest", *zz_stages, *events_stages]
    assert {"zz.count", "zz.on_counted", "events.dispatch"} <= set(stages), stages
    runner = DagRunner(airflow_db, work)
    # a task per stage (the setting's other value): these runs pick single tasks (each source's ingest)
    handle = runner.start("agent", runs, af_home, extra_path=[str(site)], MSP_AIRFLOW__TASKS="stage")
    msp = Path(sys.executable).with_name("msp")
    env = subprocess_env(cli_home, PYTHONPATH=f"{site}:{subprocess_env(cli_home)['PYTHONPATH']}")
    try:
        cli = subprocess.run([str(msp), "run", "--from", SPAN["start"], "--to", SPAN["end"], "--stages", *stages],
                             env=env, cwd=work, capture_output=True, text=True, timeout=1200, check=False)
    finally:
        result = runner.wait(handle, timeout=1200)  # also stops the scenario if msp run failed
    assert cli.returncode == 0, f"msp run failed:\n{cli.stdout[-4000:]}{cli.stderr[-2000:]}"
    return {"result": result, "info": info, "site": site, "af_home": af_home, "cli_home": cli_home, "runs": runs}


@pytest.fixture
def agent_scenario(agent_scenario_run):
    """The agent scenario's results, with the throwaway agent installed for the duration of one test."""
    sc = agent_scenario_run
    with harness.agent_on_path(sc["site"], sc["info"]["package"]):
        yield {**sc, "af": lake_of(sc["af_home"], [str(sc["site"])]), "cli": lake_of(sc["cli_home"], [str(sc["site"])])}


def test_every_dag_run_succeeds_and_runs_its_stages(agent_scenario):
    runs = agent_scenario["result"]["runs"]
    assert [r["dag_id"] for r in runs] == [r["dag_id"] for r in agent_scenario["runs"]]
    for run in runs:
        failed = {t: s for t, s in run["tasks"].items() if s != "success"}
        assert run["state"] == "success" and not failed, f"{run['dag_id']}: {failed}\n" + \
            agent_scenario["result"]["log"][-5000:]
    assert set(runs[0]["tasks"]) == {f"{s}.ingest" for s in schemas.raw_sources()}
    assert set(runs[2]["tasks"]) == {"zz_count", "zz_on_counted", "refresh_catalog"}
    print({r["dag_id"]: r["seconds"] for r in runs}, "parse", agent_scenario["result"]["parse_seconds"])


def test_asset_events_carry_rows_written_and_the_days(agent_scenario):
    lake, events = agent_scenario["af"], agent_scenario["result"]["asset_events"]
    tickets = [e for e in events if e["asset"] == "raw.tickets"]
    assert [(e["source_task_id"], e["extra"]["dates"]) for e in tickets] == [
        ("psa.ingest", [d.isoformat()]) for d in DAYS]
    rows = lake.read_arrow(schemas.get("raw.tickets"))
    per_day = {d.isoformat(): rows.column("dt").to_pylist().count(d.isoformat()) for d in DAYS}
    assert [e["extra"]["rows"] for e in tickets] == [per_day[d.isoformat()] for d in DAYS]
    assert sum(per_day.values()) > 0
    assert all(e["uri"] == schemas.get("raw.tickets").location(lake.root) for e in tickets)


def test_new_events_trigger_once_and_a_rerun_emits_no_event_asset(agent_scenario):
    info, events = agent_scenario["info"], agent_scenario["result"]["asset_events"]
    lake = agent_scenario["af"]
    outbox = lake.read_arrow(schemas.get(orch.OUTBOX))
    emitted = sorted(outbox.column("dt").to_pylist())
    assert emitted, "the agent emitted no event"
    new = [e for e in events if e["asset"] == f"events.outbox.{info['event_type']}"]
    assert [(e["source_dag_id"], e["extra"]["events"], e["extra"]["dates"]) for e in new] == [
        ("msp_zz", len(emitted), sorted(set(emitted)))]  # the second msp_zz run found nothing new
    routed = [e for e in events if e["asset"] == "events.inbox.zz"]
    assert [(e["source_dag_id"], e["extra"]["events"]) for e in routed] == [(orch.EVENTS_DAG, len(emitted))]
    assert new[0]["uri"].endswith(f"/events/outbox/event_type={info['event_type']}")


def test_the_runs_give_exactly_the_partitions_and_rows_of_msp_run(agent_scenario):
    af, cli = agent_scenario["af"], agent_scenario["cli"]
    compared = []
    for ds in schemas.catalog().values():
        if ds.zone_root not in ("raw", "events") and ds.qualified_name != "quarantine.rejected_files":
            continue
        a, c = af.partitions(ds), cli.partitions(ds)
        assert a == c, ds.qualified_name
        if a:
            assert content_digest(af, ds) == content_digest(cli, ds), ds.qualified_name
            compared.append(ds.qualified_name)
    assert {"raw.tickets", orch.OUTBOX, orch.INBOX} <= set(compared)
    print(f"{len(compared)} tables hold the same partitions and rows")


@pytest.mark.parametrize("tasks", ["dag", "stage"])
def test_a_failing_blocking_expectation_fails_the_stage_its_task_and_the_dag_run(airflow_db, tmp_path, tasks):
    """A throwaway agent writes negative counts into its own table, whose declaration says ``min: 0``: the
    write's audit (the table's Great Expectations Checkpoint on the staged batch) fails a critical expectation,
    so nothing is committed, the stage fails, and so does the DAG run: with a task per stage, its task (no
    retry here); with a task for the DAG's stages, the check after them."""
    site = tmp_path / "site"
    info = harness.write_agent_package(site, "zz", reads=("raw.tickets",), table=True, bad_rows=True)
    runner = DagRunner(airflow_db, tmp_path)
    out = runner.run("failing", [{"dag_id": "msp_zz", "conf": {"start": "2024-01-01", "end": "2024-01-01"}}],
                     tmp_path / "home", extra_path=[str(site)], MSP_AIRFLOW__TASKS=tasks)
    (run,) = out["runs"]
    # the catalog teardown (or the stages' task) runs all the same, and does not turn the run green
    assert run["state"] == "failed" and run["tasks"] == (
        {"zz_count": "failed", "refresh_catalog": "success"} if tasks == "stage" else
        {"run_stages": "success", "check_stages": "failed"})
    assert "StageFailed: stage zz.count failed for 2024-01-01: zz.count: AuditFailed: analytics.zz_counts: " \
           "1 critical expectation(s) failed in the Checkpoint" in out["log"]
    assert not [e for e in out["asset_events"] if e["source_dag_id"] == "msp_zz"]  # a failed task emits nothing
    with harness.agent_on_path(site, info["package"]):
        assert not lake_of(tmp_path / "home", []).partitions(schemas.get("analytics.zz_counts"))


# ---- the daily chain: ingestion → quality gate → the agents of DAILY_AGENTS → events → handlers ------------
def daily_order(pipe: orch.Pipeline, agents: Sequence[str]) -> list[str]:
    """The DAG runs after ingestion, as the asset events chain them: the DAGs of ``agents`` in the run order of
    their first stage, the event DAG, then again those with handler stages (started by their inbox)."""
    wanted = {orch.agent_dag_id(a) for a in agents}
    assert wanted <= set(pipe.by_dag), f"no DAG for {sorted(wanted - set(pipe.by_dag))}"
    dags: list[str] = []
    for s in pipe.stages:
        dag_id = pipe.dag_of(s)
        if dag_id in wanted and dag_id not in dags:
            dags.append(dag_id)
    return [*dags, orch.EVENTS_DAG, *[d for d in dags if pipe.handles_events(d)]]


@pytest.fixture(scope="module")
def daily_scenario(airflow_db, tmp_path_factory):
    from lakehouse.synth import generate

    work = tmp_path_factory.mktemp("dag-runs-daily")
    af_home, cli_home = work / "airflow-lake", work / "cli-lake"
    generate(scale="tiny", seed=11, landing_root=af_home / "landing", truth_root=work / "truth", start=DAYS[0],
             days=len(DAYS))
    shutil.copytree(af_home / "landing", cli_home / "landing")
    pipe = orch.Pipeline()
    runs = [{"dag_id": orch.INGEST_DAG, "logical_date": backfill_logical_date(d)} for d in DAYS]
    runs += [{"dag_id": dag_id, "conf": SPAN} for dag_id in daily_order(pipe, DAILY_AGENTS)]
    runner = DagRunner(airflow_db, work)
    handle = runner.start("daily", runs, af_home)
    msp = Path(sys.executable).with_name("msp")
    try:
        cli = subprocess.run([str(msp), "run", "--from", SPAN["start"], "--to", SPAN["end"], "--agents",
                              *DAILY_AGENTS],
                             env=subprocess_env(cli_home), cwd=work, capture_output=True, text=True, timeout=1800,
                             check=False)
    finally:
        result = runner.wait(handle, timeout=1800)  # also stops the scenario if msp run failed
    assert cli.returncode == 0, f"msp run failed:\n{cli.stdout[-4000:]}{cli.stderr[-2000:]}"
    return {"result": result, "pipe": pipe, "af": lake_of(af_home, []), "cli": lake_of(cli_home, []), "runs": runs}


def test_a_backfill_of_the_daily_dags_equals_msp_run(daily_scenario):
    """Every DAG run succeeds; every table holds the same partitions with the same rows as after `msp run`
    (all columns but those naming the run); the ingestion's asset events carry each day's rows."""
    runs, log = daily_scenario["result"]["runs"], daily_scenario["result"]["log"]
    for run in runs:
        failed = {t: s for t, s in run["tasks"].items() if s != "success"}
        assert run["state"] == "success" and not failed, f"{run['dag_id']}: {failed}\n{log[-5000:]}"
    print({f"{r['dag_id']}#{i}": r["seconds"] for i, r in enumerate(runs)})
    af, cli = daily_scenario["af"], daily_scenario["cli"]
    compared = []
    for ds in schemas.catalog().values():
        a, c = af.partitions(ds), cli.partitions(ds)
        assert a == c, ds.qualified_name
        if a:
            assert content_digest(af, ds) == content_digest(cli, ds), ds.qualified_name
            compared.append(ds.qualified_name)
    assert {"processed.tickets", "processed.client_profitability_monthly", "analytics.client_margin_report"} <= set(
        compared)
    print(f"{len(compared)} tables hold the same partitions and rows")
    events = [e for e in daily_scenario["result"]["asset_events"] if e["asset"] == "processed.tickets"]
    assert [e["extra"]["dates"] for e in events] == [[d.isoformat()] for d in DAYS]
    rows = af.read_arrow(schemas.get("processed.tickets")).column("dt").to_pylist()
    assert [e["extra"]["rows"] for e in events] == [rows.count(d.isoformat()) for d in DAYS]

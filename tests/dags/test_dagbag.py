"""The DAG files: they import cleanly, follow the house rules, parse fast without heavy imports, and are derived
from the agents' declarations (a new agent package gets its own DAG without editing a file here)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest

import schemas
from lakehouse import orchestration as orch
from lakehouse.agents import STAGE_KINDS, registry
from tests.dags import harness
from tests.dags.conftest import DAGS, REPO, subprocess_env

DAG_FILES = sorted(p.name for p in DAGS.glob("*.py"))
#: Nothing of these may be imported by parsing a DAG file (they load when a task runs a stage).
HEAVY = ("pyspark", "pandas", "pyarrow", "great_expectations", "sklearn", "ibis", "duckdb", "pyiceberg", "numpy",
         "awswrangler", "polars")
PARSE_BUDGET_SECONDS = 2.0


@pytest.fixture(scope="module")
def lake_root(tmp_path_factory):
    """The lake of these tests, with a task per stage (``airflow.tasks = "stage"``): most tests here check how
    stages become tasks and are wired; :func:`whole_bag` builds the default, a task for a DAG's stages."""
    home = tmp_path_factory.mktemp("dagbag-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MSP_HOME", str(home))
        mp.setenv("MSP_AIRFLOW__TASKS", "stage")
        yield str(home / "lake")


@pytest.fixture(scope="module")
def bag(lake_root):
    bag = harness.dagbag()
    yield bag
    harness._reset()


@pytest.fixture(scope="module")
def whole_bag(bag):
    """The DAGs with the default ``airflow.tasks = "dag"``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MSP_AIRFLOW__TASKS")
        whole = harness.dagbag()
    harness._reset()
    return whole


@pytest.fixture(scope="module")
def pipeline():
    return orch.Pipeline()


def schedule_assets(dag) -> list:
    from lakehouse.airflow_dags import assets_of

    if type(dag.timetable).__name__ != "AssetTriggeredTimetable":
        return []
    return assets_of(dag.timetable.asset_condition)


def test_every_dag_ends_with_the_catalog_refresh_teardown(bag):
    for dag in bag.dags.values():
        refresh = dag.get_task("refresh_catalog")
        assert refresh.is_teardown and not refresh.downstream_task_ids
        stages = {t.task_id for t in dag.tasks if "stage_name" in getattr(t, "op_kwargs", {})}
        assert refresh.upstream_task_ids == stages


def stage_tasks(dag, stage: str) -> list:
    return [t for t in dag.tasks if getattr(t, "op_kwargs", {}).get("stage_name") == stage]


def test_dags_import_cleanly_and_follow_the_house_rules(bag, pipeline):
    assert bag.import_errors == {}, bag.import_errors
    expected = {orch.INGEST_DAG, orch.EVENTS_DAG, orch.TRAIN_DAG, orch.MAINTENANCE_DAG} | {
        orch.agent_dag_id(a) for a in registry().agents}
    assert set(bag.dag_ids) == expected
    for dag in bag.dags.values():
        assert dag.tags and "msp" in dag.tags, f"{dag.dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md) > 100, f"{dag.dag_id} has no documentation"
        assert dag.catchup is False and dag.max_active_runs == 1
        assert set(dag.params) >= {"start", "end"}
        assert dag.tasks, f"{dag.dag_id} has no tasks"
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag.dag_id}.{task.task_id}: retries {task.retries} < 2"
            assert task.retry_exponential_backoff > 1, f"{dag.dag_id}.{task.task_id}: no exponential backoff"


#: Parses each DAG file in a child forked from an interpreter that imported Airflow, as the dag processor
#: does: the file's own imports are cold, Airflow's are not (and are not the file's cost).
PARSER = r"""
import json, os, resource, sys
import airflow.sdk
from airflow.dag_processing.dagbag import DagBag
out = {}
for path in sys.argv[1:]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        bag = DagBag(dag_folder=path)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        report = {"parse": bag.dagbag_stats[0].duration.total_seconds(),
                  "cpu": cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime,
                  "errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "modules": sorted({m.split(".")[0] for m in sys.modules}), "dags": sorted(bag.dag_ids)}
        os.write(w, json.dumps(report).encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.waitpid(pid, 0)
    out[os.path.basename(path)] = json.loads(b"".join(chunks))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def parse_reports(tmp_path_factory):
    work = tmp_path_factory.mktemp("parse")
    proc = subprocess.run([sys.executable, "-c", PARSER, *[str(DAGS / f) for f in DAG_FILES]],
                          env=subprocess_env(work / "msp"), cwd=work, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("dag_file", DAG_FILES)
def test_each_dag_file_parses_in_under_two_seconds_without_heavy_imports(parse_reports, dag_file):
    """The CPU time of the parse is held to the budget always; the wall time too unless the machine is
    overloaded (more runnable processes than cores), where it measures the neighbours rather than the file.
    After the parse, none of the heavy libraries is in ``sys.modules`` at all."""
    report = parse_reports[dag_file]
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    print(f"{dag_file}: parse {report['parse']:.2f} s wall, {report['cpu']:.2f} s CPU (load {load:.1f} per core), "
          f"DAGs {report['dags']}")
    assert report["errors"] == {}
    assert report["dags"], f"{dag_file} defines no DAG"
    assert report["cpu"] < PARSE_BUDGET_SECONDS, report
    if load <= 1:
        assert report["parse"] < PARSE_BUDGET_SECONDS, report
    heavy = [m for m in report["modules"] if m in HEAVY]
    assert heavy == [], f"parsing {dag_file} imported {heavy}"


def test_each_kind_runs_in_the_dag_it_names(bag, pipeline):
    """Every declared stage is a task of the DAG its kind decides (never its name)."""
    assert set(STAGE_KINDS) == {*orch.KIND_DAGS, *orch.AGENT_KINDS}
    reg = registry()
    for s in reg.stages.values():
        dag_id = orch.KIND_DAGS.get(s.kind) or f"msp_{s.agent}"
        assert pipeline.dag_of(s) == dag_id
        tasks = stage_tasks(bag.dags[dag_id], s.name)
        assert tasks, f"stage {s.name} ({s.kind}) has no task in {dag_id}"
        for other in set(bag.dag_ids) - {dag_id}:
            assert not stage_tasks(bag.dags[other], s.name), f"{s.name} also runs in {other}"
    def stages_of(dag_id):
        return {t.op_kwargs["stage_name"] for t in bag.dags[dag_id].tasks if "stage_name" in t.op_kwargs}

    assert stages_of(orch.MAINTENANCE_DAG) == {"lake.maintain"}
    assert stages_of(orch.TRAIN_DAG) == {s.name for s in reg.stages.values() if s.kind == "train"}
    cpi = stages_of("msp_cpi")
    assert "cpi.churn_score" in cpi and "cpi.churn_train" not in cpi  # scoring daily, training weekly


def test_tasks_are_wired_by_what_the_stages_read_and_write(bag):
    dag = bag.dags["msp_cpi"]
    task = {t.op_kwargs["stage_name"]: t for t in dag.tasks if "stage_name" in t.op_kwargs}
    assert task["cpi.profitability"].task_id in task["cpi.margin_report"].upstream_task_ids
    assert task["cpi.churn_score"].task_id in task["cpi.daily_summary"].upstream_task_ids
    assert not task["cpi.lifecycle"].upstream_task_ids  # reads only what ingestion publishes


def test_ingestion_has_a_task_group_per_landing_source(bag, pipeline):
    dag = bag.dags[orch.INGEST_DAG]
    sources = sorted(schemas.raw_sources())
    assert sorted(dag.task_group.children) == sorted([*sources, "refresh_catalog"])
    for source in sources:
        chain = [f"{source}.{s.name}" for s in pipeline.ingestion]
        assert chain == [f"{source}.ingest", f"{source}.quality"]
        for earlier, later in itertools.pairwise(chain):
            assert earlier in dag.get_task(later).upstream_task_ids
        ingest = dag.get_task(f"{source}.ingest")
        assert ingest.op_kwargs["stage_params"] == {"sources": [source]}
        raw = {o.name for o in ingest.outlets} - {"quarantine.rejected_files", "quarantine.rejected_lines"}
        assert raw == {d.qualified_name for d in schemas.raw_sources()[source]}
        gate = {o.name for o in dag.get_task(f"{source}.quality").outlets}
        assert gate == {f"{z}.{d.name}" for d in schemas.raw_sources()[source] for z in ("processed", "quarantine")}
    # parents first across sources, as the suites' lookups say (rmm's rules look PSA's clients up)
    order = orch.source_order()
    assert order, "no cross-source lookup in the suites"
    for child, parents in order.items():
        for parent in parents:
            assert f"{parent}.quality" in dag.get_task(f"{child}.quality").upstream_task_ids


def test_asset_uris_are_the_tables_locations_in_the_lake(bag, lake_root):
    reg = registry()
    known = {d.qualified_name: d.location(lake_root) for d in schemas.catalog().values()}
    known |= {f"events.outbox.{t}": f"file://{lake_root}/events/outbox/event_type={t}" for t in reg.events}
    known |= {f"events.inbox.{a}": f"file://{lake_root}/events/inbox/agent={a}" for a in reg.agents}
    seen = []
    for dag in bag.dags.values():
        for task in dag.tasks:
            seen += [o for o in task.outlets if type(o).__name__ == "Asset"]
        seen += schedule_assets(dag)
    assert seen
    for asset in seen:
        assert asset.uri.startswith(f"file://{lake_root}/"), asset
        assert known.get(asset.name) == asset.uri, f"{asset} is not derived from a declaration"
    tickets = schemas.get("processed.tickets")
    assert tickets.location(lake_root) == f"file://{lake_root}/processed/tickets"
    assert tickets.location("s3://bucket/lake") == "s3://bucket/lake/processed/tickets"


def reads_from_elsewhere(pipeline: orch.Pipeline, agent: str) -> set[str]:
    """What an agent's daily stages read that another DAG publishes: computed here from the registry."""
    reg = registry()
    stages = [s for s in reg.agents[agent].stages if s.kind in orch.AGENT_KINDS]
    own = {n for s in stages for n in reg.outputs(s)}
    read = {n for s in stages for n in reg.inputs(s)} - own
    return {n for n in read if schemas.get(n).zone_root not in ("events", "ml-models")
            and pipeline.producers.get(n) not in (None, f"msp_{agent}", orch.TRAIN_DAG)}


def test_each_agent_dag_is_scheduled_on_the_assets_of_what_it_reads(bag, pipeline):
    produced = {o.name: dag.dag_id for dag in bag.dags.values() for t in dag.tasks for o in t.outlets
                if type(o).__name__ == "Asset"}
    for agent in registry().agents:
        dag = bag.dags[f"msp_{agent}"]
        assert type(dag.timetable).__name__ == "AssetTriggeredTimetable", f"{dag.dag_id} is not data-aware"
        scheduled = {a.name for a in schedule_assets(dag)}
        handles = any(s.kind == "handler" for s in registry().agents[agent].stages)
        assert scheduled == reads_from_elsewhere(pipeline, agent) | ({f"events.inbox.{agent}"} if handles else set())
        scheduled -= {f"events.inbox.{agent}"}
        assert all(produced.get(n) not in (None, dag.dag_id) for n in scheduled), "an input nothing else produces"
    cpi = {a.name for a in schedule_assets(bag.dags["msp_cpi"])}
    assert {"processed.invoices", "processed.time_entries", "processed.software_inventory"} <= cpi
    assert "processed.leads" not in cpi and "processed.focus_costs" not in cpi  # not all processed tables
    assert not {n for n in cpi if not n.startswith("processed.")}


def test_event_dag_is_scheduled_on_every_declared_event_type(bag):
    dag = bag.dags[orch.EVENTS_DAG]
    assert type(dag.timetable.asset_condition).__name__ == "AssetAny"
    assert {a.name for a in schedule_assets(dag)} == {f"events.outbox.{t}" for t in registry().events}
    dispatch = dag.get_task("events_dispatch")
    assert {o.name for o in dispatch.outlets} == {"events.inbox", "msp.routed-events"}
    reg = registry()
    emitters = [s for s in reg.stages.values() if orch.OUTBOX in reg.outputs(s)]
    assert emitters
    for s in emitters:  # every stage writing the outbox emits new events' assets through the alias
        (t,) = stage_tasks(bag.dags[orch.dag_of(s)], s.name)
        assert {"events.outbox", "msp.new-events"} <= {o.name for o in t.outlets}


def test_the_runner_is_picked_once_from_the_settings(settings):
    from lakehouse import airflow_dags as msp

    assert type(msp.runner(settings)) is msp.LocalRunner
    aws = settings.with_overrides(profile="aws", lake_root="s3://b/lake", landing_root="s3://b/landing")
    assert type(msp.runner(aws)) is msp.GlueRunner
    assert set(msp.RUNNERS) == {"local", "glue"}


def test_glue_runner_submits_then_waits_without_a_worker_slot_then_records(settings):
    """On the aws profile each stage is prepare → submit (no waiting) → sensor (deferred or rescheduled) →
    record, with the poke interval, the wait limit and the retries of the [airflow] settings."""
    from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
    from airflow.providers.amazon.aws.sensors.glue import GlueJobSensor
    from airflow.sdk import DAG

    from lakehouse import airflow_dags as msp

    aws = settings.with_overrides(profile="aws", lake_root="s3://lake-bucket/lake",
                                  landing_root="s3://lake-bucket/landing", glue_scripts_location="s3://scripts/msp")
    pipe = orch.Pipeline()
    with DAG("glue_variant", schedule=None, default_args=msp.default_args(aws), tags=["test"]) as dag:
        msp.stage_chain(pipe.ingestion, pipe, params={"sources": ["psa"]}, run=msp.GlueRunner(aws),
                        keep=msp.of_source("psa"))
    submit, wait = dag.get_task("ingest.submit"), dag.get_task("ingest.wait")
    assert isinstance(submit, GlueJobOperator) and isinstance(wait, GlueJobSensor)
    assert submit.job_name == orch.glue_job_name(aws, "ingest") == wait.job_name  # the stage's own job
    assert submit.script_location == "s3://scripts/msp/glue_entry.py"
    assert submit.wait_for_completion is False and submit.deferrable is False
    # deferrable where the provider's triggers can run (aiobotocore), else rescheduled: never a busy worker
    assert (wait.deferrable, wait.mode) in ((True, "poke"), (False, "reschedule")) and wait.retries >= 2
    assert wait.deferrable is msp.GlueRunner.can_defer()
    af = aws.model("airflow")
    assert wait.poke_interval == af.glue_poke_seconds
    assert wait.timeout == pytest.approx(af.glue_max_hours * 3600, rel=0.01)
    assert dag.get_task("ingest.prepare").downstream_task_ids == {"ingest.submit", "ingest.record"}
    assert dag.get_task("ingest.record").upstream_task_ids == {"ingest.prepare", "ingest.wait"}
    record = dag.get_task("ingest.record")
    assert {o.name for o in record.outlets} >= {"raw.tickets", "quarantine.rejected_files"}
    assert next(o for o in record.outlets if o.name == "raw.tickets").uri == "s3://lake-bucket/lake/raw/tickets"
    assert "ingest.record" in dag.get_task("quality.prepare").upstream_task_ids


def test_a_new_agent_package_gets_its_own_dag_scheduled_on_the_assets_it_reads(lake_root, tmp_path):
    """A third-party agent (entry point in ``msp.agents``, nothing edited here) reading two PSA tables."""
    info = harness.write_agent_package(tmp_path, "zz", reads=("processed.tickets", "processed.clients"),
                                       handler=True)
    with harness.agent_on_path(tmp_path, info["package"]):
        assert "zz" in registry().agents
        bag = harness.dagbag()
        assert bag.import_errors == {}, bag.import_errors
        dag = bag.dags["msp_zz"]
        assert set(dag.tags) == {"msp", "agent", "zz"}
        condition = dag.timetable.asset_condition
        assert type(condition).__name__ == "AssetAny"  # its tables, or events routed to it
        assert {a.name for a in schedule_assets(dag)} == {"processed.tickets", "processed.clients",
                                                           "events.inbox.zz"}
        assert {t.op_kwargs.get("stage_name") for t in dag.tasks} == {"zz.count", "zz.on_counted", None}
        events = {a.name for a in schedule_assets(bag.dags[orch.EVENTS_DAG])}
        assert f"events.outbox.{info['event_type']}" in events
        assert "msp_cpi" in bag.dag_ids  # the built-in agents are still there
    assert "zz" not in registry().agents  # gone again
    without = harness.dagbag()
    assert "msp_zz" not in without.dag_ids


def test_the_local_airflow_script_is_valid_bash():
    proc = subprocess.run(["bash", "-n", str(REPO / "scripts" / "airflow.sh")], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr


def test_the_local_airflow_script_refuses_the_port_of_airflows_log_server(tmp_path):
    """Port 8793 is free until standalone's task runner binds its log server there: the API server would then
    fail to bind and `start` would wait for it in vain. `start` refuses it at once and starts nothing."""
    env = subprocess_env(tmp_path / "msp", airflow_home=tmp_path / "airflow", MSP_AIRFLOW_PORT="8793")
    out = subprocess.run([str(REPO / "scripts" / "airflow.sh"), "start"], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 1 and "8793 is one of Airflow's log-server ports" in out.stderr, out.stderr
    assert not (tmp_path / "airflow" / "standalone.pids").exists()


def test_an_agent_with_its_own_tables_gets_a_dag_publishing_them(throwaway_agent, lake_root):
    """The shared throwaway agent of tests/agent_package.py (entry points ``msp.agents`` and ``msp.datasets``):
    its DAG is scheduled on what it reads, or on its inbox (it has a handler), and its task publishes its
    own table's asset."""
    bag = harness.dagbag()
    try:
        assert bag.import_errors == {}, bag.import_errors
        dag = bag.dags["msp_tmpagent"]
        assert {a.name for a in schedule_assets(dag)} == {"processed.tickets", "events.inbox.tmpagent"}
        (count,) = stage_tasks(dag, "tmpagent.count")
        assets = {o.name: o.uri for o in count.outlets if type(o).__name__ == "Asset"}
        assert assets == {"analytics.tmpagent_counts": f"file://{lake_root}/analytics/daily-summaries/tmpagent_counts",
                          "events.outbox": f"file://{lake_root}/events/outbox"}
        assert "events.outbox.tmpagent.busy.detected" in {a.name for a in schedule_assets(bag.dags[orch.EVENTS_DAG])}
    finally:
        harness._reset()


def test_by_default_a_dag_runs_its_stages_in_one_task_then_checks_them(whole_bag, bag, pipeline):
    """``airflow.tasks = "dag"``: ``run_stages`` runs the DAG's stages in run order (as ``msp run`` would) and
    ``check_stages``, without retries, fails the run if one failed. Its outlets are asset aliases only: a
    declared asset gets an event whenever its task succeeds, and this task succeeds when a stage fails, so
    the tables it committed are emitted through ``msp.published-tables``, one by one. The schedules are those of
    the task-per-stage DAGs."""
    from lakehouse.airflow_dags import NEW_EVENTS, PUBLISHED

    assert sorted(whole_bag.dags) == sorted(bag.dags) == pipeline.dag_ids()
    for dag_id, dag in whole_bag.dags.items():
        assert {t.task_id for t in dag.tasks} == {"run_stages", "check_stages"}, dag_id
        run, check = dag.get_task("run_stages"), dag.get_task("check_stages")
        assert check.upstream_task_ids == {"run_stages"} and check.retries == 0 and run.retries >= 2
        assert (check.weight_rule, run.weight_rule) == ("absolute", "absolute")  # a check never waits behind stages
        assert check.priority_weight > run.priority_weight
        assert run.op_kwargs["stage_names"] == [s.name for s in pipeline.by_dag[dag_id]]
        assert run.op_kwargs["tables"] == sorted(d.qualified_name for d in pipeline.writes(dag_id))
        assert PUBLISHED in run.outlets and all(type(o).__name__ == "AssetAlias" for o in run.outlets)
        assert [a.name for a in schedule_assets(dag)] == [a.name for a in schedule_assets(bag.dags[dag_id])]
    assert NEW_EVENTS in whole_bag.dags["msp_cpi"].get_task("run_stages").outlets
    assert whole_bag.dags[orch.INGEST_DAG].get_task("run_stages").op_kwargs["stage_names"] == ["ingest", "quality"]


def test_the_glue_runner_submits_a_run_per_stage_whatever_airflow_tasks_says(tmp_path):
    from lakehouse import airflow_dags as msp
    from tests.conftest import make_settings

    default = make_settings(tmp_path / "home")
    assert default.model("airflow").tasks == "dag"
    assert msp.LocalRunner(default).whole_dag() and not msp.GlueRunner(default).whole_dag()
    assert not msp.LocalRunner(make_settings(tmp_path / "home", MSP_AIRFLOW__TASKS="stage")).whole_dag()

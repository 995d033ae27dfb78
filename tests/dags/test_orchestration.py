"""Which DAG runs which stage, what schedules it, which days a run processes, and what a stage run reports
(no Airflow needed)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

import schemas
from lakehouse import orchestration as orch
from lakehouse.agents import Agent, Registry, Stage
from lakehouse.glue_entry import parse_arguments
from lakehouse.pipeline import PLATFORM_STAGES
from schemas import Column, Dataset
from tests.conftest import make_settings
from tests.dags import harness

DAY = date(2024, 1, 1)


def table(name: str, owner: str, zone: str = "analytics/kpi-metrics") -> Dataset:
    return Dataset(name=name, zone=zone, owner=owner, description="test", columns=(Column("client_id", "string"),))


@pytest.fixture
def catalog(monkeypatch):
    """The real declarations plus tables of two imaginary agents."""
    extra = {d.qualified_name: d for d in (table("t_margin", "aa"), table("t_scores", "aa"),
                                            table("t_pipeline", "bb"), table("t_alerts", "bb"))}
    full = {**schemas.catalog(), **extra}
    monkeypatch.setattr(schemas, "catalog", lambda: full)
    return full


def registry_of(*agents: Agent) -> Registry:
    return Registry(PLATFORM_STAGES, {a.name: a for a in agents})


AA = Agent(name="aa", title="A", package="jobs", stages=(
    Stage("aa.margin", "x:y", kind="transform", reads=("processed.invoices", "processed.time_entries"),
          writes=("analytics.t_margin",)),
    Stage("aa.alerts", "x:y", kind="transform", reads=("analytics.t_margin",), writes=("events.outbox",)),
    Stage("aa.churn_train", "x:y", kind="train", reads=("analytics.t_margin",)),
    Stage("aa.churn_score", "x:y", kind="score", reads=("analytics.t_margin",), writes=("analytics.t_scores",),
          after=("aa.churn_train",)),
    Stage("aa.on_event", "x:y", kind="handler", reads=("events.inbox",)),
    # named like a training stage, declared as a transform: it runs daily in its agent's DAG
    Stage("aa.constrain_train", "x:y", kind="transform", reads=("analytics.t_scores",)),
))
BB = Agent(name="bb", title="B", package="jobs", stages=(
    Stage("bb.pipeline", "x:y", kind="transform", reads=("processed.tickets", "analytics.t_margin",
                                                          "processed.leads"),
          writes=("analytics.t_pipeline",)),
    Stage("bb.alerts", "x:y", kind="transform", reads=("analytics.t_pipeline",), writes=("events.outbox",)),
))


def test_the_kind_decides_the_dag_never_the_name(catalog):
    pipe = orch.Pipeline(registry_of(AA, BB))
    assert {s.name: pipe.dag_of(s) for s in pipe.stages} == {
        "ingest": "msp_ingest", "quality": "msp_ingest", "events.dispatch": "msp_events",
        "consensus.decide": "msp_events", "events.digest": "msp_events",
        "lake.maintain": "msp_maintenance", "aa.margin": "msp_aa", "aa.alerts": "msp_aa",
        "aa.churn_train": "msp_train", "aa.churn_score": "msp_aa", "aa.on_event": "msp_aa",
        "aa.constrain_train": "msp_aa", "bb.pipeline": "msp_bb", "bb.alerts": "msp_bb"}
    assert list(pipe.agent_dags()) == ["aa", "bb"] and list(pipe.training) == ["aa"]
    # scoring runs in the agent's DAG in run order: after the features it reads, before what reads the scores
    names = [s.name for s in pipe.agent_dags()["aa"]]
    assert names.index("aa.margin") < names.index("aa.churn_score") < names.index("aa.constrain_train")
    assert [s.name for s in pipe.maintenance] == ["lake.maintain"]
    assert pipe.handles_events("msp_aa") and not pipe.handles_events("msp_bb")


def test_agent_dags_wait_for_what_they_read_from_other_dags_never_models_or_events(catalog):
    pipe = orch.Pipeline(registry_of(AA, BB))
    assert [d.qualified_name for d in pipe.inputs("msp_aa")] == ["processed.invoices", "processed.time_entries"]
    # only the tables bb reads, not every processed table: and aa's margin table from aa's DAG
    assert [d.qualified_name for d in pipe.inputs("msp_bb")] == ["analytics.t_margin", "processed.leads",
                                                                 "processed.tickets"]
    assert pipe.producers["analytics.t_margin"] == "msp_aa"
    assert pipe.producers["processed.tickets"] == "msp_ingest"
    for dag_id in pipe.by_dag:
        assert not any(d.zone_root in ("ml-models", "events") for d in pipe.inputs(dag_id))
    assert pipe.inputs("msp_ingest") == [] and pipe.inputs("msp_train") == []


def test_a_wildcard_write_covers_only_what_its_agent_owns_and_no_other_stage_names(catalog, monkeypatch):
    cpi_table = table("client_margin", "aa", zone="processed")
    monkeypatch.setattr(schemas, "catalog", lambda: {**catalog, cpi_table.qualified_name: cpi_table})
    aa = Agent(name="aa", title="A", package="jobs", stages=(
        Stage("aa.client_margin", "x:y", kind="transform", reads=("processed.invoices",),
              writes=("processed.client_margin", "events.outbox")),))
    pipe = orch.Pipeline(registry_of(aa, BB))
    quality = {d.qualified_name for d in pipe.outputs(pipe.reg.stages["quality"])}
    assert "processed.tickets" in quality and "quarantine.tickets" in quality
    assert "processed.client_margin" not in quality  # the agent's own processed table
    assert "quarantine.rejected_files" not in quality  # ingestion names it
    assert pipe.producers["processed.client_margin"] == "msp_aa"
    # a table several stages name exactly (the outbox) is an output of each of them
    assert [orch.OUTBOX in {d.qualified_name for d in pipe.outputs(pipe.reg.stages[n])}
            for n in ("aa.client_margin", "bb.alerts", "events.dispatch")] == [True, True, False]


def test_schedules_that_would_wait_on_each_other_are_broken(catalog):
    aa = Agent(name="aa", title="A", package="jobs", stages=(
        Stage("aa.a", "x:y", kind="transform", reads=("processed.invoices",), writes=("analytics.t_margin",)),
        Stage("aa.c", "x:y", kind="transform", reads=("analytics.t_pipeline",), writes=("analytics.t_scores",)),
    ))
    bb = Agent(name="bb", title="B", package="jobs", stages=(
        Stage("bb.b", "x:y", kind="transform", reads=("analytics.t_margin",), writes=("analytics.t_pipeline",)),))
    pipe = orch.Pipeline(registry_of(aa, bb))
    # in run order aa.a, bb.b, aa.c: bb waits for aa; aa waiting for bb too would deadlock, so aa reads bb's
    # table as last published
    assert [d.qualified_name for d in pipe.inputs("msp_bb")] == ["analytics.t_margin"]
    assert [d.qualified_name for d in pipe.inputs("msp_aa")] == ["processed.invoices"]


def test_asset_uris_are_the_table_locations_in_the_lake():
    assert orch.dataset_uri("processed.tickets", "/srv/lake") == "file:///srv/lake/processed/tickets"
    assert orch.dataset_uri("processed.tickets", "s3://b/lake/") == "s3://b/lake/processed/tickets"
    assert orch.event_asset_uri("a.b.c", "s3://b/lake") == "s3://b/lake/events/outbox/event_type=a.b.c"
    assert orch.inbox_asset_uri("cpi", "/srv/lake") == "file:///srv/lake/events/inbox/agent=cpi"


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"params": {"start": "2024-03-01", "end": "2024-03-03"}, "triggering_dates": ["2024-01-01"]},
     ["2024-03-01", "2024-03-02", "2024-03-03"]),
    ({"params": {"start": "2024-03-01", "end": None}}, ["2024-03-01"]),
    ({"triggering_dates": ["2024-03-02", "2024-03-01", "2024-03-02"],
      "interval_start": datetime(2024, 5, 1, tzinfo=UTC)}, ["2024-03-01", "2024-03-02"]),
    ({"interval_start": datetime(2024, 3, 1, tzinfo=UTC), "interval_end": datetime(2024, 3, 2, tzinfo=UTC)},
     ["2024-03-01"]),
    ({"interval_start": datetime(2024, 3, 4, tzinfo=UTC), "interval_end": datetime(2024, 3, 11, tzinfo=UTC)},
     [f"2024-03-{d:02d}" for d in range(4, 11)]),
    ({"today": date(2024, 3, 5)}, ["2024-03-04"]),
])
def test_run_days_come_from_params_then_events_then_the_data_interval(kwargs, expected):
    assert [d.isoformat() for d in orch.resolve_dates(**kwargs)] == expected


def test_a_task_keeps_its_run_id_across_tries():
    a = orch.stage_run_id("msp_ingest", "scheduled__2024-03-01T00:00:00+00:00", "psa.ingest")
    assert a == orch.stage_run_id("msp_ingest", "scheduled__2024-03-01T00:00:00+00:00", "psa.ingest")
    assert a != orch.stage_run_id("msp_ingest", "scheduled__2024-03-02T00:00:00+00:00", "psa.ingest")
    assert a != orch.stage_run_id("msp_ingest", "scheduled__2024-03-01T00:00:00+00:00", "crm.ingest")
    assert a.startswith("af-msp_ingest.psa.ingest-") and ":" not in a and "+" not in a


def test_glue_arguments_round_trip_through_the_entry_point(settings):
    aws = settings.with_overrides(profile="aws", lake_root="s3://lake-bucket/lake",
                                  landing_root="s3://lake-bucket/landing",
                                  glue_scripts_location="s3://lake-bucket/scripts/")
    args = orch.glue_arguments(aws, "cpi.margin", [date(2024, 3, 2), date(2024, 3, 1)], {"sources": ["psa"]},
                               "af-x-1")
    assert args == {"--stage": "cpi.margin", "--dates": "2024-03-01,2024-03-02", "--lake_root": "s3://lake-bucket/lake",
                    "--landing_root": "s3://lake-bucket/landing", "--run_id": "af-x-1",
                    "--params": '{"sources": ["psa"]}', "--msp_profile": "aws"}
    assert set(args) == {f"--{a}" for a in orch.GLUE_ARGUMENTS}
    assert orch.glue_job_name(aws) == "msp-stage-runner"
    assert orch.glue_job_name(aws.with_overrides(glue_job_prefix="msp-dev-")) == "msp-dev-stage-runner"
    assert orch.glue_script_location(aws) == "s3://lake-bucket/scripts/glue_entry.py"
    # Glue passes the job's default arguments (infra/stack.py) first and its own ones too
    defaults = ["--msp_profile", "aws", "--lake_root", "s3://other/lake", "--glue_database_prefix", "msp_dev"]
    parsed = parse_arguments(["--JOB_NAME", "msp-stage-runner", *defaults, *[x for kv in args.items() for x in kv],
                              "--job-bookmark-option=job-bookmark-disable"])
    assert (parsed.stage, parsed.dates, parsed.lake_root, parsed.params, parsed.run_id, parsed.profile) == (
        "cpi.margin", (date(2024, 3, 1), date(2024, 3, 2)), "s3://lake-bucket/lake", {"sources": ["psa"]}, "af-x-1",
        "aws")
    assert parsed.glue_database_prefix == "msp_dev"


def test_glue_runner_needs_a_scripts_location(settings):
    from lakehouse.config import ConfigError

    with pytest.raises(ConfigError, match="glue_scripts_location"):
        orch.glue_script_location(settings)


# ---- a stage run and its events ------------------------------------------------------------------------
@pytest.fixture
def agent_zz(tmp_path):
    """A throwaway agent that counts raw tickets per day, emits an event per busy day and consumes it."""
    pkg = tmp_path / "pkg"
    info = harness.write_agent_package(pkg, "zz", reads=("raw.tickets",), handler=True)
    with harness.agent_on_path(pkg, info["package"]):
        yield info


def test_only_new_event_ids_are_reported_per_type_and_per_consuming_agent(agent_zz, tmp_path):
    from lakehouse.synth import generate

    home = tmp_path / "home"
    cfg = make_settings(home)
    generate(scale="tiny", seed=5, landing_root=home / "landing", truth_root=tmp_path / "truth", start=DAY, days=1)
    ingest = orch.run_stage(cfg, "ingest", [DAY], params={"sources": ["psa"]}, run_id="run-i",
                            refresh_catalog=False)
    assert ingest["ok"] and ingest["counts"]["raw.tickets"]["rows_out"] > 0
    assert orch.outlet_extra(ingest, "raw.tickets")["rows"] == ingest["counts"]["raw.tickets"]["rows_out"]
    assert orch.outlet_extra(ingest, "raw.tickets")["dates"] == [DAY.isoformat()]
    event_type = agent_zz["event_type"]
    first = orch.run_stage(cfg, "zz.count", [DAY], run_id="run-a", refresh_catalog=False)
    assert first["ok"] and first["new"] == {orch.OUTBOX: {event_type: {"rows": 1, "dates": [DAY.isoformat()]}}}
    routed = orch.run_stage(cfg, "events.dispatch", [DAY], run_id="run-b", refresh_catalog=False)
    assert routed["ok"] and routed["new"] == {orch.INBOX: {"zz": {"rows": 1, "dates": [DAY.isoformat()]}}}
    # a rerun of the same day: same deterministic ids, nothing new, nothing triggered
    cfg_again = make_settings(home, MSP_SKIP_UNCHANGED="false")  # really run it, not "unchanged"
    again = orch.run_stage(cfg_again, "zz.count", [DAY], run_id="run-c", refresh_catalog=False)
    assert again["ok"] and again["status"] == "ok" and again["new"] == {orch.OUTBOX: {}}
    # it computed the event again, found the partition already holding it, and committed nothing
    assert again["counts"][orch.OUTBOX]["rows_out"] == 0
    assert any("1 event(s), unchanged" in n for n in again["counts"][orch.OUTBOX]["notes"])
    assert orch.run_stage(cfg_again, "events.dispatch", [DAY], run_id="run-d",
                          refresh_catalog=False)["new"] == {orch.INBOX: {}}
    # the result is in the lake for the Glue runner's record step
    stored = orch.read_stage_result(cfg, "run-a")
    assert stored["new"] == first["new"] and stored["stage"] == "zz.count" and stored["kind"] == "transform"
    assert orch.new_events(stored) == {"events": {event_type: {"rows": 1, "dates": [DAY.isoformat()]}},
                                       "inbox": {}}


def test_a_failed_stage_is_reported_and_check_raises(tmp_path):
    pkg = tmp_path / "pkg"
    info = harness.write_agent_package(pkg, "zz", fail="margin input missing")
    with harness.agent_on_path(pkg, info["package"]):
        cfg = make_settings(tmp_path / "home")
        result = orch.run_stage(cfg, "zz.count", [DAY], run_id="run-x", refresh_catalog=False)
    assert not result["ok"] and result["status"] == "failed"
    assert result["errors"] == ["zz.count: RuntimeError: margin input missing"]
    with pytest.raises(orch.StageFailed, match=r"zz.count failed for 2024-01-01.*_meta/runs/run-x.json"):
        orch.check(result)
    with pytest.raises(orch.StageFailed, match="unknown stage"):
        orch.run_stage(cfg, "zz.count", [DAY])  # the agent is gone again

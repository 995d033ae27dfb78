"""How stages become DAGs, which days a run processes, and what a stage run reports (no Airflow needed)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

import schemas
from lakehouse import orchestration as orch
from lakehouse import stages as registry
from lakehouse.glue_entry import parse_arguments
from lakehouse.stages import Stage, stage
from schemas import Column, Dataset


def st(name, agent="cpi", reads=(), writes=(), after=()) -> Stage:
    return Stage(name, agent, orch._not_loaded, tuple(reads), tuple(writes), tuple(after))


def analytics(name: str, owner: str) -> Dataset:
    return Dataset(name=name, zone="analytics/kpi-metrics", owner=owner, description="test",
                   columns=(Column("client_id", "string"),))


@pytest.fixture
def catalog(monkeypatch):
    """The real declarations plus a few analytics and model tables of imaginary agents."""
    extra = {d.qualified_name: d for d in (analytics("t_margin", "cpi"), analytics("t_pipeline", "spo"),
                                            analytics("t_churn_scores", "cpi"))}
    extra["ml-models.t_churn_model"] = Dataset(name="t_churn_model", zone="ml-models", owner="cpi",
                                               description="test", columns=(Column("version", "string"),))
    full = {**schemas.catalog(), **extra}
    monkeypatch.setattr(schemas, "catalog", lambda: full)
    return full


STAGES = [
    st("ingest", "platform", writes=["raw.*", "quarantine.rejected_files"]),
    st("quality", "platform", reads=["raw.*"], writes=["processed.*", "quarantine.*"]),
    st("events.dispatch", "platform", reads=["events.outbox"], writes=["events.inbox"]),
    st("cpi.margin", reads=["processed.invoices", "processed.time_entries"], writes=["analytics.t_margin"]),
    st("cpi.alerts", reads=["analytics.t_margin", "events.inbox"], writes=["events.outbox"]),
    st("cpi.churn_train", reads=["analytics.t_margin"], writes=["ml-models.t_churn_model"]),
    st("cpi.churn_score", reads=["analytics.t_margin", "ml-models.t_churn_model"],
       writes=["analytics.t_churn_scores"]),
    st("spo.pipeline", "spo", reads=["processed.tickets", "analytics.t_margin"], writes=["analytics.t_pipeline"]),
]


def test_stages_are_split_into_dags_by_role_and_naming_convention(catalog):
    pipe = orch.Pipeline(STAGES)
    assert {s.name: pipe.dag_of(s) for s in STAGES} == {
        "ingest": "msp_ingest", "quality": "msp_ingest", "events.dispatch": "msp_events",
        "cpi.margin": "msp_cpi", "cpi.alerts": "msp_cpi", "cpi.churn_train": "msp_train",
        "cpi.churn_score": "msp_cpi", "spo.pipeline": "msp_spo"}
    assert [s.kind for s in STAGES[-4:-1]] == ["transform", "train", "score"]
    assert sorted(pipe.agent_dags()) == ["cpi", "spo"] and list(pipe.training) == ["cpi"]
    # scoring runs in the agent's DAG, in run order: after its features, before what reads the scores
    assert [s.name for s in pipe.agent_dags()["cpi"]] == ["cpi.margin", "cpi.alerts", "cpi.churn_score"]


def test_a_wildcard_write_covers_only_tables_its_agent_owns_and_no_stage_names(catalog, monkeypatch):
    cpi_table = Dataset(name="client_margin", zone="processed", owner="cpi", description="t",
                        columns=(Column("client_id", "string"),))
    monkeypatch.setattr(schemas, "catalog", lambda: {**catalog, cpi_table.qualified_name: cpi_table})
    stages = [*STAGES, st("cpi.client_margin", writes=["processed.client_margin"])]
    pipe = orch.Pipeline(stages)
    quality = {d.qualified_name for d in pipe.outputs(stages[1])}
    assert "processed.tickets" in quality and "quarantine.tickets" in quality
    assert "processed.client_margin" not in quality
    assert pipe.producers["processed.client_margin"] == "msp_cpi"
    assert pipe.producers["processed.tickets"] == "msp_ingest"


def test_dags_wait_for_what_other_dags_produce_never_for_models_or_events(catalog):
    pipe = orch.Pipeline(STAGES)
    assert [d.qualified_name for d in pipe.inputs("msp_cpi")] == ["processed.invoices", "processed.time_entries"]
    assert [d.qualified_name for d in pipe.inputs("msp_spo")] == ["analytics.t_margin", "processed.tickets"]
    # nothing waits for the weekly model
    assert not any(d.zone_root == "ml-models" for dag_id in pipe.by_dag for d in pipe.inputs(dag_id))
    assert pipe.reads_inbox("msp_cpi") and not pipe.reads_inbox("msp_spo")
    assert pipe.inputs("msp_ingest") == []


def test_schedules_that_would_wait_on_each_other_are_broken(catalog):
    stages = [  # in run order: CPI feeds SPO, and a later CPI stage reads SPO's output
        st("quality", "platform", reads=["raw.*"], writes=["processed.*"]),
        st("cpi.a", reads=["processed.invoices"], writes=["analytics.t_margin"]),
        st("spo.b", "spo", reads=["analytics.t_margin"], writes=["analytics.t_pipeline"]),
        st("cpi.c", reads=["analytics.t_pipeline"], writes=["analytics.t_churn_scores"]),
    ]
    pipe = orch.Pipeline(stages)
    assert [d.qualified_name for d in pipe.inputs("msp_spo")] == ["analytics.t_margin"]
    # CPI waiting for SPO too would deadlock: it reads SPO's table as last published
    assert [d.qualified_name for d in pipe.inputs("msp_cpi")] == ["processed.invoices"]


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


def test_manifest_is_rebuilt_once_when_stage_sources_change(tmp_path, monkeypatch):
    committed = {"version": 1, "fingerprint": "old", "stages": [orch.stage_record(STAGES[0])]}
    path = tmp_path / "stage_manifest.json"
    orch.write_manifest(path, committed)
    monkeypatch.setenv(orch.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(orch, "fingerprint", lambda: "new")
    built = []

    def regenerate(target):
        built.append(target)
        orch.write_manifest(target, {**committed, "fingerprint": "new", "stages": [orch.stage_record(STAGES[1])]})
        return json.loads(target.read_text())

    monkeypatch.setattr(orch, "_regenerate", regenerate)
    assert [s.name for s in orch.load_stages(path)] == ["quality"]
    assert [s.name for s in orch.load_stages(path)] == ["quality"] and len(built) == 1  # cached
    monkeypatch.setattr(orch, "fingerprint", lambda: "other")
    assert [s.name for s in orch.stages_from_manifest(orch.load_manifest(path, refresh=False))] == ["ingest"]
    monkeypatch.setattr(orch, "fingerprint", lambda: "old")
    assert orch.load_manifest(path) == committed


# ---- a stage run and its events ------------------------------------------------------------------------
@pytest.fixture
def event_stages(settings):
    """A producer writing CPI events and the real dispatcher, with one route."""
    from lakehouse import events

    def produce(ctx):
        found = ctx.params.get("subjects", [])
        evs = [events.make_event("client.profitability.changed", "cpi.margin", f"client:{c}", date(2024, 3, 1),
                                 "2024-02", "tier_down",
                                 {"client_id": c, "period": "2024-02", "old_margin_pct": 30.0, "new_margin_pct": 10.0,
                                  "old_tier": "B", "new_tier": "C", "reason": "tier_down"},
                                 {"metric": "margin_pct", "value": 10.0, "threshold": 15, "source_rows": []})
               for c in found]
        events.write_outbox(ctx, "client.profitability.changed", evs, ["2024-03-01"])

    stage("t.produce", agent="cpi", writes=[orch.OUTBOX])(produce)
    routes = {"client.profitability.changed": ["ram", "spo"]}
    values = {**settings.values, "events": {**settings.values.get("events", {}), "routes": routes}}
    yield type(settings)(values, settings.sources)
    registry._REGISTRY.pop("t.produce", None)


def test_only_new_event_ids_are_reported_per_type_and_per_target_agent(event_stages):
    cfg, day = event_stages, [date(2024, 3, 1)]
    first = orch.run_stage(cfg, "t.produce", day, params={"subjects": ["C1", "C2"]}, run_id="run-a")
    assert first["ok"] and first["new"] == {orch.OUTBOX: {"client.profitability.changed":
                                                          {"rows": 2, "dates": ["2024-03-01"]}}}
    routed = orch.run_stage(cfg, "events.dispatch", day, run_id="run-b")
    assert routed["new"] == {orch.INBOX: {"ram": {"rows": 2, "dates": ["2024-03-01"]},
                                          "spo": {"rows": 2, "dates": ["2024-03-01"]}}}
    # a rerun of the same day: same deterministic ids, nothing new, nothing triggered
    again = orch.run_stage(cfg, "t.produce", day, params={"subjects": ["C1", "C2"]}, run_id="run-c")
    assert again["new"] == {orch.OUTBOX: {}}
    assert orch.run_stage(cfg, "events.dispatch", day, run_id="run-d")["new"] == {orch.INBOX: {}}
    # one more finding: only it is new, for both targets
    orch.run_stage(cfg, "t.produce", day, params={"subjects": ["C1", "C2", "C3"]}, run_id="run-e")
    assert orch.run_stage(cfg, "events.dispatch", day, run_id="run-f")["new"][orch.INBOX] == {
        "ram": {"rows": 1, "dates": ["2024-03-01"]}, "spo": {"rows": 1, "dates": ["2024-03-01"]}}
    # the result is in the lake for the Glue runner's record step, with the outbox row counts
    stored = orch.read_stage_result(cfg, "run-e")
    assert stored["counts"][orch.OUTBOX]["rows_out"] == 3
    assert orch.outlet_extra(stored, orch.OUTBOX)["rows"] == 3


def test_a_failed_stage_is_reported_and_check_raises(settings):
    def boom(ctx):
        raise ValueError("margin input missing")

    stage("t.boom", agent="cpi")(boom)
    try:
        result = orch.run_stage(settings, "t.boom", [date(2024, 3, 1)], run_id="run-x")
    finally:
        registry._REGISTRY.pop("t.boom", None)
    assert not result["ok"] and result["errors"] == ["t.boom: ValueError: margin input missing"]
    with pytest.raises(orch.StageFailed, match=r"t.boom failed for 2024-03-01.*_meta/runs/run-x.json"):
        orch.check(result)

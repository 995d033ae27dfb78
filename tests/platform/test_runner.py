"""The stage registry and runner: stages plug in by declaration, run in dependency order, and a
failing stage skips only what depends on it."""

from __future__ import annotations

import json
from datetime import date

import pytest

from lakehouse import stages as registry
from lakehouse.runner import run_pipeline
from lakehouse.stages import StageError, plan, stage


@pytest.fixture
def scratch_stages():
    added: list[str] = []

    def add(name, **kw):
        func = kw.pop("func")
        stage(name, agent=kw.pop("agent", "cpi"), **kw)(func)
        added.append(name)

    yield add
    for name in added:
        registry._REGISTRY.pop(name, None)


def test_stages_are_ordered_by_what_they_read_and_write(scratch_stages):
    calls = []
    scratch_stages("t.report", reads=["analytics.t_margin"], writes=["analytics.t_report"],
                   func=lambda ctx: calls.append("report"))
    scratch_stages("t.margin", reads=["processed.*"], writes=["analytics.t_margin"],
                   func=lambda ctx: calls.append("margin"))
    names = [s.name for s in plan(names=["t.report", "t.margin"])]
    assert names == ["t.margin", "t.report"]
    full = [s.name for s in plan()]
    assert full.index("ingest") < full.index("t.margin") < full.index("t.report")


def test_a_cycle_is_refused(scratch_stages):
    scratch_stages("t.a", reads=["x.b"], writes=["x.a"], func=lambda ctx: None)
    scratch_stages("t.b", reads=["x.a"], writes=["x.b"], func=lambda ctx: None)
    with pytest.raises(StageError, match="cycle"):
        plan(names=["t.a", "t.b"])


def test_unknown_stage_names_are_listed():
    with pytest.raises(StageError, match="unknown stage"):
        plan(names=["no.such.stage"])


def test_failure_skips_dependents_only_and_is_reported(settings, scratch_stages):
    ran = []

    def boom(ctx):
        raise ValueError("margin input missing")

    scratch_stages("t.margin", reads=["processed.t_none"], writes=["analytics.t_margin"], func=boom)
    scratch_stages("t.report", reads=["analytics.t_margin"], writes=["analytics.t_report"],
                   func=lambda ctx: ran.append("report"))
    scratch_stages("t.other", reads=["processed.t_none"], writes=["analytics.t_other"], agent="dsa",
                   func=lambda ctx: ran.append("other"))
    summary = run_pipeline(settings, [date(2024, 1, 1)], stages=["t.margin", "t.report", "t.other"],
                           refresh_catalog=False)
    status = {s.name: (s.status, s.error) for s in summary.stages}
    assert status["t.margin"] == ("failed", "ValueError: margin input missing")
    assert status["t.report"] == ("skipped", "depends on failed stage t.margin")
    assert status["t.other"][0] == "ok" and ran == ["other"]
    assert not summary.ok
    report = json.loads((settings.home / "lake" / "_meta" / "runs" / f"{summary.run_id}.json").read_text())
    assert report["ok"] is False
    assert [(s["name"], s["status"]) for s in report["stages"]] == [(s.name, s.status) for s in summary.stages]


def test_ingestion_runs_through_the_registry_and_counts_rows(settings):
    landing = settings.home / "landing" / "psa" / "nothing"
    landing.mkdir(parents=True)
    summary = run_pipeline(settings, [date(2024, 1, 1)], stages=["ingest"])
    assert [s.name for s in summary.stages] == ["ingest"]
    assert summary.ok
    assert (settings.duckdb_path).exists()

"""A stage that fails after publishing part of its outputs (the quality gate refusing one dataset publishes
the others): the stages that read none of what it withheld still run, the others are skipped and say which
table they missed, and a stage that names it in ``after`` is skipped as before. The stages belong to a
throwaway agent written here (``tmppf``)."""

from __future__ import annotations

from datetime import date

import pytest

from lakehouse.runner import run_pipeline
from tests.agent_package import write_package
from tests.conftest import make_settings

DAY = date(2024, 1, 2)
DECLARATION = '''
from lakehouse.agents import Agent, Stage

AGENT = Agent(
    name="tmppf", title="Partial failure", package=__name__, summary="a stage that publishes part of its outputs",
    stages=(
        Stage("tmppf.produce", "tmppf.jobs:produce", kind="transform",
              writes=("analytics.tmppf_a", "analytics.tmppf_b"), description="Publishes b, withholds a."),
        Stage("tmppf.reads_a", "tmppf.jobs:reads_a", kind="transform", reads=("analytics.tmppf_a",),
              writes=("analytics.tmppf_c",), description="Reads a."),
        Stage("tmppf.reads_b", "tmppf.jobs:reads_b", kind="transform", reads=("analytics.tmppf_b",),
              description="Reads b."),
        Stage("tmppf.reads_c", "tmppf.jobs:reads_c", kind="transform", reads=("analytics.tmppf_c",),
              description="Reads what reads_a writes."),
        Stage("tmppf.ordered", "tmppf.jobs:ordered", kind="transform", after=("tmppf.produce",),
              description="Runs after produce, reading nothing of it."),
    ),
)
'''
JOBS = '''
import pyarrow as pa


class Withheld(RuntimeError):
    def __init__(self, message, withheld=None):
        super().__init__(message)
        self.withheld = withheld


def produce(ctx):
    ctx.write("analytics.tmppf_b", pa.table({"v": [1]}))
    raise Withheld("a refused", withheld=["analytics.tmppf_a"])


def reads_a(ctx):
    ctx.write("analytics.tmppf_c", pa.table({"v": [len(ctx.read_arrow("analytics.tmppf_a"))]}))


def reads_b(ctx):
    assert ctx.read_arrow("analytics.tmppf_b").num_rows == 1


def reads_c(ctx):
    ctx.read_arrow("analytics.tmppf_c")


def ordered(ctx):
    pass
'''


def dataset(name: str) -> str:
    return f"""
name: {name}
zone: analytics/kpi-metrics
owner: tmppf
description: A throwaway table.
partition_by: []
columns:
  - {{name: v, type: long, nullable: false}}
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    import sys

    from lakehouse import agents
    from lakehouse.environment import forget_catalogs

    root = write_package(tmp_path / "site", "tmppf", {
        "__init__.py": DECLARATION, "jobs.py": JOBS,
        **{f"datasets/analytics/tmppf_{n}.yaml": dataset(f"tmppf_{n}") for n in ("a", "b", "c")}})
    monkeypatch.syspath_prepend(str(root))
    agents.reset()
    forget_catalogs()
    yield tmp_path / "home"
    for name in [m for m in sys.modules if m == "tmppf" or m.startswith("tmppf.")]:
        del sys.modules[name]
    agents.reset()
    forget_catalogs()


@pytest.mark.parametrize("workers", [1, 2])
def test_what_a_failed_stage_withheld_skips_its_readers_and_only_them(home, workers):
    settings = make_settings(home, MSP_QUALITY__CHECKPOINT="off")
    summary = run_pipeline(settings, [DAY], stages=["tmppf.produce", "tmppf.reads_a", "tmppf.reads_b",
                                                    "tmppf.reads_c", "tmppf.ordered"],
                           refresh_catalog=False, workers=workers)
    status = {s.name: (s.status, s.error) for s in summary.stages}
    assert status["tmppf.produce"] == ("failed", "Withheld: a refused")
    assert {s.name: s.withheld for s in summary.stages}["tmppf.produce"] == ["analytics.tmppf_a"]
    assert status["tmppf.reads_a"] == (
        "skipped", "depends on failed stage tmppf.produce, which did not publish analytics.tmppf_a")
    assert status["tmppf.reads_b"] == ("ok", None)
    assert status["tmppf.reads_c"] == ("skipped", "depends on failed stage tmppf.reads_a")
    assert status["tmppf.ordered"] == ("skipped", "depends on failed stage tmppf.produce")
    assert not summary.ok


def test_a_run_of_stages_lists_what_each_published_and_check_names_the_failed_one(home):
    """What a DAG-wide Airflow task (``airflow.tasks = "dag"``) emits assets for: every output of a stage that
    ran, the outputs a failed stage published, nothing it withheld and nothing of a skipped stage."""
    from lakehouse import orchestration as orch

    settings = make_settings(home, MSP_QUALITY__CHECKPOINT="off")
    names = ["tmppf.produce", "tmppf.reads_a", "tmppf.reads_b", "tmppf.reads_c", "tmppf.ordered"]
    result = orch.run_stages(settings, names, [DAY], run_id="run-pf", refresh_catalog=False, workers=2)
    assert {n: v["status"] for n, v in result["stages"].items()} == {
        "tmppf.produce": "failed", "tmppf.reads_a": "skipped", "tmppf.reads_b": "ok", "tmppf.reads_c": "skipped",
        "tmppf.ordered": "skipped"}
    assert result["stages"]["tmppf.produce"]["published"] == ["analytics.tmppf_b"]
    assert orch.published(result) == ["analytics.tmppf_b"]
    assert result["status"] == "failed" and not result["ok"]
    extra = orch.outlet_extra(result, "analytics.tmppf_b")
    assert (extra["stage"], extra["status"], extra["rows"]) == ("tmppf.produce", "failed", 1)
    assert orch.read_stage_result(settings, "run-pf")["stages"] == result["stages"]
    with pytest.raises(orch.StageFailed, match=r"^stage tmppf.produce failed for 2024-01-02: tmppf.produce: "
                                               r"Withheld: a refused; ") as failed:
        orch.check(result)
    assert "tmppf.ordered: depends on failed stage tmppf.produce;" in str(failed.value)
    ok = orch.run_stages(settings, ["tmppf.ordered"], [DAY], run_id="run-ok", refresh_catalog=False)
    assert ok["ok"] and ok["status"] == "ok" and orch.published(ok) == [] and ok["stage"] == "tmppf.ordered"
    orch.check(ok)

"""Which ready stage the workers take first: the one with the longest chain of expected seconds after it (its
*bottom level*). On a lake where the stages never ran every stage weighs 1, so the head of the longest chain
goes first; afterwards each stage weighs the seconds it took last time, so a slow stage with nothing after it
goes before a chain of quick ones. The stages belong to a throwaway agent written here (``tmpsch``)."""

from __future__ import annotations

from datetime import date

import pytest

from lakehouse.runner import StageObserver, run_pipeline
from tests.agent_package import write_package
from tests.conftest import make_settings

DAY = date(2024, 1, 2)
DECLARATION = '''
from lakehouse.agents import Agent, Stage

AGENT = Agent(
    name="tmpsch", title="Scheduling", package=__name__, summary="a chain of quick stages and a slow one",
    stages=(
        Stage("tmpsch.a_slow", "tmpsch.jobs:slow", kind="transform", description="Slow, nothing after it."),
        Stage("tmpsch.b_quick", "tmpsch.jobs:quick", kind="transform", description="Quick, nothing after it."),
        Stage("tmpsch.z1", "tmpsch.jobs:z1", kind="transform", writes=("analytics.tmpsch_z1",),
              description="Head of a chain."),
        Stage("tmpsch.z2", "tmpsch.jobs:z2", kind="transform", reads=("analytics.tmpsch_z1",),
              writes=("analytics.tmpsch_z2",), description="Middle of the chain."),
        Stage("tmpsch.z3", "tmpsch.jobs:z3", kind="transform", reads=("analytics.tmpsch_z2",),
              description="End of the chain."),
    ),
)
'''
JOBS = '''
import time

import pyarrow as pa


def slow(ctx):
    time.sleep(1.5)


def quick(ctx):
    pass


def z1(ctx):
    ctx.write("analytics.tmpsch_z1", pa.table({"v": [1]}))


def z2(ctx):
    ctx.write("analytics.tmpsch_z2", pa.table({"v": [len(ctx.read_arrow("analytics.tmpsch_z1"))]}))


def z3(ctx):
    ctx.read_arrow("analytics.tmpsch_z2")
'''


def dataset(name: str) -> str:
    return f"""
name: {name}
zone: analytics/kpi-metrics
owner: tmpsch
description: A throwaway table.
partition_by: []
columns:
  - {{name: v, type: long, nullable: false}}
"""


class Starts(StageObserver):
    def __init__(self):
        self.started: list[str] = []

    def stage_started(self, stage, index, total):
        self.started.append(stage.name)


@pytest.fixture
def home(tmp_path, monkeypatch):
    import sys

    from lakehouse import agents
    from lakehouse.environment import forget_catalogs

    root = write_package(tmp_path / "site", "tmpsch", {
        "__init__.py": DECLARATION, "jobs.py": JOBS,
        **{f"datasets/analytics/tmpsch_{n}.yaml": dataset(f"tmpsch_{n}") for n in ("z1", "z2")}})
    monkeypatch.syspath_prepend(str(root))
    agents.reset()
    forget_catalogs()
    yield tmp_path / "home"
    for name in [m for m in sys.modules if m == "tmpsch" or m.startswith("tmpsch.")]:
        del sys.modules[name]
    agents.reset()
    forget_catalogs()


def test_the_longest_chain_starts_first_then_what_took_longest(home):
    settings = make_settings(home, MSP_QUALITY__CHECKPOINT="off", MSP_PLATFORM__SKIP_UNCHANGED="false")
    stages = ["tmpsch.a_slow", "tmpsch.b_quick", "tmpsch.z1", "tmpsch.z2", "tmpsch.z3"]

    cold = Starts()
    summary = run_pipeline(settings, [DAY], stages=stages, observer=cold, refresh_catalog=False, workers=2)
    assert summary.ok, [(s.name, s.error) for s in summary.stages]
    # never ran: a chain of three weighs 3, a lone stage 1 (ties in plan order)
    assert cold.started[:2] == ["tmpsch.z1", "tmpsch.a_slow"], cold.started

    warm = Starts()
    summary = run_pipeline(settings, [DAY], stages=stages, observer=warm, refresh_catalog=False, workers=2)
    assert summary.ok and {s.status for s in summary.stages} == {"ok"}
    # now the slow stage weighs its 1.5 s, more than the whole chain of quick ones
    assert warm.started[0] == "tmpsch.a_slow", warm.started
    assert set(warm.started) == set(stages)

    one = Starts()  # a single worker runs the plan in its order
    assert run_pipeline(settings, [DAY], stages=stages, observer=one, refresh_catalog=False, workers=1).ok
    assert one.started == ["tmpsch.a_slow", "tmpsch.b_quick", "tmpsch.z1", "tmpsch.z2", "tmpsch.z3"]

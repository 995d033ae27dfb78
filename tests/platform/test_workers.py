"""Stages side by side (lakehouse/workers.py): independent stages run at the same time in forked workers, a
stage that depends on others waits for them, the run's ledger is the serial run's, and a stage that raises or
whose worker dies fails alone while the others finish.

The stages belong to a throwaway agent written here (``tmppar``): two writers of one table (different
partition values, as the agents' monitors share the event outbox), a stage after both, and one that raises or
kills its own process when its setting says so."""

from __future__ import annotations

import os
from datetime import date

import pytest

import schemas
from lakehouse.lake import Lake
from lakehouse.runner import run_pipeline
from tests.agent_package import write_package
from tests.conftest import make_settings

DAY = date(2024, 1, 2)
STAGES = ["tmppar.a", "tmppar.b", "tmppar.fail", "tmppar.join"]

DECLARATION = '''
from typing import Annotated, Literal
from pydantic import Field
from lakehouse.agents import Agent, Part, Stage
from lakehouse.config import Section

class Settings(Section):
    fail: Literal["no", "raise", "die"]
    hold_seconds: Annotated[float, Field(ge=0, le=10)]

AGENT = Agent(
    name="tmppar", title="Parallel stages", package=__name__, summary="stages that can run side by side",
    settings=Settings, defaults="settings.toml",
    stages=(
        Stage("tmppar.a", "tmppar.jobs:part_a", kind="transform", writes=("analytics.tmppar_parts",),
              description="Writes part a."),
        Stage("tmppar.b", "tmppar.jobs:part_b", kind="transform", writes=("analytics.tmppar_parts",),
              description="Writes part b."),
        Stage("tmppar.fail", "tmppar.jobs:fail", kind="transform", description="Fails when told to."),
        Stage("tmppar.join", "tmppar.jobs:join", kind="transform", reads=("analytics.tmppar_parts",),
              writes=("analytics.tmppar_total",), after=("tmppar.a", "tmppar.b"), description="Sums the parts."),
        Stage("tmppar.after", "tmppar.jobs:after", kind="dispatch", reads=("analytics.tmppar_total",),
              description="A serial stage after the parallel ones (it runs in the run's own process)."),
        Stage("tmppar.split", "tmppar.jobs:split", kind="gate", writes=("analytics.tmppar_parts",),
              parts="tmppar.jobs:parts", description="One stage whose run splits into parts x, y after x, z."),
    ),
)
'''
JOBS = '''
import os, signal, time
import pyarrow as pa

def _part(ctx, name, value):
    start = time.time()
    time.sleep(ctx.config.hold_seconds)
    ctx.write("analytics.tmppar_parts", pa.table({"part": [name], "value": [value], "pid": [os.getpid()],
                                                  "started": [start], "ended": [time.time()]}))
    ctx.warn(f"part {name} written")

def part_a(ctx):
    _part(ctx, "a", 3)

def part_b(ctx):
    _part(ctx, "b", 4)

def fail(ctx):
    if ctx.config.fail == "raise":
        raise ValueError("told to fail")
    if ctx.config.fail == "die":
        os.kill(os.getpid(), signal.SIGKILL)

def parts(ctx):
    from lakehouse.agents import Part
    return [Part("x", {"part": "x"}), Part("y", {"part": "y"}, after=("x",)), Part("z", {"part": "z"})]

def split(ctx):
    part = ctx.params["part"]
    if ctx.config.fail == "raise" and part == "x":
        raise ValueError("part x told to fail")
    _part(ctx, part, {"x": 1, "y": 2, "z": 3}[part])

def after(ctx):
    ctx.read_arrow("analytics.tmppar_total")

def join(ctx):
    parts = ctx.read_arrow("analytics.tmppar_parts").to_pylist()
    ctx.write("analytics.tmppar_total", pa.table({"parts": [len(parts)], "total": [sum(p["value"] for p in parts)]}))
'''
PARTS = '''
name: tmppar_parts
zone: analytics/kpi-metrics
owner: tmppar
description: One row per part, with the process and the time that wrote it.
primary_key: [part]
partition_by: [part]
columns:
  - {name: part, type: string, nullable: false}
  - {name: value, type: long, nullable: false}
  - {name: pid, type: long, nullable: false}
  - {name: started, type: double, nullable: false}
  - {name: ended, type: double, nullable: false}
'''
TOTAL = '''
name: tmppar_total
zone: analytics/kpi-metrics
owner: tmppar
description: The sum of the parts.
partition_by: []
columns:
  - {name: parts, type: long, nullable: false}
  - {name: total, type: long, nullable: false}
'''


@pytest.fixture
def agent(tmp_path, monkeypatch):
    import sys

    from lakehouse import agents
    from lakehouse.environment import forget_catalogs

    root = write_package(tmp_path / "site", "tmppar", {
        "__init__.py": DECLARATION, "jobs.py": JOBS, "settings.toml": 'fail = "no"\nhold_seconds = 1.0\n',
        "datasets/analytics/tmppar_parts.yaml": PARTS, "datasets/analytics/tmppar_total.yaml": TOTAL})
    monkeypatch.syspath_prepend(str(root))
    agents.reset()
    forget_catalogs()
    yield tmp_path / "home"
    sys.modules.pop("tmppar", None)
    sys.modules.pop("tmppar.jobs", None)
    agents.reset()
    forget_catalogs()


def run(home, workers, **env):
    settings = make_settings(home, MSP_QUALITY__CHECKPOINT="off", **env)
    summary = run_pipeline(settings, [DAY], stages=STAGES, refresh_catalog=False, workers=workers)
    lake = Lake.from_settings(settings)
    parts = {r["part"]: r for r in lake.read_arrow(schemas.get("analytics.tmppar_parts")).to_pylist()}
    total = lake.read_arrow(schemas.get("analytics.tmppar_total")).to_pylist()
    return summary, parts, total


def test_independent_stages_run_at_once_in_workers_and_the_ledger_is_the_serial_runs(agent, tmp_path):
    summary, parts, total = run(agent, workers=2)
    assert summary.ok, [(s.name, s.status, s.error) for s in summary.stages]
    a, b = parts["a"], parts["b"]
    assert {a["pid"], b["pid"]}.isdisjoint({os.getpid()}) and a["pid"] != b["pid"]
    assert a["started"] < b["ended"] and b["started"] < a["ended"], "a and b did not overlap in time"
    # the stage after both saw both parts
    assert total == [{"parts": 2, "total": 7}]
    # what the workers counted and warned came back to the run
    assert summary.counts["analytics.tmppar_parts"]["rows_out"] == 2
    assert summary.counts["analytics.tmppar_total"]["rows_out"] == 1
    assert sorted(w for w in summary.warnings if "part" in w) == ["[tmppar.a] part a written",
                                                                 "[tmppar.b] part b written"]
    assert [s.name for s in summary.stages][-1] == "tmppar.join"

    serial, serial_parts, serial_total = run(tmp_path / "serial", workers=1)
    assert serial.ok
    assert {r["pid"] for r in serial_parts.values()} == {os.getpid()}
    assert serial_total == total
    assert {k: {c: v[c] for c in ("part", "value")} for k, v in serial_parts.items()} == \
           {k: {c: v[c] for c in ("part", "value")} for k, v in parts.items()}
    strip = {k: {f: v for f, v in c.items() if f != "notes"} for k, c in summary.counts.items()}
    assert strip == {k: {f: v for f, v in c.items() if f != "notes"} for k, c in serial.counts.items()}


def test_ingestion_runs_in_a_worker_while_the_run_loads_the_workers_libraries(agent, tmp_path, monkeypatch):
    import json
    import time

    from lakehouse import ingest, workers

    marks = tmp_path / "ingest.json"
    real_ingest, real_warm, warmed = ingest.run, workers._warm, []

    def timed_ingest(ctx):
        start = time.time()
        time.sleep(0.5)
        real_ingest(ctx)
        marks.write_text(json.dumps({"pid": os.getpid(), "started": start, "ended": time.time()}))

    def timed_warm(ctx, stages, models=True):
        start = time.time()
        time.sleep(0.5)
        real_warm(ctx, stages, models=models)
        warmed.append((start, time.time(), models))

    monkeypatch.setattr(ingest, "run", timed_ingest)
    monkeypatch.setattr(workers, "_warm", timed_warm)
    settings = make_settings(agent, MSP_QUALITY__CHECKPOINT="off")
    summary = run_pipeline(settings, [DAY], stages=["ingest", "tmppar.a", "tmppar.b"], refresh_catalog=False,
                           workers=2)
    assert summary.ok, [(s.name, s.status, s.error) for s in summary.stages]
    assert summary.stages[0].name == "ingest"
    lead = json.loads(marks.read_text())
    # what every stage needs is loaded beside ingestion; the stages' own modules and model libraries after it
    (warm_start, warm_end, first_models), (_start, stages_loaded, second_models) = warmed
    assert (first_models, second_models) == (False, True)
    assert lead["pid"] != os.getpid()
    assert lead["started"] < warm_end and warm_start < lead["ended"], "ingestion did not overlap the loading"
    parts = Lake.from_settings(settings).read_arrow(schemas.get("analytics.tmppar_parts")).to_pylist()
    assert sorted(p["part"] for p in parts) == ["a", "b"]
    assert all(p["started"] >= lead["ended"] for p in parts), "a stage started before ingestion ended"
    assert all(p["started"] >= stages_loaded for p in parts), "a stage ran in a worker forked before the loading"
    assert lead["pid"] not in {p["pid"] for p in parts}, "the worker forked before the loading ran a stage"


def test_the_stages_modules_load_beside_the_first_parts_whose_workers_are_then_replaced(agent, monkeypatch):
    """After ingestion, the run loads the stages' own modules while the gate's parts (which need none of them)
    run; the workers that ran the parts are then replaced, so no stage after runs in a worker without them."""
    import time

    from lakehouse import workers

    real_warm, real_retire, warmed, retired = workers._warm, workers.WorkerPool._retire, [], []

    def timed_warm(ctx, stages, models=True):
        start = time.time()
        time.sleep(0.5)
        real_warm(ctx, stages, models=models)
        warmed.append((start, time.time(), models))

    def retire(pool, worker):
        retired.append(worker.pid)
        real_retire(pool, worker)

    monkeypatch.setattr(workers, "_warm", timed_warm)
    monkeypatch.setattr(workers.WorkerPool, "_retire", retire)
    settings = make_settings(agent, MSP_QUALITY__CHECKPOINT="off")
    summary = run_pipeline(settings, [DAY], stages=["ingest", "tmppar.split", "tmppar.join"],
                           refresh_catalog=False, workers=2)
    assert summary.ok, [(s.name, s.status, s.error) for s in summary.stages]
    parts = Lake.from_settings(settings).read_arrow(schemas.get("analytics.tmppar_parts")).to_pylist()
    (_s, _e, first_models), (loading, loaded, second_models) = warmed
    assert (first_models, second_models) == (False, True)
    assert any(p["started"] < loaded and loading < p["ended"] for p in parts), "the loading waited for the parts"
    forked_before = {p["pid"] for p in parts if p["started"] < loaded}
    assert forked_before and forked_before <= set(retired), "a worker forked before the loading was kept"
    assert Lake.from_settings(settings).read_arrow(schemas.get("analytics.tmppar_total")).to_pylist() == [
        {"parts": 3, "total": 6}]


@pytest.mark.parametrize("mode,error", [("raise", "ValueError: told to fail"),
                                        ("die", "the worker process running it died (killed by signal 9)")])
def test_a_stage_that_raises_or_whose_worker_dies_fails_alone(agent, mode, error):
    summary, parts, total = run(agent, workers=2, MSP_TMPPAR__FAIL=mode)
    status = {s.name: (s.status, s.error or "") for s in summary.stages}
    assert status["tmppar.fail"][0] == "failed" and status["tmppar.fail"][1].startswith(error)
    assert {n: s for n, (s, _e) in status.items() if n != "tmppar.fail"} == \
           {"tmppar.a": "ok", "tmppar.b": "ok", "tmppar.join": "ok"}, status
    assert sorted(parts) == ["a", "b"] and total == [{"parts": 2, "total": 7}]
    assert not summary.ok


def test_a_stage_declaring_parts_runs_them_side_by_side_in_their_order_as_one_stage(agent):
    settings = make_settings(agent, MSP_QUALITY__CHECKPOINT="off")
    summary = run_pipeline(settings, [DAY], stages=["tmppar.split"], refresh_catalog=False, workers=2)
    assert [(s.name, s.status) for s in summary.stages] == [("tmppar.split", "ok")]
    rows = {r["part"]: r for r in Lake.from_settings(settings).read_arrow(
        schemas.get("analytics.tmppar_parts")).to_pylist()}
    x, y, z = rows["x"], rows["y"], rows["z"]
    assert x["started"] < z["ended"] and z["started"] < x["ended"], "x and z did not overlap"
    assert y["started"] >= x["ended"], "y started before x, the part it runs after, ended"
    assert os.getpid() not in {x["pid"], y["pid"], z["pid"]}
    # one worker: the stage runs whole in the run's process (here: its function without parts' params fails)
    alone = run_pipeline(settings, [DAY], stages=["tmppar.split"], refresh_catalog=False, workers=1)
    assert alone.stages[0].status == "failed" and "KeyError" in alone.stages[0].error


def test_a_failed_part_fails_the_stage_and_skips_the_parts_after_it(agent):
    settings = make_settings(agent, MSP_QUALITY__CHECKPOINT="off", MSP_TMPPAR__FAIL="raise")
    summary = run_pipeline(settings, [DAY], stages=["tmppar.split"], refresh_catalog=False, workers=2)
    report = summary.stages[0]
    assert report.status == "failed"
    assert report.error == "x: ValueError: part x told to fail; y: after failed part x"
    parts = Lake.from_settings(settings).read_arrow(schemas.get("analytics.tmppar_parts")).column("part")
    assert parts.to_pylist() == ["z"]


@pytest.mark.parametrize("after", [[], ["tmppar.after"]], ids=["workers-last", "serial-stage-after"])
def test_audited_writes_in_workers_share_one_gx_project_run_after_run(agent, after, tmp_path, monkeypatch):
    """Workers create the Checkpoints of the datasets they write (two at once for one dataset here); a later
    run in the same process, whose new workers are forked from a Data Context that never saw them, finds
    them; Data Docs list the validations of both runs, whether they were built at the end of the run or, with
    a serial stage after the workers', beside it."""
    from lakehouse.quality import gx as gx_module
    from lakehouse.quality.gx import forget_projects, project

    early = tmp_path / "built-beside-the-serial-stages"
    real_build = gx_module.build_pending_docs

    def build_and_mark():
        early.touch()
        return real_build()

    monkeypatch.setattr(gx_module, "build_pending_docs", build_and_mark)
    forget_projects()
    settings = make_settings(agent)
    stages = ["tmppar.a", "tmppar.b", "tmppar.join", *after]
    first = run_pipeline(settings, [DAY], stages=stages, refresh_catalog=True, workers=2)
    second = run_pipeline(settings, [date(2024, 1, 3)], stages=stages, refresh_catalog=True, workers=2)
    for summary in (first, second):
        assert summary.ok, [(s.name, s.status, s.error) for s in summary.stages]
        assert any("audited 1 rows: Checkpoint analytics.tmppar_parts" in n
                   for n in summary.counts["analytics.tmppar_parts"]["notes"])
    forget_projects()  # the project as another process opens it
    gx = project(Lake.from_settings(settings))
    assert sorted(c.name for c in gx.context.checkpoints.all() if c.name.startswith("analytics.tmppar")) == \
           ["analytics.tmppar_parts", "analytics.tmppar_total"]
    pages = sorted(p.name for p in (gx.docs / "validations" / "analytics" / "tmppar_parts").rglob("*.html"))
    assert len(pages) == 4  # a and b in each of the two runs
    index = gx.index.read_text(encoding="utf-8")
    assert all(s.run_id in index for s in (first, second)), "the index lists both runs' validations"
    assert early.exists() == bool(after)
    forget_projects()


def test_a_large_run_ingests_source_by_source_beside_the_loading_and_every_source_lands(agent, monkeypatch):
    """Ingestion split by landing source (lakehouse.ingest.parts, forced here with a threshold of one byte):
    the parts run in the workers while the run loads what every stage needs (GX, then the stages' modules),
    ingestion reports one landing note per part, and every source's rows land as in one piece."""
    from datetime import timedelta
    from pathlib import Path

    from lakehouse import ingest, workers

    settings = make_settings(agent, MSP_QUALITY__CHECKPOINT="off")
    landing = Path(settings.landing_root)
    days = [DAY, DAY + timedelta(days=1)]
    for name, n in (("raw.tickets", 3), ("raw.focus_costs", 1)):
        ds = schemas.get(name)
        cols = [c.name for c in ds.columns]
        folder = landing / ds.source / ds.name
        folder.mkdir(parents=True, exist_ok=True)
        for day in days:
            lines = [",".join(cols)] + [",".join(f"{day}-{i}" if c in ds.primary_key else "" for c in cols)
                                        for i in range(n)]
            (folder / f"{ds.name}_{day}.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(ingest, "SPLIT_FROM_BYTES", 1)
    warmed, real_warm = [], workers._warm

    def recording_warm(ctx, stages, models=True):
        warmed.append(models)
        real_warm(ctx, stages, models=models)

    monkeypatch.setattr(workers, "_warm", recording_warm)
    summary = run_pipeline(settings, days, stages=["ingest", "tmppar.a", "tmppar.b"], refresh_catalog=False,
                           workers=2)
    assert summary.ok, [(s.name, s.status, s.error) for s in summary.stages]
    assert summary.stages[0].name == "ingest"
    notes = summary.counts["stage:ingest"]["notes"]
    assert len([n for n in notes if n.startswith("landing:")]) == 2  # a part per source
    lake = Lake.from_settings(settings)
    assert lake.read_arrow(schemas.get("raw.tickets")).num_rows == 6
    assert lake.read_arrow(schemas.get("raw.focus_costs")).num_rows == 2
    assert warmed[:2] == [False, True]  # GX beside the parts, the stages' modules after them

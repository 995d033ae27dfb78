"""The runner: declared order, failures that skip only what depends on them, stages that may only touch what
they declare, and skipping what has nothing new (a changed setting or input runs the stage again, telling it
what changed)."""

from __future__ import annotations

import json
from datetime import date

import pyarrow as pa
import pytest

import schemas
from lakehouse.lake import Lake
from lakehouse.runner import run_pipeline
from tests.conftest import make_settings

DAY = date(2024, 1, 2)


@pytest.fixture
def home(throwaway_agent, tmp_path):
    return tmp_path / "home"


def tickets(lake: Lake, rows: list[tuple[str, str, str]]) -> None:
    """Commit ``(ticket_id, client_id, dt)`` rows to processed.tickets (required columns filled with a
    placeholder of their type, the others null)."""
    import datetime as dt
    from decimal import Decimal

    ds = schemas.get("processed.tickets")
    n = len(rows)
    filler = {pa.string(): "x", pa.int32(): 0, pa.int64(): 0, pa.float64(): 0.0, pa.bool_(): False,
              pa.date32(): dt.date(2024, 1, 1), pa.timestamp("us", tz="UTC"): dt.datetime(2024, 1, 1, tzinfo=dt.UTC)}
    cols = {}
    for f in ds.arrow_schema():
        if f.nullable:
            cols[f.name] = pa.nulls(n, f.type)
        else:
            value = Decimal(0) if pa.types.is_decimal(f.type) else filler[f.type]
            cols[f.name] = pa.array([value] * n, f.type)
    cols["ticket_id"] = pa.array([r[0] for r in rows])
    cols["client_id"] = pa.array([r[1] for r in rows])
    cols["dt"] = pa.array([r[2] for r in rows])
    lake.replace(ds, pa.table(cols), run_id="seed", replace=[{"dt": r[2]} for r in rows])


def run(settings, **kw):
    summary = run_pipeline(settings, [DAY], stages=["tmpagent.count"], refresh_catalog=False, **kw)
    report = summary.stages[0]
    notes = [n for n in summary.counts.get("analytics.tmpagent_counts", {}).get("notes", []) if n.startswith("rebuild")]
    return report, notes


def test_a_stage_with_nothing_new_is_unchanged_and_a_change_runs_it_again(home):
    settings = make_settings(home)
    lake = Lake.from_settings(settings)
    tickets(lake, [("t1", "c1", "2024-01-01"), ("t2", "c1", "2024-01-02")])
    first, notes = run(settings)
    assert first.status == "ok" and notes == ["rebuild=True changed=None"]  # never ran: rebuild everything
    out = schemas.get("analytics.tmpagent_counts")
    assert sorted(lake.read_arrow(out).column("tickets").to_pylist()) == [1, 1]

    again, notes = run(settings)
    assert again.status == "unchanged" and notes == []

    tickets(lake, [("t3", "c2", "2024-01-02")])  # a new export of day 2: the input changed
    changed, notes = run(settings)
    assert changed.status == "ok" and notes == ["rebuild=False changed=['2024-01-02']"]

    retuned = make_settings(home, MSP_TMPAGENT__BUSY_THRESHOLD="7")  # a changed threshold: rebuild
    rebuilt, notes = run(retuned)
    assert rebuilt.status == "ok" and notes == ["rebuild=True changed=None"]

    forced, _ = run(make_settings(home, MSP_TMPAGENT__BUSY_THRESHOLD="7", MSP_SKIP_UNCHANGED="false"))
    assert forced.status == "ok"


def test_a_stage_may_not_read_what_it_does_not_declare(home):
    settings = make_settings(home, MSP_TMPAGENT__BUSY_THRESHOLD="99")
    tickets(Lake.from_settings(settings), [("t1", "c1", "2024-01-02")])
    report, _ = run(settings)
    assert report.status == "failed"
    assert "stage tmpagent.count may not read processed.clients: add it to the stage's reads" in report.error


def test_a_failed_stage_skips_only_what_depends_on_it_and_the_report_says_why(home):
    settings = make_settings(home, MSP_TMPAGENT__BUSY_THRESHOLD="99")
    tickets(Lake.from_settings(settings), [("t1", "c1", "2024-01-02")])
    summary = run_pipeline(settings, [DAY], stages=["tmpagent.count", "events.dispatch"], refresh_catalog=False)
    status = {s.name: (s.status, s.error) for s in summary.stages}
    assert status["tmpagent.count"][0] == "failed"
    assert status["events.dispatch"] == ("skipped", "depends on failed stage tmpagent.count")
    assert not summary.ok
    report = json.loads(Lake.from_settings(settings).read_text(f"_meta/runs/{summary.run_id}.json"))
    assert report["ok"] is False and report["stages"][0]["name"] == "tmpagent.count"


def test_a_second_whole_run_refuses_while_the_first_holds_the_lake_and_a_killed_holder_leaves_no_lock(home):
    import os
    import signal
    import subprocess
    import sys
    import time

    from lakehouse.runlock import LakeBusy

    settings = make_settings(home)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from tests.conftest import make_settings; from lakehouse.runlock import run_lock\n"
        f"s = make_settings(__import__('pathlib').Path({str(home)!r}))\n"
        "with run_lock(s, 'run-holder'):\n    print('held', flush=True); time.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True, cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LakeBusy, match=r"in use by run run-holder \(pid \d+ .* started 20"):
            run_pipeline(settings, [DAY], stages=["tmpagent.count"], refresh_catalog=False, exclusive=True)
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # killed: no finally, no cleanup
        holder.wait()
    time.sleep(0.1)
    summary = run_pipeline(settings, [DAY], stages=["events.dispatch"], refresh_catalog=False, exclusive=True)
    assert summary.ok
    assert summary.warnings[0].startswith("took over the lake from run run-holder")


def test_a_newly_promoted_model_runs_the_stage_that_loaded_the_old_one(home):
    """A stage that read a model's CURRENT pointer runs again when another version is promoted, even though no
    input changed (a newly trained model must be applied on the next day's run)."""
    settings = make_settings(home)
    lake = Lake.from_settings(settings)
    tickets(lake, [("t1", "c1", "2024-01-02")])
    assert run(settings)[0].status == "ok"  # the stage looks for the model: none promoted yet
    assert run(settings)[0].status == "unchanged"
    lake.write_text("ml-models/tmp-model/CURRENT.json", '{"version": "v1"}')
    assert run(settings)[0].status == "ok"
    assert run(settings)[0].status == "unchanged"
    lake.write_text("ml-models/tmp-model/CURRENT.json", '{"version": "v2"}')
    assert run(settings)[0].status == "ok"

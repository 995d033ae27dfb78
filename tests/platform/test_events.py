"""Events: validated envelopes with deterministic ids, an idempotent outbox, routing to agents."""

from __future__ import annotations

from datetime import date

import pytest

import schemas
from lakehouse.agents import registry
from lakehouse.context import RunContext
from lakehouse.events import EventError, dispatch, episode_id, make_event, write_outbox

EVIDENCE = {"metric": "margin_pct", "value": 12.5, "threshold": 20, "comparison": "<",
            "source_rows": [{"dataset": "processed.client_profitability_monthly",
                             "keys": {"client_id": "C1", "month": "2024-02"}}],
            "drivers": [{"factor": "labour_hours", "change": "+40%", "before": 10, "after": 14}]}


def margin_event(client="C1", period="2024-02", new=12.5):
    return make_event("client.profitability.changed", "cpi.margin_monitor", f"client:{client}", date(2024, 2, 29),
                      period, "tier_down", {"client_id": client, "period": period, "old_margin_pct": 41.0,
                                            "new_margin_pct": new, "old_tier": "silver", "new_tier": "at_risk",
                                            "reason": "tier_down"}, EVIDENCE)


def test_event_ids_are_deterministic_and_depend_on_subject_period_and_rule():
    a, b = margin_event(), margin_event(new=11.0)
    assert a["id"] == b["id"] and len(a["id"]) == 32
    assert margin_event(client="C2")["id"] != a["id"]
    assert margin_event(period="2024-03")["id"] != a["id"]


def test_invalid_events_are_refused_with_the_field_named():
    with pytest.raises(EventError, match="reason"):
        make_event("client.profitability.changed", "cpi.margin_monitor", "client:C1", date(2024, 2, 29), "2024-02",
                   "x", {"client_id": "C1", "period": "2024-02", "old_margin_pct": 1, "new_margin_pct": 1,
                         "old_tier": "a", "new_tier": "b", "reason": "because"}, EVIDENCE)
    with pytest.raises(EventError, match="threshold"):
        make_event("client.profitability.changed", "cpi.margin_monitor", "client:C1", date(2024, 2, 29), "2024-02",
                   "x", {"client_id": "C1", "period": "2024-02", "old_margin_pct": 1, "new_margin_pct": 1,
                         "old_tier": "a", "new_tier": "b", "reason": "tier_down"},
                   {"metric": "days", "value": 1, "source_rows": []})
    with pytest.raises(EventError, match=r"unknown event type 'client\.exploded'"):
        make_event("client.exploded", "cpi.margin_monitor", "client:C1", date(2024, 1, 1), "p", "r", {}, EVIDENCE)


def test_an_episode_ties_an_events_updates_together():
    opened = date(2024, 2, 29)
    episode = {"id": episode_id("client.profitability.changed", "client:C1", "tier_down", opened),
               "state": "opened", "opened": opened.isoformat()}
    e = make_event("client.profitability.changed", "cpi.margin_monitor", "client:C1", opened, "2024-02", "tier_down",
                   margin_event()["data"], EVIDENCE, episode=episode)
    assert e["episode"]["id"] == episode_id("client.profitability.changed", "client:C1", "tier_down", "2024-02-29")
    with pytest.raises(EventError, match="episode"):
        make_event("client.profitability.changed", "cpi.margin_monitor", "client:C1", opened, "2024-02", "tier_down",
                   margin_event()["data"], EVIDENCE, episode={**episode, "state": "forgotten"})


def test_rerun_writes_no_duplicate_events_and_dispatch_routes_once_per_agent(throwaway_agent, settings):
    days = [date(2024, 2, 29)]
    for _ in range(2):
        ctx = RunContext.create(settings, days)
        write_outbox(ctx, "client.profitability.changed", [margin_event(), margin_event("C2")], ["2024-02-29"])
        dispatch(ctx)
    outbox = ctx.lake.read_arrow(schemas.get("events.outbox")).to_pylist()
    assert sorted(e["subject"] for e in outbox) == ["client:C1", "client:C2"]
    inbox = ctx.lake.read_arrow(schemas.get("events.inbox")).to_pylist()
    routes = registry().routes["client.profitability.changed"]
    assert ("tmpagent", "tmpagent.on_margin") in routes
    assert sorted((r["agent"], r["handler"], r["subject"]) for r in inbox) == sorted(
        (a, h, s) for a, h in routes for s in ("client:C1", "client:C2"))
    # a rerun that no longer finds C2 withdraws its event for that day
    ctx = RunContext.create(settings, days)
    write_outbox(ctx, "client.profitability.changed", [margin_event()], ["2024-02-29"])
    dispatch(ctx)
    assert [e["subject"] for e in ctx.lake.read_arrow(schemas.get("events.outbox")).to_pylist()] == ["client:C1"]
    assert {r["subject"] for r in ctx.lake.read_arrow(schemas.get("events.inbox")).to_pylist()} == {"client:C1"}


def test_outbox_refuses_mixed_types_and_duplicate_ids(settings):
    ctx = RunContext.create(settings, [date(2024, 2, 29)])
    with pytest.raises(EventError, match="duplicate"):
        write_outbox(ctx, "client.profitability.changed", [margin_event(), margin_event()], ["2024-02-29"])
    with pytest.raises(EventError, match="outside the days"):
        write_outbox(ctx, "client.profitability.changed", [margin_event()], ["2024-03-01"])
    with pytest.raises(EventError, match="unknown event type"):
        write_outbox(ctx, "no.such.type", [margin_event()], ["2024-02-29"])


def test_a_failing_handler_leaves_dead_letters_and_a_redrive_resolves_them(throwaway_agent, settings, tmp_path):
    """A real handler that fails (the throwaway agent's, failing while a flag file exists): its events stay in
    events.dead_letters with the error, a second failure counts an attempt, and `msp events redrive` (the
    handler rerun over those days) resolves them; nothing is delivered twice."""

    from lakehouse.events import dead_letters
    from lakehouse.eventscli import redrive
    from lakehouse.lake import Lake
    from lakehouse.runner import run_pipeline

    flag = tmp_path / "fail"
    (throwaway_agent / "tmpagent" / "jobs.py").write_text(
        (throwaway_agent / "tmpagent" / "jobs.py").read_text().replace(
            "def on_margin(ctx):\n    pass",
            f"def on_margin(ctx):\n    import os\n    if os.path.exists({str(flag)!r}):\n"
            "        raise RuntimeError('planted handler failure')"))
    flag.write_text("")
    day = date(2024, 2, 29)
    ctx = RunContext.create(settings, [day])
    write_outbox(ctx, "client.profitability.changed", [margin_event(), margin_event("C2")], [day.isoformat()])
    stages = ["events.dispatch", "tmpagent.on_margin"]
    for attempt in (1, 2):
        run = run_pipeline(settings, [day], stages=stages, refresh_catalog=False)
        assert {s.name: s.status for s in run.stages}["tmpagent.on_margin"] == "failed"
        assert any("kept in events.dead_letters" in w for w in run.warnings)
        dead = dead_letters(Lake.from_settings(settings))
        assert sorted(r["subject"] for r in dead) == ["client:C1", "client:C2"]
        assert {(r["handler"], r["attempts"], r["status"]) for r in dead} == {("tmpagent.on_margin", attempt, "dead")}
        assert "RuntimeError: planted handler failure" in dead[0]["error"]
    flag.unlink()
    runs = redrive(settings)
    assert list(runs) == ["tmpagent.on_margin"] and runs["tmpagent.on_margin"].ok
    lake = Lake.from_settings(settings)
    assert dead_letters(lake) == []
    assert {r["status"] for r in dead_letters(lake, None)} == {"resolved"}
    inbox = lake.read_arrow(schemas.get("events.inbox")).to_pylist()
    assert len(inbox) == len({(r["event_id"], r["agent"]) for r in inbox})
    assert redrive(settings) == {}


def test_rule_conditions_route_only_matching_events():
    from lakehouse.agents import Rule
    from lakehouse.events import outbox_table, routed

    rule = Rule("client.profitability.changed", "x.h", severity=("critical",), when={"reason": "tier_down"}, agent="x")
    assert rule.event_pattern() == {"severity": ["critical"], "data": {"reason": ["tier_down"]}}
    warn, crit = margin_event("C1"), {**margin_event("C2"), "severity": "critical"}
    other = {**crit, "id": "f" * 32, "subject": "client:C3", "data": {**crit["data"], "reason": "margin_drop"}}
    rows = routed(outbox_table([warn, crit, other]), [rule]).to_pylist()
    assert [r["subject"] for r in rows] == ["client:C2"]


def _msp(home, *args, pythonpath=(), **env):
    """The real command line (``.venv/bin/msp``) in a subprocess, on ``home``."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    full = {k: v for k, v in os.environ.items() if not k.startswith("MSP_")}
    full.update({"MSP_HOME": str(home), "PYTHONPATH": os.pathsep.join([*map(str, pythonpath), str(root)]),
                 "COLUMNS": "200", **env})
    return subprocess.run([str(Path(sys.executable).parent / "msp"), *args], env=full, capture_output=True,
                          text=True, cwd=root, timeout=600)


def test_handlers_failing_side_by_side_keep_each_others_dead_letters(throwaway_agent, settings, monkeypatch):
    """Two handlers fail on one day in two processes at once (handlers run side by side in the stage workers).
    Each reads the day's dead letters and writes them back with its own; the lock around both makes the
    second read the first's write, so neither drops the other's rows (a pause between the read and the write
    would otherwise let both read the day empty)."""
    import time

    from lakehouse import events, workers
    from lakehouse.lake import Lake

    day = date(2024, 2, 29)
    ctx = RunContext.create(settings, [day])
    write_outbox(ctx, "client.profitability.changed", [margin_event(), margin_event("C2")], [day.isoformat()])
    dispatch(ctx)
    reg = registry()
    handlers = sorted({h for _a, h in reg.routes["client.profitability.changed"]})[:2]
    assert len(handlers) == 2 and "tmpagent.on_margin" in handlers
    real_write = events._write_dead_letters

    def slow_write(c, rows, days):
        time.sleep(0.5)
        real_write(c, rows, days)

    monkeypatch.setattr(events, "_write_dead_letters", slow_write)

    def fail_as(handler):
        mine = RunContext.create(settings, [day])
        workers._after_fork(mine)
        assert events.dead_letter(mine, reg.stages[handler], f"{handler} failed") == 2

    running = [workers.in_background(fail_as, h) for h in handlers]
    if None in running:
        pytest.skip("processes cannot be forked here")
    assert [r.result() for r in running] == [None, None]
    rows = events.dead_letters(Lake.from_settings(settings))
    assert sorted((r["handler"], r["subject"]) for r in rows) == sorted(
        (h, s) for h in handlers for s in ("client:C1", "client:C2"))


def test_dead_letters_and_redrive_through_the_command_line(throwaway_agent, settings, tmp_path):
    """`msp run` with a handler that really fails leaves dead letters `msp events dead` lists; once the cause is
    gone `msp events redrive` reruns the handler and resolves them; a second redrive has nothing to do."""
    from lakehouse.events import dead_letters
    from lakehouse.lake import Lake

    flag = tmp_path / "fail"
    jobs = throwaway_agent / "tmpagent" / "jobs.py"
    jobs.write_text(jobs.read_text().replace(
        "def on_margin(ctx):\n    pass",
        f"def on_margin(ctx):\n    import os\n    if os.path.exists({str(flag)!r}):\n"
        "        raise RuntimeError('planted handler failure')"))
    flag.write_text("")
    day = date(2024, 2, 29)
    ctx = RunContext.create(settings, [day])
    write_outbox(ctx, "client.profitability.changed", [margin_event(), margin_event("C2")], [day.isoformat()])
    ctx.close()
    home, site = settings.home, [throwaway_agent]
    run = _msp(home, "run", "--date", day.isoformat(), "--stages", "events.dispatch", "tmpagent.on_margin",
               pythonpath=site)
    assert run.returncode != 0, run.stdout + run.stderr
    assert "tmpagent.on_margin" in run.stdout + run.stderr
    dead = _msp(home, "events", "dead", pythonpath=site)
    assert dead.returncode == 0, dead.stderr
    assert dead.stdout.count("tmpagent.on_margin") == 2 and "planted handler" in dead.stdout
    assert len(dead_letters(Lake.from_settings(settings))) == 2
    flag.unlink()
    redrive = _msp(home, "events", "redrive", pythonpath=site)
    assert redrive.returncode == 0, redrive.stdout + redrive.stderr
    assert "tmpagent.on_margin: ok" in redrive.stdout
    lake = Lake.from_settings(settings)
    assert dead_letters(lake) == []
    assert [r["status"] for r in dead_letters(lake, None)] == ["resolved", "resolved"]
    again = _msp(home, "events", "redrive", pythonpath=site)
    assert again.returncode == 0 and "no dead letters to redrive" in again.stdout
    inbox = lake.read_arrow(schemas.get("events.inbox")).to_pylist()
    assert len(inbox) == len({(r["event_id"], r["agent"]) for r in inbox})

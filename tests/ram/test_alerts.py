"""Utilization alerts: one event when an episode opens, worsens and closes, never one per week; ids are
deterministic, so a rerun writes the same events."""

from __future__ import annotations

import pandas as pd

from jobs.ram import alerts
from jobs.ram import utilization as U
from lakehouse.events import validate
from tests.ram.test_utilization import weeks


def history(cfg) -> pd.DataFrame:
    under = U.with_streaks(weeks([50, 55, 58, 40, 45, 28, 30, 70, 75]), None, cfg)
    senior = U.with_streaks(weeks([80] * 8, tid="T9", senior=True, l1=0.0), None, cfg)
    senior.loc[2, "l1_hours"] = 20.0             # week 3 all on L1 work: 20 of the trailing 80 h = 25 % > 20 %
    senior = U.with_streaks(senior, None, cfg)
    return pd.concat([under, senior], ignore_index=True)


def test_episodes_open_worsen_and_close_once(cfg):
    found = alerts.findings(history(cfg), cfg)
    t1 = [(f.kind, f.state, f.week) for f in found if f.technician_id == "T1"]
    # 4th week under 60 % opens; the trailing mean falls 10+ points (50.75 -> 37.75) worsens; 70 % closes
    assert t1 == [("under_utilized", "opened", "2024-W04"), ("under_utilized", "worsened", "2024-W07"),
                  ("under_utilized", "closed", "2024-W08")]
    opened = next(f for f in found if f.state == "opened" and f.technician_id == "T1")
    assert opened.weeks_running == 4 and opened.source_weeks == ["2024-W01", "2024-W02", "2024-W03", "2024-W04"]
    t9 = [(f.kind, f.state) for f in found if f.technician_id == "T9"]
    assert t9 == [("senior_on_l1", "opened"), ("senior_on_l1", "closed")]   # 25 %, then 0 in W07 (W03 drops out)


def test_events_carry_evidence_and_share_their_episode(cfg):
    events = [alerts.to_event(f) for f in alerts.findings(history(cfg), cfg)]
    for e in events:
        validate(e)
        assert e["evidence"]["source_rows"] and e["evidence"]["threshold"] is not None
    t1 = [e for e in events if e["subject"] == "technician:T1"]
    assert len({e["episode"]["id"] for e in t1}) == 1                      # one episode ...
    assert [e["episode"]["state"] for e in t1] == ["opened", "worsened", "closed"]
    assert len({e["id"] for e in events}) == len(events)                   # ... of distinct events
    assert t1[0]["time"] == "2024-01-28"                                   # the Sunday ending W04
    assert t1[-1]["episode"]["closed"] == "2024-02-25"


def test_a_rerun_finds_the_same_events_and_only_those_of_its_days(cfg):
    h = history(cfg)
    again = [alerts.to_event(f)["id"] for f in alerts.findings(h, cfg)]
    assert again == [alerts.to_event(f)["id"] for f in alerts.findings(h.sample(frac=1, random_state=3), cfg)]
    days = [str(d) for d in pd.date_range("2024-01-22", "2024-01-28").date]
    found = alerts.events_for_days(h[h["technician_id"] == "T1"], cfg, days)
    assert [(e["data"]["state"], e["time"]) for e in found] == [("opened", "2024-01-28")]

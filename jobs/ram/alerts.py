"""Utilization alerts: the weekly streaks of ``analytics.technician_utilization`` turned into episodes, and one
``resource.utilization.alert`` event when an episode opens, each time it worsens, and when it closes.

Episodes (thresholds in ``[ram]``; DOMAIN.md section 3, Decisions/alerts):

* ``under_utilized``: opens on the counted week that makes ``ram.streak_weeks`` weeks running under
  ``ram.under_utilization_pct``; ``over_utilized`` likewise over ``ram.over_utilization_pct``; either closes
  on the first counted week back inside the band (a week that does not count, a vacation, changes nothing);
* ``senior_on_l1``: a technician of ``ram.senior_roles`` whose trailing ``ram.streak_weeks`` counted weeks hold
  at least ``ram.senior_l1_min_hours`` ticket hours, more than ``ram.senior_l1_share_pct`` of them on L1 work;
  closes when the trailing share falls back to the threshold or below;
* an open episode *worsens* when its trailing measure (utilization, or L1 share) has moved ``ram.worsen_pp``
  points further out than at its last event.

The episodes are recomputed from the whole weekly history on every run (it is small), so the event of a
week is the same whichever run finds it; an event is dated the Sunday that ends its week and is emitted by
the run whose days include that Sunday. Ids are deterministic (type, technician, week, kind and state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import pandas as pd

from jobs.ram import data

if TYPE_CHECKING:  # pragma: no cover
    from jobs.ram.settings import RamSettings
    from lakehouse.context import RunContext

EVENT_TYPE = "resource.utilization.alert"
SOURCE = "ram.alerts"
TABLE = "analytics.technician_utilization"
ACTIONS = {
    "under_utilized": "Route more of the queue to this technician (msp ram assign), review the schedule or "
                      "use the spare time for proactive work and training.",
    "over_utilized": "Move work to under-used colleagues (msp ram assign); if the team is full, forecast the "
                     "hours and consider a contractor or a hire.",
    "senior_on_l1": "Route L1 tickets to L1 technicians (the assignment's skill-gap cost) and automate or "
                    "document the repeat ones: senior time on L1 work is a margin leak.",
}


@dataclass
class Finding:
    kind: str
    technician_id: str
    role: str
    week: str
    week_end: date
    state: str
    opened: date
    weeks_running: int
    utilization_pct: float | None
    trailing_utilization_pct: float | None
    l1_share_pct: float | None
    measure: float | None
    threshold: float
    comparison: str
    source_weeks: list[str] = field(default_factory=list)
    closed: date | None = None


def findings(weeks: pd.DataFrame, cfg: RamSettings) -> list[Finding]:
    """Every episode event in the weekly history (all technicians, all kinds), in week order."""
    out: list[Finding] = []
    if weeks is None or weeks.empty:
        return out
    w = weeks[(weeks["grain"] == "week") & (weeks["counted"] == True)].copy()  # noqa: E712
    w["period_start"] = data.as_date(w["period_start"])
    w["period_end"] = data.as_date(w["period_end"])
    for tid, g in w.sort_values(["technician_id", "period_start"]).groupby("technician_id", sort=True):
        rows = g.to_dict("records")
        out += _utilization_episodes(tid, rows, "under_utilized", cfg)
        out += _utilization_episodes(tid, rows, "over_utilized", cfg)
        out += _senior_episodes(tid, rows, cfg)
    return sorted(out, key=lambda f: (f.week_end, f.technician_id, f.kind, f.state))


def _f(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def _utilization_episodes(tid: str, rows: list[dict[str, Any]], kind: str, cfg: RamSettings) -> list[Finding]:
    under = kind == "under_utilized"
    streak_col = "under_streak_weeks" if under else "over_streak_weeks"
    threshold = cfg.under_utilization_pct if under else cfg.over_utilization_pct
    out: list[Finding] = []
    opened: date | None = None
    ref: float | None = None
    history: list[str] = []
    for r in rows:
        streak = int(r[streak_col] or 0)
        trailing = _f(r["trailing_utilization_pct"])
        history = [*history, r["period"]][-max(streak, 1):] if streak else []
        state = None
        if opened is None and streak >= cfg.streak_weeks:
            opened, ref, state = r["period_end"], trailing, "opened"
        elif opened is not None and streak == 0:
            state = "closed"
        elif opened is not None and trailing is not None and ref is not None and (
                (under and trailing <= ref - cfg.worsen_pp) or (not under and trailing >= ref + cfg.worsen_pp)):
            ref, state = trailing, "worsened"
        if state is None:
            continue
        closed = state == "closed"
        out.append(Finding(kind, tid, r["role"], r["period"], r["period_end"], state, opened or r["period_end"],
                           0 if closed else streak, _f(r["utilization_pct"]), trailing,
                           _f(r["trailing_l1_share_pct"]), trailing, threshold, "<" if under else ">",
                           [r["period"]] if closed else list(history), r["period_end"] if closed else None))
        if closed:
            opened, ref = None, None
    return out


def _senior_episodes(tid: str, rows: list[dict[str, Any]], cfg: RamSettings) -> list[Finding]:
    out: list[Finding] = []
    opened: date | None = None
    ref: float | None = None
    running = 0
    recent: list[str] = []
    for r in rows:
        recent = [*recent, r["period"]][-cfg.streak_weeks:]
        if not bool(r["senior"]):
            continue
        share = _f(r["trailing_l1_share_pct"])
        hours = _f(r["trailing_ticket_hours"]) or 0.0
        cond = share is not None and hours >= cfg.senior_l1_min_hours and share > cfg.senior_l1_share_pct
        running = running + 1 if cond else 0
        state = None
        if opened is None and cond:
            opened, ref, state = r["period_end"], share, "opened"
        elif opened is not None and not cond:
            state = "closed"
        elif opened is not None and share is not None and ref is not None and share >= ref + cfg.worsen_pp:
            ref, state = share, "worsened"
        if state is None:
            continue
        closed = state == "closed"
        out.append(Finding("senior_on_l1", tid, r["role"], r["period"], r["period_end"], state,
                           opened or r["period_end"], running, _f(r["utilization_pct"]),
                           _f(r["trailing_utilization_pct"]), share, share, cfg.senior_l1_share_pct, ">",
                           list(recent), r["period_end"] if closed else None))
        if closed:
            opened, ref = None, None
    return out


def to_event(f: Finding) -> dict[str, Any]:
    from lakehouse.events import episode_id, make_event

    subject = f"technician:{f.technician_id}"
    metric = "trailing_l1_share_pct" if f.kind == "senior_on_l1" else "trailing_utilization_pct"
    payload = {"alert_kind": f.kind, "technician_id": f.technician_id, "role": f.role, "period": f.week,
               "state": f.state, "weeks_running": f.weeks_running, "utilization_pct": f.utilization_pct,
               "trailing_utilization_pct": f.trailing_utilization_pct, "l1_share_pct": f.l1_share_pct,
               "suggested_action": ACTIONS[f.kind]}
    evidence = {"metric": metric, "value": f.measure, "threshold": f.threshold, "comparison": f.comparison,
                "source_rows": [{"dataset": TABLE, "keys": {"technician_id": f.technician_id, "grain": "week",
                                                              "period": w}} for w in f.source_weeks]}
    episode = {"id": episode_id(EVENT_TYPE, subject, f.kind, f.opened), "state": f.state,
               "opened": f.opened.isoformat()}
    if f.closed is not None:
        episode["closed"] = f.closed.isoformat()
    return make_event(EVENT_TYPE, SOURCE, subject, f.week_end, f.week, f"{f.kind}:{f.state}", payload, evidence,
                      severity="info" if f.state == "closed" else "warning", episode=episode)


def events_for_days(weeks: pd.DataFrame, cfg: RamSettings, days: list[str]) -> list[dict[str, Any]]:
    wanted = set(days)
    return [to_event(f) for f in findings(weeks, cfg) if f.week_end.isoformat() in wanted]


def run(ctx: RunContext) -> None:
    from lakehouse.lake import Range

    cfg = ctx.config
    weeks = ctx.read_pandas(TABLE, {"month": Range(None, f"{ctx.end:%Y-%m}")})
    ctx.emit(EVENT_TYPE, events_for_days(weeks, cfg, ctx.days))

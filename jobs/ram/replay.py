"""Replay of the history: what the greedy baseline, the CP-SAT optimiser and the MSP itself would have
achieved on the same tickets, under one simulation (a benchmark, ``msp ram replay``; not a daily stage).

Day by day, each policy dispatches the day's new tickets (and those it could not place before) to the
technicians at work, knowing only the estimates (:func:`jobs.ram.data.effort_estimates` over the 90 days
before the day's month) and its own backlog; *history* keeps the technician the PSA recorded. Then every
technician works their tickets in the policy's order (history: earliest due first) with the hours that were
really logged on each ticket (plus the drive for onsite work), inside their shifts (``ram.workday_start_utc_hour``
for the day's available hours: PTO and holidays come off), and a ticket breaches when that simulated
resolution falls after its resolution due time. Work a technician does not finish carries into their next
shift, so a policy's overload shows up in its later days.

Reported per policy: tickets, SLA breaches (and %), km driven to onsite work (round trips from home), load
spread (the standard deviation of the day's assigned work in % of capacity across the technicians at
work, averaged over days), tickets sent to a technician without the required skill level, and the
planning time. The PSA's own recorded resolution SLA misses are shown for reference: they come from the
MSP's real working pattern (after-hours and on-call work this simulation does not model), so only the
three simulated rows compare like with like.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from jobs.ram import assignment as A
from jobs.ram import data

POLICIES = ("history", "baseline", "optimiser")


@dataclass
class Windows:
    """A technician's working windows (UTC), for walking work through shifts."""

    starts: list[datetime]
    ends: list[datetime]

    def finish(self, start: datetime, minutes: float) -> datetime:
        """When ``minutes`` of work begun no earlier than ``start`` are done."""
        left = minutes
        i = max(0, bisect.bisect_right(self.ends, start) if self.ends else 0)
        t = start
        while left > 1e-9:
            if i >= len(self.starts):                       # no shift left in the calendar: straight through
                return t + timedelta(minutes=left)
            lo, hi = self.starts[i], self.ends[i]
            t = max(t, lo)
            if t >= hi:
                i += 1
                continue
            room = (hi - t).total_seconds() / 60
            if room >= left:
                return t + timedelta(minutes=left)
            left -= room
            t = hi
            i += 1
        return t

    def minutes_between(self, start: datetime, end: datetime) -> int:
        """Working minutes from ``start`` to ``end``."""
        if end <= start:
            return 0
        total = 0.0
        i = max(0, bisect.bisect_right(self.ends, start))
        while i < len(self.starts) and self.starts[i] < end:
            lo, hi = max(self.starts[i], start), min(self.ends[i], end)
            if hi > lo:
                total += (hi - lo).total_seconds() / 60
            i += 1
        return round(total)


@dataclass
class Outcome:
    policy: str
    tickets: int = 0
    breaches: int = 0
    unresolved: int = 0
    travel_km: float = 0.0
    skill_violations: int = 0
    load_std: list[float] = field(default_factory=list)
    seconds: float = 0.0
    planned_days: int = 0
    by_priority: dict[str, list[int]] = field(default_factory=dict)  # priority -> [tickets, breaches]

    def row(self) -> dict[str, Any]:
        return {"policy": self.policy, "tickets": self.tickets, "sla_breaches": self.breaches,
                "breach_pct": round(100.0 * self.breaches / self.tickets, 2) if self.tickets else None,
                "travel_km": round(self.travel_km, 1),
                "load_spread_pp": round(float(np.mean(self.load_std)), 2) if self.load_std else None,
                "skill_violations": self.skill_violations, "plan_seconds": round(self.seconds, 1)}


def replay(frames: dict[str, pd.DataFrame], first: date, last: date, cfg, policies=POLICIES,
           progress=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replay days ``first``..``last``; returns (one row per policy, one row per policy and day)."""
    techs = data.technicians(frames["technicians"])
    cal = data.calendar(techs, frames["technician_pto"], first - timedelta(days=max(8, cfg.capacity_recent_days + 1)),
                        last + timedelta(days=30),
                        cfg.workdays)
    tickets_all = frames["tickets"]
    entries = frames["time_entries"][["technician_id", "ticket_id", "work_date", "hours"]].copy()
    entries["hours"] = entries["hours"].astype(float)
    worked = entries.assign(day=data.as_date(entries["work_date"])).groupby(["technician_id", "day"])["hours"].sum()
    windows = _windows(cal, cfg, worked)
    actual = entries[entries["ticket_id"].notna()].groupby("ticket_id")["hours"].sum().to_dict()
    latest = data.latest_rows(tickets_all, ["ticket_id"])
    created = pd.to_datetime(latest["created_at"], utc=True)
    in_range = latest[(created.dt.date >= first) & (created.dt.date <= last)]
    tickets = data.tickets_from_frame(in_range, frames["sites"])
    for t in tickets:
        t.actual_hours = actual.get(t.ticket_id)
    by_day: dict[date, list[data.Ticket]] = defaultdict(list)
    for t in tickets:
        by_day[t.created_at.date()].append(t)
    recorded = int((in_range["resolution_sla_met"] == False).sum())  # noqa: E712
    est_cache: dict[str, dict] = {}
    ent_dates = pd.to_datetime(entries["work_date"]).dt.date
    l_created = created.dt.date

    def estimates_for(day: date) -> dict:
        key = f"{day:%Y-%m}"
        if key not in est_cache:
            start = day.replace(day=1)
            lo = start - timedelta(days=cfg.estimate_days)
            window = latest[(l_created >= lo) & (l_created < start)]
            est_cache[key] = data.effort_estimates(window, entries[ent_dates < start], cfg.min_estimate_samples,
                                                   cfg.default_ticket_hours, cfg.estimate_statistic)
        return est_cache[key]

    outcomes = {pol: Outcome(pol) for pol in policies}
    free = {pol: {tid: datetime.combine(first, datetime.min.time()).replace(tzinfo=UTC)
                  for tid in techs} for pol in policies}
    carry: dict[str, list[data.Ticket]] = {pol: [] for pol in policies}
    daily_rows = []
    days = data.days_between(first, last)
    work_days = {d for d, h in cal.groupby(data.as_date(cal["day"]))["available_hours"].sum().items() if h > 0}
    for n_day, day in enumerate(days):
        if progress:
            progress(f"replay {day}", n_day, len(days))
        for pol in policies:
            carry[pol].extend(by_day.get(day, []))
        if day not in work_days:
            continue
        estimates = estimates_for(day)
        s0 = A.shift_start(day, cfg)
        for pol in policies:
            queue, carry[pol] = carry[pol], []
            if not queue:
                continue
            out = outcomes[pol]
            t0 = time.perf_counter()
            if pol == "history":
                assign = {t.ticket_id: t.psa_technician_id for t in queue}
                order = sorted(queue, key=lambda t: (t.resolution_due_at, t.created_at, t.ticket_id))
                sequence = [(t, assign[t.ticket_id]) for t in order if assign[t.ticket_id] in techs]
                carry[pol] = [t for t in queue if assign[t.ticket_id] not in techs]
            else:
                backlog = {tid: windows[tid].minutes_between(s0, free[pol][tid]) for tid in techs}
                p = A.build_day(day, techs, cal, list(queue), estimates, backlog, cfg,
                                A.recent_hours(entries, cal, day, cfg.capacity_recent_days))
                plan = A.greedy(p) if pol == "baseline" else A.solve(p)
                order = sorted(plan.assignment, key=lambda i: (plan.start[i], i))
                sequence = [(p.jobs[i].ticket, p.techs[plan.assignment[i]].technician_id) for i in order]
                carry[pol] = [p.jobs[i].ticket for i in range(len(p.jobs)) if i not in plan.assignment]
                out.planned_days += 1
            out.seconds += time.perf_counter() - t0
            load: dict[str, float] = defaultdict(float)
            breaches = 0
            for tk, tid, end, minutes, km in _work(sequence, techs, windows, free[pol], estimates, cfg):
                tech = techs[tid]
                load[tid] += minutes
                out.tickets += 1
                out.travel_km += km
                late = end > tk.resolution_due_at
                pri = out.by_priority.setdefault(tk.priority, [0, 0])
                pri[0] += 1
                pri[1] += late
                out.breaches += late
                breaches += late
                out.skill_violations += tech.level(tk.skill) < tk.level
            caps = A.capacity_minutes(cal, day)
            pct = [100.0 * load.get(tid, 0.0) / c for tid, c in caps.items() if c > 0]
            if pct:
                out.load_std.append(float(np.std(pct)))
            daily_rows.append({"day": day, "policy": pol, "tickets": len(sequence), "breaches": breaches,
                               "load_std_pp": round(float(np.std(pct)), 2) if pct else None})
    for pol in policies:  # never dispatched by the last day
        outcomes[pol].tickets += len(carry[pol])
        outcomes[pol].unresolved += len(carry[pol])
        outcomes[pol].breaches += sum(t.resolution_due_at <= A.shift_start(last + timedelta(days=1), cfg)
                                      for t in carry[pol])
    rows = [outcomes[p].row() | {"unresolved": outcomes[p].unresolved} for p in policies]
    rows.append({"policy": "recorded in the PSA", "tickets": len(in_range), "sla_breaches": recorded,
                 "breach_pct": round(100.0 * recorded / len(in_range), 2) if len(in_range) else None,
                 "travel_km": None, "load_spread_pp": None, "skill_violations": None, "plan_seconds": None,
                 "unresolved": None})
    return pd.DataFrame(rows), pd.DataFrame(daily_rows)


def _work(sequence, techs, windows, free, estimates, cfg):
    """Each technician works their tickets in the sequence's order, but never idles while a ticket of theirs
    is waiting: at each moment the first ticket in the order that has been created is next. Yields
    (ticket, technician, end, minutes, km) and moves ``free`` (each technician's end of work) on."""
    mine: dict[str, list[data.Ticket]] = defaultdict(list)
    for tk, tid in sequence:
        mine[tid].append(tk)
    for tid in sorted(mine):
        tech, todo = techs[tid], list(mine[tid])
        t = free[tid]
        while todo:
            ready = [tk for tk in todo if tk.created_at <= t]
            tk = ready[0] if ready else min(todo, key=lambda x: x.created_at)
            todo.remove(tk)
            km = 0.0
            if tk.onsite and tk.lat is not None:
                km = 2 * float(data.road_km(tech.lat, tech.lon, tk.lat, tk.lon, cfg.road_factor))
            minutes = 60.0 * (tk.actual_hours if tk.actual_hours else tk.est_hours or
                              data.estimate(estimates, tk.category, tk.priority))
            minutes += data.drive_minutes(km, cfg.speed_kmh)
            t = windows[tid].finish(max(t, tk.created_at), minutes)
            yield tk, tid, t, minutes, km
        free[tid] = t


def _windows(cal: pd.DataFrame, cfg, worked: pd.Series) -> dict[str, Windows]:
    """Each technician's shifts: from the shift start, for the longer of the day's available hours and the
    hours they really logged that day (the team's realised working time, the same for every policy)."""
    out: dict[str, Windows] = {}
    c = cal.copy()
    c["day"] = data.as_date(c["day"])
    real = worked.rename("worked").reset_index()
    c = c.merge(real, on=["technician_id", "day"], how="left")
    c["hours"] = np.maximum(c["available_hours"], c["worked"].fillna(0.0))
    c = c[c["hours"] > 0].sort_values(["technician_id", "day"])
    for tid, g in c.groupby("technician_id"):
        starts, ends = [], []
        for d, h in zip(g["day"], g["hours"], strict=True):
            s = A.shift_start(d, cfg)
            starts.append(s)
            ends.append(s + timedelta(minutes=math.floor(float(h) * 60)))
        out[tid] = Windows(starts, ends)
    for tid in cal["technician_id"].unique():
        out.setdefault(tid, Windows([], []))
    return out


def read_export(root: str) -> dict[str, pd.DataFrame]:
    """The processed tables of an export folder (``<root>/processed/<table>.parquet``)."""
    from pathlib import Path

    names = ("technicians", "technician_pto", "tickets", "time_entries", "sites")
    return {n: pd.read_parquet(Path(root) / "processed" / f"{n}.parquet") for n in names}


def read_lake(settings) -> dict[str, pd.DataFrame]:
    """The same tables from the lake's current snapshots."""
    import schemas
    from lakehouse.lake import Lake

    lake = Lake.from_settings(settings)
    names = ("technicians", "technician_pto", "tickets", "time_entries", "sites")
    return {n: lake.read_pandas(schemas.get(f"processed.{n}")) for n in names}


def markdown(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in table.to_dict("records"):
        lines.append("| " + " | ".join("" if v is None or (isinstance(v, float) and math.isnan(v)) else
                                      f"{v:,}" if isinstance(v, int) else str(v) for v in r.values()) + " |")
    return "\n".join(lines)

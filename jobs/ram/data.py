"""What every RAM stage reads, in the shape the planners need: technicians with their skills, calendars,
tickets with their SLA clock, sites with coordinates, and distances between them.

Pure functions of pandas frames (the platform's processed tables, or literal rows in tests); the stage
modules do the reading. The PSA exports are change exports (a row each day a record changes): the state as
of a day is the latest row exported on or before it (:func:`latest_rows`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

#: Lineage columns that break ties between two versions exported with the same ``updated_at``.
TIE_BREAKERS = ("dt", "_source_file", "_row_number")
EARTH_RADIUS_KM = 6371.0088


# ---- change exports ----------------------------------------------------------------------------------------
def latest_rows(frame: pd.DataFrame, key: Sequence[str], order: Sequence[str] = ("updated_at",)) -> pd.DataFrame:
    """One row per ``key``: the latest version (greatest ``order``, then export day, file, row number)."""
    if frame.empty:
        return frame.copy()
    cols = [c for c in (*order, *TIE_BREAKERS) if c in frame.columns]
    return (frame.sort_values([*key, *cols], kind="mergesort")
            .drop_duplicates(list(key), keep="last").reset_index(drop=True))


def as_date(values) -> pd.Series:
    """Dates (``datetime.date``) from dates, timestamps or ISO strings; missing stays missing."""
    s = pd.Series(values)
    if s.empty:
        return s.astype(object)
    out = pd.to_datetime(s, errors="coerce", utc=False)
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    return out.dt.date.where(out.notna(), None)


def utc(values) -> pd.Series:
    """UTC timestamps (tz-aware) from timestamps or strings."""
    out = pd.to_datetime(pd.Series(values), errors="coerce", utc=True)
    return out


# ---- technicians ---------------------------------------------------------------------------------------------
def parse_skills(text: str | None) -> dict[str, int]:
    """``"windows_desktop:3|m365:2"`` → ``{"windows_desktop": 3, "m365": 2}`` (malformed parts are skipped)."""
    out: dict[str, int] = {}
    for part in (text or "").split("|"):
        name, _, level = part.strip().partition(":")
        if name and level.strip().isdigit():
            out[name.strip()] = int(level)
    return out


@dataclass(frozen=True)
class Technician:
    technician_id: str
    role: str
    skills: dict[str, int]
    lat: float
    lon: float
    hours_per_week: float
    hire_date: date
    termination_date: date | None
    cost_rate: float | None = None

    def level(self, skill: str) -> int:
        return self.skills.get(skill, 0)

    def employed_on(self, day: date) -> bool:
        return self.hire_date <= day and (self.termination_date is None or day <= self.termination_date)


def technicians(frame: pd.DataFrame, cost_rates: pd.DataFrame | None = None, on: date | None = None
                ) -> dict[str, Technician]:
    """The technicians as they stand (latest row each), with the cost rate effective on ``on``."""
    rows = latest_rows(frame, ["technician_id"])
    rates = rate_lookup(cost_rates) if cost_rates is not None else {}
    out: dict[str, Technician] = {}
    for r in rows.to_dict("records"):
        term = r.get("termination_date")
        tid = r["technician_id"]
        out[tid] = Technician(
            technician_id=tid, role=str(r["role"]), skills=parse_skills(r.get("skills")),
            lat=float(r["home_latitude"]), lon=float(r["home_longitude"]),
            hours_per_week=float(r["hours_per_week"]), hire_date=_d(r["hire_date"]),
            termination_date=None if term is None or pd.isna(term) else _d(term),
            cost_rate=rate_on(rates.get(tid, []), on) if on is not None else None)
    return dict(sorted(out.items()))


def _d(value) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def rate_lookup(cost_rates: pd.DataFrame) -> dict[str, list[tuple[date, date | None, float]]]:
    """technician → [(effective_from, effective_to, rate)] from the latest row of each cost rate id."""
    out: dict[str, list[tuple[date, date | None, float]]] = {}
    if cost_rates is None or cost_rates.empty:
        return out
    for r in latest_rows(cost_rates, ["cost_rate_id"]).to_dict("records"):
        to = r.get("effective_to")
        out.setdefault(r["technician_id"], []).append(
            (_d(r["effective_from"]), None if to is None or pd.isna(to) else _d(to), float(r["cost_rate"])))
    for v in out.values():
        v.sort(key=lambda x: x[0])
    return out


def rate_on(rates: list[tuple[date, date | None, float]], day: date) -> float | None:
    for lo, hi, rate in reversed(rates):
        if lo <= day and (hi is None or day <= hi):
            return rate
    return None


# ---- calendars -------------------------------------------------------------------------------------------------
def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def daily_hours(tech: Technician, workdays: Iterable[int]) -> float:
    """Scheduled hours on a working day: hours per week spread evenly over the working weekdays."""
    wd = tuple(workdays)
    return tech.hours_per_week / len(wd)


def calendar(techs: dict[str, Technician], pto: pd.DataFrame, first: date, last: date,
             workdays: Iterable[int]) -> pd.DataFrame:
    """One row per technician and day from ``first`` to ``last``: scheduled, holiday, PTO and available hours.

    scheduled = hours_per_week / len(workdays) on a working weekday while employed (hire date to termination
    date); a PTO row's hours are spread evenly over its working weekdays (a one-day holiday on a weekend
    removes nothing); holidays come off first, then other PTO, neither below zero;
    available = scheduled − holiday − PTO (DOMAIN.md section 3).
    """
    wd = set(workdays)
    days = days_between(first, last)
    rows = []
    for tid, t in techs.items():
        per_day = daily_hours(t, wd)
        for d in days:
            sched = per_day if d.weekday() in wd and t.employed_on(d) else 0.0
            rows.append((tid, d, sched))
    cal = pd.DataFrame(rows, columns=["technician_id", "day", "scheduled_hours"])
    cal["holiday_hours"] = 0.0
    cal["pto_hours"] = 0.0
    if cal.empty or pto is None or pto.empty:
        cal["available_hours"] = cal["scheduled_hours"]
        return cal
    off = latest_rows(pto, ["pto_id"], order=("requested_at",) if "requested_at" in pto.columns else ())
    if "status" in off.columns:
        off = off[off["status"].isin(["approved"])]
    spread = []
    for r in off.to_dict("records"):
        if r["technician_id"] not in techs:
            continue
        lo, hi = _d(r["start_date"]), _d(r["end_date"])
        if hi < first or lo > last:
            continue
        span = days_between(lo, hi)
        work = [d for d in span if d.weekday() in wd] or span[:1]
        share = float(r["hours"]) / len(work)
        kind = "holiday_hours" if r["pto_type"] == "holiday" else "pto_hours"
        spread.extend((r["technician_id"], d, kind, share) for d in work if first <= d <= last)
    if spread:
        s = pd.DataFrame(spread, columns=["technician_id", "day", "kind", "hours"])
        s = s.pivot_table(index=["technician_id", "day"], columns="kind", values="hours", aggfunc="sum")
        s = s.reindex(columns=["holiday_hours", "pto_hours"]).fillna(0.0).reset_index()
        cal = cal.drop(columns=["holiday_hours", "pto_hours"]).merge(s, on=["technician_id", "day"], how="left")
        cal[["holiday_hours", "pto_hours"]] = cal[["holiday_hours", "pto_hours"]].fillna(0.0)
    cal["holiday_hours"] = np.minimum(cal["holiday_hours"], cal["scheduled_hours"])
    cal["pto_hours"] = np.minimum(cal["pto_hours"], cal["scheduled_hours"] - cal["holiday_hours"])
    cal["available_hours"] = cal["scheduled_hours"] - cal["holiday_hours"] - cal["pto_hours"]
    return cal


# ---- distances ---------------------------------------------------------------------------------------------------
def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance in km (works on scalars and numpy arrays)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(1.0, a)))


def road_km(lat1, lon1, lat2, lon2, road_factor: float):
    """Driving distance estimate: haversine × the road factor (no routing engine, no network call)."""
    return haversine_km(lat1, lon1, lat2, lon2) * road_factor


def distance_matrix_km(points: Sequence[tuple[float, float]], road_factor: float) -> np.ndarray:
    lat = np.array([p[0] for p in points], dtype=float)
    lon = np.array([p[1] for p in points], dtype=float)
    return road_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :], road_factor)


def drive_minutes(km: float, speed_kmh: float) -> int:
    return math.ceil(km / speed_kmh * 60.0) if km > 0 else 0


# ---- tickets -------------------------------------------------------------------------------------------------------
@dataclass
class Ticket:
    ticket_id: str
    client_id: str
    site_id: str | None
    priority: str
    category: str
    skill: str
    level: int
    onsite: bool
    created_at: datetime
    resolution_due_at: datetime
    sla_minutes: int
    psa_technician_id: str | None = None
    est_hours: float = 1.0
    actual_hours: float | None = None
    lat: float | None = None
    lon: float | None = None
    resolved_at: datetime | None = None
    extra: dict = field(default_factory=dict)


def tickets_from_frame(frame: pd.DataFrame, sites: pd.DataFrame | None = None) -> list[Ticket]:
    """Tickets (latest row each) with their site coordinates."""
    rows = latest_rows(frame, ["ticket_id"])
    coords: dict[str, tuple[float, float]] = {}
    if sites is not None and not sites.empty:
        for s in latest_rows(sites, ["site_id"]).to_dict("records"):
            coords[s["site_id"]] = (float(s["latitude"]), float(s["longitude"]))
    out = []
    for r in rows.to_dict("records"):
        created = pd.Timestamp(r["created_at"]).to_pydatetime()
        due = pd.Timestamp(r["resolution_due_at"]).to_pydatetime()
        site = r.get("site_id")
        lat, lon = coords.get(site, (None, None)) if site else (None, None)
        resolved = r.get("resolved_at")
        out.append(Ticket(
            ticket_id=r["ticket_id"], client_id=r["client_id"], site_id=site, priority=str(r["priority"]),
            category=str(r["category"]), skill=str(r["required_skill"]), level=int(r["required_skill_level"]),
            onsite=bool(r["onsite"]), created_at=created, resolution_due_at=due,
            sla_minutes=int(r["sla_resolution_minutes"]), psa_technician_id=r.get("assigned_technician_id"),
            lat=lat, lon=lon,
            resolved_at=None if resolved is None or pd.isna(resolved) else pd.Timestamp(resolved).to_pydatetime()))
    out.sort(key=lambda t: (t.created_at, t.ticket_id))
    return out


def effort_estimates(tickets: pd.DataFrame, entries: pd.DataFrame, min_samples: int, default_hours: float,
                     statistic: str = "mean") -> dict[tuple[str, str], float]:
    """Estimated hours per (category, priority): the mean (or median) total time logged on resolved tickets of
    that category and priority (falls back to the category's, then to ``default_hours``). Ticket effort is
    right-skewed, so the median underestimates the hours a queue of tickets takes; the mean does not.

    Returns a mapping with keys ``(category, priority)`` and ``(category, "*")`` and ``("*", "*")``."""
    out: dict[tuple[str, str], float] = {("*", "*"): float(default_hours)}
    if tickets is None or tickets.empty or entries is None or entries.empty:
        return out
    t = latest_rows(tickets, ["ticket_id"])
    t = t[t["resolved_at"].notna()][["ticket_id", "category", "priority"]]
    h = entries[entries["ticket_id"].notna()].groupby("ticket_id")["hours"].sum().astype(float)
    t = t.merge(h.rename("hours").reset_index(), on="ticket_id", how="inner")
    for cat, g in t.groupby("category"):
        if len(g) >= min_samples:
            out[(cat, "*")] = round(float(getattr(g["hours"], statistic)()), 2)
    for (cat, pri), g in t.groupby(["category", "priority"]):
        if len(g) >= min_samples:
            out[(cat, pri)] = round(float(getattr(g["hours"], statistic)()), 2)
    return out


def estimate(estimates: dict[tuple[str, str], float], category: str, priority: str) -> float:
    return estimates.get((category, priority)) or estimates.get((category, "*")) or estimates[("*", "*")]

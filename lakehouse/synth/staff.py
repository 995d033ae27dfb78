"""Technicians: roles, skills, cost rates that rise every January, time off, and who works which day."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakehouse.synth import names
from lakehouse.synth.rng import stream
from lakehouse.synth.scales import Scale
from lakehouse.synth.textfmt import NULL
from lakehouse.synth.timeline import Timeline, us_holidays

ROLES = ("L1", "L2", "L3", "field")
SKILLS = ("windows_desktop", "m365", "networking", "security", "windows_server", "cloud_azure", "backup",
          "printers_peripherals", "voip", "linux")
#: typical proficiency per role and skill (0 = none); a technician varies by -1..+1
_BASE = np.array([
    # desk m365 net sec srv cloud bkp print voip linux
    [3, 3, 1, 1, 1, 0, 1, 3, 1, 0],  # L1
    [4, 4, 3, 2, 3, 2, 3, 2, 2, 1],  # L2
    [4, 4, 4, 4, 5, 4, 4, 1, 2, 3],  # L3
    [4, 2, 3, 1, 2, 0, 2, 4, 3, 0],  # field
])
#: burdened hourly cost range per role, USD
_COST = np.array([[36, 44], [48, 60], [64, 82], [45, 55]], dtype=float)
_HQ = (39.7392, -104.9903)


@dataclass
class Technicians:
    n: int
    role: np.ndarray
    first: np.ndarray
    last: np.ndarray
    skill: np.ndarray  #: (n, len(SKILLS)) proficiency 0-5
    lat: np.ndarray
    lon: np.ndarray
    hours_per_week: np.ndarray
    hire_day: np.ndarray
    term_day: np.ndarray  #: last working day, NULL if still employed
    rate: np.ndarray  #: (n, years) burdened cost in cents (multiples of 10 cents) for calendar year start+k
    years: int
    pto: dict  #: columns of technician_pto (day numbers)
    available: np.ndarray  #: (n, n_days) works that day

    def rate_on(self, tech: np.ndarray, day: np.ndarray, tl: Timeline) -> np.ndarray:
        """Cost rate in cents of ``tech`` on ``day`` (the rate row effective that day)."""
        y = np.clip(tl.calendar_year(tl.month_of(day)) - tl.start.year, 0, self.years - 1)
        return self.rate[tech, y]


def plan_technicians(scale: Scale, seed: int, tl: Timeline) -> Technicians:
    rng = stream(seed, "technicians")
    n0 = scale.technicians
    years = (tl.n_days + 364) // 365 + 1
    hires = round(n0 * 0.12 * tl.n_days / 365)  # growth hires over the horizon
    n = n0 + hires
    role = rng.choice(4, n, p=[0.38, 0.32, 0.14, 0.16])
    role[: min(4, n)] = np.arange(min(4, n))  # every role exists, even in the tiny MSP
    first, last = names.people(rng, n)
    skill = np.clip(_BASE[role] + rng.integers(-1, 2, (n, len(SKILLS))), 0, 5)
    skill[_BASE[role] == 0] = 0
    lat = _HQ[0] + rng.normal(0, 0.18, n)
    lon = _HQ[1] + rng.normal(0, 0.22, n)
    hours = np.where(rng.random(n) < 0.1, 32, 40)
    hire = np.where(np.arange(n) < n0, -rng.integers(30, 3000, n), rng.integers(30, max(31, tl.n_days - 30), n))
    term = np.full(n, NULL, dtype=np.int64)
    leavers = (rng.random(n) < 0.05 * tl.n_days / 365) & (np.arange(n) >= 4)
    term[leavers] = np.maximum(hire[leavers] + 120, rng.integers(60, tl.n_days, leavers.sum()))
    term[term >= tl.n_days] = NULL
    lo, hi = _COST[role, 0], _COST[role, 1]
    rate = np.zeros((n, years), dtype=np.int64)
    rate[:, 0] = np.round((lo + rng.random(n) * (hi - lo)) * 10).astype(np.int64) * 10
    for y in range(1, years):
        rate[:, y] = np.round(rate[:, y - 1] * (1 + rng.uniform(0.02, 0.06, n)) / 10).astype(np.int64) * 10
    pto = _plan_pto(seed, tl, n, hire, term, hours)
    available = _availability(tl, n, hire, term, pto)
    return Technicians(n, role, first, last, skill, lat, lon, hours, hire, term, rate, years, pto, available)


def _plan_pto(seed: int, tl: Timeline, n: int, hire, term, hours) -> dict:
    """Vacations, sick days, training and public holidays, with the day each was requested."""
    rng = stream(seed, "pto")
    rows = {"tech": [], "type": [], "start": [], "end": [], "requested": []}
    years = range(tl.start.year, tl.date_of(tl.n_days - 1).year + 1)
    for y in years:  # one pass per year, vectorised over technicians
        y0 = tl.day_of(type(tl.start)(y, 1, 1))
        # vacations: 2-3 blocks of 3-5 business days
        k = rng.integers(2, 4, n)
        tech = np.repeat(np.arange(n), k)
        start = y0 + rng.integers(5, 355, len(tech))
        length = rng.integers(3, 8, len(tech))
        rows["tech"].append(tech), rows["type"].append(np.zeros(len(tech), int))
        rows["start"].append(start), rows["end"].append(start + length - 1)
        rows["requested"].append(start - rng.integers(10, 60, len(tech)))
        # sick days
        k = rng.poisson(4, n)
        tech = np.repeat(np.arange(n), k)
        start = y0 + rng.integers(0, 365, len(tech))
        rows["tech"].append(tech), rows["type"].append(np.ones(len(tech), int))
        rows["start"].append(start), rows["end"].append(start), rows["requested"].append(start)
        # training
        tech = np.flatnonzero(rng.random(n) < 0.6)
        start = y0 + rng.integers(20, 340, len(tech))
        rows["tech"].append(tech), rows["type"].append(np.full(len(tech), 3))
        rows["start"].append(start), rows["end"].append(start + rng.integers(0, 2, len(tech)))
        rows["requested"].append(start - rng.integers(20, 45, len(tech)))
        # public holidays: every technician, announced on December 1 of the year before
        hol = np.array([(d - tl.start).days for d, _ in us_holidays(y)])
        tech = np.repeat(np.arange(n), len(hol))
        rows["tech"].append(tech), rows["type"].append(np.full(len(tech), 2))
        rows["start"].append(np.tile(hol, n)), rows["end"].append(np.tile(hol, n))
        rows["requested"].append(np.full(len(tech), tl.day_of(type(tl.start)(y - 1, 12, 1))))
    out = {k: np.concatenate(v).astype(np.int64) for k, v in rows.items()}
    # snap to business days for vacations/sick/training, drop what the technician was not employed for
    t = out["tech"]
    employed_end = np.where(term[t] == NULL, 10**9, term[t])
    keep = (out["start"] >= hire[t]) & (out["end"] <= employed_end) & (out["end"] >= 0) & \
        (out["start"] < tl.n_days)
    out = {k: v[keep] for k, v in out.items()}
    # business days inside each span -> hours
    bd = np.concatenate([[0], np.cumsum(np.r_[tl.business, np.zeros(400, bool)])])
    s = np.clip(out["start"], 0, tl.n_days + 399)
    e = np.clip(out["end"] + 1, 0, tl.n_days + 399)
    days_off = bd[e] - bd[s]
    holiday = out["type"] == 2
    days_off = np.where(holiday, 1, days_off)
    out["hours10"] = days_off * hours[out["tech"]] * 2  # (hours/5 per day) in tenths
    keep = out["hours10"] > 0
    out = {k: v[keep] for k, v in out.items()}
    out["requested"] = np.maximum(np.minimum(out["requested"], out["start"]), hire[out["tech"]])
    order = np.lexsort((out["type"], out["start"], out["tech"]))
    return {k: v[order] for k, v in out.items()}


def _availability(tl: Timeline, n: int, hire, term, pto) -> np.ndarray:
    day = np.arange(tl.n_days)
    end = np.where(term == NULL, 10**9, term)
    avail = (day[None, :] >= hire[:, None]) & (day[None, :] <= end[:, None]) & tl.business[None, :]
    for t, s, e in zip(pto["tech"], pto["start"], pto["end"], strict=True):  # thousands of absences
        avail[t, max(s, 0):max(e + 1, 0)] = False
    return avail


def skills_text(skill: np.ndarray) -> np.ndarray:
    return np.asarray(["|".join(f"{SKILLS[k]}:{lvl}" for k, lvl in enumerate(row) if lvl > 0) for row in skill],
                      dtype=object)

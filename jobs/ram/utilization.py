"""Utilization monitor: per technician and week and month, how much of the available time was billable, at
what realised rate, how much senior time went to L1 work, and the SLA adherence of the tickets they own.

Formulas (DOMAIN.md section 3; thresholds in ``[ram]``):

* scheduled hours = hours_per_week / len(ram.workdays) on each working weekday while employed;
  available = scheduled − PTO − holidays (PTO and holidays are ``technician_pto`` rows, spread over their
  working weekdays) [R37];
* utilization % = billable hours / available hours × 100 (time entries flagged billable, by work date); null
  when nothing was available (a week of vacation);
* realised rate = Σ hours × the client's effective hourly rate of the work month / Σ those hours: each hour
  earns what the client's agreement earned per hour that month (CPI's EHR, DOMAIN.md section 1: (billed −
  additions) / labour hours), so a technician's rate is the revenue his hours brought in; null until CPI
  has the month;
* labour cost = Σ hours × the burdened cost rate effective on the work date; cost rate = labour cost / hours;
* L1 share % = hours on tickets needing at most skill level ``ram.l1_max_level`` / ticket hours × 100 (read
  for the ``ram.senior_roles`` it is "senior time on L1 work", a margin leak [R18]); the weekly rows also
  carry it over the trailing ``ram.streak_weeks`` weeks;
* SLA adherence % = tickets the technician owns that were resolved in the period within their resolution
  target / tickets resolved in the period × 100 [R41]; response adherence likewise on first responses;
* streaks (weekly rows): consecutive complete weeks under ``ram.under_utilization_pct`` or over
  ``ram.over_utilization_pct``; a week with fewer than ``ram.min_week_available_hours`` available neither
  counts nor breaks a streak. The alert stage (:mod:`jobs.ram.alerts`) turns streaks into episodes.

A period still running on the run day is computed to that day (``complete`` false). Rows are partitioned by
the month of the period's first day; a run recomputes every period of the months its days (and the
``ram.late_days`` before them) touch, reading inputs as exported up to the run's last day, so a rerun of a
day writes the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jobs.ram import data

if TYPE_CHECKING:  # pragma: no cover
    from jobs.ram.settings import RamSettings
    from lakehouse.context import RunContext

TABLE = "analytics.technician_utilization"
GRAINS = ("week", "month")


@dataclass(frozen=True)
class Period:
    grain: str
    period: str
    start: date
    end: date

    @property
    def month(self) -> str:
        """The partition: the month of the period's first day."""
        return f"{self.start.year:04d}-{self.start.month:02d}"


def week_of(d: date) -> Period:
    start = d - timedelta(days=d.weekday())
    iso = start.isocalendar()
    return Period("week", f"{iso[0]:04d}-W{iso[1]:02d}", start, start + timedelta(days=6))


def month_of(d: date) -> Period:
    start = d.replace(day=1)
    nxt = (start + timedelta(days=32)).replace(day=1)
    return Period("month", f"{start.year:04d}-{start.month:02d}", start, nxt - timedelta(days=1))


def periods_touching(first: date, last: date) -> list[Period]:
    """Every week and month containing a day from ``first`` to ``last``."""
    seen: dict[tuple[str, str], Period] = {}
    for d in data.days_between(first, last):
        for p in (week_of(d), month_of(d)):
            seen.setdefault((p.grain, p.period), p)
    return sorted(seen.values(), key=lambda p: (p.grain, p.start))


def periods_of_months(months: Iterable[str], until: date) -> list[Period]:
    """Every week and month whose first day falls in one of ``months`` and is on or before ``until``."""
    out: list[Period] = []
    for m in sorted(set(months)):
        first = date(int(m[:4]), int(m[5:7]), 1)
        if first > until:
            continue
        out.append(month_of(first))
        d = first + timedelta(days=(7 - first.weekday()) % 7)  # first Monday of the month
        while d.month == first.month and d <= until:
            out.append(week_of(d))
            d += timedelta(days=7)
    return sorted(out, key=lambda p: (p.grain, p.start))


# ---- the transform ---------------------------------------------------------------------------------------------
def transform(techs: dict[str, data.Technician], calendar: pd.DataFrame, entries: pd.DataFrame,
              tickets: pd.DataFrame, periods: list[Period], as_of: date, cfg: RamSettings,
              ehr: pd.DataFrame | None = None, cost_rates: pd.DataFrame | None = None,
              previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """Utilization rows for ``periods`` (weeks and months), computed up to ``as_of``.

    ``calendar``: :func:`jobs.ram.data.calendar` rows covering the periods; ``entries``: time entries
    (technician_id, client_id, ticket_id, work_date, hours, billable); ``tickets``: ticket rows (latest state
    wins); ``ehr``: client_id, month, effective_hourly_rate; ``previous``: weekly rows of this table before
    the first recomputed week (streaks and trailing L1 share continue from them).
    """
    cols = list(OUTPUT_COLUMNS)
    if not periods or not techs:
        return pd.DataFrame(columns=cols)
    wanted = {(p.grain, p.period): p for p in periods}
    cal = calendar.copy()
    cal["day"] = _days(cal["day"])
    cal = cal[cal["day"] <= np.datetime64(as_of)]
    e = _entries(entries, tickets, cfg, ehr, cost_rates, as_of)
    e["cost_hours"] = e["hours"].where(e["cost"].notna(), 0.0)
    e["earned_hours"] = e["hours"].where(e["earned"].notna(), 0.0)
    e["billable_hours"] = e["hours"].where(e["billable"], 0.0)
    e["ticket_hours"] = e["hours"].where(e["has_ticket"], 0.0)
    e["l1_hours"] = e["hours"].where(e["is_l1"], 0.0)
    frames = []
    for grain in GRAINS:
        c = _by_period(cal, "day", grain).groupby(["technician_id", "period"])[
            ["scheduled_hours", "holiday_hours", "pto_hours", "available_hours"]].sum()
        ep = _by_period(e, "work_date", grain).groupby(["technician_id", "period"])
        w = ep[["hours", "billable_hours", "ticket_hours", "l1_hours", "cost_hours", "earned_hours"]].sum()
        money = ep[["cost", "earned"]].sum(min_count=1)
        s = _sla(tickets, grain, as_of)
        f = c.join(w, how="outer").join(money, how="left").join(s, how="left").reset_index()
        f["grain"] = grain
        frames.append(f)
    f = pd.concat(frames, ignore_index=True)
    f = f[[(g, p) in wanted for g, p in zip(f["grain"], f["period"], strict=True)]]
    f = f[f["technician_id"].isin(list(techs))]
    num = ["scheduled_hours", "holiday_hours", "pto_hours", "available_hours", "hours", "billable_hours",
           "ticket_hours", "l1_hours", "cost_hours", "earned_hours", "resolved", "met", "responded", "resp_met"]
    f[num] = f[num].fillna(0.0)
    f = f[(f["scheduled_hours"] > 0) | (f["hours"] > 0)]
    rows: list[dict[str, Any]] = []
    for r in f.to_dict("records"):
        p, tech = wanted[(r["grain"], r["period"])], techs[r["technician_id"]]
        # sums of hours rounded first: the same entries give the same percentages in whatever order they were
        # read (the order of a table's files is not fixed, and 16.6 h of 32 h is 51.875 %, exactly on a rounding
        # edge, so the last bit of a float sum decided 51.87 or 51.88)
        avail, b, th, lh = (round(float(r[k]), 6) for k in ("available_hours", "billable_hours", "ticket_hours",
                                                               "l1_hours"))
        rows.append({
            "technician_id": tech.technician_id, "grain": p.grain, "period": p.period, "period_start": p.start,
            "period_end": p.end, "role": tech.role, "senior": tech.role in cfg.senior_roles,
            "hours_per_week": tech.hours_per_week, "scheduled_hours": round(r["scheduled_hours"], 2),
            "holiday_hours": round(r["holiday_hours"], 2), "pto_hours": round(r["pto_hours"], 2),
            "available_hours": round(avail, 2), "worked_hours": round(r["hours"], 2), "billable_hours": round(b, 2),
            "utilization_pct": round(b / avail * 100, 2) if avail > 0 else None,
            "band": _band(b / avail * 100 if avail > 0 else None, cfg),
            "ticket_hours": round(th, 2), "l1_hours": round(lh, 2),
            "l1_share_pct": round(lh / th * 100, 2) if th > 0 else None,
            "labour_cost": _round(r["cost"]), "cost_rate": _ratio(r["cost"], r["cost_hours"]),
            "realised_rate": _ratio(r["earned"], r["earned_hours"]),
            "tickets_resolved": int(r["resolved"]), "tickets_resolved_in_sla": int(r["met"]),
            "sla_adherence_pct": _pct(r["met"], r["resolved"]),
            "responses": int(r["responded"]), "responses_in_sla": int(r["resp_met"]),
            "response_adherence_pct": _pct(r["resp_met"], r["responded"]),
            "complete": p.end <= as_of, "as_of": as_of, "month": p.month,
        })
    out = pd.DataFrame(rows, columns=[c for c in cols if c not in STREAK_COLUMNS])
    out = with_streaks(out, previous, cfg)
    return out[cols].sort_values(["grain", "period", "technician_id"]).reset_index(drop=True)


def _days(values) -> np.ndarray:
    """Day values as numpy ``datetime64[D]`` (fast comparisons and period keys)."""
    s = pd.to_datetime(pd.Series(values), errors="coerce")
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.values.astype("datetime64[D]")


def _by_period(frame: pd.DataFrame, column: str, grain: str) -> pd.DataFrame:
    """``frame`` with a ``period`` key (ISO week ``YYYY-Www`` or month ``YYYY-MM``) of its day column."""
    out = frame.copy()
    d = np.asarray(out[column].values, dtype="datetime64[D]")
    monday = d - ((d.astype("int64") + 3) % 7).astype("timedelta64[D]")  # 1970-01-01 was a Thursday
    key = d.astype("datetime64[M]") if grain == "month" else monday
    uniq, inverse = np.unique(key, return_inverse=True)
    labels = np.array([str(k) if grain == "month" else week_of(k.astype("datetime64[D]").astype(date)).period
                       for k in uniq], dtype=object)
    out["period"] = labels[inverse] if len(key) else []
    return out


def _band(util: float | None, cfg: RamSettings) -> str | None:
    if util is None:
        return None
    return "under" if util < cfg.under_utilization_pct else "over" if util > cfg.over_utilization_pct else "in"


def _round(v) -> float | None:
    return None if v is None or pd.isna(v) else round(float(v), 2)


def _ratio(num, den) -> float | None:
    if num is None or den is None or pd.isna(num) or pd.isna(den) or float(den) == 0:
        return None
    return round(float(num) / float(den), 2)


def _pct(num, den) -> float | None:
    return round(num / den * 100, 2) if den else None


def _entries(entries: pd.DataFrame, tickets: pd.DataFrame | None, cfg: RamSettings, ehr: pd.DataFrame | None,
             cost_rates: pd.DataFrame | None, as_of: date) -> pd.DataFrame:
    """Time entries with the flags and money the aggregation needs."""
    cols = ["technician_id", "client_id", "ticket_id", "work_date", "hours", "billable"]
    e = entries[cols].copy() if entries is not None and not entries.empty else pd.DataFrame(columns=cols)
    e["work_date"] = _days(e["work_date"])
    e = e[~np.isnat(e["work_date"].values) & (e["work_date"] <= np.datetime64(as_of))].copy()
    e["hours"] = e["hours"].astype(float)
    e["billable"] = e["billable"].astype(bool)
    e["has_ticket"] = e["ticket_id"].notna()
    level: dict[str, int] = {}
    if tickets is not None and not tickets.empty:
        t = data.latest_rows(tickets, ["ticket_id"])
        level = dict(zip(t["ticket_id"], t["required_skill_level"].astype(int), strict=True))
    lv = e["ticket_id"].map(level)
    e["is_l1"] = e["has_ticket"] & lv.notna() & (lv <= cfg.l1_max_level)
    rates = data.rate_lookup(cost_rates) if cost_rates is not None else {}
    days = pd.to_datetime(pd.Series(e["work_date"].values)).dt.date
    e["rate"] = [data.rate_on(rates.get(t, []), d) for t, d in zip(e["technician_id"], days, strict=True)]
    e["cost"] = e["hours"] * e["rate"].astype(float)
    e["month"] = pd.to_datetime(pd.Series(e["work_date"].values)).dt.strftime("%Y-%m").values
    e["earned"] = np.nan
    if ehr is not None and not ehr.empty:
        r = ehr.dropna(subset=["effective_hourly_rate"])
        rate = {(c, m): float(v) for c, m, v in zip(r["client_id"], r["month"], r["effective_hourly_rate"],
                                                    strict=True)}
        e["earned"] = [h * rate[(c, m)] if (c, m) in rate else np.nan
                       for h, c, m in zip(e["hours"], e["client_id"], e["month"], strict=True)]
    return e


def _sla(tickets: pd.DataFrame | None, grain: str, as_of: date) -> pd.DataFrame:
    """Per owning technician and period: tickets resolved and within SLA, first responses and within SLA."""
    idx = pd.MultiIndex.from_arrays([[], []], names=["technician_id", "period"])
    empty = pd.DataFrame(columns=["resolved", "met", "responded", "resp_met"], index=idx, dtype=float)
    if tickets is None or tickets.empty:
        return empty
    t = data.latest_rows(tickets, ["ticket_id"])
    parts = []
    for at, flag, n, ok in (("resolved_at", "resolution_sla_met", "resolved", "met"),
                            ("first_response_at", "response_sla_met", "responded", "resp_met")):
        x = pd.DataFrame({"technician_id": t["assigned_technician_id"].values, "day": _days(t[at]),
                          "ok": (t[flag] == True).values})  # noqa: E712 (nullable booleans)
        x = x[~np.isnat(x["day"].values) & (x["day"] <= np.datetime64(as_of))]
        g = _by_period(x, "day", grain).groupby(["technician_id", "period"])["ok"].agg(["size", "sum"])
        parts.append(g.rename(columns={"size": n, "sum": ok}))
    return parts[0].join(parts[1], how="outer").astype(float)


STREAK_COLUMNS = ("counted", "under_streak_weeks", "over_streak_weeks", "trailing_ticket_hours",
                  "trailing_l1_share_pct", "trailing_utilization_pct")
OUTPUT_COLUMNS = (
    "technician_id", "grain", "period", "period_start", "period_end", "role", "senior", "hours_per_week",
    "scheduled_hours", "holiday_hours", "pto_hours", "available_hours", "worked_hours", "billable_hours",
    "utilization_pct", "band", "ticket_hours", "l1_hours", "l1_share_pct", "labour_cost", "cost_rate", "realised_rate",
    "tickets_resolved", "tickets_resolved_in_sla", "sla_adherence_pct", "responses", "responses_in_sla",
    "response_adherence_pct", *STREAK_COLUMNS, "complete", "as_of", "month")


def with_streaks(rows: pd.DataFrame, previous: pd.DataFrame | None, cfg: RamSettings) -> pd.DataFrame:
    """Add the weekly streak and trailing columns (null on month rows).

    A week *counts* when it is complete and has at least ``min_week_available_hours`` available; a counted
    week under (over) the band extends the under (over) streak, a counted week inside the band resets it,
    a week that does not count leaves both as they were. The trailing columns sum the last
    ``streak_weeks`` counted weeks (this one included): utilization = Σ billable / Σ available, L1 share =
    Σ L1 hours / Σ ticket hours."""
    out = rows.copy()
    for c in STREAK_COLUMNS:
        out[c] = None
    if out.empty:
        return out
    n = cfg.streak_weeks
    weeks = out[out["grain"] == "week"].sort_values(["technician_id", "period_start"])
    prev = previous if previous is not None and not previous.empty else pd.DataFrame(columns=out.columns)
    prev = prev[prev["grain"] == "week"].sort_values(["technician_id", "period_start"])
    updates: dict[int, dict[str, Any]] = {}
    for tid, g in weeks.groupby("technician_id", sort=True):
        p = prev[prev["technician_id"] == tid]
        under = int(p["under_streak_weeks"].iloc[-1]) if len(p) and pd.notna(p["under_streak_weeks"].iloc[-1]) else 0
        over = int(p["over_streak_weeks"].iloc[-1]) if len(p) and pd.notna(p["over_streak_weeks"].iloc[-1]) else 0
        window = [(float(r["billable_hours"]), float(r["available_hours"]), float(r["ticket_hours"]),
                   float(r["l1_hours"])) for r in p.to_dict("records") if bool(r.get("counted"))][-(n - 1):] \
            if n > 1 else []
        for idx, r in g.iterrows():
            counted = bool(r["complete"]) and float(r["available_hours"]) >= cfg.min_week_available_hours
            util = r["utilization_pct"]
            if counted:
                under = under + 1 if util is not None and util < cfg.under_utilization_pct else 0
                over = over + 1 if util is not None and util > cfg.over_utilization_pct else 0
                window = ([*window, (float(r["billable_hours"]), float(r["available_hours"]),
                                     float(r["ticket_hours"]), float(r["l1_hours"]))])[-n:]
            b, a, th, lh = (sum(x[i] for x in window) for i in range(4))
            updates[idx] = {"counted": counted, "under_streak_weeks": under, "over_streak_weeks": over,
                            "trailing_ticket_hours": round(th, 2),
                            "trailing_l1_share_pct": round(lh / th * 100, 2) if th > 0 else None,
                            "trailing_utilization_pct": round(b / a * 100, 2) if a > 0 else None}
    for idx, u in updates.items():
        for k, v in u.items():
            out.at[idx, k] = v
    return out


# ---- the stage -------------------------------------------------------------------------------------------------
def months_to_compute(ctx: RunContext, cfg: RamSettings) -> list[str]:
    """Partition months this run recomputes: all of them on a rebuild, else those the run's days touch."""
    if ctx.rebuild or not ctx.partition_values(TABLE, "month"):
        days = ctx.partition_values("processed.time_entries", "dt")
        first = date.fromisoformat(days[0]) if days else ctx.start
        first = min(first, ctx.start)
    else:
        first = ctx.start - timedelta(days=cfg.late_days)
    return sorted({p.month for p in periods_touching(first, ctx.end)})


def run(ctx: RunContext) -> None:
    from lakehouse.lake import Range

    cfg = ctx.config
    months = months_to_compute(ctx, cfg)
    periods = periods_of_months(months, ctx.end)
    if not periods:
        return
    first = min(p.start for p in periods)
    end = ctx.end.isoformat()
    techs = data.technicians(ctx.read_pandas("processed.technicians", {"dt": Range(None, end)}))
    cal = data.calendar(techs, ctx.read_pandas("processed.technician_pto", {"dt": Range(None, end)}), first,
                        ctx.end, cfg.workdays)
    entries = read_entries(ctx, first, ctx.end)
    tickets = ctx.read_pandas("processed.tickets", {"dt": Range((first - timedelta(days=60)).isoformat(), end)})
    rates = ctx.read_pandas("processed.technician_cost_rates", {"dt": Range(None, end)})
    ehr = ctx.read_pandas("processed.client_profitability_monthly",
                          {"month": Range(months[0], months[-1])})[["client_id", "month", "effective_hourly_rate"]]
    prev_first = first - timedelta(days=7 * (cfg.streak_weeks + 1))
    previous = ctx.read_pandas(TABLE, {"month": Range(f"{prev_first:%Y-%m}", f"{first - timedelta(days=1):%Y-%m}")})
    previous = previous[(previous["grain"] == "week") & (data.as_date(previous["period_start"]) < first)]
    out = transform(techs, cal, entries, tickets, periods, ctx.end, cfg, ehr=ehr, cost_rates=rates,
                    previous=previous)
    ctx.write(TABLE, out, replace=[{"month": m} for m in months])


def read_entries(ctx: RunContext, first: date, last: date) -> pd.DataFrame:
    """Time entries worked from ``first`` to ``last``, summed per technician, client, ticket, day and billable
    flag on the job engine (the only large input)."""
    from lakehouse.lake import Range

    t = ctx.table("processed.time_entries", {"dt": Range(first.isoformat(), last.isoformat())})
    t = t.filter((t.work_date >= first) & (t.work_date <= last))
    agg = t.group_by(["technician_id", "client_id", "ticket_id", "work_date", "billable"]).aggregate(
        hours=t.hours.sum())
    return ctx.engine.to_pandas(agg)

"""The margin monitor: ``client.profitability.changed`` events when a closed month shows a client's margin
moving down a tier (by more than ``cpi.tier_hysteresis_pp`` under the bound it crossed, so a margin
wobbling around a bound does not flap), dropping by more than ``cpi.margin_drop_pp`` points, or reaching
``cpi.problem_months`` consecutive months under the lowest tier (the "problem client" rule, DOMAIN.md
section 1 [R21]; section 7: the Resource and Sales agents consume it).

A month is judged once, on its closing day (last day + ``cpi.month_close_days``, when late invoices and
time entries are in), so the event's business date is that day and the dispatcher routes it in that day's
run. The event id hashes (type, client, month, rule): a rerun of the day writes the same ids, and this
stage replaces its own outbox partitions for the run's days, so nothing is ever duplicated.

Each event carries its evidence: the metric, its value, the threshold crossed, the rows it was computed
from (client and month keys of the profitability and report tables), and the main drivers: what changed
most from the month before, ranked by its effect on profit (labour cost, addition cost, billed revenue),
then the operational causes (labour hours, reactive hours, tickets, effective hourly rate).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from jobs.cpi.margin_report import TABLE as REPORT
from jobs.cpi.profitability import CLIENT_TABLE
from lakehouse.events import make_event
from lakehouse.transforms import add_months, month_of

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from jobs.cpi.settings import CpiSettings
    from lakehouse.context import RunContext

EVENT_TYPE = "client.profitability.changed"
SOURCE = "cpi.margin_monitor"
OUTBOX = "events.outbox"
#: (factor, column, effect on profit: +1 when a rise adds profit, -1 when it costs, 0 operational)
DRIVERS = (("labour_cost", "labour_cost", -1), ("addition_cost", "addition_cost", -1), ("billed", "billed", 1),
           ("labour_hours", "labour_hours", 0), ("reactive_hours", "reactive_hours", 0), ("tickets", "tickets", 0),
           ("effective_hourly_rate", "effective_hourly_rate", 0))


def closing_months(days: list[date], close_days: int) -> dict[str, date]:
    """Months that close on one of ``days`` → their closing day."""
    out = {}
    for d in days:
        last = d - timedelta(days=close_days)
        if (last + timedelta(days=1)).day == 1:
            out[month_of(last)] = d
    return out


def _num(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if v != v else v


def drivers(before: dict[str, Any] | None, after: dict[str, Any], cfg: CpiSettings, top: int = 4) -> list[dict]:
    """What changed most between two profitability rows of a client (see the module docstring)."""
    if before is None:
        return []
    found = []
    for factor, col, sign in DRIVERS:
        b, a = _num(before.get(col)), _num(after.get(col))
        if b is None or a is None or a == b:
            continue
        pct = (a - b) / abs(b) * 100 if b else None
        if pct is not None and abs(pct) < cfg.driver_min_change_pct:
            continue
        change = f"{pct:+.0f}%" if pct is not None else f"{a - b:+.2f} (from 0)"
        impact = abs(a - b) if sign and (a - b) * sign < 0 else 0.0  # money that cost profit this month
        found.append(({"factor": factor, "change": change, "before": round(b, 2), "after": round(a, 2)},
                      sign != 0, impact))
    money = sorted((d for d in found if d[1] and d[2] > 0), key=lambda d: -d[2])
    other = [d for d in found if not (d[1] and d[2] > 0)]
    return [d[0] for d in (money + other)[:top]]


def find_events(report: pd.DataFrame, profit: pd.DataFrame, months: dict[str, date], cfg: CpiSettings) -> list[dict]:
    """Events for the report rows of the closing ``months`` (pure: frames in, validated events out)."""
    keyed = {(r["client_id"], r["month"]): r for r in profit.to_dict("records")}
    events = []
    rows = report[report["month"].isin(list(months))].sort_values(["month", "client_id"])
    for r in rows.to_dict("records"):
        if r.get("margin_tier") is None or _num(r.get("margin_pct")) is None:
            continue
        m, cid = r["month"], r["client_id"]
        prev_m = add_months(m, -1)
        now, before = keyed.get((cid, m), {}), keyed.get((cid, prev_m))
        findings = []
        if r.get("tier_change") == "down":
            bound = cfg.tier_bounds[cfg.tier_rank(r["prev_tier"])]
            if _num(r["margin_pct"]) < bound - cfg.tier_hysteresis_pp:
                findings.append(("tier_down", "margin_pct", _num(r["margin_pct"]), bound, "<"))
        change = _num(r.get("margin_change_pp"))
        if change is not None and change <= -cfg.margin_drop_pp:
            findings.append(("margin_drop", "margin_change_pp", change, -cfg.margin_drop_pp, "<="))
        if int(r.get("months_below_lowest") or 0) == cfg.problem_months:
            findings.append(("problem_client", "margin_pct", _num(r["margin_pct"]), cfg.lowest_bound, "<"))
        if not findings:
            continue
        sources = [{"dataset": CLIENT_TABLE, "keys": {"client_id": cid, "month": m}},
                   {"dataset": REPORT, "keys": {"client_id": cid, "month": m}}]
        if before is not None:
            sources.insert(1, {"dataset": CLIENT_TABLE, "keys": {"client_id": cid, "month": prev_m}})
        why = drivers(before, now, cfg)
        for rule, metric, value, threshold, op in findings:
            lowest = r["margin_tier"] == cfg.tier_names[-1]
            severity = "critical" if rule == "problem_client" or (rule == "tier_down" and lowest) else "warning"
            data = {"client_id": cid, "period": m, "old_margin_pct": _num(r.get("prev_margin_pct")),
                    "new_margin_pct": _num(r["margin_pct"]), "old_tier": r.get("prev_tier"),
                    "new_tier": r["margin_tier"], "reason": rule,
                    "consecutive_months_below": int(r.get("months_below_lowest") or 0)}
            if r.get("suggested_action"):
                data["suggested_action"] = r["suggested_action"]
            evidence = {"metric": metric, "value": value, "threshold": threshold, "comparison": op,
                        "source_rows": sources, "drivers": why}
            events.append(make_event(EVENT_TYPE, SOURCE, f"client:{cid}", months[m], m, rule, data, evidence,
                                     severity=severity))
    return events


def run(ctx: RunContext) -> None:
    """Emit client.profitability.changed for tier drops, margin drops and problem clients of months
    closing on the run's days (a month is judged once, on its closing day: the events of past days are what
    was announced then, and a changed threshold judges the months that close from now on)."""
    cfg: CpiSettings = ctx.config
    months = closing_months(ctx.dates, cfg.month_close_days)
    events: list[dict] = []
    if months:
        wanted = sorted(set(months) | {add_months(m, -1) for m in months})
        report = ctx.read_pandas(REPORT, {"month": sorted(months)})
        profit = ctx.read_pandas(CLIENT_TABLE, {"month": wanted})
        events = find_events(report, profit, months, cfg)
    ctx.count(OUTBOX).notes.append(f"{len(events)} {EVENT_TYPE} event(s) for month(s) {sorted(months) or '-'}")
    ctx.emit(EVENT_TYPE, events)

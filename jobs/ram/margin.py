"""Rule 1 of the design (DOMAIN.md section 7): a client's margin drops below a tier → RAM answers with a margin
recovery plan for that client and month.

The handler reads the ``client.profitability.changed`` events routed to RAM (``events.inbox``, partition
``agent=ram``) for the run's days and keeps those whose reason is one of ``ram.react_reasons`` (default: a
tier drop or a problem client). For each client and month it writes one row of
``analytics.ram_margin_recommendations`` with three levers [R5][R18]:

* **target-hours budget**: the labour hours the month could have used and still made
  ``ram.target_margin_pct``: ``target_hours = ((1 − target margin) × billed − addition costs) / average
  hourly labour cost`` (labour cost / labour hours of the month, CPI's ``client_profitability_monthly``), and
  the hours over it. DOMAIN.md quotes MSPbots' Target Hours as ((target margin − additions / billed) ×
  billed) / rate; read literally that is the budget only when the target margin is 50 % (then 1 − m = m);
  for any other target it would not give the target margin, so the form that does is used;
* **move L1 work off senior technicians**: hours the client's tickets needing at most ``ram.l1_max_level``
  took from technicians of ``ram.senior_roles`` in the ``ram.repeat_lookback_months`` months ending with
  the event's, and the monthly saving if L1 technicians had done them (mean cost rate of the seniors who
  did minus the mean rate of the L1 technicians);
* **proactive fixes**: the (at most three) ticket categories of the client with at least
  ``ram.repeat_category_min`` tickets a month on average over those months, most frequent first.

Its own event, ``resource.margin.recommendation``, is published for each row (:func:`to_event`, ``caused_by``
the CPI events), and a ``resource.rescope.proposed`` consensus proposal when moving L1 work cannot close the gap
(:func:`to_proposal`); the run's next dispatch round delivers them. Each plan reads the inputs as known on its
trigger's day (:func:`as_of_day`), never up to the run's last day, so a rerun over any window writes the same
rows and events.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from jobs.ram import data

if TYPE_CHECKING:  # pragma: no cover
    from jobs.ram.settings import RamSettings
    from lakehouse.context import RunContext

TABLE = "analytics.ram_margin_recommendations"
INBOX = "events.inbox"
CONSUMED = "client.profitability.changed"
EVENT_TYPE = "resource.margin.recommendation"
PROPOSAL_TYPE = "resource.rescope.proposed"
SOURCE = "ram.margin"
PROFIT = "processed.client_profitability_monthly"


def month_add(month: str, n: int) -> str:
    y, m = int(month[:4]), int(month[5:7]) - 1 + n
    return f"{y + m // 12:04d}-{m % 12 + 1:02d}"


def month_days(month: str) -> tuple[date, date]:
    first = date(int(month[:4]), int(month[5:7]), 1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first, nxt - timedelta(days=1)


def triggers(inbox: pd.DataFrame, cfg: RamSettings) -> list[dict[str, Any]]:
    """The (client, month) pairs to answer, from the inbox rows: [{client_id, period, day, reasons,
    event_ids, margin_pct}] (several CPI findings about one client-month make one plan)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    if inbox is None or inbox.empty:
        return []
    rows = inbox[inbox["event_type"] == CONSUMED].sort_values(["dt", "event_id"])
    for r in rows.to_dict("records"):
        env = json.loads(r["envelope"])
        d = env.get("data", {})
        if d.get("reason") not in cfg.react_reasons:
            continue
        key = (d["client_id"], d["period"])
        t = out.setdefault(key, {"client_id": key[0], "period": key[1], "day": str(r["dt"]), "reasons": [],
                                 "event_ids": [], "margin_pct": d.get("new_margin_pct")})
        if d["reason"] not in t["reasons"]:
            t["reasons"].append(d["reason"])
        t["event_ids"].append(env["id"])
        t["day"] = min(t["day"], str(r["dt"]))
    for t in out.values():
        t["reasons"].sort()
        t["event_ids"].sort()
    return [out[k] for k in sorted(out)]


def transform(found: list[dict[str, Any]], profit: pd.DataFrame, tickets: pd.DataFrame, entries: pd.DataFrame,
              techs: dict[str, data.Technician], cost_rates: pd.DataFrame, cfg: RamSettings) -> pd.DataFrame:
    """One recommendation row per trigger (pure: frames in, rows out)."""
    cols = ["client_id", "period", "source_event_ids", "reasons", "margin_pct", "target_margin_pct", "billed",
            "addition_cost", "labour_hours", "labour_cost", "avg_hourly_cost", "target_hours", "hours_over_budget",
            "senior_l1_hours", "senior_l1_saving", "repeat_categories", "actions", "recommendation", "dt"]
    if not found:
        return pd.DataFrame(columns=cols)
    prof = {(r["client_id"], r["month"]): r for r in profit.to_dict("records")} if not profit.empty else {}
    t = data.latest_rows(tickets, ["ticket_id"]) if not tickets.empty else tickets
    level = (pd.Series(t["required_skill_level"].astype(int).to_numpy(), index=t["ticket_id"].to_numpy())
             if not t.empty else pd.Series(dtype="int64"))
    rates = data.rate_lookup(cost_rates)
    # each client's ticket time and tickets, with the columns the triggers look at, prepared once (a backfill
    # has thousands of triggers; filtering and mapping the whole history for each took 2-3 s a day)
    e_all = entries[entries["ticket_id"].notna()].copy()
    e_all["day"] = data.as_date(e_all["work_date"]).to_numpy() if len(e_all) else []
    e_all["level"] = e_all["ticket_id"].map(level)
    e_all["role"] = e_all["technician_id"].map({tid: tc.role for tid, tc in techs.items()})
    entries_of = dict(tuple(e_all.groupby("client_id", sort=False))) if len(e_all) else {}
    if not t.empty:
        t = t.assign(_created=data.as_date(t["created_at"]).to_numpy())
    tickets_of = dict(tuple(t.groupby("client_id", sort=False))) if not t.empty else {}
    rows = []
    for f in found:
        cid, m = f["client_id"], f["period"]
        p = prof.get((cid, m), {})
        billed, add = _f(p.get("billed")), _f(p.get("addition_cost"))
        hours, cost = _f(p.get("labour_hours")), _f(p.get("labour_cost"))
        avg = cost / hours if hours and cost is not None else None
        target = None
        if billed and avg:
            target = round(max(0.0, ((1 - cfg.target_margin_pct / 100.0) * billed - (add or 0.0)) / avg), 2)
        over = round(hours - target, 2) if target is not None and hours is not None else None
        first, _ = month_days(month_add(m, -(cfg.repeat_lookback_months - 1)))
        _, last = month_days(m)
        months = cfg.repeat_lookback_months
        # senior time on L1 work for this client
        e = entries_of.get(cid, e_all.head(0))
        e = e[(e["day"] >= first) & (e["day"] <= last)]
        sl1 = e[e["role"].isin(cfg.senior_roles) & e["level"].notna() & (e["level"] <= cfg.l1_max_level)]
        sl1_hours = round(float(sl1["hours"].astype(float).sum()), 2)
        saving = None
        if sl1_hours:
            senior = [data.rate_on(rates.get(tid, []), d) for tid, d in zip(sl1["technician_id"], sl1["day"],
                                                                            strict=True)]
            senior = [r for r in senior if r is not None]
            l1 = [data.rate_on(rates.get(tid, []), last) for tid, tc in techs.items() if tc.role == "L1"
                  and tc.employed_on(last)]
            l1 = [r for r in l1 if r is not None]
            if senior and l1:
                saving = round(sl1_hours / months * (sum(senior) / len(senior) - sum(l1) / len(l1)), 2)
        # repeat categories
        tk = tickets_of.get(cid, t.head(0))
        tk = tk[(tk["_created"] >= first) & (tk["_created"] <= last)] if not tk.empty else tk
        counts = tk["category"].value_counts() if not tk.empty else pd.Series(dtype=int)
        repeat = [(c, int(n)) for c, n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))
                  if n / months >= cfg.repeat_category_min][:3]
        actions, text = [], []
        if target is not None:
            actions.append("target_hours_budget")
            text.append(f"Budget {target:.1f} h a month to reach a {cfg.target_margin_pct:.0f} % margin"
                        + (f" ({over:+.1f} h against {m})." if over is not None else "."))
        if sl1_hours > 0:
            actions.append("move_l1_off_seniors")
            text.append(f"Move L1 work off senior technicians: {sl1_hours:.1f} h in {months} month(s)"
                        + (f", about ${saving:,.0f} a month." if saving else "."))
        if repeat:
            actions.append("proactive_fix")
            text.append("Proactive fixes for repeat categories: " + ", ".join(f"{c} ({n})" for c, n in repeat[:3])
                        + ".")
        rows.append({"client_id": cid, "period": m, "source_event_ids": ",".join(f["event_ids"]),
                     "reasons": ",".join(f["reasons"]), "margin_pct": _f(f.get("margin_pct")),
                     "target_margin_pct": cfg.target_margin_pct, "billed": billed, "addition_cost": add,
                     "labour_hours": hours, "labour_cost": cost,
                     "avg_hourly_cost": round(avg, 2) if avg is not None else None, "target_hours": target,
                     "hours_over_budget": over, "senior_l1_hours": sl1_hours, "senior_l1_saving": saving,
                     "repeat_categories": ", ".join(f"{c}:{n}" for c, n in repeat), "actions": ",".join(actions),
                     "recommendation": " ".join(text) or "No lever found in RAM's data for this month.",
                     "dt": f["day"]})
    return pd.DataFrame(rows, columns=cols)


def _f(v) -> float | None:
    if v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if x != x else x


def to_event(row: dict[str, Any]) -> dict[str, Any]:
    """``resource.margin.recommendation`` for one recommendation row (one per client and month)."""
    from lakehouse.events import episode_id, make_event

    subject = f"client:{row['client_id']}"
    reasons = [r for r in str(row["reasons"]).split(",") if r]
    payload = {"client_id": row["client_id"], "period": row["period"],
               "source_event_ids": [e for e in str(row["source_event_ids"]).split(",") if e], "reasons": reasons,
               "margin_pct": _f(row.get("margin_pct")), "target_margin_pct": float(row["target_margin_pct"]),
               "target_hours": _f(row.get("target_hours")), "labour_hours": _f(row.get("labour_hours")),
               "hours_over_budget": _f(row.get("hours_over_budget")),
               "senior_l1_hours": float(row.get("senior_l1_hours") or 0.0),
               "senior_l1_saving": _f(row.get("senior_l1_saving")),
               "repeat_categories": [c.split(":")[0] for c in str(row.get("repeat_categories") or "").split(", ") if c],
               "actions": [a for a in str(row.get("actions") or "").split(",") if a]}
    evidence = {"metric": "hours_over_budget", "value": _f(row.get("hours_over_budget")),
                "threshold": 0, "comparison": ">",
                "source_rows": [{"dataset": TABLE, "keys": {"client_id": row["client_id"], "period": row["period"]}},
                                {"dataset": PROFIT, "keys": {"client_id": row["client_id"], "month": row["period"]}}]}
    day = date.fromisoformat(str(row["dt"]))
    episode = {"id": episode_id(EVENT_TYPE, subject, "margin_plan", row["period"]), "state": "opened",
               "opened": day.isoformat()}
    return make_event(EVENT_TYPE, SOURCE, subject, day, row["period"], "margin_plan", payload, evidence,
                      severity="warning", episode=episode, caused_by=payload["source_event_ids"])


def to_proposal(row: dict[str, Any], recommendation: dict[str, Any]) -> dict[str, Any] | None:
    """``resource.rescope.proposed`` (a consensus proposal, rule 4) when the hours over the target budget exceed
    the senior hours on L1 work a month (moving that work cannot close the gap): the agreement needs rescoping
    or repricing. None otherwise."""
    from lakehouse.events import make_event

    over = _f(row.get("hours_over_budget"))
    sl1 = float(row.get("senior_l1_hours") or 0.0) / 1.0
    if over is None or over <= 0 or over <= sl1:
        return None
    avg = _f(row.get("avg_hourly_cost"))
    subject = f"client:{row['client_id']}"
    proposal_id = f"rescope:{row['client_id']}:{row['period']}"
    gap = round(over * avg, 2) if avg is not None else None
    data = {"proposal_id": proposal_id, "action": "rescope", "client_id": row["client_id"], "period": row["period"],
            "margin_pct": _f(row.get("margin_pct")), "target_margin_pct": _f(row.get("target_margin_pct")),
            "hours_over_budget": over, "senior_l1_hours": sl1, "monthly_gap_usd": gap,
            "recommendation_event_id": recommendation["id"],
            "summary": f"{over:.1f} h over the target-hours budget in {row['period']}, {sl1:.1f} h of senior L1 work "
                       "to move: rescope or reprice the agreement"}
    evidence = {"metric": "hours_over_budget", "value": over, "threshold": sl1, "comparison": ">",
                "source_rows": [{"dataset": TABLE, "keys": {"client_id": row["client_id"], "period": row["period"]}}]}
    return make_event(PROPOSAL_TYPE, SOURCE, subject, date.fromisoformat(str(row["dt"])), row["period"], "rescope",
                      data, evidence, severity="warning", caused_by=[recommendation["id"]])


def as_of_day(ctx: RunContext, found: list[dict[str, Any]], day: str) -> pd.DataFrame:
    """The recommendations of the triggers of one day, from the inputs as known on that day (tickets, time
    entries, technicians and cost rates exported up to it; CPI's profitability of the month): a trigger's plan
    never depends on the run's window, so a rerun over any days writes the same rows."""
    from lakehouse.lake import Range

    cfg = ctx.config
    months = sorted({f["period"] for f in found})
    first, _ = month_days(month_add(months[0], -(cfg.repeat_lookback_months - 1)))
    profit = ctx.read_pandas(PROFIT, {"month": months})  # partitioned by month: one row per client and month
    tickets = ctx.read_pandas("processed.tickets", {"dt": Range((first - timedelta(days=1)).isoformat(), day)})
    t = ctx.table("processed.time_entries", {"dt": Range(first.isoformat(), day)})
    entries = ctx.engine.to_pandas(t.filter(t.ticket_id.notnull()).select(
        "technician_id", "client_id", "ticket_id", "work_date", "hours"))
    techs = data.technicians(ctx.read_pandas("processed.technicians", {"dt": Range(None, day)}))
    rates = ctx.read_pandas("processed.technician_cost_rates", {"dt": Range(None, day)})
    return transform(found, profit, tickets, entries, techs, rates, cfg)


def run(ctx: RunContext) -> None:
    cfg = ctx.config
    inbox = ctx.read_pandas(INBOX, {"agent": "ram", "dt": ctx.days})
    found = triggers(inbox, cfg)
    by_day: dict[str, list[dict[str, Any]]] = {}
    for f in found:
        by_day.setdefault(f["day"], []).append(f)
    frames = [as_of_day(ctx, todo, day) for day, todo in sorted(by_day.items())]
    empty = transform([], pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), {}, pd.DataFrame(), cfg)
    frame = pd.concat(frames, ignore_index=True) if frames else empty
    ctx.write(TABLE, frame, replace=[{"dt": d} for d in ctx.days])
    if ctx.stage is not None and "events.outbox" in ctx.stage.writes:
        rows = frame.to_dict("records")
        recommendations = [to_event(r) for r in rows]
        ctx.emit(EVENT_TYPE, recommendations)
        proposals = [to_proposal(r, e) for r, e in zip(rows, recommendations, strict=True)] if cfg.propose_rescope \
            else []
        ctx.emit(PROPOSAL_TYPE, [p for p in proposals if p is not None])

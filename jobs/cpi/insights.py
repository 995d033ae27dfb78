"""Insights: a short plain-language note per unprofitable or at-risk client, for the MSP owner.

On the run's last day, a client gets a note when its last closed month is in the lowest margin tier (or
it is a problem client), or when today's churn probability reaches ``cpi.churn_risk_threshold``. The note
says how its margin moved over the last closed months, what drove the last change (the same drivers as
the margin monitor's events), its churn risk with the signals behind it, and the suggested action from
DOMAIN.md section 1 "Alerts/decisions" (reprice / rescope / add exclusions; review over-consumption;
account-manager outreach and a QBR for churn risk).

The text comes from :func:`render` (a template) unless ``cpi.insights_provider = "bedrock"``, which asks
a Bedrock model to rewrite the same facts (:mod:`lakehouse.insights`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from jobs.cpi.churn import PREDICTIONS
from jobs.cpi.margin_monitor import _num, drivers
from jobs.cpi.margin_report import TABLE as REPORT
from jobs.cpi.profitability import CLIENT_TABLE
from lakehouse.transforms import add_months, closing_day, month_of

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from jobs.cpi.settings import CpiSettings
    from lakehouse.context import RunContext
    from lakehouse.insights import InsightProvider

TABLE = "analytics.client_insights"
CHURN_ACTION = "Account-manager outreach and a QBR: churn risk {p:.0%} is at or above {t:.0%}"


def last_closed_month(d: date, close_days: int) -> str:
    """The latest month whose closing day (last day + ``close_days``) is on or before ``d``."""
    m = month_of(d)
    while closing_day(m, close_days) > d:
        m = add_months(m, -1)
    return m


def _pct(x) -> str:
    return "n/a" if x is None else f"{x:.1f}%"


def render(f: Mapping[str, Any]) -> str:
    """The template note (see the module docstring)."""
    who = f"{f.get('client_name') or f['client_id']} ({f['client_id']})"
    parts = []
    if f.get("unprofitable"):
        trend = " → ".join(f"{_pct(v)} ({m})" for m, v in f["margin_trend"])
        streak = (f", under {f['lowest_bound']:g}% for {f['months_below_lowest']} months running"
                  if f.get("months_below_lowest", 0) >= 2 else "")
        parts.append(f"{who} is unprofitable: margin {trend}, tier {f.get('margin_tier')}{streak}.")
    else:
        parts.append(f"{who} has a {f.get('margin_tier') or 'no'} margin tier "
                     f"({_pct(f.get('margin_pct'))} in {f['month']}) but is at risk of leaving.")
    if f.get("drivers"):
        parts.append("Main changes from the month before: " + ", ".join(
            f"{d['factor'].replace('_', ' ')} {d['change']} ({d['before']:g} → {d['after']:g})"
            for d in f["drivers"]) + ".")
    if f.get("churn_probability") is not None:
        why = f": {f['signals']}" if f.get("signals") else ""
        parts.append(f"Churn risk {f['churn_probability']:.0%} ({f.get('risk_band')}){why}.")
    if f.get("suggested_action"):
        parts.append(f"Suggested action: {f['suggested_action']}.")
    return " ".join(parts)


def build_facts(report: pd.DataFrame, profit: pd.DataFrame, churn: pd.DataFrame, day: date,
                cfg: CpiSettings) -> list[dict[str, Any]]:
    """One facts mapping per client that needs a note (pure: frames in, dicts out)."""
    month = last_closed_month(day, cfg.month_close_days)
    rep = report[report["month"] <= month]
    keyed = {(r["client_id"], r["month"]): r for r in profit.to_dict("records")}
    risk = {r["client_id"]: r for r in churn.to_dict("records")}
    last = {r["client_id"]: r for r in rep[rep["month"] == month].to_dict("records")}
    out = []
    for cid in sorted(set(last) | set(risk)):
        r = last.get(cid, {})
        c = risk.get(cid)
        p = _num(c.get("churn_probability")) if c else None
        lowest = r.get("margin_tier") == cfg.tier_names[-1]
        unprofitable = bool(r) and (lowest or bool(r.get("problem_client")))
        at_risk = p is not None and p >= cfg.churn_risk_threshold
        if not (unprofitable or at_risk):
            continue
        hist = rep[rep["client_id"] == cid].sort_values("month").tail(3)
        actions = [a for a in (r.get("suggested_action"),) if a]
        if at_risk:
            actions.append(CHURN_ACTION.format(p=p, t=cfg.churn_risk_threshold))
        out.append({
            "client_id": cid, "client_name": r.get("client_name") or (c or {}).get("client_name"),
            "month": month, "reason": "+".join(n for n, ok in (("unprofitable", unprofitable),
                                                               ("churn_risk", at_risk)) if ok),
            "unprofitable": unprofitable, "margin_pct": _num(r.get("margin_pct")), "margin_tier": r.get("margin_tier"),
            "margin_trend": [(m, _num(v)) for m, v in zip(hist["month"], hist["margin_pct"], strict=True)],
            "months_below_lowest": int(r.get("months_below_lowest") or 0), "lowest_bound": cfg.lowest_bound,
            "drivers": drivers(keyed.get((cid, add_months(month, -1))), keyed.get((cid, month), {}), cfg, top=3),
            "churn_probability": p, "risk_band": (c or {}).get("risk_band"), "signals": (c or {}).get("signals"),
            "suggested_action": "; ".join(actions) or None,
        })
    return out


def transform(facts: list[dict[str, Any]], provider: InsightProvider, day: date) -> pd.DataFrame:
    """The rows of ``analytics.client_insights`` for ``day``."""
    import json

    import pandas as pd

    rows = []
    for f in facts:
        note = provider.explain(f, render)
        rows.append({"client_id": f["client_id"], "client_name": f["client_name"], "reason": f["reason"],
                     "month": f["month"], "margin_pct": f["margin_pct"], "margin_tier": f["margin_tier"],
                     "churn_probability": f["churn_probability"], "risk_band": f["risk_band"],
                     "drivers": json.dumps(f["drivers"]) if f["drivers"] else None,
                     "suggested_action": f["suggested_action"], "insight": note.text, "provider": note.provider,
                     "dt": day.isoformat()})
    cols = ["client_id", "client_name", "reason", "month", "margin_pct", "margin_tier", "churn_probability",
            "risk_band", "drivers", "suggested_action", "insight", "provider", "dt"]
    return pd.DataFrame(rows, columns=cols)


def make_provider(cfg: CpiSettings, region: str | None = None) -> InsightProvider:
    from lakehouse.insights import provider

    return provider(cfg.insights_provider, model_id=cfg.bedrock_model_id, max_tokens=cfg.bedrock_max_tokens,
                    region=region)


def run(ctx: RunContext) -> None:
    """A plain-language note per unprofitable or at-risk client, for the run's last day."""
    cfg: CpiSettings = ctx.config
    day = ctx.end
    month = last_closed_month(day, cfg.month_close_days)
    report = ctx.read_pandas(REPORT)
    profit = ctx.read_pandas(CLIENT_TABLE, {"month": [add_months(month, -1), month]})
    churn = ctx.read_pandas(PREDICTIONS, {"dt": day.isoformat()})
    facts = build_facts(report, profit, churn, day, cfg)
    out = transform(facts, make_provider(cfg, ctx.settings.aws_region), day)
    ctx.write(TABLE, out, replace=[{"dt": day.isoformat()}])

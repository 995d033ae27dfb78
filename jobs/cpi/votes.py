"""CPI's consensus vote (lakehouse/consensus.py, rule 4 of DOMAIN.md section 7): a high churn risk vetoes a price
increase or rescope of the client.

The client's churn probability is its latest ``analytics.churn`` row on or before the proposal's day; the veto
threshold is ``cpi.churn_risk_threshold`` (the "high" band). **The utilization ↔ churn tension** [R27] is
encoded here: when the technicians were over ``cpi.churn_veto_tension_utilization_pct`` utilized in the last
complete month (RAM's ``analytics.technician_utilization``, billable / available hours of all technicians), service
is stretched and a price increase is riskier, so the threshold is lowered by ``cpi.churn_veto_tension_discount``;
the vote's note says so. Mode: ``cpi.churn_veto_mode`` (enforce, warn, dry_run).
"""

from __future__ import annotations

from typing import Any

CHURN = "analytics.churn"
UTILIZATION = "analytics.technician_utilization"


def _monthly_utilization(ctx) -> list[dict[str, Any]]:
    """The monthly rows of RAM's utilization table, read once per stage (a vote runs once per proposal)."""
    def read():
        t = ctx.table(UTILIZATION)
        t = t.filter(t.grain == "month")
        return t.select("period", "period_end", "billable_hours", "available_hours").to_pyarrow().to_pylist()

    return ctx.cached((__name__, UTILIZATION), read)


def _churn_by_client(ctx) -> dict[str, list[dict[str, Any]]]:
    """Every client's churn scores (dt, probability, band), read once per stage."""
    def read():
        rows = ctx.table(CHURN).select("client_id", "churn_probability", "risk_band", "dt").to_pyarrow().to_pylist()
        out: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            out.setdefault(r["client_id"], []).append(r)
        return out

    return ctx.cached((__name__, CHURN), read)


def team_utilization(ctx, day) -> tuple[float | None, str | None]:
    """(billable / available hours x 100 of all technicians, month) of the last complete month before ``day``."""
    rows = [r for r in _monthly_utilization(ctx) if r["period_end"] < day]
    if not rows:
        return None, None
    month = max(r["period"] for r in rows)
    avail = sum(r["available_hours"] or 0 for r in rows if r["period"] == month)
    bill = sum(r["billable_hours"] or 0 for r in rows if r["period"] == month)
    return (round(100.0 * bill / avail, 2) if avail else None), month


def churn_veto(proposal: dict[str, Any], ctx, cfg) -> dict[str, Any]:
    client = proposal["data"].get("client_id")
    if not client:
        return {"decision": "abstain", "note": "the proposal names no client"}
    day = proposal["time"]
    rows = [r for r in _churn_by_client(ctx).get(client, ()) if str(r["dt"]) <= day.isoformat()]
    if not rows:
        return {"decision": "abstain", "metric": "churn_probability", "note": f"no churn score for {client}"}
    last = max(rows, key=lambda r: str(r["dt"]))
    threshold = float(cfg.churn_risk_threshold)
    util, month = team_utilization(ctx, day)
    note = f"risk band {last['risk_band']}"
    sources = [{"dataset": CHURN, "keys": {"client_id": client, "dt": str(last["dt"])}}]
    if util is not None and util > cfg.churn_veto_tension_utilization_pct:
        lowered = round(max(0.0, threshold - cfg.churn_veto_tension_discount), 4)
        note += (f"; threshold lowered from {threshold} to {lowered}: technician utilization {util} % in {month} > "
                 f"{cfg.churn_veto_tension_utilization_pct} % (stretched service raises churn: utilization ↔ churn)")
        threshold = lowered
        sources.append({"dataset": UTILIZATION, "keys": {"grain": "month", "period": month}})
    p = float(last["churn_probability"])
    return {"decision": "veto" if p >= threshold else "approve", "metric": "churn_probability", "value": p,
            "threshold": threshold, "comparison": ">=", "note": note, "source_rows": sources}

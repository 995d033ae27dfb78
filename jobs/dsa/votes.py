"""DSA's consensus vote (lakehouse/consensus.py, rule 4): a budget overrun vetoes new spend (and hiring). The
department is the proposal's ``department`` (else every department); the month is the proposal day's. Overrun:
the forecast of the month end (or the actual, whichever is higher) at or above ``dsa.budget_veto_pct`` % of the
budget (``analytics.spend_budget_monthly``). Mode: ``dsa.budget_veto_mode``.
"""

from __future__ import annotations

from typing import Any

BUDGET = "analytics.spend_budget_monthly"


def budget_veto(proposal: dict[str, Any], ctx, cfg) -> dict[str, Any]:
    day = proposal["time"]
    month = day.isoformat()[:7]
    dept = proposal["data"].get("department")
    t = ctx.table(BUDGET)
    t = t.filter((t.month == month) & (t.as_of <= day))
    if dept:
        t = t.filter(t.department == dept)
    rows = t.select("department", "month", "as_of", "budget", "actual", "forecast_month_end").to_pyarrow().to_pylist()
    latest: dict[str, dict] = {}
    for r in rows:
        if r["department"] not in latest or r["as_of"] > latest[r["department"]]["as_of"]:
            latest[r["department"]] = r
    budget = sum(r["budget"] or 0 for r in latest.values())
    if not budget:
        return {"decision": "abstain", "metric": "spend_pct_of_budget",
                "note": f"no budget for {dept or 'any department'} in {month}"}
    spend = sum(max(r["actual"] or 0, r["forecast_month_end"] or 0) for r in latest.values())
    pct = round(100.0 * spend / budget, 2)
    return {"decision": "veto" if pct >= cfg.budget_veto_pct else "approve", "metric": "spend_pct_of_budget",
            "value": pct, "threshold": cfg.budget_veto_pct, "comparison": ">=",
            "note": f"{dept or 'all departments'}, {month}",
            "source_rows": [{"dataset": BUDGET, "keys": {"department": d, "month": month}} for d in sorted(latest)]}

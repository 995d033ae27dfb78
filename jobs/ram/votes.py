"""RAM's consensus votes (lakehouse/consensus.py, rule 4): technician utilization above
``ram.utilization_veto_pct`` (85 %) in the last complete month vetoes taking a low-margin deal (no capacity to
serve it well); it approves hiring then, and abstains on hiring otherwise. Utilization is billable / available
hours of all technicians (``analytics.technician_utilization``, monthly rows). Mode: ``ram.utilization_veto_mode``.
"""

from __future__ import annotations

from typing import Any

UTILIZATION = "analytics.technician_utilization"


def utilization_veto(proposal: dict[str, Any], ctx, cfg) -> dict[str, Any]:
    day = proposal["time"]
    t = ctx.table(UTILIZATION)
    t = t.filter((t.grain == "month") & (t.period_end < day))
    rows = t.select("period", "billable_hours", "available_hours").to_pyarrow().to_pylist()
    if not rows:
        return {"decision": "abstain", "metric": "utilization_pct", "note": "no complete month of utilization"}
    month = max(r["period"] for r in rows)
    avail = sum(r["available_hours"] or 0 for r in rows if r["period"] == month)
    util = round(100.0 * sum(r["billable_hours"] or 0 for r in rows if r["period"] == month) / avail, 2) if avail \
        else None
    if util is None:
        return {"decision": "abstain", "metric": "utilization_pct", "note": f"no available hours in {month}"}
    over = util > cfg.utilization_veto_pct
    hire = {True: "approve", False: "abstain"}
    decision = hire[over] if proposal["action"] == "hire" else ("veto" if over else "approve")
    return {"decision": decision, "metric": "utilization_pct", "value": util, "threshold": cfg.utilization_veto_pct,
            "comparison": ">", "note": f"all technicians, {month}",
            "source_rows": [{"dataset": UTILIZATION, "keys": {"grain": "month", "period": month}}]}

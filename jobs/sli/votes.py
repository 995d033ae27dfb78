"""SLI's consensus vote (lakehouse/consensus.py, rule 4): a licence compliance shortfall vetoes cancelling seats
before a renewal. The client's shortfall is the seats assigned beyond those bought on its latest
``processed.licence_position`` snapshot on or before the proposal's day (summed over SKUs, or the proposal's
``sku_part_number``); at or above ``sli.compliance_veto_seats`` it vetoes. Mode: ``sli.compliance_veto_mode``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from lakehouse.lake import Range

POSITION = "processed.licence_position"


def compliance_veto(proposal: dict[str, Any], ctx, cfg) -> dict[str, Any]:
    client = proposal["data"].get("client_id")
    if not client:
        return {"decision": "abstain", "note": "the proposal names no client"}
    day = proposal["time"]
    t = ctx.table(POSITION, {"dt": Range((day - timedelta(days=62)).isoformat(), day.isoformat())})
    t = t.filter(t.client_id == client)
    sku = proposal["data"].get("sku_part_number")
    if sku:
        t = t.filter(t.sku_part_number == sku)
    rows = t.select("snapshot_date", "sku_part_number", "entitled", "assigned").to_pyarrow().to_pylist()
    if not rows:
        return {"decision": "abstain", "metric": "shortfall_seats", "note": f"no licence position for {client}"}
    snap = max(r["snapshot_date"] for r in rows)
    short = sum(max(0, int(r["assigned"]) - int(r["entitled"])) for r in rows if r["snapshot_date"] == snap)
    return {"decision": "veto" if short >= cfg.compliance_veto_seats else "approve", "metric": "shortfall_seats",
            "value": float(short), "threshold": cfg.compliance_veto_seats, "comparison": ">=",
            "note": f"snapshot {snap}",
            "source_rows": [{"dataset": POSITION, "keys": {"client_id": client, "snapshot_date": str(snap)}}]}

"""How the anomaly detector is measured against planted truth (the synthetic MSP's ``spend_anomalies.csv``).

A planted anomaly is **found** when an *alerted* anomaly record matches it: the record's segment is one of the
planted anomaly's segments (its department, its vendor or cloud service, its resource), or the record's top root
cause names its vendor or resource, and the record's start is within ``tolerance_days`` of the planted start.
**Precision** is the share of alerted records that match some planted anomaly; **recall** the share of planted
anomalies found. For each found anomaly: whether the top root cause names the planted vendor (expenses) or
resource (cloud), and the **time to detection**: days from the planted start to the day the record was first
alerted. The truth is read by this evaluation only, never by the agent.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def planted_segments(r: dict[str, Any]) -> set[tuple[str, str]]:
    out = {("department", str(r["department"]))}
    if r["source"] == "expenses":
        out.add(("vendor", str(r["vendor_or_service"])))
    else:
        out.add(("service", str(r["vendor_or_service"])))
        if isinstance(r.get("resource_id"), str) and r["resource_id"]:
            out.add(("resource", r["resource_id"]))
    return out


def _root_matches(rec: dict[str, Any], r: dict[str, Any]) -> bool:
    top = (rec.get("root_causes") or [{}])[0] if rec.get("root_causes") is not None else {}
    if r["source"] == "expenses":
        return top.get("vendor") == r["vendor_or_service"]
    res = r.get("resource_id")
    return bool(isinstance(res, str) and res and top.get("resource") == res) or (
        top.get("service") == r["vendor_or_service"] and top.get("department") == r["department"])


def evaluate(records: pd.DataFrame, truth: pd.DataFrame, tolerance_days: int = 2) -> dict[str, Any]:
    """Recall, precision, root-cause accuracy and time to detection (see the module docstring)."""
    alerts = records[records["alerted"]].copy() if len(records) else records
    matched: dict[str, str] = {}
    per: list[dict[str, Any]] = []
    for r in truth.to_dict("records"):
        start = pd.Timestamp(r["start_date"]).date()
        segs = planted_segments(r)
        hits = []
        for a in alerts.to_dict("records"):
            if abs((a["start_date"] - start).days) > tolerance_days:
                continue
            if (a["dimension"], a["segment"]) in segs or _root_matches(a, r):
                hits.append(a)
        for a in hits:
            matched[a["anomaly_id"]] = r["anomaly_id"]
        first = min(hits, key=lambda a: (a["alerted_on"], a["start_date"])) if hits else None
        per.append({"anomaly_id": r["anomaly_id"], "source": r["source"], "kind": r["kind"],
                    "department": r["department"], "vendor_or_service": r["vendor_or_service"],
                    "start_date": start, "found": bool(hits),
                    "segment": f"{first['dimension']}={first['segment']}" if first else None,
                    "detected_start": first["start_date"] if first else None,
                    "alerted_on": first["alerted_on"] if first else None,
                    "days_to_detect": (first["alerted_on"] - start).days if first else None,
                    "root_cause_correct": _root_matches(first, r) if first else None,
                    "top_root_cause": first.get("top_root_cause") if first else None})
    per_df = pd.DataFrame(per)
    n_alerts = len(alerts)
    found = int(per_df["found"].sum()) if len(per_df) else 0
    tp = sum(1 for a in alerts["anomaly_id"] if a in matched) if n_alerts else 0
    ttd = per_df.loc[per_df["found"], "days_to_detect"]
    rc = per_df.loc[per_df["found"], "root_cause_correct"]
    return {"planted": len(per_df), "found": found, "recall": round(found / len(per_df), 3) if len(per_df) else None,
            "alerts": n_alerts, "true_alerts": tp, "precision": round(tp / n_alerts, 3) if n_alerts else None,
            "root_cause_correct": int(rc.sum()) if len(rc) else 0,
            "median_days_to_detect": float(ttd.median()) if len(ttd) else None,
            "max_days_to_detect": int(ttd.max()) if len(ttd) else None,
            "per_anomaly": per_df, "false_alerts": alerts[~alerts["anomaly_id"].isin(matched)] if n_alerts else alerts}

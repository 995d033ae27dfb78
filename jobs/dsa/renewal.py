"""Rule 3 of the design (DOMAIN.md section 7): a vendor contract's renewal is due → DSA builds the vendor's
spend packet, so that whoever decides to renew, renegotiate or leave sees what the vendor costs.

The handler reads the ``contract.renewal.due`` events VCM emits, routed to DSA (``events.inbox``, partition
``agent=dsa``) on the run's days, and writes one row of ``analytics.vendor_spend_packets`` per event:

* **12-month spend**: BilledCost paid to the vendor (any source: expenses, licences, cloud) over the
  ``dsa.packet_months`` months ending with the event's month, and month by month (``monthly_spend``);
* **trend**: the least-squares slope of that monthly spend, as % of its mean per month;
* **share of department budget**: the vendor's spend over the same months / the budgets of the departments
  it was charged to (the department with most of it first);
* **anomalies**: alerted spend anomalies of the vendor (its own segment, or a top root cause naming it) that
  started in those months, their number and total impact;
* **forecast if renewed**: the next 12 months at the current run-rate grown by the trend (12-month spend x
  (1 + 12 x trend), never below 0), beside the contract's stated annual value.

The vendor is matched on the event's ``vendor_id`` (the PSA vendor master, ``processed.vendors``) or else its
``counterparty`` name, case-insensitively. Its own event ``spend.renewal.packet`` is published for each row
(:func:`to_event`, ``caused_by`` the renewal event). Each packet reads the inputs as known on its event's day,
never up to the run's last day, so a rerun over any window writes the same rows and events.
"""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jobs.dsa.budget import BUDGETS, latest_budgets
from jobs.dsa.costs import LEAVES
from lakehouse.transforms import add_months, month_of, months_between

if TYPE_CHECKING:  # pragma: no cover
    from jobs.dsa.settings import DsaSettings
    from lakehouse.context import RunContext

PACKETS = "analytics.vendor_spend_packets"
INBOX = "events.inbox"
CONSUMED = "contract.renewal.due"
EVENT_TYPE = "spend.renewal.packet"
SOURCE = "dsa.renewal"
ANOMALIES = "analytics.spend_anomalies"
VENDORS = "processed.vendors"


def triggers(inbox: pd.DataFrame) -> list[dict[str, Any]]:
    """The renewal events of the inbox, as (event id, day, data) dicts, in a stable order."""
    out = []
    if inbox is None or inbox.empty:
        return out
    rows = inbox[inbox["event_type"] == CONSUMED].sort_values(["event_time", "event_id"])
    for r in rows.to_dict("records"):
        env = json.loads(r["envelope"])
        out.append({"event_id": r["event_id"], "day": date.fromisoformat(env["time"]), "data": env["data"],
                    "episode": (env.get("episode") or {}).get("id")})
    return out


def vendor_name(data: dict[str, Any], vendors: pd.DataFrame) -> str:
    """The vendor name the cost lines use: the master's name for ``vendor_id``, else the counterparty."""
    vid = data.get("vendor_id")
    if vid and vendors is not None and not vendors.empty:
        v = vendors[vendors["vendor_id"] == vid].sort_values("updated_at")
        if len(v):
            return str(v["vendor_name"].iloc[-1])
    return str(data.get("counterparty") or "")


def packet(trigger: dict[str, Any], vendor: str, monthly: pd.DataFrame, budgets: pd.DataFrame,
           anomalies: pd.DataFrame, cfg: DsaSettings) -> dict[str, Any]:
    """One packet (pure): ``monthly`` has month, vendor, department, spend; ``anomalies`` the latest rows of
    analytics.spend_anomalies."""
    day, data = trigger["day"], trigger["data"]
    last = month_of(day)
    months = months_between(add_months(last, -(cfg.packet_months - 1)), last)
    key = vendor.casefold()
    m = monthly[(monthly["vendor"].str.casefold() == key) & monthly["month"].isin(months)]
    by_month = m.groupby("month")["spend"].sum().reindex(months, fill_value=0.0)
    spend = float(by_month.sum())
    y = by_month.to_numpy(dtype=float)
    mean = float(y.mean()) if len(y) else 0.0
    slope = float(np.polyfit(np.arange(len(y)), y, 1)[0]) if len(y) >= 2 and mean > 0 else 0.0
    trend = slope / mean if mean > 0 else 0.0
    by_dept = m.groupby("department")["spend"].sum().sort_values(ascending=False)
    b = latest_budgets(budgets, day)
    b = b[b["month"].isin(months) & b["department"].isin(list(by_dept.index))]
    budget = float(b["budget"].sum()) if len(b) else 0.0
    a = anomalies
    if a is not None and not a.empty:
        mine = (a["segment"].str.casefold() == key) | (a["top_root_cause"].fillna("").str.casefold() == f"vendor:{key}")
        first_day = pd.Timestamp(months[0] + "-01").date()
        a = a[mine & a["alerted"] & (pd.to_datetime(a["start_date"]).dt.date >= first_day)]
    n_anom = int(a["anomaly_id"].nunique()) if a is not None and not a.empty else 0
    impact = float(a.drop_duplicates("anomaly_id")["total_impact"].sum()) if n_anom else 0.0
    forecast = max(0.0, spend * (1 + 12 * trend))
    return {"event_id": trigger["event_id"], "contract_id": data.get("contract_id"), "vendor": vendor,
            "vendor_id": data.get("vendor_id"), "counterparty": data.get("counterparty"),
            "opt_out_date": date.fromisoformat(data["opt_out_date"]) if data.get("opt_out_date") else None,
            "term_end": date.fromisoformat(data["term_end"]) if data.get("term_end") else None,
            "months": len(months), "first_month": months[0], "last_month": last,
            "spend_12m": round(spend, 2),
            "monthly_spend": json.dumps({k: round(float(v), 2) for k, v in by_month.items()}),
            "trend_pct_per_month": round(trend * 100, 2),
            "departments": json.dumps({k: round(float(v), 2) for k, v in by_dept.items()}),
            "main_department": by_dept.index[0] if len(by_dept) else None,
            "department_budget": round(budget, 2) if budget else None,
            "share_of_budget_pct": round(spend / budget * 100, 2) if budget else None,
            "anomalies": n_anom, "anomaly_impact": round(impact, 2),
            "forecast_12m_if_renewed": round(forecast, 2), "contract_annual_value": data.get("annual_value"),
            "dt": day.isoformat()}


def to_event(p: dict[str, Any]) -> dict[str, Any]:
    from lakehouse.events import make_event

    data = {k: p[k] for k in ("contract_id", "vendor", "spend_12m", "trend_pct_per_month", "share_of_budget_pct",
                              "anomalies", "anomaly_impact", "forecast_12m_if_renewed", "contract_annual_value")}
    data["opt_out_date"] = p["opt_out_date"].isoformat() if p["opt_out_date"] else None
    evidence = {"metric": "spend_12m", "value": p["spend_12m"], "threshold": None,
                "source_rows": [{"dataset": PACKETS, "keys": {"event_id": p["event_id"], "dt": p["dt"]}},
                                {"dataset": LEAVES, "keys": {"vendor": p["vendor"],
                                                             "months": [p["first_month"], p["last_month"]]}}]}
    return make_event(EVENT_TYPE, SOURCE, f"vendor:{p['vendor']}", date.fromisoformat(p["dt"]), p["contract_id"] or "",
                      f"packet:{p['event_id']}", data, evidence, severity="info", caused_by=[p["event_id"]])


COLUMNS = ["event_id", "contract_id", "vendor", "vendor_id", "counterparty", "opt_out_date", "term_end", "months",
           "first_month", "last_month", "spend_12m", "monthly_spend", "trend_pct_per_month", "departments",
           "main_department", "department_budget", "share_of_budget_pct", "anomalies", "anomaly_impact",
           "forecast_12m_if_renewed", "contract_annual_value", "dt"]


def run(ctx: RunContext) -> None:
    from lakehouse.lake import Range

    cfg: DsaSettings = ctx.config
    inbox = ctx.read_pandas(INBOX, {"agent": "dsa", "dt": ctx.days})
    found = triggers(inbox)
    rows = []
    by_day: dict[date, list[dict[str, Any]]] = {}
    for f in found:
        by_day.setdefault(f["day"], []).append(f)
    for day, todo in sorted(by_day.items()):  # each event's packet from the inputs as known on its day
        end = day.isoformat()
        first = add_months(month_of(day), -(cfg.packet_months - 1))
        t = ctx.table(LEAVES, {"dt": Range(f"{first}-01", end)})
        monthly = ctx.engine.to_pandas(t.group_by([t.day.strftime("%Y-%m").name("month"), "vendor", "department"])
                                       .aggregate(spend=t.cost.sum().cast("double")))
        budgets = ctx.read_pandas(BUDGETS, {"dt": Range(None, end)})
        vendors = ctx.read_pandas(VENDORS, {"dt": Range(None, end)})
        snaps = ctx.read_pandas(ANOMALIES, {"dt": Range(f"{first}-01", end)})
        latest = snaps.sort_values("dt").groupby("anomaly_id").tail(1) if not snaps.empty else snaps
        for f in todo:
            rows.append(packet(f, vendor_name(f["data"], vendors), monthly, budgets, latest, cfg))
    ctx.write(PACKETS, pd.DataFrame(rows, columns=COLUMNS), replace=ctx.date_partitions())
    if ctx.stage is not None and "events.outbox" in ctx.stage.writes:
        ctx.emit(EVENT_TYPE, [to_event(r) for r in rows])

"""Budget vs actual with AWS Budgets-style alerts, ROI, the monthly forecast and its backtest, and rule 3's
spend packet on literal envelopes."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from jobs.dsa import budget, forecast, renewal


def _budgets(rows):
    out = []
    for i, (dept, month, amount, version, dt) in enumerate(rows):
        y, m = int(month[:4]), int(month[5:])
        out.append({"budget_id": f"BG-{dept}-{month}", "fiscal_year": y, "month": m, "department": dept,
                    "amount": amount, "version": version,
                    "updated_at": datetime.fromisoformat(dt).replace(tzinfo=UTC) + timedelta(seconds=i), "dt": dt})
    return pd.DataFrame(out)


def _daily(month_days, per_day, dept="hosting", recurring_on=None):
    rows = [{"day": d, "department": dept, "recurring": False, "cost": per_day} for d in month_days]
    if recurring_on:
        rows += [{"day": d, "department": dept, "recurring": True, "cost": c} for d, c in recurring_on]
    return pd.DataFrame(rows)


def test_budget_vs_actual_variance_forecast_and_alerts(cfg):
    days = [date(2024, 3, 1) + timedelta(days=i) for i in range(31)] + \
           [date(2024, 2, 1) + timedelta(days=i) for i in range(29)]
    daily = _daily(days, 10.0, recurring_on=[(date(2024, 2, 20), 100.0), (date(2024, 3, 20), 100.0)])
    b = _budgets([("hosting", "2024-03", 400.0, 1, "2023-12-01"),
                  ("hosting", "2024-03", 500.0, 2, "2024-02-20")])  # a revision, known from Feb 20
    # as of March 15: 150 spent; 16 days to go at 10 a day, and last month's subscription on the 20th
    row = budget.month_rows(daily, b, "2024-03", date(2024, 3, 15), cfg)[0]
    assert row["budget"] == 500.0 and row["budget_version"] == 2
    assert row["actual"] == 150.0 and row["forecast_month_end"] == 150 + 16 * 10 + 100
    assert row["actual_pct_of_budget"] == 30.0 and row["alert_actual_pct"] is None
    assert row["forecast_pct_of_budget"] == 82.0 and row["alert_forecast_pct"] == 80.0
    assert not row["month_complete"] and row["status"] == "on_track"
    # the whole month: 410 spent; the forecast is the actual
    end = budget.month_rows(daily, b, "2024-03", date(2024, 3, 31), cfg)[0]
    assert end["actual"] == 410.0 and end["forecast_month_end"] == 410.0 and end["month_complete"]
    assert end["variance"] == -90.0 and end["variance_pct"] == -18.0 and end["alert_actual_pct"] == 80.0
    # the original budget, as known before the revision: over budget
    before = budget.month_rows(daily, b[b["version"] == 1], "2024-03", date(2024, 3, 31), cfg)[0]
    assert before["status"] == "over_budget" and before["alert_actual_pct"] == 100.0


def test_roi_and_payback(cfg):
    monthly = pd.DataFrame([{"month": f"2024-{m:02d}", "vendor": "Atlas Remote Inc.", "service": "s", "cost": 2000.0}
                            for m in range(1, 7)])
    row = next(r for r in budget.roi_rows(monthly, "2024-12", cfg) if r["line"] == "Atlas Remote Inc.")
    line = next(b for b in cfg.benefits if b.line == "Atlas Remote Inc.")
    assert row["months_paid"] == 6 and row["cost"] == 12000.0 and row["benefit"] == 6 * line.monthly_benefit
    assert row["roi_pct"] == round((6 * line.monthly_benefit - 12000) / 12000 * 100, 2)
    assert row["payback_months"] == round(12000 / line.monthly_benefit, 2)


def test_forecast_intervals_nest_and_the_backtest_scores_both_methods(cfg):
    rng = np.random.default_rng(5)
    months = [f"{2023 + (i // 12)}-{i % 12 + 1:02d}" for i in range(24)]
    monthly = pd.DataFrame({"department": "hosting", "month": months,
                            "spend": 10000 * (1 + 0.01 * np.arange(24)) * rng.lognormal(0, 0.05, 24)})
    from models.dsa.forecast import backtest, summary
    from models.dsa.forecast import forecast as fc

    out = fc(monthly, 12, [80, 95])
    assert set(out["method"]) == {"model", "baseline"} and out["horizon"].max() == 12
    assert (out["lo_95"] <= out["lo_80"] + 0.01).all() and (out["hi_80"] <= out["hi_95"] + 0.01).all()
    assert ((out["lo_80"] <= out["mean"] + 0.01) & (out["mean"] <= out["hi_80"] + 0.01)).all()
    bt = backtest(monthly, 6, 3, [80, 95])
    assert set(bt["method"]) == {"model", "baseline"} and bt["origin"].nunique() == 6
    assert (bt["month"] > bt["origin"]).all()
    s = summary(bt, [80, 95])
    m = s[(s["method"] == "model") & (s["horizon"] == 0)].iloc[0]
    assert m["mape_pct"] < 15 and 0 <= m["coverage_95_pct"] <= 100
    assert forecast.origin_of(date(2024, 3, 31)) == "2024-03" and forecast.origin_of(date(2024, 3, 30)) == "2024-02"


def _renewal_envelope(day="2025-06-01", vendor_id="VN-0001", counterparty="Atlas Remote Inc."):
    from lakehouse.events import make_event

    data = {"contract_id": "CT-0007", "counterparty": counterparty, "vendor_id": vendor_id, "client_id": None,
            "term_end": "2025-09-30", "opt_out_date": "2025-08-31", "days_to_opt_out": 91, "reminder_days": 90,
            "renewal_type": "auto_renew", "auto_renew": True, "annual_value": 30000.0}
    ev = make_event("contract.renewal.due", "vcm.renewals", "contract:CT-0007", date.fromisoformat(day),
                    "2025-08-31", "reminder:90", data,
                    {"metric": "days_to_opt_out", "value": 91, "threshold": 90, "source_rows": []})
    return pd.DataFrame([{"event_id": ev["id"], "event_type": ev["type"], "agent": "dsa", "handler": "dsa.on_renewal",
                          "subject": ev["subject"], "event_time": date.fromisoformat(day),
                          "envelope": json.dumps(ev), "dt": day}])


def test_the_renewal_packet_of_a_vendor(cfg):
    inbox = _renewal_envelope()
    found = renewal.triggers(inbox)
    assert len(found) == 1 and found[0]["data"]["contract_id"] == "CT-0007"
    months = [f"2024-{m:02d}" for m in range(7, 13)] + [f"2025-{m:02d}" for m in range(1, 7)]
    monthly = pd.DataFrame([{"month": m, "vendor": "Atlas Remote Inc.", "department": "service_desk",
                             "spend": 2000.0 + 100 * i} for i, m in enumerate(months)])
    monthly = pd.concat([monthly, pd.DataFrame([{"month": "2025-06", "vendor": "Other", "department": "service_desk",
                                                 "spend": 5.0}])])
    budgets = _budgets([("service_desk", m, 20000.0, 1, "2024-01-01") for m in months])
    vendors = pd.DataFrame([{"vendor_id": "VN-0001", "vendor_name": "Atlas Remote Inc.",
                             "updated_at": datetime(2024, 1, 1, tzinfo=UTC)}])
    name = renewal.vendor_name(found[0]["data"], vendors)
    anomalies = pd.DataFrame([{"anomaly_id": "a1", "segment": "Atlas Remote Inc.", "top_root_cause": None,
                               "alerted": True, "start_date": date(2025, 3, 3), "total_impact": 500.0},
                              {"anomaly_id": "a2", "segment": "service_desk",
                               "top_root_cause": "vendor:Atlas Remote Inc.",
                               "alerted": True, "start_date": date(2023, 1, 3), "total_impact": 50.0}])
    p = renewal.packet(found[0], name, monthly, budgets, anomalies, cfg)
    total = sum(2000.0 + 100 * i for i in range(12))
    assert p["vendor"] == "Atlas Remote Inc." and p["spend_12m"] == total and p["months"] == 12
    assert p["first_month"] == "2024-07" and p["last_month"] == "2025-06"
    assert p["share_of_budget_pct"] == round(total / 240000 * 100, 2) and p["main_department"] == "service_desk"
    assert p["anomalies"] == 1 and p["anomaly_impact"] == 500.0  # a2 started before the 12 months
    mean = total / 12
    assert p["trend_pct_per_month"] == round(100 / mean * 100, 2)
    assert p["forecast_12m_if_renewed"] == round(total * (1 + 12 * 100 / mean), 2)
    ev = renewal.to_event(p)  # validated against spend.renewal.packet.json
    assert ev["type"] == "spend.renewal.packet" and ev["data"]["vendor"] == "Atlas Remote Inc."
    # no vendor id: matched on the counterparty, case-insensitively
    other = renewal.triggers(_renewal_envelope(vendor_id=None, counterparty="ATLAS REMOTE INC."))[0]
    q = renewal.packet(other, renewal.vendor_name(other["data"], vendors), monthly, budgets, anomalies, cfg)
    assert q["spend_12m"] == total

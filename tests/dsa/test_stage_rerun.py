"""The DSA stages on a lake of their own (a few months of hand-made processed rows): a day's run after a
backfill gives the rows a backfill through that day gives, and rerunning a day yields identical tables and no
duplicate events."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

import schemas
from tests.dsa.conftest import arrow

FIRST = date(2024, 1, 1)
DAYS = 110
STAGES = ["dsa.costs", "dsa.budget", "dsa.detect"]
TABLES = ["processed.spend_costs", "processed.spend_leaf_daily", "analytics.spend_anomaly_scores",
          "analytics.spend_anomalies", "analytics.spend_budget_monthly", "events.outbox"]


def _inputs():
    rng = np.random.default_rng(11)
    focus, expenses = [], []
    n = 0
    for d in range(DAYS):
        day = FIRST + timedelta(days=d)
        ts = f"{day.isoformat()} 00:00:00"
        nxt = f"{(day + timedelta(days=1)).isoformat()} 00:00:00"
        next_month = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        for res, level in (("arn:aws:s3:::b1", 6.0), ("arn:aws:s3:::b2", 9.0)):
            cost = level * (0.7 if day.weekday() >= 5 else 1.0) * rng.lognormal(0, 0.08)
            if res.endswith("b1") and d == 100:
                cost *= 9
            n += 1
            focus.append({"id": n, "billed_cost": f"{cost:.11f}", "effective_cost": f"{cost:.11f}",
                          "list_cost": f"{cost:.11f}", "billing_account_id": "1", "billing_currency": "USD",
                          "billing_period_start": f"{day.replace(day=1).isoformat()} 00:00:00",
                          "billing_period_end": f"{next_month.isoformat()} 00:00:00",
                          "charge_category": "Usage", "charge_frequency": "Usage-Based",
                          "charge_period_start": ts, "charge_period_end": nxt, "invoice_issuer_name": "AWS",
                          "provider_name": "AWS", "publisher_name": "AWS", "service_category": "Storage",
                          "service_name": "Amazon Simple Storage Service", "resource_id": res,
                          "sub_account_id": "123", "tags": '{"business_unit": "hosting", "application": "PSA"}',
                          "dt": day.isoformat()})
        if day.weekday() < 5 and rng.random() < 0.5:
            expenses.append({"expense_id": f"EX-{d}", "expense_date": day.isoformat(), "department": "projects",
                             "vendor_id": "VN-1", "vendor_name": "Summit", "category": "hardware",
                             "description": "Hardware", "amount": f"{400 * rng.lognormal(0, 0.5):.2f}",
                             "currency": "USD", "payment_method": "corporate_card", "recurring": False,
                             "created_at": f"{day.isoformat()}T12:00:00", "dt": day.isoformat()})
    budgets = [{"budget_id": f"BG-{m}", "fiscal_year": 2024, "month": m, "department": dept, "amount": "6000.00",
                "currency": "USD", "version": 1, "approved_at": "2024-01-01T00:00:00",
                "updated_at": "2024-01-01T00:00:00", "dt": "2024-01-01"}
               for m in range(1, 7) for dept in ("projects",)]
    ents = [{"entitlement_id": "EN-1", "client_id": "CL-1", "vendor": "Microsoft", "sku_id": "s",
             "sku_part_number": "SPB", "sku_name": "M365", "seats": 5, "unit_price": "22.00", "term_months": 1,
             "billing_frequency": "monthly", "billing_model": "nce", "start_date": "2024-01-10",
             "renewal_date": "2024-02-10", "auto_renew": True, "status": "active",
             "updated_at": "2024-01-01T00:00:00", "dt": "2024-01-01"}]
    return {"processed.focus_costs": focus, "processed.expenses": expenses, "processed.budgets": budgets,
            "processed.entitlements": ents}


def _lake(home):
    from lakehouse.lake import Lake
    from tests.conftest import make_settings

    settings = make_settings(home).with_overrides(skip_unchanged=False)
    lake = Lake.from_settings(settings)
    for name, rows in _inputs().items():
        lake.replace(schemas.get(name), arrow(name, rows), run_id="seed")
    return settings, lake


def _run(settings, days):
    from lakehouse.runner import run_pipeline

    s = run_pipeline(settings, days, stages=STAGES, refresh_catalog=False)
    assert s.ok, [(r.name, r.error) for r in s.stages]
    return s


def _rows(lake, name, day):
    ds = schemas.get(name)
    where = {"month": [day.isoformat()[:7]]} if "month" in ds.partition_by else {"dt": [day.isoformat()]}
    t = lake.read_arrow(ds, where).to_pandas()
    drop = [c for c in t.columns if c in ("_ingested_at", "_run_id")]
    t = t.drop(columns=drop)
    return t.sort_values(list(t.columns)).reset_index(drop=True)  # every column: no ties, one order


def test_a_day_after_a_backfill_equals_the_backfill_and_a_rerun_changes_nothing(tmp_path):
    days = [FIRST + timedelta(days=i) for i in range(DAYS)]
    last = days[-1]
    s1, lake1 = _lake(tmp_path / "a")
    _run(s1, days[:-1])
    _run(s1, [last])
    first = {n: _rows(lake1, n, last) for n in TABLES}
    spike = first["analytics.spend_anomalies"]
    assert not lake1.read_pandas(schemas.get("analytics.spend_anomalies")).empty
    _run(s1, [last])  # rerun the day
    for n in TABLES:
        again = _rows(lake1, n, last)
        assert again.equals(first[n]), n
    out = lake1.read_pandas(schemas.get("events.outbox"))
    assert out["event_id"].is_unique and len(out) >= 1
    states = [__import__("json").loads(e)["data"]["state"] for e in out["envelope"]]
    assert "opened" in states
    # a backfill through the same day gives the same rows
    s2, lake2 = _lake(tmp_path / "b")
    _run(s2, days)
    for n in ("analytics.spend_anomaly_scores", "analytics.spend_anomalies", "analytics.spend_budget_monthly"):
        assert _rows(lake2, n, last).equals(first[n]), n
    assert len(spike) >= 0

"""The cost table in FOCUS terms: the FOCUS sample, expenses and licences map with totals equal to the cent."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date
from decimal import Decimal

import pytest

from jobs.dsa import costs
from tests.dsa.conftest import FOCUS_FULL, focus_rows, table


def _sum(expr, col="billed_cost") -> Decimal:
    v = expr.aggregate(t=expr[col].sum()).to_pyarrow().to_pylist()[0]["t"]
    return Decimal(0) if v is None else Decimal(v)


@pytest.mark.parametrize("path", ["fixture", "full"])
def test_the_focus_sample_maps_with_totals_equal_to_the_cent(path, cfg):
    if path == "full" and not FOCUS_FULL.is_file():
        pytest.skip("the shared 1,000-row FOCUS sample is not on this machine")
    rows = focus_rows() if path == "fixture" else focus_rows(FOCUS_FULL)
    out = costs.focus_lines(table("processed.focus_costs", rows), cfg.untagged_department)
    want = sum(Decimal(r["billed_cost"]) for r in rows)
    assert _sum(out) == want  # exactly, not only to the cent
    assert _sum(out, "effective_cost") == sum(Decimal(r["effective_cost"]) for r in rows)
    # per department (Tags.business_unit) too
    by_dept: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        tags = json.loads(r["tags"]) if r["tags"] else {}
        by_dept[tags.get("business_unit", cfg.untagged_department)] += Decimal(r["billed_cost"])
    got = {r["department"]: Decimal(r["t"]) for r in
           out.group_by("department").aggregate(t=out.billed_cost.sum()).to_pyarrow().to_pylist()}
    assert got == dict(by_dept)
    assert out.count().to_pyarrow().as_py() == len(rows)


def test_expenses_map_to_focus_columns():
    rows = [{"expense_id": "EX-1", "expense_date": "2024-03-05", "department": "projects", "vendor_id": "VN-1",
             "vendor_name": "Summit", "category": "hardware", "description": "Hardware purchase", "amount": "425.10",
             "currency": "USD", "payment_method": "corporate_card", "recurring": False, "dt": "2024-03-05"},
            {"expense_id": "EX-2", "expense_date": "2024-03-05", "department": "service_desk", "vendor_id": "VN-2",
             "vendor_name": "Atlas", "category": "software_subscriptions", "description": "Subscription",
             "amount": "2400.00", "currency": "USD", "payment_method": "ach", "recurring": True, "dt": "2024-03-05"}]
    out = costs.expense_lines(table("processed.expenses", rows)).to_pyarrow().to_pylist()
    got = {r["source_id"]: r for r in out}
    assert got["EX-1"]["charge_frequency"] == "One-Time" and got["EX-2"]["charge_frequency"] == "Recurring"
    assert got["EX-1"]["billed_cost"] == Decimal("425.10") and got["EX-1"]["effective_cost"] == Decimal("425.10")
    assert got["EX-1"]["charge_category"] == "Purchase" and got["EX-1"]["provider_name"] == "Summit"
    assert got["EX-2"]["service_category"] == "Business Applications"
    assert got["EX-1"]["billing_period_start"].date() == date(2024, 3, 1)
    assert got["EX-1"]["billing_period_end"].date() == date(2024, 4, 1)


def _ent(**kw):
    base = {"entitlement_id": "EN-1", "client_id": "CL-1", "vendor": "Microsoft", "sku_id": "s",
            "sku_part_number": "SPB",
            "sku_name": "M365 Business Premium", "seats": 10, "unit_price": "22.00", "term_months": 12,
            "billing_frequency": "monthly", "billing_model": "nce", "start_date": "2024-01-31",
            "renewal_date": "2025-01-31", "auto_renew": True, "status": "active",
            "updated_at": "2024-01-01T00:00:00", "dt": "2024-01-01"}
    return {**base, **kw}


def test_licences_bill_monthly_on_the_start_day_and_annually_on_the_anniversary(cfg):
    ents = table("processed.entitlements", [
        _ent(),  # monthly, on the 31st: the last day of shorter months
        _ent(entitlement_id="EN-2", billing_frequency="annual", start_date="2024-02-10", seats=2, unit_price="30.00"),
        _ent(entitlement_id="EN-3", status="cancelled"),
        # a seat change exported on 2024-03-15 applies from that day on
        _ent(entitlement_id="EN-4", start_date="2024-01-20", seats=5),
        _ent(entitlement_id="EN-4", start_date="2024-01-20", seats=7, updated_at="2024-03-15T00:00:00",
             dt="2024-03-15"),
    ])
    days = costs.day_range(date(2024, 1, 1), date(2025, 3, 1))
    out = costs.licence_lines(ents, costs.billing_days(days), cfg.licence_department).to_pyarrow().to_pylist()
    by = defaultdict(list)
    for r in out:
        by[r["source_id"].split("|")[0]].append(r)
    en1 = sorted(r["charge_date"] for r in by["EN-1"])
    assert en1[:3] == [date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31)]
    assert all(r["billed_cost"] == Decimal("220") for r in by["EN-1"])
    en2 = {r["charge_date"]: r for r in by["EN-2"]}
    assert en2[date(2024, 2, 10)]["billed_cost"] == Decimal("720") and en2[date(2024, 3, 10)]["billed_cost"] == 0
    assert en2[date(2025, 2, 10)]["billed_cost"] == Decimal("720")
    # a year of an annual licence: billed = effective
    year = [r for r in by["EN-2"] if date(2024, 2, 1) <= r["charge_date"] < date(2025, 2, 1)]
    assert sum(r["billed_cost"] for r in year) == sum(r["effective_cost"] for r in year) == Decimal("720")
    assert "EN-3" not in by
    en4 = {r["charge_date"]: r["billed_cost"] for r in by["EN-4"]}
    assert en4[date(2024, 2, 20)] == Decimal("110") and en4[date(2024, 3, 20)] == Decimal("154")
    assert {r["department"] for r in out} == {cfg.licence_department}
    assert {r["client_id"] for r in out} == {"CL-1"}


def test_reconcile_refuses_a_cost_table_that_does_not_add_up(cfg):
    import ibis

    exp = table("processed.expenses", [{"expense_id": "EX-1", "expense_date": "2024-03-05", "department": "projects",
                                        "vendor_id": "V", "vendor_name": "V", "category": "hardware",
                                        "description": "d", "amount": "10.01", "currency": "USD",
                                        "payment_method": "ach", "recurring": False}])
    mapped = costs.expense_lines(exp)

    class Eng:
        def to_pandas(self, e):
            return e.execute()

    assert costs.reconcile({"expenses": (exp, "amount")}, mapped, Eng())["expenses"][0] == Decimal("10.01")
    wrong = mapped.mutate(billed_cost=(mapped.billed_cost + ibis.literal(Decimal("0.01"))).cast(costs.MONEY))
    with pytest.raises(ValueError, match="does not reconcile"):
        costs.reconcile({"expenses": (exp, "amount")}, wrong, Eng())


def test_leaf_daily_sums_cost_lines_with_the_monitored_tags(cfg):
    rows = focus_rows()[:50]
    out = costs.focus_lines(table("processed.focus_costs", rows), cfg.untagged_department)
    leaves = costs.leaf_daily(out, ("application", "environment")).to_pyarrow().to_pylist()
    assert sum(Decimal(r["cost"]) for r in leaves) == sum(Decimal(r["billed_cost"]) for r in rows)
    assert sum(r["lines"] for r in leaves) == 50
    tagged = [r for r in leaves if r["tags"]]
    assert tagged and all(set(json.loads(r["tags"])) <= {"application", "environment"} for r in tagged)

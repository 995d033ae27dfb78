"""Vendor scorecard on literal rows; search ranking."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import pandas as pd

from jobs.vcm.scorecard import high_is_good, low_is_good, quarter_bounds, sla_minutes, transform, weighted
from jobs.vcm.search import search

CFG = SimpleNamespace(invoice_tolerance_pct=1.0, invoice_deviation_bands=(1.0, 3.0, 5.0, 10.0),
                      cost_change_bands=(0.0, 3.0, 7.0, 15.0), sla_met_bands=(0.95, 0.9, 0.8, 0.7),
                      scorecard_weights={"responsiveness": 0.25, "reliability": 0.2, "invoice_accuracy": 0.2,
                                         "cost_trend": 0.15, "compliance": 0.2},
                      compliance_penalties={"missing_term": 0.5, "no_liability_cap": 1.0, "uncapped_liability": 2.0,
                                            "no_contract": 2.0, "expired_contract_billing": 1.0})


def test_bands_and_sla():
    assert [low_is_good(x, CFG.invoice_deviation_bands) for x in (0.5, 2, 4, 8, 30)] == [5, 4, 3, 2, 1]
    assert [high_is_good(x, CFG.sla_met_bands) for x in (1.0, 0.92, 0.85, 0.75, 0.1)] == [5, 4, 3, 2, 1]
    assert sla_minutes("4-hour response, business hours") == 240
    assert sla_minutes("Next business day") == 1440
    assert sla_minutes("Best effort") is None
    assert quarter_bounds("2024-Q1") == (date(2024, 1, 1), date(2024, 3, 31))
    assert weighted({"invoice_accuracy": 4.0, "compliance": 2.0}, CFG.scorecard_weights) == (
        3.0, ["invoice_accuracy", "compliance"])


def test_scorecard_quarter():
    vendors = pd.DataFrame({"vendor_id": ["VN-1", "VN-2"], "vendor_name": ["Halo", "Fuel Co"], "sla": [None, None]})
    exp = pd.DataFrame({"expense_date": [date(2024, m, 1) for m in (1, 2, 3, 4, 5, 6)] + [date(2024, 5, 3)],
                        "vendor_id": ["VN-1"] * 6 + ["VN-2"],
                        "amount": [1000, 1000, 1000, 1000, 1030, 1030, 50], "recurring": [True] * 6 + [False]})
    register = pd.DataFrame([{"contract_id": "CT-1", "vendor_id": "VN-1", "effective_date": date(2023, 7, 1),
                              "expiration_date": date(2025, 6, 30), "auto_renew": True, "renewal_type": "auto_renew",
                              "renewal_term_months": 12, "term_months": 24, "annual_value": Decimal("12000.00"),
                              "payment_terms": "Net 30", "governing_law": None, "notice_period_days": 30,
                              "liability_cap": "capped"}])
    out = transform(vendors, exp, None, register, ["2024-Q2"], date(2024, 7, 15), CFG).set_index("vendor_id")
    halo = out.loc["VN-1"]
    assert halo["spend"] == Decimal("3060.00") and round(halo["cost_change_pct"], 3) == 2.0
    assert halo["billed_months"] == 3 and halo["accurate_months"] == 1           # 1030 vs 1000 is 3 % off
    assert halo["invoice_accuracy_score"] == 4.0 and halo["cost_trend_score"] == 4.0
    assert halo["compliance_score"] == 4.5 and halo["compliance_findings"] == "missing_term"
    assert halo["responsiveness_score"] is None and "no vendor_id" in halo["notes"]
    assert halo["overall_score"] == round((4 * 0.2 + 4 * 0.15 + 4.5 * 0.2) / 0.55, 3)
    fuel = out.loc["VN-2"]
    assert fuel["compliance_score"] == 3.0 and fuel["compliance_findings"] == "no_contract"
    assert bool(halo["quarter_final"]) is True


def test_search_ranks_the_matching_contract_first():
    register = pd.DataFrame([
        {"contract_id": "CT-a", "document_id": "a", "vendor_name": "Alpha", "renewal_type": "auto_renew",
         "notice_period_days": 60, "term_months": 12},
        {"contract_id": "CT-b", "document_id": "b", "vendor_name": "Beta", "renewal_type": "fixed_term",
         "notice_period_days": None, "term_months": 36}])
    texts = {"a": "The agreement renews automatically. Notice of non-renewal: sixty (60) days.",
             "b": "This is a fixed-term agreement with no automatic renewal."}
    hits = search(register, texts, "auto-renew notice 60 days")
    assert hits.iloc[0]["contract_id"] == "CT-a"
    assert "60" in hits.iloc[0]["snippet"]

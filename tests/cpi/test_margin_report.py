"""Margin tiers, the problem-client rule, flags and KPIs on hand-made monthly rows."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from jobs.cpi import kpis, lifecycle, margin_report
from tests.cpi.conftest import rows_of, table

D = Decimal


def month_row(client, month, billed, profit, **kw):
    """A client_profitability_monthly row; labour and additions make up billed - profit."""
    billed, profit = D(str(billed)), D(str(profit))
    row = {"client_id": client, "month": month, "billed": billed, "mrr": billed, "labour_billed": D(0),
           "addition_cost": D(0), "addition_retail": D(0), "labour_hours": D("10"), "billable_hours": D(0),
           "reactive_hours": D("2"), "uncosted_hours": D(0), "labour_cost": billed - profit, "profit": profit,
           "margin_pct": (profit * 100 / billed).quantize(D("0.01")) if billed else None,
           "effective_hourly_rate": (billed / 10).quantize(D("0.01")), "contribution_rate": None, "endpoints": 10.0,
           "rhem": 0.2, "tickets": 10, "tickets_per_endpoint": 1.0, "labour_cost_per_endpoint": None,
           "revenue_per_endpoint": None, "payments": 0, "avg_days_late": None, "csat_responses": 0, "csat_avg": None,
           "csat_positive_pct": None, "month_final": True, "as_of": date(2024, 12, 31)}
    row.update(kw)
    return row


@pytest.fixture(scope="module")
def profit():
    rows = [
        # C1: 60.00 gold -> 59.99 silver (tier down) -> 19.99 at_risk -> 10 at_risk (problem at month 2)
        month_row("C1", "2024-01", 1000, 600), month_row("C1", "2024-02", 10000, 5999),
        month_row("C1", "2024-03", 10000, 1999), month_row("C1", "2024-04", 1000, 100),
        # C2: under 20 % in Jan and Mar but not Feb: never 2 in a row; April has a gap before it (no March
        # row for C3 below shows gaps); May billed nothing: no tier
        month_row("C2", "2024-01", 1000, 100), month_row("C2", "2024-02", 1000, 200),
        month_row("C2", "2024-03", 1000, 150), month_row("C2", "2024-05", 0, -50, margin_pct=None),
        # C3: under 20 % in Jan and Mar with no February row: the gap breaks the streak
        month_row("C3", "2024-01", 1000, 100), month_row("C3", "2024-03", 1000, 100),
        # C4: ticket surge (3 months of 10, then 15 > 10 x 1.4) and late payer (20 days > 15)
        month_row("C4", "2024-01", 1000, 500), month_row("C4", "2024-02", 1000, 500),
        month_row("C4", "2024-03", 1000, 500),
        month_row("C4", "2024-04", 1000, 500, tickets=15, avg_days_late=D("20.00"), rhem=0.3),
    ]
    return table("processed.client_profitability_monthly", rows)


@pytest.fixture(scope="module")
def clients():
    return table("processed.client_lifecycle", [
        {"client_id": c, "client_name": f"Client {c}", "client_type": "managed", "agreements": 1,
         "open_agreements": 1, "status": "active", "as_of": "2024-12-31"} for c in ("C1", "C2", "C3", "C4")])


def by_key(expr) -> dict[tuple[str, str], dict]:
    return {(r["client_id"], r["month"]): r for r in expr.to_pyarrow().to_pylist()}


def test_tiers_streaks_and_problem_clients(profit, clients, cfg):
    months = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05"]
    out = margin_report.transform(profit, clients, months, cfg)
    cols = ["client_id", "month", "margin_pct", "margin_tier", "tier_change", "margin_change_pp",
            "months_below_lowest", "problem_client", "margin_forecast_next_pct"]
    expected = [
        # margin 600/1000 = 60.00 is gold (bounds are inclusive lower bounds)
        ("C1", "2024-01", D("60.00"), "gold", "new", None, 0, False, D("60.00")),
        # 5999/10000 = 59.99: silver, down one tier, -0.01 pp; forecast = mean(60, 59.99) = 59.995 -> 60.00
        ("C1", "2024-02", D("59.99"), "silver", "down", D("-0.01"), 0, False, D("60.00")),
        # 1999/10000 = 19.99: at_risk (two tiers down), first month under 20; forecast mean(60, 59.99, 19.99)
        ("C1", "2024-03", D("19.99"), "at_risk", "down", D("-40.00"), 1, False, D("46.66")),
        # 100/1000 = 10.00: second month in a row under 20 -> problem client; mean(59.99, 19.99, 10) = 29.99
        ("C1", "2024-04", D("10.00"), "at_risk", "same", D("-9.99"), 2, True, D("29.99")),
        ("C2", "2024-01", D("10.00"), "at_risk", "new", None, 1, False, D("10.00")),
        ("C2", "2024-02", D("20.00"), "bronze", "up", D("10.00"), 0, False, D("15.00")),
        ("C2", "2024-03", D("15.00"), "at_risk", "down", D("-5.00"), 1, False, D("15.00")),
        # billed 0: no margin, no tier, no change; resets the streak; forecast over Mar..May = mean(15) = 15
        ("C2", "2024-05", None, None, None, None, 0, False, D("15.00")),
        ("C3", "2024-01", D("10.00"), "at_risk", "new", None, 1, False, D("10.00")),
        # no February row: no previous month to compare with, and the streak restarts at 1
        ("C3", "2024-03", D("10.00"), "at_risk", "new", None, 1, False, D("10.00")),
        ("C4", "2024-01", D("50.00"), "silver", "new", None, 0, False, D("50.00")),
        ("C4", "2024-02", D("50.00"), "silver", "same", D("0.00"), 0, False, D("50.00")),
        ("C4", "2024-03", D("50.00"), "silver", "same", D("0.00"), 0, False, D("50.00")),
        ("C4", "2024-04", D("50.00"), "silver", "same", D("0.00"), 0, False, D("50.00")),
    ]
    assert rows_of(out, cols) == expected


def test_flags_and_suggested_actions(profit, clients, cfg):
    rows = by_key(margin_report.transform(profit, clients, ["2024-04"], cfg))
    c4 = rows[("C4", "2024-04")]
    # tickets 15 > mean(10, 10, 10) x 1.4 = 14 -> surge; 20 days late > 15; RHEM 0.3 > 0.25; EHR 100 is not < 100
    assert (c4["ticket_surge"], c4["late_payer"], c4["rhem_above_target"], c4["ehr_below_target"]) == (
        True, True, True, False)
    assert c4["tickets_prev3_avg"] == 10.0
    assert c4["suggested_action"] == (
        "Plan proactive fixes for repeat issues: reactive hours per endpoint over 0.25; "
        "Follow up on payments: paying more than 15 days after the due date; "
        "Find the cause of the ticket surge before it erodes the margin")
    c1 = rows[("C1", "2024-04")]
    assert c1["suggested_action"].startswith("Reprice, rescope or add exclusions to the agreement: margin under 20% "
                                             "for 2 months running")
    assert c1["client_name"] == "Client C1"


def test_tier_thresholds_come_from_settings(profit, clients, cfg):
    strict = cfg.model_copy(update={"tier_bounds": (70.0, 50.0, 30.0), "problem_months": 3})
    rows = by_key(margin_report.transform(profit, clients, ["2024-01", "2024-04"], strict))
    assert rows[("C1", "2024-01")]["margin_tier"] == "silver"  # 60 is under the 70 gold bound
    assert rows[("C4", "2024-04")]["margin_tier"] == "silver"  # 50.00 >= 50: bounds are inclusive lower bounds
    assert rows[("C1", "2024-04")]["problem_client"] is False  # 2 months under 30 < 3 required


def test_kpis_on_hand_rows(profit, cfg):
    report = margin_report.transform(profit, table("processed.client_lifecycle", []), ["2024-04"], cfg)
    life = table("processed.client_lifecycle", [
        # served all month; ends mid-April (churned); starts in April (new); ended in March (gone)
        {"client_id": "C1", "service_start": "2020-01-01", "agreements": 1, "open_agreements": 1, "status": "active",
         "as_of": "2024-12-31"},
        {"client_id": "C4", "service_start": "2020-01-01", "service_end": "2024-04-15", "agreements": 1,
         "open_agreements": 0, "status": "churned", "as_of": "2024-12-31"},
        {"client_id": "C5", "service_start": "2024-04-10", "agreements": 1, "open_agreements": 1, "status": "active",
         "as_of": "2024-12-31"},
        {"client_id": "C6", "service_start": "2020-01-01", "service_end": "2024-03-31", "agreements": 1,
         "open_agreements": 0, "status": "churned", "as_of": "2024-12-31"},
    ])
    [out] = kpis.transform(profit, report, life, ["2024-04"], cfg).to_pyarrow().to_pylist()
    # April rows: C1 billed 1000 profit 100; C4 billed 1000 profit 500 (mrr = billed in these rows)
    assert out["mrr"] == D("2000.00") and out["arr"] == D("24000.00")  # ARR = 12 x MRR
    assert out["gross_profit"] == D("600.00") and out["gross_margin_pct"] == D("30.00")  # 600 / 2000
    # avg EHR = (2000 - 0 additions) / (10 + 10 hours) = 100.00 (hours-weighted)
    assert out["avg_ehr"] == D("100.00")
    assert out["rhem"] == 0.2  # (2 + 2) reactive hours / (10 + 10) endpoints
    # median client margin: C1 10.00 and C4 50.00 -> 30.00
    assert out["median_client_margin_pct"] == D("30.00")
    # logo churn: C1 and C4 served on Apr 1 (C5 starts later, C6 left in March); C4 left in April: 1 / 2
    assert (out["clients_at_start"], out["active_clients"], out["new_clients"], out["churned_clients"]) == (
        2, 3, 1, 1)
    assert out["logo_churn_pct"] == D("50.00")
    assert out["problem_clients"] == 1 and out["clients_by_tier"] == '{"at_risk":1,"silver":1}'


def test_lifecycle_statuses():
    agreements = table("processed.agreements", [
        # A1 renewed (two versions, latest is active): C1 active
        {"agreement_id": "A1", "client_id": "C1", "status": "active", "start_date": "2022-01-01",
         "end_date": "2023-12-31", "mrr": 100, "updated_at": "2023-01-01T00:00:00"},
        {"agreement_id": "A1", "client_id": "C1", "status": "active", "start_date": "2022-01-01",
         "end_date": "2024-12-31", "mrr": 110, "updated_at": "2024-01-01T00:00:00"},
        # C2 gave notice, its service ends after the as-of day: notice_given
        {"agreement_id": "A2", "client_id": "C2", "status": "notice_given", "start_date": "2021-01-01",
         "end_date": "2024-06-30", "notice_date": "2024-03-20", "mrr": 50, "updated_at": "2024-03-20T00:00:00"},
        # C3: one terminated, one still open: active
        {"agreement_id": "A3", "client_id": "C3", "status": "terminated", "start_date": "2020-01-01",
         "end_date": "2023-06-30", "notice_date": "2023-04-01", "mrr": 10, "updated_at": "2023-06-30T00:00:00"},
        {"agreement_id": "A4", "client_id": "C3", "status": "active", "start_date": "2023-07-01", "mrr": 20,
         "updated_at": "2023-07-01T00:00:00"},
        # C4: terminated before the as-of day: churned
        {"agreement_id": "A5", "client_id": "C4", "status": "terminated", "start_date": "2020-01-01",
         "end_date": "2024-01-31", "notice_date": "2023-12-01", "mrr": 70, "updated_at": "2024-01-31T00:00:00"},
    ])
    clients = table("processed.clients", [
        {"client_id": c, "client_name": c, "created_at": "2020-01-01T00:00:00", "updated_at": "2020-01-01T00:00:00"}
        for c in ("C1", "C2", "C3", "C4", "C5")])
    out = lifecycle.transform(agreements, clients, date(2024, 4, 30))
    cols = ["client_id", "service_start", "agreements", "open_agreements", "contracted_mrr", "notice_date",
            "service_end", "status"]
    expected = [
        ("C1", date(2022, 1, 1), 1, 1, D("110.00"), None, None, "active"),
        ("C2", date(2021, 1, 1), 1, 0, D("0.00"), date(2024, 3, 20), date(2024, 6, 30), "notice_given"),
        ("C3", date(2020, 1, 1), 2, 1, D("20.00"), None, None, "active"),
        ("C4", date(2020, 1, 1), 1, 0, D("0.00"), date(2023, 12, 1), date(2024, 1, 31), "churned"),
        ("C5", None, 0, 0, None, None, None, "prospect"),  # no agreement yet
    ]
    assert rows_of(out, cols) == expected

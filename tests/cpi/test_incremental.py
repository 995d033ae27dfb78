"""Which months a run recomputes, and the daily summary's month-to-date arithmetic."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from jobs.cpi import daily_summary, profitability
from tests.cpi.conftest import table

D = Decimal


def exported_today(**rows):
    out = {k: table(ds, []) for k, ds in profitability.INPUTS.items()}
    for k, r in rows.items():
        out[k] = table(profitability.INPUTS[k], r)
    return out


def test_a_day_recomputes_its_month_and_the_months_its_rows_reach_back_to():
    all_lines = table("processed.invoice_lines", [
        {"invoice_line_id": "L1", "invoice_id": "I-JAN", "client_id": "C1", "line_type": "recurring",
         "service_period_start": "2024-01-01", "service_period_end": "2024-01-31", "amount": 100},
    ])
    today = exported_today(
        # March hours invoiced in arrears on Apr 2; a one-time fee starting in March (counts in March only)
        invoice_lines=[{"invoice_line_id": "L2", "invoice_id": "I-APR", "client_id": "C1", "line_type": "labour",
                        "service_period_start": "2024-03-01", "service_period_end": "2024-03-31", "amount": 50,
                        "dt": "2024-04-02"},
                       {"invoice_line_id": "L3", "invoice_id": "I-APR", "client_id": "C1", "line_type": "one_time",
                        "service_period_start": "2024-03-20", "service_period_end": "2024-06-30", "amount": 50,
                        "dt": "2024-04-02"}],
        # the January invoice is voided on Apr 2: January changes
        invoices=[{"invoice_id": "I-JAN", "client_id": "C1", "status": "void", "dt": "2024-04-02"}],
    )
    months = profitability.affected_months(today, all_lines, [date(2024, 4, 2)], close_days=5)
    assert months == {"2024-01", "2024-03", "2024-04"}
    # an open-ended cost rate that started in February reaches every month up to the run's month, no further
    today = exported_today(cost_rates=[{"cost_rate_id": "R1", "technician_id": "T1", "cost_rate": 50,
                                               "effective_from": "2024-02-15", "dt": "2024-04-02"}])
    assert profitability.affected_months(today, all_lines, [date(2024, 4, 2)], 5) == {"2024-02", "2024-03",
                                                                                        "2024-04"}
    # nothing exported, but March closes on Apr 5 (31 + 5): March is recomputed for its final version
    quiet = exported_today()
    assert profitability.affected_months(quiet, all_lines, [date(2024, 4, 5)], 5) == {"2024-03", "2024-04"}
    assert profitability.affected_months(quiet, all_lines, [date(2024, 4, 6)], 5) == {"2024-04"}


def test_daily_summary_month_to_date_and_projection(cfg):
    te = table("processed.time_entries", [
        # C1: 2 h on Apr 1 and 4 h on Apr 3 at 50/h; one reactive
        {"time_entry_id": "T1", "technician_id": "X", "client_id": "C1", "work_date": "2024-04-01", "hours": 2,
         "work_type": "reactive", "billable": True, "created_at": "2024-04-01T10:00:00"},
        {"time_entry_id": "T2", "technician_id": "X", "client_id": "C1", "work_date": "2024-04-03", "hours": 4,
         "work_type": "project", "billable": True, "created_at": "2024-04-03T10:00:00"},
        # C2: 1 h on Apr 2; March work does not count in April
        {"time_entry_id": "T3", "technician_id": "X", "client_id": "C2", "work_date": "2024-04-02", "hours": 1,
         "work_type": "reactive", "billable": True, "created_at": "2024-04-02T10:00:00"},
        {"time_entry_id": "T4", "technician_id": "X", "client_id": "C2", "work_date": "2024-03-31", "hours": 9,
         "work_type": "reactive", "billable": True, "created_at": "2024-03-31T10:00:00"},
    ])
    rates = table("processed.technician_cost_rates", [
        {"cost_rate_id": "R", "technician_id": "X", "cost_rate": 50, "effective_from": "2020-01-01"}])
    tickets = table("processed.tickets", [
        {"ticket_id": "K1", "client_id": "C1", "created_at": "2024-04-03T08:00:00",
         "updated_at": "2024-04-03T08:00:00"}])
    profit = table("processed.client_profitability_monthly", [
        {"client_id": "C1", "month": "2024-04", "billed": 3000, "addition_cost": 300, "addition_retail": 400},
        {"client_id": "C2", "month": "2024-04", "billed": 1000, "addition_cost": 0, "addition_retail": 0}])
    churn = table("analytics.churn", [
        {"client_id": "C1", "dt": "2024-04-03", "churn_probability": 0.3, "risk_band": "watch"}])
    out = daily_summary.transform(te, rates, tickets, profit, churn, [date(2024, 4, 3)], cfg)
    rows = {r["client_id"]: r for r in out.to_pyarrow().to_pylist()}
    c1, c2 = rows["C1"], rows["C2"]

    def get(r, *cols):
        return tuple(r[c] for c in cols)

    # month to date on Apr 3: 6 h, 300.00 cost, 2 reactive hours, 1 ticket; that day 4 h and 1 ticket
    assert get(c1, "labour_hours_day", "mtd_labour_hours", "mtd_labour_cost", "mtd_reactive_hours", "mtd_tickets") == (
        D("4.00"), D("6.00"), D("300.00"), D("2.00"), 1)
    # projection x 30 / 3 days: 60 h, 3000.00 cost; margin (3000 - 300 - 3000) / 3000 = -10 %;
    # EHR (3000 - 300) / 60 = 45.00
    assert get(c1, "projected_labour_hours", "projected_labour_cost", "projected_margin_pct", "projected_ehr") == (
        D("60.00"), D("3000.00"), D("-10.00"), D("45.00"))
    # C2: 1 h -> 10 h projected, 10 h per 1000 billed = 0.010 h/$; C1: 60 h per 3000 = 0.020 h/$ (more)
    assert get(c2, "mtd_labour_hours", "projected_labour_hours", "projected_ehr") == (
        D("1.00"), D("10.00"), D("100.00"))
    assert (c1["consumption_quintile"], c2["consumption_quintile"]) == (1, 2)
    # over-utilizer: quintile 1 and projected EHR 45 < 100
    assert (c1["over_utilizer"], c2["over_utilizer"]) == (True, False)
    assert (c1["churn_probability"], c1["risk_band"], c2["risk_band"]) == (0.3, "watch", None)
    assert c1["dt"] == "2024-04-03" and c1["month"] == "2024-04"


def test_an_addition_or_rate_that_only_moved_its_end_reaches_only_the_months_between_the_ends():
    """The yearly reissue: each addition is cancelled on Dec 31 and a new one starts on Jan 1; each cost rate
    is closed on Dec 31. Known before, they change December and January only; unknown, every month."""
    all_lines = table("processed.invoice_lines", [])
    old_addition = {"addition_id": "A1", "agreement_id": "G1", "client_id": "C1", "quantity": 10,
                    "unit_cost": 3.5, "unit_price": 4.0, "effective_date": "2024-01-01",
                    "updated_at": "2024-01-01T09:00:00", "dt": "2024-01-01"}
    old_rate = {"cost_rate_id": "R1", "technician_id": "T1", "cost_rate": 50, "effective_from": "2024-01-01",
                "updated_at": "2024-01-01T09:00:00", "dt": "2024-01-01"}
    today = exported_today(
        additions=[{**old_addition, "cancelled_date": "2025-12-31", "updated_at": "2026-01-01T10:00:00",
                    "dt": "2026-01-01"},
                   {**old_addition, "addition_id": "A2", "effective_date": "2026-01-01",
                    "updated_at": "2026-01-01T10:00:00", "dt": "2026-01-01"}],
        cost_rates=[{**old_rate, "effective_to": "2025-12-31", "updated_at": "2026-01-01T10:00:00",
                     "dt": "2026-01-01"}])
    before = {"additions": table("processed.agreement_additions", [old_addition]),
              "cost_rates": table("processed.technician_cost_rates", [old_rate])}
    day = [date(2026, 1, 1)]
    assert profitability.affected_months(today, all_lines, day, 5, before) == {"2025-12", "2026-01"}
    # the same rows with what came before unknown: from their first day on
    everything = set(profitability.months_between("2024-01", "2026-01"))
    assert profitability.affected_months(today, all_lines, day, 5) == everything
    assert profitability.affected_months(today, all_lines, day, 5, {"additions": None, "cost_rates": None}) \
        == everything
    # a changed value (the unit cost) changes every month the addition ran, old stretch and new
    repriced = exported_today(additions=[{**old_addition, "unit_cost": 3.9, "effective_date": "2024-06-01",
                                          "updated_at": "2026-01-01T10:00:00", "dt": "2026-01-01"}])
    assert profitability.affected_months(repriced, all_lines, day, 5, before) == everything
    # a start moved from June to March 2025 changes March to June, and only those
    moved = exported_today(additions=[{**old_addition, "effective_date": "2025-03-01", "dt": "2026-01-01",
                                       "updated_at": "2026-01-01T10:00:00"}])
    before_june = {"additions": table("processed.agreement_additions",
                                      [{**old_addition, "effective_date": "2025-06-15"}])}
    assert profitability.affected_months(moved, all_lines, day, 5, before_june) == {
        "2025-03", "2025-04", "2025-05", "2025-06", "2026-01"}

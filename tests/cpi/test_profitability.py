"""The profitability formulas on hand-made rows, against numbers worked out by hand.

One client (C1) with one agreement (A1), March 2024. The arithmetic of every expected value is written
next to it; the inputs are built in :func:`inputs`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from jobs.cpi import profitability as P
from tests.cpi.conftest import rows_of, table

MARCH = ["2024-03"]
AS_OF = date(2024, 4, 3)


def D(x):
    return Decimal(str(x))


def raw_inputs(make=table):
    """The hand-made processed rows of every input (the version history included), each made a table
    expression by ``make(dataset, rows)`` (default: a DuckDB memtable)."""
    f = lambda name, rows: make(f"processed.{name}", rows)  # noqa: E731
    return {
        "invoices": f("invoices", [
            {"invoice_id": "I1", "client_id": "C1", "agreement_id": "A1", "status": "paid", "due_date": "2024-01-31",
             "updated_at": "2024-03-11T10:00:00"},
            # I2 was sent, then voided: the latest version (void) wins and its line is excluded
            {"invoice_id": "I2", "client_id": "C1", "agreement_id": "A1", "status": "sent", "due_date": "2024-03-31",
             "updated_at": "2024-03-01T09:00:00"},
            {"invoice_id": "I2", "client_id": "C1", "agreement_id": "A1", "status": "void", "due_date": "2024-03-31",
             "updated_at": "2024-03-02T09:00:00", "dt": "2024-03-02"},
            {"invoice_id": "I3", "client_id": "C1", "agreement_id": "A1", "status": "sent", "due_date": "2024-04-15",
             "updated_at": "2024-04-01T09:00:00"},
        ]),
        "invoice_lines": f("invoice_lines", [
            # quarterly fee 3000.00 over Jan-Mar -> 1000.00 in March
            {"invoice_line_id": "L1", "invoice_id": "I1", "client_id": "C1", "agreement_id": "A1",
             "line_type": "recurring", "amount": 3000, "service_period_start": "2024-01-01",
             "service_period_end": "2024-03-31", "created_at": "2024-01-01T08:00:00"},
            # additions billed quarterly 450.00 -> 150.00 in March
            {"invoice_line_id": "L2", "invoice_id": "I1", "client_id": "C1", "agreement_id": "A1",
             "line_type": "addition", "amount": 450, "service_period_start": "2024-01-01",
             "service_period_end": "2024-03-31", "created_at": "2024-01-01T08:00:00"},
            # on the voided invoice: excluded
            {"invoice_line_id": "L3", "invoice_id": "I2", "client_id": "C1", "agreement_id": "A1",
             "line_type": "recurring", "amount": 999.99, "service_period_start": "2024-03-01",
             "service_period_end": "2024-03-31", "created_at": "2024-03-01T08:00:00"},
            # March hours billed in arrears: 2.5 h x 120.00 = 300.00
            {"invoice_line_id": "L4", "invoice_id": "I3", "client_id": "C1", "agreement_id": "A1",
             "line_type": "labour", "quantity": 2.5, "unit_price": 120, "amount": 300,
             "service_period_start": "2024-03-01", "service_period_end": "2024-03-31",
             "created_at": "2024-04-01T08:00:00"},
            # one-time project fee, no agreement: all 500.00 in the month its period starts
            {"invoice_line_id": "L5", "invoice_id": "I3", "client_id": "C1", "agreement_id": None,
             "line_type": "one_time", "amount": 500, "service_period_start": "2024-03-10",
             "service_period_end": "2024-05-31", "created_at": "2024-04-01T08:00:00"},
            # 100.00 over Mar-May does not divide: 10000 cents // 3 = 3333, March takes the 1-cent rest: 33.34
            {"invoice_line_id": "L6", "invoice_id": "I3", "client_id": "C1", "agreement_id": "A1",
             "line_type": "recurring", "amount": 100, "service_period_start": "2024-03-01",
             "service_period_end": "2024-05-31", "created_at": "2024-04-01T08:00:00"},
        ]),
        "additions": f("agreement_additions", [
            # 10 x 8.50 = 85.00 cost, 10 x 15.00 = 150.00 retail, active since January
            {"addition_id": "AD1", "agreement_id": "A1", "client_id": "C1", "quantity": 10, "unit_cost": 8.5,
             "unit_price": 15, "effective_date": "2024-01-01", "updated_at": "2024-01-01T00:00:00"},
            # starts in April: not in March
            {"addition_id": "AD2", "agreement_id": "A1", "client_id": "C1", "quantity": 2, "unit_cost": 20,
             "unit_price": 30, "effective_date": "2024-04-01", "updated_at": "2024-03-20T00:00:00"},
            # cancelled at the end of February: not in March
            {"addition_id": "AD3", "agreement_id": "A1", "client_id": "C1", "quantity": 1, "unit_cost": 30,
             "unit_price": 45, "effective_date": "2023-12-01", "cancelled_date": "2024-02-29",
             "updated_at": "2024-02-29T00:00:00"},
        ]),
        "cost_rates": f("technician_cost_rates", [
            {"cost_rate_id": "R1", "technician_id": "T1", "cost_rate": 40, "effective_from": "2023-01-01",
             "effective_to": "2024-03-14", "updated_at": "2024-03-15T00:00:00"},
            {"cost_rate_id": "R2", "technician_id": "T1", "cost_rate": 45, "effective_from": "2024-03-15",
             "updated_at": "2024-03-15T00:00:00"},
        ]),
        "time_entries": f("time_entries", [
            # 3.5 h x 40.00 (rate R1 until Mar 14) = 140.00, reactive, billable
            {"time_entry_id": "TE1", "technician_id": "T1", "client_id": "C1", "agreement_id": "A1",
             "work_date": "2024-03-10", "hours": 3.5, "billable": True, "work_type": "reactive",
             "created_at": "2024-03-10T12:00:00"},
            # the same entry exported twice: counted once
            {"time_entry_id": "TE1", "technician_id": "T1", "client_id": "C1", "agreement_id": "A1",
             "work_date": "2024-03-10", "hours": 3.5, "billable": True, "work_type": "reactive",
             "created_at": "2024-03-10T12:00:00", "dt": "2024-03-11"},
            # 2.0 h x 45.00 (rate R2 from Mar 15) = 90.00, proactive, not billable
            {"time_entry_id": "TE2", "technician_id": "T1", "client_id": "C1", "agreement_id": "A1",
             "work_date": "2024-03-20", "hours": 2.0, "billable": False, "work_type": "proactive",
             "created_at": "2024-03-20T12:00:00"},
            # on R2's first day: 1.25 h x 45.00 = 56.25, onsite (reactive), billable
            {"time_entry_id": "TE3", "technician_id": "T1", "client_id": "C1", "agreement_id": "A1",
             "work_date": "2024-03-15", "hours": 1.25, "billable": True, "work_type": "onsite",
             "created_at": "2024-03-15T12:00:00"},
            # T2 has no cost rate: 1.0 uncosted hour, costs nothing
            {"time_entry_id": "TE4", "technician_id": "T2", "client_id": "C1", "agreement_id": "A1",
             "work_date": "2024-03-05", "hours": 1.0, "billable": False, "work_type": "reactive",
             "created_at": "2024-03-05T12:00:00"},
            # February: not in March
            {"time_entry_id": "TE5", "technician_id": "T1", "client_id": "C1", "agreement_id": "A1",
             "work_date": "2024-02-28", "hours": 4.0, "billable": True, "work_type": "reactive",
             "created_at": "2024-02-28T12:00:00"},
        ]),
        "tickets": f("tickets", [
            {"ticket_id": "TK1", "client_id": "C1", "agreement_id": "A1", "created_at": "2024-03-02T09:00:00",
             "updated_at": "2024-03-02T18:00:00"},
            {"ticket_id": "TK1", "client_id": "C1", "agreement_id": "A1", "created_at": "2024-03-02T09:00:00",
             "closed_at": "2024-03-03T10:00:00", "csat_rating": 2, "updated_at": "2024-03-03T10:00:00"},
            {"ticket_id": "TK2", "client_id": "C1", "agreement_id": "A1", "created_at": "2024-03-30T09:00:00",
             "updated_at": "2024-03-30T09:00:00"},
            {"ticket_id": "TK3", "client_id": "C1", "agreement_id": "A1", "created_at": "2024-02-27T09:00:00",
             "closed_at": "2024-03-01T10:00:00", "csat_rating": 5, "updated_at": "2024-03-01T10:00:00"},
        ]),
        "payments": f("payments", [
            # I1 due Jan 31: paid Mar 1 = 30 days late (2024 is a leap year), and Mar 11 = 40 days late
            {"payment_id": "P1", "invoice_id": "I1", "client_id": "C1", "payment_date": "2024-03-01", "amount": 2000,
             "created_at": "2024-03-01T00:00:00"},
            {"payment_id": "P2", "invoice_id": "I1", "client_id": "C1", "payment_date": "2024-03-11", "amount": 1450,
             "created_at": "2024-03-11T00:00:00"},
        ]),
        "endpoints": f("managed_endpoints", [
            {"snapshot_date": "2024-03-01", "client_id": "C1", "total_endpoints": 20},
            {"snapshot_date": "2024-03-02", "client_id": "C1", "total_endpoints": 22},
        ]),
    }


@pytest.fixture(scope="module")
def inputs():
    return P.prepare(raw_inputs())


METRICS = ["client_id", "month", "billed", "mrr", "labour_billed", "addition_cost", "addition_retail",
           "labour_hours", "billable_hours", "reactive_hours", "uncosted_hours", "labour_cost", "profit",
           "margin_pct", "effective_hourly_rate", "contribution_rate", "endpoints", "rhem", "tickets",
           "tickets_per_endpoint", "labour_cost_per_endpoint", "revenue_per_endpoint", "payments",
           "avg_days_late", "csat_responses", "csat_avg", "csat_positive_pct", "month_final"]


def test_client_month_matches_the_hand_computed_numbers(inputs, cfg):
    client, _ = P.transform(inputs, MARCH, cfg, AS_OF)
    expected = [(
        "C1", "2024-03",
        D("1983.34"),   # billed = 1000.00 (L1) + 150.00 (L2) + 300.00 (L4) + 500.00 (L5) + 33.34 (L6)
        D("1183.34"),   # mrr = recurring + addition shares = 1000.00 + 150.00 + 33.34
        D("300.00"),    # labour_billed = L4
        D("85.00"),     # addition_cost = 10 x 8.50 (AD1 only)
        D("150.00"),    # addition_retail = 10 x 15.00
        D("7.75"),      # labour_hours = 3.5 + 2.0 + 1.25 + 1.0 (TE1 once, TE5 is February)
        D("4.75"),      # billable_hours = 3.5 + 1.25
        D("5.75"),      # reactive_hours (reactive + onsite) = 3.5 + 1.25 + 1.0
        D("1.00"),      # uncosted_hours = TE4
        D("286.25"),    # labour_cost = 140.00 + 90.00 + 56.25 + 0
        D("1612.09"),   # profit = 1983.34 - 85.00 - 286.25
        D("81.28"),     # margin_pct = 1612.09 / 1983.34 x 100 = 81.2815...
        D("244.95"),    # EHR (cost basis) = (1983.34 - 85.00) / 7.75 = 244.947...
        D("208.01"),    # contribution_rate = 1612.09 / 7.75 = 208.0116...
        21.0,           # endpoints = mean(20, 22)
        0.2738,         # rhem = 5.75 / 21 = 0.27380...
        2,              # tickets opened in March: TK1, TK2
        0.0952,         # tickets_per_endpoint = 2 / 21 = 0.09523...
        D("13.63"),     # labour_cost_per_endpoint = 286.25 / 21 = 13.6309...
        D("56.35"),     # revenue_per_endpoint = 1183.34 / 21 = 56.3495...
        2,              # payments P1, P2
        D("34.20"),     # avg_days_late = (2000 x 30 + 1450 x 40) / 3450 = 34.2029...
        2,              # csat answers on tickets closed in March: TK3 (5), TK1 (2)
        3.5,            # csat_avg = (5 + 2) / 2
        50.0,           # csat_positive_pct = 1 of 2 rated >= 4
        False,          # month_final: March closes on Apr 5 (Mar 31 + 5 days) > as_of Apr 3
    )]
    assert rows_of(client, METRICS) == expected


def test_agreement_month_and_target_hours(inputs, cfg):
    _, agreement = P.transform(inputs, MARCH, cfg, AS_OF)
    cols = ["agreement_id", "client_id", "billed", "profit", "margin_pct", "effective_hourly_rate",
            "contribution_rate", "target_hours"]
    expected = [(
        "A1", "C1",
        D("1483.34"),  # billed without L5 (no agreement): 1983.34 - 500.00
        D("1112.09"),  # profit = 1483.34 - 85.00 - 286.25
        D("74.97"),    # margin = 1112.09 / 1483.34 x 100 = 74.973...
        D("180.43"),   # EHR = (1483.34 - 85.00) / 7.75 = 180.431...
        D("143.50"),   # contribution = 1112.09 / 7.75 = 143.495...
        # target hours at 50 %: (0.5 x 1483.34 - 85.00) / (286.25 / 7.75 = 36.935484) = 656.67 / 36.935484 = 17.778...
        D("17.78"),
    )]
    assert rows_of(agreement, cols) == expected


@pytest.mark.parametrize(("basis", "ehr"), [
    ("none", D("255.91")),    # 1983.34 / 7.75 = 255.914...
    ("cost", D("244.95")),    # (1983.34 - 85.00) / 7.75
    ("retail", D("236.56")),  # (1983.34 - 150.00) / 7.75 = 236.560...
])
def test_effective_hourly_rate_follows_the_deduction_basis(inputs, cfg, basis, ehr):
    client, _ = P.transform(inputs, MARCH, cfg.model_copy(update={"deduction_basis": basis}), AS_OF)
    assert rows_of(client, ["effective_hourly_rate"]) == [(ehr,)]


def test_margin_is_null_without_billing_and_rates_are_null_without_hours(cfg):
    empty = {k: table(ds, []) for k, ds in P.INPUTS.items()}
    empty["time_entries"] = table("processed.time_entries", [
        {"time_entry_id": "TE9", "technician_id": "T9", "client_id": "C2", "work_date": "2024-03-01", "hours": 2,
         "billable": True, "work_type": "project", "created_at": "2024-03-01T00:00:00"}])
    empty["endpoints"] = table("processed.managed_endpoints", [
        {"snapshot_date": "2024-03-01", "client_id": "C3", "total_endpoints": 0}])
    client, _ = P.transform(P.prepare(empty), MARCH, cfg, date(2024, 4, 30))
    rows = {r["client_id"]: r for r in client.to_pyarrow().to_pylist()}
    # C2: worked 2 h, billed nothing, no cost rate -> profit 0, margin null, EHR 0 / 2 = 0
    assert rows["C2"]["margin_pct"] is None and rows["C2"]["profit"] == D("0.00")
    assert rows["C2"]["effective_hourly_rate"] == D("0.00") and rows["C2"]["uncosted_hours"] == D("2.00")
    # C3: endpoints only (0 of them): no division by zero, every ratio null
    assert rows["C3"]["rhem"] is None and rows["C3"]["effective_hourly_rate"] is None
    assert rows["C3"]["tickets"] == 0 and rows["C3"]["endpoints"] == 0.0
    assert rows["C3"]["month_final"] is True  # March closed Apr 5 <= Apr 30


def test_spread_months_add_up_to_the_line_amount(inputs):
    facts = P.billed_facts(inputs.invoice_lines, inputs.invoices, ["2024-03", "2024-04", "2024-05"])
    l6 = dict(rows_of(facts.group_by("month").aggregate(cents=facts.billed_cents.sum())))
    # Mar: L1 100000 + L2 15000 + L4 30000 + L5 50000 + L6 3334; Apr and May: L6 3333 each
    assert l6 == {"2024-03": 198334, "2024-04": 3333, "2024-05": 3333}

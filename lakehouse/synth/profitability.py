"""Monthly profitability per client, computed from the clean rows the generator writes.

This is the reference the profitability agent must match to the cent. ``DEFINITION`` is the contract; it
is repeated in the truth README and in ``Ledger``'s docstring.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

from lakehouse.synth.textfmt import NULL

DEFINITION = """
Profitability per client and calendar month, for the months from the scale's first export day to the month of
the window's last day (rows: client-months with any revenue, addition cost or labour), computed from the clean
landing rows (dirty rows removed) exported from the scale's first day to the end of the window:

- billed_revenue = Σ invoice_lines.amount (amount = quantity × unit_price, 2 decimals) of invoices whose latest
  status is not ``void``. A line of type recurring, addition or labour is spread evenly over the calendar months
  from the month of service_period_start to the month of service_period_end (amounts are exact multiples of the
  month count in cents, so the spread is exact); a ``one_time`` line counts in the month of service_period_start.
- addition_cost = Σ quantity × unit_cost of agreement_additions active in the month (latest row per
  addition_id): effective_date <= last day of the month and (cancelled_date empty or >= first day of the month).
- labour_hours = Σ time_entries.hours (billable or not) by month of work_date;
  labour_cost = Σ hours × cost_rate of the technician_cost_rates row (latest row per cost_rate_id) with
  effective_from <= work_date <= effective_to (open-ended when effective_to is empty). Every product is an
  exact number of cents (hours in 0.1 h steps, rates in 10-cent steps).
- profit = billed_revenue − addition_cost − labour_cost.
- margin_pct = profit / billed_revenue × 100, rounded half-up to 2 decimals; empty when billed_revenue = 0.
- effective_hourly_rate = (billed_revenue − addition_cost) / labour_hours, rounded half-up to 2 decimals;
  empty when labour_hours = 0.
- month_complete is false for the window's last month when the window ends before that month's last day.
"""


class Ledger:
    """Accumulates billed revenue, addition cost and labour per client and calendar month.

    Only rows exported on days 0..last_day count (the rows the landing area holds after the run):
    an invoice counts if issued by last_day and not voided by last_day. The definition (``DEFINITION``):
    """

    def __init__(self, tl, n_clients: int, last_day: int):
        self.tl = tl
        self.last_day = last_day
        self.n_months = int(tl.month_of(last_day)) + 1
        shape = (n_clients, self.n_months)
        self.billed = np.zeros(shape, dtype=np.int64)
        self.hours10 = np.zeros(shape, dtype=np.int64)
        self.labour = np.zeros(shape, dtype=np.int64)  # cents
        self.addition_cost = np.zeros(shape, dtype=np.int64)

    def labour_rows(self, client, day, hours10, cost_cents) -> None:
        keep = (day >= 0) & (day <= self.last_day)
        m = self.tl.month_of(day[keep])
        np.add.at(self.hours10, (client[keep], m), hours10[keep])
        np.add.at(self.labour, (client[keep], m), cost_cents[keep])

    def invoice_lines(self, client, line_type, amount, sp_start, sp_end, issue, void_day) -> None:
        keep = (issue >= 0) & (issue <= self.last_day) & ~((void_day != NULL) & (void_day <= self.last_day))
        client, line_type, amount = client[keep], line_type[keep], amount[keep]
        m0 = self.tl.month_of(sp_start[keep])
        m1 = np.where(line_type == 3, m0, self.tl.month_of(sp_end[keep]))
        n = m1 - m0 + 1
        if np.any(amount % n):
            raise AssertionError("a spread invoice line is not a multiple of its month count in cents")
        rep = np.repeat(np.arange(len(client)), n)
        month = m0[rep] + (np.arange(len(rep)) - np.repeat(np.cumsum(n) - n, n))
        share = (amount // n)[rep]
        inside = (month >= 0) & (month < self.n_months)
        np.add.at(self.billed, (client[rep][inside], month[inside]), share[inside])

    def additions(self, a) -> None:
        """Σ quantity × unit_cost of additions active in the month (known by last_day)."""
        known = a.created <= self.last_day
        for m in range(self.n_months):
            first, last = int(self.tl.first_day(m)), int(self.tl.last_day(m))
            on = known & (a.effective <= last) & ((a.cancelled == NULL) | (a.cancelled >= first))
            np.add.at(self.addition_cost[:, m], a.client[on], a.quantity[on] * a.unit_cost[on])

    def frame(self, client_ids: np.ndarray) -> pd.DataFrame:
        """One row per client and month with any revenue, addition cost or labour."""
        c, m = np.nonzero((self.billed != 0) | (self.addition_cost != 0) | (self.hours10 != 0))
        billed, add, lab, h10 = (self.billed[c, m], self.addition_cost[c, m], self.labour[c, m], self.hours10[c, m])
        profit = billed - add - lab
        months = [f"{self.tl.calendar_year(x)}-{self.tl.calendar_month(x):02d}" for x in m]
        last_complete = self.tl.month_of(self.last_day + 1) - 1
        df = pd.DataFrame({
            "client_id": client_ids[c], "month": months, "billed_revenue": [_money(x) for x in billed],
            "addition_cost": [_money(x) for x in add], "labour_hours": [_hours(x) for x in h10],
            "labour_cost": [_money(x) for x in lab], "profit": [_money(x) for x in profit],
            "margin_pct": [_ratio(p * 100, b) if b else "" for p, b in zip(profit, billed, strict=True)],
            "effective_hourly_rate": [_ratio((b - a) * 10, h * 100) if h else "" for b, a, h in
                                      zip(billed, add, h10, strict=True)],
            "month_complete": m <= last_complete,
        })
        return df.sort_values(["client_id", "month"], kind="stable").reset_index(drop=True)


def _money(cents: int) -> str:
    return str((Decimal(int(cents)) / 100).quantize(Decimal("0.01")))


def _hours(h10: int) -> str:
    return str((Decimal(int(h10)) / 10).quantize(Decimal("0.01")))


def _ratio(num: int, den: int) -> str:
    """num / den rounded half-up to 2 decimals (num and den exact integers)."""
    return str((Decimal(int(num)) / Decimal(int(den))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


Ledger.__doc__ = (Ledger.__doc__ or "") + DEFINITION

"""Opt-out deadlines and reminders on hand-made contracts with literal dates (a leap year, month ends)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from jobs.vcm.renewals import cycles, reminder_days_for, reminders
from models.vcm.fields import current_term, months_between, opt_out_deadline, term_end
from models.vcm.rules import RulesExtractor

MSP = ("North Star IT LLC",)


@pytest.mark.parametrize(("start", "months", "end"), [
    (date(2024, 3, 31), 24, date(2026, 3, 30)),
    (date(2024, 2, 29), 12, date(2025, 2, 28)),   # leap day: the anniversary does not exist -> March 1st - 1
    (date(2023, 1, 31), 1, date(2023, 2, 28)),
    (date(2024, 1, 31), 1, date(2024, 2, 29)),    # leap February
    (date(2024, 1, 1), 12, date(2024, 12, 31)),
    (date(2023, 11, 30), 3, date(2024, 2, 29)),
])
def test_term_end(start, months, end):
    assert term_end(start, months) == end
    assert months_between(start, end) == months


def test_opt_out_deadline_literal():
    assert opt_out_deadline(date(2024, 3, 31), 30, True) == date(2024, 3, 1)      # across leap February
    assert opt_out_deadline(date(2025, 3, 31), 30, True) == date(2025, 3, 1)
    assert opt_out_deadline(date(2024, 12, 31), 90, True) == date(2024, 10, 2)
    assert opt_out_deadline(date(2024, 12, 31), 90, False) is None               # fixed term: no opt-out


def test_reminders_literal_days():
    opt = date(2024, 3, 1)
    assert reminder_days_for(opt, date(2023, 1, 1), [90, 60, 30]) == [
        (90, date(2023, 12, 2)), (60, date(2024, 1, 1)), (30, date(2024, 1, 31))]
    # learned of after the 90-day reminder's day: that one fires on the day it is learned of, once
    assert reminder_days_for(opt, date(2023, 12, 20), [90, 60, 30]) == [
        (90, date(2023, 12, 20)), (60, date(2024, 1, 1)), (30, date(2024, 1, 31))]
    # learned of after the 60-day one: only the most urgent passed reminder, then the 30-day one
    assert reminder_days_for(opt, date(2024, 1, 10), [90, 60, 30]) == [(60, date(2024, 1, 10)),
                                                                        (30, date(2024, 1, 31))]
    assert reminder_days_for(opt, date(2024, 2, 20), [90, 60, 30]) == [(30, date(2024, 2, 20))]
    assert reminder_days_for(opt, date(2024, 3, 2), [90, 60, 30]) == []           # the deadline has passed


def test_renewal_cycles_roll_from_month_end():
    # 2024-02-29 + 12-month renewals: the terms end on the day before each anniversary
    got = cycles(date(2025, 2, 28), 12, 30, date(2027, 6, 30), 90)
    assert [(k, e, o) for k, e, o in got[:3]] == [(0, date(2025, 2, 28), date(2025, 1, 29)),
                                                   (1, date(2026, 2, 28), date(2026, 1, 29)),
                                                   (2, date(2027, 2, 28), date(2027, 1, 29))]
    assert current_term(date(2025, 2, 28), True, 12, date(2026, 3, 1)) == (date(2027, 2, 28), 2)
    assert current_term(date(2025, 2, 28), False, 12, date(2026, 3, 1)) == (date(2025, 2, 28), 0)


def test_reminders_from_versions_once_each():
    versions = pd.DataFrame([{
        "contract_id": "CT-1", "document_id": "a" * 64, "seen": date(2023, 6, 1), "valid_to": None,
        "expiration_date": date(2024, 3, 31), "auto_renew": True, "renewal_term_months": 12, "term_months": 12,
        "notice_period_days": 30}])
    got = reminders(versions, [90, 60, 30], date(2025, 3, 31))
    days = [(r.reminder_days, r.day, r.opt_out) for r in got]
    assert days == [(90, date(2023, 12, 2), date(2024, 3, 1)), (60, date(2024, 1, 1), date(2024, 3, 1)),
                    (30, date(2024, 1, 31), date(2024, 3, 1)),
                    # the first renewal term ends 2025-03-31; no leap day in the 90 days before 2025-03-01
                    (90, date(2024, 12, 1), date(2025, 3, 1)), (60, date(2024, 12, 31), date(2025, 3, 1)),
                    (30, date(2025, 1, 30), date(2025, 3, 1))]
    assert len({(r.contract_id, r.opt_out, r.reminder_days) for r in got}) == len(got)


HAND_MADE = [
    # (text, expiration, notice, opt-out)
    ("SERVICES AGREEMENT\n\nThis Agreement is made as of January 15, 2024 between Example Hosting LLC "
     '("Provider") and North Star IT LLC ("Customer").\n\nTerm. This Agreement commences on February 29, 2024 '
     "and continues for twelve (12) months, ending on February 28, 2025. Thereafter it renews automatically for "
     "successive one (1) year terms unless either party gives at least sixty (60) days' written notice of "
     "non-renewal.\n\nFees. Customer pays $1,200.00 per month. Payment terms: Net 30.\n\nThis Agreement is "
     "governed by the laws of the State of Colorado.",
     date(2025, 2, 28), 60, date(2024, 12, 30)),
    ("ORDER FORM\nCustomer: North Star IT LLC\nSupplier: Month End Networks\nOrder date: 2023-12-20\n"
     "Service start date: 2024-01-31\nInitial term: 2 months\nEnd of initial term: 2024-03-30\n"
     "Renewal: automatic, 1-month periods. Notice to terminate renewal: 30 days before the end of the current "
     "term.\nCharges: $300.00 per month\nPayment terms: Due on receipt\nGoverning law: Texas",
     date(2024, 3, 30), 30, date(2024, 2, 29)),
]


@pytest.mark.parametrize(("text", "expiration", "notice", "opt_out"), HAND_MADE)
def test_hand_made_contracts_give_the_exact_opt_out(text, expiration, notice, opt_out):
    e = RulesExtractor(MSP).extract(text)
    assert e.value("expiration_date") == expiration
    assert e.value("notice_period_days") == notice
    assert e.value("auto_renew") is True
    assert e.value("opt_out_deadline") == opt_out

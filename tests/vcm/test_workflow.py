"""The approval workflow: explicit states, who / when / why, and concurrent decisions."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from jobs.vcm.workflow import Case, WorkflowError, decision_row, fold, state_of


def _decision(case, action, state, actor, when):
    return decision_row(case.case_id, case.contract_id, action, state, actor, f"{actor} says so", when)


def test_draft_review_approved_signed():
    case = Case("CT-1:new", "CT-1", "new", date(2024, 1, 10), date(2024, 1, 10))
    d1 = _decision(case, "approve", "review", "Dana", datetime(2024, 1, 12, 9, tzinfo=UTC))
    d2 = _decision(case, "sign", "approved", "Lee", datetime(2024, 1, 13, 9, tzinfo=UTC))
    rows = fold(case, [d2, d1])
    assert [(r["action"], r["state"], r["actor"], r["applied"]) for r in rows] == [
        ("open", "draft", "vcm", True), ("complete", "review", "vcm", True), ("approve", "approved", "Dana", True),
        ("sign", "signed", "Lee", True)]
    assert rows[2]["reason"] == "Dana says so" and rows[2]["at"] == datetime(2024, 1, 12, 9, tzinfo=UTC)


def test_draft_stays_draft_until_fields_are_confirmed():
    case = Case("CT-2:new", "CT-2", "new", date(2024, 1, 10), None)
    assert state_of(fold(case, [])) == "draft"
    with pytest.raises(WorkflowError, match="needs it to be review"):
        _decision(case, "approve", "draft", "Dana", datetime(2024, 1, 12, tzinfo=UTC))
    d = _decision(case, "submit", "draft", "Dana", datetime(2024, 1, 12, tzinfo=UTC))
    assert state_of(fold(case, [d])) == "review"


def test_concurrent_decisions_second_is_kept_but_not_applied():
    case = Case("CT-3:renewal:2024-03-01", "CT-3", "renewal", date(2023, 12, 2), date(2023, 12, 2))
    a = _decision(case, "approve", "review", "Dana", datetime(2023, 12, 5, 10, 0, 0, tzinfo=UTC))
    r = _decision(case, "reject", "review", "Lee", datetime(2023, 12, 5, 10, 0, 1, tzinfo=UTC))
    rows = fold(case, [r, a])
    assert state_of(rows) == "approved"
    assert [(x["action"], x["applied"]) for x in rows[2:]] == [("approve", True), ("reject", False)]


def test_decisions_after_the_day_are_not_folded():
    case = Case("CT-4:new", "CT-4", "new", date(2024, 1, 1), date(2024, 1, 1))
    a = _decision(case, "approve", "review", "Dana", datetime(2024, 2, 1, tzinfo=UTC))
    assert state_of(fold(case, [a], until=datetime(2024, 1, 31, 23, 59, tzinfo=UTC))) == "review"


def test_decision_needs_who_and_why():
    case = Case("CT-5:new", "CT-5", "new", date(2024, 1, 1), date(2024, 1, 1))
    with pytest.raises(WorkflowError, match="--by"):
        decision_row(case.case_id, "CT-5", "approve", "review", " ", "ok", datetime(2024, 1, 2, tzinfo=UTC))

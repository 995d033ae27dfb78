"""The opportunity generators on literal rows: each rule at its threshold (one day short, the day it is met),
and the episodes they make: one event when a condition starts, one when a stalled deal worsens, one when it
ends (with why), the same ids whether a day runs alone or in a range."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from jobs.spo import generators as G
from jobs.spo import opportunities as O
from tests.spo.conftest import frame


def days(first: str, last: str) -> list[date]:
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    return [a + timedelta(days=i) for i in range((b - a).days + 1)]


def deal(stage="qualified", dt="2024-01-02", **kw):
    base = {"opportunity_id": "OP-000001", "lead_id": "LD-000001", "opportunity_name": "Managed IT - Acme",
            "opportunity_type": "new_logo", "stage": stage, "confidence": "medium", "mrr": 2000, "one_time_value": 900,
            "expected_close_date": "2024-03-01", "owner": "Ann Rep", "created_at": "2024-01-01T20:00:00",
            "last_activity_at": "2024-01-02T10:00:00", "updated_at": f"{dt}T21:00:00", "dt": dt}
    return {**base, **kw}


def activity(day: str, opp="OP-000001", n=1):
    return {"activity_id": f"AC-{day}-{n}", "activity_type": "email", "direction": "outbound", "lead_id": "LD-000001",
            "opportunity_id": opp, "owner": "Ann Rep", "occurred_at": f"{day}T15:00:00", "subject": "Re: next steps",
            "outcome": "sent", "opened": True, "clicked": False, "dt": day}


@pytest.fixture
def opps():
    return frame("processed.opportunities", [deal("identified", "2024-01-01"), deal("qualified", "2024-01-02")])


@pytest.fixture
def acts():
    return frame("processed.activities", [activity("2024-01-10"), activity("2024-02-05")])


def test_a_deal_stalls_on_the_14th_day_without_activity(opps, acts):
    f = G.deal_findings(opps, acts, days("2024-01-20", "2024-02-06"), stalled_days=14)
    stalled = f[f["kind"] == "stalled_deal"].set_index("day")["value"]
    # last activity 2024-01-10: 13 days on the 23rd (not stalled), 14 on the 24th
    assert pd.Timestamp("2024-01-23") not in stalled.index
    assert stalled[pd.Timestamp("2024-01-24")] == 14
    # an activity on 2024-02-05 ends it that day
    assert stalled.index.max() == pd.Timestamp("2024-02-04")


def test_a_close_date_passes_the_day_after_it(opps, acts):
    f = G.deal_findings(opps, acts, days("2024-02-29", "2024-03-03"), stalled_days=14)
    passed = f[f["kind"] == "close_date_passed"].set_index("day")["value"]
    assert list(passed.index) == [pd.Timestamp("2024-03-02"), pd.Timestamp("2024-03-03")]
    assert passed.iloc[0] == 1


def test_a_deal_known_later_is_not_seen_earlier(acts):
    """As of a day, a deal's later export is not known: a close exported on Feb 1 does not end Jan's stall."""
    o = frame("processed.opportunities", [deal("qualified", "2024-01-02"),
                                           deal("won", "2024-02-01", closed_at="2024-02-01T21:00:00")])
    f = G.deal_findings(o, acts, days("2024-01-25", "2024-02-02"), stalled_days=14)
    stalled = f[f["kind"] == "stalled_deal"]["day"]
    assert stalled.min() == pd.Timestamp("2024-01-25") and stalled.max() == pd.Timestamp("2024-01-31")


def test_episodes_one_event_when_it_stalls_one_when_it_worsens_one_when_it_ends(opps, acts):
    run = days("2024-01-20", "2024-02-25")
    f = G.deal_findings(opps, acts, run, stalled_days=14)
    f = f[f["kind"] == "stalled_deal"]
    why = O.closing_reasons(G.deal_states(opps, run), pd.DataFrame(), set(), set())
    rows = O.episodes(f, run, {}, critical_days=21, why_closed=why)
    got = [(r["dt"], r["state"], r["opened_on"].isoformat()) for r in rows]
    assert got == [("2024-01-24", "opened", "2024-01-24"), ("2024-01-31", "worsened", "2024-01-24"),
                   ("2024-02-05", "closed", "2024-01-24"),
                   # silent again from the 5th: a new episode on the 19th
                   ("2024-02-19", "opened", "2024-02-19")]
    assert rows[2]["resolution"] == "activity resumed"
    assert rows[0]["opportunity_id"] == "OP-000001" and rows[0]["episode_id"] == rows[2]["episode_id"]
    assert rows[0]["episode_id"] != rows[3]["episode_id"]
    assert len({r["event_id"] for r in rows}) == 4


def test_a_day_alone_gives_the_same_rows_as_in_a_range(opps, acts):
    run = days("2024-01-20", "2024-02-25")
    f = G.deal_findings(opps, acts, run, stalled_days=14)
    why = O.closing_reasons(G.deal_states(opps, run), pd.DataFrame(), set(), set())
    full = O.rows_frame(O.episodes(f, run, {}, critical_days=21, why_closed=why))
    for day in ("2024-01-31", "2024-02-05", "2024-02-19"):
        d = date.fromisoformat(day)
        before = full[full["dt"] < day]
        one = G.deal_findings(opps, acts, [d], stalled_days=14)
        why1 = O.closing_reasons(G.deal_states(opps, [d]), pd.DataFrame(), set(), set())
        alone = O.rows_frame(O.episodes(one, [d], O.open_episodes(before), critical_days=21, why_closed=why1))
        expect = full[full["dt"] == day].reset_index(drop=True)
        cols = ["event_id", "episode_id", "state", "opportunity_id", "value", "resolution", "summary"]
        assert alone[cols].to_dict("records") == expect[cols].to_dict("records"), day


def agreement(aid="AG-00001", client="CL-00001", kind="managed_services", end="2024-05-31", status="active",
              dt="2024-01-01", **kw):
    base = {"agreement_id": aid, "client_id": client, "agreement_name": f"Managed Services - {client}",
            "agreement_type": kind, "status": status, "start_date": "2022-06-01", "end_date": end, "term_months": 12,
            "renewal_mode": "auto", "renewal_term_months": 12, "notice_period_days": 30, "billing_cycle": "monthly",
            "mrr": 1500 if kind != "break_fix" else 0, "hourly_rate": 150, "sla_tier": "standard",
            "created_at": "2022-05-20T10:00:00", "updated_at": f"{dt}T10:00:00", "dt": dt}
    if kind == "break_fix":
        base |= {"end_date": None, "term_months": None, "renewal_term_months": None, "renewal_mode": "none"}
    return {**base, **kw}


def test_a_renewal_is_due_from_120_days_before_the_term_ends():
    a = G.agreement_states(frame("processed.agreements", [agreement()]), days("2024-01-30", "2024-02-02"))
    f = G.renewal_findings(a, window_days=120)
    assert f["day"].min() == pd.Timestamp("2024-02-01")  # 2024-05-31 - 120 days
    assert f.iloc[0]["value"] == 120 and f.iloc[0]["expected_mrr"] == 1500


def test_a_renewal_closes_when_the_agreement_renews():
    rows = [agreement(), agreement(end="2025-05-31", dt="2024-03-01")]
    run = days("2024-02-28", "2024-03-02")
    a = G.agreement_states(frame("processed.agreements", rows), run)
    f = G.renewal_findings(a, window_days=120)
    out = O.episodes(f, run, {}, critical_days=21, why_closed=O.closing_reasons(pd.DataFrame(), a, set(), set()))
    assert [(r["dt"], r["state"]) for r in out] == [("2024-02-28", "opened"), ("2024-03-01", "closed")]
    assert out[1]["resolution"] == "renewed: the term now ends 2025-05-31"
    assert out[0]["opportunity_id"].startswith("SO-") and out[0]["opportunity_id"] == out[1]["opportunity_id"]


def labour(client: str, month: str, amount: float):
    return {"invoice_line_id": f"IL-{client}-{month}", "invoice_id": "IN-1", "client_id": client, "agreement_id": None,
            "line_type": "labour", "product_code": "LABOR-TM", "description": "T&M", "quantity": 1,
            "unit_price": amount, "amount": amount, "service_period_start": f"{month}-01",
            "service_period_end": f"{month}-28", "created_at": f"{month}-02T06:00:00", "dt": f"{month}-02"}


def test_tm_clients_at_the_threshold_are_ripe_for_a_managed_agreement():
    months = [f"2023-{m:02d}" for m in range(2, 13)] + ["2024-01"]
    lines = [labour("CL-00001", m, 1200.0) for m in months] + [labour("CL-00002", m, 1199.99) for m in months] + \
        [labour("CL-00003", m, 5000.0) for m in months]
    ag = [agreement("AG-1", "CL-00001", "break_fix"), agreement("AG-2", "CL-00002", "break_fix"),
          agreement("AG-3", "CL-00003", "managed_services", end="2025-12-31")]
    run = [date(2024, 1, 2)]
    a = G.agreement_states(frame("processed.agreements", ag), [date(2024, 1, 1), date(2024, 1, 2)])
    f = G.tm_findings(frame("processed.invoice_lines", lines), a, run, threshold=1200, months=12)
    # exactly 1,200 a month qualifies; 1,199.99 does not; a managed client's labour is not T&M work to convert
    assert f["client_id"].tolist() == ["CL-00001"]
    assert f.iloc[0]["value"] == 1200.0 and f.iloc[0]["comparison"] == ">="
    # a day earlier, January's invoice was not exported yet: 11 months / 12 is below the threshold
    assert G.tm_findings(frame("processed.invoice_lines", lines), a, [date(2024, 1, 1)], threshold=1200,
                         months=12).empty


def addition(aid: str, client: str, code: str, qty=10, dt="2024-01-01", **kw):
    return {"addition_id": aid, "agreement_id": f"AG-{client}", "client_id": client, "product_code": code,
            "product_name": code, "quantity": qty, "unit_cost": 4, "unit_price": 8.5, "effective_date": "2023-01-01",
            "cancelled_date": None, "created_at": "2022-12-20T10:00:00", "updated_at": f"{dt}T10:00:00", "dt": dt, **kw}


def test_whitespace_a_category_half_the_contract_clients_have():
    clients = ["CL-00001", "CL-00002", "CL-00003", "CL-00004"]
    ag = [agreement(f"AG-{c}", c, end="2025-12-31") for c in clients]
    adds = [addition("AD-1", "CL-00001", "EDR"), addition("AD-2", "CL-00002", "EDR"),
            addition("AD-3", "CL-00001", "SAT")]
    run = [date(2024, 1, 2)]
    a = G.agreement_states(frame("processed.agreements", ag), run)
    cats = {"EDR": "security", "SAT": "security_training"}
    f, owned = G.whitespace_findings(a, frame("processed.agreement_additions", adds), cats, run, min_adoption=0.5,
                                     list_price={"security": (8.5, "device"), "security_training": (2.75, "user")},
                                     users=dict.fromkeys(clients, 12))
    opening = f[f["may_open"]]
    # EDR: 2 of 4 contract clients (50 %, the threshold) -> the two without it; SAT (25 %) opens nothing
    assert sorted(opening["client_id"]) == ["CL-00003", "CL-00004"]
    assert set(opening["service_category"]) == {"security"} and set(opening["value"]) == {0.5}
    # SAT is still listed as lacking (it keeps an open episode open) but may not open one
    assert not f[(f["service_category"] == "security_training")]["may_open"].any()
    assert ("CL-00001", "security", pd.Timestamp("2024-01-02")) in owned


def test_events_carry_evidence_and_validate(opps, acts):
    run = days("2024-01-23", "2024-01-24")
    rows = O.episodes(G.deal_findings(opps, acts, run, stalled_days=14), run, {}, critical_days=21)
    frame_ = O.rows_frame(rows)
    events = [O.to_event(r) for r in frame_.to_dict("records")]
    assert len(events) == 1
    e = events[0]
    assert e["type"] == "sales.opportunity.identified" and e["subject"] == "opportunity:OP-000001"
    assert e["time"] == "2024-01-24" and e["episode"] == {"id": rows[0]["episode_id"], "state": "opened",
                                                         "opened": "2024-01-24"}
    assert e["evidence"]["metric"] == "days_without_activity" and e["evidence"]["value"] == 14
    assert e["evidence"]["threshold"] == 14 and e["evidence"]["comparison"] == ">="
    assert e["evidence"]["source_rows"][0] == {"dataset": "processed.opportunities",
                                               "keys": {"opportunity_id": "OP-000001"}}
    assert e["data"]["opportunity_kind"] == "stalled_deal" and e["data"]["expected_mrr"] == 2000.0
    # the id is the same whenever it is computed
    assert O.to_event(frame_.to_dict("records")[0])["id"] == e["id"]

"""Rule 2 (SPO opportunity -> SLI) on literal envelopes: the tenant check before a quote (free and idle seats,
E5 users that fit E3, seats to order), a lead that is not a client yet, a lead that became one, no tenant."""

from __future__ import annotations

from jobs.sli.opportunity import Tenant, check, due_checks, opportunity, resolve, result_event
from lakehouse.context import date_range
from lakehouse.events import validate
from tests.sli.conftest import d


def envelope(eid, client=None, lead=None, seats=None, day="2024-03-11"):
    return {"specversion": "1.0", "id": eid, "type": "sales.opportunity.identified", "source": "spo.scoring",
            "subject": f"client:{client}" if client else f"lead:{lead}", "time": day, "schemaversion": 1,
            "data": {"opportunity_kind": "expansion" if client else "lead", "client_id": client, "lead_id": lead,
                     "period": "2024-03", "seats": seats},
            "evidence": {"metric": "score", "value": 0.8, "threshold": 0.5, "source_rows": []}}


TENANT = Tenant(
    position=[{"sku_part_number": "SPB", "sku_name": "Microsoft 365 Business Premium", "entitled": 20, "assigned": 17,
               "snapshot_date": d("2024-03-11")},
              {"sku_part_number": "SPE_E5", "sku_name": "Microsoft 365 E5", "entitled": 4, "assigned": 4,
               "snapshot_date": d("2024-03-11")}],
    utilisation=[{"sku_part_number": "SPB", "idle_seats": 2, "report_date": d("2024-03-04")},
                 {"sku_part_number": "SPE_E5", "idle_seats": 0, "report_date": d("2024-03-04")}],
    downgrades=[{"sku_part_number": "SPE_E5", "subject": "a@x"}, {"sku_part_number": "SPE_E5", "subject": "b@x"}])
COLS = ("status", "sku_part_number", "entitled", "assigned", "free_seats", "idle_seats", "reusable_seats",
        "e5_users", "e3_fit_users", "seats_to_order")


def test_client_tenant_check():
    opp = opportunity(envelope("a" * 32, client="C1", seats=8))
    rows = check(opp, "C1", TENANT, d("2024-03-11"))
    assert [tuple(r[c] for c in COLS) for r in rows] == [
        # 3 free + 2 idle on the base plan: of the 8 seats asked, 3 to order
        ("checked", "SPB", 20, 17, 3, 2, 5, None, None, 3),
        # two of the four E5 users used no E5-only workload: quote E3 for them
        ("checked", "SPE_E5", 4, 4, 0, 0, 0, 4, 2, None),
    ]
    assert rows[0]["recommendation"] == "8 seat(s) asked, 5 reusable (3 free, 2 idle): order 3"
    assert "2 of 4 E5 user(s) used no E5-only workload" in rows[1]["recommendation"]
    e = result_event(rows, d("2024-03-11"))
    validate(e)
    assert (e["type"], e["subject"], e["data"]["status"], e["data"]["reusable_seats"], e["data"]["seats_to_order"]) \
        == ("license.opportunity.checked", "client:C1", "checked", 5, 3)
    assert e["data"]["opportunity_event_id"] == "a" * 32


def test_no_seat_count_orders_nothing_but_lists_reusable_seats():
    rows = check(opportunity(envelope("b" * 32, client="C1")), "C1", TENANT, d("2024-03-11"))
    assert [r["seats_to_order"] for r in rows] == [None, None]
    assert rows[0]["recommendation"] == "5 seat(s) reusable (3 free, 2 idle) before buying more"


def test_lead_pending_then_a_client():
    opp = opportunity(envelope("c" * 32, lead="LD-000007", seats=12))
    assert resolve(opp, {}) is None
    (row,) = check(opp, None, None, d("2024-03-11"))
    assert (row["status"], row["sku_part_number"], row["lead_id"]) == ("pending_lead", "none", "LD-000007")
    validate(result_event([row], d("2024-03-11")))
    # the lead became client C7 (clients.referral_lead_id); its tenant has no Microsoft 365 snapshot yet
    client = resolve(opp, {"LD-000007": "C7"})
    (row,) = check(opp, client, None, d("2024-04-02"))
    assert (row["status"], row["client_id"], row["seats_to_order"]) == ("no_tenant", "C7", 12)
    assert "monthly term" in row["recommendation"]


def test_due_checks_depend_on_the_event_and_the_day_not_on_the_run_window():
    """A pending lead is checked on its own day and again on the first day the lake shows its client (within
    sli.lead_recheck_days); which days a run covers changes nothing but which of those checks it writes."""
    lead = opportunity(envelope("c" * 32, lead="LD-000007", seats=12, day="2024-03-11"))
    late = opportunity(envelope("e" * 32, lead="LD-000009", day="2024-03-11"))
    known = opportunity(envelope("f" * 32, lead="LD-000008", day="2024-03-20"))
    client = opportunity(envelope("b" * 32, client="C1", day="2024-03-12"))
    leads = {"LD-000007": ("C7", d("2024-04-02")), "LD-000008": ("C8", d("2024-03-01")),
             "LD-000009": ("C9", d("2024-09-01"))}
    days = date_range(d("2024-03-01"), d("2024-04-30"))
    whole = due_checks([lead, late, known, client], leads, days, 90)
    flat = {(day, o["event_id"], c) for day, todo in whole.items() for o, c in todo}
    assert flat == {(d("2024-03-11"), "c" * 32, None), (d("2024-04-02"), "c" * 32, "C7"),
                    (d("2024-03-11"), "e" * 32, None),  # LD-000009 became a client after the 90 days
                    (d("2024-03-20"), "f" * 32, "C8"), (d("2024-03-12"), "b" * 32, "C1")}
    # any window holds exactly the checks of its days
    for window in ([d("2024-04-02")], days[:20], days[40:], days[::7]):
        got = due_checks([lead, late, known, client], leads, window, 90)
        assert got == {k: v for k, v in whole.items() if k in window}

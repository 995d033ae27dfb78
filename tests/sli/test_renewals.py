"""NCE renewal windows on hand-made entitlements: the 168-hour window after a renewal and after seats bought
mid-term (an hour before and after its end), renewals rolled past a stale export, the seats that can be cut and
the saving, the monthly-term premium, and alerts once per renewal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobs.sli.renewals import Facts, added_seats, alerts, plan, window
from tests.sli.conftest import D, d, settings

H = 168


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("now", "is_open", "next_renewal", "opens"), [
    # the old term, an hour before the renewal: cutting is not possible yet
    ("2025-01-22T23:00", False, "2025-01-23", "2024-01-24"),
    # the renewal instant, before the new term is exported: today's window is open, the next renewal a year on
    ("2025-01-23T00:00", True, "2026-01-23", "2025-01-23"),
    # 167 h after the renewal: still open
    ("2025-01-29T23:00", True, "2026-01-23", "2025-01-23"),
    # 168 h: the end is excluded
    ("2025-01-30T00:00", False, "2026-01-23", "2025-01-23"),
    # 169 h: closed, the seats are committed for the term
    ("2025-01-30T01:00", False, "2026-01-23", "2025-01-23"),
])
def test_window_after_a_renewal_old_version(now, is_open, next_renewal, opens):
    w = window(d("2024-01-24"), d("2025-01-23"), 12, at(now), H)
    assert (w.open, w.next_renewal, w.opens) == (is_open, d(next_renewal), at(f"{opens}T00:00"))
    assert w.closes == w.opens.replace() + (at("2024-01-08T00:00") - at("2024-01-01T00:00"))


@pytest.mark.parametrize(("now", "is_open"), [("2025-01-29T23:00", True), ("2025-01-30T01:00", False)])
def test_window_after_a_renewal_new_version(now, is_open):
    # the renewed term as exported on the renewal day: its start opens the window
    w = window(d("2025-01-23"), d("2026-01-23"), 12, at(now), H)
    assert (w.open, w.next_renewal, w.closes) == (is_open, d("2026-01-23"), at("2025-01-30T00:00"))
    assert w.next_closes == at("2026-01-30T00:00")


def test_window_rolls_a_stale_monthly_term():
    # a monthly term last exported renewing on 2024-03-01: it has renewed on 04-01 and 05-01 since
    w = window(d("2024-02-01"), d("2024-03-01"), 1, at("2024-05-07T23:00"), H)
    assert (w.next_renewal, w.opens, w.open) == (d("2024-06-01"), at("2024-05-01T00:00"), True)
    assert window(d("2024-02-01"), d("2024-03-01"), 1, at("2024-05-08T01:00"), H).open is False


def version(seats, start, updated, dt, renewal="2026-01-23", **kw):
    return {"entitlement_id": kw.get("eid", "EN1"), "client_id": kw.get("client", "C1"),
            "vendor": kw.get("vendor", "Microsoft"), "sku_part_number": kw.get("sku", "SPB"),
            "sku_name": kw.get("sku", "SPB"), "seats": seats, "unit_price": D(kw.get("price", "22.00")),
            "term_months": kw.get("term", 12), "billing_frequency": "monthly", "billing_model": "nce",
            "start_date": d(start), "renewal_date": d(renewal), "auto_renew": True,
            "status": kw.get("status", "active"),
            "updated_at": at(updated), "dt": dt}


@pytest.mark.parametrize(("now", "added", "closes"), [
    ("2025-03-12T08:30", 0, None),  # an hour before the purchase
    ("2025-03-19T08:30", 2, at("2025-03-19T09:30")),  # 167 h after it: the 2 seats can still be cut
    ("2025-03-19T10:30", 0, None),  # 169 h: committed
])
def test_seats_bought_mid_term_have_their_own_window(now, added, closes):
    history = [version(10, "2025-01-23", "2025-01-23T15:00", "2025-01-23"),
               version(12, "2025-01-23", "2025-03-12T09:30", "2025-03-12")]
    assert added_seats(history, at(now), H) == (added, closes)


def facts(assigned=(), idle=(), devices=()):
    return Facts(Facts._index(assigned), Facts._index(idle), Facts._index(devices))


def test_plan_needed_seats_cuts_savings_and_premium(cat):
    ents = [version(20, "2025-01-23", "2025-01-23T10:00", "2025-01-23", eid="EN1"),
            version(10, "2025-03-01", "2025-03-01T10:00", "2025-03-01", renewal="2025-04-01", eid="EN2",
                    sku="O365_BUSINESS_PREMIUM", price="15.00", term=1),
            version(5, "2024-09-01", "2024-09-01T10:00", "2024-09-01", renewal="2025-09-01", eid="EN3",
                    vendor="Autodesk", sku="AUTOCAD-LT", price="60.00")]
    f = facts(assigned=[(("C1", "SPB"), d("2025-03-10"), 18), (("C1", "O365_BUSINESS_PREMIUM"), d("2025-03-10"), 10)],
              idle=[(("C1", "SPB"), d("2025-03-03"), 3)], devices=[(("C1", "AUTOCAD-LT"), d("2025-03-10"), 3)])
    rows = {r["entitlement_id"]: r for r in plan(ents, ents, f, at("2025-03-14T00:00"), cat, settings())}
    cols = ("assigned_seats", "idle_seats", "needed_seats", "cuttable_seats", "cut_saving_monthly", "cut_saving_term",
            "annual_unit_price", "monthly_term_premium", "term_switch_saving_monthly", "next_renewal",
            "days_to_renewal", "alert", "window_open")
    got = {k: tuple(r[c] for c in cols) for k, r in rows.items()}
    assert got == {
        # 18 assigned - 3 idle = 15 needed of 20: cut 5 at 22.00 = 110.00 / month, 1,320.00 over the 12-month term
        "EN1": (18, 3, 15, 5, D("110.00"), D("1320.00"), D("22.00"), D("0.00"), D("0.00"), d("2026-01-23"), 315,
                False, False),
        # a monthly term at 15.00 is 12.50 on an annual one: 2.50 premium on each of the 10 seats in use
        "EN2": (10, None, 10, 0, D("0.00"), D("0.00"), D("12.50"), D("2.50"), D("25.00"), d("2025-04-01"), 18,
                True, False),
        # AutoCAD LT on 3 devices of 5 seats: 2 to cut at 60.00
        "EN3": (3, None, 3, 2, D("120.00"), D("1440.00"), D("60.00"), D("0.00"), D("0.00"), d("2025-09-01"), 171,
                False, False),
    }


def test_cut_goes_to_the_entitlement_renewing_first(cat):
    ents = [version(10, "2024-06-01", "2024-06-01T10:00", "2024-06-01", renewal="2025-06-01", eid="A"),
            version(4, "2025-03-01", "2025-03-01T10:00", "2025-03-01", renewal="2025-04-01", eid="B", term=1)]
    f = facts(assigned=[(("C1", "SPB"), d("2025-03-10"), 11)])
    rows = {r["entitlement_id"]: r["cuttable_seats"] for r in plan(ents, (), f, at("2025-03-14T00:00"), cat,
                                                                     settings())}
    assert rows == {"A": 0, "B": 3}  # 14 seats, 11 needed: the 3 spare go from the monthly buffer


def test_unknown_need_cuts_nothing(cat):
    ents = [version(10, "2025-01-23", "2025-01-23T10:00", "2025-01-23")]
    (row,) = plan(ents, (), facts(), at("2025-03-14T00:00"), cat, settings())
    assert (row["needed_seats"], row["cuttable_seats"], row["cut_saving_monthly"]) == (None, None, None)


def test_alert_once_per_renewal_on_its_day(cat):
    history = [version(20, "2024-01-24", "2024-01-24T10:00", "2024-01-24", renewal="2025-01-23"),
               # seats change in the alert window: the same renewal, no second alert
               version(21, "2024-01-24", "2024-12-30T10:00", "2024-12-30", renewal="2025-01-23"),
               # a monthly term is never alerted (sli.renewal_alert_min_term_months = 12)
               version(5, "2024-12-01", "2024-12-01T10:00", "2024-12-01", renewal="2025-01-01", eid="EN9", term=1)]
    f = facts(assigned=[(("C1", "SPB"), d("2024-12-23"), 15)])
    december = [f"2024-12-{n:02d}" for n in range(1, 32)] + [f"2025-01-{n:02d}" for n in range(1, 23)]
    got = alerts(history, f, december, cat, settings())
    assert [(r["as_of"], r["entitlement_id"], r["next_renewal"], r["seats"], r["cuttable_seats"],
             r["cut_saving_term"]) for r in got] == [
        (d("2024-12-24"), "EN1", d("2025-01-23"), 20, 5, D("1320.00"))]  # 30 days before; 20 bought, 15 used
    assert alerts(history, f, ["2024-12-25"], cat, settings()) == []
    assert len(alerts(history, f, ["2024-12-24"], cat, settings())) == 1


def test_alert_for_a_term_exported_late(cat):
    # first exported 13 days before it renews: the alert comes that day
    history = [version(8, "2024-01-23", "2025-01-10T10:00", "2025-01-10", renewal="2025-01-23")]
    f = facts(assigned=[(("C1", "SPB"), d("2025-01-06"), 6)])
    got = alerts(history, f, ["2025-01-09", "2025-01-10", "2025-01-11"], cat, settings())
    assert [(r["as_of"], r["cuttable_seats"]) for r in got] == [(d("2025-01-10"), 2)]


def test_no_alert_without_seats_to_cut(cat):
    history = [version(20, "2024-01-24", "2024-01-24T10:00", "2024-01-24", renewal="2025-01-23")]
    f = facts(assigned=[(("C1", "SPB"), d("2024-12-23"), 20)])
    assert alerts(history, f, ["2024-12-24"], cat, settings()) == []


@pytest.mark.parametrize(("renewal", "term", "day", "expected"), [
    ("2025-01-23", 12, "2024-12-01", "2025-01-23"),  # ahead
    ("2025-01-23", 12, "2025-01-23", "2025-01-23"),  # on the day
    ("2024-01-31", 1, "2024-02-01", "2024-02-29"),  # month end clamps (as SQL date + interval)
    ("2024-03-01", 1, "2024-05-10", "2024-06-01"),  # stale export, rolled by whole terms
    ("2023-01-15", 12, "2024-03-20", "2025-01-15"),
])
def test_next_renewal_python_and_ibis_agree(renewal, term, day, expected):
    import ibis

    from jobs.sli.common import next_renewal, next_renewal_expr

    assert next_renewal(d(renewal), term, d(day)) == d(expected)
    expr = next_renewal_expr(ibis.literal(d(renewal)), ibis.literal(term), ibis.literal(d(day)))
    assert ibis.to_sql(expr) and ibis.memtable({"x": [1]}).select(v=expr).to_pyarrow().column("v")[0].as_py() == \
        d(expected)

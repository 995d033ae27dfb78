"""license.compliance.violation from hand-made table rows: one event per episode state (opened, worsened,
closed), deterministic ids, an episode closed when its subject vanishes, renewal alerts, valid envelopes."""

from __future__ import annotations

from datetime import UTC, datetime

from jobs.sli.alerts import (
    _unique,
    drift_events,
    idle_events,
    install_events,
    renewal_events,
    shortfall_events,
    vanished,
)
from lakehouse.events import episode_id, validate
from tests.sli.conftest import D, d

EVENT = "license.compliance.violation"


def pos(day, shortfall, state, opened, assigned=12, entitled=10, **kw):
    return {"snapshot_date": d(day), "client_id": "C1", "sku_part_number": "SPB", "sku_id": "g", "entitled": entitled,
            "assigned": assigned, "shortfall": shortfall, "shortfall_state": state,
            "shortfall_episode_opened": d(opened) if opened else None, "shortfall_episode_max": shortfall or None,
            "unit_price": D("22.00"), "true_up_exposure": D("22.00") * shortfall, "billing_drift": kw.get("drift"),
            "psa_quantity": kw.get("psa"), "drift_state": kw.get("drift_state"),
            "drift_episode_opened": d(kw["drift_opened"]) if kw.get("drift_opened") else None}


ROWS = [pos("2024-01-08", 2, "opened", "2024-01-08"), pos("2024-01-15", 2, "ongoing", "2024-01-08"),
        pos("2024-01-22", 3, "worsened", "2024-01-08", assigned=13), pos("2024-01-29", 0, "closed", "2024-01-08",
                                                                         assigned=10)]


def test_one_event_per_episode_state_not_per_snapshot():
    events = shortfall_events(ROWS)
    assert [(e["time"], e["episode"]["state"], e["data"]["shortfall"], e["data"]["exposure_amount"])
            for e in events] == [("2024-01-08", "opened", 2, 44.0), ("2024-01-22", "worsened", 3, 66.0),
                                 ("2024-01-29", "closed", 0, 0.0)]
    ep = episode_id(EVENT, "client:C1", "shortfall:SPB", "2024-01-08")
    assert {e["episode"]["id"] for e in events} == {ep}
    assert len({e["id"] for e in events}) == 3
    assert events[2]["episode"]["closed"] == "2024-01-29"
    first = events[0]
    assert first["data"] == {"client_id": "C1", "violation_kind": "shortfall", "period": "2024-01-08", "sku": "SPB",
                             "entitled": 10, "consumed": 12, "shortfall": 2, "episode_max_shortfall": 2,
                             "unit_price": 22.0, "exposure_amount": 44.0, "snapshot_date": "2024-01-08"}
    assert first["evidence"]["metric"] == "shortfall_seats" and first["evidence"]["comparison"] == ">"
    assert first["evidence"]["source_rows"][0] == {"dataset": "processed.licence_position",
                                                   "keys": {"client_id": "C1", "sku_part_number": "SPB",
                                                            "dt": "2024-01-08"}}
    for e in events:
        validate(e)


def test_ids_are_deterministic():
    assert [e["id"] for e in shortfall_events(ROWS)] == [e["id"] for e in shortfall_events([dict(r) for r in ROWS])]
    assert _unique(shortfall_events(ROWS) + shortfall_events(ROWS)) == shortfall_events(ROWS)


def test_an_episode_closes_when_its_subject_vanishes():
    prev = [pos("2024-01-15", 2, "ongoing", "2024-01-08", drift=-2, drift_state="ongoing",
                drift_opened="2024-01-01")]
    rows = vanished(prev, set(), ("client_id", "sku_part_number"), "shortfall_state",
                    ("shortfall_state", "drift_state"), d("2024-01-22"), "the subscription is no longer reported")
    (e,) = shortfall_events(rows)
    assert (e["time"], e["episode"]["state"], e["episode"]["opened"], e["data"]["reason"]) == (
        "2024-01-22", "closed", "2024-01-08", "the subscription is no longer reported")
    assert drift_events(rows, 1) == []  # only the shortfall's episode closes with this row
    assert vanished(prev, {("C1", "SPB")}, ("client_id", "sku_part_number"), "shortfall_state",
                    ("shortfall_state",), d("2024-01-22"), "gone") == []


def test_drift_install_and_idle_events():
    (e,) = drift_events([pos("2024-01-08", 0, None, None, drift=-3, psa=7, drift_state="opened",
                             drift_opened="2024-01-08")], 1)
    assert (e["data"]["violation_kind"], e["data"]["billing_drift"], e["data"]["exposure_amount"],
            e["evidence"]["threshold"]) == ("billing_mismatch", -3, 66.0, 1)
    inst = {"snapshot_date": d("2024-01-08"), "client_id": "C1", "install_key": "acrobat_pro",
            "licence_skus": "ACROBAT-PRO-TEAMS", "installs": 3, "licensed_seats": 1, "install_capacity": 2,
            "unlicensed_installs": 1, "install_state": "opened", "install_episode_opened": d("2024-01-08")}
    (e,) = install_events([inst])
    assert (e["data"]["violation_kind"], e["data"]["sku"], e["data"]["unlicensed_installs"]) == (
        "install_shortfall", "ACROBAT-PRO-TEAMS", 1)
    util = {"report_date": d("2024-03-04"), "client_id": "C1", "sku_part_number": "SPB", "entitled": 10,
            "assigned": 9, "active_users": 7, "idle_seats": 2, "unit_price": D("22.00"), "idle_cost": D("44.00"),
            "idle_state": "opened", "idle_episode_opened": d("2024-03-04")}
    (e,) = idle_events([util, {**util, "idle_state": "ongoing"}], 90)
    assert (e["data"]["violation_kind"], e["data"]["idle"], e["data"]["exposure_amount"], e["evidence"]["metric"]) \
        == ("idle_seats", 2, 44.0, "users_idle_90d")
    for ev in (e,):
        validate(ev)


def test_renewal_event_once_per_renewal():
    row = {"as_of": d("2024-12-24"), "next_renewal": d("2025-01-23"), "entitlement_id": "EN1", "client_id": "C1",
           "sku_part_number": "SPB", "seats": 20, "assigned_seats": 15, "needed_seats": 15, "idle_seats": None,
           "cuttable_seats": 5, "unit_price": D("22.00"), "cut_saving_term": D("1320.00"),
           "cut_saving_monthly": D("110.00"), "next_window_closes": datetime(2025, 1, 30, tzinfo=UTC),
           "position_snapshot": d("2024-12-23"), "activity_report": None}
    (e,) = renewal_events([row], 30)
    assert (e["time"], e["data"]["violation_kind"], e["data"]["period"], e["data"]["cuttable_seats"],
            e["data"]["exposure_amount"], e["data"]["window_closes"]) == (
        "2024-12-24", "renewal_with_idle_seats", "2025-01-23", 5, 1320.0, "2025-01-30T00:00:00+00:00")
    assert e["id"] == renewal_events([dict(row)], 30)[0]["id"]
    validate(e)

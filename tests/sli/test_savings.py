"""The licence optimizer on hand-made rows: idle seats, deleted-but-licensed accounts, unassigned seats,
double licensing, E5 -> E3 downgrades with their blockers, savings at the entitlement's price, the staged
reclaim plan, and the utilisation KPIs."""

from __future__ import annotations

import ibis

from jobs.sli import catalogue
from jobs.sli.savings import report_snapshot_table, savings, utilisation
from tests.sli.conftest import D, d, records, settings, table

R = "2024-03-04"


def pos(sku, entitled, assigned, price, reclaimable=0):
    return {"snapshot_date": R, "client_id": "C1", "client_name": "One", "tenant_id": "T1", "sku_id": f"g-{sku}",
            "sku_part_number": sku, "sku_name": sku, "entitled": entitled, "assigned": assigned,
            "available": entitled - assigned, "shortfall": max(assigned - entitled, 0),
            "unassigned": max(entitled - assigned, 0), "spare_allowance": 0, "reclaimable_unassigned": reclaimable,
            "unit_price": price, "dt": R}


POSITION = [pos("SPB", 10, 9, "22.00", reclaimable=1), pos("SPE_E5", 2, 2, "57.00"),
            pos("POWER_BI_PRO", 1, 1, "14.00")]


def user(upn, sku, idle=False, deleted=False, days=10, premium=None):
    return {"report_date": R, "client_id": "C1", "tenant_id": "T1", "user_principal_name": upn, "display_name": upn,
            "sku_part_number": sku, "sku_name": sku, "catalogued": True, "is_deleted": deleted,
            "last_activity_date": "2023-11-05" if idle else "2024-02-23", "days_inactive": days,
            "licence_first_seen": "2024-01-01", "licensed_reports": 3, "activity_basis": "activity",
            "inactive_since": "2023-11-05" if idle else "2024-02-23", "inactivity_class": "inactive" if idle else None,
            "deleted_licensed": deleted, "idle": idle, "idle_since_report": R if idle else None,
            "idle_reports": 1 if idle else None, "premium_used": premium, "dt": R}


ACTIVITY = [user("idle@c1.com", "SPB", idle=True, days=120), user("gone@c1.com", "SPB", deleted=True, days=400),
            user("fine@c1.com", "SPB"),
            user("boss@c1.com", "SPE_E5"), user("boss@c1.com", "POWER_BI_PRO"),
            user("asleep@c1.com", "SPE_E5", idle=True, days=100)]


def ent(eid, sku, term, renewal):
    return {"entitlement_id": eid, "client_id": "C1", "vendor": "Microsoft", "sku_id": f"g-{sku}",
            "sku_part_number": sku, "sku_name": sku, "seats": 10, "unit_price": "22.00", "term_months": term,
            "billing_frequency": "monthly", "billing_model": "nce", "start_date": "2023-06-01",
            "renewal_date": renewal, "auto_renew": True, "status": "active", "updated_at": "2024-01-01T00:00:00"}


ENTITLEMENTS = [ent("EN1", "SPB", 12, "2024-06-01"), ent("EN5", "SPE_E5", 1, "2024-03-15")]


def run(cat=None, activity=ACTIVITY, cfg=None):
    rs = ibis.memtable(report_snapshot_table([R], [R]))
    return savings(table("processed.licence_user_activity", activity), table("processed.licence_position", POSITION),
                   rs, table("processed.entitlements", ENTITLEMENTS),
                   table("processed.clients", [{"client_id": "C1", "client_name": "One",
                                                "updated_at": "2023-01-01T00:00:00"}]),
                   [R], cat or catalogue.load(), cfg or settings())


COLS = ["finding", "sku_part_number", "subject", "seats", "status", "target_sku", "unit_price", "target_unit_price",
        "monthly_saving", "annual_saving", "block_sign_in_on", "remove_licence_on", "reduce_seats_on", "saving_from"]


def test_findings_savings_and_reclaim_plan():
    got = [tuple(r.values()) for r in records(run(), COLS, order=["finding", "subject", "sku_part_number"])]
    assert got == [
        # deleted account: remove the licence now, drop the seat at SPB's next renewal (annual, 2024-06-01)
        ("deleted_licensed", "SPB", "gone@c1.com", 1, "candidate", None, D("22.00"), None, D("22.00"),
         D("264.00"), None, d(R), d("2024-06-01"), d("2024-06-01")),
        # Power BI Pro is part of E5: the standalone licence is a double licence
        ("double_licensed", "POWER_BI_PRO", "boss@c1.com", 1, "candidate", "SPE_E5", D("14.00"), D("0.00"),
         D("14.00"), D("168.00"), None, d(R), None, None),
        # E5 -> E3 at the E3 list price (no E3 entitlement in the tenant): 57.00 - 36.00; the monthly E5 term
        # renews on 2024-03-15; blockers: the E5-only workloads the activity report does not show
        ("downgrade", "SPE_E5", "boss@c1.com", 1, "review", "SPE_E3", D("57.00"), D("36.00"), D("21.00"),
         D("252.00"), d(R), None, d("2024-03-15"), d("2024-03-15")),
        # an idle E5 user is reclaimed whole (no downgrade finding); its monthly term renews after the removal
        ("idle_seat", "SPE_E5", "asleep@c1.com", 1, "candidate", None, D("57.00"), None, D("57.00"), D("684.00"),
         d(R), d("2024-04-03"), d("2024-04-15"), d("2024-04-15")),
        # idle: block sign-in on the report day, remove 30 days later, drop the seat at the renewal after that
        ("idle_seat", "SPB", "idle@c1.com", 1, "candidate", None, D("22.00"), None, D("22.00"), D("264.00"),
         d(R), d("2024-04-03"), d("2024-06-01"), d("2024-06-01")),
        # one seat bought and not assigned (beyond the buffer): drop it at the next renewal
        ("unassigned_seats", "SPB", "tenant", 1, "candidate", None, D("22.00"), None, D("22.00"), D("264.00"),
         None, None, d("2024-06-01"), d("2024-06-01")),
    ]
    blockers = records(run().filter(lambda t: t.finding == "downgrade"), ["blockers"])[0]["blockers"]
    assert blockers.startswith("not visible in the activity report, check: Power BI Pro; Teams Phone")
    assert "Entra ID P2 (PIM role assignments" in blockers


OBSERVABLE = """
[[product]]
sku = "SPE_E5"
vendor = "Microsoft"
name = "Microsoft 365 E5"
downgrade_to = "SPE_E3"
premium_workloads = ["power_bi"]
list_price = 57.00

[[product]]
sku = "SPE_E3"
vendor = "Microsoft"
name = "Microsoft 365 E3"
list_price = 36.00

[[workload]]
key = "power_bi"
name = "Power BI"
column = "power_bi_last_activity_date"
"""


def test_downgrade_candidate_when_every_premium_workload_is_observable():
    cat = catalogue.parse(OBSERVABLE)
    rows = [user("boss@c1.com", "SPE_E5"), user("analyst@c1.com", "SPE_E5", premium="power_bi")]
    out = run(cat, rows)
    got = records(out.filter(out.finding == "downgrade"), ["finding", "subject", "status", "blockers",
                                                           "monthly_saving"])
    # the analyst used Power BI in the window: keeps E5; the boss did not: a candidate without blockers
    assert got == [{"finding": "downgrade", "subject": "boss@c1.com", "status": "candidate", "blockers": None,
                    "monthly_saving": D("21.00")}]


def test_utilisation_kpis_and_idle_episode():
    rs = ibis.memtable(report_snapshot_table([R], [R]))
    out = utilisation(table("processed.licence_user_activity", ACTIVITY), table("processed.licence_position", POSITION),
                      rs, ["2024-02-05", R], settings())
    cols = ["sku_part_number", "entitled", "assigned", "licensed_users", "active_users", "idle_seats",
            "deleted_licensed", "assignment_rate", "active_rate", "waste_amount", "idle_cost", "idle_state"]
    got = [tuple(r.values()) for r in records(out, cols)]
    assert got == [
        ("POWER_BI_PRO", 1, 1, 1, 1, 0, 0, 1.0, 1.0, D("0.00"), D("0.00"), None),
        # 10 bought, 9 assigned; users: idle, deleted, fine -> 1 active; waste (10 - 1) x 22.00 = 198.00
        ("SPB", 10, 9, 3, 1, 1, 1, 0.9, 1 / 9, D("198.00"), D("22.00"), "opened"),
        # waste (2 - 1) x 57.00; one idle E5 seat 57.00
        ("SPE_E5", 2, 2, 2, 1, 1, 0, 1.0, 0.5, D("57.00"), D("57.00"), "opened"),
    ]

"""The compliance monitor on hand-made rows: entitled / assigned / available, shortfall and true-up exposure,
unassigned seats beyond the buffer, the entitlement's price, PSA billing drift, episodes, installs."""

from __future__ import annotations

from jobs.sli.common import episodes
from jobs.sli.position import installs, positions
from tests.sli.conftest import D, d, records, settings, table

CAL = ["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22", "2024-01-29"]
SPB, BS = "cbdc14ab-spb", "f245ecc8-bs"


def skus(rows):
    out = []
    for day, client, sku, sku_id, enabled, consumed in rows:
        out.append({"snapshot_date": day, "tenant_id": f"T-{client}", "client_id": client, "sku_id": sku_id,
                    "sku_part_number": sku, "capability_status": "Enabled", "enabled_units": enabled,
                    "warning_units": 0, "suspended_units": 0, "consumed_units": consumed, "dt": day})
    return table("processed.subscribed_skus", out)


def ent(eid, client, sku, sku_id, seats, price, term, dt, updated, **kw):
    return {"entitlement_id": eid, "client_id": client, "vendor": kw.get("vendor", "Microsoft"), "sku_id": sku_id,
            "sku_part_number": sku, "sku_name": sku, "seats": seats, "unit_price": price, "term_months": term,
            "billing_frequency": "monthly", "billing_model": "nce", "start_date": kw.get("start", "2023-06-01"),
            "renewal_date": kw.get("renewal", "2024-06-01"), "auto_renew": True, "status": kw.get("status", "active"),
            "updated_at": updated, "dt": dt}


ENTITLEMENTS = [
    ent("EN1", "C1", "SPB", SPB, 10, "22.00", 12, "2024-01-01", "2024-01-01T10:00:00"),
    ent("EN1", "C1", "SPB", SPB, 13, "22.00", 12, "2024-01-22", "2024-01-22T09:00:00"),  # raised on the 22nd
    # C2: an annual base and a monthly-term buffer of the same SKU: the seats-weighted price
    ent("EN2", "C2", "O365_BUSINESS_PREMIUM", BS, 10, "12.50", 12, "2024-01-01", "2024-01-01T10:00:00"),
    ent("EN3", "C2", "O365_BUSINESS_PREMIUM", BS, 2, "15.00", 1, "2024-01-01", "2024-01-01T10:00:00"),
    ent("EN4", "C2", "O365_BUSINESS_PREMIUM", BS, 5, "12.50", 12, "2024-01-01", "2024-01-01T10:00:00",
        status="cancelled"),
]
ADDITIONS = [
    {"addition_id": "AD1", "agreement_id": "AG1", "client_id": "C1", "product_code": "M365-BP",
     "product_name": "Microsoft 365 Business Premium", "quantity": 11, "unit_cost": "22.00", "unit_price": "26.40",
     "effective_date": "2023-06-01", "created_at": "2023-06-01T00:00:00", "updated_at": "2023-06-01T00:00:00"},
    # ended before the snapshots: not billed any more
    {"addition_id": "AD0", "agreement_id": "AG1", "client_id": "C1", "product_code": "M365-BP",
     "product_name": "Microsoft 365 Business Premium", "quantity": 9, "unit_cost": "22.00", "unit_price": "26.40",
     "effective_date": "2023-01-01", "cancelled_date": "2023-05-31", "created_at": "2023-01-01T00:00:00",
     "updated_at": "2023-06-01T00:00:00"},
]
CLIENTS = [{"client_id": "C1", "client_name": "One", "updated_at": "2023-01-01T00:00:00"},
           {"client_id": "C2", "client_name": "Two", "updated_at": "2023-01-01T00:00:00"}]
SNAPSHOTS = [
    ("2024-01-01", "C1", "SPB", SPB, 10, 10),
    ("2024-01-08", "C1", "SPB", SPB, 10, 12),
    ("2024-01-15", "C1", "SPB", SPB, 10, 13),
    ("2024-01-22", "C1", "SPB", SPB, 13, 13),
    ("2024-01-29", "C1", "SPB", SPB, 13, 14),
    ("2024-01-01", "C2", "O365_BUSINESS_PREMIUM", BS, 12, 9),
]


def run(snapshots=SNAPSHOTS, seed=None, cfg=None, cat=None):
    from jobs.sli import catalogue

    return positions(skus(snapshots), table("processed.entitlements", ENTITLEMENTS),
                     table("processed.agreement_additions", ADDITIONS), table("processed.clients", CLIENTS),
                     cat or catalogue.load(), CAL, cfg or settings(), seed)


COLS = ["snapshot_date", "client_id", "entitled", "assigned", "available", "shortfall", "true_up_exposure",
        "shortfall_state", "shortfall_episode_opened", "shortfall_episode_snapshots", "shortfall_episode_max"]


def test_shortfall_exposure_and_episodes():
    got = records(run().filter(lambda t: t.client_id == "C1"), COLS)
    assert got == [
        # snapshot     client entitled assigned available short exposure (short x 22.00) state   opened  n  max
        dict(zip(COLS, (d("2024-01-01"), "C1", 10, 10, 0, 0, D("0.00"), None, None, None, None), strict=True)),
        dict(zip(COLS, (d("2024-01-08"), "C1", 10, 12, -2, 2, D("44.00"), "opened", d("2024-01-08"), 1, 2),
                 strict=True)),
        dict(zip(COLS, (d("2024-01-15"), "C1", 10, 13, -3, 3, D("66.00"), "worsened", d("2024-01-08"), 2, 3),
                 strict=True)),
        # seats raised to 13: the episode closes (the closing row keeps the episode's opening day)
        dict(zip(COLS, (d("2024-01-22"), "C1", 13, 13, 0, 0, D("0.00"), "closed", d("2024-01-08"), 2, 3),
                 strict=True)),
        dict(zip(COLS, (d("2024-01-29"), "C1", 13, 14, -1, 1, D("22.00"), "opened", d("2024-01-29"), 1, 1),
                 strict=True)),
    ]


def test_price_unassigned_buffer_and_entitlements():
    cols = ["unassigned", "spare_allowance", "reclaimable_unassigned", "unit_price", "price_source",
            "unassigned_cost", "entitlement_seats", "annual_seats", "monthly_seats", "entitlement_ids",
            "assignment_rate", "psa_quantity", "billing_drift", "sku_name"]
    got = records(run().filter(lambda t: t.client_id == "C2"), cols)
    # 12 entitled, 9 assigned: 3 unassigned, buffer floor(12 x 5 %) = 0; the cancelled EN4 does not count;
    # price (10 x 12.50 + 2 x 15.00) / 12 = 12.9166 -> 12.92; 3 x 12.92 = 38.76
    assert got == [{"unassigned": 3, "spare_allowance": 0, "reclaimable_unassigned": 3, "unit_price": D("12.92"),
                    "price_source": "entitlement", "unassigned_cost": D("38.76"), "entitlement_seats": 12,
                    "annual_seats": 10, "monthly_seats": 2, "entitlement_ids": "EN2,EN3", "assignment_rate": 0.75,
                    "psa_quantity": None, "billing_drift": None, "sku_name": "Microsoft 365 Business Standard"}]
    # a 25 % buffer keeps 3 of the 12 seats: nothing to reclaim
    got = records(run(cfg=settings(spare_seats_pct=25.0)).filter(lambda t: t.client_id == "C2"),
                  ["spare_allowance", "reclaimable_unassigned"])
    assert got == [{"spare_allowance": 3, "reclaimable_unassigned": 0}]


def test_list_price_when_no_entitlement():
    got = records(positions(skus([("2024-01-01", "C3", "SPE_E5", "g-e5", 4, 5)]),
                            table("processed.entitlements", ENTITLEMENTS),
                            table("processed.agreement_additions", ADDITIONS), table("processed.clients", CLIENTS),
                            __import__("jobs.sli.catalogue", fromlist=["load"]).load(), CAL, settings()),
                  ["unit_price", "price_source", "true_up_exposure", "client_name"])
    assert got == [{"unit_price": D("57.00"), "price_source": "list_price", "true_up_exposure": D("57.00"),
                    "client_name": None}]


def test_billing_drift_psa_vs_vendor():
    cols = ["snapshot_date", "psa_quantity", "billing_drift", "drift_state", "drift_episode_opened",
            "drift_episode_max"]
    got = records(run().filter(lambda t: t.client_id == "C1"), cols)
    # PSA bills 11 (AD1; AD0 ended in May): +1 while 10 are bought, -2 once 13 are
    assert [tuple(r.values()) for r in got] == [
        (d("2024-01-01"), 11, 1, "opened", d("2024-01-01"), 1),
        (d("2024-01-08"), 11, 1, "ongoing", d("2024-01-01"), 1),
        (d("2024-01-15"), 11, 1, "ongoing", d("2024-01-01"), 1),
        (d("2024-01-22"), 11, -2, "worsened", d("2024-01-01"), 2),
        (d("2024-01-29"), 11, -2, "ongoing", d("2024-01-01"), 2),
    ]
    # a tolerance of 2 seats: only the -2 counts
    got = records(run(cfg=settings(billing_drift_min_seats=2)).filter(lambda t: t.client_id == "C1"),
                  ["snapshot_date", "drift_state"])
    assert [r["drift_state"] for r in got] == [None, None, None, "opened", "ongoing"]


def test_seeded_recompute_equals_full_history():
    full = run()
    seed = full.filter(full.snapshot_date == d("2024-01-08"))
    later = [s for s in SNAPSHOTS if s[0] >= "2024-01-15"]
    part = run(later, seed=seed)
    cols = list(full.columns)
    assert records(part, cols) == records(full.filter(full.snapshot_date >= d("2024-01-15")), cols)


def test_episode_breaks_on_a_missing_snapshot():
    import ibis
    import pyarrow as pa

    from jobs.sli.common import calendar_table

    rows = ibis.memtable(pa.table({"k": ["a", "a", "a"], "snapshot_date": [d("2024-01-01"), d("2024-01-15"),
                                                                          d("2024-01-22")],
                                   "n": [2, 2, 0]}))
    rows = rows.mutate(on=rows.n > 0)
    rows = rows.join(ibis.memtable(calendar_table(CAL)), "snapshot_date")
    got = records(episodes(rows, ["k"], "on", "n", "ep"), ["snapshot_date", "ep_state", "ep_opened", "ep_snapshots"])
    # 2024-01-08 is missing: the episode of the 1st ends there, a new one opens on the 15th
    assert [tuple(r.values()) for r in got] == [(d("2024-01-01"), "opened", d("2024-01-01"), 1),
                                               (d("2024-01-15"), "opened", d("2024-01-15"), 1),
                                               (d("2024-01-22"), "closed", d("2024-01-15"), 1)]


def inventory(rows):
    out = []
    for iid, client, device, name, dt, current, uninstalled in rows:
        out.append({"install_id": iid, "device_id": device, "device_name": device, "device_type": "workstation",
                    "client_id": client, "software_name": name, "publisher": "p", "version": "1",
                    "first_seen": "2023-12-01", "last_seen": dt, "is_current": current,
                    "uninstalled_at": uninstalled, "dt": dt})
    return table("processed.software_inventory", out)


def test_installs_against_licences(cat):
    inv = inventory([
        ("SW1", "C1", "D1", "Adobe Acrobat Pro", "2024-01-01", True, None),
        ("SW2", "C1", "D2", "Adobe Acrobat Pro", "2024-01-01", True, None),
        ("SW3", "C1", "D3", "Adobe Acrobat Pro", "2024-01-01", True, None),
        ("SW4", "C1", "D4", "Adobe Acrobat Reader", "2024-01-01", True, None),  # the free reader is not Pro
        ("SW8", "C9", "D8", "Microsoft 365 Apps for business", "2024-01-01", True, None),
        ("SW9", "C9", "D9", "Microsoft 365 Apps for business", "2024-01-01", True, None),
        # D3 uninstalled on the 5th: a later version of the same install
        ("SW3", "C1", "D3", "Adobe Acrobat Pro", "2024-01-05", False, "2024-01-05"),
    ])
    ents = table("processed.entitlements", [
        ent("EN9", "C1", "ACROBAT-PRO-TEAMS", "adobe", 1, "23.99", 12, "2024-01-01", "2024-01-01T10:00:00",
            vendor="Adobe")])
    clients = table("processed.clients", CLIENTS)
    cols = ["snapshot_date", "client_id", "install_key", "installs", "licensed_seats", "install_capacity",
            "unlicensed_installs", "has_entitlement", "install_state"]
    got = records(installs(inv, ents, clients, ["2024-01-01", "2024-01-08"], cat, CAL, settings()), cols,
                  order=["client_id", "snapshot_date"])
    assert [tuple(r.values()) for r in got] == [
        # 3 devices, 1 seat x 2 installs per seat: 1 unlicensed install
        (d("2024-01-01"), "C1", "acrobat_pro", 3, 1, 2, 1, True, "opened"),
        # D3 uninstalled on the 5th: covered again
        (d("2024-01-08"), "C1", "acrobat_pro", 2, 1, 2, 0, True, "closed"),
        # no licence resold to C9: reported, no episode (sli.install_events_need_entitlement)
        (d("2024-01-01"), "C9", "m365_apps_business", 2, 0, 0, 2, False, None),
        (d("2024-01-08"), "C9", "m365_apps_business", 2, 0, 0, 2, False, None),
    ]

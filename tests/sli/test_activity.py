"""Idle seats on hand-made activity reports: the 90-day edge, never-active users (new hires and users older
than the lake's history), deleted accounts, add-ons, unknown products, licence gaps and seeded reruns."""

from __future__ import annotations

from jobs.sli.activity import user_activity
from tests.sli.conftest import d, records, settings, table

CAL = ["2024-01-01", "2024-02-05", "2024-03-04", "2024-04-01", "2024-05-06"]
BP = "MICROSOFT 365 BUSINESS PREMIUM"


def report(day, upn, products, last=None, deleted=False, **workloads):
    return {"report_refresh_date": day, "tenant_id": "T1", "client_id": "C1", "user_principal_name": upn,
            "display_name": upn.split("@")[0], "is_deleted": deleted, "deleted_date": day if deleted else None,
            "assigned_products": products, "has_exchange_license": products is not None,
            "has_onedrive_license": products is not None, "has_sharepoint_license": products is not None,
            "has_teams_license": products is not None, "exchange_last_activity_date": last,
            "onedrive_last_activity_date": workloads.get("onedrive"), "sharepoint_last_activity_date": None,
            "teams_last_activity_date": workloads.get("teams"), "dt": day}


ROWS = [
    # exactly 90 days without activity on 2024-01-01 (2023-10-03): idle; 89 days (2023-10-04): not yet
    *[report(day, "ninety@c1.com", BP, "2023-10-03") for day in CAL[:2]],
    *[report(day, "eightynine@c1.com", BP, "2023-10-04") for day in CAL[:2]],
    # the latest workload counts: Teams on 2023-12-20 keeps the user active
    report("2024-01-01", "teams@c1.com", BP, "2023-06-01", teams="2023-12-20"),
    # never active, licensed in the lake's first report: the licence predates the history -> idle at once
    *[report(day, "ghost@c1.com", BP) for day in CAL[:3]],
    # a new hire never active: counts from the first report showing the licence (2024-02-05): idle on 05-06
    *[report(day, "newhire@c1.com", BP) for day in CAL[1:]],
    # deleted, still licensed: a zombie, not an idle seat
    report("2024-02-05", "gone@c1.com", BP, "2023-01-01", deleted=True),
    # an add-on and a product the catalogue does not know
    report("2024-01-01", "addon@c1.com", f"{BP}+POWER BI PRO+CONTOSO WIDGET", "2023-12-30"),
    # licensed, then not, then again: the licence is seen afresh from 03-04
    report("2024-01-01", "gap@c1.com", BP, "2023-12-01"),
    report("2024-02-05", "gap@c1.com", None, "2023-12-01"),
    report("2024-03-04", "gap@c1.com", BP, "2023-12-01"),
]
COLS = ["user_principal_name", "sku_part_number", "report_date", "idle", "activity_basis", "days_inactive",
        "inactivity_class", "licence_first_seen", "idle_since_report", "idle_reports", "deleted_licensed"]


def run(rows=ROWS, seed=None, cfg=None, cat=None):
    from jobs.sli import catalogue

    return user_activity(table("processed.active_user_detail", rows), CAL, d(CAL[0]), cat or catalogue.load(),
                         cfg or settings(), seed)


def got_for(expr, upn):
    return [tuple(r.values())[1:] for r in records(expr, COLS, order=["user_principal_name", "sku_part_number",
                                                                     "report_date"])
            if r["user_principal_name"] == upn]


def test_ninety_day_edge_and_latest_workload():
    out = run()
    assert got_for(out, "ninety@c1.com") == [
        ("SPB", d("2024-01-01"), True, "activity", 90, "inactive", d("2024-01-01"), d("2024-01-01"), 1, False),
        ("SPB", d("2024-02-05"), True, "activity", 125, "inactive", d("2024-01-01"), d("2024-01-01"), 2, False)]
    assert got_for(out, "eightynine@c1.com") == [
        ("SPB", d("2024-01-01"), False, "activity", 89, None, d("2024-01-01"), None, None, False),
        ("SPB", d("2024-02-05"), True, "activity", 124, "inactive", d("2024-01-01"), d("2024-02-05"), 1, False)]
    assert got_for(out, "teams@c1.com") == [
        ("SPB", d("2024-01-01"), False, "activity", 12, None, d("2024-01-01"), None, None, False)]
    rows = records(out.filter(out.user_principal_name == "teams@c1.com"), ["last_activity_date",
                                                                           "last_activity_workload"])
    assert rows == [{"last_activity_date": d("2023-12-20"), "last_activity_workload": "teams"}]


def test_never_active_users():
    out = run()
    assert got_for(out, "ghost@c1.com") == [
        ("SPB", d(day), True, "before_history", None, "never_active", d("2024-01-01"), d("2024-01-01"), n, False)
        for n, day in enumerate(CAL[:3], start=1)]
    assert got_for(out, "newhire@c1.com") == [
        ("SPB", d("2024-02-05"), False, "licence_first_seen", 0, None, d("2024-02-05"), None, None, False),
        ("SPB", d("2024-03-04"), False, "licence_first_seen", 28, None, d("2024-02-05"), None, None, False),
        ("SPB", d("2024-04-01"), False, "licence_first_seen", 56, None, d("2024-02-05"), None, None, False),
        ("SPB", d("2024-05-06"), True, "licence_first_seen", 91, "never_active", d("2024-02-05"), d("2024-05-06"),
         1, False)]


def test_deleted_addons_unknown_products_and_gaps():
    out = run()
    assert got_for(out, "gone@c1.com") == [
        ("SPB", d("2024-02-05"), False, "activity", 400, None, d("2024-02-05"), None, None, True)]
    assert [(r[0], r[2]) for r in got_for(out, "addon@c1.com")] == [
        ("CONTOSO WIDGET", False), ("POWER_BI_PRO", False), ("SPB", False)]
    cat = records(out.filter(out.user_principal_name == "addon@c1.com"), ["sku_part_number", "catalogued",
                                                                          "sku_name"])
    assert cat == [{"sku_part_number": "CONTOSO WIDGET", "catalogued": False, "sku_name": "CONTOSO WIDGET"},
                   {"sku_part_number": "POWER_BI_PRO", "catalogued": True, "sku_name": "Power BI Pro"},
                   {"sku_part_number": "SPB", "catalogued": True, "sku_name": "Microsoft 365 Business Premium"}]
    assert [(r[1], r[6]) for r in got_for(out, "gap@c1.com")] == [(d("2024-01-01"), d("2024-01-01")),
                                                                  (d("2024-03-04"), d("2024-03-04"))]


def test_idle_days_setting():
    out = run(cfg=settings(idle_days=30))
    assert [r[2] for r in got_for(out, "newhire@c1.com")] == [False, False, True, True]


def test_seeded_recompute_equals_full_history():
    full = run()
    seed = full.filter(full.report_date == d("2024-03-04"))
    later = [r for r in ROWS if r["report_refresh_date"] > "2024-03-04"]
    cols = list(full.columns)
    assert records(run(later, seed), cols) == records(full.filter(full.report_date > d("2024-03-04")), cols)


def test_premium_workload_use_when_the_export_shows_it():
    import pyarrow as pa

    from jobs.sli import catalogue
    from tests.sli.test_savings import OBSERVABLE

    rows = [{**report("2024-03-04", "analyst@c1.com", "MICROSOFT 365 E5", "2024-03-01"),
             "power_bi_last_activity_date": d("2024-02-20")},
            {**report("2024-03-04", "boss@c1.com", "MICROSOFT 365 E5", "2024-03-01"),
             "power_bi_last_activity_date": d("2023-06-01")}]
    cat = catalogue.parse(OBSERVABLE.replace('name = "Microsoft 365 E5"',
                                             'name = "Microsoft 365 E5"\nreport_names = ["MICROSOFT 365 E5"]'))
    reports = table("processed.active_user_detail", rows, extra={"power_bi_last_activity_date": pa.date32()})
    out = user_activity(reports, CAL, d(CAL[0]), cat, settings())
    assert records(out, ["user_principal_name", "premium_used"]) == [
        {"user_principal_name": "analyst@c1.com", "premium_used": "power_bi"},
        {"user_principal_name": "boss@c1.com", "premium_used": None}]

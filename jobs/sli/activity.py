"""Who uses the licences they hold: one row per licensed user, SKU and monthly active-user report.

From Graph ``getOffice365ActiveUserDetail`` [R50] (``processed.active_user_detail``): each report lists every
user with ``assignedProducts`` (display names, ``+``-separated: the catalogue maps them to part numbers) and
the last activity date of each workload (all-time; empty if never).

* **last_activity_date** = the latest of the Exchange, OneDrive, SharePoint and Teams last-activity dates.
* **licence_first_seen** = the first report of the current unbroken run of reports in which the user holds
  the SKU (the report does not carry the assignment date).
* **idle** (DOMAIN.md s. 4, s. 8; ServiceNow SAM "inactive = no activity in 90 days, or none"): licensed,
  not deleted, and no activity in any workload for ``sli.idle_days`` (90) days or more on the report day.
  A user who was never active counts from ``licence_first_seen`` (a new hire gets the same 90 days), except
  when the licence was already held in the first report the lake has: then the assignment predates the
  lake's history and ServiceNow's rule applies (no activity at all = inactive). ``activity_basis`` says which
  of ``activity``, ``licence_first_seen`` or ``before_history`` decided.
* **idle run**: ``idle_since_report`` = the first report of the current run of consecutive idle reports
  (the truth's idle-seat rows are these runs), ``idle_reports`` = reports in the run so far.
* **deleted_licensed**: the account is deleted (in the 30-day recycle bin) and still holds the licence, the
  "zombie" class of community scripts. (The export has no ``accountEnabled``; a blocked but not deleted
  account is not visible in it.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

from jobs.sli import catalogue as catalogue_mod
from jobs.sli.common import calendar_table, episodes, materialize, previous, snapshots_to_compute, touched_days
from lakehouse.lake import Range
from lakehouse.transforms import latest

if TYPE_CHECKING:  # pragma: no cover
    import ibis

    from jobs.sli.catalogue import Catalogue
    from jobs.sli.settings import SliSettings
    from lakehouse.context import RunContext

REPORTS = "processed.active_user_detail"
ACTIVITY = "processed.licence_user_activity"
WORKLOADS = ("exchange", "onedrive", "sharepoint", "teams")
FAR_PAST = date(1900, 1, 1)


def licensed_rows(reports: ibis.Table, cat: Catalogue, idle_days: int = 90) -> ibis.Table:
    """One row per user, report and assigned product, with its part number (the display name upper-cased
    when the catalogue does not know it)."""
    import ibis

    r = latest(reports, ["client_id", "user_principal_name", "report_refresh_date"], order=())
    r = r.filter(r.assigned_products.notnull() & (r.assigned_products.strip() != ""))
    r = r.mutate(_product=r.assigned_products.split("+")).unnest("_product")
    r = r.mutate(report_name=r._product.strip().upper())
    names = ibis.memtable(cat.report_name_table())
    r = r.left_join(names, "report_name").select(r, names.sku_part_number)
    r = r.mutate(catalogued=r.sku_part_number.notnull(), sku_part_number=r.sku_part_number.fill_null(r.report_name))
    latest_of = [r[f"{w}_last_activity_date"].fill_null(FAR_PAST) for w in WORKLOADS]
    last = ibis.greatest(*latest_of)
    which = ibis.cases(*[(r[f"{w}_last_activity_date"] == last, w) for w in WORKLOADS],
                       else_=ibis.null().cast("string"))
    return r.mutate(last_activity_date=ibis.ifelse(last == FAR_PAST, ibis.null().cast("date"), last),
                    last_activity_workload=which, report_date=r.report_refresh_date,
                    premium_used=premium_used(r, cat, idle_days))


def premium_used(r: ibis.Table, cat: Catalogue, idle_days: int) -> ibis.Value:
    """The first premium workload of the row's SKU (catalogue ``premium_workloads``) whose evidence column
    shows use within ``idle_days`` of the report; null when none was used or none is observable."""
    import ibis

    work = cat.workloads()
    branches = []
    for p in cat.product:
        for w in p.premium_workloads:
            col = work[w].column
            if col and col in r.columns:
                recent = r[col] >= (r.report_refresh_date - ibis.interval(days=idle_days)).cast("date")
                branches.append(((r.sku_part_number == p.sku) & recent.fill_null(False), w))
    if not branches:
        return ibis.null().cast("string")
    return ibis.cases(*branches, else_=ibis.null().cast("string"))


def user_activity(reports: ibis.Table, calendar: Sequence[str], history_start: date, cat: Catalogue,
                  cfg: SliSettings, seed: ibis.Table | None = None) -> ibis.Table:
    """The module docstring's columns for every licensed user, SKU and report of ``reports``; ``calendar``
    is every report date of the lake (ISO), ``history_start`` its first, ``seed`` the stage's own rows of the
    report before the first one of ``reports``."""
    import ibis

    r = licensed_rows(reports, cat, cfg.idle_days)
    cal = ibis.memtable(calendar_table(calendar, "report_date"))
    r = r.join(cal, "report_date").select(r, cal._prev_snapshot).mutate(_held=ibis.literal(True), _one=ibis.literal(1))
    r = r.select("report_date", "_prev_snapshot", "client_id", "tenant_id", "user_principal_name", "display_name",
                 "sku_part_number", "catalogued", "is_deleted", "deleted_date", "last_activity_date",
                 "last_activity_workload", "premium_used", "_held", "_one")
    r = materialize(r)
    key = ["client_id", "user_principal_name", "sku_part_number"]
    lic_seed = idle_seed = None
    if seed is not None:
        lic_seed = seed.select(*key, "report_date", _held=ibis.literal(True), _one=ibis.literal(1),
                               licence_opened=seed.licence_first_seen, licence_snapshots=seed.licensed_reports,
                               licence_max=ibis.literal(1), licence_state=ibis.literal("ongoing"))
        idle_seed = seed.select(*key, "report_date", _idle=seed.idle, _one=ibis.literal(1),
                                idle_opened=seed.idle_since_report, idle_snapshots=seed.idle_reports,
                                idle_max=ibis.literal(1), idle_state=ibis.literal("ongoing"))
    r = materialize(episodes(r, key, "_held", "_one", "licence", seed=lic_seed, date_col="report_date"))
    never = r.last_activity_date.isnull()
    before = never & (r.licence_opened == history_start)
    since = ibis.ifelse(before, ibis.null().cast("date"), r.last_activity_date.fill_null(r.licence_opened))
    days = r.report_date.delta(since, unit="day").cast("int32")
    idle = ~r.is_deleted & (before | (days >= cfg.idle_days).fill_null(False))
    r = r.mutate(licence_first_seen=r.licence_opened, licensed_reports=r.licence_snapshots.cast("int32"),
                 activity_basis=ibis.cases((~never, "activity"), (before, "before_history"),
                                           else_="licence_first_seen"),
                 inactive_since=since, days_inactive=days, _idle=idle,
                 deleted_licensed=r.is_deleted)
    r = r.mutate(inactivity_class=ibis.ifelse(r._idle, ibis.ifelse(never, "never_active", "inactive"),
                                              ibis.null().cast("string")))
    r = materialize(episodes(r, key, "_idle", "_one", "idle", seed=idle_seed, date_col="report_date"))
    products = ibis.memtable(cat.product_table())
    r = r.left_join(products, "sku_part_number").select(r, products.product_name)
    return r.select(
        "report_date", "client_id", "tenant_id", "user_principal_name", "display_name", "sku_part_number",
        "catalogued", "is_deleted", "deleted_date", "last_activity_date", "last_activity_workload",
        "licence_first_seen", "licensed_reports", "activity_basis", "inactive_since", "days_inactive",
        "inactivity_class", "deleted_licensed", "premium_used",
        sku_name=r.product_name.fill_null(r.sku_part_number), idle=r._idle,
        idle_since_report=ibis.ifelse(r._idle, r.idle_opened, ibis.null().cast("date")),
        idle_reports=ibis.ifelse(r._idle, r.idle_snapshots, ibis.null().cast("int64")).cast("int32"),
        dt=r.report_date.cast("string"))


# ---- the stage ---------------------------------------------------------------------------------------------
def report_calendar(ctx: RunContext) -> tuple[list[str], dict[str, set[str]]]:
    """Every report date (ISO) and, per export day, the report dates it delivered."""
    pairs = ctx.table(REPORTS).select("report_refresh_date", "dt").distinct().to_pyarrow().to_pylist()
    by_day: dict[str, set[str]] = {}
    for p in pairs:
        by_day.setdefault(p["dt"], set()).add(p["report_refresh_date"].isoformat())
    return sorted({p["report_refresh_date"].isoformat() for p in pairs}), by_day


def run(ctx: RunContext) -> None:
    """Licensed users' activity and idle seats for the reports the run's days touch."""
    cfg: SliSettings = ctx.config
    cat = catalogue_mod.load(cfg.catalogue)
    end = ctx.end.isoformat()
    calendar, by_day = report_calendar(ctx)
    touched = touched_days(ctx, (REPORTS,))
    direct = sorted({s for d in (touched or []) for s in by_day.get(d, ())})
    reports = snapshots_to_compute(calendar, None if touched is None else [], end, direct)
    if not reports:
        ctx.count(ACTIVITY).notes.append("no activity report to compute: nothing new since the last run")
        return
    prev = previous(calendar, reports[0])
    rows = ctx.table(REPORTS, {"dt": Range(reports[0], end)})
    rows = rows.filter(rows.report_refresh_date.between(date.fromisoformat(reports[0]),
                                                        date.fromisoformat(reports[-1])))
    seed = ctx.table(ACTIVITY, {"dt": prev}) if prev else None
    out = user_activity(rows, calendar, date.fromisoformat(calendar[0]), cat, cfg, seed)
    unknown = out.filter(~out.catalogued).select("sku_part_number").distinct().to_pyarrow().column(0).to_pylist()
    if unknown:
        ctx.warn(f"assigned products the catalogue does not know (kept under their report name; add them to "
                 f"{cfg.catalogue}): {', '.join(sorted(unknown)[:8])}")
    why = "rebuild (settings or code changed)" if touched is None else "reports the run's days touch"
    ctx.count(ACTIVITY).notes.append(f"reports {reports[0]}..{reports[-1]} ({len(reports)}): {why}")
    ctx.write(ACTIVITY, out, replace=[{"dt": d} for d in reports])

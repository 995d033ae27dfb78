"""The licence optimizer: what can be reclaimed, downgraded or dropped on each monthly report, what it saves,
and the staged plan to do it; and the utilisation KPIs per tenant and SKU.

Findings (``analytics.licence_savings``, one row per finding and report; DOMAIN.md s. 4 and s. 8):

* ``idle_seat``: a licensed, not deleted user idle for ``sli.idle_days`` (see :mod:`jobs.sli.activity`).
* ``deleted_licensed``: a deleted account still holding the licence ("zombie").
* ``unassigned_seats``: seats bought and not assigned, beyond the ``sli.spare_seats_pct`` buffer.
* ``double_licensed``: a standalone SKU the user's suite already contains (the catalogue's ``includes``).
* ``downgrade``: a user on a SKU with a cheaper ``downgrade_to`` (M365 E5 → E3, ...) who is not idle and used
  none of the premium workloads in ``sli.idle_days``; ``status`` is ``candidate`` when every premium workload
  is observable in the exports, otherwise ``review`` with the ones to check by hand in ``blockers`` (the
  activity report does not show Power BI, Teams Phone, Defender P2, eDiscovery Premium or PIM roles).

**monthly_saving** is at the entitlement's price: the client's seats-weighted monthly unit price of the SKU
on the report's snapshot (:mod:`jobs.sli.position`; the catalogue's list price when the tenant has no
entitlement); a downgrade saves the price difference to the target SKU (its entitlement price in the same
tenant, else the list price). **Reclaim plan** (staged as Microsoft advises: removing a licence starts a
30-day deletion of the user's data [R54]): ``block_sign_in_on`` = the report day, ``remove_licence_on`` =
block + ``sli.reclaim_retention_days``, ``reduce_seats_on`` = the client's first renewal of the SKU on or
after the removal (NCE seats can only be reduced in the window after a renewal [R59]), ``saving_from`` = that
day. Deleted accounts and unassigned seats skip the blocking step.

KPIs (``analytics.licence_utilisation``, per client, SKU and report): assignment rate = assigned / entitled,
active rate = active users / assigned, idle = licensed users idle, waste = (entitled − active) × unit price
(DOMAIN.md s. 4), and the tenant's idle-seat episode (opened when the first idle seat appears).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

from jobs.sli import catalogue as catalogue_mod
from jobs.sli.activity import ACTIVITY
from jobs.sli.common import (
    calendar_table,
    days_table,
    docs_once,
    episodes,
    materialize,
    next_renewal_expr,
    previous,
    snapshots_to_compute,
    touched_days,
    versions_as_of,
)
from jobs.sli.position import ENTITLEMENTS, POSITION, client_names
from lakehouse.transforms import as_of

if TYPE_CHECKING:  # pragma: no cover
    import ibis

    from jobs.sli.catalogue import Catalogue
    from jobs.sli.settings import SliSettings
    from lakehouse.context import RunContext

SAVINGS = "analytics.licence_savings"
UTILISATION = "analytics.licence_utilisation"
CLIENTS = "processed.clients"
FINDINGS = ("idle_seat", "deleted_licensed", "unassigned_seats", "double_licensed", "downgrade")


def _money(cents):
    return (cents.cast("decimal(18,0)") / 100).cast("decimal(14,2)")


def _cents(x):
    return (x.cast("decimal(14,2)") * 100).round(0).cast("int64")


def report_positions(position: ibis.Table, report_snapshots: ibis.Table) -> ibis.Table:
    """Position rows of the snapshot each report reads (``report_snapshots``: report_date → snapshot_date)."""
    return position.join(report_snapshots, "snapshot_date").view()


def renewal_dates(entitlements: ibis.Table, reports: Sequence[str], retention_days: int) -> ibis.Table:
    """Per report day, client and SKU: the first renewal of any active entitlement on or after the day a
    reclaimed licence is removed (report day + retention), and on or after the report day itself."""
    import ibis

    days = ibis.memtable(days_table(reports))
    v = versions_as_of(entitlements, ["entitlement_id"], days)
    v = v.filter(v.status == "active")
    removal = (v.as_of + ibis.interval(days=retention_days)).cast("date")
    v = v.mutate(_after_removal=next_renewal_expr(v.renewal_date, v.term_months, removal),
                 _after_report=next_renewal_expr(v.renewal_date, v.term_months, v.as_of))
    return materialize(v.group_by(report_date=v.as_of, client_id=v.client_id, sku_part_number=v.sku_part_number).agg(
        reduce_after_removal=v._after_removal.min(), reduce_after_report=v._after_report.min()))


def savings(activity: ibis.Table, position: ibis.Table, report_snapshots: ibis.Table, entitlements: ibis.Table,
            clients: ibis.Table, reports: Sequence[str], cat: Catalogue, cfg: SliSettings) -> ibis.Table:
    """The findings of the reports in ``reports`` (see the module docstring)."""
    import ibis

    act = activity
    pos = materialize(report_positions(position, report_snapshots))
    price = pos.select("report_date", "client_id", "sku_part_number", _price_c=_cents(pos.unit_price))
    products = ibis.memtable(cat.product_table())
    lists = products.select("sku_part_number", "product_name", _list_c=_cents(products.list_price))
    when = renewal_dates(entitlements, reports, cfg.reclaim_retention_days)

    def priced(t, sku_col="sku_part_number"):
        j = t.left_join(price, [t.report_date == price.report_date, t.client_id == price.client_id,
                                t[sku_col] == price.sku_part_number]).select(t, price._price_c)
        j = j.left_join(lists, j[sku_col] == lists.sku_part_number).select(j, lists._list_c, lists.product_name)
        return j.mutate(_unit_c=j._price_c.fill_null(j._list_c))

    null_s, null_d = ibis.null().cast("string"), ibis.null().cast("date")
    # user findings: idle seats and deleted accounts that keep a licence
    u = act.filter(act.idle | act.deleted_licensed)
    u = u.select("report_date", "client_id", "sku_part_number", "user_principal_name", "last_activity_date",
                 "days_inactive", "inactivity_class", "idle_since_report", "activity_basis",
                 finding=ibis.ifelse(act.idle, "idle_seat", "deleted_licensed"), seats=ibis.literal(1),
                 target_sku=null_s, _target_c=ibis.null().cast("int64"), status=ibis.literal("candidate"),
                 blockers=null_s, _block=act.idle)
    # double licensing: a standalone SKU the user's suite contains
    inc = ibis.memtable(cat.includes_table())
    holds = act.filter(~act.is_deleted).select("report_date", "client_id", "user_principal_name", "sku_part_number")
    suites = holds.join(inc, holds.sku_part_number == inc.suite).select(holds, inc.component)
    dbl = suites.join(act, [suites.report_date == act.report_date, suites.client_id == act.client_id,
                            suites.user_principal_name == act.user_principal_name,
                            suites.component == act.sku_part_number])
    dbl = dbl.select(act.report_date, act.client_id, act.sku_part_number, act.user_principal_name,
                     act.last_activity_date, act.days_inactive, act.inactivity_class, act.idle_since_report,
                     act.activity_basis, finding=ibis.literal("double_licensed"), seats=ibis.literal(1),
                     target_sku=suites.sku_part_number, _target_c=ibis.literal(0).cast("int64"),
                     status=ibis.literal("candidate"), blockers=null_s, _block=ibis.literal(False),
                     _idle=act.idle)
    dbl = dbl.filter(~dbl._idle).drop("_idle")  # an idle user's seat is reclaimed whole
    # downgrades
    down = [(p.sku, p.downgrade_to, "; ".join(cat.workloads()[w].name for w in p.premium_workloads
                                              if not cat.workloads()[w].column))
            for p in cat.product if p.downgrade_to]
    dg = None
    if down:
        import pyarrow as pa

        rules = ibis.memtable(pa.table({"sku_part_number": pa.array([d[0] for d in down], pa.string()),
                                        "target_sku": pa.array([d[1] for d in down], pa.string()),
                                        "unobserved": pa.array([d[2] or None for d in down], pa.string())}))
        cand = act.filter(~act.idle & ~act.is_deleted & act.premium_used.isnull())
        cand = cand.join(rules, "sku_part_number").select(cand, rules.target_sku, rules.unobserved)
        tp = price.select("report_date", "client_id", target_sku="sku_part_number", _tprice_c="_price_c")
        cand = cand.left_join(tp, ["report_date", "client_id", "target_sku"]).select(cand, tp._tprice_c)
        tl = lists.select(target_sku="sku_part_number", _tlist_c="_list_c")
        cand = cand.left_join(tl, "target_sku").select(cand, tl._tlist_c)
        dg = cand.select("report_date", "client_id", "sku_part_number", "user_principal_name", "last_activity_date",
                         "days_inactive", "inactivity_class", "idle_since_report", "activity_basis",
                         finding=ibis.literal("downgrade"), seats=ibis.literal(1), target_sku=cand.target_sku,
                         _target_c=cand._tprice_c.fill_null(cand._tlist_c),
                         status=ibis.ifelse(cand.unobserved.isnull(), "candidate", "review"),
                         blockers=ibis.ifelse(cand.unobserved.isnull(), null_s,
                                              ibis.literal("not visible in the activity report, check: ")
                                              .concat(cand.unobserved)),
                         _block=ibis.literal(True))
    # unassigned seats beyond the buffer
    un = pos.filter(pos.reclaimable_unassigned > 0)
    un = un.select("report_date", "client_id", "sku_part_number", user_principal_name=null_s,
                   last_activity_date=null_d, days_inactive=ibis.null().cast("int32"), inactivity_class=null_s,
                   idle_since_report=null_d, activity_basis=null_s, finding=ibis.literal("unassigned_seats"),
                   seats=un.reclaimable_unassigned.cast("int32"), target_sku=null_s,
                   _target_c=ibis.null().cast("int64"), status=ibis.literal("candidate"), blockers=null_s,
                   _block=ibis.literal(False))
    parts = [u, dbl, un] + ([dg] if dg is not None else [])
    types = {c: t.copy(nullable=True) for c, t in u.schema().items()}  # a union of nullable columns
    types |= {"seats": "int32", "days_inactive": "int32", "_target_c": "int64"}
    f = None
    for p in parts:
        p = p.select(**{c: p[c].cast(t) for c, t in types.items()})
        f = p if f is None else f.union(p)
    f = materialize(priced(materialize(f)))
    f = f.left_join(when, ["report_date", "client_id", "sku_part_number"]).select(
        f, when.reduce_after_removal, when.reduce_after_report)
    names = client_names(clients)
    f = f.left_join(names, "client_id").select(f, names.client_name)
    saving_c = ibis.cases((f.finding == "downgrade", (f._unit_c - f._target_c) * f.seats),
                          else_=f._unit_c * f.seats)
    removes = f.finding.isin(["idle_seat", "deleted_licensed", "double_licensed"])
    remove_on = ibis.cases((f.finding == "idle_seat",
                            (f.report_date + ibis.interval(days=cfg.reclaim_retention_days)).cast("date")),
                           (removes, f.report_date), else_=null_d)
    reduce_on = ibis.ifelse(f.finding == "idle_seat", f.reduce_after_removal, f.reduce_after_report)
    return f.select(
        "report_date", "client_id", "client_name", "finding", "sku_part_number",
        subject=f.user_principal_name.fill_null("tenant"), user_principal_name=f.user_principal_name,
        sku_name=f.product_name.fill_null(f.sku_part_number), seats=f.seats, status=f.status, blockers=f.blockers,
        target_sku=f.target_sku, unit_price=_money(f._unit_c), target_unit_price=_money(f._target_c),
        monthly_saving=_money(saving_c), annual_saving=_money(saving_c * 12),
        last_activity_date=f.last_activity_date, days_inactive=f.days_inactive,
        inactivity_class=f.inactivity_class, idle_since_report=f.idle_since_report, activity_basis=f.activity_basis,
        block_sign_in_on=ibis.ifelse(f._block, f.report_date, null_d), remove_licence_on=remove_on,
        reduce_seats_on=reduce_on, saving_from=ibis.ifelse(f.finding == "downgrade", f.reduce_after_report, reduce_on),
        dt=f.report_date.cast("string"))


def utilisation(activity: ibis.Table, position: ibis.Table, report_snapshots: ibis.Table, calendar: Sequence[str],
                cfg: SliSettings, seed: ibis.Table | None = None) -> ibis.Table:
    """Per client, SKU and report: entitled, assigned, active and idle seats, rates, waste, idle episode."""
    import ibis

    pos = report_positions(position, report_snapshots)
    a = activity.group_by(["report_date", "client_id", "sku_part_number"]).agg(
        licensed_users=activity.count().cast("int32"),
        active_users=(~activity.idle & ~activity.is_deleted).sum().cast("int32"),
        idle_seats=activity.idle.sum().cast("int32"),
        deleted_licensed=activity.deleted_licensed.sum().cast("int32"))
    j = pos.outer_join(a, [pos.report_date == a.report_date, pos.client_id == a.client_id,
                           pos.sku_part_number == a.sku_part_number])
    j = j.select(report_date=ibis.coalesce(pos.report_date, a.report_date),
                 client_id=ibis.coalesce(pos.client_id, a.client_id),
                 sku_part_number=ibis.coalesce(pos.sku_part_number, a.sku_part_number),
                 client_name=pos.client_name, sku_name=pos.sku_name, snapshot_date=pos.snapshot_date,
                 entitled=pos.entitled, assigned=pos.assigned, unit_price=pos.unit_price,
                 licensed_users=a.licensed_users.fill_null(0), active_users=a.active_users.fill_null(0),
                 idle_seats=a.idle_seats.fill_null(0), deleted_licensed=a.deleted_licensed.fill_null(0)).view()
    price_c = _cents(j.unit_price)
    null_f = ibis.null().cast("float64")
    j = j.mutate(
        assignment_rate=ibis.ifelse(j.entitled > 0, j.assigned.cast("float64") / j.entitled, null_f),
        active_rate=ibis.ifelse(j.assigned > 0, j.active_users.cast("float64") / j.assigned, null_f),
        waste_amount=_money(ibis.greatest(j.entitled - j.active_users, 0).cast("int64") * price_c),
        idle_cost=_money(j.idle_seats.cast("int64") * price_c),
        _has_idle=j.idle_seats > 0, _idle=j.idle_seats.cast("int64"))
    cal = ibis.memtable(calendar_table(calendar, "report_date"))
    j = materialize(j.join(cal, "report_date").select(j, cal._prev_snapshot))
    s = None
    if seed is not None:
        s = seed.select("client_id", "sku_part_number", "report_date", _has_idle=seed.idle_seats > 0,
                        _idle=seed.idle_seats.cast("int64"), idle_opened=seed.idle_episode_opened,
                        idle_snapshots=seed.idle_episode_reports, idle_max=seed.idle_episode_max,
                        idle_state=seed.idle_state)
    j = episodes(j, ["client_id", "sku_part_number"], "_has_idle", "_idle", "idle", seed=s, date_col="report_date")
    return j.select("report_date", "client_id", "client_name", "sku_part_number", "sku_name", "snapshot_date",
                    "entitled", "assigned", "licensed_users", "active_users", "idle_seats", "deleted_licensed",
                    "assignment_rate", "active_rate", "unit_price", "waste_amount", "idle_cost",
                    idle_episode_opened=j.idle_opened, idle_episode_reports=j.idle_snapshots.cast("int32"),
                    idle_episode_max=j.idle_max.cast("int32"), idle_state=j.idle_state,
                    dt=j.report_date.cast("string"))


# ---- the stage ---------------------------------------------------------------------------------------------
def report_snapshot_table(reports: Sequence[str], snapshots: Sequence[str]):
    """report_date → the latest position snapshot on or before it (reports without one are left out)."""
    import pyarrow as pa

    pairs = []
    snaps = sorted(snapshots)
    for r in sorted(reports):
        before = [s for s in snaps if s <= r]
        if before:
            pairs.append((date.fromisoformat(r), date.fromisoformat(before[-1])))
    return pa.table({"report_date": pa.array([p[0] for p in pairs], pa.date32()),
                     "snapshot_date": pa.array([p[1] for p in pairs], pa.date32())})


def run(ctx: RunContext) -> None:
    """Savings findings and utilisation KPIs for the reports whose activity or position changed."""
    import ibis

    cfg: SliSettings = ctx.config
    cat = catalogue_mod.load(cfg.catalogue)
    end = ctx.end.isoformat()
    calendar = [d for d in ctx.partition_values(ACTIVITY, "dt") if d <= end]
    positions_cal = [d for d in ctx.partition_values(POSITION, "dt") if d <= end]
    touched = touched_days(ctx, (ACTIVITY, POSITION, ENTITLEMENTS))
    reports = snapshots_to_compute(calendar, touched, end)
    if not reports:
        ctx.count(SAVINGS).notes.append("no report to compute: nothing new since the last run")
        return
    rs = ibis.memtable(report_snapshot_table(reports, positions_cal))
    snaps = sorted({d.isoformat() for d in rs.snapshot_date.to_pyarrow().to_pylist()}) if reports else []
    activity = ctx.table(ACTIVITY, {"dt": reports})
    position = ctx.table(POSITION, {"dt": snaps})
    prev = previous(calendar, reports[0])
    seed = ctx.table(UTILISATION, {"dt": prev}) if prev else None
    found = savings(activity, position, rs, ctx.table(ENTITLEMENTS, as_of(end)), ctx.table(CLIENTS, as_of(end)),
                    reports, cat, cfg)
    kpis = utilisation(activity, position, rs, calendar, cfg, seed)
    ctx.count(SAVINGS).notes.append(f"reports {reports[0]}..{reports[-1]} ({len(reports)})")
    replace = [{"dt": d} for d in reports]
    with docs_once(ctx):
        ctx.write(SAVINGS, found, replace=replace)
        ctx.write(UTILISATION, kpis, replace=replace)

"""The compliance monitor: every tenant's licence position on every ``subscribed_skus`` snapshot, and the
software the RMM sees installed against the licences that cover it.

Per client tenant, SKU and weekly snapshot (DOMAIN.md section 4; Graph ``subscribedSkus`` [R49], Flexera's
availability [R52]):

* **entitled** = ``prepaidUnits.enabled`` (the seats bought), **assigned** = ``consumedUnits``,
  **available** = entitled − assigned; **shortfall** = max(0, assigned − entitled) ("under-purchased");
  **true_up_exposure** = shortfall × unit price (what the true-up purchase will cost per month).
* **unassigned** = max(0, available); **reclaimable_unassigned** = unassigned beyond the buffer of
  ``sli.spare_seats_pct`` % of the entitled seats (Flexera's under-consumed threshold, default 5 %), rounded
  down to whole seats.
* **unit_price** = the seats-weighted monthly price of the client's active entitlements of the SKU as they
  stood on the snapshot day (the entitlement's price; the catalogue's list price only when there is none).
* **billing drift** (Gradient's reconciliation [R63]): **psa_quantity** = Σ quantity of the PSA agreement
  additions active on the snapshot day whose product code the catalogue maps to the SKU, **billing_drift**
  = psa_quantity − entitled (negative: seats the vendor bills the MSP but the client is not billed for).
  Drift counts when |billing_drift| >= ``sli.billing_drift_min_seats``.
* Shortfall and drift are **episodes** (:func:`jobs.sli.common.episodes`): a run of consecutive weekly
  snapshots, opened, worsened, ongoing, closed.

Installs (``processed.licence_installs``), per client, catalogue install title and snapshot: **installs** =
devices with a current install of a title the catalogue maps to a licence (``software_inventory`` rows as
they stood that day: current, not uninstalled), **install_capacity** = Σ over the licences covering it of
seats × ``installs_per_seat`` (e.g. 5 devices per Microsoft 365 Apps user), **unlicensed_installs** =
max(0, installs − capacity). A title installed where the MSP resells no covering licence counts only when
``sli.install_events_need_entitlement`` is false (the client may license it directly).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

from jobs.sli import catalogue as catalogue_mod
from jobs.sli.common import (
    calendar_table,
    days_table,
    docs_once,
    episodes,
    materialize,
    previous,
    snapshots_to_compute,
    touched_days,
    versions_as_of,
)
from lakehouse.lake import Range
from lakehouse.transforms import as_of, latest

if TYPE_CHECKING:  # pragma: no cover
    import ibis

    from jobs.sli.catalogue import Catalogue
    from jobs.sli.settings import SliSettings
    from lakehouse.context import RunContext

SKUS = "processed.subscribed_skus"
ENTITLEMENTS = "processed.entitlements"
ADDITIONS = "processed.agreement_additions"
INVENTORY = "processed.software_inventory"
CLIENTS = "processed.clients"
POSITION = "processed.licence_position"
INSTALLS = "processed.licence_installs"
INPUTS = (SKUS, ENTITLEMENTS, ADDITIONS, INVENTORY, CLIENTS)


def _mem(table, name: str):
    import ibis

    return ibis.memtable(table)


def _cents(x):
    return (x.cast("decimal(14,2)") * 100).round(0).cast("int64")


def _money(cents):
    return (cents.cast("decimal(18,0)") / 100).cast("decimal(14,2)")


def active_entitlements(entitlements: ibis.Table, days: ibis.Table) -> ibis.Table:
    """Entitlements as they stood on each day of ``days`` (``as_of``), active ones only."""
    v = versions_as_of(entitlements, ["entitlement_id"], days)
    return v.filter(v.status == "active")


def client_names(clients: ibis.Table) -> ibis.Table:
    c = latest(clients, ["client_id"])
    return c.select("client_id", "client_name")


def positions(skus: ibis.Table, entitlements: ibis.Table, additions: ibis.Table, clients: ibis.Table,
              cat: Catalogue, calendar: Sequence[str], cfg: SliSettings, seed: ibis.Table | None = None) -> ibis.Table:
    """One row per client, SKU and snapshot of ``skus`` (see the module docstring); ``calendar`` is every
    snapshot date of the lake (ISO), ``seed`` the stage's own rows of the snapshot before the first one."""
    import ibis

    s = latest(skus, ["client_id", "sku_id", "snapshot_date"], order=())
    days = s.select(as_of=s.snapshot_date).distinct()
    ent = active_entitlements(entitlements, days)
    ent = ent.mutate(_c=_cents(ent.unit_price))
    e = ent.group_by(["as_of", "client_id", "sku_id"]).agg(
        entitlement_seats=ent.seats.sum().cast("int32"),
        _weighted=(ent.seats.cast("int64") * ent._c).sum(),
        _max_c=ent._c.max(),
        entitlement_ids=ent.entitlement_id.group_concat(",", order_by=ent.entitlement_id),
        annual_seats=ibis.ifelse(ent.term_months >= 12, ent.seats, 0).sum().cast("int32"),
        monthly_seats=ibis.ifelse(ent.term_months < 12, ent.seats, 0).sum().cast("int32"))
    mean_c = (e._weighted / e.entitlement_seats).round(0).cast("int64")
    e = materialize(e.mutate(_price_c=ibis.ifelse(e.entitlement_seats > 0, mean_c, e._max_c)))
    ad = versions_as_of(additions, ["addition_id"], days)
    ad = ad.filter((ad.effective_date <= ad.as_of) & (ad.cancelled_date.isnull() | (ad.cancelled_date >= ad.as_of)))
    codes = _mem(cat.psa_code_table(), "sli_psa_codes")
    ad = ad.join(codes, "product_code")
    psa = materialize(ad.group_by(["as_of", "client_id", "sku_part_number"]).agg(
        psa_quantity=ad.quantity.sum().cast("int32")))
    products = _mem(cat.product_table(), "sli_products")
    names = client_names(clients)
    j = s.left_join(e, [s.snapshot_date == e.as_of, s.client_id == e.client_id, s.sku_id == e.sku_id])
    j = j.select(s, e.entitlement_seats, e.entitlement_ids, e.annual_seats, e.monthly_seats, e._price_c)
    j = j.left_join(psa, [j.snapshot_date == psa.as_of, j.client_id == psa.client_id,
                          j.sku_part_number == psa.sku_part_number]).select(j, psa.psa_quantity)
    j = j.left_join(products, j.sku_part_number == products.sku_part_number).select(
        j, products.product_name, products.list_price)
    j = j.left_join(names, j.client_id == names.client_id).select(j, names.client_name)
    price_c = j._price_c.fill_null(_cents(j.list_price))
    entitled = j.enabled_units.cast("int32")
    assigned = j.consumed_units.cast("int32")
    spare = (entitled.cast("float64") * (cfg.spare_seats_pct / 100.0)).floor().cast("int32")
    out = j.mutate(
        entitled=entitled, assigned=assigned, available=(entitled - assigned).cast("int32"),
        shortfall=ibis.greatest(assigned - entitled, 0).cast("int32"),
        unassigned=ibis.greatest(entitled - assigned, 0).cast("int32"), spare_allowance=spare,
        _price_c=price_c,
        price_source=ibis.cases((j._price_c.notnull(), "entitlement"), (j.list_price.notnull(), "list_price"),
                                else_=ibis.null().cast("string")))
    out = out.mutate(
        reclaimable_unassigned=ibis.greatest(out.unassigned - out.spare_allowance, 0).cast("int32"),
        assignment_rate=ibis.ifelse(out.entitled > 0, out.assigned.cast("float64") / out.entitled,
                                    ibis.null().cast("float64")),
        unit_price=_money(out._price_c),
        true_up_exposure=_money(out.shortfall.cast("int64") * out._price_c),
        unassigned_cost=_money(out.unassigned.cast("int64") * out._price_c),
        billing_drift=(out.psa_quantity - out.entitled).cast("int32"),
        sku_name=out.product_name.fill_null(out.sku_part_number))
    out = out.mutate(_drift=out.billing_drift.abs().fill_null(0).cast("int64"),
                     _in_short=out.shortfall > 0)
    out = out.mutate(_in_drift=out._drift >= cfg.billing_drift_min_seats)
    cal = _mem(calendar_table(calendar), "sli_snapshot_calendar")
    out = materialize(out.join(cal, "snapshot_date").select(out, cal._prev_snapshot))
    key = ["client_id", "sku_part_number"]
    seed_short = seed_drift = None
    if seed is not None:
        seed_short = seed.select(*key, "snapshot_date", _in_short=seed.shortfall > 0, shortfall=seed.shortfall,
                                 shortfall_opened=seed.shortfall_episode_opened,
                                 shortfall_snapshots=seed.shortfall_episode_snapshots,
                                 shortfall_max=seed.shortfall_episode_max, shortfall_state=seed.shortfall_state)
        d = seed.billing_drift.abs().fill_null(0).cast("int64")
        seed_drift = seed.select(*key, "snapshot_date", _in_drift=d >= cfg.billing_drift_min_seats, _drift=d,
                                 drift_opened=seed.drift_episode_opened, drift_snapshots=seed.drift_episode_snapshots,
                                 drift_max=seed.drift_episode_max, drift_state=seed.drift_state)
    out = materialize(episodes(out, key, "_in_short", "shortfall", "shortfall", seed=seed_short))
    out = episodes(out, key, "_in_drift", "_drift", "drift", seed=seed_drift)
    return out.select(
        "snapshot_date", "client_id", "client_name", "tenant_id", "sku_id", "sku_part_number", "sku_name",
        "capability_status", "entitled", "assigned", "available", "shortfall", "unassigned", "spare_allowance",
        "reclaimable_unassigned", "assignment_rate", "entitlement_seats", "annual_seats", "monthly_seats",
        "entitlement_ids", "unit_price", "price_source", "true_up_exposure", "unassigned_cost", "psa_quantity",
        "billing_drift",
        shortfall_episode_opened=out.shortfall_opened,
        shortfall_episode_snapshots=out.shortfall_snapshots.cast("int32"),
        shortfall_episode_max=out.shortfall_max.cast("int32"), shortfall_state=out.shortfall_state,
        drift_episode_opened=out.drift_opened, drift_episode_snapshots=out.drift_snapshots.cast("int32"),
        drift_episode_max=out.drift_max.cast("int32"), drift_state=out.drift_state,
        dt=out.snapshot_date.cast("string"))


def current_installs(inventory: ibis.Table, days: ibis.Table, cat: Catalogue) -> ibis.Table:
    """(as_of, client_id, install_key, device_id) of the catalogue's titles installed on each day."""
    import ibis

    if not cat.install:
        return inventory.select("client_id", "device_id", as_of=ibis.null().cast("date"),
                                install_key=ibis.null().cast("string")).limit(0)
    name = inventory.software_name.lower()
    key = ibis.cases(*[(name.re_search(i.pattern), i.key) for i in cat.install], else_=ibis.null().cast("string"))
    titled = inventory.mutate(install_key=key)  # the title never changes between versions of one install
    titled = titled.filter(titled.install_key.notnull())
    v = versions_as_of(titled, ["install_id"], days)
    v = v.filter(v.is_current & (v.first_seen <= v.as_of) & (v.uninstalled_at.isnull() | (v.uninstalled_at > v.as_of)))
    return v.select("as_of", "client_id", "install_key", "device_id")


def installs(inventory: ibis.Table, entitlements: ibis.Table, clients: ibis.Table, snapshots: Sequence[str],
             cat: Catalogue, calendar: Sequence[str], cfg: SliSettings, seed: ibis.Table | None = None) -> ibis.Table:
    """One row per client, catalogue install title and snapshot day where it is installed or licensed."""
    import ibis

    days = _mem(days_table(snapshots), "sli_install_days")
    inst = current_installs(inventory, days, cat)
    n = materialize(inst.group_by(["as_of", "client_id", "install_key"]).agg(
        installs=inst.device_id.nunique().cast("int32")))
    ent = active_entitlements(entitlements, days)
    cov = _mem(cat.coverage_table(), "sli_coverage")
    ec = ent.join(cov, "sku_part_number")
    lic = ec.group_by(["as_of", "client_id", "install_key"]).agg(
        licensed_seats=ec.seats.sum().cast("int32"),
        install_capacity=(ec.seats * ec.installs_per_seat).sum().cast("int32"),
        licence_skus=ec.sku_part_number.group_concat(",", order_by=ec.sku_part_number))
    j = n.outer_join(lic, [n.as_of == lic.as_of, n.client_id == lic.client_id, n.install_key == lic.install_key])
    j = j.select(snapshot_date=ibis.coalesce(n.as_of, lic.as_of), client_id=ibis.coalesce(n.client_id, lic.client_id),
                 install_key=ibis.coalesce(n.install_key, lic.install_key), installs=n.installs.fill_null(0),
                 licensed_seats=lic.licensed_seats.fill_null(0), install_capacity=lic.install_capacity.fill_null(0),
                 licence_skus=lic.licence_skus).view()
    titles = _mem(cat.install_table(), "sli_install_titles")
    names = client_names(clients)
    j = j.left_join(titles, "install_key").select(j, titles.install_name)
    j = j.left_join(names, "client_id").select(j, names.client_name)
    j = j.mutate(unlicensed_installs=ibis.greatest(j.installs - j.install_capacity, 0).cast("int32"),
                 has_entitlement=j.licensed_seats > 0)
    # a per-user Microsoft licence with nothing installed says nothing about installs: keep installed titles,
    # and the titles only other vendors' (per-device or named) licences cover, whose unused seats matter
    device_titles = sorted({k for p in cat.product for k in p.installs if p.vendor != "Microsoft"}
                           - {k for p in cat.product for k in p.installs if p.vendor == "Microsoft"})
    keep = j.installs > 0
    if device_titles:
        keep = keep | j.install_key.isin(device_titles)
    j = j.filter(keep)
    counts = j.unlicensed_installs > 0
    if cfg.install_events_need_entitlement:
        counts = counts & j.has_entitlement
    j = j.mutate(_short=counts, _n=j.unlicensed_installs.cast("int64"))
    cal = _mem(calendar_table(calendar), "sli_install_calendar")
    j = materialize(j.join(cal, "snapshot_date").select(j, cal._prev_snapshot))
    key = ["client_id", "install_key"]
    s = None
    if seed is not None:
        s = seed.select(*key, "snapshot_date", _short=seed.install_state.notnull() & (seed.install_state != "closed"),
                        _n=seed.unlicensed_installs.cast("int64"), install_opened=seed.install_episode_opened,
                        install_snapshots=seed.install_episode_snapshots, install_max=seed.install_episode_max,
                        install_state=seed.install_state)
    j = episodes(j, key, "_short", "_n", "install", seed=s)
    return j.select("snapshot_date", "client_id", "client_name", "install_key", "install_name", "installs",
                    "licence_skus", "licensed_seats", "install_capacity", "unlicensed_installs", "has_entitlement",
                    install_episode_opened=j.install_opened,
                    install_episode_snapshots=j.install_snapshots.cast("int32"),
                    install_episode_max=j.install_max.cast("int32"), install_state=j.install_state,
                    dt=j.snapshot_date.cast("string"))


# ---- the stage ---------------------------------------------------------------------------------------------
def snapshot_calendar(ctx: RunContext) -> tuple[list[str], dict[str, set[str]]]:
    """Every snapshot date of ``subscribed_skus`` (ISO) and, per export day, the snapshot dates it delivered."""
    pairs = ctx.table(SKUS).select("snapshot_date", "dt").distinct().to_pyarrow().to_pylist()
    by_day: dict[str, set[str]] = {}
    for p in pairs:
        by_day.setdefault(p["dt"], set()).add(p["snapshot_date"].isoformat())
    return sorted({p["snapshot_date"].isoformat() for p in pairs}), by_day


def run(ctx: RunContext) -> None:
    """Licence position and installs per client and SKU for the snapshots the run's days touch."""
    cfg: SliSettings = ctx.config
    cat = catalogue_mod.load(cfg.catalogue)
    end = ctx.end.isoformat()
    calendar, by_day = snapshot_calendar(ctx)
    touched = touched_days(ctx, INPUTS)
    direct = sorted({s for d in (touched or []) for s in by_day.get(d, ())})
    snaps = snapshots_to_compute(calendar, touched, end, direct)
    if not snaps:
        ctx.count(POSITION).notes.append("no snapshot to compute: nothing new since the last run")
        return
    prev = previous(calendar, snaps[0])
    first, last = date.fromisoformat(snaps[0]), date.fromisoformat(snaps[-1])
    skus = ctx.table(SKUS, {"dt": Range(snaps[0], end)})
    skus = skus.filter(skus.snapshot_date.between(first, last))
    ents = ctx.table(ENTITLEMENTS, as_of(end))
    clients = ctx.table(CLIENTS, as_of(end))
    seed_pos = ctx.table(POSITION, {"dt": prev}) if prev else None
    seed_inst = ctx.table(INSTALLS, {"dt": prev}) if prev else None
    pos = positions(skus, ents, ctx.table(ADDITIONS, as_of(end)), clients, cat, calendar, cfg, seed_pos)
    inst = installs(ctx.table(INVENTORY, as_of(end)), ents, clients, snaps, cat, calendar, cfg, seed_inst)
    why = "rebuild (settings or code changed)" if touched is None else "snapshots the run's days touch"
    ctx.count(POSITION).notes.append(f"snapshots {snaps[0]}..{snaps[-1]} ({len(snaps)}): {why}")
    replace = [{"dt": s} for s in snaps]
    with docs_once(ctx):
        ctx.write(POSITION, pos, replace=replace)
        ctx.write(INSTALLS, inst, replace=replace)

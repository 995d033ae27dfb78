"""Microsoft 365 tenants of the clients, their users, licences, seats bought, and weekly reports.

Users join and leave; most leavers lose their licence within days, but some keep it (idle seats), some
accounts are never used, some people go quiet for months. Seats are bought as Microsoft CSP/NCE
entitlements: raised when assignments outgrow them (after a reaction delay: long for a few planted
tenants, which creates licence shortfalls) and reset at each renewal.
"""

from __future__ import annotations

import numpy as np

from lakehouse.synth import catalog, names
from lakehouse.synth.psa_entities import cid
from lakehouse.synth.rng import hash_uniform, stream
from lakehouse.synth.textfmt import NULL, ids, pick

ENTITLEMENT_ID = ("EN-", 6)
WORKLOADS = ("exchange", "onedrive", "sharepoint", "teams")
USE_P = (0.98, 0.8, 0.6, 0.9)
IDLE_DAYS = 90
FAR = 10**9


def plan(w) -> None:
    tl, c = w.tl, w.clients
    rng = stream(w.seed, "m365")
    H = tl.n_days
    has_tenant = np.where(c.ctype != 2, rng.random(c.n) < 0.97, rng.random(c.n) < 0.5)
    tenants = np.flatnonzero(has_tenant)
    a = w.additions
    bs = np.zeros(c.n, bool)
    bs[a.client[a.product == 1]] = True
    primary = np.where(bs | (c.ctype == 2), 1, 0)  # index into catalog.M365_SKUS
    tenant_id = {int(t): _guid(rng) for t in tenants}
    # users: slots at the start of service, each held by a chain of people
    slot_client = np.repeat(tenants, c.users[tenants])
    hold = {"client": [], "join": [], "leave": [], "slot": []}
    join = np.where(c.start_day[slot_client] <= 0, -rng.integers(1, 2500, len(slot_client)),
                    c.start_day[slot_client] + rng.integers(0, 10, len(slot_client)))
    slot = np.arange(len(slot_client))
    cur_client, cur_join = slot_client, join
    for _ in range(5):
        tenure = rng.exponential(5 * 365, len(cur_client))
        leave = (np.maximum(cur_join, 0) + tenure).astype(np.int64)
        # people already employed on the first export day: some left shortly before it
        leave = np.where(cur_join < 0, (rng.random(len(cur_client)) * tenure).astype(np.int64) - rng.integers(
            0, 200, len(cur_client)), leave)
        hold["client"].append(cur_client), hold["join"].append(cur_join), hold["slot"].append(slot)
        hold["leave"].append(np.where(leave < H, leave, NULL))
        nxt = leave < H
        cur_client, slot = cur_client[nxt], slot[nxt]
        cur_join = leave[nxt] + rng.integers(7, 45, nxt.sum())
    # planted hiring spurts: a few tenants add several users at once (assignments outgrow the seats)
    spurt_t = tenants[rng.random(len(tenants)) < 0.12]
    if len(tenants) and not len(spurt_t):
        spurt_t = tenants[:1]
    k = rng.integers(3, 8, len(spurt_t))
    sp_client = np.repeat(spurt_t, k)
    lo = np.maximum(c.start_day[spurt_t], 0) + 20
    sp_day = np.repeat(lo + (rng.random(len(spurt_t)) * np.maximum(min(H, w.scale.days) - 40 - lo, 1)).astype(int),
                       k)
    hold["client"].append(sp_client), hold["join"].append(sp_day), hold["leave"].append(np.full(len(sp_client), NULL))
    hold["slot"].append(-np.ones(len(sp_client), int))
    u = {key: np.concatenate(v).astype(np.int64) for key, v in hold.items()}
    n = len(u["client"])
    end = np.where(c.end_day == NULL, FAR, c.end_day)[u["client"]]
    keep = (u["join"] < np.minimum(H, end)) & (u["join"] < np.where(u["leave"] == NULL, FAR, u["leave"]))
    u = {key: v[keep] for key, v in u.items()}
    n = len(u["client"])
    u["spurt"] = u["slot"] < 0
    # licences and accounts
    u["lic_on"] = u["join"] + rng.integers(0, 3, n)
    left = u["leave"] != NULL
    keeps = left & (rng.random(n) < 0.08)  # leaver keeps the licence: an idle seat
    u["lic_off"] = np.where(left, np.where(keeps, u["leave"] + rng.integers(60, 500, n), u["leave"] + rng.integers(
        0, 4, n)), NULL)
    u["deleted"] = np.where(left, np.where(keeps, u["lic_off"] + rng.integers(0, 5, n), u["leave"] + rng.integers(
        1, 6, n)), NULL)
    u["idle_leaver"] = keeps
    gone = (u["deleted"] != NULL) & (u["deleted"] < 0)  # accounts deleted before the first export day
    u = {key: v[~gone] for key, v in u.items()}
    n = len(u["client"])
    u["dormant"] = rng.random(n) < 0.02
    pause = rng.random(n) < 0.03
    u["pause_start"] = np.where(pause, np.maximum(u["join"], 0) + rng.integers(30, H, n), NULL)
    u["pause_end"] = np.where(pause, u["pause_start"] + rng.integers(100, 220, n), NULL)
    uses = rng.random((n, 4)) < np.asarray(USE_P)
    uses[:, 0] = True
    u["uses"] = uses
    addon = np.full(n, -1)
    r = rng.random(n)
    addon = np.where(r < 0.04, 4, np.where(r < 0.10, 5, addon))
    phone_tenants = rng.random(c.n) < 0.1
    addon = np.where((addon < 0) & phone_tenants[u["client"]] & (rng.random(n) < 0.3), 6, addon)
    u["addon"] = addon
    u["primary"] = primary[u["client"]]
    order = np.lexsort((u["join"], u["client"]))
    u = {key: v[order] for key, v in u.items()}
    first, last = names.people(stream(w.seed, "m365-names"), len(u["client"]))
    upn, seen = [], set()
    for f, l_, cl in zip(first, last, u["client"], strict=True):  # one pass over users (thousands)
        base = f"{f.lower()}.{l_.lower()}@{names.slug(c.name[cl])}.com"
        name, i = base, 2
        while name in seen:
            name = base.replace("@", f"{i}@")
            i += 1
        seen.add(name)
        upn.append(name)
    u["upn"] = np.asarray(upn, dtype=object)
    u["display"] = np.asarray([f"{a} {b}" for a, b in zip(first, last, strict=True)], dtype=object)
    w.extra["m365_users"] = u
    w.extra["tenant_id"] = tenant_id
    _plan_seats(w, tenants, rng)


def _guid(rng) -> str:
    h = "".join(f"{x:02x}" for x in rng.integers(0, 256, 16))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _plan_seats(w, tenants, rng) -> None:
    """Assignments per (tenant, SKU) and day, and the seats the MSP keeps bought for them."""
    tl, c, u = w.tl, w.clients, w.extra["m365_users"]
    H = tl.n_days
    pairs = []
    for sku_col in ("primary", "addon"):
        sku = u[sku_col]
        ok = sku >= 0
        pairs.append(np.stack([u["client"][ok], sku[ok]], 1))
    ts = np.unique(np.concatenate(pairs), axis=0)
    key = {(int(a), int(b)): i for i, (a, b) in enumerate(ts)}
    consumed = np.zeros((len(ts), H + 1), dtype=np.int32)
    for sku_col in ("primary", "addon"):
        sel = np.flatnonzero(u[sku_col] >= 0)
        row = np.array([key[(int(a), int(b))] for a, b in zip(u["client"][sel], u[sku_col][sel], strict=True)],
                       dtype=np.int64)
        on = np.clip(u["lic_on"][sel], 0, H)
        off = np.where(u["lic_off"][sel] == NULL, H, np.clip(u["lic_off"][sel], 0, H))
        np.add.at(consumed, (row, on), 1)
        np.add.at(consumed, (row, off), -1)
    consumed = np.cumsum(consumed, axis=1)[:, :H]
    n = len(ts)
    annual = ts[:, 1] < 4  # base plans on annual NCE terms; add-ons month to month
    spurt_clients = np.unique(u["client"][u["spurt"]])
    planted = annual & np.isin(ts[:, 0], spurt_clients) & (rng.random(n) < 0.7)
    if not planted.any():  # every MSP gets at least one late true-up
        cand = np.flatnonzero(annual & np.isin(ts[:, 0], spurt_clients))
        planted[cand[:1]] = True
    react = np.where(planted, rng.integers(30, 90, n), rng.integers(2, 9, n))
    buffer = rng.integers(0, 3, n)
    start = np.maximum(c.start_day[ts[:, 0]], 0)
    anniversary = (start + rng.integers(0, 365, n)) % 365
    seats = np.zeros((n, H), dtype=np.int32)
    s = consumed[:, 0] + buffer
    run = np.zeros(n, dtype=np.int32)
    change_days: list[tuple[np.ndarray, int]] = []
    day_of_year = np.arange(H) % 365
    month_start = np.zeros(H, bool)
    month_start[np.clip(tl.first_day(np.arange(tl.n_months)), 0, H - 1)] = True
    for d in range(H):  # one step per day, vectorised over (tenant, SKU) pairs
        need = consumed[:, d] > s
        run = np.where(need, run + 1, 0)
        renew = np.where(annual, day_of_year[d] == anniversary, month_start[d]) & (d > 0)
        new = np.where(need & (run >= react), consumed[:, d] + buffer, s)
        new = np.where(renew, consumed[:, d] + buffer, new)
        changed = (new != s) | renew
        if d == 0:
            changed[:] = True
        if changed.any():
            change_days.append((np.flatnonzero(changed), d))
        s = new
        seats[:, d] = s
    w.extra["m365_pairs"] = ts
    w.extra["m365_consumed"] = consumed
    w.extra["m365_seats"] = seats
    w.extra["m365_annual"] = annual
    w.extra["m365_anniversary"] = anniversary
    w.extra["m365_planted"] = planted
    w.extra["m365_changes"] = change_days


def snapshot_days(tl, d0: int, d1: int) -> np.ndarray:
    """Weekly snapshots (Mondays) of subscribed SKUs."""
    days = np.arange(max(d0, 0), min(d1, tl.n_days))
    return days[tl.dow[days] == 0]


def report_days(tl, d0: int, d1: int) -> np.ndarray:
    """Monthly active-user reports (period D30), on the first Monday of each month."""
    days = snapshot_days(tl, d0, d1)
    return days[tl.dom[days] <= 7]


def simulate_month(w, m: int, sinks, book) -> None:
    tl, c = w.tl, w.clients
    d0, d1 = tl.month_range(m)
    snaps = snapshot_days(tl, d0, d1)
    if not len(snaps):
        return
    tenant_id = w.extra["tenant_id"]
    ts, consumed, seats = w.extra["m365_pairs"], w.extra["m365_consumed"], w.extra["m365_seats"]
    # subscribed SKUs
    active = c.active_on(snaps)[ts[:, 0]]  # (pairs, snaps)
    pi, si = np.nonzero(active)
    day = snaps[si]
    tid = np.asarray([tenant_id[int(x)] for x in ts[pi, 0]], dtype=object)
    sku = ts[pi, 1]
    enabled = seats[pi, day]
    used = consumed[pi, day]
    sinks["subscribed_skus"].add(day, ts[pi, 0] * 100 + sku, snapshot_date=day, tenant_id=tid,
                                 client_id=cid(ts[pi, 0]), sku_id=pick([s[1] for s in catalog.M365_SKUS], sku),
                                 sku_part_number=pick([s[0] for s in catalog.M365_SKUS], sku),
                                 capability_status="Enabled", enabled_units=enabled,
                                 warning_units=np.zeros(len(pi), np.int64), suspended_units=np.zeros(len(pi), np.int64),
                                 consumed_units=used)
    book.licence_snapshots(ts[pi, 0], sku, day, enabled, used, w.extra["m365_planted"][pi])
    reports = report_days(tl, d0, d1)
    if len(reports):
        _user_rows(w, reports, sinks, book)


def _user_rows(w, snaps, sinks, book) -> None:
    c, u = w.clients, w.extra["m365_users"]
    tenant_id = w.extra["tenant_id"]
    n = len(u["client"])
    ui = np.repeat(np.arange(n), len(snaps))
    s = np.tile(snaps, n)
    deleted = np.where(u["deleted"] == NULL, FAR, u["deleted"])[ui]
    exists = (u["join"][ui] <= s) & (s - 7 <= deleted) & c.active_on(snaps)[u["client"]].ravel()
    ui, s, deleted = ui[exists], s[exists], deleted[exists]
    if not len(ui):
        return
    lic_on, lic_off = u["lic_on"][ui], np.where(u["lic_off"] == NULL, FAR, u["lic_off"])[ui]
    licensed = (lic_on <= s) & (s < lic_off)
    leave = np.where(u["leave"] == NULL, FAR, u["leave"])[ui]
    # the last day the person was active: today (minus a few days), their leaving day, or their pause start
    frozen = np.where(leave <= s, leave, FAR)
    ps, pe = u["pause_start"][ui], u["pause_end"][ui]
    paused = (ps != NULL) & (ps <= s) & (s < pe)
    frozen = np.where(paused, np.minimum(frozen, ps), frozen)
    last = {}
    for k, wl in enumerate(WORKLOADS):
        lag = (7 * hash_uniform(w.seed, f"m365-{wl}", ui, s) ** 2).astype(np.int64)
        day = np.where(frozen < FAR, frozen - (lag % 3), s - 1 - lag)
        day = np.maximum(day, u["join"][ui])
        never = ~u["uses"][ui, k] | u["dormant"][ui] | (day < u["join"][ui])
        last[wl] = np.where(never, NULL, day)
    primary, addon = u["primary"][ui], u["addon"][ui]
    prod_primary = np.asarray([x[2].upper() for x in catalog.M365_SKUS], dtype=object)
    products = np.where(licensed, prod_primary[primary], "")
    has_addon = licensed & (addon >= 0)
    products = np.where(has_addon, products + "+" + prod_primary[np.maximum(addon, 0)], products)
    products = np.where(products == "", None, products)
    is_deleted = deleted <= s
    sinks["active_user_detail"].add(
        s, u["client"][ui] * 1_000_000 + ui, report_refresh_date=s,
        tenant_id=np.asarray([tenant_id[int(x)] for x in u["client"][ui]], dtype=object),
        client_id=cid(u["client"][ui]), user_principal_name=u["upn"][ui], display_name=u["display"][ui],
        is_deleted=is_deleted, deleted_date=np.where(is_deleted, deleted, NULL), assigned_products=products,
        has_exchange_license=licensed, has_onedrive_license=licensed, has_sharepoint_license=licensed,
        has_teams_license=licensed, exchange_last_activity_date=last["exchange"],
        onedrive_last_activity_date=last["onedrive"], sharepoint_last_activity_date=last["sharepoint"],
        teams_last_activity_date=last["teams"])
    # truth: licensed users idle for IDLE_DAYS or more (all workloads), per assigned SKU
    latest = np.max(np.stack([np.where(v == NULL, -FAR, v) for v in last.values()]), axis=0)
    since = np.where(latest == -FAR, np.maximum(u["join"][ui], lic_on), latest)
    idle = licensed & ~is_deleted & (s - since >= IDLE_DAYS)
    reason = np.where(leave <= s, 0, np.where(u["dormant"][ui], 1, 2))
    book.idle_users(u["client"][ui][idle], ui[idle], primary[idle], addon[idle], s[idle], since[idle], reason[idle])


def emit_entitlements(w, sinks) -> None:
    """Microsoft seats (every change and renewal) and other vendors' licences (at purchase and renewal)."""
    tl, c = w.tl, w.clients
    ts, seats = w.extra["m365_pairs"], w.extra["m365_seats"]
    annual, anniv = w.extra["m365_annual"], w.extra["m365_anniversary"]
    rows = {k: [] for k in ("pair", "day")}
    for pairs, d in w.extra["m365_changes"]:
        rows["pair"].append(pairs), rows["day"].append(np.full(len(pairs), d))
    pair = np.concatenate(rows["pair"]).astype(np.int64)
    day = np.concatenate(rows["day"]).astype(np.int64)
    ok = c.active_on(np.arange(tl.n_days))[ts[pair, 0], day]
    start_service = np.maximum(c.start_day[ts[pair, 0]], 0)
    ok |= day == 0
    pair, day = pair[ok], np.maximum(day[ok], start_service[ok])
    # a churner's subscriptions are cancelled the day after its service ends
    gone = np.flatnonzero(c.end_day[ts[:, 0]] != NULL)
    gone = gone[c.end_day[ts[gone, 0]] + 1 < tl.n_days]
    cancel_day = c.end_day[ts[gone, 0]] + 1
    status = np.concatenate([np.zeros(len(pair), int), np.ones(len(gone), int)])
    pair = np.concatenate([pair, gone])
    day = np.concatenate([day, cancel_day])
    # term start and renewal date current on that day
    term_start = np.where(annual[pair], day - ((day - anniv[pair]) % 365), tl.first_day(tl.month_of(day)))
    renewal = np.where(annual[pair], term_start + 365, tl.first_day(tl.month_of(day) + 1))
    price = np.asarray([x[3] for x in catalog.M365_SKUS])[ts[pair, 1]]
    price = np.where(annual[pair], price, price * 12 // 10)  # month-to-month costs 20 % more
    sku = ts[pair, 1]
    n = len(pair)
    MS = np.asarray(catalog.M365_SKUS, dtype=object)
    _emit_entitlement_rows(w, sinks, day=day, eid=pair, client=ts[pair, 0], vendor=np.full(n, "Microsoft",
                                                                                           dtype=object),
                           sku_id=MS[sku, 1], part=MS[sku, 0], name=MS[sku, 2], seats=seats[pair, np.minimum(
                               day, tl.n_days - 1)], price=price, term=np.where(annual[pair], 12, 1),
                           freq=np.where(annual[pair] & (ts[pair, 0] % 3 == 0), "annual", "monthly").astype(object),
                           model=np.full(n, "nce", dtype=object), start=term_start, renewal=renewal,
                           status=np.where(status == 1, "cancelled", "active").astype(object))
    _other_licences(w, sinks, len(ts))


def _other_licences(w, sinks, offset: int) -> None:
    """Adobe, Autodesk, Intuit seats for clients that run those titles: bought to cover peak installs."""
    tl, c, d, inst = w.tl, w.clients, w.extra["devices"], w.extra["installs"]
    rng = stream(w.seed, "other-licences")
    rows = {k: [] for k in ("client", "lic", "seats", "start")}
    for li, (*_, title) in enumerate(catalog.OTHER_LICENCES):
        sel = inst["title"] == title
        client = d["client"][inst["dev"][sel]]
        if not len(client):
            continue
        cl, count = np.unique(client, return_counts=True)
        rows["client"].append(cl), rows["lic"].append(np.full(len(cl), li))
        rows["seats"].append(count + rng.integers(0, 3, len(cl)))
        rows["start"].append(np.maximum(c.start_day[cl], 0))
    if not rows["client"]:
        return
    f = {k: np.concatenate(v).astype(np.int64) for k, v in rows.items()}
    n = len(f["client"])
    anniv = f["start"] + rng.integers(0, 365, n)
    lic = f["lic"]
    days, idx = [], []
    for k in range(tl.n_days // 365 + 1):  # purchase, then each yearly renewal
        dday = np.where(k == 0, 0, anniv + 365 * (k - 1))
        dday = np.where(k == 0, f["start"], dday)
        ok = dday < tl.n_days
        days.append(dday[ok]), idx.append(np.flatnonzero(ok))
    day = np.concatenate(days)
    i = np.concatenate(idx)
    end = np.where(c.end_day == NULL, FAR, c.end_day)[f["client"][i]]
    keep = day <= end
    day, i = day[keep], i[keep]
    start = np.where(day == f["start"][i], f["start"][i], day)
    renewal = np.where(day < anniv[i], anniv[i], day + 365)
    OL = np.asarray(catalog.OTHER_LICENCES, dtype=object)
    _emit_entitlement_rows(w, sinks, day=day, eid=offset + i, client=f["client"][i],
                           vendor=OL[lic[i], 0], sku_id=OL[lic[i], 1], part=OL[lic[i], 2], name=OL[lic[i], 3],
                           seats=f["seats"][i], price=np.asarray([x[4] for x in OL])[lic[i]],
                           term=np.full(len(i), 12), freq=np.full(len(i), "annual", dtype=object),
                           model=np.full(len(i), "subscription", dtype=object), start=start, renewal=renewal,
                           status=np.full(len(i), "active", dtype=object))


def _emit_entitlement_rows(w, sinks, day, eid, client, vendor, sku_id, part, name, seats, price, term, freq, model,
                           start, renewal, status) -> None:
    from lakehouse.synth.rows import Rows, clock

    r = Rows()
    r.add(_day=day, _order=eid, entitlement_id=ids(*ENTITLEMENT_ID, eid + 1).to_numpy(zero_copy_only=False),
          client_id=cid(client).to_numpy(zero_copy_only=False), vendor=vendor,
          sku_id=sku_id, sku_part_number=part, sku_name=name,
          seats=seats, unit_price=price, term_months=term, billing_frequency=freq, billing_model=model,
          start_date=start, renewal_date=renewal, auto_renew=np.ones(len(day), bool),
          status=status, updated_at=clock(w.seed, "entitlement", day, eid))
    r.emit(sinks["entitlements"], "entitlement_id", order="_order")

"""The RMM's view: managed devices, the software on them, agents removed, and daily endpoint counts.

Devices age out and are replaced, a few are reimaged, fleets grow slowly. Churners are the exception the
agents should notice: in the weeks around their notice, agents get uninstalled and unapproved remote-access
tools (another provider's) appear, then every remaining agent is removed when service ends.
"""

from __future__ import annotations

import numpy as np

from lakehouse.synth import catalog, names
from lakehouse.synth.psa_entities import cid
from lakehouse.synth.rng import stream
from lakehouse.synth.textfmt import NULL, ids, pick
from lakehouse.synth.timeline import DAY

DEVICE_ID = ("DV-", 7)
INSTALL_ID = ("SW-", 9)
REMOVAL_ID = ("RM-", 6)
REASONS = ("device_retired", "offboarding", "uninstalled", "reimaged")
REMOVERS = ("technician", "end_user", "automation", "unknown")
ALIVE = 10**9


def plan(w) -> None:
    tl, c = w.tl, w.clients
    rng = stream(w.seed, "devices")
    H = tl.n_days
    rmm = c.ctype != 2
    # slots of the fleet at the start of service, plus growth
    slots_ws = np.where(rmm, c.workstations, 0)
    slots_srv = np.where(rmm, c.servers, 0)
    client = np.concatenate([np.repeat(np.arange(c.n), slots_ws), np.repeat(np.arange(c.n), slots_srv)])
    server = np.concatenate([np.zeros(slots_ws.sum(), bool), np.ones(slots_srv.sum(), bool)])
    start = c.start_day[client]
    first = np.where(start <= 0, start + (rng.random(len(client)) * np.maximum(-start, 1)).astype(int),
                     start + rng.integers(0, 20, len(client)))
    grow = rng.poisson(np.where(rmm, c.workstations * 0.05 * H / 365, 0))
    g_client = np.repeat(np.arange(c.n), grow)
    g_lo = np.maximum(c.start_day[g_client], 0) + 30
    g_first = g_lo + (rng.random(len(g_client)) * np.maximum(H - g_lo, 1)).astype(int)
    client = np.concatenate([client, g_client])
    server = np.concatenate([server, np.zeros(len(g_client), bool)])
    first = np.concatenate([first, g_first])
    # generations: a device is replaced when it is retired (or reimaged: a new agent id, same host name)
    life_mean = np.where(server, 5 * 365, 4 * 365)
    dev = {"client": [], "server": [], "first": [], "gone": [], "reason": [], "slot": [], "gen": []}
    slot = np.arange(len(client))
    cur_first = first
    end_service = np.where(c.end_day == NULL, ALIVE, c.end_day)[client]
    for gen in range(4):
        life = rng.exponential(life_mean)
        base = np.maximum(cur_first, 0) if gen == 0 else cur_first
        gone = (base + life).astype(np.int64)
        reimage = rng.random(len(slot)) < 0.03 * life / 365
        gone = np.where(reimage, base + (rng.random(len(slot)) * life).astype(np.int64), gone)
        reason = np.where(reimage, 3, 0)
        ok = cur_first < np.minimum(H, end_service)
        for key, val in (("client", client), ("server", server), ("first", cur_first), ("gone", gone),
                         ("reason", reason), ("slot", slot), ("gen", np.full(len(slot), gen))):
            dev[key].append(val[ok])
        nxt = gone + np.where(reimage, rng.integers(1, 3, len(slot)), -rng.integers(0, 6, len(slot)))
        keep = ok & (gone < H)
        client, server, slot, cur_first, end_service, life_mean = (client[keep], server[keep], slot[keep],
                                                                   nxt[keep], end_service[keep], life_mean[keep])
    d = {k: np.concatenate(v).astype(np.int64) for k, v in dev.items()}
    d["server"] = d["server"].astype(bool)
    n = len(d["client"])
    # churners: agents removed around the notice, then all of them when service ends
    ch = c.churner[d["client"]]
    end = np.where(c.end_day == NULL, ALIVE, c.end_day)[d["client"]]
    sig = np.where(ch, c.signal_day[d["client"]], ALIVE)
    notice = np.where(ch, c.notice_day[d["client"]], ALIVE)
    window_lo = np.maximum(notice - 60, sig)
    window_hi = np.minimum(end, notice + 10)  # users pull agents in the weeks around the notice
    early = ch & (rng.random(n) < 0.3)
    early_day = window_lo + (rng.random(n) * np.maximum(window_hi - window_lo, 1)).astype(np.int64)
    ok = (early_day < np.where(d["gone"] == NULL, ALIVE, d["gone"])) & (early_day > np.maximum(d["first"], 0))
    take = early & ok
    for cl in np.unique(d["client"][ch]):  # every churner loses at least two agents early (when it has them)
        mine = np.flatnonzero((d["client"] == cl) & ok)
        take[mine[:2]] = True
    d["gone"] = np.where(take, early_day, d["gone"])
    d["reason"] = np.where(take, 2, d["reason"])
    stop = (end != ALIVE) & (d["gone"] > end)
    d["gone"] = np.where(stop, end, d["gone"])
    d["reason"] = np.where(stop, 1, d["reason"])
    # random user uninstalls elsewhere (noise for the canary)
    noise = ~ch & (rng.random(n) < 0.01 * H / 365)
    noise_day = np.maximum(d["first"], 0) + rng.integers(1, H, n)
    nz = noise & (noise_day < d["gone"])
    d["gone"] = np.where(nz, noise_day, d["gone"])
    d["reason"] = np.where(nz, 2, d["reason"])
    d["gone"] = np.where(d["gone"] >= H, NULL, d["gone"])
    order = np.lexsort((d["gen"], d["slot"], d["client"]))
    d = {k: v[order] for k, v in d.items()}
    d["name"] = _host_names(w, d)
    w.extra["devices"] = d
    # endpoint counts per client and day
    counts = np.zeros((c.n, H + 1), dtype=np.int32)
    lo = np.clip(d["first"], 0, H)
    hi = np.where(d["gone"] == NULL, H, np.clip(d["gone"] + 1, 0, H))
    np.add.at(counts, (d["client"], lo), 1)
    np.add.at(counts, (d["client"], hi), -1)
    alive = np.cumsum(counts, axis=1)[:, :H]
    srv = np.zeros((c.n, H + 1), dtype=np.int32)
    s = d["server"]
    np.add.at(srv, (d["client"][s], lo[s]), 1)
    np.add.at(srv, (d["client"][s], hi[s]), -1)
    w.extra["servers_alive"] = np.cumsum(srv, axis=1)[:, :H]
    w.extra["devices_alive"] = alive
    active = c.active_on(np.arange(H))
    base = np.where(rmm[:, None], alive + c.network[:, None], c.endpoints[:, None])
    w.endpoint_counts = np.where(active, base, 0).astype(np.int32)
    _plan_software(w)


def _host_names(w, d) -> np.ndarray:
    c = w.clients
    prefix = np.asarray([names.slug(x)[:5].upper() for x in c.name], dtype=object)
    out = np.empty(len(d["client"]), dtype=object)
    for i, (cl, srv, slot, gen) in enumerate(zip(d["client"], d["server"], d["slot"], d["gen"], strict=True)):
        kind = "SRV" if srv else ("LT" if slot % 3 else "WS")
        out[i] = f"{prefix[cl]}-{kind}{slot % 1000:03d}" + (f"-{gen}" if gen and d["reason"][i] != 3 else "")
    return out


def version_text(style: str, k: np.ndarray) -> np.ndarray:
    """Version string of release k of a title (k may be negative: releases before the first export)."""
    k = np.asarray(k) + 10
    fmt = {
        "win11": lambda i: f"10.0.22631.{2861 + 120 * i}", "win10": lambda i: f"10.0.19045.{3570 + 110 * i}",
        "win2022": lambda i: f"10.0.20348.{1850 + 90 * i}", "m365apps": lambda i: f"16.0.{16529 + 95 * i}.20182",
        "chrome": lambda i: f"{110 + 2 * i}.0.{5481 + 85 * i}.{97 + i % 50}",
        "edge": lambda i: f"{110 + 2 * i}.0.{1722 + 72 * i}.{48 + i % 30}",
        "acroread": lambda i: f"23.{i:03d}.{20360 + i}", "acropro": lambda i: f"23.{i:03d}.{20360 + i}",
        "zoom": lambda i: f"5.{13 + i // 3}.{(i % 3) * 5}", "7zip": lambda i: f"{19 + i}.00",
        "edr": lambda i: f"23.{i // 4}.{i % 4}.{300 + 7 * i}", "rmm": lambda i: f"5.{i // 4}.{8000 + 131 * i}",
        "autocad": lambda i: f"{20 + i}.0.{48 + i}", "qb": lambda i: f"{20 + i}.0 R{1 + i % 9}",
        "anydesk": lambda i: f"8.0.{i}", "teamviewer": lambda i: f"15.{40 + i}.{3 + i % 4}",
    }[style]
    return np.asarray([fmt(int(i)) for i in k], dtype=object)


def _plan_software(w) -> None:
    """Installs per device and the version updates the agent reports."""
    tl, c, d = w.tl, w.clients, w.extra["devices"]
    rng = stream(w.seed, "software")
    H = tl.n_days
    n = len(d["client"])
    ind = np.asarray(names.INDUSTRIES)[c.industry[d["client"]]]
    rows = {"dev": [], "title": [], "on": [], "off": []}
    win11 = rng.random(n) < 0.72
    for t, (_, _, p_ws, p_srv, _, _) in enumerate(catalog.SOFTWARE):
        p = np.where(d["server"], p_srv, p_ws)
        if t == 0:
            p = np.where(d["server"], 0, win11.astype(float))
        elif t == 1:
            p = np.where(d["server"], 0, (~win11).astype(float))
        elif t == 12:
            p = np.where(~d["server"] & np.isin(ind, ["engineering", "construction"]), 0.4, 0)
        elif t == 13:
            p = np.where(~d["server"] & np.isin(ind, ["accounting", "construction", "retail"]), 0.15, 0)
        elif t in catalog.REMOTE_TOOLS:
            p = np.where(~d["server"], 0.004, 0)
        has = rng.random(n) < p
        dev = np.flatnonzero(has)
        on = d["first"][dev].copy()
        off = np.full(len(dev), NULL, dtype=np.int64)
        if t in catalog.REMOTE_TOOLS:  # noise: an unapproved tool found and removed by the MSP
            life = np.where(d["gone"][dev] == NULL, H, d["gone"][dev])
            on = np.maximum(on, 0) + (rng.random(len(dev)) * np.maximum(life - np.maximum(on, 0), 1)).astype(int)
            off = on + rng.integers(3, 60, len(dev))
        elif t == 8:
            quit_ = rng.random(len(dev)) < 0.05
            off = np.where(quit_, np.maximum(on, 0) + rng.integers(30, H, len(dev)), NULL)
        rows["dev"].append(dev), rows["title"].append(np.full(len(dev), t))
        rows["on"].append(on), rows["off"].append(off)
    # the canary: churners' users install another provider's remote-access tool during the signal window
    ch = c.churner[d["client"]]
    lo = np.where(ch, c.signal_day[d["client"]], 0)
    hi = np.where(ch, c.notice_day[d["client"]] + 20, 0)
    day = lo + (rng.random(n) * np.maximum(hi - lo, 1)).astype(int)
    alive = ch & ~d["server"] & (day > d["first"]) & ((d["gone"] == NULL) | (day < d["gone"]))
    pick = alive & (rng.random(n) < 0.35)
    for cl in np.unique(d["client"][ch]):  # at least two per churner
        pick[np.flatnonzero(alive & (d["client"] == cl))[:2]] = True
    cand = np.flatnonzero(pick)
    day = day[cand]
    rows["dev"].append(cand), rows["title"].append(np.where(rng.random(len(cand)) < 0.6, 14, 15))
    rows["on"].append(day), rows["off"].append(np.full(len(cand), NULL))
    inst = {k: np.concatenate(v).astype(np.int64) for k, v in rows.items()}
    gone = d["gone"][inst["dev"]]
    end = np.where(gone == NULL, H, gone)  # the agent stops reporting when the device goes
    keep = inst["on"] < end
    inst = {k: v[keep] for k, v in inst.items()}
    inst["off"] = np.where((inst["off"] != NULL) & (inst["off"] >= np.where(d["gone"][inst["dev"]] == NULL, H,
                                                                              d["gone"][inst["dev"]])),
                           NULL, inst["off"])
    order = np.lexsort((inst["title"], inst["dev"]))
    inst = {k: v[order] for k, v in inst.items()}
    w.extra["installs"] = inst
    # release calendar per title
    releases = []
    for t, (*_, cadence, _) in enumerate(catalog.SOFTWARE):
        r = stream(w.seed, "releases", t)
        k = np.arange(-int(3000 / cadence) - 2, int(H / cadence) + 2)
        day = k * cadence + r.integers(-cadence // 5, cadence // 5 + 1, len(k))
        releases.append((k, day))
    w.extra["releases"] = releases


def software_rows(w, d0: int, d1: int) -> dict:
    """Inventory rows with export day in [d0, d1): first seen, version changes, uninstalls."""
    tl, d, inst, rel = w.tl, w.extra["devices"], w.extra["installs"], w.extra["releases"]
    H = tl.n_days
    out = {k: [] for k in ("inst", "day", "k", "first", "last", "current", "uninst")}
    gone = d["gone"][inst["dev"]]
    end = np.minimum(np.where(gone == NULL, H, gone), np.where(inst["off"] == NULL, H, inst["off"]))
    first_export = np.maximum(inst["on"], 0)
    idx = np.arange(len(inst["dev"]))
    for t in range(len(catalog.SOFTWARE)):
        sel = idx[inst["title"] == t]
        if len(sel) == 0:
            continue
        k, rday = rel[t]
        fe = first_export[sel]
        # first-seen rows: the version that had landed by the day of the row
        m = (fe >= d0) & (fe < d1) & (fe < end[sel])
        if m.any():
            sub = sel[m]
            _push(out, sub, fe[m], _version_at(w.seed, t, sub, fe[m], k, rday), inst["on"][sub], fe[m], True, NULL)
        # version updates landing this month (releases of the last three weeks and this month)
        kr = np.flatnonzero((rday >= d0 - 21) & (rday < d1))
        if len(kr):
            upd = rday[kr][None, :] + _lag(w.seed, t, sel[:, None], k[kr][None, :])
            ok = (upd >= d0) & (upd < d1) & (upd > fe[:, None]) & (upd < end[sel][:, None])
            ii, kk = np.nonzero(ok)
            _push(out, sel[ii], upd[ii, kk], k[kr][kk], inst["on"][sel][ii], upd[ii, kk], True, NULL)
        # uninstalls (not device retirements: the agent is gone then)
        off = inst["off"][sel]
        g = gone[sel]
        m = (off != NULL) & (off >= d0) & (off < d1) & (off < np.where(g == NULL, H, g)) & (off > fe)
        if m.any():
            sub = sel[m]
            _push(out, sub, off[m], _version_at(w.seed, t, sub, off[m] - 1, k, rday), inst["on"][sub], off[m] - 1,
                  False, off[m])
    f = {key: np.concatenate(v) if v else np.zeros(0, np.int64) for key, v in out.items()}
    # one row per install and day: the last event of the day wins
    if len(f["inst"]) == 0:
        return f
    o = np.lexsort((~f["current"].astype(bool), f["day"], f["inst"]))
    f = {key: v[o] for key, v in f.items()}
    last = np.ones(len(o), dtype=bool)
    last[:-1] = (f["inst"][1:] != f["inst"][:-1]) | (f["day"][1:] != f["day"][:-1])
    return {key: v[last] for key, v in f.items()}


def _version_at(seed: int, title: int, inst: np.ndarray, day: np.ndarray, k: np.ndarray, rday: np.ndarray):
    """Release index installed on ``day``: the last release whose update had landed by then."""
    upto = np.flatnonzero(rday <= day.max())
    kk, rr = k[upto], rday[upto]
    landed = (rr[None, :] + _lag(seed, title, inst[:, None], kk[None, :])) <= day[:, None]
    pos = np.where(landed, np.arange(len(kk))[None, :], -1).max(1)
    return np.where(pos >= 0, kk[np.maximum(pos, 0)], k[0])


def _lag(seed: int, title: int, inst: np.ndarray, k: np.ndarray) -> np.ndarray:
    from lakehouse.synth.rng import hash_uniform

    u = hash_uniform(seed, f"lag{title}", inst, k)
    return (1 + 20 * u * u).astype(np.int64)


def _push(out, inst, day, k, first, last, current, uninst) -> None:
    n = len(inst)
    out["inst"].append(inst), out["day"].append(day), out["k"].append(k), out["first"].append(first)
    out["last"].append(last), out["current"].append(np.full(n, current))
    out["uninst"].append(uninst if isinstance(uninst, np.ndarray) else np.full(n, uninst))


def simulate_month(w, m: int, sinks, book) -> None:
    tl, c, d = w.tl, w.clients, w.extra["devices"]
    d0, d1 = tl.month_range(m)
    d1 = min(d1, tl.n_days)
    if d0 >= d1:
        return
    # managed endpoint counts, every day, for clients under RMM
    days = np.arange(d0, d1)
    active = c.active_on(days) & (c.ctype != 2)[:, None]
    ci, di = np.nonzero(active)
    day = days[di]
    srv = w.extra["servers_alive"][ci, day]
    ws = w.extra["devices_alive"][ci, day] - srv
    sinks["managed_endpoints"].add(day, ci, snapshot_date=day, client_id=cid(ci), workstations=ws, servers=srv,
                                   network_devices=c.network[ci], total_endpoints=ws + srv + c.network[ci])
    # software inventory
    f = software_rows(w, d0, d1)
    inst = w.extra["installs"]
    if len(f["inst"]):
        dev = inst["dev"][f["inst"]]
        title = inst["title"][f["inst"]]
        version = np.empty(len(dev), dtype=object)
        for t in np.unique(title):
            sel = title == t
            version[sel] = version_text(catalog.SOFTWARE[t][5], f["k"][sel])
        sinks["software_inventory"].add(
            f["day"], f["inst"], install_id=ids(*INSTALL_ID, f["inst"] + 1), device_id=ids(*DEVICE_ID, dev + 1),
            device_name=d["name"][dev], device_type=np.where(d["server"][dev], "server", "workstation").astype(object),
            client_id=cid(d["client"][dev]), software_name=pick([s[0] for s in catalog.SOFTWARE], title),
            publisher=pick([s[1] for s in catalog.SOFTWARE], title), version=version,
            first_seen=f["first"], last_seen=f["last"], is_current=f["current"].astype(bool),
            uninstalled_at=f["uninst"])
    # agent removals on the day after the device was last seen
    gone = d["gone"]
    sel = np.flatnonzero((gone != NULL) & (gone + 1 >= d0) & (gone + 1 < d1))
    if len(sel):
        rng = stream(w.seed, "removals", m)
        reason = d["reason"][sel]
        by = np.where(reason == 2, np.where(rng.random(len(sel)) < 0.6, 1, 3),
                      np.where(reason == 1, np.where(rng.random(len(sel)) < 0.5, 2, 0), 0))
        day = gone[sel] + 1
        rel_k, rel_day = w.extra["releases"][11]
        k = rel_k[np.maximum(np.searchsorted(rel_day, day, side="right") - 1, 0)]
        at = day * DAY + rng.integers(14 * 3600, 23 * 3600, len(sel))
        sinks["agent_removals"].add(day, at, removal_id=ids(*REMOVAL_ID, sel + 1), device_id=ids(*DEVICE_ID, sel + 1),
                                    device_name=d["name"][sel], client_id=cid(d["client"][sel]), removed_at=at,
                                    removed_by=pick(REMOVERS, by), reason=pick(REASONS, reason),
                                    agent_version=version_text("rmm", k))

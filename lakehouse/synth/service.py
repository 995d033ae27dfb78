"""The service desk, month by month: tickets, the technicians who work them, and their time entries.

Ticket volume per client and day = endpoints x the client's ticket rate x the day's weight (business days,
Mondays, holidays, season) x (1 + churn signal + rough patch). Churners' tickets also take longer, so
their effective hourly rate falls before they give notice. Proactive maintenance and project work add
time entries that have no ticket.
"""

from __future__ import annotations

import numpy as np

from lakehouse.synth import catalog
from lakehouse.synth.psa_entities import AGREEMENT_ID, CONTACT_ID, PROJECT_ID, SITE_ID, TECH_ID, cid
from lakehouse.synth.rng import hash_uniform, stream
from lakehouse.synth.textfmt import NULL, ids, pick
from lakehouse.synth.timeline import DAY

TICKET_ID = ("TK-", 7)
ENTRY_ID = ("TE-", 8)
SEASON = np.array([1.10, 1.0, 1.0, 0.98, 0.97, 0.95, 0.92, 0.9, 1.05, 1.02, 0.97, 0.85])
NOTES = {"reactive": "Worked ticket", "onsite": "Onsite visit", "proactive": "Patching and health checks",
         "project": "Project work"}


def day_weights(tl, days: np.ndarray) -> np.ndarray:
    dow = tl.dow[days]
    w = np.where(dow < 5, 1.0, 0.08)
    w = np.where(dow == 0, 1.22, w)
    w = np.where(dow == 4, 0.9, w)
    w = np.where(tl.holiday[days], 0.12, w)
    return w * SEASON[tl.month_of_year[days] - 1]


def assign(rng, avail: np.ndarray, employed: np.ndarray, skill_ok: np.ndarray, pref: np.ndarray) -> np.ndarray:
    """Pick one technician per row of (rows x techs) weights; falls back to anyone employed (on call)."""
    w = avail * skill_ok * pref
    empty = w.sum(1) == 0
    if empty.any():
        w[empty] = (employed[empty] * np.maximum(skill_ok[empty], 0.05) * pref[empty])
    empty = w.sum(1) == 0
    if empty.any():
        w[empty] = 1.0
    cum = np.cumsum(w, axis=1)
    u = rng.random(len(w)) * cum[:, -1]
    return (cum < u[:, None]).sum(1)


def simulate_month(w, m: int, sinks, book) -> None:
    tl, c, t = w.tl, w.clients, w.techs
    d0, d1 = tl.month_range(m)
    d1 = min(d1, tl.n_days)
    if d0 >= d1:
        return
    days = np.arange(d0, d1)
    rng = stream(w.seed, "tickets", m)
    active = c.active_on(days)
    sig = c.signal(days)
    patch = c.patch(days)
    endpoints = w.endpoint_counts[:, d0:d1].astype(float)
    # a churner's users keep calling while agents disappear: its volume follows the fleet it had
    before = w.endpoint_counts[np.arange(c.n), np.clip(np.where(c.churner, c.signal_day, 0), 0, tl.n_days - 1)]
    endpoints = np.where(c.churner[:, None] & (sig > 0), np.maximum(endpoints, before[:, None]), endpoints)
    lam = (c.ticket_rate[:, None] * endpoints / 21.0 * day_weights(tl, days)[None, :]
           * (1 + 1.1 * sig + 0.8 * patch) * active)
    counts = rng.poisson(lam)
    client = np.repeat(np.repeat(np.arange(c.n), len(days)), counts.ravel())
    day = np.repeat(np.tile(days, c.n), counts.ravel())
    k = len(client)
    if k == 0:
        _other_work(w, m, sinks, book)
        return
    s_k = sig[client, day - d0]
    p_k = patch[client, day - d0]
    cat = rng.choice(len(catalog.CATEGORIES), k, p=catalog.CATEGORY_WEIGHTS)
    cum = np.cumsum(np.asarray(catalog.PRIORITY_P), axis=1)
    pri = np.minimum((rng.random(k)[:, None] > cum[cat]).sum(1), 3)
    after_hours = rng.random(k) < np.where(pri == 3, 0.35, 0.08)
    tod = np.where(after_hours, rng.integers(0, DAY, k), rng.integers(int(14.5 * 3600), int(23.5 * 3600), k))
    created = day * DAY + tod
    skill = np.asarray(catalog.CATEGORY_SKILL)[cat]
    level = np.clip(np.array([1, 2, 3, 3])[pri] + rng.integers(-1, 2, k), 1, 5)
    onsite = rng.random(k) < np.asarray(catalog.CATEGORY_ONSITE)[cat]
    billable = (c.ctype[client] == 2) | (rng.random(k) < 0.03)
    sla = np.asarray(catalog.SLA_MINUTES)[pri]
    sla = np.where(c.sla_premium[client][:, None], sla // 2, sla)
    resp = np.maximum(1, rng.lognormal(np.log(sla[:, 0] * 0.3), 0.8)).astype(np.int64)
    solve = np.maximum(resp + 5, rng.lognormal(np.log(sla[:, 1] * 0.42), 0.9) * (1 + 0.4 * s_k)).astype(np.int64)
    first_response = created + resp * 60
    resolved = created + solve * 60
    closed = resolved + np.where(rng.random(k) < 0.6, rng.integers(60, 3600, k), rng.integers(3600, 3 * DAY, k))
    # who works it
    employed = (t.hire_day[None, :] <= day[:, None]) & ((t.term_day[None, :] == NULL) |
                                                       (t.term_day[None, :] >= day[:, None]))
    avail = t.available[:, day].T.astype(float)
    skill_ok = (level[:, None] <= t.skill[:, skill].T).astype(float)
    role = t.role[None, :]
    pref = np.where(level[:, None] <= 2, np.array([3.0, 1.0, 0.35, 0.6])[role], np.array([0.3, 1.5, 2.0, 0.8])[role])
    pref = np.where(onsite[:, None], np.where(role == 3, 5.0, 0.4), pref)
    tech = assign(rng, avail, employed.astype(float), skill_ok, pref)
    # how long it takes
    median = (np.asarray(catalog.CATEGORY_HOURS)[cat] * np.array([0.8, 1.0, 1.3, 1.8])[pri] * c.effort[client]
              * (1 + 0.45 * s_k + 0.3 * p_k) + onsite * 0.6)
    total10 = np.maximum(1, np.round(rng.lognormal(np.log(median), 0.55) * 10)).astype(np.int64)
    # CSAT on closing
    happy = c.happy[client] * (1 - 0.6 * s_k - 0.45 * p_k)
    u = rng.random(k)
    rating = np.where(u < happy, 5, np.where(u < happy + (1 - happy) * 0.45, 4,
                                             np.where(u < happy + (1 - happy) * 0.7, 3,
                                                      np.where(u < happy + (1 - happy) * 0.87, 2, 1))))
    answered = rng.random(k) < 0.3
    seq0 = w.state.get("ticket_seq", 0)
    w.state["ticket_seq"] = seq0 + k
    order = np.lexsort((client, created))
    tid = np.empty(k, dtype=np.int64)
    tid[order] = seq0 + np.arange(k) + 1
    contact = _contact(w, rng, client, day)
    sites = w.sites
    site = sites.offset[client] + np.where(rng.random(k) < 0.6, 0, rng.integers(0, 1 << 30, k) % sites.count[client])
    subjects = np.empty(k, dtype=object)
    for ci, name in enumerate(catalog.CATEGORIES):  # ten categories
        sel = cat == ci
        opts = np.asarray(catalog.SUBJECTS[name], dtype=object)
        subjects[sel] = opts[rng.integers(0, len(opts), sel.sum())]
    source = np.where(np.isin(cat, [7, 8]) & (rng.random(k) < 0.6), 3, rng.choice(3, k, p=[0.5, 0.3, 0.2]))
    tickets = {"tid": tid, "client": client, "contact": contact, "site": site, "tech": tech, "subject": subjects,
               "cat": cat, "pri": pri, "source": source, "skill": skill, "level": level, "onsite": onsite,
               "billable": billable, "sla": sla, "created": created, "first_response": first_response,
               "resolved": resolved, "closed": closed, "rating": np.where(answered, rating, NULL)}
    _emit_tickets(w, sinks, tickets)
    _ticket_entries(w, rng, sinks, book, tickets, total10)
    _other_work(w, m, sinks, book)


def _contact(w, rng, client, day):
    ct = w.contacts
    j = ct.offset[client] + rng.integers(0, 1 << 30, len(client)) % ct.count[client]
    ok = (ct.created[j] <= day) & ((ct.archived[j] == NULL) | (ct.archived[j] > day))
    first = ct.offset[client]
    primary_gone = (ct.archived[first] != NULL) & (ct.archived[first] <= day)
    fallback = np.where(primary_gone & (ct.count[client] > 1), first + 1, first)
    return np.where(ok, j, fallback)


def _emit_tickets(w, sinks, tk) -> None:
    k = len(tk["tid"])
    created_day = tk["created"] // DAY
    closed_day = tk["closed"] // DAY
    end_of_day = (created_day + 1) * DAY

    def state(at_end: np.ndarray, final: bool):
        fr = np.where(tk["first_response"] < at_end, tk["first_response"], NULL)
        rs = np.where(tk["resolved"] < at_end, tk["resolved"], NULL)
        cl = np.where(tk["closed"] < at_end, tk["closed"], NULL)
        status = np.where(cl != NULL, 3, np.where(rs != NULL, 2, np.where(fr != NULL, 1, 0)))
        resp_met = np.where(fr != NULL, (tk["first_response"] <= tk["created"] + tk["sla"][:, 0] * 60).astype(
            np.int8), -1)
        res_met = np.where(rs != NULL, (tk["resolved"] <= tk["created"] + tk["sla"][:, 1] * 60).astype(np.int8), -1)
        rating = np.where(cl != NULL, tk["rating"], NULL)
        updated = np.maximum.reduce([tk["created"], np.where(fr == NULL, 0, fr), np.where(rs == NULL, 0, rs),
                                     np.where(cl == NULL, 0, cl)])
        return fr, rs, cl, status, resp_met, res_met, rating, updated

    rows = []
    rows.append((np.arange(k), created_day, state(end_of_day, False)))
    later = np.flatnonzero(closed_day > created_day)
    big = np.full(k, np.iinfo(np.int64).max // 4)
    rows.append((later, closed_day[later], tuple(a[later] for a in state(big, True))))
    sink = sinks["tickets"]
    for sel, day, (fr, rs, cl, status, rm, sm, rating, upd) in rows:
        c = tk["client"][sel]
        sink.add(day, tk["created"][sel],
                 ticket_id=ids(*TICKET_ID, tk["tid"][sel]), ticket_number=100_000 + tk["tid"][sel],
                 client_id=cid(c), contact_id=ids(*CONTACT_ID, tk["contact"][sel] + 1),
                 site_id=ids(*SITE_ID, tk["site"][sel] + 1), agreement_id=ids(*AGREEMENT_ID, c + 1),
                 assigned_technician_id=ids(*TECH_ID, tk["tech"][sel] + 1), subject=tk["subject"][sel],
                 category=pick(catalog.CATEGORIES, tk["cat"][sel]), priority=pick(catalog.PRIORITIES, tk["pri"][sel]),
                 source=pick(catalog.SOURCES, tk["source"][sel]),
                 status=pick(("new", "in_progress", "resolved", "closed"), status),
                 required_skill=pick(_skills(), tk["skill"][sel]), required_skill_level=tk["level"][sel],
                 onsite=tk["onsite"][sel], billable=tk["billable"][sel], sla_response_minutes=tk["sla"][sel, 0],
                 sla_resolution_minutes=tk["sla"][sel, 1], created_at=tk["created"][sel], first_response_at=fr,
                 response_due_at=tk["created"][sel] + tk["sla"][sel, 0] * 60, resolved_at=rs,
                 resolution_due_at=tk["created"][sel] + tk["sla"][sel, 1] * 60, closed_at=cl,
                 response_sla_met=rm, resolution_sla_met=sm, csat_rating=rating, updated_at=upd)


def _skills():
    from lakehouse.synth.staff import SKILLS

    return SKILLS


def _ticket_entries(w, rng, sinks, book, tk, total10) -> None:
    """Split each ticket's hours into 1-3 entries between the day it opened and the day it was resolved."""
    k = len(total10)
    n_e = 1 + ((total10 > 15) & (rng.random(k) < 0.5)) + ((total10 > 30) & (rng.random(k) < 0.5))
    n_e = np.minimum(n_e, total10)
    owner = np.repeat(np.arange(k), n_e)
    first = np.concatenate([[0], np.cumsum(n_e)[:-1]])
    j = np.arange(len(owner)) - first[owner]
    share = np.where(j == n_e[owner] - 1, 0, np.floor(total10[owner] / n_e[owner]))
    hours10 = share.astype(np.int64)
    done = np.zeros(k, dtype=np.int64)
    np.add.at(done, owner, hours10)
    last = j == n_e[owner] - 1
    hours10[last] = total10[owner[last]] - done[owner[last]]
    cday = tk["created"][owner] // DAY
    rday = np.maximum(tk["resolved"][owner] // DAY, cday)
    day = cday + (j * (rday - cday)) // n_e[owner]
    start = np.where(j == 0, tk["first_response"][owner],
                     day * DAY + rng.integers(15 * 3600, 21 * 3600, len(owner)))
    start = np.maximum(start, day * DAY)
    start = np.minimum(start, (day + 1) * DAY - hours10 * 360 - 1)
    start = np.maximum(start, day * DAY)
    work_type = np.where(tk["onsite"][owner], 3, 0)
    billable = rng.random(len(owner)) > 0.06
    _emit_entries(w, sinks, book, tech=tk["tech"][owner], client=tk["client"][owner], ticket=tk["tid"][owner],
                  project=np.full(len(owner), -1), day=day, start=start, hours10=hours10, billable=billable,
                  work_type=work_type, invoiced=billable & tk["billable"][owner])


WORK_TYPES = ("reactive", "proactive", "project", "onsite")


def _employed_on(w, tech: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Only people employed on the work date log time: others' entries go to a colleague who is."""
    t = w.techs
    end = np.where(t.term_day == NULL, 10**9, t.term_day)
    bad = (t.hire_day[tech] > day) | (end[tech] < day)
    if not bad.any():
        return tech
    tech = tech.copy()
    for i in np.flatnonzero(bad):  # rare: work that spills past a leaver's last day, or before a hire
        ok = np.flatnonzero((t.hire_day <= day[i]) & (end >= day[i]))
        tech[i] = ok[int(hash_uniform(w.seed, "stand-in", day[i], i)[0] * len(ok))]
    return tech


def _time_and_materials(w, client, day, hours10) -> None:
    """Hours to invoice in arrears, per month of work (simulation state, read by billing)."""
    tm = w.state.setdefault("tm_hours10", {})
    months = w.tl.month_of(day)
    for m in np.unique(months[hours10 > 0]):
        acc = tm.setdefault(int(m), np.zeros(w.clients.n, dtype=np.int64))
        sel = (months == m) & (hours10 > 0)
        np.add.at(acc, client[sel], hours10[sel])


def _emit_entries(w, sinks, book, tech, client, ticket, project, day, start, hours10, billable, work_type,
                  invoiced) -> None:
    n = len(tech)
    if n == 0:
        return
    tech = _employed_on(w, tech, day)
    seq0 = w.state.get("entry_seq", 0)
    w.state["entry_seq"] = seq0 + n
    eid = seq0 + np.arange(n) + 1
    rate = w.techs.rate_on(tech, day, w.tl)
    book.labour(client, day, hours10, hours10 * rate // 10)
    _time_and_materials(w, client, day, np.where(invoiced, hours10, 0))
    notes = np.asarray([NOTES[x] for x in WORK_TYPES], dtype=object)[work_type]
    sinks["time_entries"].add(day, start, time_entry_id=ids(*ENTRY_ID, eid), technician_id=ids(*TECH_ID, tech + 1),
                              client_id=cid(client), agreement_id=ids(*AGREEMENT_ID, client + 1),
                              ticket_id=ids(*TICKET_ID, np.where(ticket > 0, ticket, -1)),
                              project_id=ids(*PROJECT_ID, np.where(project >= 0, project + 1, -1)), work_date=day,
                              start_time=start, end_time=start + hours10 * 360, hours=hours10 * 10,
                              billable=billable, work_type=pick(WORK_TYPES, work_type), notes=notes,
                              created_at=start + hours10 * 360 + 300)


def _other_work(w, m, sinks, book) -> None:
    """Proactive maintenance (managed clients, every month) and project hours falling in month m."""
    tl, c, t = w.tl, w.clients, w.techs
    d0, d1 = tl.month_range(m)
    d1 = min(d1, tl.n_days)
    rng = stream(w.seed, "proactive", m)
    bdays = np.flatnonzero(tl.business[d0:d1]) + d0
    who = np.flatnonzero(c.active_on(d0) & (c.ctype != 2))
    if len(bdays) and len(who):
        hours10 = np.maximum(5, np.round(c.endpoints[who] * 0.05 * 10 * rng.uniform(0.8, 1.2, len(who))))
        n_e = np.ceil(hours10 / 30).astype(np.int64)
        owner = np.repeat(np.arange(len(who)), n_e)
        first = np.concatenate([[0], np.cumsum(n_e)[:-1]])
        j = np.arange(len(owner)) - first[owner]
        h = np.where(j < n_e[owner] - 1, 30, hours10[owner] - 30 * (n_e[owner] - 1)).astype(np.int64)
        day = bdays[rng.integers(0, len(bdays), len(owner))]
        day = np.minimum(day, np.where(c.end_day[who[owner]] == NULL, 10**9, c.end_day[who[owner]]))
        employed = ((t.hire_day[None, :] <= day[:, None]) &
                    ((t.term_day[None, :] == NULL) | (t.term_day[None, :] >= day[:, None]))).astype(float)
        skill_ok = (t.skill[:, 4][None, :] >= 2).astype(float).repeat(len(day), 0)
        pref = np.array([0.3, 2.0, 1.0, 0.2])[t.role][None, :].repeat(len(day), 0)
        tech = assign(rng, t.available[:, day].T.astype(float), employed, skill_ok, pref)
        start = day * DAY + rng.integers(15 * 3600, 20 * 3600, len(day))
        _emit_entries(w, sinks, book, tech=tech, client=who[owner], ticket=np.zeros(len(day), np.int64),
                      project=np.full(len(day), -1), day=day, start=start, hours10=h,
                      billable=np.ones(len(day), bool), work_type=np.ones(len(day), np.int64),
                      invoiced=np.zeros(len(day), bool))
    pe = w.project_entries
    lo, hi = np.searchsorted(pe["day"], [d0, d1])
    if hi > lo:
        s = {k: v[lo:hi] for k, v in pe.items()}
        _emit_entries(w, sinks, book, tech=s["tech"], client=s["client"], ticket=np.zeros(hi - lo, np.int64),
                      project=s["project"], day=s["day"], start=s["start"], hours10=s["hours10"],
                      billable=np.ones(hi - lo, bool), work_type=np.full(hi - lo, 2),
                      invoiced=~w.projects.fixed[s["project"]])


def plan_project_entries(w) -> dict:
    """Every project's time entries, planned once (a few per project), sorted by work date."""
    p, tl, t = w.projects, w.tl, w.techs
    rng = stream(w.seed, "project-entries")
    n = len(p.client)
    n_e = np.maximum(1, np.ceil(p.actual10 / 35)).astype(np.int64)
    owner = np.repeat(np.arange(n), n_e)
    first = np.concatenate([[0], np.cumsum(n_e)[:-1]]) if n else np.zeros(0, int)
    j = np.arange(len(owner)) - first[owner]
    h = np.where(j < n_e[owner] - 1, 35, p.actual10[owner] - 35 * (n_e[owner] - 1)).astype(np.int64)
    span = np.maximum(p.completed - p.start, 1)
    day = p.start[owner] + (j * span[owner]) // n_e[owner]
    day = tl.business_day_on_or_after(day)
    end = np.where(w.clients.end_day[p.client[owner]] == NULL, 10**9, w.clients.end_day[p.client[owner]])
    keep = (day < tl.n_days) & (day <= end)
    owner, day, h = owner[keep], day[keep], h[keep]
    lead = np.flatnonzero(np.isin(t.role, [1, 2, 3]))
    tech_of_project = lead[rng.integers(0, len(lead), n)] if len(lead) else np.zeros(n, int)
    start = day * DAY + rng.integers(15 * 3600, 20 * 3600, len(day))
    order = np.argsort(day, kind="stable")
    return {"day": day[order], "project": owner[order], "client": p.client[owner][order],
            "tech": tech_of_project[owner][order], "start": start[order], "hours10": h[order]}

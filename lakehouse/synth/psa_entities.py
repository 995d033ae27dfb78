"""Change exports of the PSA's entity tables: clients, contacts, sites, agreements, additions,
technicians, cost rates, time off and projects.

Each entity produces a row on the day it is created (day 0 for what existed before the first export)
and on every day it changes, carrying its full state after the change.
"""

from __future__ import annotations

import numpy as np

from lakehouse.synth import catalog, names, staff
from lakehouse.synth.clients import AGREEMENT_TYPES, CYCLES, TYPES
from lakehouse.synth.contacts_sites import PROJECT_NAMES, PROJECT_TYPES, TITLES
from lakehouse.synth.rows import Rows, clock
from lakehouse.synth.textfmt import NULL, ids

CLIENT_ID = ("CL-", 5)
CONTACT_ID = ("CT-", 6)
SITE_ID = ("ST-", 5)
AGREEMENT_ID = ("AG-", 5)
ADDITION_ID = ("AD-", 6)
TECH_ID = ("TC-", 4)
RATE_ID = ("CR-", 5)
PTO_ID = ("PT-", 6)
PROJECT_ID = ("PJ-", 5)
LEAD_ID = ("LD-", 6)


def cid(i):
    return ids(*CLIENT_ID, np.asarray(i) + 1)


def emit_clients(w, sinks) -> None:
    c, s = w.clients, w.seed
    r = Rows()
    idx = np.arange(c.n)
    created_ts = clock(s, "client-created", c.created_day, idx)

    def add(sel, day, status, archived):
        i = idx[sel]
        r.add(_day=day[sel] if isinstance(day, np.ndarray) else np.full(len(i), day), _i=i, status=np.full(
            len(i), status, dtype=object), archived_at=archived[sel] if isinstance(archived, np.ndarray)
            else np.full(len(i), archived, dtype=np.int64))

    everyone = np.ones(c.n, dtype=bool)
    add(everyone, c.created_day, "active", NULL)
    ch = c.churner
    add(ch, c.notice_day, "notice_given", NULL)
    archived_ts = clock(s, "client-archived", c.end_day + 1, idx)
    add(ch, c.end_day + 1, "inactive", archived_ts)
    f = r.frame()
    i = f["_i"]
    upd = clock(s, "client-updated", f["_day"], i)
    upd = np.where(f["status"] == "active", created_ts[i], upd)
    r2 = Rows()
    r2.add(_day=f["_day"], _order=i, client_id=cid(i).to_numpy(zero_copy_only=False),
           client_name=c.name[i], client_type=np.asarray(TYPES, dtype=object)[c.ctype[i]],
           industry=np.asarray(names.INDUSTRIES, dtype=object)[c.industry[i]], employee_count=c.employees[i],
           hourly_rate=c.hourly_rate[i], net_terms=c.net_terms[i],
           billing_cycle=np.asarray(CYCLES, dtype=object)[c.cycle[i]], currency="USD", status=f["status"],
           referral_lead_id=ids(*LEAD_ID, np.where(c.lead[i] >= 0, c.lead[i] + 1, -1)).to_numpy(
               zero_copy_only=False), created_at=created_ts[i], archived_at=f["archived_at"], updated_at=upd)
    r2.emit(sinks["clients"], "client_id", order="_order")


def emit_contacts(w, sinks) -> None:
    ct, s = w.contacts, w.seed
    n = len(ct.client)
    idx = np.arange(n)
    created_ts = clock(s, "contact-created", ct.created, idx)
    emails = np.asarray([f"{a.lower()}.{b.lower()}@{names.slug(w.clients.name[k])}.com"
                         for a, b, k in zip(ct.first, ct.last, ct.client, strict=True)], dtype=object)
    r = Rows()
    base = {"first_name": ct.first, "last_name": ct.last, "email": emails, "phone": ct.phone,
                "title": np.asarray(TITLES, dtype=object)[ct.title], "is_billing": ct.billing}

    def add(sel, day, primary, status, archived, upd):
        i = idx[sel]
        r.add(_day=day[sel], _order=i, contact_id=ids(*CONTACT_ID, i + 1).to_numpy(zero_copy_only=False),
              client_id=cid(ct.client[i]).to_numpy(zero_copy_only=False),
              **{k: v[i] for k, v in base.items()}, is_primary=primary[sel], status=np.full(len(i), status,
                                                                                          dtype=object),
              created_at=created_ts[i], archived_at=archived[sel], updated_at=upd[sel])

    none = np.full(n, NULL, dtype=np.int64)
    add(np.ones(n, bool), ct.created, ct.primary, "active", none, created_ts)
    promo = ct.promoted != NULL
    add(promo, ct.promoted, np.ones(n, bool), "active", none, clock(s, "contact-promoted", ct.promoted, idx))
    gone = ct.archived != NULL
    arch_ts = clock(s, "contact-archived", ct.archived, idx)
    add(gone, ct.archived, ct.primary | promo, "archived", arch_ts, arch_ts)
    r.emit(sinks["contacts"], "contact_id", order="_order")


def emit_sites(w, sinks) -> None:
    st, c = w.sites, w.clients
    n = len(st.client)
    i = np.arange(n)
    city = names.CITIES
    created = clock(w.seed, "client-created", c.created_day[st.client], st.client)
    r = Rows()
    r.add(_day=c.created_day[st.client], _order=i, site_id=ids(*SITE_ID, i + 1).to_numpy(zero_copy_only=False),
          client_id=cid(st.client).to_numpy(zero_copy_only=False),
          site_name=np.where(st.primary, "Head office",
                             np.asarray([f"{city[x][0]} office" for x in st.city], dtype=object)),
          address_line=np.asarray([f"{num} {names.STREETS[x]}" for num, x in zip(st.number, st.street, strict=True)],
                                  dtype=object),
          city=np.asarray([city[x][0] for x in st.city], dtype=object),
          state=np.asarray([city[x][1] for x in st.city], dtype=object),
          postal_code=np.asarray([f"{city[x][2]}{(num % 90) + 10:02d}" for x, num in zip(st.city, st.number,
                                                                                         strict=True)], dtype=object),
          country="US", latitude=np.round(st.lat * 1e6).astype(np.int64),
          longitude=np.round(st.lon * 1e6).astype(np.int64), is_primary=st.primary, created_at=created,
          updated_at=created)
    r.emit(sinks["sites"], "site_id", order="_order")


def emit_agreements(w, sinks) -> None:
    """Creation, renewals (end_date moves), January price changes, notice and termination."""
    c, tl, s = w.clients, w.tl, w.seed
    r = Rows()
    for i in range(c.n):  # one pass per client: a handful of events each
        ctype = c.ctype[i]
        events = [(int(c.created_day[i]), "create")]
        end = int(c.term_end[i]) if c.term_end[i] != NULL else NULL
        if ctype != 2:
            for y in range(1, c.mrr.shape[1]):
                jan1 = tl.day_of(type(tl.start)(tl.start.year + y, 1, 1))
                if jan1 < tl.n_days and c.mrr[i, y] != c.mrr[i, y - 1] and jan1 > c.created_day[i] and \
                        (c.end_day[i] == NULL or jan1 <= c.end_day[i]):
                    events.append((jan1, "price"))
            if not c.churner[i]:
                e = end
                while e != NULL and e < tl.n_days:
                    day = e + 1 if c.renewal_mode[i] == 2 else e - 20
                    events.append((max(day, int(c.created_day[i]) + 1), "renew"))
                    e = int(tl.last_day(tl.month_of(e) + c.term_months[i]))
            else:
                events.append((int(c.notice_day[i]), "notice"))
                events.append((int(c.end_day[i]) + 1, "terminate"))
        events.sort()
        status, notice = "active", NULL
        for day, kind in events:
            if kind == "renew":
                end = int(tl.last_day(tl.month_of(end) + c.term_months[i]))
            elif kind == "notice":
                status, notice = "notice_given", day
            elif kind == "terminate":
                status = "terminated"
            y = int(np.clip(tl.calendar_year(tl.month_of(max(day, 0))) - tl.start.year, 0, c.mrr.shape[1] - 1))
            r.add(_day=[day], _order=[i], _i=[i], status=[status], end_date=[end if ctype != 2 else NULL],
                  mrr=[int(c.mrr[i, y])], notice_date=[notice], _kind=[kind])
    f = r.frame()
    i = f["_i"].astype(np.int64)
    created = clock(s, "client-created", c.created_day[i], i)
    upd = np.where(f["_kind"] == "create", created, clock(s, "agreement-updated", f["_day"], i))
    atype = np.asarray(AGREEMENT_TYPES, dtype=object)[c.ctype[i]]
    out = Rows()
    out.add(_day=f["_day"], _order=i, agreement_id=ids(*AGREEMENT_ID, i + 1).to_numpy(zero_copy_only=False),
            client_id=cid(i).to_numpy(zero_copy_only=False),
            agreement_name=np.asarray([f"{t.replace('_', ' ').title()} - {c.name[k]}" for t, k in zip(atype, i,
                                                                                                      strict=True)],
                                      dtype=object),
            agreement_type=atype, status=f["status"], start_date=c.start_day[i], end_date=f["end_date"],
            term_months=np.where(c.term_months[i] > 0, c.term_months[i], NULL),
            renewal_mode=np.asarray(["none", "manual", "auto"], dtype=object)[c.renewal_mode[i]],
            renewal_term_months=np.where(c.term_months[i] > 0, c.term_months[i], NULL),
            notice_period_days=c.notice_period[i], billing_cycle=np.asarray(CYCLES, dtype=object)[c.cycle[i]],
            mrr=f["mrr"], hourly_rate=c.hourly_rate[i],
            sla_tier=np.where(c.sla_premium[i], "premium", "standard").astype(object),
            notice_date=f["notice_date"], created_at=created, updated_at=upd)
    out.emit(sinks["agreements"], "agreement_id", order="_order")


def emit_additions(w, sinks) -> None:
    a, s = w.additions, w.seed
    n = len(a.client)
    i = np.arange(n)
    created = clock(s, "addition-created", a.created, i)
    r = Rows()
    prod = catalog.ADDITIONS
    common = {"addition_id": ids(*ADDITION_ID, i + 1).to_numpy(zero_copy_only=False),
                  "agreement_id": ids(*AGREEMENT_ID, a.client + 1).to_numpy(zero_copy_only=False),
                  "client_id": cid(a.client).to_numpy(zero_copy_only=False),
                  "product_code": np.asarray([prod[p][0] for p in a.product], dtype=object),
                  "product_name": np.asarray([prod[p][1] for p in a.product], dtype=object),
                  "quantity": a.quantity, "unit_cost": a.unit_cost, "unit_price": a.unit_price,
                  "effective_date": a.effective, "created_at": created}
    r.add(_day=a.created, _order=i, **common, cancelled_date=np.full(n, NULL), updated_at=created)
    has = a.cancel_export != NULL
    sel = np.flatnonzero(has)
    r.add(_day=a.cancel_export[sel], _order=sel, **{k: v[sel] for k, v in common.items()},
          cancelled_date=a.cancelled[sel], updated_at=clock(s, "addition-cancelled", a.cancel_export[sel], sel))
    r.emit(sinks["agreement_additions"], "addition_id", order="_order")


def emit_technicians(w, sinks) -> None:
    t, s, tl = w.techs, w.seed, w.tl
    i = np.arange(t.n)
    emails = np.asarray([f"{a.lower()}.{b.lower()}@northstar-it.com" for a, b in zip(t.first, t.last, strict=True)],
                        dtype=object)
    hired = clock(s, "tech-hired", t.hire_day, i)
    common = {"technician_id": ids(*TECH_ID, i + 1).to_numpy(zero_copy_only=False), "first_name": t.first,
                  "last_name": t.last, "email": emails, "role": np.asarray(staff.ROLES, dtype=object)[t.role],
                  "skills": staff.skills_text(t.skill), "home_latitude": np.round(t.lat * 1e6).astype(np.int64),
                  "home_longitude": np.round(t.lon * 1e6).astype(np.int64), "hours_per_week": t.hours_per_week,
                  "hire_date": t.hire_day}
    r = Rows()
    r.add(_day=t.hire_day, _order=i, **common, termination_date=np.full(t.n, NULL),
          status=np.full(t.n, "active", dtype=object), updated_at=hired)
    sel = np.flatnonzero(t.term_day != NULL)
    r.add(_day=t.term_day[sel], _order=sel, **{k: v[sel] for k, v in common.items()},
          termination_date=t.term_day[sel], status=np.full(len(sel), "terminated", dtype=object),
          updated_at=clock(s, "tech-left", t.term_day[sel], sel))
    r.emit(sinks["technicians"], "technician_id", order="_order")
    # cost rates: one row per technician and calendar year, closed when the next year's rate starts
    r = Rows()
    k = 0
    for y in range(t.years):
        jan1 = tl.day_of(type(tl.start)(tl.start.year + y, 1, 1))
        if jan1 >= tl.n_days:
            break
        nxt = tl.day_of(type(tl.start)(tl.start.year + y + 1, 1, 1))
        end_emp = np.where(t.term_day == NULL, 10**9, t.term_day)
        active = (t.hire_day < nxt) & (end_emp >= jan1)
        sel = np.flatnonzero(active)
        eff = np.maximum(jan1, t.hire_day[sel])
        rid = k + np.arange(len(sel))
        k += t.n
        rows = {"cost_rate_id": ids(*RATE_ID, rid + 1).to_numpy(zero_copy_only=False),
                    "technician_id": ids(*TECH_ID, sel + 1).to_numpy(zero_copy_only=False), "cost_rate": t.rate[sel, y],
                    "currency": "USD", "effective_from": eff}
        r.add(_day=eff, _order=rid, **rows, effective_to=np.full(len(sel), NULL),
              updated_at=clock(s, "rate-set", eff, sel))
        closes = nxt < tl.n_days
        if closes:
            later = (t.hire_day < nxt + 365) & (end_emp >= nxt)  # still employed next year
            c_sel = np.flatnonzero(later[sel])
            r.add(_day=np.full(len(c_sel), nxt), _order=rid[c_sel], **{a: (b[c_sel] if isinstance(b, np.ndarray)
                                                                            else b) for a, b in rows.items()},
                  effective_to=np.full(len(c_sel), nxt - 1), updated_at=clock(s, "rate-closed", np.full(
                      len(c_sel), nxt), sel[c_sel]))
    r.emit(sinks["technician_cost_rates"], "cost_rate_id", order="_order")
    # time off
    p = t.pto
    n = len(p["tech"])
    j = np.arange(n)
    req = clock(s, "pto-requested", p["requested"], j)
    r = Rows()
    r.add(_day=p["requested"], _order=j, pto_id=ids(*PTO_ID, j + 1).to_numpy(zero_copy_only=False),
          technician_id=ids(*TECH_ID, p["tech"] + 1).to_numpy(zero_copy_only=False),
          pto_type=np.asarray(["vacation", "sick", "holiday", "training"], dtype=object)[p["type"]],
          start_date=p["start"], end_date=p["end"], hours=p["hours10"] * 10, status="approved", requested_at=req)
    r.emit(sinks["technician_pto"], "pto_id", order="_order")


def emit_projects(w, sinks) -> None:
    p, s = w.projects, w.seed
    n = len(p.client)
    i = np.arange(n)
    created = clock(s, "project-created", p.created, i)
    common = {"project_id": ids(*PROJECT_ID, i + 1).to_numpy(zero_copy_only=False),
                  "client_id": cid(p.client).to_numpy(zero_copy_only=False),
                  "agreement_id": ids(*AGREEMENT_ID, p.client + 1).to_numpy(zero_copy_only=False),
                  "project_name": np.asarray([f"{PROJECT_NAMES[PROJECT_TYPES[t]]} - {w.clients.name[c]}"
                                           for t, c in zip(p.ptype, p.client, strict=True)], dtype=object),
                  "project_type": np.asarray(PROJECT_TYPES, dtype=object)[p.ptype],
                  "billing_method": np.where(p.fixed, "fixed_fee", "time_and_materials").astype(object),
                  "start_date": p.start, "due_date": p.due, "budget_hours": p.budget10 * 10, "fixed_fee": p.fee,
                  "created_at": created}
    r = Rows()
    for status, day, done in (("planned", p.created, NULL), ("active", p.start, NULL),
                              ("completed", p.completed, p.completed)):
        r.add(_day=day, _order=i, **common, status=np.full(n, status, dtype=object),
              completed_date=np.full(n, done) if not isinstance(done, np.ndarray) else done,
              updated_at=clock(s, f"project-{status}", day, i))
    r.emit(sinks["projects"], "project_id", order="_order")

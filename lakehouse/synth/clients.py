"""Clients and what they buy: size, agreement, bundled additions, contacts, sites, and their fate.

Fates are planted here, before anything is simulated: which clients lose money (underpriced and
over-consuming), which will give notice (and when the signals start), which go through a rough patch
and stay (the noise that keeps churn signals from being perfect).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakehouse.synth import catalog, names
from lakehouse.synth.rng import stream
from lakehouse.synth.scales import Scale
from lakehouse.synth.textfmt import NULL
from lakehouse.synth.timeline import Timeline

TYPES = ("managed", "co_managed", "break_fix")
AGREEMENT_TYPES = ("managed_services", "co_managed", "break_fix")
CYCLES = ("monthly", "quarterly", "annual")
CYCLE_MONTHS = np.array([1, 3, 12])
#: hours of technician work one endpoint needs per month, reactive + proactive (calibrates client size)
HOURS_PER_ENDPOINT = 0.55
TARGET_UTILISATION = 0.70


@dataclass
class Clients:
    n: int
    n_initial: int
    name: np.ndarray
    industry: np.ndarray
    ctype: np.ndarray
    created_day: np.ndarray
    start_day: np.ndarray  #: first day of service (1st of a month)
    start_month: np.ndarray
    end_day: np.ndarray  #: last day of service (churners), else NULL
    lead: np.ndarray  #: CRM lead index the client was won from, -1 for initial clients
    workstations: np.ndarray
    servers: np.ndarray
    network: np.ndarray
    employees: np.ndarray
    users: np.ndarray
    cycle: np.ndarray
    mrr: np.ndarray  #: (n, years) monthly fee in cents for calendar year start+k
    hourly_rate: np.ndarray  #: cents
    net_terms: np.ndarray
    sla_premium: np.ndarray
    term_months: np.ndarray
    renewal_mode: np.ndarray  #: 0 none, 1 manual, 2 auto
    notice_period: np.ndarray
    term_end: np.ndarray  #: end of the term current on the client's first export day
    loss_maker: np.ndarray
    ticket_rate: np.ndarray  #: tickets per endpoint per month
    effort: np.ndarray  #: multiplier of hours per ticket
    pay_delay: np.ndarray  #: mean days late
    happy: np.ndarray  #: share of 5-star CSAT answers in normal times
    churner: np.ndarray
    notice_day: np.ndarray
    signal_day: np.ndarray
    champion_left_day: np.ndarray
    patch_start: np.ndarray  #: rough patch (non-churners), NULL if none
    patch_end: np.ndarray
    city: np.ndarray
    lat: np.ndarray
    lon: np.ndarray

    @property
    def endpoints(self) -> np.ndarray:
        return self.workstations + self.servers + self.network

    @property
    def has_agreement_fee(self) -> np.ndarray:
        return self.ctype != 2

    def active_on(self, day: int | np.ndarray) -> np.ndarray:
        """(clients,) or (clients, days): under service that day."""
        day = np.asarray(day)
        end = np.where(self.end_day == NULL, 10**9, self.end_day)
        if day.ndim == 0:
            return (self.start_day <= day) & (end >= day)
        return (self.start_day[:, None] <= day[None, :]) & (end[:, None] >= day[None, :])

    def signal(self, day: np.ndarray) -> np.ndarray:
        """(clients, days) churn signal strength 0..1: ramps from signal_day to notice_day, stays at 1."""
        day = np.asarray(day, dtype=float)[None, :]
        s = np.where(self.churner, self.signal_day, 10**9)[:, None].astype(float)
        e = np.where(self.churner, self.notice_day, 10**9 + 1)[:, None].astype(float)
        return np.clip((day - s) / np.maximum(e - s, 1), 0, 1)

    def patch(self, day: np.ndarray) -> np.ndarray:
        """(clients, days) rough-patch strength 0..1 (a triangle), for clients who stay."""
        day = np.asarray(day, dtype=float)[None, :]
        s = np.where(self.patch_start == NULL, -10**9, self.patch_start)[:, None].astype(float)
        e = np.where(self.patch_end == NULL, -10**9 + 1, self.patch_end)[:, None].astype(float)
        mid = (s + e) / 2
        return np.clip(1 - np.abs(day - mid) / np.maximum((e - s) / 2, 1), 0, 1) * 0.7

    def mrr_in_month(self, m: np.ndarray, tl: Timeline) -> np.ndarray:
        y = np.clip(tl.calendar_year(m) - tl.start.year, 0, self.mrr.shape[1] - 1)
        return self.mrr[np.arange(self.n), y]


def period_end_day(tl: Timeline, cycle: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Last day of the calendar billing period (month, quarter, year) containing ``day``."""
    m = tl.month_of(day)
    cal = tl.calendar_month(m) - 1
    months = CYCLE_MONTHS[cycle]
    last_m = m + (months - 1 - cal % months)
    return tl.last_day(last_m)


def plan_clients(scale: Scale, seed: int, tl: Timeline, techs_capacity_hours: float, won: dict) -> Clients:
    """Initial clients plus the clients won from CRM leads (``won``: lead index, won day, firmographics)."""
    rng = stream(seed, "clients")
    n0 = scale.clients
    k = len(won["lead"])
    n = n0 + k
    # size: lognormal, calibrated so the technicians are about 70 % utilised at the start
    target_endpoints = techs_capacity_hours * TARGET_UTILISATION / HOURS_PER_ENDPOINT / n0
    sigma = 0.8
    median = target_endpoints / np.exp(sigma**2 / 2)
    ep = np.clip(np.round(rng.lognormal(np.log(median), sigma, n)), 4, 900).astype(np.int64)
    ep[n0:] = np.clip(won["endpoints"], 4, 900)
    ws = np.maximum(2, np.round(ep * rng.uniform(0.84, 0.92, n))).astype(np.int64)
    srv = np.maximum((ep > 12).astype(np.int64), np.round(ep * rng.uniform(0.03, 0.09, n))).astype(np.int64)
    net = (2 + ep // 25).astype(np.int64)
    industry = rng.choice(len(names.INDUSTRIES), n, p=names.INDUSTRY_WEIGHTS / names.INDUSTRY_WEIGHTS.sum())
    industry[n0:] = won["industry"]
    employees = np.maximum(2, np.round(ws * rng.uniform(0.9, 1.3, n))).astype(np.int64)
    employees[n0:] = np.maximum(won["employees"], 2)
    users = employees + rng.integers(1, 4, n)
    ctype = rng.choice(3, n, p=[0.70, 0.12, 0.18])
    ctype[n0:] = rng.choice(2, k, p=[0.85, 0.15])
    cycle = np.where(ctype == 2, 0, rng.choice(3, n, p=[0.65, 0.22, 0.13]))
    # fates
    loss = (rng.random(n) < 0.06) & (ctype != 2)
    cand = np.flatnonzero(ctype[:n0] != 2)
    if cand.size and not loss[:n0].any():
        loss[cand[0]] = True
    premium = rng.random(n) < 0.2
    price = np.where(ctype == 0, rng.lognormal(np.log(60), 0.18, n), rng.lognormal(np.log(36), 0.15, n))
    price = np.where(loss, price * 0.55, price)
    weight = ws + srv * 3 + net * 0.5
    mrr0 = np.where(ctype == 2, 0, np.maximum(400, np.round(price * weight))).astype(np.int64) * 100
    years = (tl.n_days + 364) // 365 + 1
    mrr = np.zeros((n, years), dtype=np.int64)
    mrr[:, 0] = mrr0
    for y in range(1, years):
        inc = rng.choice([0.0, 0.03, 0.05], n, p=[0.3, 0.4, 0.3])
        mrr[:, y] = np.round(mrr[:, y - 1] * (1 + inc) / 100).astype(np.int64) * 100
    hourly = rng.integers(25, 36, n) * 500
    net_terms = rng.choice([15, 30, 45], n, p=[0.2, 0.65, 0.15])
    # when: initial clients started years ago; won clients start the month after they are won
    created = -rng.integers(40, 3000, n)
    start_month = tl.month_of(created) + 1
    created[n0:] = won["day"] + rng.integers(1, 10, k)
    start_month[n0:] = tl.month_of(created[n0:]) + 1
    start = tl.first_day(start_month)
    term = np.where(ctype == 2, 0, rng.choice([12, 24, 36], n, p=[0.4, 0.25, 0.35]))
    renewal = np.where(ctype == 2, 0, rng.choice([1, 2], n, p=[0.4, 0.6]))
    notice_period = np.where(ctype == 2, 30, rng.choice([30, 60, 90], n, p=[0.5, 0.3, 0.2]))
    months_since = np.maximum(0, -start_month)
    terms_done = np.where(term > 0, months_since // np.maximum(term, 1), 0)
    term_end = np.where(term > 0, tl.last_day(start_month + (terms_done + 1) * np.maximum(term, 1) - 1), NULL)
    # behaviour
    ticket_rate = 0.31 * rng.lognormal(0, 0.25, n) * np.where(loss, 1.7, 1.0)
    effort = rng.lognormal(0, 0.12, n) * np.where(loss, 1.35, 1.0)
    pay_delay = np.clip(rng.normal(1.5, 4, n), -8, 18) + np.where(rng.random(n) < 0.08, 12, 0)
    happy = rng.uniform(0.72, 0.92, n)
    churner, notice, signal, end, champion = _plan_churn(scale, seed, tl, n, n0, ctype, cycle, start,
                                                         notice_period, loss)
    patch_start = np.full(n, NULL, dtype=np.int64)
    patch_end = np.full(n, NULL, dtype=np.int64)
    rough = (~churner) & (ctype != 2) & (rng.random(n) < 0.18)
    patch_start[rough] = rng.integers(20, max(21, tl.n_days - 60), rough.sum())
    patch_end[rough] = patch_start[rough] + rng.integers(50, 110, rough.sum())
    city_w = np.array([c[5] for c in names.CITIES], dtype=float)
    city = rng.choice(len(names.CITIES), n, p=city_w / city_w.sum())
    lat = np.array([names.CITIES[c][3] for c in city]) + rng.normal(0, 0.03, n)
    lon = np.array([names.CITIES[c][4] for c in city]) + rng.normal(0, 0.04, n)
    name = names.companies(rng, industry)
    name[n0:] = won["name"]
    lead = np.full(n, -1, dtype=np.int64)
    lead[n0:] = won["lead"]
    # a churner's current term ends when its service ends
    term_end = np.where(churner, end, term_end)
    return Clients(n, n0, name, industry, ctype, created * 1, start, start_month, end, lead, ws, srv, net,
                   employees, users, cycle, mrr, hourly, net_terms, premium, term, renewal, notice_period, term_end,
                   loss, ticket_rate, effort, pay_delay, happy, churner, notice, signal, champion, patch_start,
                   patch_end, city, lat, lon)


def _plan_churn(scale: Scale, seed: int, tl: Timeline, n: int, n0: int, ctype, cycle, start, notice_period, loss):
    """Who leaves, when they give notice, and when their signals begin (months before the notice)."""
    rng = stream(seed, "churn")
    churner = np.zeros(n, dtype=bool)
    notice = np.full(n, NULL, dtype=np.int64)
    signal = np.full(n, NULL, dtype=np.int64)
    end = np.full(n, NULL, dtype=np.int64)
    champion = np.full(n, NULL, dtype=np.int64)
    eligible = np.flatnonzero((ctype[:n0] != 2) & (start[:n0] <= 0))
    # clients whose notice falls inside the default window (the ones the demo and tests can see)
    k = min(scale.churners_in_window, len(eligible))
    lo = max(45, int(scale.days * 0.55)) if scale.days < 200 else 150
    hi = scale.days - 15
    chosen = rng.choice(eligible, k, replace=False) if k else np.array([], int)
    # one loss-maker among them when possible: unprofitable clients are likelier to leave
    notice[chosen] = rng.integers(lo, hi, k)
    # more churners spread over the rest of the horizon (about 8 % of clients a year)
    rest = np.setdiff1d(np.flatnonzero(ctype != 2), chosen)
    extra_rate = 0.08 * (tl.n_days - scale.days) / 365
    p = np.where(loss[rest], 2.0, 1.0) * extra_rate
    more = rest[rng.random(len(rest)) < p]
    notice[more] = rng.integers(scale.days, tl.n_days, len(more))
    # and a few inside the window beyond the guaranteed ones, for the larger scales
    if scale.days >= 365:
        extra = rest[(rng.random(len(rest)) < 0.04 * scale.days / 365) & ~np.isin(rest, more)]
        notice[extra] = rng.integers(150, scale.days - 15, len(extra))
        more = np.concatenate([more, extra])
    who = np.concatenate([chosen, more]).astype(np.int64)
    # the notice must come after the client started; signals need a few months of history
    who = who[notice[who] > np.maximum(start[who], 0) + 60]
    churner[who] = True
    lead_time = rng.integers(90, 160, len(who))
    # signals start 90-160 days before the notice, and never in the first month (a clean baseline to compare)
    signal[who] = np.maximum(np.maximum(start[who], 0) + 31, notice[who] - lead_time)
    # service ends at the end of the billing period that contains notice + notice period
    end[who] = period_end_day(tl, cycle[who], notice[who] + notice_period[who])
    left = who[rng.random(len(who)) < 0.6]
    champion[left] = signal[left] + ((notice[left] - signal[left]) * rng.uniform(0.2, 0.7, len(left))).astype(int)
    notice[~churner] = NULL
    return churner, notice, signal, end, champion


@dataclass
class Additions:
    client: np.ndarray
    product: np.ndarray  #: index into catalog.ADDITIONS
    quantity: np.ndarray
    unit_cost: np.ndarray  #: cents
    unit_price: np.ndarray  #: cents
    effective: np.ndarray  #: first day (1st of a month)
    cancelled: np.ndarray  #: last day or NULL
    created: np.ndarray  #: export day of the creation row
    cancel_export: np.ndarray  #: export day of the cancellation row, NULL if none


def plan_additions(seed: int, tl: Timeline, c: Clients) -> Additions:
    """Bundled products; quantities are trued up every January (close the old addition, open a new one)."""
    rng = stream(seed, "additions")
    rows = {k: [] for k in ("client", "product", "quantity", "cost", "price", "eff", "cancel", "created",
                            "cancel_export")}
    basis = {"users": c.users, "workstations": c.workstations, "servers": c.servers,
             "devices": c.workstations + c.servers, "sites": 1 + (c.endpoints > 40) + (c.endpoints > 120)}
    bp = rng.random(c.n) < 0.7  # Business Premium or Standard
    years = range(tl.start.year, tl.date_of(tl.n_days - 1).year + 1)
    for p, (_, _, unit, cost, price, take) in enumerate(catalog.ADDITIONS):
        has = (c.ctype != 2) & (rng.random(c.n) < take * np.where(c.ctype == 1, 0.6, 1.0))
        if p == 0:
            has = (c.ctype != 2) & bp
        elif p == 1:
            has = (c.ctype != 2) & ~bp
        has &= basis[unit] > 0
        idx = np.flatnonzero(has)
        qty = basis[unit][idx].astype(np.int64)
        unit_price = np.where(c.loss_maker[idx], np.round(cost * rng.uniform(0.95, 1.05, len(idx))), price)
        unit_price = unit_price.astype(np.int64)
        eff = c.start_day[idx]
        created = np.minimum(c.created_day[idx], eff)
        for y in years:  # a yearly true-up for each client that had the product the year before
            jan1 = tl.day_of(type(tl.start)(y, 1, 1))
            if y == tl.start.year:
                continue
            alive = (eff < jan1) & ((c.end_day[idx] == NULL) | (c.end_day[idx] >= jan1))
            alive &= (c.notice_day[idx] == NULL) | (c.notice_day[idx] > jan1)  # no true-up once notice is given
            drift = np.round(qty * rng.normal(1.03, 0.05, len(idx))).astype(np.int64)
            change = alive & (drift != qty) & (drift > 0)
            # close the previous addition on Dec 31 ...
            ch = np.flatnonzero(change)
            for key, val in (("client", idx[ch]), ("product", np.full(len(ch), p)), ("quantity", qty[ch]),
                             ("cost", np.full(len(ch), cost)), ("price", unit_price[ch]), ("eff", eff[ch]),
                             ("cancel", np.full(len(ch), jan1 - 1)), ("created", created[ch]),
                             ("cancel_export", np.full(len(ch), jan1))):
                rows[key].append(val)
            # ... and continue with the new quantity from Jan 1
            qty = np.where(change, drift, qty)
            eff = np.where(change, jan1, eff)
            created = np.where(change, jan1, created)
        # the open additions: end with the service of a churner
        end = c.end_day[idx]
        cancel = np.where(end == NULL, NULL, end)
        cancel_export = np.where(end == NULL, NULL, np.maximum(c.notice_day[idx] + 3, created))
        for key, val in (("client", idx), ("product", np.full(len(idx), p)), ("quantity", qty),
                         ("cost", np.full(len(idx), cost)), ("price", unit_price), ("eff", eff),
                         ("cancel", cancel), ("created", created), ("cancel_export", cancel_export)):
            rows[key].append(val)
    r = {k: np.concatenate(v).astype(np.int64) for k, v in rows.items()}
    keep = (r["cancel"] == NULL) | (r["cancel"] >= 0)  # additions that ended before the first export day
    r = {k: v[keep] for k, v in r.items()}
    order = np.lexsort((r["eff"], r["product"], r["client"]))
    r = {k: v[order] for k, v in r.items()}
    return Additions(r["client"], r["product"], r["quantity"], r["cost"], r["price"], r["eff"], r["cancel"],
                     r["created"], r["cancel_export"])

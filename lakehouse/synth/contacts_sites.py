"""People and places at each client, and the projects the MSP runs for them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakehouse.synth import names
from lakehouse.synth.clients import Clients
from lakehouse.synth.rng import stream
from lakehouse.synth.textfmt import NULL
from lakehouse.synth.timeline import Timeline

TITLES = ("Office Manager", "Owner", "Operations Director", "Controller", "Practice Administrator",
          "IT Coordinator", "CFO", "Receptionist", "Associate", "Project Manager", "HR Manager", "Analyst")
PROJECT_TYPES = ("onboarding", "migration", "hardware_refresh", "security_hardening", "network_upgrade")
PROJECT_NAMES = {"onboarding": "Onboarding", "migration": "Microsoft 365 migration",
                 "hardware_refresh": "Workstation refresh", "security_hardening": "Security hardening",
                 "network_upgrade": "Network upgrade"}


@dataclass
class Contacts:
    client: np.ndarray
    first: np.ndarray
    last: np.ndarray
    phone: np.ndarray
    title: np.ndarray
    primary: np.ndarray  #: primary from creation
    billing: np.ndarray
    created: np.ndarray  #: day
    archived: np.ndarray  #: day or NULL
    promoted: np.ndarray  #: day this contact became primary (replacing one who left), or NULL
    offset: np.ndarray  #: first contact index of each client
    count: np.ndarray


@dataclass
class Sites:
    client: np.ndarray
    city: np.ndarray
    street: np.ndarray
    number: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    primary: np.ndarray
    offset: np.ndarray
    count: np.ndarray


@dataclass
class Projects:
    client: np.ndarray
    ptype: np.ndarray
    fixed: np.ndarray  #: fixed fee (else time and materials)
    created: np.ndarray
    start: np.ndarray
    due: np.ndarray
    completed: np.ndarray
    budget10: np.ndarray  #: budget hours in tenths
    actual10: np.ndarray  #: hours actually worked, in tenths
    fee: np.ndarray  #: cents, NULL for time and materials


def plan_contacts(seed: int, tl: Timeline, c: Clients) -> Contacts:
    rng = stream(seed, "contacts")
    count = np.minimum(2 + c.endpoints // 12, 25)
    offset = np.concatenate([[0], np.cumsum(count)[:-1]])
    client = np.repeat(np.arange(c.n), count)
    k = np.arange(len(client)) - offset[client]
    n = len(client)
    first, last = names.people(rng, n)
    phone = np.asarray([f"(303) 555-{x:04d}" for x in rng.integers(100, 9999, n)], dtype=object)
    title = rng.integers(0, len(TITLES), n)
    created = np.where(rng.random(n) < 0.8, c.created_day[client],
                       c.created_day[client] + (rng.random(n) * (tl.n_days - c.created_day[client])).astype(int))
    created[k < 2] = c.created_day[client[k < 2]]
    archived = np.full(n, NULL, dtype=np.int64)
    leave = (k >= 2) & (rng.random(n) < 0.04 * tl.n_days / 365)
    archived[leave] = created[leave] + rng.integers(30, 2000, leave.sum())
    promoted = np.full(n, NULL, dtype=np.int64)
    # churners' champion leaves: the primary contact is archived and the second contact takes over
    champ = np.flatnonzero(c.champion_left_day != NULL)
    archived[offset[champ]] = c.champion_left_day[champ]
    promoted[offset[champ] + 1] = c.champion_left_day[champ]
    end = np.where(c.end_day == NULL, 10**9, c.end_day + 1)[client]
    archived = np.where((archived != NULL) & (archived >= end), NULL, archived)
    archived = np.where((archived != NULL) & (archived >= tl.n_days), NULL, archived)
    return Contacts(client, first, last, phone, title, k == 0, k == np.minimum(1, count[client] - 1), created,
                    archived, promoted, offset, count)


def plan_sites(seed: int, c: Clients) -> Sites:
    rng = stream(seed, "sites")
    count = 1 + (c.endpoints > 40) + (c.endpoints > 120) + (rng.random(c.n) < 0.1)
    offset = np.concatenate([[0], np.cumsum(count)[:-1]])
    client = np.repeat(np.arange(c.n), count)
    k = np.arange(len(client)) - offset[client]
    n = len(client)
    city_w = np.array([x[5] for x in names.CITIES], dtype=float)
    city = np.where(k == 0, c.city[client], rng.choice(len(names.CITIES), n, p=city_w / city_w.sum()))
    lat = np.where(k == 0, c.lat[client], np.array([names.CITIES[x][3] for x in city]) + rng.normal(0, 0.03, n))
    lon = np.where(k == 0, c.lon[client], np.array([names.CITIES[x][4] for x in city]) + rng.normal(0, 0.04, n))
    return Sites(client, city, rng.integers(0, len(names.STREETS), n), rng.integers(100, 9900, n), lat, lon, k == 0,
                 offset, count)


def plan_projects(seed: int, tl: Timeline, c: Clients) -> Projects:
    """Onboarding for every client won during the horizon, plus occasional projects for everyone."""
    rng = stream(seed, "projects")
    won = np.flatnonzero(c.lead >= 0)
    # onboarding: from the first day of service, fixed fee
    ob_client = won
    ob_start = c.start_day[won]
    ob_budget = np.round((8 + c.endpoints[won] * 0.45) * 10).astype(np.int64)
    # other projects: about one every three years per client
    years = tl.n_days / 365
    k = rng.poisson(0.33 * years, c.n)
    pr_client = np.repeat(np.arange(c.n), k)
    lo = np.maximum(c.start_day[pr_client], 0) + 20
    end = np.where(c.churner, c.signal_day, np.where(c.end_day == NULL, tl.n_days, c.end_day))[pr_client]
    pr_start = lo + (rng.random(len(pr_client)) * np.maximum(end - lo, 0)).astype(int)
    ok = pr_start < end - 20
    pr_client, pr_start = pr_client[ok], pr_start[ok]
    pr_budget = np.round(np.clip(rng.lognormal(np.log(12 + c.endpoints[pr_client] * 0.6), 0.35), 6, 240) * 10)
    client = np.concatenate([ob_client, pr_client]).astype(np.int64)
    start = tl.business_day_on_or_after(np.concatenate([ob_start, pr_start]).astype(np.int64))
    budget10 = np.concatenate([ob_budget, pr_budget]).astype(np.int64)
    n = len(client)
    ptype = np.concatenate([np.zeros(len(ob_client), int), rng.integers(1, 5, len(pr_client))])
    fixed = np.concatenate([np.ones(len(ob_client), bool), rng.random(len(pr_client)) < 0.6])
    duration = np.maximum(7, np.round(budget10 / 10 / 5 * rng.uniform(1.4, 2.6, n))).astype(np.int64)
    due = start + duration
    completed = due + rng.integers(-4, 15, n)
    actual10 = np.maximum(10, np.round(budget10 * rng.lognormal(0.06, 0.22, n))).astype(np.int64)
    created = start - rng.integers(7, 30, n)
    rate = c.hourly_rate[client]
    fee = np.where(fixed, (np.round(budget10 / 10 * rate * 0.9 / 5000) * 5000).astype(np.int64), NULL)
    order = np.lexsort((client, start))
    return Projects(client[order], ptype[order], fixed[order], created[order], start[order], due[order],
                    completed[order], budget10[order], actual10[order], fee[order])

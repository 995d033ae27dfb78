"""The planted world: everything decided before a single row is simulated.

``build_world`` lays out the whole horizon of a scale from the seed alone (who the clients are, when
they leave, which leads convert, which devices exist, which anomalies happen). Rows are then simulated
month by month from this plan, each month from its own random streams, so a day's rows never depend on
which days a run writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lakehouse.synth import clients, contacts_sites, crm, staff
from lakehouse.synth.scales import Scale
from lakehouse.synth.timeline import Timeline


@dataclass
class World:
    scale: Scale
    seed: int
    tl: Timeline
    techs: staff.Technicians
    leads: crm.Leads
    clients: clients.Clients
    additions: clients.Additions
    contacts: contacts_sites.Contacts
    sites: contacts_sites.Sites
    projects: contacts_sites.Projects
    endpoint_counts: np.ndarray = None  #: (clients, days) managed endpoints
    project_entries: dict = None
    extra: dict = field(default_factory=dict)  #: plans of the other sources (rmm, m365, spend, ...)
    state: dict = field(default_factory=dict)  #: simulation state carried from month to month


def build_world(scale: Scale, seed: int) -> World:
    tl = Timeline(scale.start, scale.horizon_days)
    techs = staff.plan_technicians(scale, seed, tl)
    capacity = float(np.sum(techs.hours_per_week[: scale.technicians])) * 52 / 12 * 0.85
    leads = crm.plan_leads(scale, seed, tl, scale.clients)
    cl = clients.plan_clients(scale, seed, tl, capacity, crm.won(leads, tl))
    w = World(scale, seed, tl, techs, leads, cl, clients.plan_additions(seed, tl, cl),
              contacts_sites.plan_contacts(seed, tl, cl), contacts_sites.plan_sites(seed, cl),
              contacts_sites.plan_projects(seed, tl, cl))
    from lakehouse.synth import devices, schedule, service

    devices.plan(w)
    w.project_entries = service.plan_project_entries(w)
    schedule.plan_all(w)
    return w

"""The order in which the simulation's parts run: plans, entity exports, then month by month."""

from __future__ import annotations

from lakehouse.synth import billing, cloud, contracts, crm, devices, m365, psa_entities, service, spend, vendors

#: plans of the sources other than the PSA core (world.build_world plans clients, staff, devices)
PLANS = (m365.plan, spend.plan, cloud.plan)
ENTITY_EMITTERS = (
    psa_entities.emit_clients, psa_entities.emit_contacts, psa_entities.emit_sites, psa_entities.emit_agreements,
    psa_entities.emit_additions, psa_entities.emit_technicians, psa_entities.emit_projects, crm.emit_leads,
    m365.emit_entitlements, vendors.emit_vendors, spend.emit_budgets,
)
#: billing runs after the service desk: it invoices last month's time and materials hours
MONTHLY = (service.simulate_month, devices.simulate_month, billing.simulate_month, crm.simulate_month,
           m365.simulate_month, spend.simulate_month, cloud.simulate_month)


def plan_all(w) -> None:
    for p in PLANS:
        p(w)
    w.extra["activities"] = crm.plan_activities(w.seed, w.tl, w.leads)
    w.extra["contracts"] = contracts.plan(w)


def write_documents(w, out, book, say) -> None:
    contracts.write(w, out, book, say)

"""Clean rows only point at rows that exist: a quality gate that rejects unknown keys keeps every real row."""

from __future__ import annotations

import pytest

#: (source, dataset, column) -> (source, dataset, key)
REFERENCES = {
    ("psa", "contacts", "client_id"): ("psa", "clients", "client_id"),
    ("psa", "sites", "client_id"): ("psa", "clients", "client_id"),
    ("psa", "agreements", "client_id"): ("psa", "clients", "client_id"),
    ("psa", "agreement_additions", "agreement_id"): ("psa", "agreements", "agreement_id"),
    ("psa", "invoices", "client_id"): ("psa", "clients", "client_id"),
    ("psa", "invoice_lines", "invoice_id"): ("psa", "invoices", "invoice_id"),
    ("psa", "payments", "invoice_id"): ("psa", "invoices", "invoice_id"),
    ("psa", "tickets", "client_id"): ("psa", "clients", "client_id"),
    ("psa", "tickets", "contact_id"): ("psa", "contacts", "contact_id"),
    ("psa", "tickets", "site_id"): ("psa", "sites", "site_id"),
    ("psa", "tickets", "assigned_technician_id"): ("psa", "technicians", "technician_id"),
    ("psa", "time_entries", "technician_id"): ("psa", "technicians", "technician_id"),
    ("psa", "time_entries", "ticket_id"): ("psa", "tickets", "ticket_id"),
    ("psa", "time_entries", "project_id"): ("psa", "projects", "project_id"),
    ("psa", "managed_endpoints", "client_id"): ("psa", "clients", "client_id"),
    ("psa", "technician_cost_rates", "technician_id"): ("psa", "technicians", "technician_id"),
    ("psa", "technician_pto", "technician_id"): ("psa", "technicians", "technician_id"),
    ("psa", "projects", "client_id"): ("psa", "clients", "client_id"),
    ("crm", "opportunities", "lead_id"): ("crm", "leads", "lead_id"),
    ("crm", "activities", "lead_id"): ("crm", "leads", "lead_id"),
    ("crm", "activities", "opportunity_id"): ("crm", "opportunities", "opportunity_id"),
    ("psa", "clients", "referral_lead_id"): ("crm", "leads", "lead_id"),
    ("rmm", "software_inventory", "client_id"): ("psa", "clients", "client_id"),
    ("rmm", "agent_removals", "client_id"): ("psa", "clients", "client_id"),
    ("licensing", "entitlements", "client_id"): ("psa", "clients", "client_id"),
    ("m365", "subscribed_skus", "client_id"): ("psa", "clients", "client_id"),
    ("m365", "active_user_detail", "client_id"): ("psa", "clients", "client_id"),
    ("spend", "expenses", "vendor_id"): ("vendors", "vendors", "vendor_id"),
}


@pytest.mark.parametrize("child", list(REFERENCES), ids=lambda k: f"{k[1]}.{k[2]}")
def test_clean_foreign_keys_resolve(tiny, child):
    parent = REFERENCES[child]
    values = set(tiny.rows(child[0], child[1])[child[2]]) - {""}
    keys = set(tiny.rows(parent[0], parent[1])[parent[2]])
    assert values or child[2] == "referral_lead_id", f"{child} is never filled"  # tiny may win no client
    assert values <= keys, sorted(values - keys)[:5]

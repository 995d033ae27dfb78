"""Planted churners show the signals an agent should catch, before their notice, more than other clients."""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def fates(tiny):
    clients = pd.read_csv(tiny.truth / "clients.csv", keep_default_na=False)
    churners = pd.read_csv(tiny.truth / "churners.csv", keep_default_na=False)
    assert len(churners) >= 2, "the tiny scale plants at least two churners in its window"
    stay = clients.loc[~clients["churner"] & (clients["won_from_lead_id"] == ""), "client_id"].tolist()
    return churners, stay


def test_effective_hourly_rate_falls_before_notice(tiny, fates):
    """Notice month against the first month (signals start after it); flat-fee clients only."""
    churners, stay = fates
    p = pd.read_csv(tiny.truth / "profitability_monthly.csv")
    ehr = p.pivot(index="client_id", columns="month", values="effective_hourly_rate")
    first = ehr.columns[0]
    flat = set(tiny.rows("psa", "clients").query("client_type != 'break_fix'")["client_id"])
    for c in churners.itertuples():
        m = c.notice_date[:7]
        mine = ehr.loc[c.client_id, m] / ehr.loc[c.client_id, first]
        others = (ehr.loc[[x for x in stay if x in flat], m] / ehr.loc[[x for x in stay if x in flat], first])
        assert mine < 0.8, (c.client_id, mine)
        assert mine < others.median() * 0.8, (c.client_id, mine, others.median())


def test_payments_slip_before_notice(tiny, fates):
    churners, stay = fates
    inv = tiny.rows("psa", "invoices").drop_duplicates("invoice_id")
    pay = tiny.rows("psa", "payments").merge(inv[["invoice_id", "due_date", "invoice_date"]], on="invoice_id")
    pay["late"] = (pd.to_datetime(pay["payment_date"]) - pd.to_datetime(pay["due_date"])).dt.days
    normal = pay.loc[pay["client_id"].isin(stay), "late"].mean()
    seen = 0
    for c in churners.itertuples():  # quarterly and annual billers may have no invoice paid in the window
        mine = pay[pay["client_id"] == c.client_id]
        late = mine.loc[mine["invoice_date"] >= c.signal_start_date, "late"]
        if len(late):
            seen += 1
            assert late.mean() > normal + 5, c.client_id
    assert seen, "no churner paid an invoice issued after its signals began"


def test_tickets_surge_and_satisfaction_drops(tiny, fates):
    churners, stay = fates
    t = tiny.rows("psa", "tickets")
    t["month"] = t["created_at"].str[:7]
    opened = t.drop_duplicates("ticket_id").pivot_table(index="client_id", columns="month", values="ticket_id",
                                                         aggfunc="count")
    first = opened.columns[0]
    rated = t[t["csat_rating"] != ""].copy()
    rated["r"] = rated["csat_rating"].astype(int)
    notice_month = sum(opened.loc[c.client_id, c.notice_date[:7]] for c in churners.itertuples())
    first_month = sum(opened.loc[c.client_id, first] for c in churners.itertuples())
    later = opened.columns[1:]
    others = opened.loc[stay, later].sum().sum() / len(later) / opened.loc[stay, first].sum()
    assert notice_month / first_month > max(1.3, others * 1.2)
    for c in churners.itertuples():
        late = rated[(rated["client_id"] == c.client_id) & (rated["closed_at"] >= c.signal_start_date)]
        assert late["r"].mean() < rated.loc[rated["client_id"].isin(stay), "r"].mean()


def test_rmm_canaries(tiny, fates):
    churners, stay = fates
    removals = tiny.rows("rmm", "agent_removals")
    removed = removals[removals["reason"] == "uninstalled"].groupby("client_id").size()
    sw = tiny.rows("rmm", "software_inventory")
    remote = sw[sw["software_name"].isin(["AnyDesk", "TeamViewer"]) & (sw["is_current"] == "true")]
    remote = remote.drop_duplicates("install_id").groupby("client_id").size()
    for c in churners.itertuples():
        assert removed.get(c.client_id, 0) >= 2, c.client_id
        assert remote.get(c.client_id, 0) >= 2, c.client_id
    assert sum(removed.get(c, 0) for c in stay) <= len(stay) // 2

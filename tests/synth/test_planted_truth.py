"""The tiny MSP holds at least one of everything the agents look for, and the truth agrees with the files."""

from __future__ import annotations

import pandas as pd
from pypdf import PdfReader

from lakehouse.synth.contracts import words


def test_spend_anomalies_of_each_kind_and_source(tiny):
    a = pd.read_csv(tiny.truth / "spend_anomalies.csv", keep_default_na=False)
    kinds = {(r.source, r.kind) for r in a.itertuples()}
    for source in ("expenses", "focus_costs"):
        for kind in ("spike", "level_shift", "new_service"):
            assert (source, kind) in kinds
    assert (a["impact_amount"].astype(float) > 0).all()


def test_a_spike_stands_out_in_its_department(tiny):
    a = pd.read_csv(tiny.truth / "spend_anomalies.csv", keep_default_na=False)
    spike = a[(a["source"] == "expenses") & (a["kind"] == "spike")].iloc[0]
    e = tiny.rows("spend", "expenses")
    e = e[e["department"] == spike["department"]]
    daily = e.assign(x=e["amount"].astype(float)).groupby("expense_date")["x"].sum()
    assert daily[spike["start_date"]] > 3 * daily.median()


def test_new_service_vendor_is_new(tiny):
    a = pd.read_csv(tiny.truth / "spend_anomalies.csv", keep_default_na=False)
    new = a[(a["source"] == "expenses") & (a["kind"] == "new_service")].iloc[0]
    e = tiny.rows("spend", "expenses")
    mine = e[e["vendor_id"] == new["vendor_id"]]
    assert len(mine) and mine["expense_date"].min() == new["start_date"]


def test_licence_shortfalls_and_idle_seats_are_visible(tiny):
    short = pd.read_csv(tiny.truth / "licence_shortfalls.csv", keep_default_na=False)
    assert short["planted"].any()
    s = tiny.rows("m365", "subscribed_skus")
    row = short[short["planted"]].iloc[0]
    snap = s[(s["client_id"] == row["client_id"]) & (s["sku_part_number"] == row["sku_part_number"]) &
             (s["snapshot_date"] == row["first_snapshot"])].iloc[0]
    assert int(snap["consumed_units"]) > int(snap["enabled_units"])
    idle = pd.read_csv(tiny.truth / "idle_seats.csv", keep_default_na=False)
    assert "left_company_licence_kept" in set(idle["reason"])
    u = tiny.rows("m365", "active_user_detail")
    r = idle.iloc[0]
    rep = u[(u["user_principal_name"] == r["user_principal_name"]) &
            (u["report_refresh_date"] == r["last_idle_snapshot"])]
    assert rep.iloc[0]["has_exchange_license"] == "true"


def test_converting_leads_carry_a_signal(tiny):
    leads = pd.read_csv(tiny.truth / "leads.csv", keep_default_na=False)
    assert leads["will_convert"].any() and (~leads["will_convert"]).any()
    assert leads.loc[leads["will_convert"], "p_convert"].mean() > leads.loc[~leads["will_convert"], "p_convert"].mean()
    won = leads[leads["client_id"] != ""]
    clients = tiny.rows("psa", "clients")
    assert set(won["client_id"]) <= set(clients["client_id"])
    assert set(won["lead_id"]) <= set(clients["referral_lead_id"])


def test_contract_documents_state_their_truth(tiny):
    docs = pd.read_csv(tiny.truth / "contract_documents.csv", keep_default_na=False)
    assert set(docs["format"]) == {"txt", "pdf", "scanned_pdf"}
    for d in docs.itertuples():
        path = tiny.landing / d.file
        assert path.exists()
        if d.format == "txt":
            text = path.read_text()
        else:
            reader = PdfReader(path)
            text = "\n".join(p.extract_text() or "" for p in reader.pages)
        if d.format == "scanned_pdf":
            assert len(text.strip()) < 40, "a scanned contract must have no text layer"
            assert list(reader.pages[0].images)
            continue
        assert d.vendor_name.upper() in text.upper().replace("\n", " ")
        assert str(d.term_months) in text or words(d.term_months) in text
        assert f"{float(d.stated_amount):,.2f}" in text


def test_churner_agreement_and_client_rows_follow_the_notice(tiny):
    churners = pd.read_csv(tiny.truth / "churners.csv", keep_default_na=False)
    ag = tiny.rows("psa", "agreements")
    for c in churners.itertuples():
        notice_rows = ag[(ag["client_id"] == c.client_id) & (ag["status"] == "notice_given")]
        assert notice_rows["notice_date"].iloc[0] == c.notice_date
        assert notice_rows["end_date"].iloc[0] == c.agreement_end_date

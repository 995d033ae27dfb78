"""Proposals: pricing lines that sum exactly to the totals, a golden file pinning the document's text, the
HTML and PDF renderings, the eligible opportunities of a day, and the optional Bedrock writer (botocore
Stubber: no network)."""

from __future__ import annotations

import os
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from jobs.spo import proposal as P
from jobs.spo import proposals as S
from tests.spo.conftest import frame

GOLDEN = Path(__file__).with_name("golden")

NEW_LOGO = P.Facts("OP-000123", "new_logo", "North Star Family Medicine Co", date(2025, 3, 3), industry="healthcare",
                   users=24, devices=26, sites=2, compliance_needs="HIPAA", current_it_model="break_fix",
                   owner="Nancy Powell", lead_id="LD-000024")


def facts_of_every_kind() -> list[P.Facts]:
    return [
        NEW_LOGO,
        P.Facts("OP-000124", "new_logo", "Cedar & Sons <Supply>", date(2025, 3, 3), industry="retail", users=7,
                devices=9, sites=1, compliance_needs="none", current_it_model="other_msp"),
        P.Facts("SO-0F0CF5247D", "tm_to_managed", "Oakwood Logistics PC", date(2025, 3, 3), users=87, devices=87,
                devices_estimated=True, sites=1, client_id="CL-00031", tm_monthly=1254.17,
                current_it_model="break_fix"),
        P.Facts("SO-1D9C53493E", "renewal", "Falcon Surveying LLC", date(2025, 3, 3), users=17, devices=19, sites=1,
                client_id="CL-00007", agreement_id="AG-00007", term_months=12, agreement_name="Managed Services",
                agreement_end=date(2025, 6, 30),
                current_lines=({"code": "AGREEMENT-FEE", "description": "Managed Services: monthly fee",
                                "unit": "flat", "quantity": 1, "unit_price": 1424.0, "source": "agreement"},
                               {"code": "M365-BP", "description": "Microsoft 365 Business Premium", "unit": "user",
                                "quantity": 17, "unit_price": 21.46, "source": "addition"},
                               {"code": "EDR", "description": "Managed EDR", "unit": "device", "quantity": 19,
                                "unit_price": 8.5, "source": "addition"})),
        P.Facts("SO-0175049153", "whitespace", "Cedar Engineering", date(2025, 3, 3), users=4, devices=5, sites=1,
                client_id="CL-00012", category="backup"),
    ]


@pytest.mark.parametrize("facts", facts_of_every_kind(), ids=lambda f: f"{f.kind}-{f.opportunity_id}")
def test_lines_sum_exactly_to_the_totals(facts, cfg):
    record, lines = P.build(facts, cfg)
    assert lines and record["line_count"] == len(lines)
    recurring = sum(ln["amount"] for ln in lines if ln["billing"] == "recurring")
    one_time = sum(ln["amount"] for ln in lines if ln["billing"] == "one_time")
    assert record["monthly_total"] == recurring and record["one_time_total"] == one_time
    assert record["first_year_total"] == 12 * recurring + one_time
    for ln in lines:
        assert isinstance(ln["amount"], Decimal) and ln["amount"] == (ln["quantity"] * ln["unit_price"]).quantize(
            Decimal("0.01"))
        assert ln["proposal_id"] == record["proposal_id"] == f"PR-{facts.opportunity_id}"
    # what the document prints is what the lines say
    md = P.render(record, lines, cfg)
    assert f"**${record['monthly_total']:,.2f}**" in md and f"**${record['one_time_total']:,.2f}**" in md


def test_the_bundle_follows_the_discovery_facts(cfg):
    _, with_compliance = P.build(NEW_LOGO, cfg)
    _, without = P.build(facts_of_every_kind()[1], cfg)
    codes = [ln["code"] for ln in with_compliance]
    assert codes == ["MS-DEVICE", "M365-BP", "EDR", "BKP-EP", "EMAIL-SEC", "SAT", "COMPLIANCE", "ONBOARD"]
    assert "SAT" not in [ln["code"] for ln in without] and "COMPLIANCE" not in [ln["code"] for ln in without]
    per = {ln["code"]: ln for ln in with_compliance}
    assert per["MS-DEVICE"]["quantity"] == 26 and per["MS-DEVICE"]["unit"] == "device"   # endpoints
    assert per["M365-BP"]["quantity"] == 24 and per["M365-BP"]["unit"] == "user"         # employees
    assert per["ONBOARD"]["billing"] == "one_time" and per["COMPLIANCE"]["amount"] == Decimal("2500.00")


def test_a_renewal_prices_the_agreement_as_it_is_with_the_price_change(tmp_path):
    from tests.conftest import make_settings

    cfg = make_settings(tmp_path / "h", MSP_SPO__RENEWAL_PRICE_CHANGE_PCT="3").model("spo")
    record, lines = P.build(facts_of_every_kind()[3], cfg)
    assert [(ln["code"], ln["unit_price"]) for ln in lines] == [
        ("AGREEMENT-FEE", Decimal("1466.72")), ("M365-BP", Decimal("22.10")), ("EDR", Decimal("8.76"))]
    assert record["monthly_total"] == Decimal("1466.72") + 17 * Decimal("22.10") + 19 * Decimal("8.76")
    assert "with prices changed by 3.0 %" in record["summary"]


@pytest.mark.parametrize(("name", "facts"), [("proposal_new_logo.md", NEW_LOGO),
                                           ("proposal_tm_to_managed.md", facts_of_every_kind()[2])])
def test_golden_proposal_markdown(name, facts, cfg):
    """A CRM deal's proposal and a generated opportunity's (T&M to managed), pinned word for word."""
    record, lines = P.build(facts, cfg)
    text = P.render(record, lines, cfg, "md")
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), "the proposal text changed: rerun with UPDATE_GOLDEN=1 and review"


def test_html_escapes_and_pdf_renders(cfg):
    record, lines = P.build(facts_of_every_kind()[1], cfg)
    html = P.render(record, lines, cfg, "html")
    assert "Cedar &amp; Sons &lt;Supply&gt;" in html and "<Supply>" not in html
    assert html.count("<tr>") + html.count("<tr class") == len(lines) + 3 + 1 + 4 + 1
    pdf = P.render_pdf(record, lines, cfg)
    assert pdf.startswith(b"%PDF") and pdf == P.render_pdf(record, lines, cfg)  # invariant: same bytes


def test_estimated_devices_are_said_so(cfg):
    record, lines = P.build(facts_of_every_kind()[2], cfg)
    assert "(estimated: one per user, to be counted at onboarding)" in P.render(record, lines, cfg)
    assert "has paid us $1,254.17 a month on average" in record["summary"]


# ---- the stage's choice of what to propose ----------------------------------------------------------------------
def _inputs(deals, generated=None):
    empty = {n: frame(f"processed.{n}", []) for n in ("leads", "clients", "agreements")}
    lead = {"lead_id": "LD-000001", "company_name": "Acme Dental", "industry": "healthcare", "employees": 12,
            "endpoints": 14, "locations": 1, "compliance_needs": "HIPAA", "current_it_model": "in_house",
            "lead_source": "referral", "owner": "Ann Rep", "status": "qualified", "email_opens": 1, "email_clicks": 0,
            "web_visits": 3, "form_submissions": 1, "calls": 1, "meetings": 1, "assessment_done": False,
            "created_at": "2024-01-01T10:00:00", "updated_at": "2024-01-01T22:00:00", "dt": "2024-01-01"}
    return {**empty, "leads": frame("processed.leads", [lead]),
            "opportunities": frame("processed.opportunities", deals),
            "additions": frame("processed.agreement_additions", []), "endpoints": pd.DataFrame(),
            "generated": generated if generated is not None else frame("analytics.sales_opportunities", [])}


def _deal(stage, dt):
    return {"opportunity_id": "OP-000001", "lead_id": "LD-000001", "opportunity_name": "Managed IT - Acme Dental",
            "opportunity_type": "new_logo", "stage": stage, "confidence": "medium", "mrr": 1500, "one_time_value": 600,
            "expected_close_date": "2024-03-01", "owner": "Ann Rep", "created_at": "2024-01-02T20:00:00",
            "updated_at": f"{dt}T21:00:00", "dt": dt}


def test_a_deal_gets_one_proposal_on_the_first_day_it_is_qualified(cfg):
    inputs = _inputs([_deal("identified", "2024-01-02"), _deal("qualified", "2024-01-05"),
                      _deal("assessment", "2024-01-09")])
    days = [date(2024, 1, d) for d in range(2, 12)]
    proposals, lines = S.build_all(inputs, days, set(), cfg)
    assert proposals["proposal_id"].tolist() == ["PR-OP-000001"] and proposals["dt"].tolist() == ["2024-01-05"]
    row = proposals.iloc[0]
    assert (row["company_name"], row["users"], row["devices"], row["compliance_needs"]) == ("Acme Dental", 12, 14,
                                                                                             "HIPAA")
    assert lines["amount"].sum() == row["monthly_total"] + row["one_time_total"]
    # a later run that sees it proposed before does not propose it again
    again, _ = S.build_all(inputs, [date(2024, 1, 9)], {"PR-OP-000001"}, cfg)
    assert again.empty


# ---- the optional Bedrock writer -----------------------------------------------------------------------------------
@pytest.fixture
def bedrock():
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
    with Stubber(client) as stub:
        yield client, stub


def test_bedrock_rewrites_the_summary_from_the_same_facts(bedrock, cfg):
    client, stub = bedrock
    writer = P.BedrockWriter("anthropic.claude-3-haiku-20240307-v1:0", 400, client)
    lines = P.lines_for(NEW_LOGO, cfg)
    facts = P.summary_facts(NEW_LOGO, P.totals(lines), cfg, lines)
    expected = writer.request(facts)
    assert expected["system"] == [{"text": P.SYSTEM_PROMPT}]
    assert '"monthly_total": "2850.60"' in expected["messages"][0]["content"][0]["text"]
    stub.add_response("converse", {"output": {"message": {"role": "assistant", "content": [
        {"text": "North Star Family Medicine Co gets managed IT for $2,850.60 a month."}]}}, "stopReason": "end_turn",
        "usage": {"inputTokens": 10, "outputTokens": 10, "totalTokens": 20}, "metrics": {"latencyMs": 5}}, expected)
    record, lines = P.build(NEW_LOGO, cfg, writer)
    stub.assert_no_pending_responses()
    assert record["summary"] == "North Star Family Medicine Co gets managed IT for $2,850.60 a month."
    assert record["writer"] == "bedrock:anthropic.claude-3-haiku-20240307-v1:0"
    # the prices never come from the model
    assert record["monthly_total"] == Decimal("2850.60")


def test_bedrock_failure_falls_back_to_the_template(bedrock, cfg):
    client, stub = bedrock
    stub.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
    record, _ = P.build(NEW_LOGO, cfg, P.BedrockWriter("m", 400, client))
    template, _ = P.build(NEW_LOGO, cfg)
    assert record["summary"] == template["summary"]
    assert record["writer"].startswith("template (bedrock failed")


def test_the_writer_is_the_template_unless_bedrock_is_asked_for(cfg, tmp_path):
    from tests.conftest import make_settings

    assert isinstance(P.writer(cfg), P.TemplateWriter)
    on = make_settings(tmp_path / "b", MSP_SPO__PROPOSAL_WRITER="bedrock").model("spo")
    assert isinstance(P.writer(on, client=object()), P.BedrockWriter)

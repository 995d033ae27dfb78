"""Insights: who gets a note, the template text, and the optional Bedrock provider (botocore Stubber: no
network, no credentials of anyone's)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import boto3
import pandas as pd
import pytest
from botocore.stub import Stubber

from jobs.cpi import insights as I
from lakehouse.insights import BedrockProvider, TemplateProvider, provider

D = Decimal


@pytest.fixture
def frames():
    cols = ["client_id", "client_name", "month", "margin_pct", "margin_tier", "months_below_lowest", "problem_client",
            "suggested_action"]
    report = pd.DataFrame([
        ("C1", "Acme Dental", "2024-01", D("31.0"), "bronze", 0, False, None),
        ("C1", "Acme Dental", "2024-02", D("18.5"), "at_risk", 1, False, None),
        ("C1", "Acme Dental", "2024-03", D("12.25"), "at_risk", 2, True, "Reprice, rescope or add exclusions"),
        ("C2", "Birch Legal", "2024-03", D("55.0"), "silver", 0, False, None),
        ("C3", "Cedar Retail", "2024-03", D("62.0"), "gold", 0, False, None),
    ], columns=cols)
    profit = pd.DataFrame([
        {"client_id": "C1", "month": "2024-02", "billed": D("2000"), "addition_cost": D("200"),
         "labour_cost": D("1430"), "labour_hours": D("25"), "reactive_hours": D("20"), "tickets": 30,
         "effective_hourly_rate": D("72")},
        {"client_id": "C1", "month": "2024-03", "billed": D("2000"), "addition_cost": D("200"),
         "labour_cost": D("1555"), "labour_hours": D("30"), "reactive_hours": D("26"), "tickets": 36,
         "effective_hourly_rate": D("60")},
    ])
    churn = pd.DataFrame([
        {"client_id": "C2", "churn_probability": 0.62, "risk_band": "high", "signals": "tickets +60%"},
        {"client_id": "C3", "churn_probability": 0.10, "risk_band": "low", "signals": None},
    ])
    return report, profit, churn


def test_notes_go_to_unprofitable_and_at_risk_clients(frames, cfg):
    report, profit, churn = frames
    facts = I.build_facts(report, profit, churn, date(2024, 4, 8), cfg)  # March closed on Apr 5
    assert [(f["client_id"], f["reason"]) for f in facts] == [("C1", "unprofitable"), ("C2", "churn_risk")]
    text = I.render(facts[0])
    assert text == (
        "Acme Dental (C1) is unprofitable: margin 31.0% (2024-01) → 18.5% (2024-02) → 12.2% (2024-03), tier "
        "at_risk, under 20% for 2 months running. Main changes from the month before: labour hours +20% (25 → 30), "
        "reactive hours +30% (20 → 26), tickets +20% (30 → 36). Suggested action: Reprice, rescope or add "
        "exclusions.")
    assert I.render(facts[1]) == (
        "Birch Legal (C2) has a silver margin tier (55.0% in 2024-03) but is at risk of leaving. Churn risk 62% "
        "(high): tickets +60%. Suggested action: Account-manager outreach and a QBR: churn risk 62% is at or above "
        "50%.")
    # before March closes (Apr 4), the last closed month is February
    assert I.build_facts(report, profit, churn, date(2024, 4, 4), cfg)[0]["month"] == "2024-02"
    # a lower risk threshold brings C3 in
    lower = cfg.model_copy(update={"churn_risk_threshold": 0.1})
    assert len(I.build_facts(report, profit, churn, date(2024, 4, 8), lower)) == 3


def test_template_provider_is_the_default(frames, cfg):
    assert isinstance(I.make_provider(cfg), TemplateProvider)
    report, profit, churn = frames
    out = I.transform(I.build_facts(report, profit, churn, date(2024, 4, 8), cfg), TemplateProvider(),
                      date(2024, 4, 8))
    assert out["provider"].tolist() == ["template", "template"] and out["dt"].unique().tolist() == ["2024-04-08"]


def bedrock_client():
    return boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def test_bedrock_provider_calls_converse_with_the_facts_and_the_draft(frames, cfg):
    report, profit, churn = frames
    facts = I.build_facts(report, profit, churn, date(2024, 4, 8), cfg)[0]
    client = bedrock_client()
    bedrock = provider("bedrock", model_id="anthropic.claude-3-haiku-20240307-v1:0", max_tokens=200, client=client)
    expected = bedrock.request(facts, I.render(facts))
    assert expected["modelId"] == "anthropic.claude-3-haiku-20240307-v1:0"
    assert expected["inferenceConfig"] == {"maxTokens": 200, "temperature": 0.0}
    assert '"margin_pct": 12.25' in expected["messages"][0]["content"][0]["text"]
    with Stubber(client) as stub:
        stub.add_response("converse", {
            "output": {"message": {"role": "assistant", "content": [{"text": "Acme Dental lost money in March."}]}},
            "stopReason": "end_turn", "usage": {"inputTokens": 300, "outputTokens": 12, "totalTokens": 312},
            "metrics": {"latencyMs": 420}}, expected)
        note = bedrock.explain(facts, I.render)
        stub.assert_no_pending_responses()
    assert note.text == "Acme Dental lost money in March."
    assert note.provider == "bedrock:anthropic.claude-3-haiku-20240307-v1:0"


def test_bedrock_failure_falls_back_to_the_template(frames, cfg):
    report, profit, churn = frames
    facts = I.build_facts(report, profit, churn, date(2024, 4, 8), cfg)[0]
    client = bedrock_client()
    bedrock = BedrockProvider("anthropic.claude-3-haiku-20240307-v1:0", client=client)
    with Stubber(client) as stub:
        stub.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
        note = bedrock.explain(facts, I.render)
    assert note.text == I.render(facts)
    assert note.provider == "template (bedrock failed: ThrottlingException)"  # the modelled error class


def test_unknown_provider_is_refused():
    with pytest.raises(ValueError, match="unknown insight provider"):
        provider("oracle")
    with pytest.raises(ValueError, match="model id"):
        provider("bedrock")

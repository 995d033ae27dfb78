"""On AWS, dispatched events go onto EventBridge once; a rule delivers them to a consumer queue."""

from __future__ import annotations

import json
from datetime import date

import boto3

from lakehouse.context import RunContext
from lakehouse.events import dispatch, write_outbox
from lakehouse.lake import Lake
from tests.conftest import make_settings
from tests.platform.test_events import margin_event


def test_dispatch_puts_each_event_once_and_a_rule_routes_it(aws, tmp_path):
    settings = make_settings(tmp_path, MSP_EVENT_BUS="eventbridge")
    events = boto3.client("events", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    events.create_event_bus(Name="msp-agents")
    queue = sqs.create_queue(QueueName="ram-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="profitability-to-ram", EventBusName="msp-agents",
                    EventPattern=json.dumps({"detail-type": ["client.profitability.changed"]}))
    events.put_targets(Rule="profitability-to-ram", EventBusName="msp-agents", Targets=[{"Id": "q", "Arn": arn}])

    lake = Lake(settings.lake_root)
    for _ in range(2):  # the second run finds everything already dispatched
        ctx = RunContext.create(settings, [date(2024, 2, 29)], lake=lake)
        write_outbox(ctx, "client.profitability.changed", [margin_event(), margin_event("C2")], ["2024-02-29"])
        dispatch(ctx)
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    bodies = [json.loads(m["Body"]) for m in got]
    assert sorted(b["detail"]["subject"] for b in bodies) == ["client:C1", "client:C2"]
    assert {b["source"] for b in bodies} == {"msp.cpi"}

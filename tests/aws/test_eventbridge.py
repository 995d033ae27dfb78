"""On AWS, dispatched events go onto EventBridge once; the rule the stack derives from the consumer's declaration
(:func:`lakehouse.aws_names.routes`) delivers them to the consumer's queue."""

from __future__ import annotations

import json
from datetime import date

import boto3

from lakehouse.aws_names import routes
from lakehouse.context import RunContext
from lakehouse.environment import forget_catalogs
from lakehouse.events import dispatch, write_outbox
from tests.conftest import make_settings
from tests.platform.test_events import margin_event


def test_dispatch_puts_each_event_once_and_a_rule_routes_it(aws, tmp_path):
    settings = make_settings(tmp_path, MSP_EVENT_BUS="eventbridge")
    events = boto3.client("events", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    bus = settings.platform.eventbridge_bus_name
    events.create_event_bus(Name=bus)
    queue = sqs.create_queue(QueueName="ram-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    (route,) = [r for r in routes() if r[0] == "client.profitability.changed"]
    pattern = {"detail-type": [route[0]], **({"detail": route[2]} if route[2] else {})}
    events.put_rule(Name="profitability-to-consumer", EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="profitability-to-consumer", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])

    forget_catalogs()
    for _ in range(2):  # the second run finds everything already dispatched
        ctx = RunContext.create(settings, [date(2024, 2, 29)])
        write_outbox(ctx, "client.profitability.changed", [margin_event(), margin_event("C2")], ["2024-02-29"])
        dispatch(ctx)
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    bodies = [json.loads(m["Body"]) for m in got]
    assert sorted(b["detail"]["subject"] for b in bodies) == ["client:C1", "client:C2"]
    assert {b["source"] for b in bodies} == {"msp.cpi"}

"""The CDK stack synthesizes, and what it creates is derived from the declarations and routes."""

from __future__ import annotations

import os
import shutil

import pytest

import schemas

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="the AWS CDK needs Node.js to synthesize")


@pytest.fixture(scope="module")
def template():
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from infra.stack import LakehouseStack

    app = cdk.App()
    stack = LakehouseStack(app, "test-stack", env_name="test")
    return Template.from_stack(stack).to_json()


def resources(template, kind):
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == kind}


def test_one_glue_table_per_declared_dataset_with_its_columns_and_partitions(template):
    tables = {(p["DatabaseName"], p["TableInput"]["Name"]): p["TableInput"]
              for p in resources(template, "AWS::Glue::Table").values()}
    declared = schemas.catalog().values()
    assert set(tables) == {(ds.glue_database("msp"), ds.name) for ds in declared}
    for ds in declared:
        t = tables[(ds.glue_database("msp"), ds.name)]
        columns, partitions = ds.glue_columns()
        assert {c["Name"]: c["Type"] for c in t["StorageDescriptor"]["Columns"]} == columns
        assert [k["Name"] for k in t["PartitionKeys"]] == list(partitions)
    dbs = {p["DatabaseInput"]["Name"] for p in resources(template, "AWS::Glue::Database").values()}
    assert dbs == {ds.glue_database("msp") for ds in declared}


def test_every_configured_route_is_an_eventbridge_rule_to_the_agents_inboxes(template):
    from infra.stack import event_routes

    rules = resources(template, "AWS::Events::Rule")
    by_type = {r["EventPattern"]["detail-type"][0]: r for r in rules.values()}
    routes = event_routes()
    assert set(by_type) == set(routes)
    for event_type, agents in routes.items():
        assert len(by_type[event_type]["Targets"]) == len(agents)
    assert len(resources(template, "AWS::SQS::Queue")) == 12  # an inbox and a dead-letter queue per agent


def test_buckets_are_encrypted_private_and_the_stage_runner_points_at_the_lake(template):
    buckets = resources(template, "AWS::S3::Bucket")
    assert len(buckets) == 3
    for b in buckets.values():
        assert b["PublicAccessBlockConfiguration"]["BlockPublicAcls"] is True
        assert "BucketEncryption" in b
    (job,) = resources(template, "AWS::Glue::Job").values()
    assert job["GlueVersion"] == "5.0"
    assert job["DefaultArguments"]["--msp_profile"] == "aws"
    assert "--lake_root" in job["DefaultArguments"]
    (wg,) = resources(template, "AWS::Athena::WorkGroup").values()
    assert wg["WorkGroupConfiguration"]["EnforceWorkGroupConfiguration"] is True

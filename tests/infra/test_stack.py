"""The CDK stack: every name is the runtime's (lakehouse/aws_names.py), every list the registry's, every size
the deployment settings'; what the issue asked of the buckets, Glue, Athena, EventBridge, MWAA and alarms."""

from __future__ import annotations

import json

import pytest

from infra import config
from infra.build import wheel_file_name
from lakehouse import aws_names
from lakehouse import orchestration as orch
from lakehouse.agents import registry
from tests.infra.conftest import ACCOUNT, REGION, needs_node, physical_names, resources

pytestmark = [needs_node, pytest.mark.xdist_group("infra-template")]
NAMES = aws_names.AwsNames("dev", account=ACCOUNT, region=REGION)


def runtime_settings():
    return config.load("dev").runtime_settings(NAMES)


def test_the_outputs_are_the_settings_the_runtime_derives_from_the_names(template):
    outputs = {k: v["Value"] for k, v in template["Outputs"].items()}
    assert aws_names.settings_from_outputs(outputs) == NAMES.settings()
    s = runtime_settings()
    p = s.platform
    assert (p.profile, p.lake_root, p.eventbridge_bus_name, p.athena_workgroup, p.glue_database_prefix) == (
        "aws", NAMES.lake_root, NAMES.event_bus, NAMES.athena_workgroup, NAMES.glue_database_prefix)
    assert (p.engine, p.table_catalog, p.catalog, p.event_bus, p.runner) == ("spark", "glue", "athena",
                                                                             "eventbridge", "glue")


def test_one_glue_6_job_per_unit_named_as_the_runtime_names_the_job_of_each_stage(template):
    jobs = {p["Name"]: p for p in resources(template, "AWS::Glue::Job").values()}
    s = runtime_settings()
    assert set(jobs) == {orch.glue_job_name(s, st) for st in registry().stages}
    assert set(jobs) == {NAMES.job(u.name) for u in aws_names.units()}
    roles = {k: p.get("RoleName") for k, p in resources(template, "AWS::IAM::Role").items()}
    (security,) = resources(template, "AWS::Glue::SecurityConfiguration").values()
    for name, job in jobs.items():
        assert job["GlueVersion"] == "6.0" and job["WorkerType"] == "G.1X"
        assert job["SecurityConfiguration"] == {"Ref": next(
            k for k, v in template["Resources"].items() if v["Type"] == "AWS::Glue::SecurityConfiguration")}
        assert job["Command"]["ScriptLocation"] == NAMES.glue_artifact("glue_entry.py")
        args = job["DefaultArguments"]
        assert args["--additional-python-modules"] == NAMES.glue_artifact(wheel_file_name())
        assert args["--msp_config"] == NAMES.settings_location
        assert (args["--lake_root"], args["--landing_root"], args["--glue_database_prefix"]) == (
            s.lake_root, s.landing_root, s.platform.glue_database_prefix)
        role = job["Role"]["Fn::GetAtt"][0]
        unit = name.removeprefix(NAMES.glue_job_prefix)
        assert roles[role] == NAMES.role(unit)  # each job runs as its own unit's role
    enc = security["EncryptionConfiguration"]
    assert enc["S3Encryptions"][0]["S3EncryptionMode"] == "SSE-KMS"
    assert enc["CloudWatchEncryption"]["CloudWatchEncryptionMode"] == "SSE-KMS"


def test_a_glue_database_per_zone_and_no_table_declared_twice(template):
    dbs = {p["DatabaseInput"]["Name"] for p in resources(template, "AWS::Glue::Database").values()}
    assert dbs == {NAMES.glue_database(z) for z in aws_names.zone_roots()}
    import schemas

    assert {ds.glue_database(NAMES.glue_database_prefix) for ds in schemas.catalog().values()} == dbs
    # the Iceberg tables are created and committed by the jobs' commit path, not by CloudFormation
    assert not resources(template, "AWS::Glue::Table")


def test_buckets_are_kms_encrypted_versioned_logged_tls_only_and_private(template):
    buckets = {p["BucketName"]: (k, p) for k, p in resources(template, "AWS::S3::Bucket").items()}
    assert set(buckets) == {NAMES.lake_bucket, NAMES.landing_bucket, NAMES.artifacts_bucket, NAMES.airflow_bucket,
                            NAMES.access_logs_bucket}
    policies = {p["Bucket"]["Ref"]: p["PolicyDocument"]["Statement"]
                for p in resources(template, "AWS::S3::BucketPolicy").values()}
    for name, (logical, b) in buckets.items():
        assert b["VersioningConfiguration"]["Status"] == "Enabled"
        assert all(b["PublicAccessBlockConfiguration"][k] for k in
                   ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
        tls = [s for s in policies[logical] if s["Effect"] == "Deny"
               and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
        assert tls, f"{name} allows plain HTTP"
        rule = b["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        if name == NAMES.access_logs_bucket:
            assert rule["SSEAlgorithm"] == "AES256"  # S3 delivers access logs only into SSE-S3 buckets
        else:
            assert rule["SSEAlgorithm"] == "aws:kms" and "KMSMasterKeyID" in rule
            assert b["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": buckets[NAMES.access_logs_bucket][0]}
    (key,) = resources(template, "AWS::KMS::Key").values()
    assert key["EnableKeyRotation"] is True


def test_athena_workgroup_encrypts_results_and_limits_bytes_scanned(template):
    (wg,) = resources(template, "AWS::Athena::WorkGroup").values()
    assert wg["Name"] == NAMES.athena_workgroup == runtime_settings().platform.athena_workgroup
    c = wg["WorkGroupConfiguration"]
    assert c["EnforceWorkGroupConfiguration"] is True
    assert c["BytesScannedCutoffPerQuery"] == config.load("dev").deploy.athena_bytes_scanned_cutoff_gb * 2**30
    assert c["ResultConfiguration"]["OutputLocation"] == NAMES.athena_output
    assert c["ResultConfiguration"]["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"


def test_one_rule_per_declared_route_into_the_consumers_inbox_with_dead_letter_queues(template):
    rules = {p["Name"]: p for p in resources(template, "AWS::Events::Rule").values() if "EventBusName" in p}
    routes = aws_names.routes()
    assert set(rules) == {NAMES.rule(t, a) for t, a, _ in routes}
    queues = dict(resources(template, "AWS::SQS::Queue"))
    by_name = {p["QueueName"]: k for k, p in queues.items()}
    (bus,) = resources(template, "AWS::Events::EventBus").values()
    assert bus["Name"] == NAMES.event_bus
    for event_type, agent, detail in routes:
        rule = rules[NAMES.rule(event_type, agent)]
        # the rule's declared conditions are the pattern's content filter on the envelope
        assert rule["EventPattern"] == {"detail-type": [event_type], **({"detail": detail} if detail else {})}
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [by_name[NAMES.inbox_queue(agent)], "Arn"]}
        assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [by_name[NAMES.rules_dlq], "Arn"]}
        redrive = queues[by_name[NAMES.inbox_queue(agent)]]["RedrivePolicy"]
        assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [by_name[NAMES.inbox_dlq(agent)], "Arn"]}
    for q in queues.values():
        assert "KmsMasterKeyId" in q


def test_a_route_with_a_condition_is_one_more_rule_from_the_same_function():
    """Event-rule conditions (declared later) reach the stack through ``LakehouseStack.route``'s ``detail``."""
    import aws_cdk as cdk
    from aws_cdk import aws_events as events
    from aws_cdk import aws_sqs as sqs
    from aws_cdk.assertions import Template

    from infra.stack import LakehouseStack

    class Mini(cdk.Stack):
        pass

    stack = Mini(cdk.App(), "mini")
    stack.names = NAMES
    stack.bus = events.EventBus(stack, "Bus", event_bus_name=NAMES.event_bus)
    stack.rules_dlq = sqs.Queue(stack, "Dlq")
    stack.inboxes = {"acme": sqs.Queue(stack, "Inbox")}
    LakehouseStack.route(stack, "widget.price.changed", "acme", {"data": {"severity": ["high"]}})
    (rule,) = resources(Template.from_stack(stack).to_json(), "AWS::Events::Rule").values()
    assert rule["Name"] == NAMES.rule("widget.price.changed", "acme")
    assert rule["EventPattern"] == {"detail-type": ["widget.price.changed"], "detail": {"data": {"severity": ["high"]}}}


def test_mwaa_gets_the_dags_requirements_startup_script_and_a_role_that_only_starts_glue_jobs(template):
    (env,) = resources(template, "AWS::MWAA::Environment").values()
    d = config.load("dev").deploy
    assert (env["Name"], env["AirflowVersion"], env["EnvironmentClass"]) == (
        NAMES.mwaa_environment, d.mwaa_airflow_version, d.mwaa_environment_class)
    assert (env["DagS3Path"], env["RequirementsS3Path"], env["StartupScriptS3Path"]) == (
        "dags", "requirements.txt", "startup.sh")
    assert len(env["NetworkConfiguration"]["SubnetIds"]) == 2
    roles = {p.get("RoleName"): p for p in resources(template, "AWS::IAM::Role").values()}
    statements = roles[NAMES.mwaa_role]["Policies"][0]["PolicyDocument"]["Statement"]
    glue = [s for s in statements if any(str(a).startswith("glue:") for a in _list(s["Action"]))]
    assert len(glue) == 1 and sorted(_list(glue[0]["Action"])) == [
        "glue:GetJob", "glue:GetJobRun", "glue:GetJobRuns", "glue:StartJobRun"]
    jobs = {p["Name"] for p in resources(template, "AWS::Glue::Job").values()}
    assert sorted(_list(glue[0]["Resource"])) == sorted(f"arn:aws:glue:{REGION}:{ACCOUNT}:job/{j}" for j in jobs)
    other = {a for s in statements for a in _list(s["Action"])} - set(_list(glue[0]["Action"]))
    assert {a.split(":")[0] for a in other} <= {"s3", "logs", "cloudwatch", "sqs", "kms", "airflow"}
    assert not [a for a in other if a.startswith(("s3:Put", "s3:Delete"))]


def test_an_alarm_per_job_on_failed_runs_and_per_dead_letter_queue_and_a_dashboard(template):
    alarms = {p["AlarmName"]: p for p in resources(template, "AWS::CloudWatch::Alarm").values()}
    for u in aws_names.units():
        assert NAMES.alarm(u.name) in alarms
    rules = [p for p in resources(template, "AWS::Events::Rule").values() if "EventBusName" not in p]
    failed = {p["EventPattern"]["detail"]["jobName"][0] for p in rules}
    assert failed == {NAMES.job(u.name) for u in aws_names.units()}
    assert len(alarms) == len(aws_names.units()) + 1 + len(aws_names.consumers())
    (dash,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    assert dash["DashboardName"] == NAMES.dashboard


def test_dev_and_prod_differ_only_by_their_settings_files():
    dev, prod = config.load("dev"), config.load("prod")
    assert dev.deploy.model_fields_set == prod.deploy.model_fields_set
    assert set(dev.runtime) == set(prod.runtime)
    assert dev.deploy.retain_data is False and prod.deploy.retain_data is True
    assert config.load("prod").names(ACCOUNT, REGION).lake_bucket == f"msp-prod-lake-{ACCOUNT}-{REGION}"


def test_every_remaining_checkov_suppression_has_a_reason(template):
    for logical, res in template["Resources"].items():
        for s in (res.get("Metadata", {}).get("checkov") or {}).get("skip", []):
            assert s["id"].startswith(("CKV_", "CKV2_")) and len(s["comment"]) > 20, (logical, s)


def _list(x):
    return x if isinstance(x, list) else [x]


def test_names_fit_aws_limits():
    long = aws_names.AwsNames("prodeu1", "lakehouse1", ACCOUNT, "ap-southeast-2")
    for what, name in long.rows():
        if "bucket" in what:
            assert len(name) <= 63 and name == name.lower(), name
        if what.startswith(("IAM role", "rule ")):
            assert len(name) <= 64, name
    with pytest.raises(ValueError, match="lower-case"):
        aws_names.AwsNames("Dev")
    assert json.dumps(long.settings())  # plain values only



def test_every_name_the_stack_gives_a_resource_comes_from_aws_names(template):
    """One source of names: what CloudFormation creates under a name of ours is one of ``msp aws names``."""
    named = {name for _what, name in NAMES.rows()}
    given = physical_names(template)
    assert len(given) > 50
    assert {k: v for k, v in given.items() if v not in named} == {}
    assert len(set(given.values())) == len(given)  # no two resources share a name
    prod = aws_names.AwsNames("prod", account=ACCOUNT, region=REGION)
    assert not set(given.values()) & {name for _what, name in prod.rows()}  # dev and prod can share an account

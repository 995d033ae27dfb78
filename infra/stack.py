"""The lakehouse on AWS, derived from the same declarations the code uses.

- S3: a lake bucket (zones under ``lake/``), a landing bucket, an artifacts bucket (Glue scripts, the
  project wheel, Athena results). Encrypted, public access blocked, TLS enforced.
- Glue Data Catalog: one database per zone root and one table per declared dataset, with the columns,
  types and partition keys of ``schemas/`` (the code's publish step then points each partition at its
  published version folder).
- Glue: one job, the stage runner (``lakehouse/glue_entry.py``), started once per stage and date range
  by Airflow (``--stage``, ``--dates``); the lake and landing roots are its default arguments.
- Athena: a workgroup whose results go to the artifacts bucket, with a per-query scan limit.
- EventBridge: the ``msp-agents`` bus and, for every route the agents declare (an agent's ``consumes``), a
  rule that delivers the event type to the consuming agent's SQS inbox (with a dead-letter queue).

Airflow runs on MWAA or any Airflow 3 deployment pointed at these resources; its environment is not
created here (it needs the account's VPC and networking decisions), see infra/README.md.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_athena as athena
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

import schemas
from lakehouse.agents import registry


def event_routes() -> dict[str, list[str]]:
    """Event type → the agents that consume it, from the agents' declarations."""
    return {t: sorted({agent for agent, _ in targets}) for t, targets in registry().routes.items() if targets}


class LakehouseStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, env_name: str = "dev",
                 glue_database_prefix: str = "msp", **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        removal = cdk.RemovalPolicy.RETAIN if env_name == "prod" else cdk.RemovalPolicy.DESTROY

        def bucket(name: str, **extra) -> s3.Bucket:
            return s3.Bucket(self, name, encryption=s3.BucketEncryption.S3_MANAGED,
                             block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
                             removal_policy=removal, auto_delete_objects=removal == cdk.RemovalPolicy.DESTROY,
                             **extra)

        lake = bucket("Lake", versioned=env_name == "prod", lifecycle_rules=[
            s3.LifecycleRule(abort_incomplete_multipart_upload_after=cdk.Duration.days(2)),
            s3.LifecycleRule(noncurrent_version_expiration=cdk.Duration.days(30))])
        landing = bucket("Landing", lifecycle_rules=[
            s3.LifecycleRule(transitions=[s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                                                        transition_after=cdk.Duration.days(90))])])
        artifacts = bucket("Artifacts")
        lake_root = f"s3://{lake.bucket_name}/lake"
        landing_root = f"s3://{landing.bucket_name}"

        # ---- Glue Data Catalog: derived from schemas/ -----------------------------------------
        databases: dict[str, glue.CfnDatabase] = {}
        for ds in schemas.catalog().values():
            name = ds.glue_database(glue_database_prefix)
            if name not in databases:
                databases[name] = glue.CfnDatabase(
                    self, f"Db{ds.zone_root.title().replace('-', '')}", catalog_id=self.account,
                    database_input=glue.CfnDatabase.DatabaseInputProperty(
                        name=name, description=f"MSP lakehouse zone {ds.zone_root}"))
            columns, partitions = ds.glue_columns()
            comments = {c.name: c.description for c in ds.stored_columns()}
            table = glue.CfnTable(
                self, f"Table{ds.zone_root.title().replace('-', '')}{_camel(ds.name)}",
                catalog_id=self.account, database_name=name,
                table_input=glue.CfnTable.TableInputProperty(
                    name=ds.name, description=ds.description[:2048], table_type="EXTERNAL_TABLE",
                    parameters={"classification": "parquet", "EXTERNAL": "TRUE", "owner_agent": ds.owner},
                    partition_keys=[glue.CfnTable.ColumnProperty(name=k, type=t) for k, t in partitions.items()],
                    storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                        location=f"{lake_root}/{ds.zone}/{ds.name}/",
                        columns=[glue.CfnTable.ColumnProperty(name=k, type=t, comment=comments.get(k, "")[:255])
                                 for k, t in columns.items()],
                        input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                        output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                        serde_info=glue.CfnTable.SerdeInfoProperty(
                            serialization_library="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe")),
                ))
            table.add_dependency(databases[name])

        # ---- Glue stage runner ------------------------------------------------------------------
        role = iam.Role(self, "GlueJobRole", assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
                        managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(
                            "service-role/AWSGlueServiceRole")])
        lake.grant_read_write(role)
        landing.grant_read(role)
        artifacts.grant_read(role)
        self.stage_runner = glue.CfnJob(
            self, "StageRunner", name=f"msp-{env_name}-stage-runner", role=role.role_arn,
            glue_version="5.0", worker_type="G.1X", number_of_workers=2, max_retries=0, timeout=120,
            execution_property=glue.CfnJob.ExecutionPropertyProperty(max_concurrent_runs=8),
            command=glue.CfnJob.JobCommandProperty(
                name="glueetl", python_version="3",
                script_location=f"s3://{artifacts.bucket_name}/glue/glue_entry.py"),
            default_arguments={
                "--msp_profile": "aws",
                "--lake_root": lake_root,
                "--landing_root": landing_root,
                "--glue_database_prefix": glue_database_prefix,
                "--additional-python-modules": f"s3://{artifacts.bucket_name}/glue/msp_lakehouse-py3-none-any.whl",
                "--enable-metrics": "true",
                "--enable-continuous-cloudwatch-log": "true",
                "--job-language": "python",
            },
        )

        # ---- Athena -------------------------------------------------------------------------------
        athena.CfnWorkGroup(
            self, "Analysts", name=f"msp-{env_name}-analysts", recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True, publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=100 * 2**30,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{artifacts.bucket_name}/athena-results/",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"))))

        # ---- EventBridge: the configured routes, one SQS inbox per agent ---------------------------
        bus = events.EventBus(self, "AgentsBus", event_bus_name=f"msp-agents-{env_name}")
        inboxes = {}
        for agent in registry().agents:
            dlq = sqs.Queue(self, f"{agent.title()}InboxDlq", retention_period=cdk.Duration.days(14),
                            enforce_ssl=True)
            inboxes[agent] = sqs.Queue(self, f"{agent.title()}Inbox", enforce_ssl=True,
                                       visibility_timeout=cdk.Duration.minutes(5),
                                       dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=5))
        for event_type, agents in sorted(event_routes().items()):
            events.Rule(self, f"Route{_camel(event_type.replace('.', '_'))}", event_bus=bus,
                        description=f"{event_type} → {', '.join(agents)}",
                        event_pattern=events.EventPattern(detail_type=[event_type]),
                        targets=[targets.SqsQueue(inboxes[a]) for a in agents])

        for name, value in (("LakeRoot", lake_root), ("LandingRoot", landing_root),
                            ("ArtifactsBucket", artifacts.bucket_name), ("EventBus", bus.event_bus_name),
                            ("StageRunnerJob", f"msp-{env_name}-stage-runner")):
            cdk.CfnOutput(self, name, value=value)


def _camel(text: str) -> str:
    return "".join(part.title() for part in text.replace("-", "_").split("_"))

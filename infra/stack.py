"""The lakehouse on AWS, derived from the same declarations and names the runtime uses.

Every name comes from :mod:`lakehouse.aws_names` (the runtime reads the same names from the settings file this
stack writes), every list from the agent registry, every size from ``infra/environments/<env>.toml``:

- **KMS**: one customer-managed key (rotated) encrypts the buckets, Glue's logs and bookmarks, Athena's
  results, the alarm topic and MWAA.
- **S3**: lake, landing, artifacts (Glue scripts, the job wheel, the jobs' settings, Athena results) and
  MWAA's bucket: KMS-encrypted, versioned, TLS-only, public access blocked, server access logs into a log
  bucket (SSE-S3: S3 cannot deliver access logs into a KMS bucket).
- **Glue Data Catalog**: one database per zone root (``msp_dev_raw``...). The Iceberg tables in them are
  created and committed by the jobs' own commit path (pyiceberg, :mod:`lakehouse.lake`), from the dataset
  declarations, on first write: one source for schema and partition spec, and no CloudFormation drift when
  a commit changes the table's metadata pointer.
- **Glue 6.0 jobs**, one per unit (an agent, or a platform stage), each under its own role
  (:mod:`infra.policies`), with a security configuration (SSE-KMS on S3, KMS on logs and bookmarks).
- **Athena**: the analysts' workgroup, results encrypted with the key, a bytes-scanned limit per query; one
  saved query per dashboard panel, its ``CREATE OR REPLACE VIEW`` statement (:mod:`lakehouse.dashboard.athena`;
  ``msp aws views`` runs them once the first run has created the tables).
- **EventBridge**: the agents' bus and one rule per declared route (:meth:`LakehouseStack.route`), into the
  consuming agent's SQS inbox; undeliverable events and messages go to dead-letter queues.
- **MWAA**: an Airflow 3 environment whose DAGs, requirements and startup script come from the build
  (``infra/build.py``), with its own role that may start the Glue jobs and nothing more; its network is a
  minimal VPC unless the deployment settings name existing subnets.
- **CloudWatch**: an alarm per job on failed runs (Glue's job state-change events, counted per rule), alarms
  on every dead-letter queue, and a dashboard of system health (failed runs and run time per job, dead-letter
  queues, event deliveries per route, Athena's bytes scanned).

Checkov findings that remain are suppressed on the resource itself with a one-line reason (:func:`skip`).
"""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_athena as athena
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_mwaa as mwaa
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from infra import policies
from infra.config import Environment
from lakehouse import aws_names
from lakehouse.aws_names import SETTING_OUTPUTS

#: Glue 6.0: Spark 4.1.1, Python 3.13, Java 17 (the jobs use Spark 4 APIs; Glue 5.x runs Spark 3.5).
GLUE_VERSION = "6.0"
#: Placeholder account and region to validate the runtime settings when the stack's are tokens.
_PLACEHOLDER = ("123456789012", "us-east-1")


def skip(construct: IConstruct, *checks: tuple[str, str]) -> None:
    """Suppress checkov checks on a resource, each with a one-line reason (kept in the template's Metadata)."""
    res = construct if isinstance(construct, cdk.CfnResource) else construct.node.default_child
    existing = res.get_metadata("checkov") or {"skip": []}
    existing["skip"] += [{"id": cid, "comment": why} for cid, why in checks]
    res.add_metadata("checkov", existing)


@jsii.implements(cdk.IAspect)
class CdkInternals:
    """An aspect: checkov suppressions for the Lambda functions CDK itself adds (the bucket deployments'
    handler), which this code does not configure."""

    REASONS = (
        ("CKV_AWS_115", "CDK's bucket-deployment handler runs only during deployments; no concurrency limit needed"),
        ("CKV_AWS_116", "CDK's bucket-deployment handler is invoked synchronously by CloudFormation; no DLQ"),
        ("CKV_AWS_117", "CDK's bucket-deployment handler copies build artifacts from S3 to S3; no VPC needed"),
        ("CKV_AWS_173", "CDK's bucket-deployment handler has no secrets in its environment"),
    )

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, cdk.CfnResource) and node.cfn_resource_type == "AWS::Lambda::Function":
            skip(node, *self.REASONS)


class LakehouseStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, environment: Environment,
                 build_dir: Path | None = None, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.deployment = environment
        d = environment.deploy
        n = self.names = environment.names(self.account, self.region)
        # the runtime settings this deployment's jobs will run with (the Bedrock model ids, validated)
        self.settings = environment.runtime_settings(environment.names(*_PLACEHOLDER))
        retain = cdk.RemovalPolicy.RETAIN if d.retain_data else cdk.RemovalPolicy.DESTROY

        # ---- KMS ------------------------------------------------------------------------------------------
        self.key = kms.Key(self, "LakeKey", alias=n.kms_alias, enable_key_rotation=True, removal_policy=retain,
                           description=f"{n.prefix}: lake, artifacts, Glue logs, Athena results, alarms, MWAA")
        self.key.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchLogs", principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            resources=["*"], conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                                     f"arn:aws:logs:{self.region}:{self.account}:*"}}))
        self.key.add_to_resource_policy(iam.PolicyStatement(
            sid="ServicesWritingToEncryptedTopicAndQueues",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com"), iam.ServicePrincipal("events.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=["*"]))

        # ---- S3 ------------------------------------------------------------------------------------------
        self.access_logs = s3.Bucket(
            self, "AccessLogs", bucket_name=n.access_logs_bucket, encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True, versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED, removal_policy=retain,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(365),
                                              noncurrent_version_expiration=cdk.Duration.days(30))])
        skip(self.access_logs, ("CKV_AWS_18", "this is the access-log bucket; logging it into itself would loop"),
             ("CKV_AWS_145", "S3 server access logs can only be delivered to an SSE-S3 bucket, not SSE-KMS"))

        def bucket(logical: str, name: str, **extra) -> s3.Bucket:
            rules = extra.pop("lifecycle_rules", [])
            return s3.Bucket(
                self, logical, bucket_name=name, encryption=s3.BucketEncryption.KMS, encryption_key=self.key,
                bucket_key_enabled=True, versioned=True, enforce_ssl=True,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
                server_access_logs_bucket=self.access_logs, server_access_logs_prefix=f"{logical.lower()}/",
                removal_policy=retain,
                lifecycle_rules=[s3.LifecycleRule(abort_incomplete_multipart_upload_after=cdk.Duration.days(2),
                                                  noncurrent_version_expiration=cdk.Duration.days(30)), *rules],
                **extra)

        self.lake = bucket("Lake", n.lake_bucket)
        self.landing = bucket("Landing", n.landing_bucket, lifecycle_rules=[s3.LifecycleRule(
            transitions=[s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                                       transition_after=cdk.Duration.days(90))])])
        self.artifacts = bucket("Artifacts", n.artifacts_bucket, lifecycle_rules=[s3.LifecycleRule(
            prefix=f"{aws_names.ATHENA_PREFIX}/", expiration=cdk.Duration.days(30))])
        self.airflow_bucket = bucket("Airflow", n.airflow_bucket)

        # ---- Glue: catalog, security configuration, one job and one role per unit ------------------------
        self.databases = {}
        for zone in aws_names.zone_roots():
            db = glue.CfnDatabase(self, f"Db{_camel(zone)}", catalog_id=self.account,
                                  database_input=glue.CfnDatabase.DatabaseInputProperty(
                                      name=n.glue_database(zone), description=f"{n.prefix}: lake zone {zone}",
                                      location_uri=f"{n.lake_root}/{zone}/"))
            db.apply_removal_policy(retain)
            self.databases[zone] = db
        security = glue.CfnSecurityConfiguration(
            self, "GlueSecurity", name=n.glue_security_configuration,
            encryption_configuration=glue.CfnSecurityConfiguration.EncryptionConfigurationProperty(
                cloud_watch_encryption=glue.CfnSecurityConfiguration.CloudWatchEncryptionProperty(
                    cloud_watch_encryption_mode="SSE-KMS", kms_key_arn=self.key.key_arn),
                job_bookmarks_encryption=glue.CfnSecurityConfiguration.JobBookmarksEncryptionProperty(
                    job_bookmarks_encryption_mode="CSE-KMS", kms_key_arn=self.key.key_arn),
                s3_encryptions=[glue.CfnSecurityConfiguration.S3EncryptionProperty(
                    s3_encryption_mode="SSE-KMS", kms_key_arn=self.key.key_arn)]))
        wheel = _wheel_name(build_dir)
        self.jobs: dict[str, glue.CfnJob] = {}
        self.roles: dict[str, iam.Role] = {}
        reg = None
        for unit in aws_names.units(reg):
            acc = aws_names.access(unit, reg, self.settings)
            role = iam.Role(self, f"Role{_camel(unit.name)}", role_name=n.role(unit.name),
                            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
                            description=f"{n.prefix}: the Glue job of {unit.name} ({', '.join(acc.stages)})",
                            inline_policies={"access": _document(policies.unit_statements(
                                n, acc, self.key.key_arn))})
            _skip_wildcards(role, "cloudwatch:PutMetricData has no resource-level permissions; limited to the "
                                  "Glue namespace by condition")
            self.roles[unit.name] = role
            workers = d.gate_workers if "gate" in unit.kinds else d.glue_workers
            job = glue.CfnJob(
                self, f"Job{_camel(unit.name)}", name=n.job(unit.name), role=role.role_arn,
                description=f"{n.prefix}: stages {', '.join(acc.stages)}",
                glue_version=GLUE_VERSION, worker_type="G.1X", number_of_workers=workers, max_retries=0,
                timeout=d.glue_timeout_minutes, security_configuration=security.ref,
                execution_property=glue.CfnJob.ExecutionPropertyProperty(
                    max_concurrent_runs=d.glue_max_concurrent_runs),
                command=glue.CfnJob.JobCommandProperty(
                    name="glueetl", python_version="3", script_location=n.glue_artifact(aws_names.GLUE_ENTRY_SCRIPT)),
                default_arguments={
                    "--msp_profile": "aws",
                    "--msp_config": n.settings_location,
                    "--lake_root": n.lake_root,
                    "--landing_root": n.landing_root,
                    "--glue_database_prefix": n.glue_database_prefix,
                    "--additional-python-modules": n.glue_artifact(wheel),
                    "--enable-metrics": "true",
                    "--enable-observability-metrics": "true",
                    "--enable-continuous-cloudwatch-log": "true",
                    "--job-language": "python",
                })
            self.jobs[unit.name] = job

        # ---- Athena ----------------------------------------------------------------------------------------
        self.workgroup = athena.CfnWorkGroup(
            self, "Analysts", name=n.athena_workgroup, recursive_delete_option=not d.retain_data,
            description=f"{n.prefix}: analysts' queries over the lake's Iceberg tables",
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True, publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=d.athena_bytes_scanned_cutoff_gb * 2**30,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=n.athena_output,
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=self.key.key_arn))))
        self._panel_views()

        # ---- EventBridge: the bus, one rule per declared route, inboxes and dead-letter queues -------------
        self.bus = events.EventBus(self, "AgentsBus", event_bus_name=n.event_bus)
        self.rules_dlq = self._queue("RulesDlq", n.rules_dlq, retention=cdk.Duration.days(14))
        self.inboxes: dict[str, sqs.Queue] = {}
        self.inbox_dlqs: dict[str, sqs.Queue] = {}
        for agent in aws_names.consumers(reg):
            dlq = self._queue(f"Inbox{_camel(agent)}Dlq", n.inbox_dlq(agent), retention=cdk.Duration.days(14))
            self.inbox_dlqs[agent] = dlq
            self.inboxes[agent] = self._queue(
                f"Inbox{_camel(agent)}", n.inbox_queue(agent), retention=cdk.Duration.days(4),
                dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=5))
        self.rules = {}
        for event_type, agent, detail in aws_names.routes(reg):
            self.rules[(event_type, agent)] = self.route(event_type, agent, detail)

        # ---- monitoring -----------------------------------------------------------------------------------
        self.topic = sns.Topic(self, "Alarms", topic_name=n.alarms_topic, master_key=self.key,
                               display_name=f"{n.prefix} lakehouse alarms")
        if d.alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(d.alarm_email))
        self._monitoring(d)

        # ---- MWAA ---------------------------------------------------------------------------------------
        self.settings_text = aws_names.settings_toml(
            environment.settings_values(n), header=f"Settings of the {n.prefix} deployment, written by its stack "
                                                   "(infra/stack.py); the same as `msp aws settings --from-stack`.")
        self._mwaa(d, build_dir)

        # ---- outputs: the runtime's settings, then what the README's steps need ---------------------------
        values = {k: v for section in n.settings().values() for k, v in section.items()}
        for output, (_section, key) in SETTING_OUTPUTS.items():
            cdk.CfnOutput(self, output, value=str(values[key]), description=f"setting {_section}.{key}")
        for output, value in (("LakeBucket", n.lake_bucket), ("LandingBucket", n.landing_bucket),
                              ("ArtifactsBucket", n.artifacts_bucket), ("AirflowBucket", n.airflow_bucket),
                              ("SettingsFile", n.settings_location), ("MwaaEnvironment", n.mwaa_environment),
                              ("AlarmTopic", self.topic.topic_arn), ("KmsKeyArn", self.key.key_arn)):
            cdk.CfnOutput(self, output, value=value)
        cdk.Aspects.of(self).add(CdkInternals())

    # ---- Athena: the dashboard's panels as views ---------------------------------------------------------------
    def _panel_views(self) -> None:
        """One saved query per dashboard panel in the workgroup: the panel's ``CREATE OR REPLACE VIEW`` statement
        (:mod:`lakehouse.dashboard.athena`, the statements ``msp aws views`` runs). A panel that is not a view is
        reported at synth time with its reason: an info for one over the lake's JSON files (by design), a
        warning for any other."""
        from lakehouse.dashboard.athena import VIEWS_ZONE, panel_views

        n = self.names
        self.panel_views = panel_views(n.glue_database_prefix)
        self.named_queries: dict[str, athena.CfnNamedQuery] = {}
        for v in self.panel_views.views:
            query = athena.CfnNamedQuery(
                self, f"View{_camel(v.panel_id)}", name=v.name, database=v.database, work_group=self.workgroup.ref,
                query_string=v.sql,
                description=_cut(f"{v.title} ({v.owner}): the dashboard panel {v.panel_id} as the view "
                                 f"{v.qualified_name}; `msp aws views` creates them all", 1024))
            query.node.add_dependency(self.databases[VIEWS_ZONE])  # the view's database first
            self.named_queries[v.panel_id] = query
        for miss in self.panel_views.not_views:
            message = f"the dashboard panel {miss.panel_id} ({miss.owner}) is not an Athena view: {miss.reason}"
            if miss.platform_table:
                cdk.Annotations.of(self).add_info(message)
            else:
                cdk.Annotations.of(self).add_warning_v2(f"msp:panel-{miss.panel_id}", message)

    # ---- EventBridge ------------------------------------------------------------------------------------------
    def _queue(self, logical: str, name: str, *, retention: cdk.Duration, **extra) -> sqs.Queue:
        return sqs.Queue(self, logical, queue_name=name, encryption=sqs.QueueEncryption.KMS,
                         encryption_master_key=self.key, data_key_reuse=cdk.Duration.hours(1),
                         enforce_ssl=True, retention_period=retention, visibility_timeout=cdk.Duration.minutes(5),
                         **extra)

    def route(self, event_type: str, agent: str, detail: dict | None = None) -> events.Rule:
        """The rule delivering ``event_type`` to ``agent``'s inbox; ``detail`` narrows it with an EventBridge
        content filter on the envelope (``{"data": {"severity": ["high"]}}``), for rules declared with
        conditions. Events EventBridge cannot deliver go to the rules' dead-letter queue."""
        return events.Rule(
            self, f"Route{_camel(event_type.replace('.', '_'))}To{_camel(agent)}",
            rule_name=self.names.rule(event_type, agent), event_bus=self.bus,
            description=f"{event_type} → {agent}" + (f" when {json.dumps(detail, sort_keys=True)}" if detail else ""),
            event_pattern=events.EventPattern(detail_type=[event_type], detail=detail),
            targets=[targets.SqsQueue(self.inboxes[agent], dead_letter_queue=self.rules_dlq, retry_attempts=8,
                                      max_event_age=cdk.Duration.hours(24))])

    # ---- CloudWatch -----------------------------------------------------------------------------------------
    def _monitoring(self, d) -> None:
        n = self.names
        action = cw_actions.SnsAction(self.topic)
        failed_widgets, time_widgets = [], []
        for unit, job in self.jobs.items():
            rule = events.Rule(  # Glue's own state-change events, on the account's default bus
                self, f"Failed{_camel(unit)}", rule_name=n.job_failed_rule(unit),
                description=f"runs of {job.name} that failed, timed out or were stopped",
                event_pattern=events.EventPattern(source=["aws.glue"], detail_type=["Glue Job State Change"],
                                                  detail={"jobName": [job.name],
                                                          "state": ["FAILED", "TIMEOUT", "STOPPED", "ERROR"]}),
                targets=[targets.SnsTopic(self.topic)])
            failed = cw.Metric(namespace="AWS/Events", metric_name="TriggeredRules",
                               dimensions_map={"RuleName": rule.rule_name}, statistic="Sum",
                               period=cdk.Duration.minutes(5), label=unit)
            cw.Alarm(self, f"Alarm{_camel(unit)}", alarm_name=n.alarm(unit), metric=failed, threshold=1,
                     evaluation_periods=1, comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                     treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                     alarm_description=f"a run of the Glue job {job.name} failed").add_alarm_action(action)
            failed_widgets.append(failed)
            time_widgets.append(cw.Metric(namespace="Glue", metric_name="glue.driver.aggregate.elapsedTime",
                                          dimensions_map={"JobName": job.name, "JobRunId": "ALL", "Type": "count"},
                                          statistic="Maximum", period=cdk.Duration.hours(1), label=unit))
        dlqs = [("rules", n.rules_dlq, self.rules_dlq)] + [(a, n.inbox_dlq(a), q) for a, q in self.inbox_dlqs.items()]
        depth = []
        for label, queue_name, q in dlqs:
            m = q.metric_approximate_number_of_messages_visible(period=cdk.Duration.minutes(5), label=label)
            cw.Alarm(self, f"Alarm{_camel(label)}Dlq", alarm_name=n.dlq_alarm(queue_name), metric=m,
                     threshold=1, evaluation_periods=1,
                     comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                     treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                     alarm_description=f"events wait in a dead-letter queue ({label})").add_alarm_action(action)
            depth.append(m)
        athena_bytes = cw.Metric(namespace="AWS/Athena", metric_name="ProcessedBytes",
                                 dimensions_map={"WorkGroup": n.athena_workgroup}, statistic="Sum",
                                 period=cdk.Duration.days(1))
        delivered = [cw.Metric(namespace="AWS/Events", metric_name=m, statistic="Sum", period=cdk.Duration.hours(1),
                               dimensions_map={"EventBusName": n.event_bus, "RuleName": r.rule_name},
                               label=f"{t}→{a} {m}")
                     for (t, a), r in self.rules.items() for m in ("Invocations", "FailedInvocations")]
        cw.Dashboard(self, "Dashboard", dashboard_name=n.dashboard, widgets=[
            [cw.GraphWidget(title="Failed Glue runs per job", left=failed_widgets, width=12),
             cw.GraphWidget(title="Glue run time per job (ms)", left=time_widgets, width=12)],
            [cw.GraphWidget(title="Dead-letter queues (messages)", left=depth, width=8),
             cw.GraphWidget(title="Event deliveries per route", left=delivered or [athena_bytes], width=8),
             cw.GraphWidget(title="Athena bytes scanned per day", left=[athena_bytes], width=8)],
        ])

    # ---- MWAA -------------------------------------------------------------------------------------------------
    def _mwaa(self, d, build_dir: Path | None) -> None:
        n = self.names
        role = iam.Role(self, "MwaaRole", role_name=n.mwaa_role,
                        assumed_by=iam.CompositePrincipal(iam.ServicePrincipal("airflow.amazonaws.com"),
                                                          iam.ServicePrincipal("airflow-env.amazonaws.com")),
                        description=f"{n.prefix}: MWAA; may start and watch the Glue jobs, nothing more",
                        inline_policies={"mwaa": _document(policies.mwaa_statements(
                            n, self.key.key_arn, [j.name for j in self.jobs.values()]))})
        _skip_wildcards(role, "MWAA's documented execution policy: DescribeLogGroups, PutMetricData and "
                              "GetAccountPublicAccessBlock have no resource-level permissions")
        self.mwaa_role = role
        if d.mwaa_subnet_ids:
            subnets = list(d.mwaa_subnet_ids)
            groups = list(d.mwaa_security_group_ids)
        else:
            # the region's first two zones resolved by CloudFormation (Fn::GetAZs): no context lookup at synth
            # time, and the same template for every account
            zones = [cdk.Fn.select(i, cdk.Fn.get_azs()) for i in range(2)]
            vpc = ec2.Vpc(self, "Network", availability_zones=zones, nat_gateways=1,
                          ip_addresses=ec2.IpAddresses.cidr("10.42.0.0/20"),
                          subnet_configuration=[
                              ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                              ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS,
                                                      cidr_mask=24)])
            flow_logs = logs.LogGroup(self, "FlowLogs", encryption_key=self.key,
                                      removal_policy=cdk.RemovalPolicy.DESTROY)
            flow_logs.node.default_child.retention_in_days = d.log_retention_days
            skip(flow_logs, ("CKV_AWS_338", "retention is a deployment setting (deploy.log_retention_days)"))
            vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs))
            for sub in vpc.public_subnets:
                skip(sub.node.default_child, ("CKV_AWS_130", "public subnet of the NAT gateway only; nothing else "
                                                             "runs in it"))
            skip(vpc, ("CKV2_AWS_12", "the default security group is unused: MWAA gets its own group below"))
            sg = ec2.SecurityGroup(self, "MwaaGroup", vpc=vpc, description=f"{n.prefix}: MWAA (self-referencing)",
                                   allow_all_outbound=True)
            sg.add_ingress_rule(sg, ec2.Port.all_traffic(), "MWAA components talk to each other")
            subnets = [s.subnet_id for s in vpc.private_subnets]
            groups = [sg.security_group_id]
        deployments = []
        if build_dir is not None:
            deployments.append(s3deploy.BucketDeployment(
                self, "GlueArtifacts", destination_bucket=self.artifacts,
                destination_key_prefix=f"{aws_names.GLUE_PREFIX}/",
                sources=[s3deploy.Source.asset(str(build_dir / "glue")),
                         s3deploy.Source.data(aws_names.SETTINGS_FILE, self.settings_text)],
                memory_limit=512))
            deployments.append(s3deploy.BucketDeployment(
                self, "AirflowArtifacts", destination_bucket=self.airflow_bucket,
                sources=[s3deploy.Source.asset(str(build_dir / "airflow")),
                         s3deploy.Source.data(f"dags/{aws_names.SETTINGS_FILE}", self.settings_text)],
                memory_limit=1024))
        env = mwaa.CfnEnvironment(
            self, "AirflowEnvironment", name=n.mwaa_environment, airflow_version=d.mwaa_airflow_version,
            environment_class=d.mwaa_environment_class, max_workers=d.mwaa_max_workers, min_workers=1,
            execution_role_arn=role.role_arn, source_bucket_arn=self.airflow_bucket.bucket_arn,
            dag_s3_path="dags", requirements_s3_path="requirements.txt", startup_script_s3_path="startup.sh",
            kms_key=self.key.key_arn, webserver_access_mode=d.mwaa_webserver_access,
            network_configuration=mwaa.CfnEnvironment.NetworkConfigurationProperty(
                subnet_ids=subnets, security_group_ids=groups),
            airflow_configuration_options={"core.load_examples": "False", "core.dags_are_paused_at_creation": "False"},
            logging_configuration=mwaa.CfnEnvironment.LoggingConfigurationProperty(**{
                kind: mwaa.CfnEnvironment.ModuleLoggingConfigurationProperty(enabled=True, log_level="INFO")
                for kind in ("dag_processing_logs", "scheduler_logs", "task_logs", "webserver_logs", "worker_logs")}))
        for dep in deployments:
            env.node.add_dependency(dep)


# ---- helpers -----------------------------------------------------------------------------------------------------
def _document(statements: list[policies.Statement]) -> iam.PolicyDocument:
    return iam.PolicyDocument(statements=[iam.PolicyStatement.from_json(s.to_json()) for s in statements])


def _skip_wildcards(role: iam.Role, why: str) -> None:
    skip(role, ("CKV_AWS_111", why), ("CKV_AWS_356", why))


def _wheel_name(build_dir: Path | None) -> str:
    """The job wheel's file name (``msp_lakehouse-<version>-py3-none-any.whl``), from the build or the project."""
    if build_dir is not None:
        wheels = sorted((build_dir / "glue").glob("*.whl"))
        if len(wheels) != 1:
            raise FileNotFoundError(f"expected one wheel in {build_dir / 'glue'}, found {len(wheels)}: run "
                                    "`python -m infra.build` first")
        return wheels[0].name
    from infra.build import wheel_file_name

    return wheel_file_name()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in text.replace("-", "_").replace(".", "_").split("_"))

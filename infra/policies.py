"""IAM statements of every role, derived from the declarations (no CDK here: the policy tests read them too).

Each Glue job runs one *unit* (an agent, or a platform stage; :func:`lakehouse.aws_names.units`) under its own
role, which may only:

* read and write the S3 prefixes of the tables its stages write, and read those of the tables they read
  (``lake/<zone>/<table>/``), plus the run's own small files (run reports, stage results, its stages' state
  files), the model registry (read; write when it trains), the quality reports (the gate), the landing area
  (ingestion); maintenance alone may touch every table and delete files;
* get, create and update the Glue catalog entries of the tables it writes, get those it reads;
* put events on the deployment's bus: the dispatcher alone (every agent's ``Source``, ``msp.<agent>``); the
  other stages write their events into the lake's outbox, which the dispatcher routes;
* invoke the Bedrock models its settings name (``<agent>.bedrock_model_id``), and no other;
* read the job's script, wheel and settings, write its logs and metrics, use the lake's KMS key.

MWAA's role may start and watch these Glue jobs and read their stage results, besides what MWAA itself needs
to run (its bucket, logs, metrics, its Celery queues); nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lakehouse import aws_names
from lakehouse.aws_names import LAKE_PREFIX, LANDING_PREFIX, Access, AwsNames


@dataclass(frozen=True)
class Statement:
    """One IAM policy statement (plain data: CDK turns it into a ``PolicyStatement``)."""

    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Sid": self.sid, "Effect": "Allow", "Action": list(self.actions),
                               "Resource": list(self.resources)}
        if self.conditions:
            out["Condition"] = self.conditions
        return out


def s3_arn(bucket: str, key: str = "") -> str:
    return f"arn:aws:s3:::{bucket}" + (f"/{key}" if key else "")


def glue_arn(names: AwsNames, kind: str, *parts: str) -> str:
    base = f"arn:aws:glue:{names.region}:{names.account}"
    return base + ":catalog" if kind == "catalog" else f"{base}:{kind}/" + "/".join(parts)


READ = ("s3:GetObject", "s3:GetObjectVersion")
WRITE = ("s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:AbortMultipartUpload")
DELETE = ("s3:DeleteObject",)
GLUE_READ = ("glue:GetDatabase", "glue:GetTable")
GLUE_WRITE = ("glue:GetDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable")


def bedrock_arns(names: AwsNames, model_id: str) -> list[str]:
    """A foundation model, or a cross-region inference profile (``us.``/``eu.``/``apac.``/``global.``) and the
    model it routes to in any region."""
    head, _, rest = model_id.partition(".")
    if head in ("us", "eu", "apac", "global") and rest:
        return [f"arn:aws:bedrock:{names.region}:{names.account}:inference-profile/{model_id}",
                f"arn:aws:bedrock:*::foundation-model/{rest}"]
    return [f"arn:aws:bedrock:{names.region}::foundation-model/{model_id}"]


def unit_statements(names: AwsNames, acc: Access, key_arn: str) -> list[Statement]:
    """Every statement of a unit's job role."""
    lake, landing, artifacts = names.lake_bucket, names.landing_bucket, names.artifacts_bucket
    meta = f"{LAKE_PREFIX}/_meta"
    if acc.all_tables:
        write_prefixes = [f"{LAKE_PREFIX}/"]
        read_prefixes: list[str] = []
    else:
        write_prefixes = sorted({aws_names.table_prefix(d) for d in acc.writes})
        read_prefixes = sorted({aws_names.table_prefix(d) for d in acc.reads} - set(write_prefixes))
        write_prefixes += [f"{meta}/runs/", f"{meta}/stage-results/"]
        write_prefixes += [f"{meta}/stages/{stage}.json" for stage in acc.stages]
        if acc.quality_reports:
            write_prefixes.append(f"{meta}/quality/")
        if acc.models:
            write_prefixes.append(f"{LAKE_PREFIX}/ml-models/")
        else:
            read_prefixes.append(f"{LAKE_PREFIX}/ml-models/")
    own = [p + "*" if p.endswith("/") else p for p in write_prefixes]
    out = [
        Statement("WriteOwnTables", WRITE + (DELETE if acc.all_tables else ()),
                  tuple(s3_arn(lake, p) for p in own)),
        Statement("FolderMarkers", ("s3:PutObject",),
                  tuple(s3_arn(lake, m) for m in aws_names.folder_markers(write_prefixes))),
    ]
    if read_prefixes:
        out.append(Statement("ReadInputTables", READ, tuple(s3_arn(lake, p + "*") for p in read_prefixes)))
    listed = sorted({p + "*" for p in write_prefixes + read_prefixes if p.endswith("/")} |
                    {p for p in write_prefixes if not p.endswith("/")} |
                    set(aws_names.folder_markers(write_prefixes + read_prefixes)))
    out.append(Statement("ListOwnPrefixes", ("s3:ListBucket",), (s3_arn(lake),),
                         {"StringLike": {"s3:prefix": listed}}))
    if acc.landing:
        out += [Statement("ReadLanding", READ, (s3_arn(landing, f"{LANDING_PREFIX}/*"),)),
                Statement("ListLanding", ("s3:ListBucket",), (s3_arn(landing),),
                          {"StringLike": {"s3:prefix": [f"{LANDING_PREFIX}/*", f"{LANDING_PREFIX}/", ""]}})]
    out.append(Statement("ReadJobArtifacts", READ, (s3_arn(artifacts, f"{aws_names.GLUE_PREFIX}/*"),)))
    out.append(Statement("UseLakeKey", ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"),
                         (key_arn,)))

    # ---- Glue Data Catalog -------------------------------------------------------------------------------
    if acc.all_tables:
        dbs = [names.glue_database(z) for z in aws_names.zone_roots()]
        tables = [glue_arn(names, "table", db, "*") for db in dbs]
        out.append(Statement("CatalogAllTables", (*GLUE_WRITE, "glue:GetTables"),
                             (glue_arn(names, "catalog"), *(glue_arn(names, "database", d) for d in dbs), *tables)))
    else:
        written = sorted(aws_names.table_glue_name(names, d) for d in acc.writes)
        read = sorted({aws_names.table_glue_name(names, d) for d in acc.reads} - set(written))
        out.append(Statement("CatalogOwnTables", (*GLUE_WRITE, "glue:CreateDatabase"), (
            glue_arn(names, "catalog"), *sorted({glue_arn(names, "database", db) for db, _ in written}),
            *(glue_arn(names, "table", db, t) for db, t in written))))
        if read:
            out.append(Statement("CatalogInputTables", GLUE_READ, (
                glue_arn(names, "catalog"), *sorted({glue_arn(names, "database", db) for db, _ in read}),
                *(glue_arn(names, "table", db, t) for db, t in read))))

    # ---- events, models, logs ----------------------------------------------------------------------------
    if acc.event_sources:
        bus = f"arn:aws:events:{names.region}:{names.account}:event-bus/{names.event_bus}"
        out.append(Statement("PutOwnEvents", ("events:PutEvents",), (bus,),
                             {"StringEquals": {"events:source": list(acc.event_sources)}}))
    if acc.bedrock_models:
        arns = sorted({a for m in acc.bedrock_models for a in bedrock_arns(names, m)})
        out.append(Statement("InvokeConfiguredModel", ("bedrock:InvokeModel",), tuple(arns)))
    logs = f"arn:aws:logs:{names.region}:{names.account}:log-group:/aws-glue/*"
    out += [
        Statement("JobLogs", ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                              "logs:AssociateKmsKey"), (logs, f"{logs}:log-stream:*")),
        Statement("JobMetrics", ("cloudwatch:PutMetricData",), ("*",),
                  {"StringEquals": {"cloudwatch:namespace": "Glue"}}),
    ]
    return [s for s in out if s.resources]


def mwaa_statements(names: AwsNames, key_arn: str, job_names: list[str]) -> list[Statement]:
    """MWAA's execution role: what MWAA needs to run, and starting/watching the deployment's Glue jobs."""
    env_arn = f"arn:aws:airflow:{names.region}:{names.account}:environment/{names.mwaa_environment}"
    logs = f"arn:aws:logs:{names.region}:{names.account}:log-group:airflow-{names.mwaa_environment}-*"
    return [
        Statement("StartAndWatchGlueJobs", ("glue:GetJob", "glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns"),
                  tuple(glue_arn(names, "job", j) for j in job_names)),
        Statement("ReadStageResults", READ, (s3_arn(names.lake_bucket, f"{LAKE_PREFIX}/_meta/stage-results/*"),)),
        Statement("ListStageResults", ("s3:ListBucket",), (s3_arn(names.lake_bucket),),
                  {"StringLike": {"s3:prefix": [f"{LAKE_PREFIX}/_meta/stage-results/*"]}}),
        # ---- what MWAA itself needs (AWS's documented execution-role policy, scoped to this environment) ----
        Statement("PublishMetrics", ("airflow:PublishMetrics",), (env_arn,)),
        Statement("ReadAirflowBucket", ("s3:GetObject*", "s3:GetBucket*", "s3:List*"),
                  (s3_arn(names.airflow_bucket), s3_arn(names.airflow_bucket, "*"))),
        Statement("AccountPublicAccessBlock", ("s3:GetAccountPublicAccessBlock",), ("*",)),
        Statement("AirflowLogs", ("logs:CreateLogStream", "logs:CreateLogGroup", "logs:PutLogEvents",
                                  "logs:GetLogEvents", "logs:GetLogRecord", "logs:GetLogGroupFields",
                                  "logs:GetQueryResults"), (logs, f"{logs}:log-stream:*")),
        Statement("DescribeLogGroups", ("logs:DescribeLogGroups",), ("*",)),
        Statement("AirflowMetrics", ("cloudwatch:PutMetricData",), ("*",)),
        Statement("CeleryQueues", ("sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                                   "sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:SendMessage"),
                  (f"arn:aws:sqs:{names.region}:*:airflow-celery-*",)),
        Statement("UseKey", ("kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*", "kms:Encrypt"), (key_arn,)),
    ]

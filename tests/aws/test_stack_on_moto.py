"""The aws profile end to end, on the dev stack deployed onto moto (tests/aws/moto_stack.py).

The synthesized dev template is deployed on a moto server of this module's own; the platform's settings are
read back from the stack's outputs (``msp aws settings --from-stack``, DescribeStacks) and uploaded where the
jobs' ``--msp_config`` points. A tiny landing (``msp generate --scale tiny --seed 42 --start 2024-01-01
--days 1``) goes to the landing bucket. Then one day runs stage by stage as on AWS, each stage a run of its
own unit's Glue job, started by the name the runtime derives with the arguments the Airflow task builds: the
ingestion and the quality gate per landing source (as ``msp_ingest`` does) for the sources one agent reads,
that agent's daily stages, and the event dispatcher. The lake is Iceberg on moto's S3 with the catalog in
moto's Glue (in the stack's databases); the dispatcher puts the agent's events on the stack's bus, whose rule
delivers them to the consuming agent's SQS inbox. Every name the runtime uses is checked against what the
stack created: buckets, databases, job names, bus, queues, workgroup, the settings file.

The day takes 95-115 s on a shared 2-core machine at a load average of 3 to 8 (the quality gate of the psa
source alone is 35-50 s against moto),
so that test is an ``e2e`` one (``make test-e2e``); the names and the Athena call run in ``make test``, on the
stack deployed in a few seconds (the template synthesized once per process with ``tests/infra``).

**What moto cannot cover, and how it is checked instead**

- *Glue runs no job.* moto accepts ``StartJobRun`` (so the job must exist under the runtime's name, and its
  arguments are recorded); the test then plays the Glue worker: ``lakehouse.glue_entry`` with the job's default
  arguments and the run's, as Glue passes them, and the stage result read back as Airflow's ``record`` task
  reads it. Glue 6.0 itself (Spark 4.1, Python 3.13) is not here: the job engine is DuckDB over S3
  (``MSP_ENGINE=duckdb``) because local Spark has no S3 filesystem without the hadoop-aws jars. The jobs'
  Spark parity is tested on a local lake (``tests/*/test_spark_parity.py``), ``glue_entry.main`` with
  stand-in ``awsglue`` modules and the Airflow side of the Glue runner in ``tests/dags/test_glue_dags.py``.
- *Athena runs no SQL.* ``msp sql`` is checked for the shape of its call (the stack's workgroup, the analytics
  database, the results location) on a result queued through moto's API; the SQL itself is Athena's to run.
- *IAM is not enforced.* Every S3 object and Glue table a stage run created, changed or deleted is checked
  against the template's statements of that stage's own role (``tests/infra/iam.py``), the events' sources
  against the dispatcher's; ``tests/infra/test_policies.py`` checks every role by evaluation. What a run
  *reads* is not observed here (only the policy tests cover reads).
- *Not emulated at all*: KMS encryption (moto keeps the key but does not encrypt), bucket/queue/topic policies
  (TLS only), public-access blocks, server access logs, EventBridge retries and dead-letter delivery, MWAA,
  CloudWatch alarms: the template tests, cfn-lint and checkov (``tests/infra``) check those.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

import schemas
from lakehouse import aws_names
from tests.infra.conftest import ACCOUNT, REGION, needs_node, physical_names, synth
from tests.infra.iam import allowed, role_statements

pytestmark = [needs_node, pytest.mark.xdist_group("infra-template"),
              pytest.mark.filterwarnings("ignore:Tried to parse AWS::")]  # a type moto's CloudFormation skips
REPO = Path(__file__).resolve().parents[2]
NAMES = aws_names.AwsNames("dev", account=ACCOUNT, region=REGION)
DAY = date(2024, 1, 1)
#: Its stages emit sales.opportunity.identified on the tiny MSP's first day, which a declared rule routes to
#: another agent's inbox: the agent whose day this test runs.
AGENT = "spo"
EVENT = "sales.opportunity.identified"
GLUE_ARN = f"arn:aws:glue:{REGION}:{ACCOUNT}"
TIMES: dict[str, float] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def moto_server(port: int, log: Path) -> subprocess.Popen:
    """A moto server in a process of its own: moto's state is global to a process, so a server inside the
    test process would share it with the other moto tests (their buckets, databases, queues)."""
    import urllib.request

    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the moto server did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The dev stack on a fresh moto server, the settings file from its outputs, uploaded for the jobs."""
    import boto3

    from lakehouse.cli import main as msp
    from lakehouse.environment import forget_catalogs
    from tests.aws.moto_stack import deploy

    work = tmp_path_factory.mktemp("aws-e2e")
    port = _free_port()
    server = moto_server(port, work / "moto.log")
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):  # the developer's own AWS and msp settings stay out
            if name.startswith(("AWS_", "MSP_")):
                mp.delenv(name)
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                            "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                            "MSP_HOME": str(work / "home"), "MSP_ENGINE": "duckdb"}.items():
            mp.setenv(name, value)
        boto3.setup_default_session()
        forget_catalogs()
        t = time.monotonic()
        py_stack, template = synth("dev")
        TIMES["synth (shared with tests/infra)"] = time.monotonic() - t
        t = time.monotonic()
        session = boto3.Session(region_name=REGION)
        deployed = deploy(session, NAMES.stack, template)
        config = work / "msp.toml"
        assert msp(["aws", "settings", "--from-stack", NAMES.stack, "--region", REGION, "--out", str(config)]) == 0
        bucket, key = NAMES.settings_location.removeprefix("s3://").split("/", 1)
        # what the stack's bucket deployment uploads for the jobs (a Lambda moto does not run)
        session.client("s3").put_object(Bucket=bucket, Key=key, Body=py_stack.settings_text.encode())
        TIMES["deploy on moto"] = time.monotonic() - t
        yield SimpleNamespace(session=session, template=template, deployed=deployed, config=config, work=work,
                              py_stack=py_stack)
        forget_catalogs()
        boto3.DEFAULT_SESSION = None
    server.terminate()
    server.wait(timeout=30)


def _settings(stack):
    from lakehouse.config import load_settings

    return load_settings(stack.config, env=dict(os.environ))


def _resources(template, kind):
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == kind}


def test_the_settings_from_the_stacks_outputs_name_what_the_stack_created(stack, capsys):
    from lakehouse import orchestration as orch
    from lakehouse.agents import registry
    from lakehouse.cli import main as msp
    from lakehouse.config import load_settings

    s = _settings(stack)
    p = s.platform
    # the settings file the stack uploads for the jobs says the same
    uploaded = stack.work / "uploaded.toml"
    uploaded.write_text(stack.py_stack.settings_text)
    assert load_settings(uploaded, env=dict(os.environ)).values["platform"] == s.values["platform"]
    assert (p.profile, p.table_catalog, p.catalog, p.event_bus, p.runner) == ("aws", "glue", "athena",
                                                                             "eventbridge", "glue")
    session = stack.session
    s3, glue, sqs = session.client("s3"), session.client("glue"), session.client("sqs")
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert buckets == {b["BucketName"] for b in _resources(stack.template, "AWS::S3::Bucket").values()}
    for uri in (p.lake_root, p.landing_root, p.glue_scripts_location, p.athena_output):
        assert uri.removeprefix("s3://").split("/")[0] in buckets, uri
    # every stage's Glue job, by the name the runtime starts it under, runs as its unit's role
    for name in registry().stages:
        job = glue.get_job(JobName=orch.glue_job_name(s, name))["Job"]
        assert job["Role"].endswith(f":role/{NAMES.role(aws_names.unit_of(name))}"), name
        assert job["DefaultArguments"]["--msp_config"] == NAMES.settings_location
        assert job["Command"]["ScriptLocation"] == orch.glue_script_location(s)
    # every dataset's Glue database is one the stack created
    databases = {d["Name"] for d in glue.get_databases()["DatabaseList"]}
    assert {ds.glue_database(p.glue_database_prefix) for ds in schemas.catalog().values()} == databases
    assert session.client("events").describe_event_bus(Name=p.eventbridge_bus_name)["Name"] == NAMES.event_bus
    for agent in aws_names.consumers():
        assert sqs.get_queue_url(QueueName=NAMES.inbox_queue(agent))["QueueUrl"]
    wg = session.client("athena").get_work_group(WorkGroup=p.athena_workgroup)["WorkGroup"]
    assert wg["Configuration"]["ResultConfiguration"]["OutputLocation"] == p.athena_output
    # msp aws names lists every name the stack gives a resource
    capsys.readouterr()
    assert msp(["aws", "names", "--env", "dev", "--account", ACCOUNT, "--region", REGION]) == 0
    listed = {line.split()[-1] for line in capsys.readouterr().out.splitlines() if line.strip()}
    created = set(physical_names(stack.template).values())
    assert created <= listed, sorted(created - listed)


# ---- one day, stage by stage, as Glue job runs ----------------------------------------------------------------
class Observed:
    """What one stage run changed in the lake bucket and the Glue catalog, checked against its role."""

    def __init__(self, stack):
        self.s3, self.glue = stack.session.client("s3"), stack.session.client("glue")
        self.template = stack.template
        self.objects, self.tables = self._objects(), self._tables()
        self.violations: list[str] = []
        self.checked = {"objects written": 0, "objects deleted": 0, "tables created or changed": 0}

    def _objects(self) -> dict[str, str]:
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=NAMES.lake_bucket):
            out.update({o["Key"]: f"{o['ETag']} {o['LastModified']}" for o in page.get("Contents", [])})
        return out

    def _tables(self) -> dict[tuple[str, str], str]:
        out = {}
        for db in self.glue.get_databases()["DatabaseList"]:
            for page in self.glue.get_paginator("get_tables").paginate(DatabaseName=db["Name"]):
                out.update({(db["Name"], t["Name"]): t.get("Parameters", {}).get("metadata_location", "")
                            for t in page["TableList"]})
        return out

    def check(self, stage: str) -> None:
        unit = aws_names.unit_of(stage)
        st = role_statements(self.template, NAMES.role(unit))
        objects, tables = self._objects(), self._tables()
        s3 = f"arn:aws:s3:::{NAMES.lake_bucket}"
        for key in sorted(k for k, v in objects.items() if self.objects.get(k) != v):
            self.checked["objects written"] += 1
            if not allowed(st, "s3:PutObject", f"{s3}/{key}"):
                self.violations.append(f"{stage} ({unit}) wrote s3://{NAMES.lake_bucket}/{key}")
        for key in sorted(set(self.objects) - set(objects)):
            self.checked["objects deleted"] += 1
            if not allowed(st, "s3:DeleteObject", f"{s3}/{key}"):
                self.violations.append(f"{stage} ({unit}) deleted s3://{NAMES.lake_bucket}/{key}")
        for (db, name), meta in sorted(tables.items()):
            if self.tables.get((db, name)) == meta:
                continue
            self.checked["tables created or changed"] += 1
            action = "glue:UpdateTable" if (db, name) in self.tables else "glue:CreateTable"
            for arn in (f"{GLUE_ARN}:catalog", f"{GLUE_ARN}:database/{db}", f"{GLUE_ARN}:table/{db}/{name}"):
                if not allowed(st, action, arn):
                    self.violations.append(f"{stage} ({unit}): {action} on {arn}")
        self.objects, self.tables = objects, tables


def run_as_glue(stack, settings, observed: Observed, stage: str, params: dict | None = None) -> dict:
    """One stage as a Glue job run: StartJobRun on the stage's job (what GlueJobOperator calls), the played
    worker (``glue_entry`` with the job's default arguments, then the run's), the result as ``record`` reads it."""
    from lakehouse import glue_entry
    from lakehouse import orchestration as orch

    glue = stack.session.client("glue")
    t = time.monotonic()
    job = orch.glue_job_name(settings, stage)
    run_id = f"af-e2e-{stage}-{'-'.join((params or {}).get('sources', []))}".rstrip("-")
    arguments = orch.glue_arguments(settings, stage, [DAY], params, run_id)
    started = glue.start_job_run(JobName=job, Arguments=arguments)
    recorded = glue.get_job_run(JobName=job, RunId=started["JobRunId"])["JobRun"]["Arguments"]
    assert arguments.items() <= recorded.items()  # moto shows the job's default arguments merged in
    defaults = glue.get_job(JobName=job)["Job"]["DefaultArguments"]
    argv = [x for name, value in {**defaults, **arguments}.items() for x in (name, value)]
    glue_entry.run_job(glue_entry.parse_arguments(argv))
    result = orch.read_stage_result(settings, run_id)
    orch.check(result)
    assert result["stage"] == stage
    observed.check(stage)
    TIMES[f"{stage} {params or ''}".strip()] = time.monotonic() - t
    return result


@pytest.mark.e2e  # 95-115 s on a shared 2-core machine (the psa source's gate is 35-50 s on moto): make test-e2e
def test_one_day_of_ingestion_gate_and_an_agent_runs_as_glue_jobs_and_its_events_reach_the_consumers_inbox(stack):
    from lakehouse import orchestration as orch
    from lakehouse.lake import Lake

    settings = _settings(stack)
    session = stack.session
    s3 = session.client("s3")
    t = time.monotonic()
    landing = stack.work / "landing"
    subprocess.run([sys.executable, "-m", "lakehouse.cli", "generate", "--scale", "tiny", "--seed", "42",
                    "--start", DAY.isoformat(), "--days", "1", "--out", str(landing),
                    "--truth", str(stack.work / "truth")], cwd=stack.work, check=True, capture_output=True)
    bucket, prefix = settings.landing_root.removeprefix("s3://").split("/", 1)
    for f in sorted(p for p in landing.rglob("*") if p.is_file()):
        s3.upload_file(str(f), bucket, f"{prefix}/{f.relative_to(landing).as_posix()}")
    TIMES["generate and upload the landing"] = time.monotonic() - t

    pipe = orch.Pipeline()
    stages = [s for s in pipe.agent_dags()[AGENT] if s.kind != "handler"]
    inputs = {d for s in stages for d in pipe.reg.inputs(s)}
    sources = sorted({orch.source_of(schemas.get(d)) for d in inputs} - {None})
    assert sources, "the agent reads no landing source"
    observed = Observed(stack)
    for source in sources:  # as msp_ingest does: each source's ingestion, then its gate
        for st in pipe.ingestion:
            result = run_as_glue(stack, settings, observed, st.name, {"sources": [source]})
            assert result["status"] == "ok", result
    for st in stages:
        run_as_glue(stack, settings, observed, st.name)
    result = run_as_glue(stack, settings, observed, "events.dispatch")
    assert not observed.violations, "\n".join(observed.violations)
    assert observed.checked["objects written"] > 100 and observed.checked["tables created or changed"] > 20, (
        observed.checked)

    # the tables are Iceberg tables in the stack's databases, and the runtime created no database of its own
    glue = session.client("glue")
    stack_dbs = {p["DatabaseInput"]["Name"] for p in _resources(stack.template, "AWS::Glue::Database").values()}
    assert {d["Name"] for d in glue.get_databases()["DatabaseList"]} == stack_dbs
    opportunities = schemas.get("analytics.sales_opportunities")
    table = glue.get_table(DatabaseName=opportunities.glue_database(settings.platform.glue_database_prefix),
                           Name=opportunities.name)["Table"]
    assert table["Parameters"]["table_type"].upper() == "ICEBERG"
    assert table["Parameters"]["metadata_location"].startswith(f"{settings.lake_root}/")

    # the agent's events went onto the stack's bus once each; the stack's rule put them in the consumer's inbox
    lake = Lake.from_settings(settings)
    outbox = lake.read_arrow(schemas.get("events.outbox"), {"dt": [DAY.isoformat()]}).to_pylist()
    emitted = {r["event_id"] for r in outbox if r["event_type"] == EVENT}
    assert emitted, f"{AGENT} emitted no {EVENT} on {DAY}"
    sqs = session.client("sqs")
    received: dict[str, list[dict]] = {}
    for queue in [NAMES.inbox_queue(a) for a in aws_names.consumers()] + [NAMES.rules_dlq]:
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        got: list[dict] = []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            got += [json.loads(m["Body"]) for m in batch]
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
        received[queue] = got
    (consumer,) = [a for t, a, _ in aws_names.routes() if t == EVENT]
    inbox = received.pop(NAMES.inbox_queue(consumer))
    assert {m["detail"]["id"] for m in inbox} == emitted  # the detail is the event's envelope
    assert len(inbox) == len(emitted)
    assert {(m["detail-type"], m["source"]) for m in inbox} == {(EVENT, aws_names.event_source(AGENT))}
    assert not any(received.values()), {q: len(m) for q, m in received.items()}  # nothing misrouted, no DLQ
    dispatcher = role_statements(stack.template, NAMES.role(aws_names.unit_of("events.dispatch")))
    bus = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{settings.platform.eventbridge_bus_name}"
    assert all(allowed(dispatcher, "events:PutEvents", bus, {"events:source": m["source"]}) for m in inbox)
    # Airflow's record step (MWAA's role) may read every stage result the jobs left
    mwaa = role_statements(stack.template, NAMES.mwaa_role)
    results = [k for k in observed.objects if k.startswith(f"{aws_names.LAKE_PREFIX}/_meta/stage-results/")]
    assert results and all(allowed(mwaa, "s3:GetObject", f"arn:aws:s3:::{NAMES.lake_bucket}/{k}") for k in results)
    print("\n" + "\n".join(f"{v:6.1f} s  {k}" for k, v in TIMES.items()), observed.checked)


def test_msp_sql_queries_athena_in_the_stacks_workgroup_and_database(stack, capsys):
    """moto's Athena runs no SQL: the result is queued through moto's API; what is checked is the call."""
    import urllib.request

    from lakehouse import cli

    settings = _settings(stack)
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    canned = {"account_id": ACCOUNT, "region": REGION, "results": [{
        "rows": [{"Data": [{"VarCharValue": "state"}, {"VarCharValue": "n"}]},
                 {"Data": [{"VarCharValue": "Qualified"}, {"VarCharValue": "9"}]}],
        "column_info": [{"Name": c, "Type": t, "CatalogName": "", "SchemaName": "", "TableName": "", "Label": c}
                        for c, t in (("state", "varchar"), ("n", "bigint"))]}]}
    request = urllib.request.Request(f"{endpoint}/moto-api/static/athena/query-results", method="POST",
                                     data=json.dumps(canned).encode(), headers={"Content-Type": "application/json"})
    assert urllib.request.urlopen(request).status == 201
    sql = "SELECT state, count(*) AS n FROM sales_opportunities GROUP BY state ORDER BY n DESC"
    assert cli.main(["--config", str(stack.config), "sql", sql, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"state": "Qualified", "n": 9}]
    athena = stack.session.client("athena")
    (q,) = [q for q in _executions(athena, settings.platform.athena_workgroup) if q["Query"] == sql]
    (wg,) = _resources(stack.template, "AWS::Athena::WorkGroup").values()
    assert (q["Query"], q["WorkGroup"]) == (sql, wg["Name"])
    assert q["QueryExecutionContext"]["Database"] == NAMES.glue_database("analytics")
    assert q["ResultConfiguration"]["OutputLocation"].startswith(
        wg["WorkGroupConfiguration"]["ResultConfiguration"]["OutputLocation"])


def _executions(athena, workgroup: str) -> list[dict]:
    ids = athena.list_query_executions(WorkGroup=workgroup)["QueryExecutionIds"]
    return [athena.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]


def test_msp_aws_views_creates_every_panel_view_in_the_stacks_workgroup_and_the_stack_saved_them(stack, capsys):
    """moto's Athena records the statements (it runs no SQL): one CREATE OR REPLACE VIEW per panel view, in the
    workgroup and the analytics database of the settings read from the stack's outputs; the stack's saved
    queries in that workgroup are the same statements."""
    from lakehouse.cli import main as msp
    from lakehouse.dashboard.athena import panel_views

    settings = _settings(stack)
    p = settings.platform
    views = panel_views(p.glue_database_prefix)
    expected = {v.sql: v for v in views.views}
    assert len(expected) == len(views.views) > 10
    athena = stack.session.client("athena")
    before = {q["QueryExecutionId"] for q in _executions(athena, p.athena_workgroup)}
    capsys.readouterr()
    assert msp(["--config", str(stack.config), "aws", "views", "--dry-run"]) == 0
    printed = capsys.readouterr()
    assert all(f"{v.sql};" in printed.out for v in views.views)
    assert all(f"not a view: {n.panel_id} " in " ".join(printed.err.split()) for n in views.not_views)
    assert {q["QueryExecutionId"] for q in _executions(athena, p.athena_workgroup)} == before  # ran nothing
    assert msp(["--config", str(stack.config), "aws", "views"]) == 0
    out = capsys.readouterr().out
    new = [q for q in _executions(athena, p.athena_workgroup) if q["QueryExecutionId"] not in before]
    assert sorted(q["Query"] for q in new) == sorted(expected)  # one statement per view, each once
    (wg,) = _resources(stack.template, "AWS::Athena::WorkGroup").values()
    analytics = NAMES.glue_database("analytics")
    for q in new:
        assert q["Query"].startswith(f'CREATE OR REPLACE VIEW "{analytics}".')
        assert (q["WorkGroup"], q["QueryExecutionContext"]["Database"]) == (wg["Name"], analytics)
        assert q["ResultConfiguration"]["OutputLocation"].startswith(p.athena_output)
        assert q["Status"]["State"] == "SUCCEEDED"
        assert f"view {expected[q['Query']].qualified_name} " in out
    assert f"{len(new)} of {len(new)} views created or replaced" in out
    # the stack's saved queries: the same statements, in the same workgroup and database
    ids = athena.list_named_queries(WorkGroup=wg["Name"])["NamedQueryIds"]
    saved = [athena.get_named_query(NamedQueryId=i)["NamedQuery"] for i in ids]
    assert {s["Name"]: s["QueryString"] for s in saved} == {v.name: v.sql for v in views.views}
    assert {(s["WorkGroup"], s["Database"]) for s in saved} == {(wg["Name"], analytics)}

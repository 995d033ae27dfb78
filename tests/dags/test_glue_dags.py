"""The aws profile: every stage becomes a run of the Glue stage-runner job; the entry script runs it.

moto stands in for AWS (S3 for the lake, the Glue job and its runs, the Glue catalog). moto accepts job runs but
never executes their script, so the harness plays the Glue worker: right after the operator's real
``start_job_run`` it runs ``lakehouse.glue_entry`` with the arguments that were submitted. The DAG runs of
this file use an agent whose stage does no table I/O (pyiceberg's own S3 client does not follow
``AWS_ENDPOINT_URL`` to moto yet): what is tested is the Airflow side, prepare → submit → wait → record,
the job-run arguments moto received, and the asset events recorded from the result the job left on S3.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import types
import uuid
from datetime import date

import pytest

import schemas
from lakehouse import glue_entry
from lakehouse import orchestration as orch
from tests.dags import harness
from tests.dags.conftest import REPO, DagRunner

DAY = date(2024, 1, 1)
JOB = "msp-stage-runner"


def test_the_entry_script_imports_no_glue_and_no_spark_until_main():
    code = ("import sys, lakehouse.glue_entry; "
            "print([m for m in ('awsglue', 'pyspark', 'pandas', 'pyarrow') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_main_builds_the_glue_context_hands_its_session_over_and_runs_the_stage(settings, tmp_path, monkeypatch):
    """``main`` with stand-ins for the awsglue modules (they only exist on Glue), on a local lake."""
    from lakehouse import spark as spark_module
    from lakehouse.lake import Lake
    from lakehouse.synth import generate

    generate(scale="tiny", seed=3, landing_root=tmp_path / "landing", truth_root=tmp_path / "truth", start=DAY, days=1)
    calls: list[str] = []
    session = types.SimpleNamespace(conf=types.SimpleNamespace(set=lambda k, v: calls.append(f"conf {k}")))

    class GlueContext:
        def __init__(self, sc):
            calls.append("GlueContext")
            self.spark_session = session

    class Job:
        def __init__(self, ctx):
            pass

        def init(self, name, args):
            calls.append(f"init {name}")

        def commit(self):
            calls.append("commit")

    def get_resolved_options(argv, names):
        args = dict(zip(argv[1::2], argv[2::2], strict=False))
        return {n: args[f"--{n}"] for n in names}

    fakes = {"awsglue": types.ModuleType("awsglue"), "awsglue.context": types.SimpleNamespace(GlueContext=GlueContext),
             "awsglue.job": types.SimpleNamespace(Job=Job),
             "awsglue.utils": types.SimpleNamespace(getResolvedOptions=get_resolved_options),
             "pyspark.context": types.SimpleNamespace(SparkContext=types.SimpleNamespace(getOrCreate=lambda: "sc"))}
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(spark_module, "_SESSION", None)
    monkeypatch.setenv("MSP_HOME", str(settings.home))
    local = settings.with_overrides(landing_root=str(tmp_path / "landing"))
    args = orch.glue_arguments(local, "ingest", [DAY], {"sources": ["psa"]}, "af-glue-1")
    glue_entry.main(["glue_entry.py", "--JOB_NAME", JOB, *[x for kv in args.items() for x in kv]])
    assert calls[0] == "GlueContext" and calls[1] == f"init {JOB}" and calls[-1] == "commit"
    assert spark_module._SESSION is session  # the platform uses Glue's session
    result = orch.read_stage_result(settings, "af-glue-1")
    assert result["ok"] and result["params"] == {"sources": ["psa"]} and result["dates"] == [DAY.isoformat()]
    lake = Lake.from_settings(settings)
    assert lake.partition_values(schemas.get("raw.tickets")) == [DAY.isoformat()]
    assert not lake.partitions(schemas.get("raw.software_inventory"))  # rmm was not asked for


def test_a_failed_stage_fails_the_glue_job(settings):
    args = glue_entry.parse_arguments(["--stage", "no.such.stage", "--dates", "2024-01-01", "--lake_root",
                                       settings.lake_root, "--landing_root", settings.landing_root, "--run_id", "r1",
                                       "--params", "{}", "--msp_profile", "local"])
    with pytest.raises(orch.StageFailed, match="unknown stage"):
        glue_entry.run_job(args)
    with pytest.raises(ValueError, match="missing: --lake_root, --landing_root, --run_id"):  # before Spark starts
        glue_entry.parse_arguments(["--stage", "ingest", "--dates", "2024-01-01"])


# ---- DAG runs on the aws profile, against moto --------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def glue_scenario(airflow_db, tmp_path_factory):
    """One harness process (Airflow's start-up is the slow part) runs three DAG runs against one moto server:
    an agent whose stage succeeds over two days, one whose stage fails, and two sources' ingestion tasks."""
    import boto3
    from moto.server import ThreadedMotoServer

    work = tmp_path_factory.mktemp("glue")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_EC2_METADATA_DISABLED": "true"}
    client = {k.lower(): v for k, v in env.items() if k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=env["AWS_ENDPOINT_URL"], **client)
    glue = boto3.client("glue", region_name="us-east-1", endpoint_url=env["AWS_ENDPOINT_URL"], **client)
    bucket = f"msp-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    lake_root = f"s3://{bucket}/lake"
    site = work / "site"
    harness.write_agent_package(site, "zz", reads=(), noop=True)
    harness.write_agent_package(site, "zf", reads=(), fail="blocking expectation failed")
    with harness.agent_on_path(site):
        from tests.conftest import make_settings

        cfg = make_settings(work / "names")
        jobs = {stage: orch.glue_job_name(cfg, stage) for stage in ("zz.count", "zf.count", "ingest")}
    for name in set(jobs.values()):  # what infra/stack.py deploys: a job per unit, the lake in its defaults
        glue.create_job(
            Name=name, Role="arn:aws:iam::123456789012:role/msp-glue", GlueVersion="5.0",
            Command={"Name": "glueetl", "ScriptLocation": f"s3://{bucket}/scripts/glue_entry.py",
                     "PythonVersion": "3"},
            DefaultArguments={"--msp_profile": "aws", "--lake_root": lake_root,
                              "--landing_root": f"s3://{bucket}/landing"})
    env |= {"MSP_PROFILE": "aws", "MSP_LAKE_ROOT": lake_root, "MSP_LANDING_ROOT": f"s3://{bucket}/landing",
            "MSP_GLUE_SCRIPTS_LOCATION": f"s3://{bucket}/scripts/", "MSP_AIRFLOW__GLUE_POKE_SECONDS": "5"}
    runs = [{"dag_id": "msp_zz", "conf": {"start": "2024-01-01", "end": "2024-01-02"}},
            {"dag_id": "msp_zf", "conf": {"start": "2024-01-01", "end": "2024-01-01"}},
            {"dag_id": orch.INGEST_DAG, "tasks": r"^(crm|psa)\.ingest\.",
             "conf": {"start": "2024-01-01", "end": "2024-01-01"}}]
    try:
        out = DagRunner(airflow_db, work).run("aws", runs, work / "home", play_glue=True, extra_path=[str(site)],
                                              **env)
        job_runs = {stage: [r for r in glue.get_job_runs(JobName=name)["JobRuns"] if r["Arguments"]["--stage"] == stage]
                    for stage, name in jobs.items()}
        yield {"out": out, "runs": {r["dag_id"]: r for r in out["runs"]}, "s3": s3, "bucket": bucket,
               "lake_root": lake_root, "job_runs": job_runs}
    finally:
        server.stop()





@pytest.mark.slow
def test_each_stage_is_submitted_once_waited_for_and_recorded(glue_scenario):
    run = glue_scenario["runs"]["msp_zz"]
    assert run["state"] == "success", glue_scenario["out"]["log"][-4000:]
    assert run["tasks"] == {**{f"zz_count.{step}": "success" for step in ("prepare", "submit", "wait", "record")}}
    (job_run,) = glue_scenario["job_runs"]["zz.count"]  # submitted once
    args = job_run["Arguments"]
    submitted = (args["--stage"], args["--dates"], args["--lake_root"], args["--msp_profile"], args["--params"])
    assert submitted == ("zz.count", "2024-01-01,2024-01-02", glue_scenario["lake_root"], "aws", "{}")
    assert args["--run_id"].startswith("af-msp_zz.zz_count.prepare-")
    # the job's result on S3 is what the record step read; its asset events point at the S3 lake
    key = f"lake/{orch.RESULTS_DIR}/{args['--run_id']}.json"
    body = glue_scenario["s3"].get_object(Bucket=glue_scenario["bucket"], Key=key)["Body"].read()
    result = json.loads(body)
    assert result["ok"] and result["dates"] == ["2024-01-01", "2024-01-02"] and result["stage"] == "zz.count"
    outbox = [e for e in glue_scenario["out"]["asset_events"] if e["asset"] == orch.OUTBOX]
    assert [(e["uri"], e["source_task_id"], e["extra"]["dates"]) for e in outbox] == [
        (f"{glue_scenario['lake_root']}/events/outbox", "zz_count.record", ["2024-01-01", "2024-01-02"])]


@pytest.mark.slow
def test_a_failed_glue_job_fails_the_record_task_and_nothing_is_resubmitted(glue_scenario):
    run = glue_scenario["runs"]["msp_zf"]
    assert run["state"] == "failed"
    assert run["tasks"]["zf_count.record"] == "failed" and run["tasks"]["zf_count.submit"] == "success"
    assert "zf.count: RuntimeError: blocking expectation failed" in glue_scenario["out"]["log"]
    assert len(glue_scenario["job_runs"]["zf.count"]) == 1
    assert not [e for e in glue_scenario["out"]["asset_events"] if e["source_dag_id"] == "msp_zf"]


@pytest.mark.slow
def test_the_ingestion_dag_submits_one_glue_run_per_landing_source(glue_scenario):
    """The ingestion tasks of two sources on the aws profile: each source's ``ingest`` is one job run with its
    source, the export day and the S3 lake (the landing area is empty: each job finds nothing to load, so it
    touches no table), and each ``record`` emits its source's raw assets at their S3 locations."""
    run = glue_scenario["runs"][orch.INGEST_DAG]
    sources = ["crm", "psa"]
    assert run["state"] == "success", glue_scenario["out"]["log"][-4000:]
    assert run["tasks"] == {f"{source}.ingest.{step}": "success" for source in sources
                            for step in ("prepare", "submit", "wait", "record")}
    runs = glue_scenario["job_runs"]["ingest"]
    assert sorted(json.loads(r["Arguments"]["--params"])["sources"][0] for r in runs) == sources  # once each
    for r in runs:
        args = r["Arguments"]
        assert (args["--dates"], args["--lake_root"]) == ("2024-01-01", glue_scenario["lake_root"])
        assert args["--run_id"].startswith("af-msp_ingest.")
    tickets = [e for e in glue_scenario["out"]["asset_events"] if e["asset"] == "raw.tickets"]
    assert [(e["uri"], e["source_task_id"], e["extra"]["rows"]) for e in tickets] == [
        (f"{glue_scenario['lake_root']}/raw/tickets", "psa.ingest.record", 0)]

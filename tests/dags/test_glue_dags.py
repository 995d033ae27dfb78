"""The aws profile: every stage becomes a Glue job run; the entry script runs it on Glue's session.

moto stands in for AWS (S3 for the lake and the landing area, IAM, Glue jobs and the Glue catalog). moto
accepts job runs but never executes their script, so the harness plays the Glue worker: right after the
operator's real ``start_job_run`` it runs ``lakehouse.glue_entry`` with the arguments that were submitted.
Spark stages cannot read ``s3://`` locally (no hadoop-aws jar), so the quality tasks are marked successful
and the ``ingest`` stage (Arrow I/O) carries the test.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import types
import uuid
from datetime import date
from pathlib import Path

import pytest

import schemas
from lakehouse import glue_entry
from lakehouse import orchestration as orch
from lakehouse.lake import Lake
from tests.dags.conftest import REPO

DAY = date(2024, 1, 1)


def test_the_entry_script_imports_no_glue_and_no_spark_until_main():
    code = ("import sys, lakehouse.glue_entry; "
            "print([m for m in ('awsglue', 'pyspark', 'pandas') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_main_builds_the_glue_context_hands_its_session_over_and_runs_the_stage(settings, tmp_path, monkeypatch):
    """``main`` with stand-ins for the awsglue modules (they only exist on Glue)."""
    from lakehouse import spark as spark_module
    from lakehouse.synth import generate

    generate(scale="tiny", seed=3, landing_root=tmp_path / "landing", truth_root=tmp_path / "truth", start=DAY, days=1)
    calls: list[str] = []

    class Conf:
        def set(self, key, value):
            calls.append(f"conf {key}")

    session = types.SimpleNamespace(conf=Conf())

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
    args = orch.glue_arguments(settings.with_overrides(landing_root=str(tmp_path / "landing")), "ingest", [DAY],
                               {"sources": ["psa"]}, "af-glue-1")
    monkeypatch.setenv("MSP_HOME", str(settings.home))
    glue_entry.main(["glue_entry.py", "--JOB_NAME", "msp-stage-runner", *[x for kv in args.items() for x in kv]])
    assert calls[0] == "GlueContext" and calls[1] == "init msp-stage-runner" and calls[-1] == "commit"
    assert spark_module._SESSION is session  # the platform uses Glue's session
    result = orch.read_stage_result(settings, "af-glue-1")
    assert result["ok"] and result["params"] == {"sources": ["psa"]} and result["dates"] == [DAY.isoformat()]
    lake = Lake(settings.lake_root)
    assert lake.partitions(schemas.get("raw.tickets")) == [f"dt={DAY.isoformat()}"]
    assert not lake.partitions(schemas.get("raw.software_inventory"))  # rmm was not asked for


def test_a_failed_stage_fails_the_glue_job(settings, tmp_path):
    args = glue_entry.parse_arguments(["--stage", "no.such.stage", "--dates", "2024-01-01", "--lake_root",
                                       settings.lake_root, "--landing_root", settings.landing_root, "--run_id", "r1",
                                       "--params", "{}", "--msp_profile", "local"])
    with pytest.raises(orch.StageFailed, match="unknown stage"):
        glue_entry.run_job(args)
    with pytest.raises(ValueError, match="missing: --lake_root, --landing_root, --run_id"):  # before Spark starts
        glue_entry.parse_arguments(["--stage", "ingest", "--dates", "2024-01-01"])


# ---- the whole ingestion DAG on the aws profile, against moto --------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def moto(monkeypatch):
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_EC2_METADATA_DISABLED": "true"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield env
    server.stop()


@pytest.mark.slow
def test_the_aws_ingestion_dag_submits_glue_jobs_waits_and_records(moto, dag_runner, tmp_path):
    import boto3

    from lakehouse.synth import generate

    bucket = f"msp-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    generate(scale="tiny", seed=3, landing_root=tmp_path / "landing", truth_root=tmp_path / "truth", start=DAY, days=1)
    for path in (tmp_path / "landing").rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"landing/{path.relative_to(tmp_path / 'landing').as_posix()}")
    lake_root = f"s3://{bucket}/lake"
    glue = boto3.client("glue", region_name="us-east-1")
    glue.create_job(  # what infra/stack.py deploys: one stage-runner job, the lake in its default arguments
        Name="msp-stage-runner", Role="arn:aws:iam::123456789012:role/msp-glue", GlueVersion="5.0",
        Command={"Name": "glueetl", "ScriptLocation": f"s3://{bucket}/scripts/glue_entry.py", "PythonVersion": "3"},
        DefaultArguments={"--msp_profile": "aws", "--lake_root": lake_root,
                          "--landing_root": f"s3://{bucket}/landing"})

    env = {**moto, "MSP_PROFILE": "aws", "MSP_LAKE_ROOT": lake_root, "MSP_LANDING_ROOT": f"s3://{bucket}/landing",
           "MSP_GLUE_SCRIPTS_LOCATION": f"s3://{bucket}/scripts/", "MSP_AIRFLOW_GLUE_POKE_SECONDS": "1"}
    span = {"start": DAY.isoformat(), "end": DAY.isoformat()}
    out = dag_runner.run("aws", [{"dag_id": orch.INGEST_DAG, "conf": span, "mark_success": r".*\.quality\..*"}],
                         tmp_path / "home", play_glue=True, **env)
    run = out["runs"][0]
    assert run["state"] == "success", {t: s for t, s in run["tasks"].items() if s != "success"}
    sources = sorted(schemas.raw_sources())
    for source in sources:
        for step in ("prepare", "submit", "wait", "record"):
            assert run["tasks"][f"{source}.ingest.{step}"] == "success"

    runs = glue.get_job_runs(JobName="msp-stage-runner")["JobRuns"]
    assert len(runs) == len(sources)  # one per source: nothing was submitted twice
    submitted = sorted(json.loads(r["Arguments"]["--params"])["sources"][0] for r in runs)
    assert submitted == sources
    for r in runs:
        args = r["Arguments"]
        assert (args["--stage"], args["--dates"], args["--lake_root"], args["--msp_profile"]) == (
            "ingest", DAY.isoformat(), lake_root, "aws")
        assert args["--run_id"].startswith("af-msp_ingest.")

    lake = Lake(lake_root)
    tickets = schemas.get("raw.tickets")
    assert lake.partitions(tickets) == [f"dt={DAY.isoformat()}"]
    pointer = lake.pointer(tickets, {"dt": DAY.isoformat()})
    part = glue.get_partition(DatabaseName="msp_raw", TableName="tickets", PartitionValues=[DAY.isoformat()])
    assert part["Partition"]["StorageDescriptor"]["Location"].endswith(f"/dt={DAY.isoformat()}/{pointer['version']}/")
    events = [e for e in out["asset_events"] if e["asset"] == "raw.tickets"]
    assert [(e["source_task_id"], e["extra"]["rows"]) for e in events] == [("psa.ingest.record", pointer["rows"])]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([str(Path(__file__)), "-q"]))

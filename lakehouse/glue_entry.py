"""AWS Glue entry point: run one registered stage for some export days on the Glue job's Spark session.

The stack (``infra/stack.py``) creates one Glue 6.0 job per *unit*, an agent or a platform stage, each under
its own IAM role (:mod:`lakehouse.aws_names`: ``msp-dev-acme``, ``msp-dev-quality``...); every job runs this
script. Airflow starts the stage's job with the job-run arguments built by
:func:`lakehouse.orchestration.glue_arguments`::

    --stage quality  --dates 2024-03-01,2024-03-02  --run_id af-...  --params {"sources": ["psa"]}
    --lake_root s3://bucket/lake  --landing_root s3://bucket/landing  --msp_profile aws

The job's default arguments (``--lake_root``, ``--landing_root``, ``--msp_profile``, ``--glue_database_prefix``
and ``--msp_config``, the deployment's settings file on S3, the same one the DAGs read) fill in what a run
does not pass. ``awsglue`` only exists on Glue, so it is imported in :func:`main` and nowhere else;
everything else (:func:`parse_arguments`, :func:`run_job`) runs on plain pyspark and is tested locally. The
stage's tables are committed to the Glue Data Catalog by the same Iceberg commit path as locally, and the
stage result lands in ``<lake>/_meta/stage-results/<run id>.json`` for the Airflow task that waits on this job.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from lakehouse.config import Settings

log = logging.getLogger("lakehouse.glue_entry")
REQUIRED = ("stage", "dates", "lake_root", "landing_root", "run_id")


@dataclass(frozen=True)
class JobArguments:
    stage: str
    dates: tuple[date, ...]
    lake_root: str
    landing_root: str
    run_id: str
    params: dict[str, Any] = field(default_factory=dict)
    profile: str = "aws"
    glue_database_prefix: str | None = None
    config: str | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> JobArguments:
        missing = [a for a in REQUIRED if not values.get(a)]
        if missing:
            raise ValueError(f"Glue job arguments missing: {', '.join('--' + m for m in missing)}")
        dates = tuple(sorted({date.fromisoformat(d.strip()) for d in values["dates"].split(",") if d.strip()}))
        if not dates:
            raise ValueError("--dates is empty")
        params = json.loads(values.get("params") or "{}")
        if not isinstance(params, dict):
            raise ValueError(f"--params must be a JSON object, got {values['params']!r}")
        return cls(values["stage"], dates, values["lake_root"], values["landing_root"], values["run_id"], params,
                   values.get("msp_profile") or "aws", values.get("glue_database_prefix") or None,
                   values.get("msp_config") or None)


def parse_arguments(argv: Sequence[str]) -> JobArguments:
    """``--name value`` / ``--name=value`` pairs as Glue passes them (default arguments, then the run's;
    the last one wins); Glue's own arguments are ignored."""
    values: dict[str, str] = {}
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        if item.startswith("--"):
            name, eq, value = item[2:].partition("=")
            if not eq:
                value = items[i + 1] if i + 1 < len(items) else ""
                i += 1
            values[name] = value
        i += 1
    return JobArguments.from_mapping(values)


def job_settings(args: JobArguments, env: Mapping[str, str] | None = None) -> Settings:
    """The job's settings: the arguments decide profile and lake; the rest comes from the environment
    (``MSP_*`` variables set on the Glue job, defaults otherwise)."""
    from lakehouse.config import load_settings

    environment = dict(os.environ if env is None else env)
    environment.update({"MSP_PROFILE": args.profile, "MSP_LAKE_ROOT": args.lake_root,
                        "MSP_LANDING_ROOT": args.landing_root})
    if args.glue_database_prefix:
        environment["MSP_GLUE_DATABASE_PREFIX"] = args.glue_database_prefix
    config = fetch_config(args.config) if args.config else None
    return load_settings(config, env=environment)


def fetch_config(location: str) -> str:
    """The settings file a job argument names: a local path as it is, an ``s3://`` object copied to a
    temporary file first (the deployment's ``msp.toml``, written by the stack)."""
    if not location.startswith("s3://"):
        return location
    import tempfile

    import boto3

    bucket, _, key = location.removeprefix("s3://").partition("/")
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    fd, path = tempfile.mkstemp(prefix="msp-", suffix=".toml")
    with os.fdopen(fd, "wb") as fh:
        fh.write(body)
    return path


def run_job(args: JobArguments, session: SparkSession | None = None) -> dict[str, Any]:
    """Run the stage (on ``session`` when given, e.g. Glue's) and raise if it failed."""
    from lakehouse import orchestration

    if session is not None:
        from lakehouse.spark import use_session

        use_session(session)
    settings = job_settings(args)
    log.info("stage %s for %s on %s (run %s)", args.stage, [d.isoformat() for d in args.dates], args.lake_root,
             args.run_id)
    result = orchestration.run_stage(settings, args.stage, list(args.dates), params=args.params, run_id=args.run_id)
    orchestration.check(result)
    return result


def main(argv: Sequence[str] | None = None) -> None:
    """Glue's entry: build the GlueContext, hand its session to the platform, run the stage."""
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from awsglue.utils import getResolvedOptions
    from pyspark.context import SparkContext

    argv = list(sys.argv if argv is None else argv)
    args = parse_arguments(argv[1:])  # fails before Spark starts when an argument is missing
    resolved = getResolvedOptions(argv, ["JOB_NAME"])
    glue_context = GlueContext(SparkContext.getOrCreate())
    job = Job(glue_context)
    job.init(resolved["JOB_NAME"], resolved)
    run_job(args, glue_context.spark_session)
    job.commit()


if __name__ == "__main__":  # pragma: no cover - runs on Glue
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main()

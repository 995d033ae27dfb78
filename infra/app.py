"""CDK entry point: ``cdk synth -c env=dev`` / ``cdk deploy -c env=prod`` from the infra folder (infra/README.md).

Context values: ``env`` (default ``dev``): the deployment settings ``infra/environments/<env>.toml``;
``build`` (default ``true``): build the Glue wheel and the DAG bundle first (``infra/build.py``) and upload
them with the stack; ``false`` synthesizes without the two bucket deployments (a quick look at the template).
Account and region come from the CDK CLI (``CDK_DEFAULT_ACCOUNT``/``CDK_DEFAULT_REGION``, from your AWS
credentials); without them the template is environment-agnostic.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import aws_cdk as cdk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra import build, config
from infra.stack import LakehouseStack

#: Feature flags of this app (CDK's defaults otherwise): access logs are delivered under a bucket policy.
CONTEXT = {"@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True}


def make_stack(app: cdk.App, env_name: str, build_dir: Path | None, account: str | None = None,
               region: str | None = None) -> LakehouseStack:
    environment = config.load(env_name)
    names = environment.names("x", "y")
    return LakehouseStack(app, names.stack, environment=environment, build_dir=build_dir,
                          env=cdk.Environment(account=account, region=region),
                          description=f"MSP lakehouse ({env_name}): lake, Glue 6.0 jobs, Athena, EventBridge, MWAA")


def main() -> None:
    app = cdk.App(context=CONTEXT)
    env_name = app.node.try_get_context("env") or "dev"
    with_build = str(app.node.try_get_context("build") or "true").lower() != "false"
    build_dir = build.build() if with_build else None
    make_stack(app, env_name, build_dir, os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION"))
    app.synth()


if __name__ == "__main__":
    main()

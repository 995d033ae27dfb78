"""CDK entry point: ``cdk synth`` / ``cdk deploy`` from the infra folder (see infra/README.md).

Context values (``cdk deploy -c key=value``): ``env_name`` (default ``dev``), ``glue_database_prefix``
(default ``msp``). Account and region come from the standard AWS chain / CDK defaults.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import aws_cdk as cdk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.stack import LakehouseStack


def main() -> None:
    app = cdk.App()
    env_name = app.node.try_get_context("env_name") or "dev"
    prefix = app.node.try_get_context("glue_database_prefix") or "msp"
    LakehouseStack(
        app, f"msp-lakehouse-{env_name}", env_name=env_name, glue_database_prefix=prefix,
        env=cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")),
    )
    app.synth()


if __name__ == "__main__":
    main()

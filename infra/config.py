"""Deployment settings: ``infra/environments/<env>.toml`` (dev and prod differ only by these files).

``[deploy]`` sizes the AWS resources (:class:`DeploySettings`); every other section is a runtime settings
section, validated by the platform's own settings models and written into the deployment's settings file
(``msp.toml``) that the Glue jobs and the DAGs read, together with the names of :mod:`lakehouse.aws_names`.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lakehouse import aws_names

ENVIRONMENTS = Path(__file__).resolve().with_name("environments")


class DeploySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    project: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{0,11}$")]
    retain_data: bool
    glue_workers: Annotated[int, Field(ge=2, le=100)]
    gate_workers: Annotated[int, Field(ge=2, le=100)]
    glue_timeout_minutes: Annotated[int, Field(ge=5, le=2880)]
    glue_max_concurrent_runs: Annotated[int, Field(ge=1, le=100)]
    athena_bytes_scanned_cutoff_gb: Annotated[int, Field(ge=1, le=10_000)]
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653]
    mwaa_environment_class: Literal["mw1.micro", "mw1.small", "mw1.medium", "mw1.large", "mw1.xlarge",
                                    "mw1.2xlarge"]
    mwaa_max_workers: Annotated[int, Field(ge=1, le=25)]
    mwaa_airflow_version: Annotated[str, Field(pattern=r"^3\.\d+\.\d+$")]
    mwaa_subnet_ids: list[str]
    mwaa_security_group_ids: list[str]
    mwaa_webserver_access: Literal["PRIVATE_ONLY", "PUBLIC_ONLY"]
    alarm_email: str


@dataclass(frozen=True)
class Environment:
    """One deployment environment: its name, its sizes and its runtime settings sections."""

    name: str
    deploy: DeploySettings
    runtime: dict[str, dict[str, Any]]
    path: Path

    def names(self, account: str, region: str) -> aws_names.AwsNames:
        return aws_names.AwsNames(self.name, self.deploy.project, account, region)

    def settings_values(self, names: aws_names.AwsNames) -> dict[str, dict[str, Any]]:
        """Everything the deployment's ``msp.toml`` holds: the names, then this file's runtime sections."""
        return aws_names.merge(names.settings(), self.runtime)

    def runtime_settings(self, names: aws_names.AwsNames):
        """The effective runtime settings of the deployment (validated; e.g. the Bedrock model ids)."""
        from lakehouse.config import load_settings

        text = aws_names.settings_toml(self.settings_values(names))
        fd, path = tempfile.mkstemp(suffix=".toml")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            return load_settings(path, env={})
        finally:
            os.unlink(path)


def load(env: str, directory: Path = ENVIRONMENTS) -> Environment:
    path = directory / f"{env}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.toml")))
        raise FileNotFoundError(f"no deployment settings {path} (known environments: {known})")
    with path.open("rb") as fh:
        doc = tomllib.load(fh)
    deploy = DeploySettings(**doc.pop("deploy", {}))
    return Environment(env, deploy, doc, path)

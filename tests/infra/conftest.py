"""The stacks synthesized once per test process (10-20 s each: keep these tests on one worker, the
``infra-template`` xdist group).

``synth("dev")`` / ``synth("prod")`` synthesize a deployment at ACCOUNT/REGION without the build's bucket
deployments (what the stack tests read); ``synth("dev", build=True)`` with a stand-in build (a placeholder
wheel, entry script and DAG bundle), so the template also holds the bucket deployments and CDK's handler
Lambda that ``cdk deploy`` creates: the shape cfn-lint and checkov must pass.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

ACCOUNT, REGION = "123456789012", "us-east-1"  # moto's default account, so tests/aws can deploy it there

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="the AWS CDK needs Node.js to synthesize")

_CACHE: dict[tuple[str, bool], Any] = {}


def fake_build(root: Path) -> Path:
    """What ``python -m infra.build`` writes, with placeholder contents (the stack only uploads them)."""
    from infra.build import wheel_file_name

    for folder in ("glue", "airflow/dags"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "glue" / wheel_file_name()).write_bytes(b"placeholder wheel")
    (root / "glue" / "glue_entry.py").write_text("# placeholder\n")
    (root / "airflow" / "dags" / "placeholder.py").write_text("# placeholder\n")
    (root / "airflow" / "requirements.txt").write_text("# placeholder\n")
    (root / "airflow" / "startup.sh").write_text("#!/bin/sh\n")
    return root


def synth(env: str = "dev", build: bool = False) -> tuple[Any, dict]:
    """(stack, template) of a deployment at ACCOUNT/REGION; ``build``: with the bucket deployments."""
    key = (env, build)
    if key not in _CACHE:
        os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
        import aws_cdk as cdk
        from aws_cdk.assertions import Template

        from infra.app import CONTEXT, make_stack

        build_dir = fake_build(Path(tempfile.mkdtemp(prefix="msp-infra-build-"))) if build else None
        app = cdk.App(context=CONTEXT, outdir=tempfile.mkdtemp(prefix="msp-cdk-out-"))
        stack = make_stack(app, env, build_dir, ACCOUNT, REGION)
        _CACHE[key] = (stack, Template.from_stack(stack).to_json())
    return _CACHE[key]


@pytest.fixture(scope="session")
def dev_stack():
    return synth("dev")


@pytest.fixture(scope="session")
def template(dev_stack):
    """The dev template (without the build's bucket deployments)."""
    return dev_stack[1]


@pytest.fixture(scope="session")
def prod_template():
    return synth("prod")[1]


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: v.get("Properties", {}) for k, v in template["Resources"].items() if v["Type"] == kind}


#: Properties that give a resource its physical name.
NAME_PROPERTIES = ("BucketName", "RoleName", "QueueName", "AlarmName", "DashboardName", "TopicName", "AliasName",
                   "Name")
#: Types whose ``Name`` is a label, not the resource's identity: Athena gives each saved query an id of its own
#: (the name of the view it creates, ``dash_<panel id>``, is a table in the analytics database).
LABELLED = ("AWS::Athena::NamedQuery",)


def physical_names(template: dict) -> dict[str, str]:
    """``{logical id: name}`` of every resource the template names itself (the others get generated names)."""
    given = {}
    for logical, res in template["Resources"].items():
        if res["Type"] in LABELLED:
            continue
        props = res.get("Properties", {})
        for key in NAME_PROPERTIES:
            if isinstance(props.get(key), str):
                given[logical] = props[key]
        if "DatabaseInput" in props:
            given[logical] = props["DatabaseInput"]["Name"]
    return given

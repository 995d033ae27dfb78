"""The dev stack synthesized once per test process (about a minute: keep these tests on one worker)."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

ACCOUNT, REGION = "123456789012", "us-east-1"  # moto's default account, so the e2e test can deploy it there

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="the AWS CDK needs Node.js to synthesize")

_CACHE: dict[str, Any] = {}


def synth(env: str = "dev") -> tuple[Any, dict]:
    """(stack, template) of a deployment at ACCOUNT/REGION, without the build's bucket deployments."""
    if env not in _CACHE:
        os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
        import aws_cdk as cdk
        from aws_cdk.assertions import Template

        from infra.app import CONTEXT, make_stack

        app = cdk.App(context=CONTEXT)
        stack = make_stack(app, env, None, ACCOUNT, REGION)
        _CACHE[env] = (stack, Template.from_stack(stack).to_json())
    return _CACHE[env]


@pytest.fixture(scope="session")
def dev_stack():
    return synth("dev")


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: v.get("Properties", {}) for k, v in template["Resources"].items() if v["Type"] == kind}

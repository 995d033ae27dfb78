"""cfn-lint and checkov on the synthesized templates: dev as ``cdk deploy`` deploys it (with the build's bucket
deployments and CDK's handler Lambda, from a stand-in build) and prod. No cfn-lint error or warning, no failed
checkov check; what checkov still reports is suppressed on the resource itself with a one-line reason
(``infra.stack.skip``).

checkov 3.3 cannot share the project's environment: it pins boto3 1.35, networkx 2.6, packaging 23.2,
tabulate and termcolor below what the project pins (constraints.txt), and the newest release pip resolves
alongside them, 2.0.708, reads no suppression from a JSON template. So it runs as a tool of its own: the
``checkov`` module when importable, else ``$MSP_CHECKOV``, ``build/venv-checkov/bin/checkov`` or a ``checkov``
on PATH (``python -m venv build/venv-checkov && build/venv-checkov/bin/pip install checkov==3.3.30``; see
infra/README.md); without one the checkov test is skipped, saying so.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.conftest import REGION, needs_node, synth

pytestmark = [needs_node, pytest.mark.xdist_group("infra-template")]
REPO = Path(__file__).resolve().parents[2]
#: The deployments checked: (environment, with the build's bucket deployments).
TEMPLATES = (("dev", True), ("prod", False))
#: cfn-lint warnings on what CDK itself generates, not configured here: (rule, logical-id prefix, why).
CDK_OWN_WARNINGS = (
    ("W3005", "CustomCDKBucketDeployment",
     "CDK's bucket-deployment handler declares DependsOn on its role besides the GetAtt (aws-s3-deployment)"),
)


def _templates() -> dict[str, dict]:
    return {f"{env}{'-build' if build else ''}": synth(env, build)[1] for env, build in TEMPLATES}


def test_cfn_lint_finds_no_error_and_no_warning_in_the_dev_and_prod_templates():
    from cfnlint.api import lint

    problems = []
    for name, template in _templates().items():
        for m in lint(json.dumps(template), regions=[REGION]):
            if m.rule.severity == "informational":
                continue
            path = [str(p) for p in getattr(m, "path", ()) or ()]
            logical = path[1] if len(path) > 1 and path[0] == "Resources" else ""
            if any(m.rule.id == rule and logical.startswith(prefix) for rule, prefix, _why in CDK_OWN_WARNINGS):
                continue
            problems.append(f"{name}: {m.rule.id} ({m.rule.severity}) {'/'.join(path)}: {m.message}")
    assert not problems, "\n".join(problems)


def checkov_command() -> list[str] | None:
    """How to run checkov here: the module, ``$MSP_CHECKOV``, the README's tool venv, or one on PATH."""
    if importlib.util.find_spec("checkov") is not None:
        return [sys.executable, "-m", "checkov.main"]
    for candidate in (os.environ.get("MSP_CHECKOV"), str(REPO / "build" / "venv-checkov" / "bin" / "checkov"),
                      shutil.which("checkov")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return [candidate]
    return None


def test_checkov_fails_no_check_and_every_suppression_has_a_reason(tmp_path):
    command = checkov_command()
    if command is None:
        pytest.skip("checkov is not installed: it cannot share the project's pinned environment (boto3, networkx, "
                    "packaging); install it as a tool of its own, see infra/README.md, or set MSP_CHECKOV")
    files = []
    for name, template in _templates().items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(template, indent=1))
        files += ["-f", str(path)]
    out = subprocess.run([*command, *files, "--framework", "cloudformation", "--output", "json", "--compact",
                          "--skip-download"], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"})
    assert out.stdout.strip(), f"checkov printed nothing (exit {out.returncode}): {out.stderr[-2000:]}"
    reports = json.loads(out.stdout)
    (report,) = [r for r in (reports if isinstance(reports, list) else [reports])
                 if r.get("check_type") == "cloudformation"]
    summary, results = report["summary"], report["results"]
    assert not results["parsing_errors"], results["parsing_errors"]
    assert summary["resource_count"] > 100 and summary["passed"] > 100, summary  # it really read the templates
    failed = [f"{Path(c['file_path']).name}: {c['check_id']} {c['resource']}: {c['check_name']}"
              for c in results["failed_checks"]]
    assert not failed, "\n".join(failed)
    for c in results["skipped_checks"]:
        assert len(c["check_result"].get("suppress_comment") or "") > 20, (c["check_id"], c["resource"])
    assert out.returncode == 0, out.stderr[-2000:]

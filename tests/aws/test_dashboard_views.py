"""``msp aws views`` and the Athena calls under it, on botocore's Stubber and stand-ins (no AWS, no moto): the call
shape, a few statements at a time, and every way a view can fail reaching the owner as one line. The command
against the dev stack deployed on moto is in tests/aws/test_stack_on_moto.py."""

from __future__ import annotations

import pytest

from lakehouse import aws_names, awscli
from lakehouse.dashboard.athena import panel_views

NAMES = aws_names.AwsNames("dev", account="123456789012", region="us-east-1")
WG, DB, OUT = NAMES.athena_workgroup, NAMES.glue_database("analytics"), NAMES.athena_output


@pytest.fixture
def athena(monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return boto3.client("athena", region_name="us-east-1")


def _start(stub, sql: str, qid: str) -> None:
    stub.add_response("start_query_execution", {"QueryExecutionId": qid}, {
        "QueryString": sql, "WorkGroup": WG, "QueryExecutionContext": {"Database": DB},
        "ResultConfiguration": {"OutputLocation": OUT}})


def _state(stub, qid: str, state: str, reason: str = "") -> None:
    status = {"State": state, **({"StateChangeReason": reason} if reason else {})}
    stub.add_response("get_query_execution", {"QueryExecution": {"QueryExecutionId": qid, "Status": status}},
                      {"QueryExecutionId": qid})


def test_statements_run_in_the_workgroup_and_database_and_each_reports_its_final_state(athena):
    from botocore.stub import Stubber

    naps: list[float] = []
    with Stubber(athena) as stub:
        _start(stub, "CREATE OR REPLACE VIEW a AS SELECT 1", "q1")
        _start(stub, "CREATE OR REPLACE VIEW b AS SELECT 2", "q2")
        _state(stub, "q1", "RUNNING")
        _state(stub, "q2", "FAILED", "line 1:8: Column 'x' cannot be resolved")
        _state(stub, "q1", "SUCCEEDED")
        done = awscli.run_statements(["CREATE OR REPLACE VIEW a AS SELECT 1", "CREATE OR REPLACE VIEW b AS SELECT 2"],
                                     workgroup=WG, database=DB, output=OUT, client=athena, sleep=naps.append)
        stub.assert_no_pending_responses()
    assert done == [("q1", "SUCCEEDED", ""), ("q2", "FAILED", "line 1:8: Column 'x' cannot be resolved")]
    assert naps == [0.5]
    with Stubber(athena) as stub:  # still running at the deadline: reported, not waited for forever
        _start(stub, "CREATE OR REPLACE VIEW c AS SELECT 3", "q3")
        _state(stub, "q3", "RUNNING")
        (done,) = awscli.run_statements(["CREATE OR REPLACE VIEW c AS SELECT 3"], workgroup=WG, database=DB,
                                        output=OUT, client=athena, timeout=0, sleep=naps.append)
    assert done[:2] == ("q3", "TIMEOUT") and "Athena console" in done[2]


def test_no_more_than_a_few_statements_run_at_once():
    class Athena:
        def __init__(self):
            self.running, self.most, self.ticks = set(), 0, {}

        def start_query_execution(self, **kwargs):
            qid = f"q{len(self.ticks)}"
            self.running.add(qid)
            self.ticks[qid] = 0
            self.most = max(self.most, len(self.running))
            return {"QueryExecutionId": qid}

        def get_query_execution(self, QueryExecutionId):
            self.ticks[QueryExecutionId] += 1
            done = self.ticks[QueryExecutionId] >= 2
            if done:
                self.running.discard(QueryExecutionId)
            return {"QueryExecution": {"Status": {"State": "SUCCEEDED" if done else "RUNNING"}}}

    client = Athena()
    done = awscli.run_statements([f"S{i}" for i in range(12)], workgroup=WG, database=DB, client=client,
                                 sleep=lambda _s: None)
    assert [d[0] for d in done] == [f"q{i}" for i in range(12)] and {d[1] for d in done} == {"SUCCEEDED"}
    assert client.most == awscli.IN_FLIGHT


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    """The settings file of the dev deployment (what ``msp aws settings --from-stack`` writes)."""
    config = tmp_path / "msp-aws.toml"
    config.write_text(aws_names.settings_toml(NAMES.settings()), encoding="utf-8")
    monkeypatch.setenv("MSP_CONFIG", str(config))
    monkeypatch.setenv("MSP_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # no ./msp.toml here
    return config


def test_a_view_athena_refuses_is_named_with_the_reason_and_the_command_exits_1(deployment, monkeypatch, capsys):
    views = panel_views(NAMES.glue_database_prefix)
    calls = []

    def run(statements, **kwargs):
        calls.append((statements, kwargs))
        return [(f"q{i}", "FAILED" if i == 0 else "SUCCEEDED", "TYPE_MISMATCH: x" if i == 0 else "")
                for i in range(len(statements))]

    monkeypatch.setattr(awscli, "run_statements", run)
    assert awscli.main(["views"]) == 1
    ((statements, kwargs),) = calls
    assert statements == [v.sql for v in views.views]
    assert kwargs == {"workgroup": WG, "database": DB, "output": OUT, "region": NAMES.region}
    printed = capsys.readouterr()
    err = " ".join(printed.err.split())
    first = views.views[0]
    assert f"failed: {first.qualified_name} (panel {first.panel_id}, {first.owner}): TYPE_MISMATCH: x (query q0)" in err
    assert f"{len(views.views) - 1} of {len(views.views)} views created or replaced in {DB} (workgroup {WG})" in (
        printed.out)
    for n in views.not_views:
        assert f"not a view: {n.panel_id} ({n.owner}):" in err


def test_athena_errors_and_a_local_profile_are_one_line_each(deployment, monkeypatch, capsys):
    from botocore.exceptions import ClientError, NoCredentialsError

    for exc in (ClientError({"Error": {"Code": "InvalidRequestException", "Message": "WorkGroup is disabled"}},
                            "StartQueryExecution"), NoCredentialsError()):
        def fail(statements, _exc=exc, **kwargs):
            raise _exc

        monkeypatch.setattr(awscli, "run_statements", fail)
        assert awscli.main(["views"]) == 2
        err = capsys.readouterr().err
        assert f"Athena ({WG}):" in err and "Traceback" not in err and len(err.strip().splitlines()) <= 3
    monkeypatch.delenv("MSP_CONFIG")  # the local profile: no workgroup to run in, the SQL still printable
    assert awscli.main(["views"]) == 2
    assert "--dry-run" in capsys.readouterr().err
    assert awscli.main(["views", "--dry-run"]) == 0
    assert 'CREATE OR REPLACE VIEW "msp_analytics".' in capsys.readouterr().out

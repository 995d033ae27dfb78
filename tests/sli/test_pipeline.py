"""The SLI agent end to end on the shared pipeline lake (the tiny MSP through every stage, built once per test
run, read-only here): shortfall episodes and idle seats against the planted truth, the events, the CLI, the
demo questions. Reruns and incremental days run on a private lake (``tests/sli/test_rerun.py``)."""

from __future__ import annotations

import argparse
import json

import pytest

import schemas
from jobs.sli import AGENT
from jobs.sli import cli as sli_cli
from jobs.sli.evaluate import evaluate_lake, read_truth
from lakehouse.environment import sql_catalog
from lakehouse.events import validate
from lakehouse.lake import Lake

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lake(pipeline_lake) -> Lake:
    return Lake.from_settings(pipeline_lake)


@pytest.fixture(scope="module")
def evaluation(pipeline_lake):
    return evaluate_lake(pipeline_lake)


def test_shortfall_episodes_equal_the_planted_truth(evaluation, pipeline_lake):
    assert evaluation.shortfalls.truth, "the tiny truth plants shortfalls"
    assert evaluation.shortfalls.exact, (sorted(evaluation.shortfalls.found - evaluation.shortfalls.truth)[:5],
                                         sorted(evaluation.shortfalls.truth - evaluation.shortfalls.found)[:5])
    # one opened event per episode, on the episode's first snapshot
    assert evaluation.shortfall_events.exact
    assert len(read_truth(pipeline_lake.truth_root, "licence_shortfalls.csv")) >= len(evaluation.shortfalls.truth)


def test_idle_seats_equal_the_truth_or_every_difference_is_explained(evaluation):
    ev = evaluation
    assert ev.idle_seats.truth and ev.idle_seat_reports.truth
    assert ev.unexplained == [], ev.unexplained[:5]
    # on tiny every idle seat (user, SKU) is found and no other; what differs is when a never-active user's
    # run starts (the export has no licence assignment date): a report or two, each one explained
    assert ev.idle_seats.exact, ev.lines()
    assert ev.idle_seat_reports.recall == 1.0 and ev.idle_seat_reports.precision >= 0.9, ev.lines()
    differing = ev.idle_runs.found ^ ev.idle_runs.truth
    assert sum(len(v) for v in ev.explained.values()) == len(differing)


def test_events_are_valid_unique_and_carry_their_evidence(lake):
    outbox = lake.read_arrow(schemas.get("events.outbox"), {"event_type": "license.compliance.violation"})
    ids = outbox.column("event_id").to_pylist()
    assert ids and len(ids) == len(set(ids))
    kinds = set()
    for text in outbox.column("envelope").to_pylist():
        e = json.loads(text)
        validate(e)
        kinds.add(e["data"]["violation_kind"])
        assert e["evidence"]["source_rows"] and e["episode"]["state"] in ("opened", "worsened", "closed")
    assert {"shortfall", "idle_seats"} <= kinds


def test_tables_are_queryable_and_consistent(pipeline_lake):
    cat = sql_catalog(pipeline_lake)
    pos = cat.query("SELECT count(*) AS n, sum(CASE WHEN available <> entitled - assigned THEN 1 ELSE 0 END) AS bad "
                    "FROM processed.licence_position")
    assert pos["n"].iloc[0] > 0 and pos["bad"].iloc[0] == 0
    ren = cat.query("SELECT count(*) AS n, count(DISTINCT entitlement_id) AS ents, max(as_of) AS d "
                    "FROM analytics.licence_renewals WHERE as_of = (SELECT max(as_of) FROM analytics.licence_renewals)")
    assert ren["n"].iloc[0] == ren["ents"].iloc[0] > 0
    for q in AGENT.questions:
        frame = cat.query(q.sql)
        assert list(frame.columns), q.title


@pytest.mark.parametrize("argv", [["compliance"], ["savings"], ["renewals", "--within", "30"], ["evaluate"]])
def test_cli_commands(pipeline_lake, argv, capsys):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    sli_cli.register(sub)
    args = parser.parse_args(["sli", *argv])
    assert args.func(args, pipeline_lake) == 0
    out = capsys.readouterr().out
    assert {"compliance": "Licence compliance on", "savings": "Licence savings on",
            "renewals": "NCE renewals within 30 days", "evaluate": "shortfall episodes"}[argv[0]] in out


def test_cli_for_one_client(pipeline_lake, capsys):
    cat = sql_catalog(pipeline_lake)
    client = cat.query("SELECT min(client_id) AS c FROM analytics.licence_savings")["c"].iloc[0]
    parser = argparse.ArgumentParser()
    sli_cli.register(parser.add_subparsers())
    for cmd in ("compliance", "savings"):
        args = parser.parse_args(["sli", cmd, "--client", client])
        assert args.func(args, pipeline_lake) == 0
        assert client in capsys.readouterr().out
    args = parser.parse_args(["sli", "savings", "--client", "CL-NOPE"])
    assert args.func(args, pipeline_lake) == 1

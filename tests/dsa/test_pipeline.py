"""DSA on the shared tiny pipeline lake (read-only): the cost table reconciles with its sources exactly,
every table is there and queryable with the demo's SQL, and the commands answer."""

from __future__ import annotations

import argparse
import json
from decimal import Decimal

import pytest

import schemas


@pytest.fixture(scope="module")
def lake(pipeline_lake):
    from lakehouse.lake import Lake

    return Lake.from_settings(pipeline_lake)


def _total(frame, col):
    return sum((Decimal(str(v)) for v in frame[col] if v is not None), Decimal(0))


def test_billed_cost_reconciles_with_the_sources_exactly(lake):
    costs = lake.read_pandas(schemas.get("processed.spend_costs"))
    assert len(costs)
    for source, name, col in (("expenses", "processed.expenses", "amount"),
                              ("cloud", "processed.focus_costs", "billed_cost")):
        src = lake.read_pandas(schemas.get(name))
        assert _total(costs[costs["source"] == source], "billed_cost") == _total(src, col), source
    leaves = lake.read_pandas(schemas.get("processed.spend_leaf_daily"))
    assert _total(leaves, "cost") == _total(costs, "billed_cost")
    assert costs["department"].notna().all()
    assert (costs.loc[costs["source"] == "licences", "client_id"].notna()).all()


def test_anomaly_tables_and_events_are_consistent(lake):
    scores = lake.read_pandas(schemas.get("analytics.spend_anomaly_scores"))
    assert len(scores) and set(scores["method"]) == {"model"}
    snaps = lake.read_pandas(schemas.get("analytics.spend_anomalies"))
    out = lake.read_pandas(schemas.get("events.outbox"))
    mine = out[out["event_type"] == "spend.anomaly.detected"]
    assert mine["event_id"].is_unique
    for env in mine["envelope"]:
        e = json.loads(env)
        assert e["data"]["anomaly_id"] in set(snaps["anomaly_id"])
        assert e["episode"]["state"] == e["data"]["state"]


def test_budget_forecast_and_the_demo_questions(pipeline_lake, lake):
    from jobs.dsa import AGENT
    from lakehouse.environment import sql_catalog

    budget = lake.read_pandas(schemas.get("analytics.spend_budget_monthly"))
    assert len(budget) and set(budget["month"]) >= {"2024-01", "2024-04"}
    assert budget["budget"].notna().any()
    for q in AGENT.questions:
        frame = sql_catalog(pipeline_lake).query(q.sql)
        assert list(frame.columns), q.title


def test_the_commands_answer(pipeline_lake, capsys):
    from jobs.dsa import cli

    assert cli.cmd_budget(argparse.Namespace(month=None), pipeline_lake) == 0
    assert cli.cmd_anomalies(argparse.Namespace(days=90, all=True, limit=5, anomaly=None, evaluate=False,
                                                truth=None, tolerance=2), pipeline_lake) == 0
    forecast = argparse.Namespace(backtest=False, department=None, method="model")
    assert cli.cmd_forecast(forecast, pipeline_lake) in (0, 1)
    assert "Budget vs actual" in capsys.readouterr().out

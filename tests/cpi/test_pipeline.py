"""The CPI agent end to end on the shared pipeline lake (the tiny MSP through every stage, built once per test
run, read-only here): the planted truth to the cent, the SQL of docs/cpi.md, the demo's questions, the
events, the model and the CLI. What changes a lake (a rerun, a changed threshold) runs on a private 10-day
lake of its own (``tests/cpi/test_rerun.py``)."""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

import schemas
from jobs.cpi import AGENT
from jobs.cpi import cli as cpi_cli
from jobs.cpi.evaluate import compare_lake, model_report, truth_frame
from lakehouse.environment import sql_catalog
from lakehouse.lake import Lake

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cpi.md"
LAST = date(2024, 4, 30)


@pytest.fixture(scope="module")
def lake(pipeline_lake) -> Lake:
    return Lake.from_settings(pipeline_lake)


def test_monthly_margins_equal_the_planted_truth_to_the_cent(pipeline_lake):
    comparison = compare_lake(pipeline_lake)
    assert comparison.exact, (comparison.mismatches[:5], comparison.missing[:5], comparison.extra[:5])
    assert comparison.matched_rows == comparison.truth_rows == len(truth_frame(pipeline_lake.truth_root)) > 0


def truth_problem_clients(truth: pd.DataFrame) -> set[tuple[str, str]]:
    """(client, month) where the truth margin is under 20 % this month and the calendar month before."""
    t = truth[truth["margin_pct"] != ""].assign(margin=lambda d: d["margin_pct"].astype(float))
    below = {(r.client_id, r.month) for r in t.itertuples() if r.margin < 20}

    def prev(m: str) -> str:
        y, mo = int(m[:4]), int(m[5:])
        return f"{y - (mo == 1)}-{12 if mo == 1 else mo - 1:02d}"

    return {(c, m) for c, m in below if (c, prev(m)) in below}


def docs_query(title: str) -> str:
    text = DOCS.read_text(encoding="utf-8")
    m = re.search(rf"{re.escape(title)}.*?```sql\n(.*?)```", text, re.S)
    assert m, f"docs/cpi.md has no sql block after {title!r}"
    return m.group(1)


def test_sql_in_the_docs_finds_clients_below_20_percent_two_months_running(pipeline_lake):
    expected = truth_problem_clients(truth_frame(pipeline_lake.truth_root))
    assert expected, "the tiny MSP should plant at least one problem client"
    catalog = sql_catalog(pipeline_lake)
    raw = catalog.query(docs_query("Which clients fell below 20 % margin two months running?"))
    assert {(r.client_id, r.month) for r in raw.itertuples()} == expected
    report = catalog.query(docs_query("The same from the margin report"))
    # the report flags every month of a streak from the second month on (same set)
    assert {(r.client_id, r.month) for r in report.itertuples()} == expected


def test_the_declared_questions_answer_from_the_agents_tables(pipeline_lake):
    catalog = sql_catalog(pipeline_lake)
    answers = {q.title: catalog.query(q.sql) for q in AGENT.questions}
    assert all(len(frame) for frame in answers.values()), {q: len(f) for q, f in answers.items()}
    kpis, margins, churn = answers.values()
    assert list(kpis["month"]) == sorted(kpis["month"], reverse=True)
    assert list(margins["margin_pct"]) == sorted(margins["margin_pct"])
    assert list(churn["churn_probability"]) == sorted(churn["churn_probability"], reverse=True)


def test_margin_events_are_episodes_and_problem_clients_match_the_truth(pipeline_lake, lake):
    outbox = lake.read_pandas(schemas.get("events.outbox"), {"event_type": "client.profitability.changed"})
    events = sorted((json.loads(e) for e in outbox["envelope"]), key=lambda e: (e["time"], e["subject"]))
    problems = {(e["data"]["client_id"], e["data"]["period"]) for e in events
                if "problem_client" in e["data"]["reasons"]}
    truth = truth_problem_clients(truth_frame(pipeline_lake.truth_root))
    # a problem client is announced for the month a streak reaches 2 (and the months after it are not
    # re-announced); April is not closed in the window, so it is never judged
    first_months = {(c, m) for c, m in truth if m < "2024-04"}
    assert problems and problems <= first_months
    for e in events:
        assert e["evidence"]["source_rows"] and e["id"] and e["time"] in {"2024-02-05", "2024-03-05", "2024-04-05"}
    # one episode per client in trouble: it opens once, later months only worsen or close it, and no month of a
    # client raises two events (the tiny lake's margins fall on 2024-03-05 and fall further on 2024-04-05)
    assert len({(e["subject"], e["data"]["period"]) for e in events}) == len(events)
    episodes: dict[str, list[dict]] = {}
    for e in events:
        episodes.setdefault(e["episode"]["id"], []).append(e)
    assert {e["episode"]["state"] for e in events} >= {"opened", "worsened"}
    for evs in episodes.values():
        assert evs[0]["episode"]["state"] == "opened" and len({e["subject"] for e in evs}) == 1
        assert all(e["episode"]["state"] != "opened" for e in evs[1:])
        assert {e["episode"]["opened"] for e in evs} == {evs[0]["time"]}
    open_per_client = Counter(evs[0]["subject"] for evs in episodes.values()
                              if evs[-1]["episode"]["state"] != "closed")
    assert max(open_per_client.values()) == 1
    # the last day ran twice (daily run, then after training): still one row per event, one delivery each
    assert outbox["event_id"].is_unique
    inbox = lake.read_pandas(schemas.get("events.inbox"))
    assert not inbox.duplicated(["event_id", "agent"]).any()


def test_churn_model_is_stored_with_both_metric_sets_and_scores_every_served_client(pipeline_lake, lake):
    report = model_report(pipeline_lake)
    assert report is not None and report["current"] == report["version"]
    for key in ("roc_auc", "pr_auc", "lift_top_decile", "brier", "ece", "rows", "positives"):
        assert key in report["metrics"] and key in report["metrics"]["baseline"]
    files = lake.list_files(f"ml-models/churn-prediction/{report['version']}")
    names = {f.rsplit("/", 1)[-1] for f in files}
    assert {"model.joblib", "metrics.json", "params.json", "features.json", "training_data.parquet",
            "model_card.md", "version.json"} <= names
    scores = lake.read_pandas(schemas.get("analytics.churn"), {"dt": LAST.isoformat()})
    life = lake.read_pandas(schemas.get("processed.client_lifecycle"))
    gone = set(life.loc[life["notice_date"].notna() & (life["notice_date"] <= LAST), "client_id"])
    assert gone and not gone & set(scores["client_id"])  # clients that gave notice are not scored any more
    assert set(scores["client_id"]) == set(life.loc[life["status"] == "active", "client_id"])


def test_cli_report_prints_a_clients_profitability_and_churn_risk(pipeline_lake, lake, capsys):
    parser = argparse.ArgumentParser()
    cpi_cli.register(parser.add_subparsers(dest="command"))
    scores = lake.read_pandas(schemas.get("analytics.churn"), {"dt": LAST.isoformat()})
    client = sorted(scores["client_id"])[0]
    args = parser.parse_args(["cpi", "report", "--client", client])
    assert args.func(args, pipeline_lake) == 0
    out = capsys.readouterr().out
    assert client in out and "2024-03" in out and "Churn risk on 2024-04-30" in out
    args = parser.parse_args(["cpi", "report", "--month", "2024-03"])
    assert args.func(args, pipeline_lake) == 0
    assert "Client profitability, 2024-03" in capsys.readouterr().out
    args = parser.parse_args(["cpi", "report", "--client", "CL-99999"])
    assert args.func(args, pipeline_lake) == 1
    args = parser.parse_args(["cpi", "model"])
    assert args.func(args, pipeline_lake) == 0
    assert "churn-prediction versions (current: " in capsys.readouterr().out

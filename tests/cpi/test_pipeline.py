"""The CPI agent end to end on the generated ``tiny`` MSP (once per session): ingestion, the quality gate,
every CPI stage; then the planted truth, idempotent reruns, the SQL of docs/cpi.md, the model and the CLI."""

from __future__ import annotations

import argparse
import json
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

import schemas
from jobs.cpi import cli as cpi_cli
from jobs.cpi.evaluate import compare_lake, model_report, truth_frame
from lakehouse.catalog import query_duckdb, refresh
from lakehouse.context import date_range
from lakehouse.lake import Lake
from lakehouse.runner import run_pipeline
from tests.conftest import make_settings

# one worker builds the tiny lake once (a session fixture is per worker)
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("cpi-tiny-lake")]

FIRST, LAST = date(2024, 1, 1), date(2024, 4, 30)
#: what the CPI stages read, plus the datasets their quality rules look rows up in
GATED = ["agent_removals", "agreement_additions", "agreements", "clients", "contacts", "invoice_lines", "invoices",
         "managed_endpoints", "payments", "software_inventory", "technician_cost_rates", "technicians", "tickets",
         "time_entries"]
DAILY_STAGES = ["cpi.lifecycle", "cpi.profitability", "cpi.margin_report", "cpi.kpis", "cpi.margin_monitor",
                "cpi.churn_score", "cpi.daily_summary", "cpi.insights", "events.dispatch"]
CPI_TABLES = ["processed.client_profitability_monthly", "processed.agreement_profitability_monthly",
              "processed.client_lifecycle", "analytics.client_margin_report", "analytics.cpi_kpis_monthly",
              "analytics.churn", "analytics.cpi_daily_summary", "analytics.client_insights", "events.outbox",
              "events.inbox"]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "cpi.md"


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, spark):
    """Settings of a lake holding the tiny MSP after a full run (4 months: a 30-day churn horizon gives
    the model 3 labelled snapshot months)."""
    from lakehouse.synth import generate

    home = tmp_path_factory.mktemp("cpi-tiny")
    # the gate decides rows with its Spark predicates either way; its Great Expectations cross-check is the
    # quality suite's business (tests/quality), and costs minutes here
    settings = make_settings(home, MSP_CPI__CHURN_HORIZON_DAYS="30", MSP_CPI__CHURN_MIN_TRAIN_POSITIVES="1",
                             MSP_QUALITY__GX_ENGINE="off")
    generate("tiny", 42, Path(settings.landing_root), Path(settings.truth_root))
    dates = date_range(FIRST, LAST)
    run = run_pipeline(settings, dates, stages=["ingest"], params={"sources": ["psa", "rmm"]}, refresh_catalog=False)
    assert run.ok, run.stages
    run = run_pipeline(settings, dates, stages=["quality"], params={"datasets": GATED}, refresh_catalog=False)
    assert run.ok, run.stages
    run = run_pipeline(settings, dates, agents=["cpi"],
                       stages=[*DAILY_STAGES[:-1], "cpi.churn_train", "events.dispatch"])
    assert run.ok, [(s.name, s.error) for s in run.stages if s.status != "ok"]
    return settings


def test_monthly_margins_equal_the_planted_truth_to_the_cent(tiny):
    comparison = compare_lake(tiny)
    assert comparison.exact, (comparison.mismatches[:5], comparison.missing[:5], comparison.extra[:5])
    assert comparison.matched_rows == comparison.truth_rows == len(truth_frame(tiny.truth_root)) > 0


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


def test_sql_in_the_docs_finds_clients_below_20_percent_two_months_running(tiny):
    refresh(tiny, Lake(tiny.lake_root))
    expected = truth_problem_clients(truth_frame(tiny.truth_root))
    assert expected, "the tiny MSP should plant at least one problem client"
    raw = query_duckdb(tiny, docs_query("Which clients fell below 20 % margin two months running?"))
    assert {(r.client_id, r.month) for r in raw.itertuples()} == expected
    report = query_duckdb(tiny, docs_query("The same from the margin report"))
    # the report flags every month of a streak from the second month on (same set)
    assert {(r.client_id, r.month) for r in report.itertuples()} == expected


def test_the_demos_example_queries_answer_from_the_agents_tables(tiny):
    from lakehouse.demo import EXAMPLE_QUERIES

    refresh(tiny, Lake(tiny.lake_root))
    answers = {question: query_duckdb(tiny, sql) for question, sql in EXAMPLE_QUERIES}
    assert all(len(frame) for frame in answers.values()), {q: len(f) for q, f in answers.items()}
    kpis, margins, churn, quarantined = answers.values()
    assert list(kpis["month"]) == sorted(kpis["month"], reverse=True)
    assert list(margins["margin_pct"]) == sorted(margins["margin_pct"])
    assert list(churn["churn_probability"]) == sorted(churn["churn_probability"], reverse=True)
    refused = Lake(tiny.lake_root).read_pandas(schemas.get("quarantine.tickets"))["_rules_broken"].value_counts()
    assert {r.rules: r.rows for r in quarantined.itertuples()} == {k: refused[k] for k in quarantined["rules"]}


def test_problem_client_events_match_the_truth(tiny):
    lake = Lake(tiny.lake_root)
    events = [json.loads(e) for e in lake.read_pandas(schemas.get("events.outbox"))["envelope"]]
    problems = {(e["data"]["client_id"], e["data"]["period"]) for e in events
                if e["data"]["reason"] == "problem_client"}
    truth = truth_problem_clients(truth_frame(tiny.truth_root))
    # an event is raised for the month a streak reaches 2 (and the months after it are not re-announced);
    # April is not closed in the window, so it is never judged
    first_months = {(c, m) for c, m in truth if m < "2024-04"}
    assert problems and problems <= first_months
    for e in events:
        assert e["evidence"]["source_rows"] and e["id"] and e["time"] in {"2024-02-05", "2024-03-05", "2024-04-05"}


def test_churn_model_is_stored_with_both_metric_sets_and_scores_every_served_client(tiny):
    report = model_report(tiny)
    assert report is not None and report["current"] == report["version"]
    for key in ("roc_auc", "pr_auc", "lift_top_decile", "brier", "rows", "positives"):
        assert key in report["metrics"] and key in report["metrics"]["baseline"]
    lake = Lake(tiny.lake_root)
    files = lake.list_files(f"ml-models/churn-prediction/{report['version']}")
    names = {f.rsplit("/", 1)[-1] for f in files}
    assert {"model.joblib", "metrics.json", "params.json", "features.json", "training_data.parquet",
            "model_card.md", "version.json"} <= names
    scores = lake.read_pandas(schemas.get("analytics.churn"), ["dt=2024-04-30"])
    life = lake.read_pandas(schemas.get("processed.client_lifecycle"))
    gone = set(life.loc[life["notice_date"].notna() & (life["notice_date"] <= date(2024, 4, 30)), "client_id"])
    assert gone and not gone & set(scores["client_id"])  # clients that gave notice are not scored any more
    assert set(scores["client_id"]) == set(life.loc[life["status"] == "active", "client_id"])


def test_cli_report_prints_a_clients_profitability_and_churn_risk(tiny, capsys):
    parser = argparse.ArgumentParser()
    cpi_cli.register(parser.add_subparsers(dest="command"))
    scores = Lake(tiny.lake_root).read_pandas(schemas.get("analytics.churn"), ["dt=2024-04-30"])
    client = sorted(scores["client_id"])[0]
    args = parser.parse_args(["cpi", "report", "--client", client])
    assert args.func(args, tiny) == 0
    out = capsys.readouterr().out
    assert client in out and "2024-03" in out and "Churn risk on 2024-04-30" in out
    args = parser.parse_args(["cpi", "report", "--month", "2024-03"])
    assert args.func(args, tiny) == 0
    assert "Client profitability, 2024-03" in capsys.readouterr().out
    args = parser.parse_args(["cpi", "report", "--client", "CL-99999"])
    assert args.func(args, tiny) == 1


def checksums(lake: Lake) -> dict[str, str]:
    return {name: lake.checksum(schemas.get(name)) for name in CPI_TABLES}


def test_rerun_of_a_day_gives_identical_tables_and_no_duplicate_events(tiny):
    """Last in this file: it republishes April as known on Apr 5."""
    lake = Lake(tiny.lake_root)
    day = [date(2024, 4, 5)]  # March closes on Apr 5: the margin monitor judges it that day
    first = run_pipeline(tiny, day, stages=DAILY_STAGES, refresh_catalog=False)
    assert first.ok, [(s.name, s.error) for s in first.stages if s.status != "ok"]
    before = checksums(lake)
    outbox = lake.read_pandas(schemas.get("events.outbox"), ["event_type=client.profitability.changed/dt=2024-04-05"])
    assert len(outbox) > 0
    second = run_pipeline(tiny, day, stages=DAILY_STAGES, refresh_catalog=False)
    assert second.ok
    assert checksums(lake) == before
    again = lake.read_pandas(schemas.get("events.outbox"), ["event_type=client.profitability.changed/dt=2024-04-05"])
    assert sorted(again["event_id"]) == sorted(outbox["event_id"]) and again["event_id"].is_unique
    inbox = lake.read_pandas(schemas.get("events.inbox"))
    assert not inbox.duplicated(["event_id", "agent"]).any()

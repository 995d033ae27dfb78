"""RAM on the shared tiny pipeline lake (read-only), and a rerun on a lake of its own.

The shared lake is the tiny MSP through every daily stage of every agent (tests/conftest.py). Checked here:
utilization for every working technician, alert episodes without duplicates, dispatch plans and routes that
never use a technician without the skill, the rule-1 reaction for the planted loss-making clients, and the
tables through the SQL catalog. The rerun test copies the rows RAM reads into a fresh lake, runs RAM's
stages twice over the same days and compares the tables and the events.
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

import schemas
from jobs.ram import data
from lakehouse.lake import Lake

pytestmark = pytest.mark.integration
RAM_TABLES = ("analytics.technician_utilization", "analytics.ram_assignments", "analytics.ram_routes",
              "analytics.ram_margin_recommendations")


def read(settings, name: str) -> pd.DataFrame:
    return Lake.from_settings(settings).read_pandas(schemas.get(name))


def test_utilization_covers_the_team(pipeline_lake):
    u = read(pipeline_lake, "analytics.technician_utilization")
    months = u[u["grain"] == "month"]
    assert sorted(months["period"].unique()) == ["2024-01", "2024-02", "2024-03", "2024-04"]
    techs = data.technicians(read(pipeline_lake, "processed.technicians"))
    working = {t for t, x in techs.items() if x.employed_on(date(2024, 3, 15))}
    assert working <= set(months[months["period"] == "2024-03"]["technician_id"])
    m = months[months["available_hours"] > 0]
    assert ((m["utilization_pct"] - m["billable_hours"] / m["available_hours"] * 100).abs() < 0.01).all()
    assert months["realised_rate"].notna().any()                      # CPI's EHR reached RAM


def test_alert_episodes_have_no_duplicates(pipeline_lake):
    out = read(pipeline_lake, "events.outbox")
    alerts = [json.loads(e) for e in out[out["event_type"] == "resource.utilization.alert"]["envelope"]]
    assert alerts, "the tiny MSP has under-used technicians: some alert must open"
    keys = [(a["episode"]["id"], a["episode"]["state"], a["data"]["period"]) for a in alerts]
    assert len(keys) == len(set(keys)) and len({a["id"] for a in alerts}) == len(alerts)
    opened = {}
    for a in sorted(alerts, key=lambda a: a["time"]):
        if a["episode"]["state"] == "opened":
            assert a["episode"]["id"] not in opened                   # an episode opens once
            opened[a["episode"]["id"]] = a
        else:
            assert a["episode"]["id"] in opened                       # worsens / closes after it opened


def test_plans_and_routes_respect_skills(pipeline_lake):
    techs = data.technicians(read(pipeline_lake, "processed.technicians"))
    plan = read(pipeline_lake, "analytics.ram_assignments")
    assert not plan.empty and set(plan["solver_status"]) <= {"OPTIMAL", "FEASIBLE"}
    for col in ("technician_id", "baseline_technician_id"):
        done = plan[plan[col].notna()]
        assert all(techs[t].level(s) >= lv for t, s, lv in zip(done[col], done["required_skill"],
                                                               done["required_skill_level"], strict=True))
    routes = read(pipeline_lake, "analytics.ram_routes")
    visits = routes[routes["kind"] == "visit"].merge(plan[["ticket_id", "required_skill", "required_skill_level"]],
                                                     on="ticket_id")
    assert all(techs[t].level(s) >= lv for t, s, lv in zip(visits["technician_id"], visits["required_skill"],
                                                           visits["required_skill_level"], strict=True))


def test_rule_1_answers_the_planted_loss_makers(pipeline_lake):
    truth = Path(pipeline_lake.truth_root) / "clients.csv"
    with truth.open() as f:
        losers = {r["client_id"] for r in csv.DictReader(f) if r["loss_maker"] == "True"}
    inbox = read(pipeline_lake, "events.inbox")
    routed = [json.loads(e)["data"] for e in inbox[(inbox["agent"] == "ram")]["envelope"]]
    flagged = {(d["client_id"], d["period"]) for d in routed if d["reason"] in ("tier_down", "problem_client")}
    recs = read(pipeline_lake, "analytics.ram_margin_recommendations")
    answered = set(zip(recs["client_id"], recs["period"], strict=True))
    assert flagged and flagged == answered                            # every routed drop gets a plan, once
    planted = {c for c, _ in answered} & losers
    assert planted, f"no plan for the planted loss-making clients {sorted(losers)}"
    r = recs[recs["client_id"].isin(planted)].iloc[0]
    assert r["hours_over_budget"] > 0 and "target_hours_budget" in r["actions"]


def test_tables_answer_sql_and_the_demo_questions(pipeline_lake):
    from jobs.ram import AGENT
    from lakehouse.environment import sql_catalog

    cat = sql_catalog(pipeline_lake)
    n = cat.query("SELECT count(*) AS n FROM analytics.technician_utilization WHERE grain = 'week'")
    assert int(n["n"].iloc[0]) > 0
    for q in AGENT.questions:
        assert not cat.query(q.sql).empty, q.title


INPUTS = ("processed.technicians", "processed.technician_pto", "processed.technician_cost_rates",
          "processed.time_entries", "processed.tickets", "processed.sites", "processed.client_profitability_monthly",
          "events.inbox")
STAGES = ("ram.utilization", "ram.alerts", "ram.assign", "ram.routes", "ram.on_margin_change")


def test_rerunning_days_gives_identical_tables_and_no_duplicate_events(pipeline_lake, tmp_path):
    from lakehouse.context import date_range
    from lakehouse.runner import run_pipeline
    from tests.conftest import PIPELINE_ENV, make_settings

    source = Lake.from_settings(pipeline_lake)
    settings = make_settings(tmp_path / "home", **PIPELINE_ENV).with_overrides(skip_unchanged=False)
    lake = Lake.from_settings(settings)
    for name in INPUTS:
        ds = schemas.get(name)
        lake.replace(ds, source.read_arrow(ds), run_id="copy")
    days = date_range(date(2024, 3, 3), date(2024, 3, 5))              # a Sunday (alerts) to a CPI event day
    sums, ids = [], []
    for _ in range(2):
        run = run_pipeline(settings, days, stages=STAGES, refresh_catalog=False)
        assert run.ok, [(s.name, s.error) for s in run.stages]
        sums.append({n: lake.checksum(schemas.get(n)) for n in RAM_TABLES})
        out = lake.read_pandas(schemas.get("events.outbox"))
        ids.append(sorted(out[out["event_type"].str.startswith("resource.")]["event_id"]))
    assert sums[0] == sums[1]
    assert ids[1] and ids[0] == ids[1] and len(ids[1]) == len(set(ids[1]))
    assert not lake.read_pandas(schemas.get("analytics.ram_margin_recommendations")).empty

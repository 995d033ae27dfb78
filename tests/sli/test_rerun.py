"""Incremental days and reruns on a private lake (the shared pipeline lake is read-only): the processed inputs
of the tiny MSP copied from the shared lake; the SLI stages run over January to March, then April 1st (a
weekly snapshot and the monthly activity report) as a day of its own, then that day again.

A day's run must give the tables a run over the whole span gives (the shared lake), and a rerun the same
tables and no second copy of any event."""

from __future__ import annotations

import json
from datetime import date

import pytest

import schemas
from jobs.sli import AGENT
from lakehouse.context import date_range
from lakehouse.lake import Lake
from lakehouse.runner import run_pipeline
from tests.conftest import PIPELINE_ENV, make_settings

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sli-private-lake")]

FIRST, BEFORE, DAY = date(2024, 1, 1), date(2024, 3, 31), date(2024, 4, 1)
STAGES = [s.name for s in AGENT.stages if s.daily]
INPUTS = ["processed.subscribed_skus", "processed.active_user_detail", "processed.entitlements",
          "processed.agreement_additions", "processed.software_inventory", "processed.clients"]
DAILY_TABLES = ["processed.licence_position", "processed.licence_installs", "processed.licence_user_activity",
                "analytics.licence_savings", "analytics.licence_utilisation"]
ALL_TABLES = [*DAILY_TABLES, "analytics.licence_renewals", "analytics.licence_opportunity_checks", "events.outbox"]
EVENT = "license.compliance.violation"


@pytest.fixture(scope="module")
def private(pipeline_lake, tmp_path_factory):
    home = tmp_path_factory.mktemp("sli-private")
    settings = make_settings(home, **PIPELINE_ENV)
    source, lake = Lake.from_settings(pipeline_lake), Lake.from_settings(settings)
    for name in INPUTS:
        ds = schemas.get(name)
        lake.replace(ds, source.read_arrow(ds), run_id="copy-of-the-pipeline-lake", stage="quality")
    run = run_pipeline(settings, date_range(FIRST, BEFORE), stages=STAGES, refresh_catalog=False)
    assert run.ok, [(s.name, s.error) for s in run.stages if s.status != "ok"]
    day = run_pipeline(settings, [DAY], stages=STAGES, refresh_catalog=False)
    assert day.ok, [(s.name, s.error) for s in day.stages if s.status != "ok"]
    return settings


def rows(lake: Lake, name: str, until: date) -> list[tuple]:
    ds = schemas.get(name)
    t = lake.read_arrow(ds).to_pandas()
    t = t[t["dt"] <= until.isoformat()]
    keep = [c.name for c in ds.stored_columns()]
    return sorted(tuple(str(v) for v in r) for r in t[keep].itertuples(index=False))


def events(lake: Lake, until: date) -> dict[str, dict]:
    ob = lake.read_arrow(schemas.get("events.outbox"), {"event_type": EVENT}).to_pylist()
    return {r["event_id"]: json.loads(r["envelope"]) for r in ob if r["dt"] <= until.isoformat()}


def test_a_new_day_gives_what_a_run_over_the_whole_span_gives(private, pipeline_lake):
    mine, full = Lake.from_settings(private), Lake.from_settings(pipeline_lake)
    for name in DAILY_TABLES:
        assert rows(mine, name, DAY) == rows(full, name, DAY), name
    assert events(mine, DAY) == events(full, DAY)


def test_the_day_recomputes_only_its_snapshot(private):
    lake = Lake.from_settings(private)
    history = {h["stage"]: h["replaced"] for h in lake.history(schemas.get("processed.licence_position"))}
    assert history["sli.position"] == f"dt={DAY.isoformat()}"


def test_a_rerun_of_the_day_gives_the_same_tables_and_no_duplicate_event(private):
    lake = Lake.from_settings(private)
    before = {name: lake.checksum(schemas.get(name)) for name in ALL_TABLES}
    forced = make_settings(private.home, **PIPELINE_ENV, MSP_PLATFORM__SKIP_UNCHANGED="false")
    again = run_pipeline(forced, [DAY], stages=STAGES, refresh_catalog=False)
    assert again.ok, [(s.name, s.error) for s in again.stages if s.status != "ok"]
    assert {name: lake.checksum(schemas.get(name)) for name in ALL_TABLES} == before
    ids = lake.read_arrow(schemas.get("events.outbox"), {"event_type": EVENT}).column("event_id").to_pylist()
    assert ids and len(ids) == len(set(ids))


def test_a_day_without_a_snapshot_recomputes_nothing_but_the_renewal_plan(private):
    forced = make_settings(private.home, **PIPELINE_ENV, MSP_PLATFORM__SKIP_UNCHANGED="false")
    lake = Lake.from_settings(private)
    before = {name: lake.checksum(schemas.get(name)) for name in DAILY_TABLES}
    nxt = run_pipeline(forced, [date(2024, 4, 2)], stages=STAGES, refresh_catalog=False)
    assert nxt.ok, [(s.name, s.error) for s in nxt.stages if s.status != "ok"]
    assert {name: lake.checksum(schemas.get(name)) for name in DAILY_TABLES} == before
    plan = lake.read_arrow(schemas.get("analytics.licence_renewals"), {"dt": "2024-04-02"})
    assert plan.num_rows > 0

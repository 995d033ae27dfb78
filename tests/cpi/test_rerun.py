"""Reruns and changed settings on a private lake (the shared pipeline lake is read-only): the processed inputs
of the tiny MSP, copied from the shared lake, and the CPI monthly stages run over its first 70 days (February
closes on March 5: its final numbers, and the first events, which compare it with January)."""

from __future__ import annotations

import json
from datetime import date

import pytest

import schemas
from jobs.cpi import AGENT
from jobs.cpi.profitability import INPUTS
from lakehouse.context import date_range
from lakehouse.lake import Lake
from lakehouse.runner import run_pipeline
from tests.conftest import PIPELINE_ENV, make_settings

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("cpi-private-lake")]

FIRST, LAST = date(2024, 1, 1), date(2024, 3, 10)
CLOSING = date(2024, 3, 5)  # February's closing day (last day + cpi.month_close_days)
APRIL_CLOSING = date(2024, 4, 5)  # March's
MARGIN_EVENTS = "client.profitability.changed"
DAILY = [s.name for s in AGENT.stages if s.daily]
#: what the tables under test are computed from (the daily summary, scores and notes of 70 days are not needed)
MONTHLY = ["cpi.lifecycle", "cpi.profitability", "cpi.margin_report", "cpi.kpis", "cpi.margin_monitor"]
COPIED = sorted({*INPUTS.values(), "processed.agreements", "processed.clients", "processed.agent_removals",
                 "processed.software_inventory"})
CPI_TABLES = ["processed.client_profitability_monthly", "processed.agreement_profitability_monthly",
              "processed.client_lifecycle", "analytics.client_margin_report", "analytics.cpi_kpis_monthly",
              "analytics.cpi_daily_summary", "analytics.client_insights", "events.outbox"]


@pytest.fixture(scope="module")
def private(pipeline_lake, tmp_path_factory):
    """Settings of the private lake after the CPI stages ran over FIRST..LAST."""
    home = tmp_path_factory.mktemp("cpi-private")
    settings = make_settings(home, **PIPELINE_ENV)
    source, lake = Lake.from_settings(pipeline_lake), Lake.from_settings(settings)
    for name in COPIED:
        ds = schemas.get(name)
        lake.replace(ds, source.read_arrow(ds), run_id="copy-of-the-pipeline-lake", stage="quality")
    run = run_pipeline(settings, date_range(FIRST, LAST), stages=MONTHLY, refresh_catalog=False)
    assert run.ok, [(s.name, s.error) for s in run.stages if s.status != "ok"]
    return settings


def checksums(settings) -> dict[str, str]:
    lake = Lake.from_settings(settings)
    return {name: lake.checksum(schemas.get(name)) for name in CPI_TABLES}


def test_a_rerun_of_a_day_gives_the_same_tables_and_no_duplicate_event(private):
    forced = make_settings(private.home, **PIPELINE_ENV, MSP_PLATFORM__SKIP_UNCHANGED="false")
    first = run_pipeline(forced, [CLOSING], stages=DAILY, refresh_catalog=False)
    assert first.ok, [(s.name, s.error) for s in first.stages if s.status != "ok"]
    lake = Lake.from_settings(private)
    months = lake.read_pandas(schemas.get("processed.client_profitability_monthly"))
    # the rerun recomputed February (it closes) and March as known on March 5 (later exports are not seen);
    # January only if a row exported that day reaches back to it
    by_month = months.groupby("month")["as_of"].agg(set).to_dict()
    assert by_month["2024-02"] == by_month["2024-03"] == {CLOSING} and by_month["2024-01"] in ({LAST}, {CLOSING})
    before = checksums(private)
    outbox = lake.read_pandas(schemas.get("events.outbox"), {"dt": CLOSING.isoformat()})
    assert len(outbox) > 0 and set(outbox["event_type"]) == {"client.profitability.changed"}
    second = run_pipeline(forced, [CLOSING], stages=DAILY, refresh_catalog=False)
    assert second.ok and all(s.status == "ok" for s in second.stages)  # recomputed, not skipped
    assert checksums(private) == before
    again = lake.read_pandas(schemas.get("events.outbox"), {"dt": CLOSING.isoformat()})
    assert sorted(again["event_id"]) == sorted(outbox["event_id"]) and again["event_id"].is_unique


def test_a_changed_threshold_recomputes_every_month_of_the_report(private):
    lake = Lake.from_settings(private)
    ds = schemas.get("analytics.client_margin_report")
    assert set(lake.read_pandas(ds)["margin_tier"].dropna()) - {"gold", "silver", "bronze", "at_risk"} == set()
    strict = make_settings(private.home, **PIPELINE_ENV, MSP_CPI__TIER_BOUNDS="[99.0, 98.0, 97.0]")
    run = run_pipeline(strict, [LAST], stages=["cpi.margin_report"], refresh_catalog=False)
    assert run.ok and [s.status for s in run.stages] == ["ok"]
    report = lake.read_pandas(ds)
    # January and February are not touched by March 10's exports, yet they are re-tiered: every margin under
    # 97 % is at_risk
    assert set(report["month"]) == {"2024-01", "2024-02", "2024-03"}
    tiered = report[report["margin_tier"].notna()]
    assert len(tiered) and (tiered.loc[tiered["margin_pct"] < 97, "margin_tier"] == "at_risk").all()
    # two months running under the new lowest bound: a problem client in February (cpi.problem_months = 2)
    below = tiered[tiered["margin_pct"] < 97].pivot_table(index="client_id", columns="month", values="margin_pct",
                                                          aggfunc="count")
    both = set(below.dropna().index)
    feb = report[report["month"] == "2024-02"].set_index("client_id")
    assert both and (feb.loc[sorted(both), "months_below_lowest"] == 2).all()
    assert feb.loc[sorted(both), "problem_client"].all()


def _margin_events(lake: Lake, day: date) -> list[dict]:
    rows = lake.read_pandas(schemas.get("events.outbox"), {"event_type": MARGIN_EVENTS, "dt": day.isoformat()})
    return sorted((json.loads(e) for e in rows["envelope"]), key=lambda e: e["id"])


def test_a_day_run_alone_continues_the_episodes_the_lake_holds_open(private):
    """March closes on April 5: run alone (the lake's last run was March 10), the monitor finds the episodes
    February opened in its own events of March 5, so a client in trouble since then gets no second opening;
    rerun alone, or judged with February in one run of the monitor, April 5 gives the same events. (Last in
    the module: it adds April to the private lake.)"""
    lake = Lake.from_settings(private)
    feb = _margin_events(lake, CLOSING)
    opened = {e["data"]["client_id"]: e["episode"]["id"] for e in feb if e["episode"]["state"] == "opened"}
    assert opened and all(e["episode"]["state"] == "opened" for e in feb)
    run = run_pipeline(private, [APRIL_CLOSING], stages=MONTHLY, refresh_catalog=False)
    assert run.ok, [(s.name, s.error) for s in run.stages if s.status != "ok"]
    march = _margin_events(lake, APRIL_CLOSING)
    assert march and len({e["subject"] for e in march}) == len(march)  # one event per client and month
    continued = [e for e in march if e["data"]["client_id"] in opened]
    assert continued, "no client of an open February episode has an event on April 5"
    for e in march:
        if e["data"]["client_id"] in opened:  # worsened or closed, in February's episode
            assert e["episode"]["state"] != "opened" and e["episode"]["id"] == opened[e["data"]["client_id"]]
            assert e["episode"]["opened"] == CLOSING.isoformat()
        else:
            assert e["episode"]["state"] == "opened" and e["episode"]["opened"] == APRIL_CLOSING.isoformat()
    forced = make_settings(private.home, **PIPELINE_ENV, MSP_PLATFORM__SKIP_UNCHANGED="false")
    for days in ([APRIL_CLOSING], [CLOSING, APRIL_CLOSING]):
        again = run_pipeline(forced, days, stages=["cpi.margin_monitor"], refresh_catalog=False)
        assert again.ok and [s.status for s in again.stages] == ["ok"]
        assert _margin_events(lake, CLOSING) == feb and _margin_events(lake, APRIL_CLOSING) == march, days

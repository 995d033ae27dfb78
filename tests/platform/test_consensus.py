"""Rule 4, consensus, on a lake of its own: planted churn scores and utilization, RAM rescope proposals in the
outbox, then the consensus.decide stage. One proposal is approved (RAM proposes, CPI approves), one is vetoed by
CPI's churn veto with its reason, the utilization <-> churn tension lowers the veto threshold, and a veto in warn
or dry_run mode is recorded without binding. SPO's low-margin deals (a real producer, jobs/spo/deals.py, on a planted
proposal and client margin) are approved by SPO and RAM, or vetoed by RAM's utilization above 85 %."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pytest

import schemas
from jobs.ram.margin import to_proposal
from lakehouse.consensus import decide
from lakehouse.context import RunContext
from lakehouse.events import write_outbox
from lakehouse.lake import Lake
from lakehouse.runner import run_pipeline
from tests.conftest import make_settings

DAY = date(2024, 3, 5)
DEFAULTS = {"string": "x", "date": date(2024, 2, 1), "double": 0.0, "int": 0, "long": 0, "boolean": False,
            "decimal": Decimal("0")}


def _rows(name: str, rows: list[dict]) -> pa.Table:
    ds = schemas.get(name)
    full = []
    for r in rows:
        full.append({c.name: r.get(c.name, DEFAULTS.get(str(c.type).split("(")[0])) for c in ds.stored_columns()})
    return pa.Table.from_pylist(full, schema=ds.arrow_schema())


def plant(settings, churn: dict[str, float], utilization_pct: float) -> None:
    lake = Lake.from_settings(settings)
    lake.replace(schemas.get("analytics.churn"), _rows("analytics.churn", [
        {"client_id": c, "month": "2024-02", "churn_probability": p, "risk_band": "high" if p >= 0.5 else "low",
         "model_version": "v1", "horizon_days": 30, "dt": "2024-03-01"} for c, p in churn.items()]),
        run_id="plant", stage="plant")
    lake.replace(schemas.get("analytics.technician_utilization"), _rows("analytics.technician_utilization", [
        {"technician_id": "T1", "grain": "month", "period": "2024-02", "period_start": date(2024, 2, 1),
         "period_end": date(2024, 2, 29), "role": "L2", "available_hours": 100.0,
         "billable_hours": utilization_pct, "utilization_pct": utilization_pct, "dt": "2024-03-01"}]),
        run_id="plant", stage="plant")
    ctx = RunContext.create(settings, [DAY])
    proposals = [to_proposal({"client_id": c, "period": "2024-02", "hours_over_budget": 30.0,
                              "senior_l1_hours": 4.0, "avg_hourly_cost": 55.0, "margin_pct": 8.0,
                              "target_margin_pct": 40.0, "dt": DAY.isoformat()}, {"id": f"{i:032x}"})
                 for i, c in enumerate(sorted(churn), start=1)]
    write_outbox(ctx, "resource.rescope.proposed", proposals, [DAY.isoformat()])
    ctx.close()


def decisions(settings) -> dict[str, dict]:
    lake = Lake.from_settings(settings)
    return {r["subject"]: {**r, "votes": json.loads(r["votes"])}
            for r in lake.read_arrow(schemas.get("events.consensus_decisions")).to_pylist()}


def _decide(settings):
    run = run_pipeline(settings, [DAY], stages=["consensus.decide"], refresh_catalog=False)
    assert run.ok, [(s.name, s.error) for s in run.stages]
    return decisions(settings)


@pytest.fixture
def planted(tmp_path):
    settings = make_settings(tmp_path / "home")
    plant(settings, {"C1": 0.9, "C2": 0.1}, utilization_pct=70.0)
    return settings


def test_a_proposal_is_approved_by_two_agents_and_another_vetoed_with_its_reason(planted):
    got = _decide(planted)
    ok, vetoed = got["client:C2"], got["client:C1"]
    assert (ok["decision"], ok["approvals"], ok["vetoes"]) == ("approved", 2, 0)
    assert ok["reason"] == "approved by cpi, ram"
    assert (vetoed["decision"], vetoed["vetoes"]) == ("vetoed", 1)
    assert vetoed["reason"].startswith("cpi vetoes (churn_veto): churn_probability = 0.9 >= 0.5")
    cpi = next(v for v in vetoed["votes"] if v["agent"] == "cpi")
    assert (cpi["decision"], cpi["mode"], cpi["metric"], cpi["value"], cpi["threshold"]) == (
        "veto", "enforce", "churn_probability", 0.9, 0.5)
    assert cpi["source_rows"] == [{"dataset": "analytics.churn", "keys": {"client_id": "C1", "dt": "2024-03-01"}}]
    ram = next(v for v in vetoed["votes"] if v["agent"] == "ram")
    assert (ram["decision"], ram["note"], ram["metric"]) == ("approve", "proposer", "hours_over_budget")
    # the decisions are events too, caused by their proposals; deciding again changes nothing
    lake = Lake.from_settings(planted)
    out = [json.loads(r["envelope"]) for r in lake.read_arrow(schemas.get("events.outbox")).to_pylist()
           if r["event_type"] == "consensus.decided"]
    assert sorted(e["data"]["decision"] for e in out) == ["approved", "vetoed"]
    assert {e["caused_by"][0] for e in out} == {ok["event_id"], vetoed["event_id"]}
    before = lake.checksum(schemas.get("events.consensus_decisions")), lake.checksum(schemas.get("events.outbox"))
    forced = make_settings(planted.home, MSP_PLATFORM__SKIP_UNCHANGED="false")
    _decide(forced)
    assert (lake.checksum(schemas.get("events.consensus_decisions")), lake.checksum(schemas.get("events.outbox"))) \
        == before


def test_stretched_technicians_lower_the_churn_veto_threshold(tmp_path):
    settings = make_settings(tmp_path / "home")
    plant(settings, {"C3": 0.45}, utilization_pct=92.0)
    got = _decide(settings)["client:C3"]
    assert got["decision"] == "vetoed"
    cpi = next(v for v in got["votes"] if v["agent"] == "cpi")
    assert cpi["threshold"] == pytest.approx(0.4)
    assert "utilization 92.0 % in 2024-02 > 85.0 %" in cpi["note"] and "utilization ↔ churn" in cpi["note"]
    # the same client with the team in the band is approved
    calm = make_settings(tmp_path / "calm")
    plant(calm, {"C3": 0.45}, utilization_pct=70.0)
    assert _decide(calm)["client:C3"]["decision"] == "approved"


@pytest.mark.parametrize(("mode", "decision", "warnings"),
                         [("warn", "no_consensus", 1), ("dry_run", "no_consensus", 0)])
def test_a_veto_in_warn_or_dry_run_mode_is_recorded_and_does_not_bind(tmp_path, mode, decision, warnings):
    settings = make_settings(tmp_path / "home", MSP_CPI__CHURN_VETO_MODE=mode)
    plant(settings, {"C1": 0.9}, utilization_pct=70.0)
    got = _decide(settings)["client:C1"]
    assert (got["decision"], got["warnings"], got["vetoes"]) == (decision, warnings, 0)
    cpi = next(v for v in got["votes"] if v["agent"] == "cpi")
    assert (cpi["decision"], cpi["mode"]) == ("veto", mode)  # recorded; it counts as no approval, not as a veto
    assert ("warnings: cpi vetoes" in got["reason"]) == (mode == "warn")


def test_decide_needs_two_approvals_and_any_enforced_veto_binds():
    approve = {"agent": "a", "decision": "approve", "mode": None}
    assert decide([approve])["decision"] == "no_consensus"
    assert decide([approve, {**approve, "agent": "b"}])["decision"] == "approved"
    veto = {"agent": "c", "decision": "veto", "mode": "enforce", "veto": "v", "metric": "m", "value": 90.0,
            "threshold": 85.0, "comparison": ">"}
    out = decide([approve, {**approve, "agent": "b"}, veto])
    assert (out["decision"], out["reason"]) == ("vetoed", "c vetoes (v): m = 90.0 > 85.0")
    assert decide([approve, {"agent": "b", "decision": "abstain", "mode": None}])["decision"] == "no_consensus"


def plant_deal(settings, utilization_pct: float, margin_pct: float) -> None:
    """A renewal proposal SPO prepared on DAY for client C9, whose margin was ``margin_pct`` in each of the three
    months before, and the team's utilization in February."""
    lake = Lake.from_settings(settings)
    lake.replace(schemas.get("analytics.proposals"), _rows("analytics.proposals", [
        {"proposal_id": "PR-SO-9", "opportunity_id": "SO-9", "proposal_kind": "renewal", "client_id": "C9",
         "lead_id": None, "agreement_id": "AG-9", "company_name": "Nine Ltd", "prepared_on": DAY,
         "valid_until": date(2024, 4, 4), "term_months": 12, "monthly_total": Decimal("1500.00"),
         "one_time_total": Decimal("0.00"), "first_year_total": Decimal("18000.00"), "line_count": 1,
         "summary": "renewal", "writer": "template", "dt": DAY.isoformat()}]), run_id="plant", stage="plant")
    lake.replace(schemas.get("processed.client_profitability_monthly"), _rows(
        "processed.client_profitability_monthly",
        [{"client_id": "C9", "month": m, "billed": Decimal("1000.00"), "profit": Decimal(f"{margin_pct * 10:.2f}"),
          "margin_pct": Decimal(f"{margin_pct:.2f}"), "month_final": True, "as_of": DAY}
         for m in ("2023-12", "2024-01", "2024-02")]), run_id="plant", stage="plant")
    lake.replace(schemas.get("analytics.technician_utilization"), _rows("analytics.technician_utilization", [
        {"technician_id": "T1", "grain": "month", "period": "2024-02", "period_start": date(2024, 2, 1),
         "period_end": date(2024, 2, 29), "role": "L2", "available_hours": 100.0,
         "billable_hours": utilization_pct, "utilization_pct": utilization_pct, "dt": "2024-03-01"}]),
        run_id="plant", stage="plant")


def _propose_and_decide(settings) -> dict[str, dict]:
    run = run_pipeline(settings, [DAY], stages=["spo.deal_review", "consensus.decide"], refresh_catalog=False)
    assert run.ok, [(s.name, s.error) for s in run.stages]
    return decisions(settings)


@pytest.mark.parametrize(("utilization", "decision", "reason"), [
    (70.0, "approved", "approved by ram, spo"),
    (92.0, "vetoed", "ram vetoes (utilization_veto): utilization_pct = 92.0 > 85.0; all technicians, 2024-02")])
def test_a_low_margin_deal_is_approved_by_spo_and_ram_or_vetoed_by_ram_utilization(tmp_path, utilization, decision,
                                                                                     reason):
    settings = make_settings(tmp_path / "home")
    plant_deal(settings, utilization, margin_pct=12.0)
    got = _propose_and_decide(settings)
    assert set(got) == {"client:C9"}
    d = got["client:C9"]
    assert (d["action"], d["proposer"], d["proposal_id"], d["decision"], d["reason"]) == (
        "low_margin_deal", "spo", "deal:PR-SO-9", decision, reason)
    votes = {v["agent"]: v for v in d["votes"]}
    assert set(votes) == {"spo", "ram"}  # CPI, DSA and SLI do not vote on taking a deal
    assert (votes["spo"]["decision"], votes["spo"]["metric"], votes["spo"]["value"], votes["spo"]["threshold"]) == (
        "approve", "margin_pct", 12.0, 20.0)
    ram = votes["ram"]
    assert (ram["decision"], ram["veto"], ram["mode"], ram["value"], ram["threshold"]) == (
        "approve" if decision == "approved" else "veto", "utilization_veto", "enforce", utilization, 85.0)
    assert ram["source_rows"] == [{"dataset": "analytics.technician_utilization",
                                   "keys": {"grain": "month", "period": "2024-02"}}]
    lake = Lake.from_settings(settings)
    outbox = lake.read_arrow(schemas.get("events.outbox")).to_pylist()
    out = {r["event_type"]: json.loads(r["envelope"]) for r in outbox}
    proposal, decided = out["sales.deal.proposed"], out["consensus.decided"]
    assert proposal["data"]["months"] == ["2023-12", "2024-01", "2024-02"]
    assert decided["caused_by"] == [proposal["id"]] and decided["data"]["decision"] == decision


def test_a_deal_with_a_healthy_margin_or_for_a_new_logo_is_no_proposal(tmp_path):
    settings = make_settings(tmp_path / "home")
    plant_deal(settings, 70.0, margin_pct=35.0)
    assert _propose_and_decide(settings) == {}
    lake = Lake.from_settings(settings)
    assert not [r for r in lake.read_arrow(schemas.get("events.outbox")).to_pylist()
                if r["event_type"] == "sales.deal.proposed"]

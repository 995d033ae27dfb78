"""Event rules 1-4 on a private copy of the shared tiny lake (the shared one is read-only): the outbox and the
handlers' inputs are copied, then the dispatch stages and the handlers run over the tiny window, twice. Each rule
fires from what the synthetic MSP planted (CPI margin drops, SPO opportunities, VCM renewals), its handler's
output is written once however often the dispatcher runs, and a rerun over the window or over a part of it
changes nothing.

Rule 4 needs churn scores dated before RAM's rescope proposals, which the tiny lake does not have (its churn
model is trained after the daily run and scores the last day only): the private copy gets a planted score per
client dated on the window's first day, high (0.9) for even-numbered clients and low (0.1) for the others. So
the chain margin drop -> RAM recommendation -> rescope proposal -> consensus decision occurs deterministically,
vetoed by CPI's churn risk for some clients and approved by RAM and CPI for others, and `msp events trace`
(the real command line) prints every step of it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

import schemas
from lakehouse.agents import registry
from lakehouse.context import date_range
from lakehouse.events import trace, trace_lines
from lakehouse.lake import Lake
from lakehouse.runner import run_pipeline
from tests.conftest import PIPELINE_ENV, TINY_FIRST, TINY_LAST, make_settings

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("rules-private-lake")]

HANDLERS = {"ram.on_margin_change": "analytics.ram_margin_recommendations",
            "sli.on_opportunity": "analytics.licence_opportunity_checks",
            "dsa.on_renewal": "analytics.vendor_spend_packets"}
EVENT_STAGES = ["consensus.decide", "events.dispatch", "events.digest", *HANDLERS]
PRIVATE_ENV = {**PIPELINE_ENV, "MSP_PLATFORM__SKIP_UNCHANGED": "false"}
HIGH, LOW = 0.9, 0.1


def planted_churn(client_id: str) -> float:
    return HIGH if int(client_id.rsplit("-", 1)[-1]) % 2 == 0 else LOW


def _plant_churn(lake: Lake, clients: list[str]) -> None:
    """One churn score per client on the window's first day (before every proposal of the window)."""
    import pyarrow as pa

    ds = schemas.get("analytics.churn")
    rows = [{"client_id": c, "month": "2023-12", "churn_probability": planted_churn(c),
             "risk_band": "high" if planted_churn(c) >= 0.5 else "low", "at_risk": planted_churn(c) >= 0.5,
             "baseline_probability": planted_churn(c), "rules_hit": 0, "rules": None, "signals": "planted by the test",
             "model_version": "planted", "horizon_days": 30, "dt": TINY_FIRST.isoformat()} for c in clients]
    lake.replace(ds, pa.Table.from_pylist(rows, schema=ds.arrow_schema()), run_id="planted-churn", stage="plant",
                 replace=[{"dt": TINY_FIRST.isoformat()}])


def _copied() -> list[str]:
    reg = registry()
    names = {"events.outbox"}
    for h in EVENT_STAGES:
        names |= {n for n in reg.inputs(reg.stages[h]) if n.split(".")[0] in ("processed", "analytics")
                  and n not in HANDLERS.values() and n != "analytics.consensus_decisions"}
    return sorted(n for n in names if n != "events.inbox")


@pytest.fixture(scope="module")
def private(pipeline_lake, tmp_path_factory):
    home = tmp_path_factory.mktemp("rules-private")
    settings = make_settings(home, **PRIVATE_ENV)
    source, lake = Lake.from_settings(pipeline_lake), Lake.from_settings(settings)
    for name in _copied():
        ds = schemas.get(name)
        rows = source.read_arrow(ds)
        if name == "events.outbox":  # what the daily stages emitted; the handlers' own events come from the runs
            own = set(registry().proposals) | {"consensus.decided", "resource.margin.recommendation",
                                               "license.opportunity.checked", "spend.renewal.packet"}
            rows = rows.filter([t not in own for t in rows.column("event_type").to_pylist()])
        if rows.num_rows:
            lake.replace(ds, rows, run_id="copy-of-the-pipeline-lake", stage="quality")
    _plant_churn(lake, sorted({r["client_id"] for r in lake.read_arrow(schemas.get("processed.clients")).to_pylist()}))
    days = date_range(TINY_FIRST, TINY_LAST)
    runs = [run_pipeline(settings, days, stages=EVENT_STAGES, refresh_catalog=False) for _ in range(2)]
    for run in runs:
        assert run.ok, [(s.name, s.error) for s in run.stages if s.status not in ("ok", "unchanged")]
    return settings, runs


def _tables(settings) -> dict[str, list]:
    lake = Lake.from_settings(settings)
    names = [*HANDLERS.values(), "events.inbox", "events.outbox", "events.consensus_decisions"]
    return {n: lake.read_arrow(schemas.get(n)).to_pylist() for n in names}


def test_each_rule_fires_and_its_output_is_written_once_though_dispatch_ran_twice(private):
    settings, runs = private
    first_round = [s.name for s in runs[0].stages]
    assert any(n.startswith("events.dispatch (round") for n in first_round), first_round  # handlers' events
    t = _tables(settings)
    inbox = t["events.inbox"]
    assert not [k for k, n in Counter((r["event_id"], r["agent"]) for r in inbox).items() if n > 1]
    by_handler = Counter(r["handler"] for r in inbox)
    for handler, table in HANDLERS.items():
        assert by_handler[handler] > 0, f"no event routed to {handler}"
        assert t[table], f"{handler} produced nothing"
    # rule 1: every recommendation answers CPI events routed to RAM; no (client, month) twice
    routed_ram = {r["event_id"] for r in inbox if r["handler"] == "ram.on_margin_change"}
    recs = t["analytics.ram_margin_recommendations"]
    assert all(set(r["source_event_ids"].split(",")) <= routed_ram for r in recs)
    assert not [k for k, n in Counter((r["client_id"], r["period"]) for r in recs).items() if n > 1]
    # rule 2's condition: only opened opportunities reach SLI
    for r in inbox:
        if r["handler"] == "sli.on_opportunity":
            assert json.loads(r["envelope"])["episode"]["state"] == "opened"
    assert {r["event_id"] for r in t["analytics.licence_opportunity_checks"]} <= {
        r["event_id"] for r in inbox if r["handler"] == "sli.on_opportunity"} | {
        r["event_id"] for r in t["analytics.licence_opportunity_checks"] if r["status"] == "pending_lead"}
    # rule 3: one packet per renewal event routed to DSA
    packets = t["analytics.vendor_spend_packets"]
    assert Counter(p["event_id"] for p in packets).most_common(1)[0][1] == 1
    # the handlers' own events are in the outbox once, each naming what caused it
    outbox = t["events.outbox"]
    assert len({r["event_id"] for r in outbox}) == len(outbox)
    caused = [json.loads(r["envelope"]) for r in outbox if r["event_type"] in (
        "resource.margin.recommendation", "license.opportunity.checked", "spend.renewal.packet")]
    assert caused and all(e.get("caused_by") for e in caused)


def _checksums(settings) -> dict[str, str]:
    lake = Lake.from_settings(settings)
    names = [*HANDLERS.values(), "events.inbox", "events.outbox", "events.consensus_decisions", "events.digest",
             "events.dead_letters"]
    return {n: lake.checksum(schemas.get(n)) for n in names}


def test_a_third_dispatch_changes_nothing(private):
    """Every handler's output, the outbox (the handlers' own events too), inbox, decisions and digest."""
    settings, _ = private
    before = _checksums(settings)
    again = run_pipeline(settings, date_range(TINY_FIRST, TINY_LAST), stages=EVENT_STAGES, refresh_catalog=False)
    assert again.ok, [(s.name, s.error) for s in again.stages if s.status not in ("ok", "unchanged")]
    assert _checksums(settings) == before


def test_the_licence_checks_are_stable_on_a_rerun(private):
    """A handler's output for an event is a function of the event and the inputs as of its day, not of its own
    earlier output nor of the run's window: reruns over parts of the window (SLI's pending leads, RAM's and DSA's
    reads up to the run's last day) change no table."""
    settings, _ = private
    lake = Lake.from_settings(settings)
    checks = lake.read_arrow(schemas.get("analytics.licence_opportunity_checks")).to_pylist()
    assert {r["status"] for r in checks} >= {"checked", "pending_lead"}
    before = _checksums(settings)
    for first, last in ((date(2024, 3, 1), date(2024, 3, 10)), (date(2024, 4, 1), TINY_LAST),
                        (TINY_FIRST, TINY_LAST)):
        run = run_pipeline(settings, date_range(first, last), stages=EVENT_STAGES, refresh_catalog=False)
        assert run.ok, [(s.name, s.error) for s in run.stages if s.status not in ("ok", "unchanged")]
        assert _checksums(settings) == before, f"a rerun over {first}..{last} changed a table"


def _chains(settings) -> list[dict]:
    """Every decided proposal with the events before and after it: margin event -> recommendation -> proposal ->
    decision."""
    t = _tables(settings)
    outbox = {r["event_id"]: json.loads(r["envelope"]) for r in t["events.outbox"]}
    chains = []
    for d in sorted(t["events.consensus_decisions"], key=lambda r: r["event_id"]):
        proposal = outbox[d["event_id"]]
        rec = outbox[proposal["caused_by"][0]]
        chains.append({"root": outbox[rec["caused_by"][0]], "rec": rec, "proposal": proposal, "decision": d,
                       "decided": outbox[d["decision_event_id"]]})
    return chains


def _one(nodes, event_id):
    found = [n for n in nodes if n["event_id"] == event_id]
    assert len(found) == 1, (event_id, [n["event_id"] for n in nodes])
    return found[0]


def _msp(settings, *args):
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSP_")}
    env.update({"MSP_HOME": str(settings.home), "PYTHONPATH": str(root), **PRIVATE_ENV})
    return subprocess.run([str(Path(sys.executable).parent / "msp"), *args], env=env, capture_output=True,
                          text=True, cwd=root, timeout=300)


def test_trace_follows_a_chain_end_to_end(private):
    """margin drop at a client -> RAM recommendation (rule 1) -> rescope proposal -> consensus decision, vetoed by
    the planted churn risk or approved by RAM and CPI; the trace holds every step, four events deep."""
    settings, _ = private
    lake = Lake.from_settings(settings)
    chains = _chains(settings)
    assert chains, "no rescope proposal was decided on the private tiny lake"
    outcomes = Counter(c["decision"]["decision"] for c in chains)
    assert outcomes["vetoed"] >= 1 and outcomes["approved"] >= 1, outcomes
    for c in chains:
        client = c["proposal"]["data"]["client_id"]
        expected = "vetoed" if planted_churn(client) == HIGH else "approved"
        assert c["decision"]["decision"] == expected, (client, c["decision"]["reason"])
        tree = trace(lake, c["root"]["id"])
        assert (tree["type"], tree["subject"]) == ("client.profitability.changed", f"client:{client}")
        assert tree["caused_by"] == []  # the chain starts here
        (delivery,) = tree["deliveries"]
        assert (delivery["agent"], delivery["handler"]) == ("ram", "ram.on_margin_change")
        (produced,) = delivery["produced"]
        assert (produced["dataset"], produced["rows"]) == ("analytics.ram_margin_recommendations", 1)
        assert produced["keys"] == [{"client_id": client, "period": c["proposal"]["data"]["period"]}]
        rec = _one(tree["caused"], c["rec"]["id"])
        assert rec["type"] == "resource.margin.recommendation" and c["root"]["id"] in rec["caused_by"]
        proposal = _one(rec["caused"], c["proposal"]["id"])
        assert proposal["type"] == "resource.rescope.proposed" and proposal["caused_by"] == [rec["event_id"]]
        decision = proposal["decision"]
        assert (decision["decision"], decision["decision_event_id"]) == (expected, c["decided"]["id"])
        votes = {v["agent"]: v for v in decision["votes"]}
        assert votes["ram"]["decision"] == "approve" and votes["ram"]["note"] == "proposer"
        cpi = votes["cpi"]
        assert (cpi["veto"], cpi["mode"], cpi["metric"], cpi["value"]) == (
            "churn_veto", "enforce", "churn_probability", planted_churn(client))
        assert cpi["decision"] == ("veto" if expected == "vetoed" else "approve")
        if expected == "vetoed":
            assert (decision["approvals"], decision["vetoes"]) == (1, 1)
            assert re.match(r"cpi vetoes \(churn_veto\): churn_probability = 0\.9 >= 0\.[45]", decision["reason"])
        else:
            assert (decision["approvals"], decision["vetoes"], decision["reason"]) == (2, 0, "approved by cpi, ram")
        decided = _one(proposal["caused"], c["decided"]["id"])
        assert decided["type"] == "consensus.decided" and decided["caused"] == []
        assert decided["caused_by"] == [proposal["event_id"]]
        # four events deep: the margin event, the recommendation, the proposal, the decision


def test_msp_events_trace_prints_every_step_of_the_chain(private):
    """The real command line (`.venv/bin/msp events trace`), on a vetoed chain and an approved one."""
    settings, _ = private
    lake = Lake.from_settings(settings)
    chains = {c["decision"]["decision"]: c for c in _chains(settings)}
    assert {"vetoed", "approved"} <= set(chains)
    for outcome, c in sorted(chains.items()):
        out = _msp(settings, "events", "trace", c["root"]["id"])
        assert out.returncode == 0, out.stderr
        tree = trace(lake, c["root"]["id"])
        assert out.stdout == "\n".join(trace_lines(tree)) + "\n"
        client = c["proposal"]["data"]["client_id"]
        steps = [
            rf"^event {c['root']['id']}  client\.profitability\.changed  client:{client}  ",
            r"^  -> received by ram \(ram\.on_margin_change\) on \S+ when data\.reason in \[",
            rf"^     produced 1 row\(s\) of analytics\.ram_margin_recommendations: "
            rf"\{{\"client_id\": \"{client}\", \"period\": \"{c['proposal']['data']['period']}\"\}}",
            r"^  => caused:",
            rf"^    event {c['rec']['id']}  resource\.margin\.recommendation  client:{client}",
            rf"^        event {c['proposal']['id']}  resource\.rescope\.proposed  client:{client}",
            r"^          -> consensus: " + (r"VETOED \(1 approval\(s\), 1 veto\(es\)\): cpi vetoes \(churn_veto\)"
                                          if outcome == "vetoed" else
                                          r"APPROVED \(2 approval\(s\), 0 veto\(es\)\): approved by cpi, ram"),
            r"^             ram: approve hours_over_budget = \S+ > \S+  \(proposer\)",
            r"^             cpi: " + ("veto" if outcome == "vetoed" else "approve")
            + rf" \[churn_veto, enforce\] churn_probability = {planted_churn(client)} >= 0\.[45]",
            rf"^            event {c['decided']['id']}  consensus\.decided  client:{client}",
        ]
        lines = out.stdout.splitlines()
        at = -1
        for step in steps:
            hits = [i for i, line in enumerate(lines) if i > at and re.search(step, line)]
            assert hits, f"{outcome}: no line after {at} matches {step!r}:\n{out.stdout}"
            at = hits[0]
        as_json = _msp(settings, "events", "trace", c["root"]["id"], "--json")
        assert as_json.returncode == 0 and json.loads(as_json.stdout) == json.loads(json.dumps(tree, default=str))
    missing = _msp(settings, "events", "trace", "0" * 32)
    assert missing.returncode == 2 and "no event" in missing.stdout


def test_eventbridge_rules_carry_the_declared_conditions():
    from lakehouse.aws_names import routes

    got = {(t, a): d for t, a, d in routes()}
    assert got[("sales.opportunity.identified", "sli")] == {"data": {"state": ["opened"]}}
    assert got[("client.profitability.changed", "ram")] == {
        "data": {"reason": ["tier_down", "problem_client", "margin_drop"]}}
    assert got[("contract.renewal.due", "dsa")] is None

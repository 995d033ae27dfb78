"""Rule 4, multi-agent consensus (DOMAIN.md section 7): an action that touches price or headcount is a
*proposal* that needs the agreement of at least :data:`MIN_APPROVALS` agents, and any agent may veto it.

* **Proposals** are events of the types an agent declares in ``Agent(proposes=...)``; their ``data`` holds
  ``proposal_id`` and ``action`` (one of :data:`ACTIONS`) and whatever the voters need (``client_id``,
  ``department``, ``amount``...). The proposer's own proposal counts as its approval.
* **Votes** are declared by each agent in its own package (``Agent(votes=(Vote(actions, "module:function",
  veto="..."),))``): ``f(proposal, ctx, config) -> {"decision": "approve"|"veto"|"abstain", "metric", "value",
  "threshold", "comparison", "note", "source_rows"}``, reading the lake through the run context.
* **Veto modes**: each veto rule's mode is the voting agent's setting ``<veto>_mode``: ``enforce`` (the veto
  binds), ``warn`` (recorded and counted as a warning, the decision stands on the approvals) or ``dry_run``
  (recorded only, so a new veto can be trialled on real proposals before it binds).
* **Decision**: ``vetoed`` when an enforced veto was cast; ``approved`` when at least :data:`MIN_APPROVALS`
  distinct agents approved; ``no_consensus`` otherwise. It lands in ``events.consensus_decisions`` with the
  full vote record and is published as ``consensus.decided`` (``caused_by`` the proposal).

The ``consensus.decide`` stage (kind ``dispatch``) decides the proposals in the outbox on the run's days; a
proposal emitted by a handler is decided in the run's next dispatch round. Nothing here names an agent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

import schemas

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.context import RunContext

log = logging.getLogger(__name__)

ACTIONS = ("price_increase", "rescope", "low_margin_deal", "hire", "move_technicians", "new_spend", "cancel_seats")
MODES = ("enforce", "warn", "dry_run")
DECISIONS = ("approve", "veto", "abstain")
MIN_APPROVALS = 2
TABLE = "events.consensus_decisions"
OUTBOX = "events.outbox"
DECIDED = "consensus.decided"
SOURCE = "platform.consensus"


def proposal_of(envelope: Mapping[str, Any], proposer: str) -> dict[str, Any]:
    data = envelope.get("data") or {}
    action = data.get("action")
    if action not in ACTIONS:
        raise ValueError(f"proposal {envelope.get('id')}: action {action!r} is not one of {', '.join(ACTIONS)}")
    return {"event_id": envelope["id"], "type": envelope["type"], "subject": envelope["subject"],
            "time": date.fromisoformat(envelope["time"]), "proposal_id": str(data.get("proposal_id") or envelope["id"]),
            "action": action, "data": data, "evidence": envelope.get("evidence") or {}, "proposer": proposer}


def _clean(vote: Mapping[str, Any]) -> dict[str, Any]:
    value = vote.get("value")
    threshold = vote.get("threshold")
    return {"decision": vote.get("decision", "abstain"), "metric": vote.get("metric"),
            "value": None if value is None else float(value),
            "threshold": threshold if isinstance(threshold, str | type(None)) else float(threshold),
            "comparison": vote.get("comparison"), "note": vote.get("note"),
            "source_rows": list(vote.get("source_rows") or [])}


def collect_votes(proposal: Mapping[str, Any], ctx: RunContext, reg=None) -> list[dict[str, Any]]:
    """The proposer's approval, then every other agent's declared vote on the proposal's action."""
    from lakehouse.agents import registry

    reg = reg or registry()
    ev = proposal["evidence"]
    value = ev.get("value") if isinstance(ev.get("value"), int | float) else None
    votes = [{"agent": proposal["proposer"], "veto": None, "mode": None, "decision": "approve",
              "metric": ev.get("metric"), "value": value,
              "threshold": ev.get("threshold"), "comparison": ev.get("comparison"), "note": "proposer",
              "source_rows": list(ev.get("source_rows") or [])}]
    for agent, vote in reg.votes():
        if proposal["action"] not in vote.actions or agent.name == proposal["proposer"]:
            continue
        cfg = ctx.settings.model(agent.name) if agent.settings is not None else None
        mode = getattr(cfg, f"{vote.veto}_mode", "enforce") if cfg is not None else "enforce"
        try:
            got = _clean(vote.func(proposal, ctx, cfg))
        except Exception as exc:  # one voter's bug abstains, it does not block every proposal
            log.warning("vote %s of %s failed: %s", vote.veto, agent.name, exc)
            got = _clean({"decision": "abstain", "note": f"vote failed: {type(exc).__name__}: {exc}"})
        if got["decision"] not in DECISIONS:
            got = {**got, "decision": "abstain", "note": f"invalid decision {got['decision']!r}"}
        votes.append({"agent": agent.name, "veto": vote.veto, "mode": mode, **got})
    return votes


def decide(votes: list[Mapping[str, Any]], min_approvals: int = MIN_APPROVALS) -> dict[str, Any]:
    """The decision from the votes (pure)."""
    binding = [v for v in votes if v["decision"] == "veto" and v.get("mode") == "enforce"]
    warned = [v for v in votes if v["decision"] == "veto" and v.get("mode") == "warn"]
    approvers = sorted({v["agent"] for v in votes if v["decision"] == "approve"})

    def why(v):
        return (f"{v['agent']} vetoes ({v['veto']}): {v.get('metric')} = {v.get('value')} "
                f"{v.get('comparison') or ''} {v.get('threshold')}" + (f"; {v['note']}" if v.get("note") else ""))

    if binding:
        decision, reason = "vetoed", "; ".join(why(v) for v in binding)
    elif len(approvers) >= min_approvals:
        decision, reason = "approved", f"approved by {', '.join(approvers)}"
    else:
        decision = "no_consensus"
        reason = f"{len(approvers)} approval(s) ({', '.join(approvers) or 'none'}), {min_approvals} needed"
    if warned:
        reason += " | warnings: " + "; ".join(why(v) for v in warned)
    return {"decision": decision, "approvals": len(approvers), "vetoes": len(binding), "warnings": len(warned),
            "reason": reason}


def decided_event(proposal: Mapping[str, Any], outcome: Mapping[str, Any], votes: list[dict[str, Any]]):
    from lakehouse.events import make_event

    binding = next((v for v in votes if v["decision"] == "veto" and v.get("mode") == "enforce"), None)
    sources = [{"dataset": TABLE, "keys": {"event_id": proposal["event_id"]}}]
    if binding:
        sources += binding["source_rows"]
    data = {"proposal_event_id": proposal["event_id"], "proposal_id": proposal["proposal_id"],
            "action": proposal["action"], "proposer": proposal["proposer"], **outcome, "votes": votes}
    evidence = {"metric": "approvals", "value": float(outcome["approvals"]), "threshold": MIN_APPROVALS,
                "comparison": ">=", "source_rows": sources}
    severity = "warning" if outcome["decision"] == "vetoed" else "info"
    return make_event(DECIDED, SOURCE, proposal["subject"], proposal["time"], proposal["proposal_id"], "consensus",
                      data, evidence, severity=severity, caused_by=[proposal["event_id"]])


def run(ctx: RunContext) -> None:
    """The ``consensus.decide`` stage: decide the run's proposals."""
    import pyarrow as pa

    from lakehouse.agents import registry

    reg = registry()
    types = reg.proposals
    rows, events = [], []
    if types:
        outbox = ctx.read_arrow(OUTBOX, {"event_type": sorted(types), "dt": ctx.days}).to_pylist()
        for r in sorted(outbox, key=lambda r: (str(r["dt"]), r["event_id"])):
            proposal = proposal_of(json.loads(r["envelope"]), types[r["event_type"]])
            votes = collect_votes(proposal, ctx, reg)
            outcome = decide(votes)
            event = decided_event(proposal, outcome, votes)
            events.append(event)
            rows.append({"event_id": proposal["event_id"], "proposal_id": proposal["proposal_id"],
                         "action": proposal["action"], "subject": proposal["subject"],
                         "proposer": proposal["proposer"], **outcome,
                         "votes": json.dumps(votes, sort_keys=True, default=str), "decision_event_id": event["id"],
                         "dt": str(r["dt"])})
    ds = schemas.get(TABLE)
    table = pa.Table.from_pylist(rows, schema=ds.arrow_schema())
    ctx.count(TABLE).notes.append(f"{len(rows)} proposal(s): " + ", ".join(
        f"{d} {sum(1 for r in rows if r['decision'] == d)}" for d in ("approved", "vetoed", "no_consensus")))
    from lakehouse.events import _same_rows

    if not _same_rows(ctx, TABLE, table, {"dt": ctx.days}, "event_id"):
        ctx.write(TABLE, table, replace=[{"dt": d} for d in ctx.days])
    ctx.emit(DECIDED, events, ctx.days)

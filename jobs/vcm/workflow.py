"""The approval workflow: explicit states, who moved a case, when and why.

A *case* is a new contract (``<contract_id>:new``, opened the day its first document lands) or a renewal
(``<contract_id>:renewal:<opt-out date>``, opened the day its first reminder falls due). States::

    draft ──complete/submit──> review ──approve──> approved ──sign──> signed
                                 └─────reject───> rejected

The system opens a case as ``draft`` and completes it to ``review`` once no field of the contract waits in the
review queue (``complete``); a person can ``submit`` a draft after checking its fields by hand. Approving,
rejecting and signing are people's decisions: ``msp vcm approve|reject|submit|sign CONTRACT_ID --by NAME
--reason TEXT`` appends one row to ``processed.contract_decisions`` in one Iceberg commit of its own partition
(atomic; nothing is updated or deleted; concurrent decisions never overwrite each other). The workflow is the
fold of the system's transitions and the decisions in time order (:func:`fold`); a decision not allowed from
the state the case is in by then (another person's decision got there first) is kept with ``applied =
false``, so the log shows every attempt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.config import Settings

DECISIONS = "processed.contract_decisions"
STATES = ("draft", "review", "approved", "rejected", "signed")
#: action -> (state it applies to, state it leads to)
TRANSITIONS = {"complete": ("draft", "review"), "submit": ("draft", "review"), "approve": ("review", "approved"),
               "reject": ("review", "rejected"), "sign": ("approved", "signed")}
HUMAN_ACTIONS = ("submit", "approve", "reject", "sign")
SYSTEM = "vcm"


class WorkflowError(ValueError):
    """A decision that the case's state does not allow; the message says what is allowed."""


@dataclass(frozen=True)
class Case:
    case_id: str
    contract_id: str
    kind: str  # new | renewal
    opened: date
    completed: date | None  # the day no field of the contract waited for review (None: still waiting)


def case_id(contract_id: str, kind: str, opt_out: date | None = None) -> str:
    return f"{contract_id}:new" if kind == "new" else f"{contract_id}:renewal:{opt_out.isoformat()}"


def day_start(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=UTC)


def fold(case: Case, decisions: Iterable[dict[str, Any]], until: datetime | None = None) -> list[dict[str, Any]]:
    """Every transition of a case in order, with the state after each (rows of processed.contract_workflow)."""
    events = [(day_start(case.opened), 0, {"action": "open", "actor": SYSTEM, "reason": f"{case.kind} case opened",
                                           "decision_id": None})]
    if case.completed is not None:
        events.append((day_start(max(case.completed, case.opened)), 1,
                       {"action": "complete", "actor": SYSTEM, "decision_id": None,
                        "reason": "every field read with enough confidence (none in the review queue)"}))
    for d in decisions:
        at = pd.Timestamp(d["decided_at"]).to_pydatetime()
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        if until is None or at <= until:
            events.append((at, 2, {"action": d["action"], "actor": d["actor"], "reason": d["reason"],
                                   "decision_id": d["decision_id"]}))
    events.sort(key=lambda e: (e[0], e[1], e[2]["decision_id"] or ""))
    rows, state = [], None
    for seq, (at, _, e) in enumerate(events, start=1):
        if e["action"] == "open":
            before, after, applied = None, "draft", True
        else:
            before = state
            frm, to = TRANSITIONS[e["action"]]
            applied = state == frm
            after = to if applied else state
        state = after
        rows.append({"case_id": case.case_id, "contract_id": case.contract_id, "case_kind": case.kind, "seq": seq,
                     "at": at, "actor": e["actor"], "actor_kind": "system" if e["decision_id"] is None else "human",
                     "action": e["action"], "from_state": before, "to_state": TRANSITIONS.get(e["action"],
                                                                                            (None, "draft"))[1],
                     "reason": e["reason"], "decision_id": e["decision_id"], "applied": applied, "state": state})
    return rows


def state_of(rows: list[dict[str, Any]]) -> str:
    return rows[-1]["state"] if rows else "draft"


def decision_row(case: str, contract_id: str, action: str, from_state: str, actor: str, reason: str,
                 decided_at: datetime, source: str = "cli") -> dict[str, Any]:
    if action not in HUMAN_ACTIONS:
        raise WorkflowError(f"unknown action {action!r}: one of {', '.join(HUMAN_ACTIONS)}")
    frm, to = TRANSITIONS[action]
    if from_state != frm:
        allowed = [a for a in HUMAN_ACTIONS if TRANSITIONS[a][0] == from_state]
        raise WorkflowError(f"case {case} is {from_state}: {action} needs it to be {frm}"
                            + (f"; allowed now: {', '.join(allowed)}" if allowed else "; no decision is open on it"))
    if not actor.strip() or not reason.strip():
        raise WorkflowError("a decision needs --by NAME and --reason TEXT")
    stamp = decided_at.astimezone(UTC).isoformat()
    did = hashlib.sha256(f"{case}|{action}|{actor}|{stamp}|{reason}".encode()).hexdigest()[:20]
    return {"decision_id": did, "contract_id": contract_id, "case_id": case, "action": action, "from_state": frm,
            "to_state": to, "actor": actor.strip(), "reason": reason.strip(), "decided_at": decided_at.astimezone(UTC),
            "source": source, "dt": decided_at.astimezone(UTC).date().isoformat()}


def current_cases(settings: Settings, contract_id: str) -> list[dict[str, Any]]:
    """The cases of a contract with their current state: the last workflow table plus decisions since."""
    import schemas
    from lakehouse.lake import Lake

    lake = Lake.from_settings(settings)
    wf = lake.read_pandas(schemas.get("processed.contract_workflow"))
    wf = wf[wf["contract_id"] == contract_id]
    if wf.empty:
        register = lake.read_pandas(schemas.get("processed.contract_register"))
        known = ", ".join(sorted(register["contract_id"])[:10]) if len(register) else "none yet (run the pipeline)"
        raise WorkflowError(f"no contract {contract_id} in the register (contracts: {known})")
    decisions = lake.read_pandas(schemas.get(DECISIONS))
    decisions = decisions[decisions["contract_id"] == contract_id]
    out = []
    for cid, rows in wf.sort_values(["case_id", "seq"]).groupby("case_id"):
        sys_rows = rows[rows["actor_kind"] == "system"]
        opened = pd.Timestamp(sys_rows[sys_rows["action"] == "open"]["at"].iloc[0]).date()
        comp = sys_rows[sys_rows["action"] == "complete"]
        case = Case(cid, contract_id, rows["case_kind"].iloc[0], opened,
                    pd.Timestamp(comp["at"].iloc[0]).date() if len(comp) else None)
        folded = fold(case, decisions[decisions["case_id"] == cid].to_dict("records"))
        out.append({"case": case, "state": state_of(folded), "rows": folded})
    return sorted(out, key=lambda c: (c["case"].opened, c["case"].case_id))


def decide(settings: Settings, contract_id: str, action: str, actor: str, reason: str, case: str | None = None,
           now: datetime | None = None) -> dict[str, Any]:
    """Record one decision (one commit) and return it with the case's state after it."""
    from lakehouse.context import RunContext

    cases = current_cases(settings, contract_id)
    if case is None:
        frm = TRANSITIONS[action][0] if action in TRANSITIONS else None
        fitting = [c for c in cases if c["state"] == frm]
        if not fitting:
            states = "; ".join(f"{c['case'].case_id}: {c['state']}" for c in cases)
            raise WorkflowError(f"no case of {contract_id} can be {action}d now ({states})")
        chosen = fitting[-1]
    else:
        chosen = next((c for c in cases if c["case"].case_id == case), None)
        if chosen is None:
            raise WorkflowError(f"{contract_id} has no case {case}: " + ", ".join(c["case"].case_id for c in cases))
    now = now or datetime.now(UTC)
    row = decision_row(chosen["case"].case_id, contract_id, action, chosen["state"], actor, reason, now)
    ctx = RunContext.create(settings, [now.date()], run_id=f"vcm-decision-{row['decision_id']}")
    try:
        ctx.write(DECISIONS, pd.DataFrame([row]), replace=[{"dt": row["dt"], "decision_id": row["decision_id"]}])
    finally:
        ctx.close()
    after = next(c for c in current_cases(settings, contract_id) if c["case"].case_id == row["case_id"])
    applied = next((r["applied"] for r in after["rows"] if r["decision_id"] == row["decision_id"]), False)
    return {**row, "applied": applied, "state": after["state"]}

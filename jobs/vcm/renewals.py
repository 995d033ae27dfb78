"""Renewal reminders: the days a reminder falls due, and stage ``vcm.renewals`` emitting
``contract.renewal.due`` on them.

For an opt-out deadline *O* (the end of the term in force minus the notice period) and reminders *R* days
before it (``vcm.reminder_days``, default 90 / 60 / 30), reminder *R* falls due on *O − R*. A contract learned
of late (its document landed on day *K* after some reminder days) gets, on *K*, only the most urgent
reminder it has passed, and the later ones on their days; none once *O* has passed. Every reminder is one
event with a deterministic id (contract, deadline, reminder), dated the day it falls due: a rerun of any day
writes the same events, and no day repeats another's. A renewing contract's later terms get their own
deadlines and reminders (cycles), each from the document version that was current when it fell due.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from models.vcm.fields import term_end

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.context import RunContext

EVENT = "contract.renewal.due"
VERSIONS = "processed.contract_versions"
REGISTER = "processed.contract_register"
SCORECARD = "analytics.vendor_scorecard"
WORKFLOW = "processed.contract_workflow"


@dataclass(frozen=True)
class Reminder:
    contract_id: str
    document_id: str
    term_end: date
    opt_out: date
    reminder_days: int
    day: date
    cycle: int
    first: bool = True

    @property
    def days_to_opt_out(self) -> int:
        return (self.opt_out - self.day).days


def reminder_days_for(opt_out: date, known_from: date, thresholds: Sequence[int]) -> list[tuple[int, date]]:
    """(reminder, day it fires) for one deadline known from ``known_from`` (see the module doc)."""
    ts = sorted(set(thresholds), reverse=True)
    out = []
    for i, t in enumerate(ts):
        due = opt_out - timedelta(days=t)
        later = ts[i + 1] if i + 1 < len(ts) else None
        if later is not None and opt_out - timedelta(days=later) <= known_from:
            continue  # a more urgent reminder is due already on the day the contract is learned of
        day = max(due, known_from)
        if day <= opt_out:
            out.append((t, day))
    return out


def cycles(expiration: date, renewal_months: int | None, notice_days: int, until: date, lead_days: int
           ) -> list[tuple[int, date, date]]:
    """(cycle, term end, opt-out deadline) of a renewing contract's terms, from the initial term up to the
    first whose reminders (``lead_days`` ahead of its deadline) all lie after ``until``."""
    out, k, end = [], 0, expiration
    while True:
        opt = end - timedelta(days=int(notice_days))
        out.append((k, end, opt))
        if not renewal_months or opt - timedelta(days=lead_days) > until or k > 1000:
            return out
        end, k = term_end(end + timedelta(days=1), int(renewal_months)), k + 1


def reminders(versions: pd.DataFrame, thresholds: Sequence[int], until: date) -> list[Reminder]:
    """Every reminder that falls due on or before ``until``, from the document versions (each decides the
    reminders of the days it was current: from the day it landed to the day the next version did)."""
    out: list[Reminder] = []
    for v in versions.itertuples(index=False):
        renews = bool(v.auto_renew) if v.auto_renew is not None and v.auto_renew == v.auto_renew else False
        if not renews or pd.isna(v.expiration_date) or pd.isna(v.notice_period_days):
            continue
        months = None if pd.isna(v.renewal_term_months) else int(v.renewal_term_months)
        months = months or (None if pd.isna(v.term_months) else int(v.term_months))
        seen = pd.Timestamp(v.seen).date()
        valid_to = None if pd.isna(v.valid_to) else pd.Timestamp(v.valid_to).date()
        for k, end, opt in cycles(pd.Timestamp(v.expiration_date).date(), months, int(v.notice_period_days), until,
                                  max(thresholds)):
            for i, (t, day) in enumerate(reminder_days_for(opt, seen, thresholds)):
                if day <= until and (valid_to is None or day < valid_to):
                    out.append(Reminder(v.contract_id, v.document_id, end, opt, t, day, k, i == 0))
    return sorted(out, key=lambda r: (r.day, r.contract_id, -r.reminder_days))


def event_for(r: Reminder, contract: dict[str, Any], thresholds: Sequence[int], vendor_score: float | None) -> dict:
    from lakehouse.events import episode_id, make_event

    ts = sorted(thresholds, reverse=True)
    first = r.first
    severity = "critical" if r.reminder_days == ts[-1] else "warning" if r.reminder_days != ts[0] else "info"
    annual = contract.get("annual_value")
    data = {"contract_id": r.contract_id, "document_id": r.document_id,
            "counterparty": contract.get("vendor_name") or "(unknown vendor)", "client_id": None,
            "vendor_id": contract.get("vendor_id"), "term_end": r.term_end.isoformat(),
            "opt_out_date": r.opt_out.isoformat(), "days_to_opt_out": r.days_to_opt_out,
            "reminder_days": int(r.reminder_days), "renewal_type": contract.get("renewal_type") or "auto_renew",
            "renewal_term_months": _int(contract.get("renewal_term_months")),
            "notice_period_days": _int(contract.get("notice_period_days")), "renewals_so_far": r.cycle,
            "auto_renew": True, "annual_value": None if annual is None else float(annual),
            "vendor_score": vendor_score, "approval_state": contract.get("approval_state")}
    if data["renewal_type"] not in ("auto_renew", "evergreen"):
        data["renewal_type"] = "auto_renew"
    evidence = {"metric": "days_to_opt_out", "value": r.days_to_opt_out, "threshold": int(r.reminder_days),
                "comparison": "<=",
                "source_rows": [{"dataset": VERSIONS, "keys": {"document_id": r.document_id}},
                                {"dataset": "processed.contract_fields",
                                 "keys": {"document_id": r.document_id,
                                          "field": ["expiration_date", "notice_period_days", "auto_renew"]}}]}
    episode = {"id": episode_id(EVENT, f"contract:{r.contract_id}", f"opt_out:{r.opt_out.isoformat()}",
                                r.opt_out.isoformat()),
               "state": "opened" if first else "worsened", "opened": r.opt_out.isoformat(), "closed": None}
    return make_event(EVENT, "vcm.renewals", f"contract:{r.contract_id}", r.day, r.opt_out.isoformat(),
                      f"reminder_{r.reminder_days}d", data, evidence, severity=severity, episode=episode)


def _int(v: Any) -> int | None:
    v = clean(v)
    return None if v is None else int(v)


def clean(v: Any) -> Any:
    if v is None:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(v, "item"):
        return v.item()
    return v


def score_before(scores: pd.DataFrame, vendor_id: str | None, day: date) -> float | None:
    """The vendor's overall score in the last quarter that had ended before ``day`` (so an event's content
    depends on its own day only, whatever window the run that wrote it covered)."""
    if not vendor_id or scores.empty:
        return None
    s = scores[(scores["vendor_id"] == vendor_id) & scores["overall_score"].notna()
               & (pd.to_datetime(scores["quarter_end"]).dt.date < day)]
    return None if s.empty else float(s.sort_values("quarter").iloc[-1]["overall_score"])


def state_on(workflow: pd.DataFrame, contract_id: str, day: date) -> str | None:
    """State of the contract's latest case as it stood at the end of ``day``."""
    if workflow.empty:
        return None
    from datetime import UTC, datetime, time

    end = pd.Timestamp(datetime.combine(day, time(23, 59, 59), tzinfo=UTC))
    w = workflow[(workflow["contract_id"] == contract_id) & (pd.to_datetime(workflow["at"], utc=True) <= end)]
    if w.empty:
        return None
    latest = w.sort_values(["at", "seq"]).iloc[-1]["case_id"]
    return str(w[w["case_id"] == latest].sort_values("seq").iloc[-1]["state"])


def run(ctx: RunContext) -> None:
    cfg = ctx.config
    versions = ctx.read_pandas(VERSIONS)
    register = ctx.read_pandas(REGISTER)
    scores = ctx.read_pandas(SCORECARD)
    workflow = ctx.read_pandas(WORKFLOW)
    contracts = {r["contract_id"]: {k: clean(v) for k, v in r.items()} for r in register.to_dict("records")}
    by_doc = {r["document_id"]: {k: clean(v) for k, v in r.items()} for r in versions.to_dict("records")}
    days = set(ctx.days)
    events = []
    for r in reminders(versions, cfg.reminder_days, ctx.end):
        if r.day.isoformat() not in days:
            continue
        # the facts of the version the reminder comes from, not of whatever version is latest at the run's end
        c = {**contracts.get(r.contract_id, {}), **{k: v for k, v in by_doc.get(r.document_id, {}).items()
                                                     if k in ("vendor_id", "vendor_name", "renewal_type",
                                                              "renewal_term_months", "notice_period_days",
                                                              "annual_value")}}
        c["approval_state"] = state_on(workflow, r.contract_id, r.day)
        events.append(event_for(r, c, cfg.reminder_days, score_before(scores, c.get("vendor_id"), r.day)))
    ctx.count("events.outbox").notes.append(f"{len(events)} {EVENT} reminder(s)")
    ctx.emit(EVENT, events)

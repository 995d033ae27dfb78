"""Cross-agent events: the envelope, the outbox in the lake, and the dispatcher.

An agent stage builds events with :func:`make_event` and writes them with :func:`write_outbox`;
every event is validated against ``schemas/events/envelope.json`` and its type's ``data`` schema
first. Ids are deterministic (type, subject, period, rule), and each producing stage replaces its own
``(event_type, dt)`` partitions for the run's days, so a rerun writes the same events once.

The ``events.dispatch`` stage routes new outbox events to the agents that consume them, by the routes
in configuration (``[events] routes``): locally into ``events.inbox`` (one row per event and agent),
on AWS also onto EventBridge (``put_events``; EventBridge rules then fan out). The inbox doubles as the
dispatch log, so an event is sent once per agent however often the stage runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import date
from functools import cache
from typing import TYPE_CHECKING, Any

import pyarrow as pa

import schemas
from lakehouse.stages import stage

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.context import RunContext

EVENT_TYPES = (
    "client.profitability.changed",
    "sales.opportunity.identified",
    "resource.utilization.alert",
    "license.compliance.violation",
    "spend.anomaly.detected",
    "contract.renewal.due",
)
OUTBOX = "events.outbox"
INBOX = "events.inbox"


class EventError(ValueError):
    """An event does not match its schema; the message says which field and why."""


def event_id(event_type: str, subject: str, period: str, rule: str) -> str:
    return hashlib.sha256(f"{event_type}|{subject}|{period}|{rule}".encode()).hexdigest()[:32]


@cache
def _validator(name: str):
    from jsonschema import Draft202012Validator, FormatChecker

    doc = json.loads((schemas.EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return Draft202012Validator(doc, format_checker=FormatChecker())


def validate(event: Mapping[str, Any]) -> None:
    """Check the envelope, then the payload against its type's schema (the envelope fixes the type)."""
    for name, part in (("envelope", event), (event.get("type"), event.get("data", {}))):
        errors = sorted(_validator(name).iter_errors(part), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            where = "/".join(str(p) for p in e.path) or "(root)"
            raise EventError(f"{name} schema: {where}: {e.message}")


def make_event(event_type: str, source: str, subject: str, time: date, period: str, rule: str,
               data: Mapping[str, Any], evidence: Mapping[str, Any], severity: str = "warning") -> dict[str, Any]:
    """Build and validate one event. ``period`` and ``rule`` make the id: the same finding about the
    same subject and period is the same event."""
    event = {
        "specversion": "1.0",
        "id": event_id(event_type, subject, period, rule),
        "type": event_type,
        "source": source,
        "subject": subject,
        "time": time.isoformat(),
        "schemaversion": 1,
        "severity": severity,
        "data": dict(data),
        "evidence": dict(evidence),
    }
    validate(event)
    return event


def outbox_table(events: Iterable[Mapping[str, Any]]) -> pa.Table:
    rows = []
    for e in events:
        rows.append({"event_id": e["id"], "event_type": e["type"], "source": e["source"], "subject": e["subject"],
                     "event_time": date.fromisoformat(e["time"]), "severity": e.get("severity"),
                     "envelope": json.dumps(e, sort_keys=True, default=str), "dt": e["time"]})
    rows.sort(key=lambda r: r["event_id"])
    return pa.Table.from_pylist(rows, schema=schemas.get(OUTBOX).arrow_schema())


def write_outbox(ctx: RunContext, event_type: str, events: list[Mapping[str, Any]], days: Iterable[str]):
    """Publish one producer's events of ``event_type``, replacing its partitions for ``days``
    (ISO dates of event_time the producer evaluated in this run)."""
    if event_type not in EVENT_TYPES:
        raise EventError(f"unknown event type {event_type!r}")
    wrong = [e["id"] for e in events if e["type"] != event_type]
    if wrong:
        raise EventError(f"{len(wrong)} event(s) are not of type {event_type}")
    ids = [e["id"] for e in events]
    if len(ids) != len(set(ids)):
        raise EventError(f"{event_type}: duplicate event ids in one write")
    replace = [{"event_type": event_type, "dt": d} for d in sorted(set(days))]
    return ctx.write_arrow(OUTBOX, outbox_table(events), replace=replace)


def routes(settings) -> dict[str, list[str]]:
    return {k: list(v) for k, v in settings.get("events.routes").items()}


def routed(outbox: pa.Table, route_map: Mapping[str, list[str]]) -> pa.Table:
    """One inbox row per (event, target agent), from the configured routes."""
    rows = []
    for e in outbox.to_pylist():
        for agent in route_map.get(e["event_type"], []):
            rows.append({"event_id": e["event_id"], "event_type": e["event_type"], "agent": agent,
                         "subject": e["subject"], "event_time": e["event_time"], "envelope": e["envelope"],
                         "dt": e["dt"]})
    rows.sort(key=lambda r: (r["agent"], r["dt"], r["event_id"]))
    return pa.Table.from_pylist(rows, schema=schemas.get(INBOX).arrow_schema())


def put_eventbridge(settings, inbox_rows: list[dict[str, Any]], client=None) -> int:
    """Send events to EventBridge once each (the inbox rows carry one copy per target agent)."""
    import boto3

    client = client or boto3.client("events", region_name=settings.aws_region)
    bus = settings.get("platform.eventbridge_bus_name")
    seen: dict[str, dict[str, Any]] = {}
    for r in inbox_rows:
        seen.setdefault(r["event_id"], r)
    entries = []
    for r in seen.values():
        env = json.loads(r["envelope"])
        entries.append({"Source": f"msp.{env['source'].split('.')[0]}", "DetailType": env["type"],
                        "Detail": r["envelope"], "EventBusName": bus, "Resources": [env["subject"]]})
    sent = 0
    for i in range(0, len(entries), 10):  # PutEvents takes at most 10 entries per call
        batch = entries[i:i + 10]
        resp = client.put_events(Entries=batch)
        if resp.get("FailedEntryCount"):
            failed = [e for e in resp["Entries"] if "ErrorCode" in e]
            raise RuntimeError(f"EventBridge rejected {len(failed)} event(s): {failed[:3]}")
        sent += len(batch)
    return sent


@stage("events.dispatch", agent="platform", reads=(OUTBOX,), writes=(INBOX,),
       after=())
def dispatch(ctx: RunContext) -> None:
    """Route the run's outbox events to the agents that consume them (EventBridge on AWS)."""
    lake = ctx.lake
    days = {d.isoformat() for d in ctx.dates}
    outbox_ds = schemas.get(OUTBOX)
    keys = [k for k in lake.partitions(outbox_ds) if k.rsplit("dt=", 1)[-1] in days]
    outbox = lake.read_arrow(outbox_ds, keys)
    inbox = routed(outbox, routes(ctx.settings))
    inbox_ds = schemas.get(INBOX)
    if ctx.settings.event_bus == "eventbridge":
        already = {r["event_id"] for r in lake.read_arrow(inbox_ds).select(["event_id"]).to_pylist()}
        new = [r for r in inbox.to_pylist() if r["event_id"] not in already]
        sent = put_eventbridge(ctx.settings, new)
        ctx.count(INBOX).notes.append(f"{sent} event(s) put on EventBridge")
    agents = sorted({a for targets in routes(ctx.settings).values() for a in targets})
    replace = [{"agent": a, "dt": d} for a in agents for d in sorted(days)]
    ctx.count(INBOX).rows_in += outbox.num_rows
    ctx.write_arrow(INBOX, inbox, replace=replace)

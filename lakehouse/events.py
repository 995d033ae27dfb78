"""Cross-agent events: the envelope, the outbox in the lake, and the dispatcher.

An agent stage builds events with :func:`make_event` and publishes them with ``ctx.emit(type, events)``;
every event is validated against ``schemas/events/envelope.json`` and its type's ``data`` schema (declared
by the emitting agent, ``<agent package>/events/<type>.json``) first. Ids are deterministic (type, subject,
period, rule), and each producing stage replaces its own ``(event_type, dt)`` partitions for the run's days,
so a rerun writes the same events once.

The ``events.dispatch`` stage routes new outbox events to the agents that declare they consume them
(:attr:`lakehouse.agents.Registry.routes`): into ``events.inbox`` (one row per event and consuming agent,
naming its handler stage), and, on AWS, also onto EventBridge through the event bus the profile picks
(:func:`lakehouse.environment.event_bus`). The inbox doubles as the dispatch log, so an event is sent once
per agent however often the stage runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import date
from functools import cache
from typing import TYPE_CHECKING, Any

import schemas
from lakehouse import faults

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from lakehouse.context import RunContext

OUTBOX = "events.outbox"
INBOX = "events.inbox"


class EventError(ValueError):
    """An event does not match its schema; the message says which field and why."""


def event_id(event_type: str, subject: str, period: str, rule: str) -> str:
    return hashlib.sha256(f"{event_type}|{subject}|{period}|{rule}".encode()).hexdigest()[:32]


def event_types() -> dict[str, Any]:
    """Declared event types (type → :class:`lakehouse.agents.EventType`)."""
    from lakehouse.agents import registry

    return registry().events


@cache
def _validator(name: str):
    from jsonschema import Draft202012Validator, FormatChecker

    if name == "envelope":
        doc = json.loads((schemas.EVENTS_DIR / "envelope.json").read_text(encoding="utf-8"))
    else:
        declared = event_types()
        if name not in declared:
            raise EventError(f"unknown event type {name!r}; declared: {', '.join(sorted(declared)) or 'none'}")
        doc = declared[name].schema
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
               data: Mapping[str, Any], evidence: Mapping[str, Any], severity: str = "warning",
               episode: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build and validate one event. ``period`` and ``rule`` make the id: the same finding about the same
    subject and period is the same event. ``episode`` (``{"id", "state", "opened"[, "closed"]}``) ties the
    events of one condition together (see :func:`episode_id`)."""
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
    if episode is not None:
        event["episode"] = dict(episode)
    validate(event)
    return event


def episode_id(event_type: str, subject: str, condition: str, opened: date | str) -> str:
    """The id of an episode: one condition of one subject, from the day it opened."""
    opened = opened if isinstance(opened, str) else opened.isoformat()
    return hashlib.sha256(f"episode|{event_type}|{subject}|{condition}|{opened}".encode()).hexdigest()[:32]


def outbox_table(events: Iterable[Mapping[str, Any]]) -> pa.Table:
    import pyarrow as pa

    rows = []
    for e in events:
        rows.append({"event_id": e["id"], "event_type": e["type"], "source": e["source"], "subject": e["subject"],
                     "event_time": date.fromisoformat(e["time"]), "severity": e.get("severity"),
                     "envelope": json.dumps(e, sort_keys=True, default=str), "dt": e["time"]})
    rows.sort(key=lambda r: r["event_id"])
    return pa.Table.from_pylist(rows, schema=schemas.get(OUTBOX).arrow_schema())


def write_outbox(ctx: RunContext, event_type: str, events: list[Mapping[str, Any]], days: Iterable[str]):
    """Publish one producer's events of ``event_type``, replacing its partitions for ``days`` (ISO dates of
    event_time the producer evaluated in this run). The producing stage's agent must declare the type."""
    declared = event_types()
    if event_type not in declared:
        raise EventError(f"unknown event type {event_type!r}; declared: {', '.join(sorted(declared)) or 'none'}")
    if ctx.stage is not None and declared[event_type].agent != ctx.stage.agent:
        raise EventError(f"stage {ctx.stage.name} emits {event_type}, which agent {declared[event_type].agent} "
                         "declares; an agent emits only its own event types")
    wrong = [e["id"] for e in events if e["type"] != event_type]
    if wrong:
        raise EventError(f"{len(wrong)} event(s) are not of type {event_type}")
    ids = [e["id"] for e in events]
    if len(ids) != len(set(ids)):
        raise EventError(f"{event_type}: duplicate event ids in one write")
    outside = sorted({e["time"] for e in events} - set(days))
    if outside:
        raise EventError(f"{event_type}: events dated {outside[:3]} lie outside the days this write replaces")
    replace = [{"event_type": event_type, "dt": d} for d in sorted(set(days))]
    return ctx.write(OUTBOX, outbox_table(events), replace=replace)


def routed(outbox: pa.Table, routes: Mapping[str, list[tuple[str, str]]]) -> pa.Table:
    """One inbox row per (event, consuming agent), from the declared routes."""
    import pyarrow as pa

    rows = []
    for e in outbox.to_pylist():
        for agent, handler in routes.get(e["event_type"], []):
            rows.append({"event_id": e["event_id"], "event_type": e["event_type"], "agent": agent,
                         "handler": handler, "subject": e["subject"], "event_time": e["event_time"],
                         "envelope": e["envelope"], "dt": e["dt"]})
    rows.sort(key=lambda r: (r["agent"], r["dt"], r["event_id"]))
    return pa.Table.from_pylist(rows, schema=schemas.get(INBOX).arrow_schema())


# ---- event buses ----------------------------------------------------------------------------------------------
class EventBus:
    """Where dispatched events go besides the lake's inbox (picked by :func:`lakehouse.environment.event_bus`)."""

    name = "bus"

    def publish(self, rows: list[dict[str, Any]]) -> int:
        """Send the events of new inbox rows (once per event); returns how many were sent."""
        raise NotImplementedError


class LocalBus(EventBus):
    """The local router: the inbox table is the delivery, nothing else to send."""

    name = "local"

    def publish(self, rows: list[dict[str, Any]]) -> int:
        return 0


class EventBridgeBus(EventBus):
    """Amazon EventBridge: one ``PutEvents`` entry per event (detail-type = event type, detail = envelope)."""

    name = "eventbridge"

    def __init__(self, settings, client=None):
        self.settings = settings
        self._client = client

    @property
    def client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("events", region_name=self.settings.aws_region)
        return self._client

    def publish(self, rows: list[dict[str, Any]]) -> int:
        bus = self.settings.platform.eventbridge_bus_name
        seen: dict[str, dict[str, Any]] = {}
        for r in rows:
            seen.setdefault(r["event_id"], r)
        entries = []
        for r in seen.values():
            env = json.loads(r["envelope"])
            entries.append({"Source": f"msp.{env['source'].split('.')[0]}", "DetailType": env["type"],
                            "Detail": r["envelope"], "EventBusName": bus, "Resources": [env["subject"]]})
        sent = 0
        for i in range(0, len(entries), 10):  # PutEvents takes at most 10 entries per call
            batch = entries[i:i + 10]
            resp = self.client.put_events(Entries=batch)
            if resp.get("FailedEntryCount"):
                failed = [e for e in resp["Entries"] if "ErrorCode" in e]
                raise RuntimeError(f"EventBridge rejected {len(failed)} event(s): {failed[:3]}")
            sent += len(batch)
        return sent


def dispatch(ctx: RunContext) -> None:
    """Route the run's outbox events to the agents that consume them (EventBridge on AWS)."""
    from lakehouse.agents import registry
    from lakehouse.environment import event_bus

    routes = registry().routes
    agents = sorted({agent for targets in routes.values() for agent, _ in targets})
    outbox = ctx.read_arrow(OUTBOX, {"dt": ctx.days})
    inbox = routed(outbox, routes)
    bus = event_bus(ctx.settings)
    already = {r["event_id"] for r in ctx.read_arrow(INBOX, {"dt": ctx.days}).select(["event_id"]).to_pylist()}
    new = [r for r in inbox.to_pylist() if r["event_id"] not in already]
    faults.point("events.dispatching")
    sent = bus.publish(new)
    if sent:
        ctx.count(INBOX).notes.append(f"{sent} event(s) put on {bus.name}")
    ctx.count(INBOX).rows_in += outbox.num_rows
    ctx.count(INBOX).notes.append(f"{len(new)} new delivery(ies) to {len({r['agent'] for r in new})} agent(s)")
    replace = [{"agent": a, "dt": d} for a in agents for d in ctx.days]
    ctx.write(INBOX, inbox, replace=replace)

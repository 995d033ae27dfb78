"""Cross-agent events: the envelope, the outbox in the lake, and the dispatcher.

An agent stage builds events with :func:`make_event` and publishes them with ``ctx.emit(type, events)``;
every event is validated against ``schemas/events/envelope.json`` and its type's ``data`` schema (declared
by the emitting agent, ``<agent package>/events/<type>.json``) first. Ids are deterministic (type, subject,
period, rule), and each producing stage replaces its own ``(event_type, dt)`` partitions for the run's days,
so a rerun writes the same events once.

The ``events.dispatch`` stage routes new outbox events to the agents whose declared rules they meet
(:attr:`lakehouse.agents.Registry.rules`: the event type, then the rule's conditions on severity and payload
fields): into ``events.inbox`` (one row per event and consuming agent, naming its handler stage), and, on AWS,
also onto EventBridge through the event bus the profile picks (:func:`lakehouse.environment.event_bus`), whose
rules carry the same conditions (:meth:`lakehouse.agents.Rule.event_pattern`). The inbox doubles as the
dispatch log, so an event is sent once per agent however often the stage runs.

A handler's own events name the events they answer (``caused_by`` in the envelope); dispatch does not wait
for handlers, so their events are dispatched by the run's next round (:mod:`lakehouse.runner`). A handler
stage that fails leaves the inbox rows it was given in ``events.dead_letters`` with the error
(:func:`dead_letter`); a later successful run of that handler over those days resolves them
(``msp events redrive`` runs it). :func:`trace` follows an event through deliveries, handler outputs and the
events it caused; :func:`digest` ranks the day's items across agents.
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
DEAD_LETTERS = "events.dead_letters"
DIGEST = "events.digest"
SEVERITY_WEIGHT = {"info": 1.0, "warning": 2.0, "critical": 3.0}


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
               episode: Mapping[str, Any] | None = None, caused_by: Iterable[str] | None = None) -> dict[str, Any]:
    """Build and validate one event. ``period`` and ``rule`` make the id: the same finding about the same
    subject and period is the same event. ``episode`` (``{"id", "state", "opened"[, "closed"]}``) ties the
    events of one condition together (see :func:`episode_id`); ``caused_by`` lists the ids of the events a
    handler answered with it."""
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
    if caused_by:
        event["caused_by"] = sorted(set(caused_by))
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
    table = outbox_table(events)
    if _same_rows(ctx, OUTBOX, table, {"event_type": event_type, "dt": sorted(set(days))}, "event_id"):
        ctx.count(OUTBOX).notes.append(f"{event_type}: {len(events)} event(s), unchanged")
        return None
    return ctx.write(OUTBOX, table, replace=replace)


def _same_rows(ctx: RunContext, dataset: str, table: pa.Table, where: Mapping[str, Any], key: str) -> bool:
    """Whether the partitions ``where`` already hold exactly these rows (then a write would only make a new
    snapshot, and wake every reader of the table for nothing)."""
    current = ctx.lake.read_arrow(schemas.get(dataset), where)  # the current snapshot, not one pinned as read
    if current.num_rows != table.num_rows:
        return False
    cols = [c for c in table.column_names if c in current.column_names]

    def rows(t):
        return sorted(json.dumps({c: r[c] for c in cols}, sort_keys=True, default=str) for r in t.to_pylist())

    return rows(current) == rows(table)


def routed(outbox: pa.Table, routes: Mapping[str, list[tuple[str, str]]] | Iterable[Any]) -> pa.Table:
    """One inbox row per (event, consuming agent), from the declared rules (``Registry.rules``: type and
    conditions) or plain routes (type → [(agent, handler)])."""
    import pyarrow as pa

    from lakehouse.agents import Rule

    if isinstance(routes, Mapping):
        rules = [Rule(t, h, agent=a) for t, targets in routes.items() for a, h in targets]
    else:
        rules = list(routes)
    by_type: dict[str, list[Rule]] = {}
    for r in rules:
        by_type.setdefault(r.event, []).append(r)
    rows = []
    for e in outbox.to_pylist():
        candidates = by_type.get(e["event_type"], [])
        if not candidates:
            continue
        env = json.loads(e["envelope"])
        for r in candidates:
            if not r.matches(env):
                continue
            rows.append({"event_id": e["event_id"], "event_type": e["event_type"], "agent": r.agent,
                         "handler": r.handler, "subject": e["subject"], "event_time": e["event_time"],
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

    rules = registry().rules
    agents = sorted({r.agent for r in rules})
    outbox = ctx.read_arrow(OUTBOX, {"dt": ctx.days})
    inbox = routed(outbox, rules)
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
    if not agents or _same_rows(ctx, INBOX, inbox, {"agent": agents, "dt": ctx.days}, "event_id"):
        ctx.count(INBOX).notes.append("inbox unchanged")
        return
    ctx.write(INBOX, inbox, replace=replace)


# ---- dead letters --------------------------------------------------------------------------------------------
def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def _dead_letter_rows(ctx: RunContext) -> list[dict[str, Any]]:
    return ctx.lake.read_arrow(schemas.get(DEAD_LETTERS)).to_pylist()


def _write_dead_letters(ctx: RunContext, rows: list[dict[str, Any]], days: Iterable[str]) -> None:
    import pyarrow as pa

    ds = schemas.get(DEAD_LETTERS)
    rows = sorted(rows, key=lambda r: (str(r["dt"]), r["handler"], r["event_id"]))
    ctx.lake.replace(ds, pa.Table.from_pylist(rows, schema=ds.arrow_schema()), run_id=ctx.run_id,
                     replace=[{"dt": d} for d in sorted(set(days))], stage="events.dead_letters")


#: A handler rewrites the dead letters of its days whole (every handler's rows of those days): handlers side by
#: side (stage workers, an Airflow local executor) take this lock around the read and the write, or one could
#: write back rows read before the other's write.
DEAD_LETTER_LOCK = "_meta/events/dead_letters"


def dead_letter(ctx: RunContext, stage: Any, error: str) -> int:
    """A handler stage failed: keep the inbox rows routed to it for the run's days in ``events.dead_letters``
    with the error (attempts counted per event). Returns how many events are dead-lettered."""
    inbox = [r for r in ctx.lake.read_arrow(schemas.get(INBOX), {"agent": stage.agent, "dt": ctx.days}).to_pylist()
             if r["handler"] == stage.name]
    if not inbox:
        return 0
    with ctx.lake.local_lock(DEAD_LETTER_LOCK):
        return _dead_letter(ctx, stage, error, inbox)


def _dead_letter(ctx: RunContext, stage: Any, error: str, inbox: list[dict[str, Any]]) -> int:
    days = sorted({str(r["dt"]) for r in inbox})
    existing = [r for r in _dead_letter_rows(ctx) if str(r["dt"]) in days]
    by_key = {(r["event_id"], r["handler"]): r for r in existing}
    now = _now()
    for r in inbox:
        old = by_key.get((r["event_id"], stage.name))
        attempts = (old["attempts"] + 1) if old and old["status"] == "dead" else 1
        by_key[(r["event_id"], stage.name)] = {
            "event_id": r["event_id"], "event_type": r["event_type"], "agent": r["agent"], "handler": stage.name,
            "subject": r["subject"], "event_time": r["event_time"], "error": error[:2000], "attempts": attempts,
            "status": "dead", "first_run_id": old["first_run_id"] if old and old["status"] == "dead" else ctx.run_id,
            "last_run_id": ctx.run_id, "updated_at": now, "dt": str(r["dt"])}
    _write_dead_letters(ctx, list(by_key.values()), days)
    return len(inbox)


def resolve_dead_letters(ctx: RunContext, stage: Any) -> int:
    """A handler stage succeeded over the run's days: its dead letters of those days are resolved."""
    with ctx.lake.local_lock(DEAD_LETTER_LOCK):
        return _resolve_dead_letters(ctx, stage)


def _resolve_dead_letters(ctx: RunContext, stage: Any) -> int:
    rows = [r for r in _dead_letter_rows(ctx) if str(r["dt"]) in set(ctx.days)]
    mine = [r for r in rows if r["handler"] == stage.name and r["status"] == "dead"]
    if not mine:
        return 0
    now = _now()
    for r in mine:
        r.update(status="resolved", last_run_id=ctx.run_id, updated_at=now)
    _write_dead_letters(ctx, rows, sorted({str(r["dt"]) for r in rows}))
    return len(mine)


def dead_letters(lake, status: str | None = "dead") -> list[dict[str, Any]]:
    rows = lake.read_arrow(schemas.get(DEAD_LETTERS)).to_pylist()
    return sorted((r for r in rows if status is None or r["status"] == status),
                  key=lambda r: (str(r["dt"]), r["handler"], r["event_id"]))


# ---- trace -------------------------------------------------------------------------------------------------
def trace(lake, event_id: str, *, max_depth: int = 8) -> dict[str, Any]:
    """An event and everything that followed it: who received it (inbox rows, with their rule), what each
    handler produced for it (rows of the handler's output tables whose rule's ``trace_column`` names the event),
    dead letters, the consensus decision when it is a proposal, and the events it caused (``caused_by``),
    recursively. Raises KeyError for an unknown id."""
    from lakehouse.agents import registry

    reg = registry()
    outbox = {r["event_id"]: r for r in lake.read_arrow(schemas.get(OUTBOX)).to_pylist()}
    if event_id not in outbox:
        raise KeyError(f"no event {event_id} in {OUTBOX}")
    envelopes = {i: json.loads(r["envelope"]) for i, r in outbox.items()}
    children: dict[str, list[str]] = {}
    for i, env in envelopes.items():
        for parent in env.get("caused_by") or ():
            children.setdefault(parent, []).append(i)
    inbox: dict[str, list[dict[str, Any]]] = {}
    for r in lake.read_arrow(schemas.get(INBOX)).to_pylist():
        inbox.setdefault(r["event_id"], []).append(r)
    dead: dict[str, list[dict[str, Any]]] = {}
    for r in lake.read_arrow(schemas.get(DEAD_LETTERS)).to_pylist():
        dead.setdefault(r["event_id"], []).append(r)
    decisions = {r["event_id"]: r for r in lake.read_arrow(schemas.get("events.consensus_decisions")).to_pylist()}
    rules = {(r.agent, r.handler): r for r in reg.rules}
    tables: dict[str, list[dict[str, Any]]] = {}

    def produced(agent: str, handler: str, eid: str) -> list[dict[str, Any]]:
        rule = rules.get((agent, handler))
        stage = reg.stages.get(handler)
        if rule is None or stage is None:
            return []
        out = []
        for name in sorted(reg.outputs(stage)):
            ds = schemas.get(name)
            if ds.zone_root == "events" or rule.trace_column not in {c.name for c in ds.stored_columns()}:
                continue
            if name not in tables:
                tables[name] = lake.read_arrow(ds).to_pylist()
            rows = [r for r in tables[name]
                    if eid in {x.strip() for x in str(r.get(rule.trace_column) or "").split(",")}]
            keys = [k for k in ds.primary_key if k != "dt"] or [c.name for c in ds.stored_columns()][:3]
            out.append({"dataset": name, "rows": len(rows),
                        "keys": [{k: r.get(k) for k in keys} for r in rows[:10]]})
        return out

    def node(eid: str, depth: int, seen: frozenset[str]) -> dict[str, Any]:
        env = envelopes[eid]
        n = {"event_id": eid, "type": env["type"], "source": env["source"], "subject": env["subject"],
             "time": env["time"], "severity": env.get("severity"), "episode": env.get("episode"),
             "evidence": env.get("evidence"), "caused_by": env.get("caused_by") or [],
             "deliveries": [], "dead_letters": dead.get(eid, []), "decision": None, "caused": []}
        for r in sorted(inbox.get(eid, []), key=lambda r: (r["agent"], r["handler"])):
            rule = rules.get((r["agent"], r["handler"]))
            n["deliveries"].append({"agent": r["agent"], "handler": r["handler"], "dt": str(r["dt"]),
                                    "rule": rule.describe() if rule else "",
                                    "produced": produced(r["agent"], r["handler"], eid)})
        d = decisions.get(eid)
        if d is not None:
            n["decision"] = {**{k: d[k] for k in ("decision", "approvals", "vetoes", "warnings", "reason",
                                                  "decision_event_id")}, "votes": json.loads(d["votes"])}
        if depth < max_depth:
            n["caused"] = [node(c, depth + 1, seen | {c}) for c in sorted(children.get(eid, [])) if c not in seen]
        return n

    return node(event_id, 0, frozenset({event_id}))


def trace_lines(tree: Mapping[str, Any], indent: int = 0) -> list[str]:
    """The trace as indented lines (``msp events trace``)."""
    pad = "  " * indent
    ev = tree.get("evidence") or {}
    ep = tree.get("episode") or {}
    lines = [f"{pad}event {tree['event_id']}  {tree['type']}  {tree['subject']}  {tree['time']}  "
             f"[{tree.get('severity') or '-'}]" + (f"  episode {ep.get('state')}" if ep else ""),
             f"{pad}  evidence: {ev.get('metric')} = {ev.get('value')} {ev.get('comparison', '')} "
             f"{ev.get('threshold')}  ({len(ev.get('source_rows') or [])} source row(s))"]
    if tree.get("caused_by"):
        lines.append(f"{pad}  caused by: {', '.join(tree['caused_by'])}")
    if not tree["deliveries"] and not tree.get("decision"):
        lines.append(f"{pad}  received by: nobody (no rule matches)")
    for d in tree["deliveries"]:
        lines.append(f"{pad}  -> received by {d['agent']} ({d['handler']}) on {d['dt']}"
                     + (f" when {d['rule']}" if d["rule"] else ""))
        for p in d["produced"]:
            lines.append(f"{pad}     produced {p['rows']} row(s) of {p['dataset']}"
                         + (f": {', '.join(json.dumps(k, default=str) for k in p['keys'][:3])}" if p["keys"] else ""))
    for r in tree.get("dead_letters") or ():
        lines.append(f"{pad}  !! dead letter at {r['handler']} ({r['status']}, {r['attempts']} attempt(s)): "
                     f"{r['error']}")
    dec = tree.get("decision")
    if dec:
        lines.append(f"{pad}  -> consensus: {dec['decision'].upper()} ({dec['approvals']} approval(s), "
                     f"{dec['vetoes']} veto(es)): {dec['reason']}")
        for v in dec["votes"]:
            lines.append(f"{pad}     {v['agent']}: {v['decision']}" + (f" [{v['veto']}, {v['mode']}]" if v.get("veto")
                                                                        else "")
                         + (f" {v.get('metric')} = {v.get('value')} {v.get('comparison') or ''} {v.get('threshold')}"
                            if v.get("metric") else "") + (f"  ({v['note']})" if v.get("note") else ""))
    for c in tree["caused"]:
        lines.append(f"{pad}  => caused:")
        lines += trace_lines(c, indent + 2)
    return lines


# ---- the daily digest ------------------------------------------------------------------------------------------
def impact(envelope: Mapping[str, Any], schema: Mapping[str, Any] | None = None) -> tuple[float, float | None]:
    """(score, impact in USD) of one event: severity weight x (1 + log10(1 + USD at stake)) x (1 + how far the
    metric is past its threshold, relative, at most 3). The USD at stake is the ``data`` field the type's schema
    names in ``x-impact`` (absolute value), when it has one."""
    import math

    ev = envelope.get("evidence") or {}
    data = envelope.get("data") or {}
    usd = None
    field_name = (schema or {}).get("x-impact")
    if field_name and isinstance(data.get(field_name), int | float):
        usd = abs(float(data[field_name]))
    value, threshold = ev.get("value"), ev.get("threshold")
    exceed = 0.0
    if isinstance(value, int | float) and isinstance(threshold, int | float):
        exceed = min(3.0, abs(float(value) - float(threshold)) / max(1.0, abs(float(threshold))))
    score = SEVERITY_WEIGHT.get(envelope.get("severity") or "warning", 2.0) * (1 + math.log10(1 + (usd or 0.0))) \
        * (1 + exceed)
    return round(score, 4), usd


def digest(lake, day: date, top: int = 20, rows: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The day's top items across agents: the events dated ``day`` (by partition), one per episode (its latest
    state that day), closed episodes left out, ranked by :func:`impact`. ``rows``: the day's outbox rows when
    the caller read them already (a run over many days reads the outbox once, not once per day)."""
    reg_events = event_types()
    if rows is None:
        rows = lake.read_arrow(schemas.get(OUTBOX), {"dt": day.isoformat()}).to_pylist()
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    order = {"opened": 0, "updated": 1, "worsened": 2, "closed": 3}
    for r in rows:
        env = json.loads(r["envelope"])
        ep = env.get("episode") or {}
        key = ep.get("id") or env["id"]
        rank = order.get(ep.get("state"), 0)
        if key not in latest or rank >= latest[key][0]:
            latest[key] = (rank, env)
    items = []
    for _rank, env in latest.values():
        ep = env.get("episode") or {}
        if ep.get("state") == "closed":
            continue
        declared = reg_events.get(env["type"])
        score, usd = impact(env, declared.schema if declared else None)
        ev = env.get("evidence") or {}
        value = ev.get("value")
        items.append({"event_id": env["id"], "event_type": env["type"],
                      "agent": declared.agent if declared else env["source"].split(".")[0],
                      "subject": env["subject"], "severity": env.get("severity") or "warning",
                      "episode_state": ep.get("state"), "metric": ev.get("metric"),
                      "value": float(value) if isinstance(value, int | float) else None,
                      "threshold": None if ev.get("threshold") is None else str(ev.get("threshold")),
                      "impact_usd": usd, "score": score, "evidence": json.dumps(ev, sort_keys=True, default=str),
                      "dt": day.isoformat()})
    items.sort(key=lambda i: (-i["score"], i["event_type"], i["subject"], i["event_id"]))
    return [{**i, "rank": n} for n, i in enumerate(items[:top], start=1)]


def write_digest(ctx: RunContext) -> None:
    """The ``events.digest`` stage: the digest of each of the run's days."""
    import pyarrow as pa

    ds = schemas.get(DIGEST)
    by_day: dict[str, list[dict[str, Any]]] = {}
    for r in ctx.lake.read_arrow(schemas.get(OUTBOX), {"dt": ctx.days}).to_pylist():
        by_day.setdefault(str(r["dt"]), []).append(r)
    top = int(ctx.params.get("digest_top", 20))
    rows = [r for d in ctx.dates for r in digest(ctx.lake, d, top=top, rows=by_day.get(d.isoformat(), []))]
    table = pa.Table.from_pylist(rows, schema=ds.arrow_schema())
    if _same_rows(ctx, DIGEST, table, {"dt": ctx.days}, "event_id"):
        return
    ctx.write(DIGEST, table, replace=[{"dt": d} for d in ctx.days])

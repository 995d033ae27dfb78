"""``msp events``: the declared rules, an event's trace, dead letters and their redrive, the daily digest."""

from __future__ import annotations

import json
from datetime import date

from rich.table import Table


def _console():
    from lakehouse.cli import console

    return console


def _lake(settings):
    from lakehouse.lake import Lake

    return Lake.from_settings(settings)


def cmd_rules(args, settings) -> int:
    from lakehouse.agents import registry

    reg = registry()
    if args.json:
        print(json.dumps([{"event": r.event, "agent": r.agent, "handler": r.handler, "severity": list(r.severity),
                           "when": {k: list(v) for k, v in r.when.items()}, "event_pattern": r.event_pattern(),
                           "description": r.description} for r in reg.rules], indent=1, default=str))
        return 0
    t = Table(title="Event rules (event pattern -> handler)")
    for col in ("event type", "emitted by", "to", "handler", "conditions", "what"):
        t.add_column(col)
    for r in reg.rules:
        t.add_row(r.event, reg.events[r.event].agent, r.agent, r.handler, r.describe() or "-", r.description)
    for ptype, agent in sorted(reg.proposals.items()):
        voters = ", ".join(f"{a.name}:{v.veto}" for a, v in reg.votes())
        t.add_row(ptype, agent, "consensus", "consensus.decide", "proposal", f"votes: {voters}")
    _console().print(t)
    return 0


def cmd_trace(args, settings) -> int:
    from lakehouse.events import trace, trace_lines

    try:
        tree = trace(_lake(settings), args.event_id)
    except KeyError as exc:
        _console().print(f"[red]error:[/] {exc.args[0]}")
        return 2
    if args.json:
        print(json.dumps(tree, indent=1, default=str))
    else:
        print("\n".join(trace_lines(tree)))
    return 0


def cmd_dead(args, settings) -> int:
    from lakehouse.events import dead_letters

    rows = dead_letters(_lake(settings), None if args.all else "dead")
    t = Table(title="Dead letters" + ("" if args.all else " (waiting for a redrive)"))
    for col in ("day", "event", "type", "handler", "attempts", "status", "error"):
        t.add_column(col)
    for r in rows:
        t.add_row(str(r["dt"]), r["event_id"], r["event_type"], r["handler"], str(r["attempts"]), r["status"],
                  r["error"][:80])
    _console().print(t)
    return 0


def redrive(settings, handler: str | None = None, event_id: str | None = None):
    """Rerun the handler of each dead letter over the days of its events; returns the run summaries."""
    from lakehouse.events import dead_letters
    from lakehouse.runner import run_pipeline

    rows = [r for r in dead_letters(_lake(settings)) if (handler is None or r["handler"] == handler)
            and (event_id is None or r["event_id"] == event_id)]
    by_handler: dict[str, set[date]] = {}
    for r in rows:
        by_handler.setdefault(r["handler"], set()).add(date.fromisoformat(str(r["dt"])))
    return {h: run_pipeline(settings, sorted(days), stages=[h]) for h, days in sorted(by_handler.items())}


def cmd_redrive(args, settings) -> int:
    runs = redrive(settings, args.handler, args.event)
    if not runs:
        _console().print("no dead letters to redrive")
        return 0
    ok = True
    for h, summary in runs.items():
        status = {s.name: s.status for s in summary.stages}.get(h)
        _console().print(f"{h}: {status} (run {summary.run_id})")
        ok &= summary.ok
    return 0 if ok else 1


def cmd_digest(args, settings) -> int:
    from lakehouse.events import digest

    items = digest(_lake(settings), args.date, top=args.top)
    if args.json:
        print(json.dumps(items, indent=1, default=str))
        return 0
    t = Table(title=f"Digest of {args.date.isoformat()}: top {len(items)} item(s) across agents")
    for col in ("#", "agent", "type", "subject", "sev", "state", "evidence", "USD", "score"):
        t.add_column(col)
    for i in items:
        t.add_row(str(i["rank"]), i["agent"], i["event_type"], i["subject"], i["severity"], i["episode_state"] or "-",
                  f"{i['metric']} = {i['value']} vs {i['threshold']}",
                  "" if i["impact_usd"] is None else f"{i['impact_usd']:,.0f}", f"{i['score']:.2f}")
    _console().print(t)
    return 0


def cmd_volume(args, settings) -> int:
    """Events and episodes per agent and month (alert hygiene)."""
    import schemas
    from lakehouse.agents import registry

    reg = registry()
    counts: dict[tuple[str, str], list] = {}
    for r in _lake(settings).read_arrow(schemas.get("events.outbox")).to_pylist():
        env = json.loads(r["envelope"])
        agent = reg.events[r["event_type"]].agent if r["event_type"] in reg.events else env["source"].split(".")[0]
        c = counts.setdefault((agent, str(r["dt"])[:7]), [0, set()])
        c[0] += 1
        c[1].add((env.get("episode") or {}).get("id") or env["id"])
    t = Table(title="Events per agent and month")
    for col in ("agent", "month", "events", "episodes"):
        t.add_column(col)
    for (agent, month), (n, eps) in sorted(counts.items()):
        t.add_row(agent, month, str(n), str(len(eps)))
    _console().print(t)
    return 0


def register(sub) -> None:
    from lakehouse.cli import _date

    p = sub.add_parser("events", help="event rules, traces, dead letters, redrive, the daily digest")
    s = p.add_subparsers(dest="events_command", required=True)
    r = s.add_parser("rules", help="the declared event rules (pattern -> handler) and consensus proposals")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_rules)
    t = s.add_parser("trace", help="an event, who received it, what each handler produced, what it caused")
    t.add_argument("event_id")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_trace)
    d = s.add_parser("dead", help="dead letters (handler failures waiting for a redrive)")
    d.add_argument("--all", action="store_true", help="resolved ones too")
    d.set_defaults(func=cmd_dead)
    rd = s.add_parser("redrive", help="rerun the handlers of dead letters over their days")
    rd.add_argument("--handler")
    rd.add_argument("--event")
    rd.set_defaults(func=cmd_redrive)
    g = s.add_parser("digest", help="the day's top items across agents, ranked by impact")
    g.add_argument("--date", type=_date, required=True)
    g.add_argument("--top", type=int, default=20)
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=cmd_digest)
    v = s.add_parser("volume", help="events and episodes per agent and month")
    v.set_defaults(func=cmd_volume)

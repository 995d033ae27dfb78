"""``msp demo``: a sample MSP end to end on this machine, with nothing to configure."""

from __future__ import annotations

from rich.console import Console

from lakehouse.agents import Question
from lakehouse.config import Settings
from lakehouse.ingest import Landing

#: The platform's own question; each agent's come from its declaration (``Agent.questions``).
PLATFORM_QUESTIONS: tuple[Question, ...] = (
    Question("Why the quality gate quarantined ticket rows",
             "SELECT _rules_broken AS rules, count(*) AS rows FROM quarantine.tickets GROUP BY _rules_broken "
             "ORDER BY rows DESC LIMIT 6"),
)


def questions() -> list[tuple[str, Question]]:
    """(who asks, question): every agent's declared questions, then the platform's."""
    from lakehouse.agents import registry

    return [(a.title, q) for a, q in registry().questions()] + [("Platform", q) for q in PLATFORM_QUESTIONS]


def landing_dates(settings: Settings):
    """First and last export day present in the landing area (None when it is empty)."""
    import schemas

    landing = Landing(settings.landing_root)
    days = sorted({f.dt for ds in schemas.datasets("raw") for f in landing.files(ds)})
    return (days[0], days[-1]) if days else None


def run_demo(settings: Settings, scale: str, seed: int, console: Console) -> int:
    from datetime import date

    from lakehouse.cli import execute, print_frame
    from lakehouse.context import date_range
    from lakehouse.environment import sql_catalog

    span = landing_dates(settings)
    if span is None:
        from lakehouse.synth.cli import generate_with_progress

        console.rule(f"Generating a sample MSP (scale {scale}, seed {seed})")
        generate_with_progress(settings, scale=scale, seed=seed)
        span = landing_dates(settings)
    else:
        console.print(f"Landing area already holds exports {span[0]} → {span[1]}; reusing them.")
    days = date_range(date.fromisoformat(span[0]), date.fromisoformat(span[1]))
    console.rule(f"Running every daily stage over {span[0]} → {span[1]}")
    summary = execute(settings, days)
    console.rule("Training the models (weekly in production), then scoring the last day with them")
    trained = execute(settings, days, kinds=["train"])
    scored = execute(settings, days[-1:])
    console.rule("Where the results are")
    console.print(f"  lake          {settings.lake_root}   (Iceberg tables; `msp lake tables`)")
    console.print(f"  SQL catalog   {settings.duckdb_path}   (msp sql \"SELECT ...\")")
    console.print(f"  run report    {settings.lake_root}/_meta/runs/{summary.run_id}.json")
    console.print(f"  planted truth {settings.truth_root}   (for evaluation only; agents never read it)")
    catalog = sql_catalog(settings)
    for who, q in questions():
        console.rule(f"{who}: {q.title}")
        console.print(f"[dim]msp sql \"{q.sql}\"[/]")
        try:
            print_frame(catalog.query(q.sql), "table")
        except Exception as exc:
            console.print(f"[red]query failed:[/] {exc}")
    show_digest_and_chain(settings, date.fromisoformat(span[1]), console)
    show_dashboard(settings, console)
    return 0 if summary.ok and trained.ok and scored.ok else 1


def show_dashboard(settings: Settings, console: Console) -> None:
    """Build the monitoring dashboard from the lake the demo just filled, and print its path."""
    from lakehouse.dashboard import build
    from lakehouse.dashboard.cli import report

    console.rule("Monitoring dashboard")
    try:
        report(build(settings), console)
    except Exception as exc:  # the demo's results stand without it
        console.print(f"[red]dashboard not built:[/] {type(exc).__name__}: {exc}")
        return
    console.print("  open it in a browser from the file, or serve it: msp dashboard --serve")


def longest_chain_root(lake) -> str | None:
    """The first event of the longest chain in the outbox (events linked by ``caused_by``): where an owner
    following what one finding set off has the most to read. None when no event caused another."""
    import json

    import schemas

    parents: dict[str, list[str]] = {}
    for r in lake.read_arrow(schemas.get("events.outbox"), columns=["event_id", "envelope"]).to_pylist():
        parents[r["event_id"]] = list(json.loads(r["envelope"]).get("caused_by") or [])

    def depth(eid: str, seen: frozenset = frozenset()) -> tuple[int, str]:
        ups = [p for p in parents.get(eid, []) if p in parents and p not in seen]
        if not ups:
            return 0, eid
        d, root = max(depth(p, seen | {eid}) for p in sorted(ups))
        return d + 1, root

    best = max((depth(e) for e in sorted(parents) if parents[e]), default=None)
    return best[1] if best else None


def show_digest_and_chain(settings: Settings, day, console: Console) -> None:
    """The owner's view of the events: the last day's digest across agents, and the longest chain of events
    traced from its first finding (``msp events digest`` and ``msp events trace``)."""
    import argparse
    from datetime import timedelta

    from lakehouse.events import digest, trace, trace_lines
    from lakehouse.eventscli import cmd_digest
    from lakehouse.lake import Lake

    lake = Lake.from_settings(settings)
    for back in range(31):  # the last day with something open to act on (a quiet day has an empty digest)
        if digest(lake, day - timedelta(days=back), top=1):
            day -= timedelta(days=back)
            break
    console.rule(f"Events: the digest of {day.isoformat()}")
    console.print(f"[dim]msp events digest --date {day.isoformat()}[/]")
    cmd_digest(argparse.Namespace(date=day, top=8, json=False), settings)
    root = longest_chain_root(lake)
    console.rule("Events: one chain, end to end")
    if root is None:
        console.print("no event caused another in this lake yet")
        return
    console.print(f"[dim]msp events trace {root}[/]")
    for line in trace_lines(trace(lake, root)):
        console.print(line, markup=False, highlight=False)

"""``msp``: the command line of the lakehouse.

Core commands live here; platform parts add theirs through a ``register(subparsers)`` function in the
modules of ``COMMAND_MODULES``, and every agent adds its ``msp <agent> ...`` commands through the ``cli`` of
its declaration (:mod:`lakehouse.agents`). A mistake of the user (a bad date, an unknown stage, a setting
out of range, SQL that does not parse) prints one line and exits with 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from lakehouse.config import ConfigError, Settings, load_settings

COMMAND_MODULES = ("lakehouse.synth.cli", "lakehouse.bench", "lakehouse.quality.cli", "lakehouse.lakecli",
                   "lakehouse.ml.cli", "lakehouse.dashboard.cli", "lakehouse.eventscli", "lakehouse.awscli")

# Full-width tables when output goes to a file or a CI log (rich would wrap at 80 columns).
console = Console(stderr=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


# ---- helpers -----------------------------------------------------------------------------------
def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def run_dates(args: argparse.Namespace) -> list[date]:
    from lakehouse.context import date_range

    if args.date and (args.date_from or args.date_to):
        raise UsageError("use either --date or --from/--to, not both")
    if args.date:
        return [args.date]
    if args.date_from or args.date_to:
        if not (args.date_from and args.date_to):
            raise UsageError("--from and --to go together")
        if args.date_to < args.date_from:
            raise UsageError(f"--to {args.date_to} is before --from {args.date_from}")
        return date_range(args.date_from, args.date_to)
    return [datetime.now(UTC).date() - timedelta(days=1)]


class UsageError(ValueError):
    """The command line asks for something impossible; the message says what to do instead."""


class RichObserver:
    """Progress bars for a run: one for the stages, one for the current stage's own work. When the output is
    not a terminal (CI, Airflow, a log file) bars are not drawn, so a line is printed when a stage starts and,
    at most every ``quiet_every`` seconds, where its work is."""

    def __init__(self, total: int | None = None, quiet_every: float = 30.0):
        self.plain = not console.is_terminal
        self.quiet_every = quiet_every
        self._last_line = 0.0
        self.bar = Progress(TextColumn("{task.description:<40}"), BarColumn(), TaskProgressColumn(),
                            TimeElapsedColumn(), console=console, transient=False,
                            # not redrawn 10 times a second: that thread cost ~1.3 s of CPU in a 45 s run
                            refresh_per_second=4, auto_refresh=not self.plain)
        self.stages = None
        self.detail = None

    def __enter__(self):
        self.bar.__enter__()
        self.stages = self.bar.add_task("stages", total=None)
        self.detail = self.bar.add_task("", total=None, visible=False)
        return self

    def __exit__(self, *exc):
        self.bar.__exit__(*exc)

    def stage_started(self, stage, index, total):
        self.bar.update(self.stages, description=f"stage {stage.name}", completed=index, total=total)
        self.bar.update(self.detail, visible=False)
        if self.plain:
            console.print(f"  [{index + 1}/{total}] {stage.name} ...")
            self._last_line = time.monotonic()

    def stage_finished(self, report):
        self.bar.advance(self.stages)
        mark = {"ok": "[green]ok[/]", "unchanged": "[dim]unchanged[/]", "failed": "[red]FAILED[/]",
                "skipped": "[yellow]skipped[/]"}[report.status]
        console.print(f"  {report.name:<32} {mark} {report.seconds:>7.1f}s" +
                      (f"  {report.error}" if report.error else ""))

    def progress(self, description, completed, total):
        self.bar.update(self.detail, description=f"  {description}", completed=completed, total=total, visible=True)
        if self.plain and time.monotonic() - self._last_line >= self.quiet_every:
            console.print(f"      {description} ({completed}/{total})")
            self._last_line = time.monotonic()


def print_summary(summary) -> None:
    table = Table(title=f"Run {summary.run_id}: {summary.start} → {summary.end}", title_justify="left")
    for col in ("dataset", "rows in", "rows out", "quarantined", "duplicates", "partitions", "notes"):
        table.add_column(col, justify="right" if col not in ("dataset", "notes") else "left",
                         no_wrap=col == "dataset")
    for name, c in summary.counts.items():
        table.add_row(name, f"{c['rows_in']:,}", f"{c['rows_out']:,}", f"{c['quarantined']:,}",
                      f"{c['duplicates']:,}", str(c["partitions"]), "; ".join(c["notes"]))
    console.print(table)
    stages = Table(title="Stages", title_justify="left")
    for col in ("stage", "agent", "status", "seconds"):
        stages.add_column(col)
    for s in summary.stages:
        stages.add_row(s.name, s.agent, s.status + (f": {s.error}" if s.error else ""), f"{s.seconds:.1f}")
    stages.add_row("total", "", "ok" if summary.ok else "FAILED", f"{summary.seconds:.1f}")
    console.print(stages)
    if summary.warnings:
        shown = summary.warnings[:15]
        console.print(f"[yellow]{len(summary.warnings)} warning(s)[/]" +
                      (" (first 15; all in the run report)" if len(summary.warnings) > 15 else ""))
        for w in shown:
            console.print(f"  [yellow]![/] {w}")


def execute(settings: Settings, dates: list[date], agents=None, stages=None, kinds=None):
    from lakehouse.runner import run_pipeline

    with RichObserver() as observer:
        summary = run_pipeline(settings, dates, agents=agents, stages=stages, kinds=kinds, observer=observer,
                               exclusive=True)
    print_summary(summary)
    return summary


def print_frame(frame, fmt: str) -> None:
    if fmt == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    elif fmt == "json":
        sys.stdout.write(frame.to_json(orient="records", date_format="iso", indent=1) + "\n")
    else:
        table = Table(show_lines=False)
        for col in frame.columns:
            table.add_column(str(col))
        for row in frame.itertuples(index=False):
            table.add_row(*["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in row])
        console.print(table)
        console.print(f"[dim]{len(frame)} row(s)[/]")


# ---- commands -----------------------------------------------------------------------------------
def cmd_config(args, settings: Settings) -> int:
    if args.json:
        print(json.dumps({k: {"value": v, "source": s} for k, v, s in settings.rows()}, indent=1))
        return 0
    table = Table(title=f"Effective settings (profile {settings.profile})", title_justify="left")
    table.add_column("setting")
    table.add_column("value")
    table.add_column("from")
    for key, value, source in settings.rows():
        table.add_row(key, value, source)
    console.print(table)
    return 0


def cmd_run(args, settings: Settings) -> int:
    if args.force:
        settings = settings.with_overrides(skip_unchanged=False)
    summary = execute(settings, run_dates(args), agents=args.agents, stages=args.stages, kinds=args.kinds)
    return 0 if summary.ok else 1


def cmd_stages(args, settings: Settings) -> int:
    from lakehouse.agents import STAGE_KINDS, registry

    reg = registry()
    table = Table(title="Stages in run order (msp run runs the daily kinds; the others run when named or on "
                        "their own schedule)", title_justify="left")
    for col in ("stage", "agent", "kind", "reads", "writes", "what it does"):
        table.add_column(col)
    for s in reg.plan(agents=args.agents, kinds=STAGE_KINDS):
        table.add_row(s.name, s.agent, s.kind, "\n".join(s.reads), "\n".join(s.writes), s.description)
    console.print(table)
    return 0


def cmd_agents(args, settings: Settings) -> int:
    from lakehouse.agents import registry

    reg = registry()
    if args.json:
        print(json.dumps([{"name": a.name, "title": a.title, "summary": a.summary,
                           "stages": {s.name: s.kind for s in a.stages}, "emits": list(a.emits),
                           "consumes": dict(a.consumes), "settings": sorted(settings.values.get(a.name, {})),
                           "docs": a.docs} for a in reg.agents.values()], indent=1))
        return 0
    table = Table(title="Agents", title_justify="left")
    for col in ("agent", "title", "stages", "emits", "consumes", "settings", "docs"):
        table.add_column(col)
    for a in reg.agents.values():
        keys = len(settings.values.get(a.name, {}))
        table.add_row(a.name, a.title, "\n".join(f"{s.name} ({s.kind})" for s in a.stages), "\n".join(a.emits),
                      "\n".join(f"{t} -> {h}" for t, h in a.consumes.items()), f"[{a.name}] {keys} keys",
                      a.docs or "")
    console.print(table)
    return 0


def cmd_sql(args, settings: Settings) -> int:
    from lakehouse.environment import sql_catalog

    query = args.query if args.query != "-" else sys.stdin.read()
    try:
        frame = sql_catalog(settings).query(query, as_of=args.as_of)
    except Exception as exc:  # the analyst's SQL, not our bug: the message, no traceback
        import duckdb

        if isinstance(exc, duckdb.Error):
            err.print(f"[red]SQL error:[/] {exc}", markup=True, highlight=False)
            return 2
        raise
    print_frame(frame, args.format)
    return 0


def cmd_demo(args, settings: Settings) -> int:
    from lakehouse.demo import run_demo

    return run_demo(settings, scale=args.scale, seed=args.seed, console=console)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msp", description="The MSP lakehouse: ingest, validate, analyse.")
    parser.add_argument("--config", help="TOML config file (default: $MSP_CONFIG or ./msp.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("config", help="print the effective settings and where each came from")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("run", help="run the pipeline for a day or a date range")
    p.add_argument("--date", type=_date, help="export day to process (default: yesterday, UTC)")
    p.add_argument("--from", dest="date_from", type=_date)
    p.add_argument("--to", dest="date_to", type=_date)
    p.add_argument("--agents", nargs="+", metavar="AGENT", help="only these agents' stages (platform always runs)")
    p.add_argument("--stages", nargs="+", metavar="STAGE", help="only these stages (of any kind)")
    p.add_argument("--kinds", nargs="+", metavar="KIND",
                   help="only stages of these kinds (default: the daily ones; e.g. --kinds train)")
    p.add_argument("--force", action="store_true",
                   help="run every stage even when its inputs, settings and code are unchanged")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("stages", help="list every declared stage in run order, with its kind")
    p.add_argument("--agents", nargs="+", metavar="AGENT")
    p.set_defaults(func=cmd_stages)

    p = sub.add_parser("agents", help="list the declared agents: stages, events emitted and consumed, settings")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_agents)

    p = sub.add_parser("sql", help="query the lake's catalog (DuckDB locally, Athena on AWS)")
    p.add_argument("query", help="SQL text, or - to read it from stdin")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--as-of", metavar="RUN_ID|TIMESTAMP",
                   help="read the tables as they were after that run (or at that ISO time)")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("demo", help="generate a sample MSP if the lake is empty, run everything, show results")
    p.add_argument("--scale", default="tiny", choices=("tiny", "small", "reference"),
                   help="tiny (default: 12 clients, 4 months, a few minutes), small (150 clients, 2 years) or "
                        "reference (1,000 clients, 3 years)")
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=cmd_demo)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    from lakehouse.agents import registry

    for agent in registry().agents.values():
        try:
            agent.register_cli(sub)
        except Exception as exc:  # one agent's broken CLI must not take the other commands down
            broken = sub.add_parser(agent.name, help=f"{agent.title} (its commands failed to load)")
            broken.set_defaults(func=_broken_cli(agent.name, agent.cli, exc))
    return parser


def _broken_cli(name: str, ref: str | None, exc: Exception):
    def fail(args, settings) -> int:
        err.print(f"[red]error:[/] agent {name}'s commands ({ref}) failed to load: {type(exc).__name__}: {exc}",
                  highlight=False)
        return 2

    return fail


def main(argv: list[str] | None = None) -> int:
    """Run one ``msp`` command; returns its exit code. Called for the process's own command line (``argv``
    None: the ``msp`` script, ``python -m lakehouse.cli``), a command that returns ends the process at once,
    with its output flushed: see :func:`_exit_now`."""
    code = _main(argv)
    if argv is None:
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End the process without the interpreter's teardown. With Great Expectations, scikit-learn and
    pyiceberg loaded, freeing every module's objects one by one takes 2 s after the command is done (measured:
    1.7 s of it GX's), and every ``msp`` process would pay it. Everything the command wrote is committed or
    closed when it returns; output and log handlers are flushed here. A command that raises leaves as usual,
    traceback and all."""
    with contextlib.suppress(Exception):
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _main(argv: list[str] | None) -> int:
    from lakehouse.agents import DeclarationError
    from lakehouse.lake import LakeError
    from lakehouse.runlock import LakeBusy

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.INFO if args.verbose or args.debug else logging.WARNING,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
        settings = load_settings(args.config)
        return int(args.func(args, settings) or 0)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted: what was committed stays, nothing half-written is visible[/]")
        return 130
    except (ConfigError, UsageError, DeclarationError, LakeError, LakeBusy, FileNotFoundError, PermissionError,
            LookupError, ValueError) as exc:  # ReadOnlySql is a PermissionError
        if debug:
            raise
        label = {ConfigError: "configuration error", DeclarationError: "declaration error"}.get(type(exc), "error")
        err.print(f"[red]{label}:[/] {exc}", highlight=False)
        return 2
    except OSError as exc:  # a full disk, a read-only home: say which file, and that committed data is safe
        if debug:
            raise
        err.print(f"[red]error:[/] {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "") +
                  " (what was committed before stays; nothing half-written is visible)", highlight=False)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``msp``: the command line of the lakehouse.

Core commands live here; agents and platform parts add theirs through a ``register(subparsers)``
function in the modules of ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
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

COMMAND_MODULES = ("lakehouse.synth.cli", "lakehouse.bench", "lakehouse.quality.cli", "jobs.cpi.cli")

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
        raise SystemExit("use either --date or --from/--to, not both")
    if args.date:
        return [args.date]
    if args.date_from or args.date_to:
        if not (args.date_from and args.date_to):
            raise SystemExit("--from and --to go together")
        return date_range(args.date_from, args.date_to)
    return [datetime.now(UTC).date() - timedelta(days=1)]


class RichObserver:
    """Progress bars for a run: one for the stages, one for the current stage's own work. When the output is
    not a terminal (CI, Airflow, a log file) bars are not drawn, so a line is printed when a stage starts and,
    at most every ``quiet_every`` seconds, where its work is."""

    def __init__(self, total: int | None = None, quiet_every: float = 30.0):
        self.plain = not console.is_terminal
        self.quiet_every = quiet_every
        self._last_line = 0.0
        self.bar = Progress(TextColumn("{task.description:<40}"), BarColumn(), TaskProgressColumn(),
                            TimeElapsedColumn(), console=console, transient=False)
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
        mark = {"ok": "[green]ok[/]", "failed": "[red]FAILED[/]", "skipped": "[yellow]skipped[/]"}[report.status]
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


def execute(settings: Settings, dates: list[date], agents=None, stages=None):
    from lakehouse.runner import run_pipeline

    with RichObserver() as observer:
        summary = run_pipeline(settings, dates, agents=agents, stages=stages, observer=observer)
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
    summary = execute(settings, run_dates(args), agents=args.agents, stages=args.stages)
    return 0 if summary.ok else 1


def cmd_stages(args, settings: Settings) -> int:
    from lakehouse.stages import plan

    table = Table(title="Stages in run order", title_justify="left")
    for col in ("stage", "agent", "reads", "writes", "what it does"):
        table.add_column(col)
    for s in plan(agents=args.agents):
        table.add_row(s.name, s.agent, "\n".join(s.reads), "\n".join(s.writes), s.description)
    console.print(table)
    return 0


def cmd_sql(args, settings: Settings) -> int:
    query = args.query if args.query != "-" else sys.stdin.read()
    if settings.catalog_kind == "duckdb":
        import duckdb

        from lakehouse.catalog import query_duckdb

        try:
            frame = query_duckdb(settings, query)
        except duckdb.Error as exc:  # the analyst's SQL, not our bug: the message, no traceback
            err.print(f"[red]SQL error:[/] {exc}", markup=True, highlight=False)
            return 2
    else:
        import awswrangler as wr

        frame = wr.athena.read_sql_query(query, database=f"{settings.glue_database_prefix}_analytics")
    print_frame(frame, args.format)
    return 0


def cmd_demo(args, settings: Settings) -> int:
    from lakehouse.demo import run_demo

    return run_demo(settings, scale=args.scale, seed=args.seed, console=console)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msp", description="The MSP lakehouse: ingest, validate, analyse.")
    parser.add_argument("--config", help="TOML config file (default: $MSP_CONFIG or ./msp.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("config", help="print the effective settings and where each came from")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("run", help="run the pipeline for a day or a date range")
    p.add_argument("--date", type=_date, help="export day to process (default: yesterday, UTC)")
    p.add_argument("--from", dest="date_from", type=_date)
    p.add_argument("--to", dest="date_to", type=_date)
    p.add_argument("--agents", nargs="+", metavar="AGENT", help="only these agents' stages (platform always runs)")
    p.add_argument("--stages", nargs="+", metavar="STAGE", help="only these stages")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("stages", help="list the registered stages in run order")
    p.add_argument("--agents", nargs="+", metavar="AGENT")
    p.set_defaults(func=cmd_stages)

    p = sub.add_parser("sql", help="query the lake's catalog (DuckDB locally, Athena on AWS)")
    p.add_argument("query", help="SQL text, or - to read it from stdin")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("demo", help="generate a sample MSP if the lake is empty, run everything, show results")
    p.add_argument("--scale", default="small", choices=("tiny", "small", "reference"))
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=cmd_demo)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    try:
        settings = load_settings(args.config)
        return int(args.func(args, settings) or 0)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/] {exc}")
        return 2
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/] {exc}")
        return 2
    except KeyboardInterrupt:
        err.print("[yellow]interrupted: published data is unchanged[/]")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``msp generate``: write a synthetic MSP's exports into the landing area and its truth beside it."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from lakehouse.config import Settings
from lakehouse.synth.engine import GenerateReport, generate
from lakehouse.synth.scales import SCALES, HorizonError

console = Console()


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def register(subparsers) -> None:
    """Add the ``generate`` sub-command to the ``msp`` command line."""
    horizons = "; ".join(f"{s.name}: {s.start}..{s.horizon_end} (default {s.days} days)" for s in SCALES.values())
    p = subparsers.add_parser(
        "generate", help="generate a synthetic MSP's exports (landing area) and the truth it planted",
        description="Write the exports of an invented MSP for a window of export days. The same scale and seed "
                    "always give the same bytes for a given export day, so later windows append new days. "
                    f"Export days each scale can generate: {horizons}.")
    p.add_argument("--scale", choices=tuple(SCALES), default="small", help="size of the MSP (default: small)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    p.add_argument("--start", type=_date, help="first export day to write (default: the scale's first day)")
    p.add_argument("--days", type=int, help="number of export days to write (default: to the end of the scale's "
                                          "default window, or only --start when it is later)")
    p.add_argument("--out", help="landing folder (default: platform.landing_root)")
    p.add_argument("--truth", help="truth folder (default: platform.truth_root)")
    p.add_argument("--dirty-rate", type=float, help="share of extra dirty rows (default: synth.dirty_rate)")
    p.add_argument("--count-only", action="store_true", help="simulate and count rows, write nothing")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace, settings: Settings) -> int:
    try:
        report = generate_with_progress(settings, scale=args.scale, seed=args.seed, start=args.start,
                                        days=args.days, out=args.out, truth=args.truth,
                                        dirty_rate=args.dirty_rate, count_only=args.count_only)
    except (HorizonError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    print_report(report)
    return 0


def generate_with_progress(settings: Settings, scale: str, seed: int, start: date | None = None,
                           days: int | None = None, out: str | None = None, truth: str | None = None,
                           dirty_rate: float | None = None, count_only: bool = False) -> GenerateReport:
    """Run ``generate`` with a progress bar, defaulting folders and dirt to the settings."""
    landing = out or settings.landing_root
    truth_root = truth or settings.truth_root
    for what, where in (("landing", landing), ("truth", truth_root)):
        if str(where).startswith("s3://"):
            raise ValueError(f"the generator writes to a local folder; the {what} root is {where}: pass --out/--truth "
                             "and upload the folder (aws s3 sync) afterwards")
    rate = settings.get("synth.dirty_rate") if dirty_rate is None else dirty_rate
    with Progress(TextColumn("{task.description:<32}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return generate(scale, seed, Path(landing), Path(truth_root), start=start, days=days, dirty_rate=rate,
                        progress=progress, count_only=count_only)


def print_report(report: GenerateReport) -> None:
    table = Table(title=f"Synthetic MSP {report.scale} (seed {report.seed}): export days {report.first_day} → "
                        f"{report.last_day}", title_justify="left")
    table.add_column("dataset")
    table.add_column("rows", justify="right")
    for name, rows in report.rows.items():
        table.add_row(name, f"{rows:,}")
    table.add_row("total", f"{report.total_rows:,}", style="bold")
    console.print(table)
    console.print(f"{report.files:,} files, {report.dirty_rows:,} dirty rows planted, {report.seconds:.1f}s; "
                  f"landing {report.landing_root}, truth {report.truth_root}")

"""``generate``: plan the world, simulate it month by month, write the export days of the window."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import schemas
from lakehouse.synth import truth as truth_mod
from lakehouse.synth.scales import get_scale
from lakehouse.synth.world import build_world
from lakehouse.synth.writer import Output, Sink

#: raw datasets the generator writes (documents are written separately), in report order
DATASETS = (
    "clients", "contacts", "sites", "agreements", "agreement_additions", "invoices", "invoice_lines", "payments",
    "tickets", "time_entries", "managed_endpoints", "technicians", "technician_cost_rates", "technician_pto",
    "projects", "leads", "opportunities", "activities", "software_inventory", "agent_removals", "entitlements",
    "subscribed_skus", "active_user_detail", "expenses", "budgets", "focus_costs", "vendors",
)
DOCUMENTS = "contract_documents"


@dataclass
class GenerateReport:
    """What a run wrote: data rows per dataset (dirty rows included), files, and time taken."""

    scale: str
    seed: int
    first_day: date
    last_day: date
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    dirty_rows: int = 0
    seconds: float = 0.0
    landing_root: str = ""
    truth_root: str = ""

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def generate(scale: str, seed: int, landing_root: Path, truth_root: Path, start: date | None = None,
             days: int | None = None, dirty_rate: float = 0.01,
             progress: Callable[[str, int, int], None] | None = None, count_only: bool = False) -> GenerateReport:
    """Generate a synthetic MSP's exports for the export days of a window, and the truth it planted.

    ``scale``: tiny | small | reference. ``start``/``days`` select the export days written (default: the
    scale's default window); any export day is byte-identical whatever window it is written in. The
    truth under ``truth_root`` covers every export day from the scale's start to the window's end.
    ``count_only`` simulates and counts rows without writing anything (used to document row counts).
    """
    t0 = time.perf_counter()
    sc = get_scale(scale)
    first, last = sc.window(start, days)
    if not 0 <= dirty_rate < 1:
        raise ValueError(f"dirty_rate must be in [0, 1), got {dirty_rate}")
    landing_root, truth_root = Path(landing_root), Path(truth_root)
    if not count_only:
        _check_roots(landing_root, truth_root)
    say = progress or (lambda *_: None)
    say("planning the world", 0, 1)
    w = build_world(sc, seed)
    tl = w.tl
    out = Output(landing_root, tl, tl.day_of(first), tl.day_of(last), seed, dirty_rate, write=not count_only)
    sinks = {name: Sink(schemas.get(f"raw.{name}"), out, "focus" if name == "focus_costs" else None)
             for name in DATASETS}
    book = truth_mod.Book(w, out)
    from lakehouse.synth import schedule

    for emit in schedule.ENTITY_EMITTERS:
        emit(w, sinks)
    last_month = int(tl.month_of(out.last_day))
    say("planning the world", 1, 1)
    for m in range(last_month + 1):
        for simulate in schedule.MONTHLY:
            simulate(w, m, sinks, book)
        before = int(tl.first_day(m + 1))
        for sink in sinks.values():
            sink.flush(before)
        say("simulating months", m + 1, last_month + 1)
    for sink in sinks.values():
        sink.flush(out.last_day + 1)
    schedule.write_documents(w, out, book, say)
    if not count_only:
        say("writing the truth", 0, 1)
        book.write(truth_root)
        say("writing the truth", 1, 1)
    rows = {name: out.rows.get(name, 0) for name in (*DATASETS, DOCUMENTS)}
    return GenerateReport(scale, seed, first, last, rows, out.files, len(out.dirty_rows),
                          round(time.perf_counter() - t0, 2), str(landing_root), str(truth_root))


def _check_roots(landing: Path, truth: Path) -> None:
    lr, tr = landing.resolve(), truth.resolve()
    if tr == lr or lr in tr.parents:
        raise ValueError(f"the truth root {truth} must be outside the landing area {landing}: agents read the "
                         "landing area and must never see the planted truth")

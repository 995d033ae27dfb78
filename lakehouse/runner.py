"""Run registered stages in dependency order in one process, on one Spark session.

A stage that fails is reported with its error; the stages that depend on it are skipped, the others
still run, and whatever was published before stays published. The run summary (rows in, out,
quarantined and de-duplicated per dataset; seconds per stage; warnings) is returned, written to the
lake under ``_meta/runs/<run id>.json`` and printed by the CLI.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from lakehouse import catalog
from lakehouse.config import Settings
from lakehouse.context import RunContext
from lakehouse.stages import Stage, plan

log = logging.getLogger(__name__)


@dataclass
class StageReport:
    name: str
    agent: str
    status: str = "pending"  # ok | failed | skipped
    seconds: float = 0.0
    error: str | None = None


@dataclass
class RunSummary:
    run_id: str
    start: str
    end: str
    stages: list[StageReport] = field(default_factory=list)
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(s.status == "ok" for s in self.stages)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ok": self.ok}, indent=1, default=str)


class StageObserver:
    """Hooks the CLI (progress bars) or Airflow (log lines) attach to a run."""

    def stage_started(self, stage: Stage, index: int, total: int) -> None: ...

    def stage_finished(self, report: StageReport) -> None: ...

    def progress(self, description: str, completed: int, total: int) -> None: ...


def run_pipeline(settings: Settings, dates: list[date], *, agents: Iterable[str] | None = None,
                 stages: Iterable[str] | None = None, observer: StageObserver | None = None,
                 run_id: str | None = None, context_factory: Callable[..., RunContext] = RunContext.create,
                 refresh_catalog: bool = True, params: dict[str, Any] | None = None) -> RunSummary:
    observer = observer or StageObserver()
    ordered = plan(agents=list(agents) if agents else None, names=list(stages) if stages else None)
    ctx = context_factory(settings, dates, run_id=run_id, progress=observer.progress, params=dict(params or {}))
    summary = RunSummary(ctx.run_id, dates[0].isoformat(), dates[-1].isoformat())
    t_run = time.perf_counter()
    failed: list[Stage] = []
    for i, st in enumerate(ordered):
        report = StageReport(st.name, st.agent)
        summary.stages.append(report)
        blocker = next((f.name for f in failed if _depends(st, f, ordered)), None)
        if blocker:
            report.status, report.error = "skipped", f"depends on failed stage {blocker}"
            failed.append(st)
            observer.stage_finished(report)
            continue
        observer.stage_started(st, i, len(ordered))
        ctx.current_stage = st.name
        t0 = time.perf_counter()
        try:
            st.func(ctx)
            report.status = "ok"
        except Exception as exc:
            report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("stage %s failed:\n%s", st.name, traceback.format_exc())
            failed.append(st)
        report.seconds = round(time.perf_counter() - t0, 3)
        observer.stage_finished(report)
    ctx.current_stage = ""
    if refresh_catalog:
        catalog.refresh(settings, ctx.lake)
    summary.seconds = round(time.perf_counter() - t_run, 3)
    summary.counts = {k: asdict(v) for k, v in sorted(ctx.counts.items())}
    summary.warnings = list(ctx.warnings)
    ctx.lake.write_text(f"_meta/runs/{ctx.run_id}.json", summary.to_json())
    return summary


def _depends(stage: Stage, failed: Stage, ordered: list[Stage]) -> bool:
    """Whether ``stage`` depends on ``failed`` directly or through other stages of the plan."""
    seen: set[str] = set()
    frontier = [stage]
    while frontier:
        s = frontier.pop()
        for other in ordered:
            if other.name in seen or other.name == s.name:
                continue
            if s.depends_on(other):
                if other.name == failed.name:
                    return True
                seen.add(other.name)
                frontier.append(other)
    return False

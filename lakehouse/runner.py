"""Run declared stages in dependency order, in one process, on one engine.

A stage that fails is reported with its error; the stages that depend on it are skipped, the others still
run, and whatever was committed before stays committed. The run summary (rows in, out, quarantined and
de-duplicated per dataset; seconds per stage; warnings) is returned, written to the lake under
``_meta/runs/<run id>.json`` and printed by the CLI.

**Skipping what has nothing new.** Each stage leaves a small state file (``_meta/stages/<stage>.json``): for
the days it ran, a *signature* of everything its output was decided from (the snapshot of every table it
read, its settings section, the code of its package, the library versions, the promoted version of every model
it loaded from the registry) and the snapshots it committed.
A rerun whose signature matches, and whose outputs are still those snapshots, is ``unchanged``: nothing runs
(``platform.skip_unchanged = false`` forces it). When only inputs changed, the stage learns which partition
values changed since it last consumed them (:meth:`RunContext.changed`); when its settings or code changed,
it is told to rebuild (:attr:`RunContext.rebuild`), so a changed threshold recomputes what it affects.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import schemas
from lakehouse import faults
from lakehouse.agents import PLATFORM, Stage, registry
from lakehouse.config import Settings
from lakehouse.context import RunContext

log = logging.getLogger(__name__)
STATE_DIR = "_meta/stages"
RUNS_DIR = "_meta/runs"
#: Kinds the runner never skips: ingestion reads landing files (not tables), maintenance is housekeeping.
NEVER_SKIPPED = ("ingest", "maintenance")
#: Settings sections a platform stage's output depends on.
PLATFORM_SECTIONS = {"quality": ("quality",), "ingest": ("quality",)}
LIBRARIES = ("ibis-framework", "duckdb", "pyiceberg", "pyarrow", "pyspark", "scikit-learn", "pandas")
KEEP_RUNS = 60
#: Dispatch rounds after the first: handlers' events are dispatched (and handled) by the next round, until a
#: round delivers nothing new (the inbox is unchanged) or this many rounds ran.
EVENT_ROUNDS = 4


@dataclass
class StageReport:
    name: str
    agent: str
    status: str = "pending"  # ok | unchanged | failed | skipped
    seconds: float = 0.0
    error: str | None = None
    #: seconds from the run's start to the stage's start: with stages side by side, the run's timeline
    offset: float = 0.0
    #: a failed stage that published the rest of its outputs: the tables it did not publish (the stages after
    #: it that read none of them still run). None: what it published is not known, so everything after it is
    #: skipped.
    withheld: list[str] | None = None


@dataclass
class RunSummary:
    run_id: str
    start: str
    end: str
    stages: list[StageReport] = field(default_factory=list)
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    started_at: str = ""
    finished_at: str = ""

    @property
    def ok(self) -> bool:
        return all(s.status in ("ok", "unchanged") for s in self.stages)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ok": self.ok}, indent=1, default=str)


class StageObserver:
    """Hooks the CLI (progress bars) or Airflow (log lines) attach to a run."""

    def stage_started(self, stage: Stage, index: int, total: int) -> None: ...

    def stage_finished(self, report: StageReport) -> None: ...

    def progress(self, description: str, completed: int, total: int) -> None: ...


# ---- fingerprints -------------------------------------------------------------------------------------------
def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


@cache
def _files_digest(folders: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for folder in folders:
        root = Path(folder)
        if not root.exists():
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".py", ".toml", ".json",
                                                                                       ".yaml", ".j2", ".sql")):
            if "__pycache__" in path.parts:
                continue
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:20]


@cache
def _library_versions() -> tuple[tuple[str, str], ...]:
    out = []
    for name in LIBRARIES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, ""))
    return tuple(out)


def code_version(stage: Stage) -> str:
    """A fingerprint of the code and declarations a stage's output depends on: the platform package, the
    dataset declarations and suites, and the stage's agent package with its models."""
    import lakehouse

    project = Path(lakehouse.__file__).resolve().parents[1]
    folders = [str(Path(lakehouse.__file__).resolve().parent), str(schemas.DATASETS_DIR),
               str(project / "expectations")]
    if stage.agent != PLATFORM:
        agent = registry().agents[stage.agent]
        folders.append(str(agent.root))
        folders.append(str(project / "models" / stage.agent))
    return _hash(_files_digest(tuple(folders)), _library_versions())


def settings_version(settings: Settings, stage: Stage) -> str:
    sections = PLATFORM_SECTIONS.get(stage.name, ()) if stage.agent == PLATFORM else (stage.agent,)
    if stage.agent == PLATFORM and stage.kind == "dispatch":  # consensus reads the voting agents' settings
        sections = tuple(sorted({a.name for a, _v in registry().votes()}))
    values = {s: settings.values.get(s) for s in sections}
    return _hash(values, settings.platform.engine)


# ---- stage state ------------------------------------------------------------------------------------------------
def _state_path(stage: Stage) -> str:
    return f"{STATE_DIR}/{stage.name}.json"


def load_state(ctx: RunContext, stage: Stage) -> dict[str, Any]:
    text = ctx.lake.read_text(_state_path(stage))
    if not text:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        ctx.warn(f"stage state {ctx.lake.path(_state_path(stage))} is unreadable: the stage runs in full")
        return {}


def _dates_key(dates: list[date], params: dict[str, Any]) -> str:
    key = f"{dates[0].isoformat()}..{dates[-1].isoformat()}"
    return key + (f"|{json.dumps(params, sort_keys=True)}" if params else "")


def run_pipeline(settings: Settings, dates: list[date], *, agents: Iterable[str] | None = None,
                 stages: Iterable[str] | None = None, kinds: Iterable[str] | None = None,
                 observer: StageObserver | None = None, run_id: str | None = None,
                 context_factory: Callable[..., RunContext] = RunContext.create,
                 refresh_catalog: bool = True, params: dict[str, Any] | None = None,
                 exclusive: bool = False, workers: int | None = None) -> RunSummary:
    """Run the planned stages for ``dates``. ``exclusive`` (a whole-pipeline run from the command line) holds
    the lake's run lock alone; otherwise shared with other stage runs (see :mod:`lakehouse.runlock`).
    ``workers`` (default ``platform.workers``) is how many stages may run side by side
    (:mod:`lakehouse.workers`)."""
    from lakehouse.context import new_run_id
    from lakehouse.runlock import run_lock
    from lakehouse.workers import worker_count

    run_id = run_id or new_run_id()
    with run_lock(settings, run_id, exclusive=exclusive, notify=log.warning) as note:
        summary = _run(settings, dates, agents=agents, stages=stages, kinds=kinds, observer=observer, run_id=run_id,
                       context_factory=context_factory, refresh_catalog=refresh_catalog, params=params,
                       workers=worker_count(settings.get("platform.workers") if workers is None else workers))
    if note:
        summary.warnings.insert(0, note)
    return summary


def _deferred_data_docs(ctx: RunContext):
    """The run's audits render their Data Docs pages and the index once, when the run's stages are done, not
    after every write: the index is rebuilt in time linear in the kept results, and a daily run audits about
    40 writes."""
    cfg = ctx.settings.model("quality")
    if cfg.checkpoint == "on" and cfg.data_docs == "on" and ctx.lake.local:
        from lakehouse.quality.gx import project

        return project(ctx.lake, data_docs=True).deferred_docs()
    return contextlib.nullcontext()


def _run(settings: Settings, dates: list[date], *, agents, stages, kinds, observer, run_id, context_factory,
         refresh_catalog, params, workers: int = 1) -> RunSummary:
    observer = observer or StageObserver()
    reg = registry()
    plan_kwargs: dict[str, Any] = {"agents": list(agents) if agents else None,
                                   "names": list(stages) if stages else None}
    if kinds is not None:
        plan_kwargs["kinds"] = list(kinds)
    ordered = reg.plan(**plan_kwargs)
    ctx = context_factory(settings, dates, run_id=run_id, progress=observer.progress, params=dict(params or {}))
    summary = RunSummary(ctx.run_id, dates[0].isoformat(), dates[-1].isoformat(),
                         started_at=ctx.started_at.isoformat(timespec="seconds"))
    skip_unchanged = bool(settings.get("platform.skip_unchanged"))
    t_run = time.perf_counter()
    failed: list[Stage] = []
    docs = _deferred_data_docs(ctx)
    # Data Docs are built in the background when there is a core for it (the pages are a report: the lake is
    # committed, and a failed build is a warning the next audited run makes good): the pages asked for by the
    # time the stages that run side by side are done, beside the serial stages after them (dispatch and the
    # later rounds' handlers, which rarely audit a row); any asked for after, with the index again, beside the
    # catalog refresh
    from lakehouse.quality.gx import build_pending_docs, pending_docs
    from lakehouse.workers import in_background

    builders: list[Any] = []
    background_docs = workers > 1 and refresh_catalog

    def build_in_background(func: Callable[..., Any], *args: Any) -> bool:
        """Start ``func`` (which builds the pages asked for so far) in a forked process; the run then forgets
        those pages. False: processes cannot be forked here."""
        started = in_background(func, *args)
        if started is None:
            return False
        builders.append(started)
        for pages in pending_docs().values():
            pages.clear()
        return True

    def docs_so_far() -> None:
        if background_docs and any(pending_docs().values()):
            build_in_background(build_pending_docs)

    try:
        docs.__enter__()
        dispatched = _run_plan(ctx, ordered, summary, dates, skip_unchanged, failed, observer, workers, t_run,
                               parallel_done=docs_so_far)
        _event_rounds(ctx, ordered, summary, dates, skip_unchanged, failed, observer, dispatched, t_run)
        if background_docs and (not any(pending_docs().values())
                                or build_in_background(docs.__exit__, None, None, None)):
            docs.__exit__(None, None, None)  # nothing left to build here: leave the block
        else:
            t0 = time.perf_counter()
            try:
                docs.__exit__(None, None, None)
                log.info("Data Docs built in %.1f s", time.perf_counter() - t0)
            except Exception as exc:
                ctx.warn(f"GX Data Docs were not built ({type(exc).__name__}: {exc}); the next audited run builds "
                         "them")
        docs = contextlib.nullcontext()
        if refresh_catalog:
            from lakehouse.environment import sql_catalog

            faults.point("runner.catalog")
            t0 = time.perf_counter()
            try:
                sql_catalog(settings).refresh(ctx.lake)
            except Exception as exc:  # the lake is committed; a stale catalog is a warning, not a failed run
                ctx.warn(f"the SQL catalog was not refreshed ({type(exc).__name__}: {exc}); "
                         "`msp catalog refresh` retries")
            log.info("catalog refreshed in %.1f s", time.perf_counter() - t0)
        for builder in builders:
            problem = builder.result()
            if problem:
                ctx.warn(f"GX Data Docs were not built ({problem}); the next audited run builds them")
    finally:
        docs.__exit__(None, None, None)
        ctx.close()
    summary.seconds = round(time.perf_counter() - t_run, 3)
    summary.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    summary.counts = {k: asdict(v) for k, v in sorted(ctx.counts.items())}
    summary.warnings = list(ctx.warnings)
    ctx.lake.write_text(f"{RUNS_DIR}/{ctx.run_id}.json", summary.to_json())
    return summary


def _run_plan(ctx: RunContext, ordered: list[Stage], summary: RunSummary, dates: list[date], skip_unchanged: bool,
              failed: list[Stage], observer: StageObserver, workers: int, t_run: float,
              parallel_done: Callable[[], None] = lambda: None) -> Any:
    """Run the plan's stages: serial kinds here, in plan order; the others in ``workers`` forked processes as
    soon as what they depend on is done (one worker: all here, in plan order). ``parallel_done`` is called
    when the workers are done and only serial stages are left. Returns the outbox snapshot the last dispatch
    saw."""
    from lakehouse.workers import PARALLEL_KINDS, WorkerPool, can_fork

    use_pool = workers > 1 and can_fork() and (sum(st.kind in PARALLEL_KINDS for st in ordered) > 1
                                             or any(st.parts for st in ordered))
    pool: WorkerPool | None = None
    priority = _priorities(ctx, ordered) if use_pool else {}
    pending: list[Stage] = list(ordered)
    running: list[Stage] = []
    reports: dict[str, StageReport] = {}
    dispatched: Any = None

    def serial(st: Stage) -> bool:
        return not use_pool or st.kind not in PARALLEL_KINDS

    def start(st: Stage) -> StageReport | None:
        """The stage's report, or None when it is skipped (a stage it depends on failed)."""
        pending.remove(st)
        report = reports[st.name] = StageReport(st.name, st.agent,
                                                offset=round(time.perf_counter() - t_run, 3))
        summary.stages.append(report)
        blocker = _blocker(st, failed, ordered, reports)
        if blocker:
            report.status, report.error = "skipped", blocker
            failed.append(st)
            observer.stage_finished(report)
            return None
        observer.stage_started(st, ordered.index(st), len(ordered))
        return report

    try:
        head = pending[0] if pending else None
        if (use_pool and head is not None and head.kind == "ingest"
                and any(not serial(o) or o.parts for o in pending[1:])):
            # ingestion runs in workers forked before the workers' libraries are loaded, beside their loading
            pool = WorkerPool(ctx, workers, dates, skip_unchanged, _run_one,
                              stages=[o for o in pending if not serial(o)], warm=False)
            split = _parts(ctx, head)
            report = start(head)
            if report is None:
                pool.warm()
            else:
                if split:  # a large run's sources side by side, the first ones beside the loading of GX
                    _run_parts(pool, head, split, report, warm=lambda: pool.warm(stages=False))
                else:
                    _copy_outcome(pool.lead(head).report, report)
                if report.status == "failed":
                    failed.append(head)
                observer.stage_finished(report)
        while pending or running:
            progressed = False
            ready = _ready(pending, running, serial)
            if ready:  # the stage with the longest chain after it first
                st = max(ready, key=lambda o: (priority.get(o.name, 0.0), -pending.index(o)))
                if pool is None:
                    pool = WorkerPool(ctx, workers, dates, skip_unchanged, _run_one,
                                      stages=[o for o in pending if not serial(o)])
                if pool.free > 0:
                    if start(st) is not None:
                        pool.finish_warming()
                        pool.submit(st)
                        running.append(st)
                    continue  # rescan: a skip or a start changes what is ready
            elif pending and serial(pending[0]) and not running:
                st = pending[0]  # a serial stage waits for everything before it, nothing after it starts before it
                split = _parts(ctx, st) if use_pool else None
                if pool is not None and not split:  # the parallel part is over: the run's process goes on
                    pool.close()
                    pool = None
                    if not any(not serial(o) or o.parts for o in pending):
                        parallel_done()
                report = start(st)
                if report is not None and split:
                    if pool is None:
                        pool = WorkerPool(ctx, workers, dates, skip_unchanged, _run_one,
                                          stages=[o for o in pending if not serial(o)])
                    _run_parts(pool, st, split, report)
                    if report.status == "failed":
                        failed.append(st)
                    observer.stage_finished(report)
                elif report is not None:
                    _run_one(ctx, st, report, dates, skip_unchanged, failed)
                    if st.kind == "dispatch":  # what the outbox was when it was last dispatched
                        dispatched = ctx.lake.snapshot_id(schemas.get("events.outbox"))
                    observer.stage_finished(report)
                progressed = True
            if progressed:
                continue
            if not running:  # pragma: no cover - a plan is ordered: its first pending stage can always start
                raise RuntimeError(f"no stage of {[s.name for s in pending]} can start")
            for done in pool.wait() if pool is not None else []:
                running.remove(done.stage)
                report = reports[done.stage.name]
                _copy_outcome(done.report, report)
                if report.status == "failed":
                    failed.append(done.stage)
                observer.stage_finished(report)
    finally:
        if pool is not None:
            pool.close()
    return dispatched


def _ready(pending: list[Stage], running: list[Stage], serial: Callable[[Stage], bool]) -> list[Stage]:
    """The pending stages a worker could start now: those before the first serial one that depend on no stage
    pending before them or running."""
    ready = []
    for i, st in enumerate(pending):
        if serial(st):
            break
        if not any(st.depends_on(o) for o in [*pending[:i], *running]):
            ready.append(st)
    return ready


def _priorities(ctx: RunContext, ordered: list[Stage]) -> dict[str, float]:
    """Each stage's *bottom level*: its expected seconds plus the longest chain of expected seconds of the
    stages that wait for it. Of the stages ready to start, the workers take the highest first, so that a long
    chain (the OCR of contract scans, then the extraction, the register and the renewals that read it) is
    not left to run alone after everything else ("critical path first", the classic list-scheduling rule).

    A stage's expected seconds are its own from the last run that ran it on this lake (the run of the same
    days, else the latest; kept in its state), or 1 when it never ran, so that a cold backfill weighs the
    chains by their length. Reading the states costs one small file per stage."""
    expected: dict[str, float] = {}
    for st in ordered:
        runs = (load_state(ctx, st).get("runs") or {}) if st.kind != "ingest" else {}
        last = runs.get(_dates_key(ctx.dates, ctx.params)) or (
            max(runs.values(), key=lambda r: r.get("finished_at", "")) if runs else {})
        expected[st.name] = max(float(last.get("seconds") or 1.0), 0.01)
    level: dict[str, float] = {}
    for i in range(len(ordered) - 1, -1, -1):  # a plan is ordered: what waits for a stage comes after it
        st = ordered[i]
        after = [level[o.name] for o in ordered[i + 1:] if o.depends_on(st)]
        level[st.name] = expected[st.name] + max(after, default=0.0)
    return level


def _parts(ctx: RunContext, st: Stage) -> list[Any] | None:
    """The parts a stage's run splits into (:attr:`Stage.parts`), or None (it does not split, or cannot say)."""
    try:
        parts = st.split(ctx)
    except Exception as exc:  # the stage then runs whole, and says why itself if something is really wrong
        log.warning("stage %s: not split into parts (%s: %s)", st.name, type(exc).__name__, exc)
        return None
    return parts if parts and len(parts) > 1 else None


def _run_parts(pool: Any, st: Stage, parts: list[Any], report: StageReport,
               warm: Callable[[], None] | None = None) -> None:
    """Run a stage's parts in the workers, each after the parts it names; one report for the stage: failed if
    a part failed (the parts after it are skipped, as Airflow skips the tasks downstream of a failed one),
    unchanged if all were, else ok. ``warm`` loads what the workers forked later need, beside the first
    parts (default: everything left, :meth:`WorkerPool.finish_warming`)."""
    warm = warm or pool.finish_warming
    t0 = time.perf_counter()
    pending, running, results = list(parts), 0, {}
    withheld: dict[str, list[str] | None] = {}
    while pending or running:
        for part in list(pending):
            if pool.free <= 0:
                break
            blocked = [a for a in part.after if results.get(a, ("ok",))[0] in ("failed", "skipped")]
            if blocked:
                results[part.label] = ("skipped", f"after failed part {blocked[0]}")
                pending.remove(part)
            elif all(a in results for a in part.after if any(p.label == a for p in parts)):
                pool.submit(st, params=part.params, tag=part.label)
                pending.remove(part)
                running += 1
        if running:
            warm()  # beside the parts, which need none of it
            for done in pool.wait():
                results[done.tag] = (done.report.status, done.report.error)
                withheld[done.tag] = done.report.withheld
                running -= 1
        elif pending and not any(all(a in results for a in p.after) for p in pending):  # pragma: no cover
            raise RuntimeError(f"parts {[p.label for p in pending]} of {st.name} wait for each other")
    statuses = {status for status, _e in results.values()}
    problems = [f"{label}: {error}" for label, (status, error) in sorted(results.items())
                if status in ("failed", "skipped")]
    report.status = "failed" if problems else "unchanged" if statuses == {"unchanged"} else "ok"
    report.error = "; ".join(problems) or None
    # what the failed parts did not publish, when each says (a skipped part's outputs are not known)
    lists = [withheld.get(label) for label, (status, _e) in results.items() if status in ("failed", "skipped")]
    report.withheld = sorted({t for w in lists for t in w}) if lists and all(lists) else None
    report.seconds = round(time.perf_counter() - t0, 3)


def _run_one(ctx: RunContext, st: Stage, report: StageReport, dates: list[date], skip_unchanged: bool,
             failed: list[Stage]) -> None:
    """Run one stage into its report; a failed handler leaves the events it was given as dead letters."""
    from lakehouse import events

    t0 = time.perf_counter()
    try:
        report.status = _run_stage(ctx, st, dates, skip_unchanged)
    except Exception as exc:
        report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
        withheld = getattr(exc, "withheld", None)  # a stage that published the rest says what it withheld
        report.withheld = sorted(withheld) if withheld else None
        log.error("stage %s failed: %s", st.name, report.error)
        log.info("stage %s traceback (msp --debug or -v shows it):\n%s", st.name, traceback.format_exc())
        failed.append(st)
    finally:
        ctx.stage = None
    if st.kind == "handler":
        try:
            if report.status == "failed":
                n = events.dead_letter(ctx, st, report.error or "")
                if n:
                    ctx.warn(f"{st.name} failed on {n} event(s): kept in {events.DEAD_LETTERS} "
                             "(`msp events redrive` retries)")
            elif report.status == "ok":
                events.resolve_dead_letters(ctx, st)
        except Exception as exc:  # the dead-letter table must never hide the stage's own outcome
            ctx.warn(f"dead letters of {st.name} not updated ({type(exc).__name__}: {exc})")
    report.seconds = round(time.perf_counter() - t0, 3)


def _event_rounds(ctx: RunContext, ordered: list[Stage], summary: RunSummary, dates: list[date],
                  skip_unchanged: bool, failed: list[Stage], observer: StageObserver, mark: Any,
                  t_run: float) -> None:
    """Dispatch what the handlers emitted, and handle it, round after round (dispatch never waits for handlers:
    they read what it writes). The loop ends when the outbox is as the last dispatch left it, or a dispatch
    delivers nothing new; ids are deterministic and every writer replaces its own partitions (and leaves a
    partition holding the same rows alone), so a further round would change nothing."""
    from lakehouse.events import INBOX, OUTBOX

    dispatchers = [s for s in ordered if s.kind == "dispatch"]
    handlers = [s for s in ordered if s.kind == "handler"]
    if not dispatchers or not handlers:
        return
    inbox, outbox = schemas.get(INBOX), schemas.get(OUTBOX)
    for n in range(2, EVENT_ROUNDS + 2):
        if ctx.lake.snapshot_id(outbox) == mark:
            break
        seen_inbox = ctx.lake.snapshot_id(inbox)
        for group in (dispatchers, handlers):
            if group is handlers and ctx.lake.snapshot_id(inbox) == seen_inbox:
                return  # nothing new delivered
            for st in group:
                if st in failed or _blocker(st, failed, ordered, {r.name: r for r in summary.stages}):
                    continue
                report = StageReport(f"{st.name} (round {n})", st.agent,
                                     offset=round(time.perf_counter() - t_run, 3))
                summary.stages.append(report)
                observer.stage_started(st, len(summary.stages) - 1, len(summary.stages))
                _run_one(ctx, st, report, dates, skip_unchanged, failed)
                observer.stage_finished(report)
            if group is dispatchers:
                mark = ctx.lake.snapshot_id(outbox)


def _run_stage(ctx: RunContext, st: Stage, dates: list[date], skip_unchanged: bool) -> str:
    """Run one stage (or find it unchanged); returns its status."""
    reg = registry()
    state = load_state(ctx, st)
    settings_code = _hash(settings_version(ctx.settings, st), code_version(st))
    inputs = _snapshots(ctx, reg.inputs(st))
    key = _dates_key(dates, ctx.params)
    signature = _hash(settings_code, inputs, key)
    previous = (state.get("runs") or {}).get(key)
    outputs_then = (previous or {}).get("outputs") or {}
    models_then = (previous or {}).get("models") or {}
    if (skip_unchanged and st.kind not in NEVER_SKIPPED and previous
            and previous.get("signature") == signature
            and _snapshots(ctx, outputs_then) == outputs_then
            and all(_file_digest(ctx, path) == digest for path, digest in models_then.items())):
        ctx.count(f"stage:{st.name}").notes.append(f"unchanged since run {previous.get('run_id')}")
        return "unchanged"
    t0 = time.perf_counter()
    ctx.stage = st
    ctx.rebuild = state.get("settings_code") != settings_code
    ctx.last_inputs = dict(state.get("inputs") or {})
    # its reads see the snapshots its signature names (those of the tables it also writes: as at first read)
    writes = {schemas.get(d).qualified_name for d in reg.outputs(st)}
    read = {n: schemas.get(n).qualified_name for n in inputs}
    ctx.consumed = {read[n]: snap for n, snap in inputs.items() if read[n] not in writes}
    ctx.lake.small_reads.clear()
    ctx.memo.clear()
    try:
        _call(ctx, st, dates)
    finally:
        # the next stage (a worker runs many) gets a new engine: the in-memory tables this one handed to the
        # engine are released with it, not kept until the worker ends
        ctx.close()
    faults.point("runner.stage_done")
    # what the stage's output now is, for the next run's comparison
    outputs = _snapshots(ctx, reg.outputs(st))
    # the promoted models it read (a newly promoted model must be applied even when no input changed)
    models = {p: _file_digest(ctx, p) for p in sorted(ctx.lake.small_reads) if _MODEL_POINTER.match(p)}
    entry = {"signature": signature, "outputs": outputs, "models": models, "run_id": ctx.run_id,
             "seconds": round(time.perf_counter() - t0, 3),
             "finished_at": datetime.now(UTC).isoformat(timespec="seconds")}
    with _state_lock(ctx, st):  # parts of one stage may finish at once: merge into the state as it is now
        runs = {**(load_state(ctx, st).get("runs") or {}), key: entry}
        runs = dict(sorted(runs.items(), key=lambda kv: kv[1]["finished_at"])[-KEEP_RUNS:])
        ctx.lake.write_text(_state_path(st), json.dumps({
            "stage": st.name, "settings_code": settings_code, "inputs": inputs, "runs": runs}, indent=1))
    return "ok"


def windows(settings: Settings, st: Stage, dates: list[date]) -> list[list[date]]:
    """The parts of ``dates`` a stage runs on one after the other (:attr:`Stage.window`): one per calendar month
    (or quarter) for a windowed stage when ``platform.window`` is on, else all of them at once."""
    if not st.window or settings.get("platform.window") == "off" or len(dates) < 2:
        return [list(dates)]
    size = 3 if st.window == "quarter" else 1
    parts: dict[tuple[int, int], list[date]] = {}
    for d in sorted(dates):
        parts.setdefault((d.year, (d.month - 1) // size), []).append(d)
    return list(parts.values())


def _call(ctx: RunContext, st: Stage, dates: list[date]) -> None:
    """Run the stage function on the run's days: at once, or a window at a time with its writes committed
    together at the end (nothing of it is published when a window fails)."""
    parts = windows(ctx.settings, st, dates)
    if len(parts) == 1:
        st.func(ctx)
        return
    try:
        with ctx.deferred_writes():
            for i, window in enumerate(parts):
                ctx.progress(f"{st.name} {window[0]:%Y-%m}", i, len(parts))
                ctx.dates = window
                st.func(ctx)
                # what the stage owns before the next window is built now: the next window is a run after it
                ctx.rebuild = False
                ctx.memo.clear()
                # a new engine for the next window: what a window registered in it (in-memory tables a stage
                # handed to the engine, 300 MB a quarter for the cost table of the reference backfill) is
                # released with it
                ctx.close()
                faults.point("runner.window_done")
    finally:
        ctx.dates = list(dates)


def _snapshots(ctx: RunContext, names: Iterable[str]) -> dict[str, int | None]:
    """The current snapshot of each of these datasets, by name (one catalog query for all of them)."""
    datasets = {n: schemas.get(n) for n in sorted(names)}
    found = ctx.lake.snapshot_ids(datasets.values())
    return {n: found[ds.qualified_name] for n, ds in datasets.items()}


def _state_lock(ctx: RunContext, st: Stage):
    """An exclusive lock on a stage's state file of a local lake (an S3 lake's state is written in one PUT)."""
    return ctx.lake.local_lock(_state_path(st))


#: The registry's pointer to a model's promoted version (lakehouse/model_registry.py).
_MODEL_POINTER = re.compile(r"^ml-models/[^/]+/CURRENT\.json$")


def _file_digest(ctx: RunContext, relative: str) -> str | None:
    data = ctx.lake.read_bytes(relative)
    return None if data is None else hashlib.sha256(data).hexdigest()[:16]


def _copy_outcome(done: StageReport, report: StageReport) -> None:
    """A worker's report of a stage into the run's."""
    report.status, report.error, report.seconds, report.withheld = done.status, done.error, done.seconds, done.withheld


def _blocker(st: Stage, failed: list[Stage], ordered: list[Stage], reports: dict[str, StageReport]) -> str | None:
    """Why ``st`` must be skipped, or None: it depends on a failed stage (directly or through the stages
    between), or it reads a table that a partly failed stage withheld (the quality gate refusing one dataset
    publishes the others; the stages that read none of the refused ones run)."""
    reg = registry()
    for f in failed:
        report = reports.get(f.name)
        withheld = report.withheld if report is not None and report.status == "failed" else None
        if withheld is None or f.name in st.after:
            if _depends(st, f, ordered):
                return f"depends on failed stage {f.name}"
            continue
        read = sorted(set(reg.inputs(st)) & set(withheld)) if st.name in reg.stages else list(withheld)
        if read and st.depends_on(f):
            return f"depends on failed stage {f.name}, which did not publish {', '.join(read)}"
    return None


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

"""Run the independent stages of one run side by side, in worker processes forked from the run.

After ingestion and the quality gate, a day's run is some thirty agent stages, most of them independent of
each other (six agents, each a short chain). They are Python-bound (Arrow, pandas, Great Expectations,
pyiceberg's commit), so threads would not use a second core; processes do. The run forks ``platform.workers``
workers once its serial stages are done (``auto``: one per core, at most 4). Forking after the run has
imported its libraries and opened the GX project means a worker starts in milliseconds with everything
loaded, where a fresh process would pay the 5-10 s of imports again. Ingestion, the first stage, needs none
of them: it runs in a worker forked before they are loaded, while the run's process loads them
(:meth:`WorkerPool.lead`).

What stays the same as a serial run:

* **Order.** A stage starts only when every stage it depends on (its declaration: what it reads, ``after``)
  has finished; serial kinds (ingestion, the gate, dispatch, maintenance) run in the run's own process,
  with no worker busy, in plan order. The first round's event handlers run in the workers (each agent's
  handler writes its own tables; the event outbox and the dead letters they share are serialised by the
  catalog and by :data:`lakehouse.events.DEAD_LETTER_LOCK`); later dispatch rounds run theirs in the run's
  process. A serial stage that declares parts (``Stage.parts``: the gate,
  one part per dataset) runs its parts in the workers instead, each after the parts it names, and
  nothing after it starts before all its parts are done.
* **Tables.** Each stage commits its outputs as before. Two workers committing to one table (the event outbox)
  are serialised by the catalog's compare-and-swap: the loser recomputes against the new snapshot and
  retries (:meth:`lakehouse.lake.Lake.replace`). Stages that write the same table own different partition
  values, so the result does not depend on who commits first.
* **The ledger.** A worker sends back what its stage added to the run's counts, warnings and outputs, and the
  Data Docs pages its audits asked for; the run merges them, so the summary is the serial run's.
* **Failures.** A stage that raises fails alone, as before. A worker that dies (the OOM killer) fails the
  stage it was running with that reason, and a new worker takes its place for the stages left. A crash point
  of the crash-safety tests kills the whole run (:mod:`lakehouse.faults`), as a power cut would, and a worker
  dies with the run (Linux parent-death signal), so no orphan commits after a killed run.

Why a small pool of our own rather than :mod:`concurrent.futures` or :mod:`multiprocessing.Pool`: a stage is
not a picklable function call but a step of a run whose context (the lake, its caches, the GX project) must
be the run's, and whose side effects on the ledger come back; and a dead worker must fail one stage, not
break the pool (``ProcessPoolExecutor`` marks itself broken).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from lakehouse import faults

if TYPE_CHECKING:  # pragma: no cover
    from datetime import date

    from lakehouse.agents import Stage
    from lakehouse.context import RunContext
    from lakehouse.runner import StageReport

log = logging.getLogger(__name__)
#: Stage kinds a worker may run; the others are steps of the run itself (see the module docstring).
PARALLEL_KINDS = ("transform", "score", "train", "handler")
MAX_AUTO_WORKERS = 4
_PR_SET_PDEATHSIG = 1
#: Objects a worker inherited from the run and must never free (see _after_fork).
_INHERITED: list[Any] = []


def worker_count(setting: Any) -> int:
    """``platform.workers`` as a number: ``auto`` (or 0) is one per core, at most :data:`MAX_AUTO_WORKERS`."""
    if setting in (None, "", "auto", 0, "0"):
        return max(1, min(os.cpu_count() or 1, MAX_AUTO_WORKERS))
    return max(1, int(setting))


def can_fork() -> bool:
    return hasattr(os, "fork") and "fork" in multiprocessing.get_all_start_methods()


@dataclass
class Done:
    """A stage a worker finished (or was running when it died); ``tag`` is what the caller submitted it with."""

    stage: Stage
    report: StageReport
    tag: Any = None


class WorkerPool:
    """``size`` forked workers running stages of one run (see the module docstring)."""

    def __init__(self, ctx: RunContext, size: int, dates: list[date], skip_unchanged: bool,
                 run_one: Callable[..., None], stages: list[Stage] | None = None, warm: bool = True):
        self.ctx, self.size, self.dates, self.skip_unchanged, self.run_one = ctx, size, dates, skip_unchanged, run_one
        self._mp = multiprocessing.get_context("fork")
        self._idle: list[_Worker] = []
        self._busy: dict[int, tuple[_Worker, Stage, Any]] = {}
        self._stages = list(stages or [])
        self._generation = 0  # workers forked before the last warm-up are replaced when they are next idle
        self._warmed = 0  # 1: what every stage needs is loaded; 2: the stages' own modules too
        faults.share_counters()  # the n-th time a crash point is reached counts across the workers
        if warm:
            self.warm()

    def warm(self, stages: bool = True) -> None:
        """Load what the workers forked from now on need (see :func:`_warm`): what every stage needs (the GX
        project), and unless ``stages`` is false the stages' own modules and model libraries."""
        level = 2 if stages else 1
        if self._warmed >= level:
            return
        _warm(self.ctx, self._stages if stages else [], models=stages)
        self._warmed = level
        self._generation += 1

    def lead(self, stage: Stage) -> Done:
        """Run one stage in a worker forked before the workers' libraries are loaded, and load what every
        stage needs in the run's process meanwhile: ingestion (about a second) no longer waits for the 3-4 s
        of GX's import, nor it for ingestion. The stages' own modules and model libraries (another 3 s) are
        loaded by :meth:`finish_warming` while the first stages after run. The worker is stopped afterwards."""
        self.submit(stage)
        self.warm(stages=False)
        done = self.wait()[0]
        self._stop_idle()
        return done

    def finish_warming(self) -> None:
        """Load what :meth:`lead` left out, in the run's process, while the workers run what they were given
        (the gate's parts, which need none of it); each worker forked before is replaced by a new one, forked
        with all of it loaded, when it is next idle."""
        self.warm()

    # ---- the run's side ------------------------------------------------------------------------------------
    @property
    def free(self) -> int:
        return self.size - len(self._busy)

    @property
    def running(self) -> list[Stage]:
        return [st for _w, st, _t in self._busy.values()]

    def submit(self, stage: Stage, params: dict[str, Any] | None = None, tag: Any = None) -> None:
        """Run a stage in an idle worker (a new one if none is idle), narrowed by ``params`` when given."""
        worker = self._idle.pop() if self._idle else self._spawn()
        worker.conn.send((stage.name, params))
        self._busy[worker.pid] = (worker, stage, tag)

    def wait(self) -> list[Done]:
        """Block until at least one running stage is done; returns the finished ones."""
        from lakehouse.runner import StageReport

        if not self._busy:
            return []
        handles: dict[Any, _Worker] = {}
        for worker, _st, _tag in self._busy.values():
            handles[worker.conn] = worker
            handles[worker.process.sentinel] = worker
        ready = wait(list(handles))
        done: list[Done] = []
        for handle in ready:
            worker = handles[handle]
            if worker.pid not in self._busy:
                continue
            _w, stage, tag = self._busy[worker.pid]
            message = None
            if handle is worker.conn or worker.conn.poll():
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):
                    message = None
            del self._busy[worker.pid]
            if message is None:  # died before it could answer
                worker.process.join(timeout=5)
                code = worker.process.exitcode
                how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                report = StageReport(stage.name, stage.agent, status="failed",
                                     error=f"the worker process running it died ({how}); a new worker runs the "
                                           "stages left, and a rerun redoes this one")
                log.error("stage %s: %s", stage.name, report.error)
                worker.close()
            else:
                report = self._merge(message)
                if worker.generation == self._generation:
                    self._idle.append(worker)
                else:  # forked before the run loaded what the stages need: a new fork replaces it
                    self._retire(worker)
            self.ctx.lake._tables.clear()  # a worker committed: the run's cached table metadata is stale
            done.append(Done(stage, report, tag))
        return done

    def _merge(self, message: dict[str, Any]) -> StageReport:
        from lakehouse.quality.gx import pending_docs

        ctx = self.ctx
        for name, (rows_in, rows_out, quarantined, duplicates, partitions, notes) in message["counts"].items():
            c = ctx.count(name)
            c.rows_in += rows_in
            c.rows_out += rows_out
            c.quarantined += quarantined
            c.duplicates += duplicates
            c.partitions += partitions
            c.notes.extend(notes)
        ctx.warnings.extend(message["warnings"])
        ctx.outputs.update(message["outputs"])
        for key, identifiers in message["docs"].items():
            target = pending_docs().get(key)
            if target is not None:
                target.extend(identifiers)
        return message["report"]

    def close(self) -> None:
        """Tell idle workers to stop and wait for them; kill any still busy (an interrupted run)."""
        self._stop_idle()
        for worker, _st, _tag in self._busy.values():
            worker.process.kill()
            worker.process.join(timeout=5)
            worker.close()
        self._idle, self._busy = [], {}

    def _retire(self, worker: _Worker) -> None:
        """Stop one worker that is not busy."""
        _stop([worker])

    def _stop_idle(self) -> None:
        """Stop the idle workers."""
        idle, self._idle = self._idle, []
        _stop(idle)

    def _spawn(self) -> _Worker:
        parent, child = self._mp.Pipe()
        process = self._mp.Process(target=_main, args=(child, self.ctx, self.dates, self.skip_unchanged,
                                                         self.run_one), daemon=False, name="msp-stage-worker")
        _before_fork()
        process.start()
        child.close()
        return _Worker(process, parent, generation=self._generation)


def _stop(workers: list[_Worker]) -> None:
    """Tell these workers (none busy) to stop, all at once, then wait for each."""
    for worker in workers:
        with contextlib.suppress(OSError):
            worker.conn.send(None)
    for worker in workers:
        worker.process.join(timeout=30)
        worker.close()


@dataclass
class _Worker:
    process: Any
    conn: Connection
    pid: int = 0
    generation: int = 0

    def __post_init__(self) -> None:
        self.pid = self.process.pid

    def close(self) -> None:
        self.conn.close()
        self.process.close()


#: Libraries the platform's own model code loads lazily (lakehouse/ml, the model registry): imported once here
#: rather than once in each worker that scores with a promoted model.
WARM_MODULES = ("joblib", "sklearn.pipeline", "sklearn.compose", "sklearn.ensemble", "sklearn.calibration",
                "sklearn.linear_model", "sklearn.impute", "sklearn.preprocessing")


def _warm(ctx: RunContext, stages: list[Stage], models: bool = True) -> None:
    """Load in the run's process what every worker would otherwise load again: the stages' own modules, the
    platform's model libraries (``models``), Ibis with its DuckDB backend, and the GX project of an audited
    local lake (importing GX costs 2-5 s)."""
    import importlib

    for st in stages:
        with contextlib.suppress(Exception):  # a stage that cannot even be imported fails in its worker, clearly
            st.func  # noqa: B018 - resolves (imports) the stage's module
    for name in WARM_MODULES if models else ():
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    with contextlib.suppress(ImportError):  # every stage's engine, the gate's too: 1-1.5 s per process
        import ibis

        ibis.duckdb  # noqa: B018 - loads the backend (ibis imports it on first use)
    cfg = ctx.settings.model("quality")
    if cfg.checkpoint == "on" and ctx.lake.local:
        from lakehouse.quality.gx import project

        project(ctx.lake, data_docs=cfg.data_docs == "on").context  # noqa: B018 - opens the Data Context


class Background:
    """A call running in a forked process; :meth:`result` waits for it: None when it succeeded, else why not."""

    def __init__(self, process: Any, conn: Connection):
        self.process, self.conn = process, conn

    def result(self) -> str | None:
        message = None
        with contextlib.suppress(EOFError, OSError):
            message = self.conn.recv()
        self.process.join()
        code = self.process.exitcode
        self.conn.close()
        self.process.close()
        if message is None:
            return f"its process died (exit code {code})"
        return message or None


def in_background(func: Callable[..., Any], *args: Any) -> Background | None:
    """``func(*args)`` in a forked process, beside the caller (None where processes cannot be forked)."""
    if not can_fork():
        return None
    mp = multiprocessing.get_context("fork")
    parent, child = mp.Pipe()

    def main() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        try:
            func(*args)
            child.send("")
        except Exception as exc:
            child.send(f"{type(exc).__name__}: {exc}")

    process = mp.Process(target=main, daemon=False, name="msp-background")
    _before_fork()
    process.start()
    child.close()
    return Background(process, parent)


def _before_fork() -> None:
    """What the run's process releases before it forks (see
    :func:`lakehouse.environment.close_catalog_connections`)."""
    from lakehouse.environment import close_catalog_connections

    close_catalog_connections()


# ---- the worker's side ----------------------------------------------------------------------------------------
def _after_fork(ctx: RunContext) -> None:
    """Make the forked copy of the run safe to use on its own."""
    faults.in_worker = True
    with contextlib.suppress(OSError, AttributeError):  # die with the run: no worker commits after it is killed
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the run died while this worker started
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the run, which stops its workers
    try:  # pyiceberg's thread pool belongs to the parent: its threads do not exist here
        from pyiceberg.utils.concurrent import ExecutorFactory

        _INHERITED.append(ExecutorFactory._instance)
        ExecutorFactory._instance = None
    except ImportError:  # pragma: no cover
        pass
    engine = getattr(ctx.lake.catalog, "engine", None)  # SQLAlchemy: never share pooled connections
    if engine is not None and hasattr(engine, "dispose"):
        # the parent's SQLite connections are kept referenced, never closed here: closing a connection
        # inherited through fork can disturb the parent's locks on the database file (SQLite's own advice)
        _INHERITED.append(engine.pool)
        engine.dispose(close=False)
    # The parent's DuckDB connection stays the parent's; this worker opens its own. The inherited one is kept,
    # never freed: its destructor would join threads that exist only in the parent (std::terminate). The
    # worker ends with os._exit, so no destructor of an inherited object runs.
    _INHERITED.append(ctx._engine)
    ctx._engine = None
    ctx.progress = lambda *_: None  # the run draws its own progress


def _main(conn: Connection, ctx: RunContext, dates: list[date], skip_unchanged: bool,
          run_one: Callable[..., None]) -> None:
    from lakehouse.agents import registry
    from lakehouse.quality.gx import pending_docs
    from lakehouse.runner import StageReport

    _after_fork(ctx)
    reg = registry()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message is None:
            break
        name, params = message
        stage = reg.stages[name]
        own_params = ctx.params
        if params is not None:
            ctx.params = dict(params)
        counts = {k: (v.rows_in, v.rows_out, v.quarantined, v.duplicates, v.partitions, len(v.notes))
                  for k, v in ctx.counts.items()}
        warned, outputs = len(ctx.warnings), dict(ctx.outputs)
        docs = {k: len(v) for k, v in pending_docs().items()}
        ctx.lake._tables.clear()  # other workers committed since
        report = StageReport(stage.name, stage.agent)
        try:
            run_one(ctx, stage, report, dates, skip_unchanged, [])
        finally:
            ctx.params = own_params
        delta = {}
        for k, v in ctx.counts.items():
            b = counts.get(k, (0, 0, 0, 0, 0, 0))
            d = (v.rows_in - b[0], v.rows_out - b[1], v.quarantined - b[2], v.duplicates - b[3],
                 v.partitions - b[4], v.notes[b[5]:])
            if any(d[:5]) or d[5]:
                delta[k] = d
        conn.send({"report": report, "counts": delta, "warnings": ctx.warnings[warned:],
                   "outputs": {k: v for k, v in ctx.outputs.items() if outputs.get(k) != v},
                   "docs": {k: v[docs.get(k, 0):] for k, v in pending_docs().items() if len(v) > docs.get(k, 0)}})
    ctx.close()
    conn.close()

"""Building blocks of the DAG files in ``dags/``: assets from the dataset declarations, schedules from who
writes what, and the runner that turns one stage into Airflow tasks.

Imported at DAG-parse time, so it imports Airflow's SDK, the settings and the declarations only (the agent
registry is light: stage functions are ``"module:attr"`` strings). Job code, the lake, DuckDB, pyarrow and
pandas are imported by the tasks when they run.

**Runners** (:class:`Runner`, picked once from ``platform.runner`` by :func:`runner`):

* :class:`LocalRunner`: by default (``airflow.tasks = "dag"``) two tasks per DAG: ``run_stages`` runs all the
  DAG's stages in its process and worker pool (:func:`lakehouse.orchestration.run_stages`, DuckDB in-process,
  as ``msp run`` runs them), ``check_stages`` fails the run if one failed. A task is a process that imports
  pyarrow, pyiceberg, DuckDB, Ibis and GX again; a task per stage made a day through Airflow 76 such
  processes. With ``airflow.tasks = "stage"``, one TaskFlow task per stage, running it in the task's own
  process (:func:`lakehouse.orchestration.run_stage`), and a catalog-refresh teardown;
* :class:`GlueRunner`: a task group per stage: ``prepare`` (days, run id, job-run arguments) → ``submit``
  (``GlueJobOperator``, ``wait_for_completion=False``) → ``wait`` (``GlueJobSensor``: deferrable when the
  provider's triggers can run, i.e. ``aiobotocore`` is installed, else ``reschedule`` mode; neither holds a
  worker slot, and a retry waits for the same Glue run, it never starts a second one) → ``record`` (reads
  the stage result the job left in the lake and emits the asset events).

Either way the task that ran a stage emits the assets of the tables the stage wrote, each with
:func:`lakehouse.orchestration.outlet_extra` attached, and, through the asset aliases :data:`NEW_EVENTS` and
:data:`ROUTED_EVENTS`, one asset event per event type / consuming agent that got *new* events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, ClassVar

from airflow.sdk import (
    Asset,
    AssetAlias,
    AssetAll,
    AssetAny,
    Metadata,
    Param,
    TaskGroup,
    get_current_context,
    task,
    teardown,
)
from airflow.sdk import dag as airflow_dag

import schemas
from lakehouse import orchestration as orch
from lakehouse.agents import Stage
from lakehouse.config import Settings, load_settings
from schemas import Dataset

log = logging.getLogger(__name__)

START_DATE = datetime(2024, 1, 1, tzinfo=UTC)
#: Asset aliases through which tasks emit events on assets known only at run time (new events only).
NEW_EVENTS = AssetAlias(name="msp.new-events", group="events")
ROUTED_EVENTS = AssetAlias(name="msp.routed-events", group="events")
#: The alias through which a DAG-wide task (``airflow.tasks = "dag"``) emits the assets of the tables its
#: stages committed: only those. A declared outlet gets an asset event whenever its task succeeds, and that
#: task succeeds even when one of its stages failed, so a table a failed stage withheld is never declared.
PUBLISHED = AssetAlias(name="msp.published-tables", group="lake")
#: Priority of a DAG-wide task's check (absolute; its stages' task has 1).
CHECK_PRIORITY = 10


# ---- this process's settings and pipeline ------------------------------------------------------------
@cache
def settings() -> Settings:
    return load_settings()


@cache
def pipeline() -> orch.Pipeline:
    """The declared stages split into DAGs by kind."""
    return orch.Pipeline()


def reset() -> None:
    """Forget the cached settings and pipeline (after :func:`lakehouse.agents.reset`, e.g. a test that adds
    an agent package)."""
    settings.cache_clear()
    pipeline.cache_clear()


def default_args(cfg: Settings | None = None) -> dict[str, Any]:
    cfg = cfg or settings()
    return {
        "owner": "msp-data",
        "retries": cfg.model("airflow").retries,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,  # 1 min, 2 min, ... capped below
        "max_retry_delay": timedelta(minutes=30),
    }


# ---- assets ---------------------------------------------------------------------------------------------
def _root(cfg: Settings | None) -> str:
    return (cfg or settings()).lake_root


def dataset_asset(ds: Dataset | str, cfg: Settings | None = None) -> Asset:
    """The asset of a declared table: named by its qualified name, its URI the table's location in the lake
    (``file://...`` locally, ``s3://...`` on AWS)."""
    ds = schemas.get(ds) if isinstance(ds, str) else ds
    return Asset(name=ds.qualified_name, uri=orch.dataset_uri(ds, _root(cfg)), group=ds.zone_root)


def event_asset(event_type: str, cfg: Settings | None = None) -> Asset:
    return Asset(name=orch.event_asset_name(event_type), uri=orch.event_asset_uri(event_type, _root(cfg)),
                 group="events")


def inbox_asset(agent: str, cfg: Settings | None = None) -> Asset:
    return Asset(name=orch.inbox_asset_name(agent), uri=orch.inbox_asset_uri(agent, _root(cfg)), group="events")


def assets_of(condition: Any) -> list[Asset]:
    """The assets of a schedule condition (``Asset``, nested ``AssetAll`` / ``AssetAny``)."""
    if hasattr(condition, "objects"):
        return [a for o in condition.objects for a in assets_of(o)]
    return [condition] if isinstance(condition, Asset) else []


# ---- DAG-level helpers ----------------------------------------------------------------------------------
def date_params() -> dict[str, Param]:
    """Run parameters of every DAG: the export days to process (empty: see ``resolve_dates``)."""
    doc = "First export day to process (YYYY-MM-DD). Empty: the run's data interval or triggering events."
    return {
        "start": Param(None, type=["null", "string"], format="date", title="From day", description=doc),
        "end": Param(None, type=["null", "string"], format="date", title="To day",
                     description="Last export day (YYYY-MM-DD); empty: same as From day."),
    }


def dag(dag_id: str, schedule: Any, tags: Sequence[str], doc_md: str) -> Callable:
    """``@dag`` with the project's conventions: starts 2024-01-01, no catch-up (backfills are explicit), one
    run at a time, retries with back-off, and the ``start``/``end`` run parameters."""
    return airflow_dag(dag_id=dag_id, schedule=schedule, start_date=START_DATE, catchup=False, max_active_runs=1,
                       default_args=default_args(), params=date_params(), tags=list(tags), doc_md=doc_md)


def data_schedule(pipe: orch.Pipeline, dag_id: str, agent: str | None = None, fallback: Any = None) -> Any:
    """All the upstream tables updated (``AssetAll``), or new events routed to ``agent`` (``AssetAny`` with its
    inbox asset) when the DAG has handler stages; ``fallback`` when there is nothing to wait for."""
    inputs = [dataset_asset(d) for d in pipe.inputs(dag_id)]
    condition: Any = AssetAll(*inputs) if inputs else None
    if agent and pipe.handles_events(dag_id):
        condition = AssetAny(condition, inbox_asset(agent)) if condition is not None else inbox_asset(agent)
    return condition if condition is not None else fallback


def describe(stages: Sequence[Stage], pipe: orch.Pipeline, dag_id: str) -> str:
    """A Markdown table of a DAG's stages, appended to its ``doc_md``."""
    lines = ["", "| stage | kind | reads | writes | what it does |", "|---|---|---|---|---|"]
    for s in stages:
        lines.append(f"| `{s.name}` | {s.kind} | {', '.join(s.reads) or '–'} | {', '.join(s.writes) or '–'} "
                     f"| {s.description} |")
    inputs = pipe.inputs(dag_id)
    if inputs:
        lines += ["", "Waits for: " + ", ".join(f"`{d.qualified_name}`" for d in inputs) + "."]
    return "\n".join(lines)


def task_id_of(stage: Stage | str) -> str:
    name = stage if isinstance(stage, str) else stage.name
    return name.replace(".", "_")


# ---- what runs inside a task ----------------------------------------------------------------------------
def _context_dates(context: Mapping[str, Any]) -> list:
    events = context.get("triggering_asset_events") or {}
    carried = [d for key in events for ev in events[key] for d in ((ev.extra or {}).get("dates") or [])]
    return orch.resolve_dates(context.get("params") or {}, carried, context.get("data_interval_start"),
                              context.get("data_interval_end"))


def _run_id(context: Mapping[str, Any]) -> str:
    ti = context["ti"]
    return orch.stage_run_id(ti.dag_id, context["run_id"], ti.task_id)


def _metadata(result: Mapping[str, Any], tables: Iterable[str], alias: AssetAlias | None = None):
    """Asset events of one stage result: rows and days for every table it publishes, and one event per
    event type / consuming agent that got new events."""
    for name in tables:
        yield Metadata(dataset_asset(name), orch.outlet_extra(result, name), alias=alias)
    new = orch.new_events(result)
    for event_type, n in new["events"].items():
        yield Metadata(event_asset(event_type), {"events": n["rows"], "dates": n["dates"],
                                                 "run_id": result["run_id"]}, alias=NEW_EVENTS)
    for agent, n in new["inbox"].items():
        yield Metadata(inbox_asset(agent), {"events": n["rows"], "dates": n["dates"],
                                            "run_id": result["run_id"]}, alias=ROUTED_EVENTS)


def _summary(result: Mapping[str, Any]) -> dict[str, Any]:
    return {"run_id": result["run_id"], "status": result.get("status"), "dates": result["dates"],
            "seconds": result.get("seconds"),
            "rows": {k: v.get("rows_out", 0) for k, v in result["counts"].items() if v.get("rows_out")}}


def run_stages_here(stage_names: list[str], tables: list[str]):
    """Local runner, ``airflow.tasks = "dag"``: run the DAG's stages in this task's process and its worker
    pool, exactly as ``msp run --stages ...`` does (one import of the engines and GX for the whole DAG run),
    and emit the assets of the tables they committed (``tables`` are the DAG's; a failed stage's withheld
    tables emit nothing). A failed stage does not fail this task, so that what the others committed still
    starts the DAGs downstream: :func:`check_stages_here`, next, fails the run."""
    context = get_current_context()
    dates = _context_dates(context)
    run_id = _run_id(context)
    log.info("stages %s for %s (run id %s)", ", ".join(stage_names), [d.isoformat() for d in dates], run_id)
    result = orch.run_stages(load_settings(), stage_names, dates, run_id=run_id)
    done = set(orch.published(result))
    yield from _metadata(result, [t for t in tables if t in done], alias=PUBLISHED)
    return {**_summary(result), "ok": result["ok"], "stage": result["stage"], "stages": result["stages"],
            "errors": result["errors"]}


def check_stages_here(outcome: dict[str, Any]) -> dict[str, Any]:
    """Local runner, ``airflow.tasks = "dag"``: fail when a stage of the DAG run failed (naming it, its error
    and the run report), so the DAG run fails as a per-stage task would have failed it."""
    orch.check(outcome)
    return {n: v["status"] for n, v in outcome["stages"].items()}


def run_stage_here(stage_name: str, stage_params: dict[str, Any], tables: list[str]):
    """Local runner: run the stage in this task's process; its rows land on the tables' asset events."""
    context = get_current_context()
    dates = _context_dates(context)
    run_id = _run_id(context)
    log.info("stage %s for %s (run id %s, params %s)", stage_name, [d.isoformat() for d in dates], run_id,
             stage_params)
    # the analysts' catalog is refreshed once per DAG run, by its last task (refresh_catalog_here)
    result = orch.run_stage(load_settings(), stage_name, dates, params=stage_params, run_id=run_id,
                            refresh_catalog=False)
    orch.check(result)
    yield from _metadata(result, tables)
    return _summary(result)


def refresh_catalog_here() -> int:
    """Local runner, the teardown of every DAG: the analysts' SQL catalog over the snapshots the run committed
    (once per DAG run instead of once per task; a refresh failure does not fail the run, as in ``msp run``)."""
    from lakehouse.environment import sql_catalog
    from lakehouse.lake import Lake

    cfg = load_settings()
    return sql_catalog(cfg).refresh(Lake.from_settings(cfg))


def prepare_glue_run(stage_name: str, stage_params: dict[str, Any]) -> dict[str, Any]:
    """Glue runner, first step: the days, the run id and the job-run arguments."""
    context = get_current_context()
    run_id = _run_id(context)
    arguments = orch.glue_arguments(load_settings(), stage_name, _context_dates(context), stage_params, run_id)
    log.info("Glue arguments for %s: %s", stage_name, arguments)
    return {"run_id": run_id, "arguments": arguments}


def record_glue_run(stage_name: str, tables: list[str], glue_run: dict[str, Any]):
    """Glue runner, last step: read the result the job left in the lake and emit the asset events."""
    result = orch.read_stage_result(load_settings(), glue_run["run_id"])
    if result["stage"] != stage_name:
        raise orch.StageFailed(f"the result of run {glue_run['run_id']} is of stage {result['stage']}, "
                               f"not {stage_name}")
    orch.check(result)
    yield from _metadata(result, tables)
    return _summary(result)


# ---- runners: one stage → its task(s) --------------------------------------------------------------------
def _outlets(pipe: orch.Pipeline, stage: Stage, tables: Sequence[Dataset], cfg: Settings) -> list[Any]:
    objs: list[Any] = [dataset_asset(d, cfg) for d in tables]
    outputs = {d.qualified_name for d in pipe.outputs(stage)}
    if orch.OUTBOX in outputs:
        objs.append(NEW_EVENTS)
    if orch.INBOX in outputs:
        objs.append(ROUTED_EVENTS)
    return objs


class Runner:
    """How a stage becomes Airflow tasks; :meth:`tasks` returns (first, last) for wiring."""

    name: ClassVar[str] = ""

    def __init__(self, cfg: Settings):
        self.cfg = cfg

    def tasks(self, pipe: orch.Pipeline, stage: Stage, tables: Sequence[Dataset], params: dict[str, Any],
              task_id: str) -> tuple[Any, Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self, chains: Iterable[Mapping[str, tuple[Any, Any]]]) -> Any:
        """What runs after every stage task of a DAG, whatever their outcome (nothing by default)."""
        return None

    def whole_dag(self) -> bool:
        """Whether a DAG's stages run as one task (:meth:`dag_tasks`) rather than a task per stage."""
        return False

    def dag_tasks(self, pipe: orch.Pipeline, dag_id: str, stages: Sequence[Stage]) -> tuple[Any, Any]:
        raise NotImplementedError(f"the {self.name} runner runs a task per stage")  # pragma: no cover

    @staticmethod
    def doc(stage: Stage, tables: Sequence[Dataset]) -> str:
        return (f"Stage `{stage.name}` ({stage.kind}, {stage.agent}): {stage.description}\n\n"
                f"Writes: {', '.join(d.qualified_name for d in tables) or '–'}")


class LocalRunner(Runner):
    """The stage in the task's own process (DuckDB in-process)."""

    name = "local"

    def tasks(self, pipe, stage, tables, params, task_id):
        run = task(task_id=task_id, outlets=_outlets(pipe, stage, tables, self.cfg), doc_md=self.doc(stage, tables))(
            run_stage_here)
        op = run(stage_name=stage.name, stage_params=params, tables=[d.qualified_name for d in tables]).operator
        return op, op

    def whole_dag(self) -> bool:
        return self.cfg.model("airflow").tasks == "dag"

    def dag_tasks(self, pipe, dag_id, stages):
        """``run_stages`` (every stage of the DAG in one process and its worker pool; the analysts' catalog is
        refreshed at its end, as after ``msp run``) → ``check_stages`` (fails if a stage failed; no retry:
        the verdict would not change. Clear ``run_stages`` to run the failed stages again: the others are
        unchanged and skip in a second)."""
        names = [s.name for s in stages]
        outputs = {d.qualified_name for s in stages for d in pipe.outputs(s)}
        outlets: list[Any] = [PUBLISHED]
        outlets += [NEW_EVENTS] if orch.OUTBOX in outputs else []
        outlets += [ROUTED_EVENTS] if orch.INBOX in outputs else []
        doc = "\n".join([f"Runs the stages of `{dag_id}` as `msp run --stages` does, side by side where they can:",
                          "", *[f"* `{s.name}` ({s.kind}): {s.description}" for s in stages], "",
                          "Emits the assets of the tables they committed (alias `msp.published-tables`)."])
        run = task(task_id="run_stages", outlets=outlets, doc_md=doc, weight_rule="absolute", priority_weight=1)(
            run_stages_here)(stage_names=names, tables=sorted(d.qualified_name for d in pipe.writes(dag_id)))
        # the check takes a free slot before any DAG's stages: the asset events its run_stages emitted start
        # the DAGs downstream at once, and a check left waiting behind them kept its DAG run open for 24 s
        verdict = task(task_id="check_stages", retries=0, doc_md=check_stages_here.__doc__, weight_rule="absolute",
                       priority_weight=CHECK_PRIORITY)(check_stages_here)(run)
        return run.operator, verdict.operator

    def finish(self, chains):
        """A teardown refreshing the DuckDB catalog once the DAG's stages are done (a teardown does not decide
        the run's state: a failed stage still fails the run)."""
        refresh = teardown(task(task_id="refresh_catalog", doc_md=refresh_catalog_here.__doc__)(
            refresh_catalog_here))().operator
        for chain in chains:
            for _first, last in chain.values():
                last >> refresh
        return refresh


class GlueRunner(Runner):
    """The stage as a run of the Glue stage-runner job: submit, wait without a worker slot, record."""

    name = "glue"

    @staticmethod
    def can_defer() -> bool:
        """Whether the amazon provider's deferrable sensors can run here (their triggers need aiobotocore)."""
        import importlib.util

        return importlib.util.find_spec("aiobotocore") is not None

    def tasks(self, pipe, stage, tables, params, task_id):
        from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
        from airflow.providers.amazon.aws.sensors.glue import GlueJobSensor

        cfg = self.cfg
        af = cfg.model("airflow")
        job_name = orch.glue_job_name(cfg, stage.name)  # one job (and role) per agent or platform stage
        poke = int(af.glue_poke_seconds)
        max_pokes = max(1, int(af.glue_max_hours * 3600 // poke))
        with TaskGroup(group_id=task_id, tooltip=self.doc(stage, tables)) as group:
            prepare = task(task_id="prepare")(prepare_glue_run)(stage_name=stage.name, stage_params=params)
            submit = GlueJobOperator(
                task_id="submit", job_name=job_name, script_location=orch.glue_script_location(cfg),
                script_args=prepare["arguments"], wait_for_completion=False, region_name=cfg.aws_region,
                doc_md=f"Starts a run of the Glue job `{job_name}` (infra/stack.py) for this stage and returns its "
                       "run id at once.")
            deferrable = self.can_defer()
            wait = GlueJobSensor(task_id="wait", job_name=job_name, run_id=submit.output, deferrable=deferrable,
                                 mode="poke" if deferrable else "reschedule", poke_interval=poke,
                                 max_retries=max_pokes, timeout=poke * max_pokes, region_name=cfg.aws_region,
                                 doc_md="Waits for the Glue run without holding a worker slot; a retry waits again "
                                        "for the same run, it never resubmits.")
            record = task(task_id="record", outlets=_outlets(pipe, stage, tables, cfg))(record_glue_run)(
                stage_name=stage.name, tables=[d.qualified_name for d in tables], glue_run=prepare)
            submit >> wait >> record
        return group, group


RUNNERS: dict[str, type[Runner]] = {r.name: r for r in (LocalRunner, GlueRunner)}


def runner(cfg: Settings | None = None) -> Runner:
    """The runner ``platform.runner`` names (the profile picks it: local, or glue on AWS)."""
    cfg = cfg or settings()
    kind = cfg.platform.runner
    if kind not in RUNNERS:  # pragma: no cover - the settings model refuses other values
        raise ValueError(f"unknown runner {kind!r} (known: {', '.join(RUNNERS)})")
    return RUNNERS[kind](cfg)


def stage_chain(stages: Sequence[Stage], pipe: orch.Pipeline | None = None, *, params: dict[str, Any] | None = None,
                keep: Callable[[Dataset], bool] | None = None,
                run: Runner | None = None) -> dict[str, tuple[Any, Any]]:
    """Tasks for ``stages``, wired by what each reads and writes (and ``after``); each emits the assets of the
    tables it publishes (those ``keep`` accepts, if given)."""
    pipe = pipe or pipeline()
    run = run or runner()
    tasks: dict[str, tuple[Any, Any]] = {}
    for s in stages:
        tables = [d for d in pipe.outputs(s) if keep is None or keep(d)]
        tasks[s.name] = run.tasks(pipe, s, tables, dict(params or {}), task_id_of(s))
    for s in stages:
        for up in stages:
            if up.name != s.name and pipe.depends(s, up):
                tasks[up.name][1] >> tasks[s.name][0]
    return tasks


def tasks(pipe: orch.Pipeline, dag_id: str, stages: Sequence[Stage], per_stage: Callable[[], Any],
          run: Runner | None = None) -> Any:
    """A DAG's tasks: the runner's one task for all ``stages`` when it runs whole DAGs (the local runner with
    ``airflow.tasks = "dag"``), else what ``per_stage()`` builds (stage chains and :func:`finish`)."""
    run = run or runner()
    if stages and run.whole_dag():
        return run.dag_tasks(pipe, dag_id, stages)
    return per_stage()


def finish(*chains: Mapping[str, tuple[Any, Any]], run: Runner | None = None) -> Any:
    """The runner's last task of a DAG after all its stage chains (the local runner's catalog refresh)."""
    return (run or runner()).finish(chains)


def of_source(source: str) -> Callable[[Dataset], bool]:
    """A landing source's tasks emit the assets of that source's tables and of the shared ones."""
    return lambda ds: orch.source_of(ds) in (source, None)

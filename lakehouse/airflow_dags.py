"""Building blocks of the Airflow DAG files in ``dags/``: assets derived from the dataset declarations,
schedules derived from who writes what, and the task(s) that run one stage on the profile's runner.

Imported at DAG-parse time, so it imports only Airflow, the settings, the YAML declarations and the
stage manifest (:mod:`lakehouse.orchestration`). Job code, Spark and pandas are imported by the tasks
when they run.

Runner switch (``settings.runner``, from the profile):

* ``local``: one task per stage, running it in the task's process (:func:`run_stage_task`);
* ``glue``: a task group per stage: ``prepare`` (dates, run id, Glue arguments) → ``submit``
  (``GlueJobOperator``, ``wait_for_completion=False``) → ``wait`` (``GlueJobSensor``: a retry waits for the
  same Glue run, it never starts a second one) → ``record`` (reads the stage result the job left in the
  lake and emits the asset events). The sensor is deferrable (polled by the triggerer) when ``aiobotocore``
  is installed, as the amazon provider's async hooks need; without it, it falls back to ``reschedule``
  mode, which frees the worker slot between pokes too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Asset, AssetAlias, AssetAll, AssetAny, Metadata, Param, TaskGroup, get_current_context

import schemas
from lakehouse import orchestration as orch
from lakehouse.config import Settings, load_settings
from lakehouse.stages import Stage
from schemas import Dataset

log = logging.getLogger(__name__)

START_DATE = datetime(2024, 1, 1, tzinfo=UTC)
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "msp-data",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,  # 1 min, 2 min, ... capped below
    "max_retry_delay": timedelta(minutes=30),
}
#: Glue runs are polled by the triggerer, not by a worker slot (every minute, for up to four hours).
GLUE_POKE_SECONDS = int(os.environ.get("MSP_AIRFLOW_GLUE_POKE_SECONDS", "60"))
GLUE_MAX_POKES = 4 * 3600 // max(GLUE_POKE_SECONDS, 1)
#: Asset aliases through which tasks emit events on assets known only at run time.
NEW_EVENTS = AssetAlias(name="msp.new-events", group="events")
ROUTED_EVENTS = AssetAlias(name="msp.routed-events", group="events")


# ---- assets -------------------------------------------------------------------------------------------
def dataset_asset(ds: Dataset | str) -> Asset:
    """The Airflow asset of a declared dataset: named by its qualified name, URI from the declaration."""
    ds = schemas.get(ds) if isinstance(ds, str) else ds
    return Asset(name=ds.qualified_name, uri=ds.asset_uri, group=ds.zone_root)


def event_asset(event_type: str) -> Asset:
    return Asset(name=f"events.{event_type}", uri=orch.event_asset_uri(event_type), group="events")


def inbox_asset(agent: str) -> Asset:
    return Asset(name=f"events.inbox.{agent}", uri=orch.inbox_asset_uri(agent), group="events")


# ---- DAG-level helpers --------------------------------------------------------------------------------------
@cache
def settings() -> Settings:
    return load_settings()


@cache
def pipeline() -> orch.Pipeline:
    """The stages (from the manifest) split into DAGs."""
    return orch.Pipeline(orch.load_stages())


def date_params() -> dict[str, Param]:
    """Run parameters of every DAG: the export days to process (empty: see ``resolve_dates``)."""
    doc = "First export day to process (YYYY-MM-DD). Empty: the run's data interval or triggering events."
    return {
        "start": Param(None, type=["null", "string"], format="date", title="From day", description=doc),
        "end": Param(None, type=["null", "string"], format="date", title="To day",
                     description="Last export day (YYYY-MM-DD); empty: same as From day."),
    }


def dag(dag_id: str, schedule: Any, tags: Sequence[str], doc_md: str) -> DAG:
    """A DAG with the project's conventions: starts 2024-01-01, no catch-up (backfills are explicit), one run
    at a time, retries with backoff, and the ``start``/``end`` run parameters."""
    return DAG(dag_id=dag_id, schedule=schedule, start_date=START_DATE, catchup=False, max_active_runs=1,
               default_args=DEFAULT_ARGS, params=date_params(), tags=list(tags), doc_md=doc_md)


def data_schedule(pipe: orch.Pipeline, dag_id: str, agent: str | None = None, fallback: Any = None) -> Any:
    """Data-aware schedule: all upstream datasets updated (``&``), or new events routed to ``agent``
    (``|``) when one of the DAG's stages reads the inbox. ``fallback`` when there is nothing to wait for."""
    inputs = [dataset_asset(d) for d in pipe.inputs(dag_id)]
    condition = AssetAll(*inputs) if inputs else None
    if agent and pipe.reads_inbox(dag_id):
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
        lines += ["", "Waits for: " + ", ".join(f"`{d.asset_uri}`" for d in inputs) + "."]
    return "\n".join(lines)


def task_id_of(stage: Stage | str) -> str:
    name = stage if isinstance(stage, str) else stage.name
    return name.replace(".", "_")


# ---- what runs inside a task -----------------------------------------------------------------------------
def _context_dates(context: Mapping[str, Any]) -> list:
    events = context.get("triggering_asset_events") or {}
    carried = [d for key in events for ev in events[key] for d in ((ev.extra or {}).get("dates") or [])]
    return orch.resolve_dates(context.get("params") or {}, carried, context.get("data_interval_start"),
                              context.get("data_interval_end"))


def _run_id(context: Mapping[str, Any]) -> str:
    return orch.stage_run_id(context["dag"].dag_id, context["run_id"], context["ti"].task_id)


def _metadata(result: Mapping[str, Any], outlets: Iterable[str]):
    """Asset events of one stage result: row counts for every dataset it owns, and one event per
    event type / target agent that got new events."""
    for name in outlets:
        yield Metadata(dataset_asset(name), orch.outlet_extra(result, name))
    for event_type, new in result["new"].get(orch.OUTBOX, {}).items():
        yield Metadata(event_asset(event_type), {"events": new["rows"], "dates": new["dates"],
                                                 "run_id": result["run_id"]}, alias=NEW_EVENTS)
    for agent, new in result["new"].get(orch.INBOX, {}).items():
        yield Metadata(inbox_asset(agent), {"events": new["rows"], "dates": new["dates"],
                                            "run_id": result["run_id"]}, alias=ROUTED_EVENTS)


def _summary(result: Mapping[str, Any]) -> dict[str, Any]:
    return {"run_id": result["run_id"], "dates": result["dates"],
            "rows": {k: v.get("rows_out", 0) for k, v in result["counts"].items()}}


def run_stage_task(stage: str, stage_params: dict[str, Any], outlets: list[str]):
    """Local runner: run the stage in this task's process; its rows land on the outlets' asset events."""
    context = get_current_context()
    dates = _context_dates(context)
    run_id = _run_id(context)
    log.info("running stage %s for %s (run id %s, params %s)", stage, [d.isoformat() for d in dates], run_id,
             stage_params)
    result = orch.run_stage(load_settings(), stage, dates, params=stage_params, run_id=run_id)
    orch.check(result)
    yield from _metadata(result, outlets)
    return _summary(result)


def prepare_glue_run(stage: str, stage_params: dict[str, Any]) -> dict[str, Any]:
    """Glue runner, first step: the days, the run id and the job-run arguments."""
    context = get_current_context()
    run_id = _run_id(context)
    arguments = orch.glue_arguments(load_settings(), stage, _context_dates(context), stage_params, run_id)
    log.info("Glue arguments for %s: %s", stage, arguments)
    return {"run_id": run_id, "arguments": arguments}


def record_glue_run(stage: str, outlets: list[str], run_id: str):
    """Glue runner, last step: read the result the job wrote to the lake and emit the asset events."""
    result = orch.read_stage_result(load_settings(), run_id)
    orch.check(result)
    yield from _metadata(result, outlets)
    return _summary(result)


def can_defer() -> bool:
    """Whether the amazon provider's deferrable sensors can run here (their triggers need aiobotocore)."""
    import importlib.util

    return importlib.util.find_spec("aiobotocore") is not None


# ---- tasks of one stage --------------------------------------------------------------------------------------
def _outlet_objects(stage: Stage, outlets: Sequence[Dataset]) -> list[Any]:
    objs: list[Any] = [dataset_asset(d) for d in outlets]
    if orch.touches(stage.writes, orch.OUTBOX):
        objs.append(NEW_EVENTS)
    if orch.touches(stage.writes, orch.INBOX):
        objs.append(ROUTED_EVENTS)
    return objs


def stage_task(stage: Stage, *, outlets: Sequence[Dataset], params: dict[str, Any] | None = None,
               task_id: str | None = None, runner: str | None = None) -> tuple[Any, Any]:
    """The task(s) running ``stage`` and emitting ``outlets``; returns (first, last) for wiring."""
    outlets = list(outlets)
    names = [d.qualified_name for d in outlets]
    task_id = task_id or task_id_of(stage)
    params = dict(params or {})
    runner = runner or settings().runner
    doc = f"Stage `{stage.name}` ({stage.agent}): {stage.description}\n\nWrites: {', '.join(names) or '–'}"
    if runner == "local":
        op = PythonOperator(task_id=task_id, python_callable=run_stage_task, outlets=_outlet_objects(stage, outlets),
                            op_kwargs={"stage": stage.name, "stage_params": params, "outlets": names}, doc_md=doc)
        return op, op
    if runner != "glue":
        raise ValueError(f"unknown runner {runner!r} (platform.runner is local or glue)")
    from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
    from airflow.providers.amazon.aws.sensors.glue import GlueJobSensor

    cfg = settings()
    job_name = orch.glue_job_name(cfg)
    with TaskGroup(group_id=task_id, tooltip=doc) as group:
        prepare = PythonOperator(task_id="prepare", python_callable=prepare_glue_run, multiple_outputs=True,
                                 op_kwargs={"stage": stage.name, "stage_params": params})
        submit = GlueJobOperator(
            task_id="submit", job_name=job_name, script_location=orch.glue_script_location(cfg),
            script_args=prepare.output["arguments"], wait_for_completion=False, region_name=cfg.aws_region,
            doc_md=f"Starts a run of the Glue job `{job_name}` (infra/stack.py) for this stage and returns its "
                   "run id at once.")
        deferrable = can_defer()
        wait = GlueJobSensor(task_id="wait", job_name=job_name, run_id=submit.output, deferrable=deferrable,
                             mode="poke" if deferrable else "reschedule", poke_interval=GLUE_POKE_SECONDS,
                             max_retries=GLUE_MAX_POKES, timeout=GLUE_POKE_SECONDS * GLUE_MAX_POKES,
                             region_name=cfg.aws_region,
                             doc_md="Waits for the Glue run without holding a worker slot; a retry waits again for "
                                    "the same run, it never resubmits.")
        record = PythonOperator(task_id="record", python_callable=record_glue_run,
                                outlets=_outlet_objects(stage, outlets),
                                op_kwargs={"stage": stage.name, "outlets": names,
                                           "run_id": prepare.output["run_id"]})
        prepare >> submit >> wait >> record
    return group, group


def stage_chain(stages: Sequence[Stage], pipe: orch.Pipeline, *, params: dict[str, Any] | None = None,
                keep: Callable[[Dataset], bool] | None = None, runner: str | None = None) -> dict[str, tuple[Any, Any]]:
    """Tasks for ``stages``, wired by what each reads and writes (``Stage.depends_on``); each emits the
    assets of the datasets it publishes (``pipe.outputs``), those ``keep`` accepts if given."""
    tasks = {}
    for s in stages:
        outlets = [d for d in pipe.outputs(s) if keep is None or keep(d)]
        tasks[s.name] = stage_task(s, outlets=outlets, params=params, runner=runner)
    for s in stages:
        for up in stages:
            if up.name != s.name and s.depends_on(up):
                tasks[up.name][1] >> tasks[s.name][0]
    return tasks

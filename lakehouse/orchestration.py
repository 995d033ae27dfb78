"""Orchestration: which DAG runs which stage, what schedules each DAG, which days a run processes, and how a
scheduler task runs one stage and reports what it wrote. No Airflow here (see :mod:`lakehouse.airflow_dags`).

Everything is derived from the agents' declarations (:func:`lakehouse.agents.registry`) and the dataset
declarations, imported directly at DAG-parse time: both are light (stage functions are ``"module:attr"``
strings), so nothing heavy is imported until a task runs a stage.

**Which DAG runs a stage: its kind, never its name** (:data:`KIND_DAGS`):

==============================  ==================  ==========================================================
kind                            DAG                 scheduled
==============================  ==================  ==========================================================
``ingest``, ``gate``            ``msp_ingest``      daily; one task group per landing source
``transform``, ``score``,       ``msp_<agent>``     on the assets of the tables the agent's stages read that
``handler``                                         another DAG publishes (all of them updated), or on the
                                                    agent's inbox asset when it has handler stages
``train``                       ``msp_train``       weekly, one task group per agent
``dispatch``                    ``msp_events``      on the asset of any event type (new events only)
``maintenance``                 ``msp_maintenance`` weekly
==============================  ==================  ==========================================================

Scoring stays in the agent's daily DAG on purpose: stages that read the scores must get today's.

**A stage run** (:func:`run_stage`) runs one stage in this process (the local runner; on the glue runner
the Glue job's entry point :mod:`lakehouse.glue_entry` calls it) and leaves its result in the lake,
``_meta/stage-results/<run id>.json``: rows per dataset written, the days, and the *new* event ids per event
type (outbox) and per consuming agent (inbox). The Airflow task attaches the rows and days to the asset events
of what the stage wrote; downstream runs process the days those events carry. Only new event ids emit an
event asset, and ids are deterministic, so re-running a day triggers no event DAG and events cannot loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

import schemas
from lakehouse.agents import PLATFORM, Registry, Stage, registry
from schemas import Dataset

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.config import Settings
    from lakehouse.lake import Lake
    from lakehouse.runner import StageObserver

log = logging.getLogger(__name__)

INGEST_DAG = "msp_ingest"
EVENTS_DAG = "msp_events"
TRAIN_DAG = "msp_train"
MAINTENANCE_DAG = "msp_maintenance"
#: The DAG of every platform-wide kind; the other kinds (transform, score, handler) run in their agent's DAG.
KIND_DAGS = {"ingest": INGEST_DAG, "gate": INGEST_DAG, "train": TRAIN_DAG, "dispatch": EVENTS_DAG,
             "maintenance": MAINTENANCE_DAG}
AGENT_KINDS = ("transform", "score", "handler")
#: DAGs on the clock whatever their inputs do (the others are data-aware).
CLOCK_DAGS = (INGEST_DAG, TRAIN_DAG, MAINTENANCE_DAG)

OUTBOX = "events.outbox"
INBOX = "events.inbox"
#: Datasets whose *new* rows a stage run counts per group (event type; consuming agent).
WATCHED = {OUTBOX: "event_type", INBOX: "agent"}
#: Zones of the ingestion DAG's tables (a task per landing source emits the assets of its source's tables).
INGESTION_ZONES = ("raw", "processed", "quarantine")
RESULTS_DIR = "_meta/stage-results"


def agent_dag_id(agent: str) -> str:
    return f"msp_{agent}"


def dag_of(stage: Stage) -> str:
    """The DAG that runs a stage, from its kind."""
    return KIND_DAGS.get(stage.kind) or agent_dag_id(stage.agent)


# ---- assets: names and URIs -------------------------------------------------------------------------------
def dataset_uri(ds: Dataset | str, lake_root: str) -> str:
    """Where the table lives (``file:///.../lake/processed/tickets``, ``s3://bucket/lake/processed/tickets``):
    the URI of its Airflow asset, so lineage tools follow the same path the engines read."""
    ds = schemas.get(ds) if isinstance(ds, str) else ds
    return ds.location(lake_root)


def event_asset_name(event_type: str) -> str:
    return f"{OUTBOX}.{event_type}"


def event_asset_uri(event_type: str, lake_root: str) -> str:
    """The outbox partition of one event type: what ``msp_events`` is scheduled on."""
    return f"{dataset_uri(OUTBOX, lake_root)}/event_type={event_type}"


def inbox_asset_name(agent: str) -> str:
    return f"{INBOX}.{agent}"


def inbox_asset_uri(agent: str, lake_root: str) -> str:
    """The inbox partition of one agent: what starts its DAG when it has handler stages."""
    return f"{dataset_uri(INBOX, lake_root)}/agent={agent}"


def source_of(ds: Dataset) -> str | None:
    """The landing source of an ingestion-zone dataset (None: shared by all sources, or not ingestion)."""
    if ds.zone_root not in INGESTION_ZONES:
        return None
    return {d.name: d.source for d in schemas.datasets("raw")}.get(ds.name)


def source_order() -> dict[str, list[str]]:
    """Landing source → the sources whose gate must run first (its suites look rows up in their processed
    tables: :func:`lakehouse.quality.suite.source_dependencies`). A cycle is broken in name order, as the gate
    itself does: the later source then checks against what was published before."""
    try:
        from lakehouse.quality.suite import source_dependencies
    except ImportError:  # pragma: no cover - the gate is not installed
        return {}
    try:
        needs = source_dependencies()
    except Exception as exc:  # a broken suite fails the quality task at run time, loudly
        log.warning("could not read the quality suites for cross-source ordering: %s", exc)
        return {}
    ordered: dict[str, list[str]] = {}

    def upstream(src: str, seen: frozenset[str]) -> set[str]:
        out: set[str] = set()
        for p in ordered.get(src, []):
            if p not in seen:
                out |= {p} | upstream(p, seen | {p})
        return out

    for child in sorted(needs):
        for parent in sorted(needs[child]):
            if parent and parent != child and child not in upstream(parent, frozenset({parent})):
                ordered.setdefault(child, []).append(parent)
    return ordered


# ---- which DAG runs which stage ---------------------------------------------------------------------------
@dataclass
class Pipeline:
    """The declared stages split into DAGs by kind, with what each DAG publishes and waits for."""

    reg: Registry = field(default_factory=registry)

    @cached_property
    def stages(self) -> list[Stage]:
        """Every stage of every kind, in run order."""
        return self.reg.plan(kinds=None)

    def dag_of(self, s: Stage) -> str:
        return dag_of(s)

    @cached_property
    def by_dag(self) -> dict[str, list[Stage]]:
        out: dict[str, list[Stage]] = {}
        for s in self.stages:
            out.setdefault(dag_of(s), []).append(s)
        return out

    def of_kind(self, *kinds: str) -> list[Stage]:
        return [s for s in self.stages if s.kind in kinds]

    @property
    def ingestion(self) -> list[Stage]:
        return self.by_dag.get(INGEST_DAG, [])

    @property
    def dispatch(self) -> list[Stage]:
        return self.by_dag.get(EVENTS_DAG, [])

    @property
    def maintenance(self) -> list[Stage]:
        return self.by_dag.get(MAINTENANCE_DAG, [])

    @property
    def training(self) -> dict[str, list[Stage]]:
        """``{agent: its train stages}``, in run order."""
        out: dict[str, list[Stage]] = {}
        for s in self.by_dag.get(TRAIN_DAG, []):
            out.setdefault(s.agent, []).append(s)
        return out

    def agent_dags(self) -> dict[str, list[Stage]]:
        """``{agent: its transform, score and handler stages}`` (one DAG each), in run order."""
        return {a: self.by_dag[agent_dag_id(a)] for a in self.reg.agents if agent_dag_id(a) in self.by_dag}

    def dag_ids(self) -> list[str]:
        return sorted(self.by_dag)

    # ---- datasets --------------------------------------------------------------------------------------
    @cached_property
    def claimed(self) -> set[str]:
        """Datasets some stage names exactly in its writes."""
        return {w for s in self.stages for w in s.writes if not any(ch in w for ch in "*?[")}

    def outputs(self, s: Stage) -> list[Dataset]:
        """The declared datasets a stage publishes: wildcards resolved to what its own agent owns, less what
        another stage names exactly (``quality`` writes ``quarantine.*``, but ``quarantine.rejected_files`` is
        ``ingest``'s)."""
        return [schemas.get(n) for n in sorted(self.reg.outputs(s)) if n in s.writes or n not in self.claimed]

    def reads(self, s: Stage) -> list[Dataset]:
        return [schemas.get(n) for n in sorted(self.reg.inputs(s))]

    def depends(self, s: Stage, up: Stage) -> bool:
        """Whether ``s`` runs after ``up`` in one DAG: it names it in ``after`` or reads what it writes."""
        return up.name in s.after or bool(self.reg.inputs(s) & self.reg.outputs(up))

    def writes(self, dag_id: str) -> list[Dataset]:
        seen: dict[str, Dataset] = {}
        for s in self.by_dag.get(dag_id, []):
            seen.update((d.qualified_name, d) for d in self.outputs(s))
        return list(seen.values())

    @cached_property
    def producers(self) -> dict[str, str]:
        """Dataset → the DAG that publishes it (the first in run order)."""
        out: dict[str, str] = {}
        for s in self.stages:
            for ds in self.outputs(s):
                out.setdefault(ds.qualified_name, dag_of(s))
        return out

    @cached_property
    def _waits(self) -> dict[str, dict[str, str]]:
        """Data-aware DAG → {upstream dataset → producing DAG} it is scheduled on. Candidates come in run
        order; one whose producer already waits, directly or not, for the reading DAG is left out (that table
        is then read as last published), so schedules never wait on each other."""
        waits: dict[str, dict[str, str]] = {dag_id: {} for dag_id in self.by_dag}

        def upstream(dag_id: str, seen: frozenset[str]) -> set[str]:
            out: set[str] = set()
            for producer in set(waits.get(dag_id, {}).values()) - seen:
                out |= {producer} | upstream(producer, seen | {producer})
            return out

        for s in self.stages:
            dag_id = dag_of(s)
            if dag_id in CLOCK_DAGS:
                continue
            own = {d.qualified_name for d in self.writes(dag_id)}
            for ds in self.reads(s):
                name = ds.qualified_name
                producer = self.producers.get(name)
                if (ds.zone_root in ("events", "ml-models") or name in own or producer in (None, TRAIN_DAG,
                                                                                         MAINTENANCE_DAG)
                        or name in waits[dag_id]):
                    continue
                if dag_id not in upstream(producer, frozenset({producer})):
                    waits[dag_id][name] = producer
        return waits

    def inputs(self, dag_id: str) -> list[Dataset]:
        """The tables whose asset events schedule ``dag_id``: what its stages read that another DAG publishes
        (never events, which trigger through their own assets, nor models)."""
        return [schemas.get(name) for name in sorted(self._waits.get(dag_id, {}))]

    def handles_events(self, dag_id: str) -> bool:
        """Whether the DAG has handler stages (then the agent's inbox asset starts it too)."""
        return any(s.kind == "handler" for s in self.by_dag.get(dag_id, []))

    def event_types(self) -> list[str]:
        return sorted(self.reg.events)

    def consumers(self) -> list[str]:
        """Agents some route delivers events to."""
        return sorted({a for targets in self.reg.routes.values() for a, _ in targets})


# ---- dates of a run ---------------------------------------------------------------------------------------
def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _days(start: date, end: date) -> list[date]:
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def resolve_dates(params: Mapping[str, Any] | None = None, triggering_dates: Iterable[Any] = (),
                  interval_start: datetime | None = None, interval_end: datetime | None = None,
                  today: date | None = None) -> list[date]:
    """The export days a DAG run processes, first match wins:

    1. the ``start``/``end`` run parameters (a manual trigger, ``airflow dags test -c``);
    2. the days carried by the asset events that triggered the run (their union);
    3. the run's data interval: a scheduled or backfilled daily run processes the day its interval covers
       (its logical date), exactly as ``msp run --date`` would; a weekly run, the seven days;
    4. yesterday (UTC), like ``msp run`` without dates.
    """
    params = params or {}
    start, end = params.get("start"), params.get("end")
    if start or end:
        return _days(_as_date(start or end), _as_date(end or start))
    days = sorted({_as_date(d) for d in triggering_dates})
    if days:
        return days
    if interval_start is not None:
        last = interval_end - timedelta(microseconds=1) if interval_end and interval_end > interval_start \
            else interval_start
        return _days(_as_date(interval_start), _as_date(last))
    return [(today or datetime.now(UTC).date()) - timedelta(days=1)]


def stage_run_id(dag_id: str, dag_run_id: str, task_id: str) -> str:
    """A run id that is the same for every try of one Airflow task instance (its run report is
    ``_meta/runs/<id>.json``, its result ``_meta/stage-results/<id>.json``)."""
    digest = hashlib.sha256(f"{dag_id}|{dag_run_id}|{task_id}".encode()).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{dag_id}.{task_id}")[:80]
    return f"af-{slug}-{digest}"


# ---- running one stage ---------------------------------------------------------------------------------------
class LogObserver:
    """Stage progress as log lines (Airflow task logs, Glue driver logs), at most one line per 10 %."""

    def __init__(self, logger: logging.Logger | None = None):
        self.log = logger or log
        self._last: dict[str, int] = {}

    def stage_started(self, stage, index, total):
        self.log.info("stage %s started (%d/%d)", stage.name, index + 1, total)

    def stage_finished(self, report):
        self.log.info("stage %s %s in %.1f s%s", report.name, report.status, report.seconds,
                      f": {report.error}" if report.error else "")

    def progress(self, description, completed, total):
        step = int(10 * completed / total) if total else 0
        key = description.split(" ")[0]
        if self._last.get(key) != step:
            self._last[key] = step
            self.log.info("%s: %d/%d", description, completed, total)


class StageFailed(RuntimeError):
    """The stage reported a failure; the message names it and where its run report is."""


def _ids(lake: Lake, name: str, column: str, days: Sequence[str]) -> set[tuple]:
    """(group, dt, primary key...) of the current rows of a watched dataset on some days."""
    ds = schemas.get(name)
    snap = lake.snapshot_id(ds)
    if snap is None:
        return set()
    cols = list(dict.fromkeys([column, "dt", *ds.primary_key]))
    table = lake.read_arrow(ds, {"dt": list(days)}, snap, columns=cols)
    return set(zip(*[table.column(c).to_pylist() for c in cols], strict=True))


def run_stage(settings: Settings, stage: str, dates: Sequence[date], *, params: Mapping[str, Any] | None = None,
              run_id: str | None = None, observer: StageObserver | None = None,
              refresh_catalog: bool = True) -> dict[str, Any]:
    """Run one declared stage for ``dates`` in this process; returns its result, also written to
    ``<lake>/_meta/stage-results/<run id>.json``. A failure of the stage is in the result, not raised: call
    :func:`check`.

    For the watched event datasets the result counts the *new* rows per group (event type, consuming agent):
    rows on the run's days whose keys were not there before the stage ran (a rerun writing the same
    deterministic event ids counts none)."""
    return run_stages(settings, [stage], dates, params=params, run_id=run_id, observer=observer,
                      refresh_catalog=refresh_catalog)


def run_stages(settings: Settings, stages: Sequence[str], dates: Sequence[date], *,
               params: Mapping[str, Any] | None = None, run_id: str | None = None,
               observer: StageObserver | None = None, refresh_catalog: bool = True,
               workers: int | None = None) -> dict[str, Any]:
    """Run declared stages for ``dates`` in this process, as ``msp run --stages`` runs them: in plan order, side
    by side in ``workers`` forked processes (default ``platform.workers``), a failed stage skipping only the
    stages that read what it withheld. Returns the result :func:`run_stage` describes, with ``stages``: each
    stage's status and the tables it published (:func:`published`)."""
    from lakehouse.context import RunContext
    from lakehouse.lake import Lake
    from lakehouse.runner import run_pipeline

    reg = registry()
    unknown = [s for s in stages if s not in reg.stages]
    if unknown or not stages:
        raise StageFailed(f"unknown stage(s) {', '.join(map(repr, unknown)) or '(none given)'}; declared: "
                          f"{', '.join(sorted(reg.stages))}")
    chosen = [reg.stages[s] for s in stages]
    days = sorted({d.isoformat() for d in dates})
    lake = Lake.from_settings(settings)
    outputs = set().union(*(reg.outputs(st) for st in chosen))
    watched = {name: col for name, col in WATCHED.items() if name in outputs}
    before = {name: _ids(lake, name, col, days) for name, col in watched.items()}

    def context_factory(settings_, dates_, **kwargs):
        return RunContext.create(settings_, dates_, lake=lake, **kwargs)

    summary = run_pipeline(settings, list(dates), stages=list(stages), params=dict(params or {}), run_id=run_id,
                           observer=observer or LogObserver(), context_factory=context_factory,
                           refresh_catalog=refresh_catalog, workers=workers)
    new: dict[str, dict[str, dict[str, Any]]] = {}
    for name, col in watched.items():
        groups: dict[str, dict[str, Any]] = {}
        for group, dt, *_ in _ids(lake, name, col, days) - before[name]:
            g = groups.setdefault(group, {"rows": 0, "dates": set()})
            g["rows"] += 1
            g["dates"].add(str(dt))
        new[name] = {g: {"rows": v["rows"], "dates": sorted(v["dates"])} for g, v in sorted(groups.items())}
    reports = {r.name: r for r in summary.stages}  # a later dispatch round's report is "<stage> (round N)"
    outcome = {}
    for st in chosen:
        r = reports.get(st.name)
        status = r.status if r else "skipped"
        names = sorted(reg.outputs(st))
        if status in ("ok", "unchanged"):
            wrote = names
        elif status == "failed" and r is not None and r.withheld is not None:
            wrote = [n for n in names if n not in set(r.withheld)]
        else:
            wrote = []
        outcome[st.name] = {"status": status, "published": wrote, "kind": st.kind, "agent": st.agent}
    first = chosen[0]
    result = {
        "run_id": summary.run_id, "stage": first.name if len(chosen) == 1 else ", ".join(stages),
        "kind": first.kind, "agent": first.agent, "dates": days, "ok": summary.ok,
        "status": _overall(outcome), "stages": outcome,
        "errors": [f"{s.name}: {s.error}" for s in summary.stages if s.status not in ("ok", "unchanged")],
        "seconds": summary.seconds, "counts": summary.counts, "new": new, "warnings": list(summary.warnings),
        "params": dict(params or {}),
    }
    lake.write_text(f"{RESULTS_DIR}/{summary.run_id}.json", json.dumps(result, indent=1, sort_keys=True,
                                                                       default=str))
    return result


def _overall(outcome: Mapping[str, Mapping[str, Any]]) -> str:
    """One status for a run of stages: failed if one failed, skipped if one was skipped, unchanged if all were,
    else ok."""
    statuses = {v["status"] for v in outcome.values()}
    for status in ("failed", "skipped"):
        if status in statuses:
            return status
    return "unchanged" if statuses == {"unchanged"} else "ok"


def published(result: Mapping[str, Any]) -> list[str]:
    """The tables a result's stages committed: every output of a stage that ran or was unchanged, and the
    outputs a failed stage published before it failed (not those it withheld)."""
    return sorted({n for v in result["stages"].values() for n in v["published"]})


def writer_of(result: Mapping[str, Any], dataset: str) -> str:
    """The stage of a result that published ``dataset``."""
    for name, v in result["stages"].items():
        if dataset in v["published"]:
            return name
    return result["stage"]


def read_stage_result(settings: Settings, run_id: str) -> dict[str, Any]:
    """The result a stage run (e.g. a Glue job) left in the lake."""
    from lakehouse.lake import Lake

    text = Lake.from_settings(settings).read_text(f"{RESULTS_DIR}/{run_id}.json")
    if text is None:
        raise StageFailed(f"no stage result for run {run_id} under {settings.lake_root}/{RESULTS_DIR}/ "
                          "(the job did not finish, or wrote to another lake root)")
    return json.loads(text)


def check(result: Mapping[str, Any]) -> None:
    """Raise :class:`StageFailed` when the stage failed (so its Airflow task, or Glue job, fails)."""
    if not result["ok"]:
        statuses = {n: v["status"] for n, v in result["stages"].items()}
        failed = [n for n, st in statuses.items() if st == "failed"] or [
            n for n, st in statuses.items() if st not in ("ok", "unchanged")] or [result["stage"]]
        what = f"stage {failed[0]}" if len(failed) == 1 else f"stages {', '.join(failed)}"
        raise StageFailed(f"{what} failed for {', '.join(result['dates'])}: "
                          f"{'; '.join(result['errors'])} (run report: _meta/runs/{result['run_id']}.json)")


def outlet_extra(result: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """What an asset event of ``dataset`` carries: rows written (0 when the stage wrote nothing new for it,
    e.g. files already ingested, or the stage was unchanged), partitions, and the days, which downstream runs
    process."""
    c = result["counts"].get(dataset, {})
    stage = writer_of(result, dataset)
    status = result["stages"].get(stage, {}).get("status", result["status"])
    return {"rows": c.get("rows_out", 0), "rows_in": c.get("rows_in", 0), "quarantined": c.get("quarantined", 0),
            "partitions": c.get("partitions", 0), "dates": list(result["dates"]), "run_id": result["run_id"],
            "stage": stage, "status": status}


def new_events(result: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{"events": {event type: {rows, dates}}, "inbox": {agent: {rows, dates}}}`` of a result."""
    return {"events": dict(result["new"].get(OUTBOX, {})), "inbox": dict(result["new"].get(INBOX, {}))}


# ---- AWS Glue ---------------------------------------------------------------------------------------------
GLUE_ENTRY_SCRIPT = "glue_entry.py"
#: Job-run arguments of :func:`glue_arguments`; ``lakehouse.glue_entry`` also reads the job's default
#: arguments the infra stack sets (``--lake_root``, ``--landing_root``, ``--msp_profile``,
#: ``--glue_database_prefix``), which these override.
GLUE_ARGUMENTS = ("stage", "dates", "lake_root", "landing_root", "run_id", "params", "msp_profile")
GLUE_JOB = "stage-runner"


def glue_job_name(settings: Settings, stage: str | None = None) -> str:
    """The Glue job that runs ``stage``: infra/stack.py creates one per unit, an agent or a platform stage, each
    with its own role (:mod:`lakehouse.aws_names`): ``<platform.glue_job_prefix><unit>``, e.g. ``msp-dev-acme``
    for ``acme.margins``. Without a stage, the former single ``<prefix>stage-runner`` job."""
    if stage is None:
        return f"{settings.platform.glue_job_prefix}{GLUE_JOB}"
    from lakehouse.aws_names import glue_job

    return glue_job(settings, stage)


def glue_script_location(settings: Settings) -> str:
    """Where the job's entry script lives: ``<platform.glue_scripts_location>/glue_entry.py``."""
    from lakehouse.config import ConfigError

    base = str(settings.platform.glue_scripts_location or "")
    if not base.startswith("s3://"):
        raise ConfigError("the glue runner needs platform.glue_scripts_location = 's3://bucket/scripts/' "
                          "(set MSP_GLUE_SCRIPTS_LOCATION)")
    return f"{base.rstrip('/')}/{GLUE_ENTRY_SCRIPT}"


def glue_arguments(settings: Settings, stage: str, dates: Sequence[date], params: Mapping[str, Any] | None,
                   run_id: str) -> dict[str, str]:
    """The job-run arguments :mod:`lakehouse.glue_entry` reads (Glue passes them as ``--name value``)."""
    return {
        "--stage": stage,
        "--dates": ",".join(sorted({d.isoformat() for d in dates})),
        "--lake_root": settings.lake_root,
        "--landing_root": settings.landing_root,
        "--run_id": run_id,
        "--params": json.dumps(dict(params or {}), sort_keys=True),
        "--msp_profile": settings.profile,
    }


__all__ = ["AGENT_KINDS", "EVENTS_DAG", "INGEST_DAG", "KIND_DAGS", "MAINTENANCE_DAG", "PLATFORM", "TRAIN_DAG",
           "LogObserver", "Pipeline", "StageFailed", "agent_dag_id", "check", "dag_of", "glue_arguments",
           "glue_job_name", "glue_script_location", "outlet_extra", "published", "read_stage_result",
           "resolve_dates", "run_stage", "run_stages", "source_of", "source_order", "stage_run_id"]

"""Orchestration: which DAG runs which stage, and how a scheduler task runs one stage on either runner.

The Airflow DAG files (``dags/``) never import job code: parsing must stay cheap (no Spark, no pandas,
no Great Expectations). They read a *manifest* of the stage registry instead
(``dags/stage_manifest.json``: each stage's name, agent, reads, writes and ``after``), and derive
everything else from it and from the dataset declarations:

* :class:`Pipeline` splits the stages into DAGs: the daily ingestion DAG (platform stages that write only
  ``raw``/``processed``/``quarantine``), the event dispatch DAG (stages reading ``events.outbox`` and
  writing ``events.inbox``), the weekly training DAG (stages named ``*train``, see
  :attr:`lakehouse.stages.Stage.kind`) and one data-aware DAG per agent with all its other stages, scoring
  included (so scores are fresh for the stages that read them, in the order ``msp run`` uses). It also
  says which upstream datasets each DAG waits for.
* At run time a task calls :func:`run_stage`. On the ``local`` runner it does so in the task's own
  process (one Spark session per task process). On the ``glue`` runner the task submits the same stage
  as an AWS Glue job whose entry point, :mod:`lakehouse.glue_entry`, calls :func:`run_stage` with the
  arguments built by :func:`glue_arguments`.

Either way :func:`run_stage` leaves a small JSON result in the lake (``_meta/stage-results/<run id>.json``:
rows per dataset written, new events per event type and per target agent), which the Airflow task
attaches to the asset events of what the stage wrote.

Events, the minimal interface: a stage that writes ``events.outbox`` emits, per event type that got
*new* event ids in the run's days, an asset event on ``msp://events/<event type>``; the dispatch stage
(reads the outbox, writes ``events.inbox``) emits, per agent that received new events, an asset event on
``msp://events/inbox/<agent>``, which triggers that agent's DAG when one of its stages reads
``events.inbox``. Only new ids trigger anything, so re-running a day (same deterministic ids) cannot
loop events between agents.

The manifest is checked against the live registry by the test suite; regenerate it with
``python -m lakehouse.orchestration manifest``. When the stage sources changed since it was written,
DAG parsing regenerates it once in a subprocess and caches the result by content hash (see
:func:`load_stages`), so a new agent's stages show up in Airflow without editing any DAG file.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import fnmatch
import hashlib
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import schemas
from lakehouse.stages import BUILTIN_STAGE_PACKAGES, Stage
from schemas import Dataset

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.config import Settings
    from lakehouse.runner import StageObserver

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
DEFAULT_MANIFEST = Path(__file__).resolve().parents[1] / "dags" / "stage_manifest.json"
CACHE_ENV = "MSP_STAGE_MANIFEST_CACHE"
REFRESH_ENV = "MSP_STAGE_MANIFEST_REFRESH"

OUTBOX = "events.outbox"
INBOX = "events.inbox"
#: Zones the daily ingestion DAG may write (platform stages writing only these are "ingestion").
INGESTION_ZONES = ("raw", "processed", "quarantine")
#: Datasets whose new rows are counted per group, to emit one asset event per group (see module doc).
WATCHED = {OUTBOX: "event_type", INBOX: "agent"}
RESULTS_DIR = "_meta/stage-results"

INGEST_DAG = "msp_ingest"
EVENTS_DAG = "msp_events"
TRAIN_DAG = "msp_train"


def agent_dag_id(agent: str) -> str:
    return f"msp_{agent}"


# ---- the stage manifest ---------------------------------------------------------------------------------
def _not_loaded(ctx: Any) -> None:  # pragma: no cover - a manifest stage is never called
    raise RuntimeError("a stage read from the manifest has no code; run it through lakehouse.runner")


def stage_sources() -> list[tuple[str, Path]]:
    """(name, path) of every source file that can register stages, found without importing them."""
    import lakehouse.stages

    found = [("lakehouse/stages.py", Path(lakehouse.stages.__file__))]
    for package in BUILTIN_STAGE_PACKAGES:
        try:
            spec = importlib.util.find_spec(package)
        except (ModuleNotFoundError, ValueError):
            spec = None
        if spec is None:
            continue
        prefix = package.replace(".", "/")
        if spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                for path in sorted(Path(location).rglob("*.py")):
                    found.append((f"{prefix}/{path.relative_to(location).as_posix()}", path))
        elif spec.origin:
            found.append((f"{prefix}.py", Path(spec.origin)))
    return found


def fingerprint() -> str:
    """Content hash of the stage sources (and ``msp.stages`` entry points): the manifest's cache key."""
    from importlib.metadata import entry_points

    digest = hashlib.sha256()
    for name, path in stage_sources():
        digest.update(name.encode() + b"\0")
        with contextlib.suppress(OSError):
            digest.update(path.read_bytes())
    for ep in sorted(entry_points(group="msp.stages"), key=lambda e: (e.name, e.value)):
        version = ep.dist.version if ep.dist else ""
        digest.update(f"ep:{ep.name}={ep.value}@{version}\0".encode())
    return digest.hexdigest()[:16]


def stage_record(s: Stage) -> dict[str, Any]:
    return {"name": s.name, "agent": s.agent, "reads": list(s.reads), "writes": list(s.writes),
            "after": list(s.after), "description": s.description}


def build_manifest() -> dict[str, Any]:
    """The manifest of the live registry (imports every stage module: not for parse time)."""
    from lakehouse.stages import plan

    return {"version": MANIFEST_VERSION, "fingerprint": fingerprint(),
            "stages": [stage_record(s) for s in plan()]}


def write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "msp-stage-manifests")


def _regenerate(target: Path) -> dict[str, Any] | None:
    """Build the manifest in a subprocess (job imports stay out of the parsing process)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent DAG files wait for one build
        cached = _read_json(target)
        if cached is not None:
            return cached
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "lakehouse.orchestration", "manifest", "--out", str(target)],
                              capture_output=True, text=True, timeout=180, check=False)
        if proc.returncode != 0:
            log.warning("could not rebuild the stage manifest:\n%s", proc.stderr[-2000:])
            return None
        log.warning("stage sources changed since the committed manifest: rebuilt it in %.1f s (cached at %s; "
                    "commit it with `python -m lakehouse.orchestration manifest`)", time.perf_counter() - t0, target)
        return _read_json(target)


def load_manifest(path: Path = DEFAULT_MANIFEST, refresh: bool | None = None) -> dict[str, Any]:
    """The manifest to build DAGs from: the committed one when the stage sources still match it,
    else a rebuilt one (cached by content hash; ``MSP_STAGE_MANIFEST_REFRESH=0`` turns rebuilding off,
    e.g. on a read-only deployment, which then uses the committed manifest as it is)."""
    committed = _read_json(path)
    fp = fingerprint()
    if committed is not None and committed.get("fingerprint") == fp:
        return committed
    cached = _cache_dir() / f"{fp}.json"
    data = _read_json(cached)
    if data is None:
        if refresh is None:
            refresh = os.environ.get(REFRESH_ENV, "1").lower() not in ("0", "false", "no", "off")
        data = _regenerate(cached) if refresh else None
    if data is None:
        if committed is None:
            raise FileNotFoundError(f"no stage manifest at {path}: run `python -m lakehouse.orchestration manifest`")
        log.warning("using the committed stage manifest %s although stage sources changed", path)
        data = committed
    return data


def stages_from_manifest(manifest: Mapping[str, Any]) -> list[Stage]:
    if manifest.get("version") != MANIFEST_VERSION:
        raise ValueError(f"stage manifest version {manifest.get('version')} (expected {MANIFEST_VERSION})")
    return [Stage(r["name"], r["agent"], _not_loaded, tuple(r["reads"]), tuple(r["writes"]), tuple(r["after"]),
                  r.get("description", "")) for r in manifest["stages"]]


def load_stages(path: Path = DEFAULT_MANIFEST) -> list[Stage]:
    """Stages (without code) in run order, from the manifest: what DAG files build on."""
    return stages_from_manifest(load_manifest(path))


# ---- datasets ------------------------------------------------------------------------------------------
def resolve(patterns: Iterable[str]) -> list[Dataset]:
    """Declared datasets matching qualified names or wildcards (``processed.*``), sorted by name."""
    patterns = list(patterns)
    return [d for name, d in schemas.catalog().items() if any(fnmatch.fnmatchcase(name, p) for p in patterns)]


def is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def _zone(pattern: str) -> str:
    return pattern.split(".", 1)[0]


def touches(patterns: Iterable[str], name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(p, name) for p in patterns)


def event_types() -> list[str]:
    """Event types, from the event schemas (``schemas/events/<type>.json``; the envelope excluded)."""
    return sorted(p.stem for p in schemas.EVENTS_DIR.glob("*.json") if p.stem != "envelope")


def event_asset_uri(event_type: str) -> str:
    """``msp://events/<type>``: a sibling of the outbox asset, one per event type."""
    return f"{schemas.get(OUTBOX).asset_uri.rsplit('/', 1)[0]}/{event_type}"


def inbox_asset_uri(agent: str) -> str:
    """``msp://events/inbox/<agent>``: the events routed to one agent."""
    return f"{schemas.get(INBOX).asset_uri}/{agent}"


def source_of(ds: Dataset) -> str | None:
    """The landing source a raw/processed/quarantine dataset belongs to (None: shared by all sources)."""
    if ds.zone_root not in INGESTION_ZONES:
        return None
    return {d.name: d.source for d in schemas.datasets("raw")}.get(ds.name)


def source_lookups() -> dict[str, list[str]]:
    """Landing source → the other sources whose processed tables its quality rules look rows up in
    (``lookup`` columns of the suites in ``expectations/``). The ingestion DAG runs a source's quality
    gate after those sources' gates, in the parents-first order ``msp run`` uses; a cycle is broken in
    name order, as the gate itself does."""
    try:
        from lakehouse.quality.suite import load_all
    except ImportError:
        return {}
    try:
        suites = load_all()
    except Exception as exc:  # a broken suite fails the quality task at run time, loudly
        log.warning("could not read the quality suites for cross-source ordering: %s", exc)
        return {}
    needs: dict[str, set[str]] = {}
    for suite in suites:
        child = source_of(suite.dataset)
        for lookup in suite.lookups:
            parent = source_of(schemas.get(lookup)) if lookup in schemas.catalog() else None
            if child and parent and parent != child:
                needs.setdefault(child, set()).add(parent)
    ordered: dict[str, list[str]] = {}

    def upstream(src: str, seen: set[str]) -> set[str]:
        out = set()
        for p in ordered.get(src, []):
            if p not in seen:
                out |= {p} | upstream(p, seen | {p})
        return out

    for child in sorted(needs):
        for parent in sorted(needs[child]):
            if child not in upstream(parent, {parent}):  # else the edge would close a cycle
                ordered.setdefault(child, []).append(parent)
    return ordered


# ---- which DAG runs which stage ---------------------------------------------------------------------------
@dataclass
class Pipeline:
    """The stages split into DAGs, and what each DAG waits for."""

    stages: list[Stage]
    _outputs: dict[str, list[Dataset]] = field(default_factory=dict, repr=False, compare=False)

    def is_ingestion(self, s: Stage) -> bool:
        return (s.agent == "platform" and s.kind != "train" and bool(s.writes)
                and all(_zone(w) in INGESTION_ZONES for w in s.writes))

    @staticmethod
    def is_dispatch(s: Stage) -> bool:
        return touches(s.reads, OUTBOX) and touches(s.writes, INBOX)

    def dag_of(self, s: Stage) -> str:
        if self.is_dispatch(s):
            return EVENTS_DAG
        if s.kind == "train":
            return TRAIN_DAG
        if self.is_ingestion(s):
            return INGEST_DAG
        return agent_dag_id(s.agent)

    @cached_property
    def by_dag(self) -> dict[str, list[Stage]]:
        out: dict[str, list[Stage]] = {}
        for s in self.stages:  # already in run order
            out.setdefault(self.dag_of(s), []).append(s)
        return out

    @property
    def ingestion(self) -> list[Stage]:
        return self.by_dag.get(INGEST_DAG, [])

    @property
    def dispatch(self) -> list[Stage]:
        return self.by_dag.get(EVENTS_DAG, [])

    @property
    def training(self) -> dict[str, list[Stage]]:
        out: dict[str, list[Stage]] = {}
        for s in self.by_dag.get(TRAIN_DAG, []):
            out.setdefault(s.agent, []).append(s)
        return out

    def agent_dags(self) -> dict[str, list[Stage]]:
        """``{agent: stages}`` of the per-agent DAGs (transform and scoring stages, in run order)."""
        return {a: self.by_dag[agent_dag_id(a)] for a in sorted({s.agent for s in self.stages})
                if agent_dag_id(a) in self.by_dag}

    @cached_property
    def claimed(self) -> dict[str, str]:
        """Dataset → the stage that names it exactly in its writes."""
        out: dict[str, str] = {}
        for s in self.stages:
            for w in s.writes:
                if not is_pattern(w):
                    out.setdefault(w, s.name)
        return out

    def outputs(self, s: Stage) -> list[Dataset]:
        """The declared datasets a stage publishes: those it names, plus those its wildcards match that
        its agent owns and no other stage names (``quality`` writes ``processed.*``, but CPI's
        ``processed.client_profitability_monthly`` is CPI's)."""
        if s.name not in self._outputs:
            patterns = [w for w in s.writes if is_pattern(w)]
            self._outputs[s.name] = [
                ds for name, ds in schemas.catalog().items()
                if name in s.writes or (any(fnmatch.fnmatchcase(name, p) for p in patterns)
                                        and ds.owner == s.agent and self.claimed.get(name, s.name) == s.name)]
        return self._outputs[s.name]

    def writes(self, dag_id: str) -> list[Dataset]:
        seen: dict[str, Dataset] = {}
        for s in self.by_dag.get(dag_id, []):
            seen.update((d.qualified_name, d) for d in self.outputs(s))
        return list(seen.values())

    def reads(self, dag_id: str) -> list[Dataset]:
        return resolve(r for s in self.by_dag.get(dag_id, []) for r in s.reads)

    @cached_property
    def producers(self) -> dict[str, str]:
        """Dataset qualified name → the DAG that writes it (the first one, in run order)."""
        out: dict[str, str] = {}
        for dag_id in self.by_dag:
            for ds in self.writes(dag_id):
                out.setdefault(ds.qualified_name, dag_id)
        return out

    @cached_property
    def _waits(self) -> dict[str, dict[str, str]]:
        """DAG → {upstream dataset → producing DAG} it is scheduled on. Candidates come in run order of
        the stages that read them; one whose producer already waits, directly or not, for the reading
        DAG is left out (that dataset is then read as last published), so schedules never deadlock."""
        waits: dict[str, dict[str, str]] = {dag_id: {} for dag_id in self.by_dag}

        def upstream(dag_id: str, seen: frozenset[str]) -> set[str]:
            out: set[str] = set()
            for producer in set(waits[dag_id].values()) - seen:
                out |= {producer} | upstream(producer, seen | {producer})
            return out

        for s in self.stages:
            dag_id = self.dag_of(s)
            if dag_id == TRAIN_DAG:  # weekly on the clock, whatever its inputs do
                continue
            own = {d.qualified_name for d in self.writes(dag_id)}
            for ds in resolve(s.reads):
                producer = self.producers.get(ds.qualified_name)
                if (ds.zone_root == "events" or ds.qualified_name in own or producer in (None, TRAIN_DAG)
                        or ds.qualified_name in waits[dag_id]):
                    continue
                if dag_id not in upstream(producer, frozenset({producer})):
                    waits[dag_id][ds.qualified_name] = producer
        return waits

    def inputs(self, dag_id: str) -> list[Dataset]:
        """Upstream datasets whose asset events schedule ``dag_id`` (data-aware): what its stages read
        and another DAG publishes; never events (they trigger through the inbox) nor models."""
        return [schemas.get(name) for name in sorted(self._waits.get(dag_id, {}))]

    def reads_inbox(self, dag_id: str) -> bool:
        return any(touches(s.reads, INBOX) for s in self.by_dag.get(dag_id, []))


# ---- dates of a run ---------------------------------------------------------------------------------------
def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def resolve_dates(params: Mapping[str, Any] | None = None, triggering_dates: Iterable[Any] = (),
                  interval_start: datetime | None = None, interval_end: datetime | None = None,
                  today: date | None = None) -> list[date]:
    """The export days a DAG run processes, first match wins:

    1. ``start``/``end`` run parameters (a manual trigger or ``airflow dags test -c``);
    2. the days carried by the asset events that triggered the run (their union);
    3. the run's data interval: a scheduled or backfilled daily run processes the day its interval
       covers, i.e. its logical date, exactly as ``msp run --date`` would;
    4. yesterday (UTC), like ``msp run`` without dates.
    """
    from lakehouse.context import date_range

    params = params or {}
    start, end = params.get("start"), params.get("end")
    if start or end:
        return date_range(_as_date(start or end), _as_date(end or start))
    days = sorted({_as_date(d) for d in triggering_dates})
    if days:
        return days
    if interval_start is not None:
        last = interval_end - timedelta(microseconds=1) if interval_end and interval_end > interval_start \
            else interval_start
        return date_range(_as_date(interval_start), _as_date(last))
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
        if self._last.get(description.split(" ")[0]) != step:
            self._last[description.split(" ")[0]] = step
            self.log.info("%s: %d/%d", description, completed, total)


class StageFailed(RuntimeError):
    """The stage reported a failure; the message names it and where its run report is."""


class _PublishLog:
    """The lake's ``on_publish`` callback, recording which partitions a run published."""

    def __init__(self, inner=None):
        self.inner = inner
        self.published: dict[str, set[str]] = {}

    def __call__(self, ds: Dataset, key: str, version_path: str) -> None:
        self.published.setdefault(ds.qualified_name, set()).add(key)
        if self.inner is not None:
            self.inner(ds, key, version_path)


def _ids(lake, ds: Dataset, keys: Iterable[str], column: str) -> set[tuple]:
    """(group, dt, primary key...) of the published rows of some partitions."""
    keys = sorted(keys)
    if not keys:
        return set()
    table = lake.read_arrow(ds, keys)
    cols = [column, "dt", *[c for c in ds.primary_key if c not in (column, "dt")]]
    return set(zip(*[table.column(c).to_pylist() for c in cols], strict=True))


def run_stage(settings: Settings, stage: str, dates: Sequence[date], *, params: Mapping[str, Any] | None = None,
              run_id: str | None = None, observer: StageObserver | None = None) -> dict[str, Any]:
    """Run one registered stage for ``dates`` (in this process) and return its result (also written to
    ``<lake>/_meta/stage-results/<run id>.json``). A failure of the stage is in the result, not raised:
    call :func:`check`.

    For the watched event datasets the result counts the *new* rows per group (event type, target
    agent): rows of the partitions this run published whose keys were not there before in the run's
    days (a rerun that writes the same deterministic event ids counts none).
    """
    from lakehouse.catalog import publish_hook
    from lakehouse.context import RunContext
    from lakehouse.lake import Lake, parse_partition_key
    from lakehouse.runner import run_pipeline
    from lakehouse.stages import discover

    registry = discover()
    if stage not in registry:
        raise StageFailed(f"unknown stage {stage!r}; registered: {sorted(registry)}")
    days = {d.isoformat() for d in dates}
    published = _PublishLog(publish_hook(settings))
    lake = Lake(settings.lake_root, keep_versions=int(settings.get("lake.keep_versions")), on_publish=published)
    watched = {name: col for name, col in WATCHED.items() if touches(registry[stage].writes, name)}
    before = {}
    for name, col in watched.items():
        ds = schemas.get(name)
        before[name] = _ids(lake, ds, [k for k in lake.partitions(ds) if parse_partition_key(k).get("dt") in days], col)

    def context_factory(settings_, dates_, **kwargs):
        return RunContext.create(settings_, dates_, lake=lake, **kwargs)

    summary = run_pipeline(settings, list(dates), stages=[stage], params=dict(params or {}), run_id=run_id,
                           observer=observer or LogObserver(), context_factory=context_factory)
    new: dict[str, dict[str, dict[str, Any]]] = {}
    for name, col in watched.items():
        ds = schemas.get(name)
        groups: dict[str, dict[str, Any]] = {}
        for group, dt, *_ in _ids(lake, ds, published.published.get(name, ()), col) - before[name]:
            g = groups.setdefault(group, {"rows": 0, "dates": set()})
            g["rows"] += 1
            g["dates"].add(dt)
        new[name] = {g: {"rows": v["rows"], "dates": sorted(v["dates"])} for g, v in sorted(groups.items())}
    errors = [f"{s.name}: {s.error}" for s in summary.stages if s.status != "ok"]
    result = {
        "run_id": summary.run_id, "stage": stage, "dates": sorted(days), "ok": summary.ok, "errors": errors,
        "seconds": summary.seconds, "counts": summary.counts, "new": new, "warnings": len(summary.warnings),
        "params": dict(params or {}),
    }
    lake.write_text(f"{RESULTS_DIR}/{summary.run_id}.json", json.dumps(result, indent=1, sort_keys=True))
    return result


def read_stage_result(settings: Settings, run_id: str) -> dict[str, Any]:
    """The result a stage run (e.g. a Glue job) left in the lake."""
    from lakehouse.lake import Lake

    text = Lake(settings.lake_root).read_text(f"{RESULTS_DIR}/{run_id}.json")
    if text is None:
        raise StageFailed(f"no stage result for run {run_id} under {settings.lake_root}/{RESULTS_DIR}/ "
                          "(the job did not finish, or wrote to another lake root)")
    return json.loads(text)


def check(result: Mapping[str, Any]) -> None:
    if not result["ok"]:
        raise StageFailed(f"stage {result['stage']} failed for {', '.join(result['dates'])}: "
                          f"{'; '.join(result['errors'])} (run report: _meta/runs/{result['run_id']}.json)")


def outlet_extra(result: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """What an asset event of ``dataset`` carries: rows written (0 when the stage wrote nothing new
    for it, e.g. files already ingested), partitions, and the days, which downstream runs process."""
    c = result["counts"].get(dataset, {})
    return {"rows": c.get("rows_out", 0), "rows_in": c.get("rows_in", 0), "quarantined": c.get("quarantined", 0),
            "partitions": c.get("partitions", 0), "dates": list(result["dates"]), "run_id": result["run_id"],
            "stage": result["stage"]}


# ---- AWS Glue ---------------------------------------------------------------------------------------------
GLUE_ENTRY_SCRIPT = "glue_entry.py"
#: Job-run arguments of :func:`glue_arguments`; ``lakehouse.glue_entry`` also reads the job's default
#: arguments the infra stack sets (``--lake_root``, ``--landing_root``, ``--msp_profile``,
#: ``--glue_database_prefix``), which these override.
GLUE_ARGUMENTS = ("stage", "dates", "lake_root", "landing_root", "run_id", "params", "msp_profile")
GLUE_JOB = "stage-runner"


def glue_job_name(settings: Settings) -> str:
    """The one Glue job that runs every stage (infra/stack.py creates it): ``<platform.glue_job_prefix>
    stage-runner``, e.g. ``msp-dev-stage-runner`` with ``MSP_GLUE_JOB_PREFIX=msp-dev-``."""
    return f"{settings.get('platform.glue_job_prefix')}{GLUE_JOB}"


def glue_script_location(settings: Settings) -> str:
    """Where the job's entry script lives: ``<platform.glue_scripts_location>/glue_entry.py``."""
    from lakehouse.config import ConfigError

    base = str(settings.get("platform.glue_scripts_location") or "")
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


# ---- command line ---------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lakehouse.orchestration",
                                     description="Orchestration helpers: the stage manifest the DAGs read.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("manifest", help="write (or --check) the stage manifest from the live registry")
    p.add_argument("--out", type=Path, default=DEFAULT_MANIFEST)
    p.add_argument("--check", action="store_true", help="exit 1 when the manifest differs from the registry")
    args = parser.parse_args(argv)
    manifest = build_manifest()
    if args.check:
        current = _read_json(args.out) or {}
        if current.get("stages") != manifest["stages"]:
            print(f"{args.out} is out of date: run `python -m lakehouse.orchestration manifest`", file=sys.stderr)
            return 1
        return 0
    write_manifest(args.out, manifest)
    print(f"wrote {args.out}: {len(manifest['stages'])} stages, fingerprint {manifest['fingerprint']}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The lake's Great Expectations project: a file Data Context with a suite, a validation definition and a
Checkpoint for every audited dataset, and Data Docs a person can open.

Where it is (a local lake; see ``docs/quality.md`` for S3)::

    <lake>/_meta/quality/gx/great_expectations.yml        the Data Context (pandas data source "lake")
    <lake>/_meta/quality/gx/expectations/<dataset>.json   one suite per audited dataset
    <lake>/_meta/quality/gx/validation_definitions/...    one validation definition per dataset
    <lake>/_meta/quality/gx/checkpoints/<dataset>         one Checkpoint per dataset, action: update Data Docs
    <lake>/_meta/quality/gx/uncommitted/validations/...   validation results (the last KEEP_RESULTS per suite)
    <lake>/_meta/quality/data_docs/index.html             Data Docs (`msp quality` prints this path)

The suites are generated, when a dataset is first audited in a process, from what the repository declares
(``schemas/`` baseline and ``expectations/<dataset>.json`` business rules): the JSON files in the repository
stay the one source, and a changed rule rewrites the dataset's suite, validation definition and Checkpoint
(their fingerprint is kept in the suite's ``meta``). A GX user opens the project as any other::

    import great_expectations as gx
    context = gx.get_context(mode="file", project_root_dir="<lake>/_meta/quality")
    context.checkpoints.get("processed.tickets").run(batch_parameters={"dataframe": frame})

**Cost, measured on this 2-core machine** (GX 1.24; see docs/quality.md): ``import great_expectations``
2.3-5.4 s once per process; opening the context 0.05-0.15 s once; a Checkpoint run on a daily batch
0.05-0.08 s of validation, plus 0.2-0.5 s when its Update Data Docs action renders the validation page and
rebuilds the index. So the platform runs each Checkpoint with its action *deferred*: within
:meth:`GxProject.deferred_docs` (the quality stage wraps all its datasets in it) the action's request to
rebuild Data Docs is recorded, and the pages of every validation of the stage are built once at its end,
with one index. Outside it (an agent's ``ctx.write``) the action runs as GX runs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from lakehouse.lake import Lake

log = logging.getLogger(__name__)
PROJECT_DIR = "_meta/quality"          #: GX puts its project in <this>/gx
DOCS_DIR = "_meta/quality/data_docs"   #: the Data Docs site
SITE = "lake"
DATASOURCE = "lake"
BATCH = "staged"
#: Validation results kept per suite (the last five runs'; every run's outcome stays in its run report). The
#: Data Docs index lists them all and reads each one to do so: with ten per suite it took 1.9 s of a daily run
#: on the small lake, the longest part of its Data Docs build.
KEEP_RESULTS = 5
#: BASIC: counts and a few unexpected values per expectation; SUMMARY costs 1.1-1.5x, BOOLEAN_ONLY 0.6x (no
#: counts in Data Docs). Measured on tickets (55 expectations, 20 with a row condition): 1.4 s of CPU.
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 5}
_LOCK = threading.Lock()
_PROJECTS: dict[tuple[str, bool], GxProject] = {}
_EPHEMERAL: Any = None


def _quiet() -> None:
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    # this module sets its own logger to INFO at import, which the parent's level does not override
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


def import_gx():
    """``great_expectations``, imported once and quietly (2-5 s: only when a validation runs).

    GX imports PySpark (with ``pyspark.ml``) when it is installed, to validate Spark frames: about 1.2 s of
    this import. The lake's Checkpoints validate pandas batches, so unless the process already runs Spark, GX
    is imported as if PySpark were absent; ``import pyspark`` works as usual afterwards."""
    import sys

    if "great_expectations" in sys.modules:
        return sys.modules["great_expectations"]
    _quiet()
    hide = "pyspark" not in sys.modules
    if hide:
        sys.modules["pyspark"] = None  # type: ignore[assignment] - `import pyspark` raises ImportError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import great_expectations as gx
    finally:
        if hide:
            sys.modules.pop("pyspark", None)
    _quiet()
    return gx


@contextlib.contextmanager
def memoized_configurations() -> Iterator[None]:
    """Within this block, each GX ``Expectation`` builds its ``configuration`` once.

    GX 1.x rebuilds an expectation's ``ExpectationConfiguration`` (a pydantic ``dict()`` and deep copies) on
    every read of the property, and its validator reads it once per domain, success and runtime key of every
    metric it plans: about 100 times per expectation per validation, measured at 35 % of a Checkpoint run
    on a daily batch. A validation reads its expectations and never changes them, so one configuration per
    expectation is kept for the block (the block is one Checkpoint run; tests/quality/test_gx.py
    shows identical results with and without it). Where GX's class no longer has the property, the block
    does nothing. The block also names GX's metrics without its generic conversion (:func:`_plain_ids`)."""
    from great_expectations.expectations.expectation import Expectation

    original = Expectation.__dict__.get("configuration")
    if not isinstance(original, property) or original.fget is None:
        yield
        return
    build = original.fget
    kept: dict[int, tuple[Any, Any]] = {}

    def configuration(self):
        got = kept.get(id(self))
        if got is None or got[0] is not self:  # an id reused by a new object is not the same expectation
            got = kept[id(self)] = (self, build(self))
        return got[1]

    with _patched({(Expectation, "configuration"): property(configuration, doc=original.__doc__),
                   **_plain_ids()}):
        yield


def _is_plain(value: Any) -> bool:
    """Whether GX's ``convert_to_json_serializable`` would return this value as it is (exact built-in types:
    strings, integers, booleans, None, numbers that are not NaN, and lists, tuples and string-keyed dicts
    of those)."""
    t = type(value)
    if value is None or t is str or t is int or t is bool:
        return True
    if t is float:
        return value == value  # NaN becomes None
    if t is dict:
        return all(type(k) is str and _is_plain(v) for k, v in value.items())
    if t is list or t is tuple:
        return all(_is_plain(v) for v in value)
    return False


def _plain_ids() -> dict[tuple[type, str], Any]:
    """``IDDict.to_id`` without GX's generic conversion where the values are plain (:func:`_is_plain`).

    GX names each metric it plans by an md5 of its keyword arguments, converted first by
    ``convert_to_json_serializable``, a chain of type checks per value: 20 % of a daily Checkpoint's
    validation. For plain values that conversion returns them unchanged (tuples as lists, which ``json``
    writes alike), so the digest is the same; anything else goes to GX's own method."""
    try:
        from great_expectations.core.id_dict import IDDict
    except ImportError:  # pragma: no cover - another GX
        return {}
    original = IDDict.__dict__.get("to_id")
    if not callable(original):  # pragma: no cover - another GX
        return {}

    def to_id(self, id_keys=None, id_ignore_keys=None):
        keys = set(self.keys() if id_keys is None else id_keys) - set(
            self._id_ignore_keys if id_ignore_keys is None else id_ignore_keys)
        if len(keys) < 2 or not all(type(k) is str and _is_plain(self[k]) for k in keys):
            return original(self, id_keys, id_ignore_keys)
        return hashlib.md5(json.dumps({k: self[k] for k in keys}, sort_keys=True).encode("utf-8"),
                           usedforsecurity=False).hexdigest()

    return {(IDDict, "to_id"): to_id}


_MEMO_LOCK = threading.RLock()


@contextlib.contextmanager
def _patched(attributes: dict[tuple[type, str], Any]) -> Iterator[None]:
    """Set these class attributes of GX for the block, and put GX's own back after it. One block at a time
    in a process (the classes are shared by its threads)."""
    with _MEMO_LOCK:
        originals = {key: key[0].__dict__[key[1]] for key in attributes}
        for (cls, name), value in attributes.items():
            setattr(cls, name, value)
        try:
            yield
        finally:
            for (cls, name), original in originals.items():
                setattr(cls, name, original)


@contextlib.contextmanager
def trusted_freshness(checkpoint: Any) -> Iterator[None]:
    """Within this block, GX takes this Checkpoint and its validation definitions as saved and unchanged.

    Before it validates, GX 1.x checks that a Checkpoint, each of its validation definitions, their suites and
    batch definitions equal what its stores hold, reading and parsing each from its file again: a fifth of a
    daily Checkpoint run. A Checkpoint given to :meth:`GxProject.run` was just read from the project, or
    written to it, for the suite configuration it runs, and is never changed in between (it is found again by
    the fingerprint of that configuration, see :meth:`GxProject.checkpoint`); other objects are checked as
    GX does. Where GX's classes no longer have these methods, the block does nothing."""
    from great_expectations.checkpoint.checkpoint import Checkpoint
    from great_expectations.core.validation_definition import ValidationDefinition

    try:
        from great_expectations.core.freshness_diagnostics import (
            CheckpointFreshnessDiagnostics,
            ValidationDefinitionFreshnessDiagnostics,
        )
    except ImportError:  # pragma: no cover - another GX
        yield
        return
    checks = {Checkpoint: CheckpointFreshnessDiagnostics,
              ValidationDefinition: ValidationDefinitionFreshnessDiagnostics}
    originals = {cls: cls.__dict__.get("is_fresh") for cls in checks}
    if not all(callable(f) for f in originals.values()):  # pragma: no cover - another GX
        yield
        return
    trusted = {id(checkpoint): checkpoint}
    trusted.update({id(vd): vd for vd in checkpoint.validation_definitions})

    def patched(cls):
        original, diagnostics = originals[cls], checks[cls]

        def is_fresh(self):
            if trusted.get(id(self)) is self and self.id:
                return diagnostics(errors=[])
            return original(self)

        return is_fresh

    with _patched({(cls, "is_fresh"): patched(cls) for cls in checks}):
        yield


def gx_context():
    """One ephemeral GX context per process, for validations that keep no record (tests, agent checks)."""
    global _EPHEMERAL
    if _EPHEMERAL is None:
        gx = import_gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        _EPHEMERAL = ctx
    return _EPHEMERAL


def expectation_suite(config: dict[str, Any], name: str | None = None):
    """A GX ``ExpectationSuite`` from a suite configuration (what :meth:`Suite.gx_config` returns); refuses
    any expectation GX would silently drop. Each rule's description becomes the expectation's own
    ``description``, which Data Docs show."""
    import_gx()
    from great_expectations.core.expectation_suite import ExpectationSuite

    expectations = []
    for e in config["expectations"]:
        e = dict(e)
        description = (e.get("meta") or {}).get("description")
        if description and not e.get("description"):
            e["description"] = f"{e['meta']['rule']}: {description}"
        expectations.append(e)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        suite = ExpectationSuite(name=name or config["name"], expectations=expectations,
                                 meta=dict(config.get("meta") or {}))
    if len(suite.expectations) != len(config["expectations"]):
        kept = {e.meta.get("rule") for e in suite.expectations}
        lost = [e["meta"]["rule"] for e in config["expectations"] if e["meta"]["rule"] not in kept]
        raise ValueError(f"{config['name']}: Great Expectations refused expectation(s) {lost}")
    return suite


def _yml(docs_relative: str) -> str:
    """The Data Context's configuration: GX's default stores, one Data Docs site in the lake's _meta."""
    return f"""# The lake's Great Expectations project, generated by lakehouse/quality/gx.py (see docs/quality.md).
# Suites, validation definitions and checkpoints are rewritten from schemas/ and expectations/ when they change.
config_version: 4.0
config_variables_file_path: uncommitted/config_variables.yml
plugins_directory: plugins/
stores:
  expectations_store:
    class_name: ExpectationsStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: expectations/
  validation_results_store:
    class_name: ValidationResultsStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: uncommitted/validations/
  checkpoint_store:
    class_name: CheckpointStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      suppress_store_backend_id: true
      base_directory: checkpoints/
  validation_definition_store:
    class_name: ValidationDefinitionStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: validation_definitions/
expectations_store_name: expectations_store
validation_results_store_name: validation_results_store
checkpoint_store_name: checkpoint_store
data_docs_sites:
  {SITE}:
    class_name: SiteBuilder
    show_how_to_buttons: false
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: {docs_relative}
    site_index_builder:
      class_name: DefaultSiteIndexBuilder
analytics_enabled: false
progress_bars:
  globally: false
  metric_calculations: false
fluent_datasources:
  {DATASOURCE}:
    type: pandas
    assets: {{}}
"""


class GxProject:
    """The file Data Context of one lake, with a Checkpoint per audited dataset (created on first use)."""

    def __init__(self, root: Path, docs: Path, data_docs: bool = True):
        self.root = root                      # project root: GX keeps its files in root/gx
        self.docs = docs
        self.data_docs = data_docs
        self._context: Any = None
        self._checkpoints: dict[str, tuple[str, Any]] = {}
        self._deferred: list[Any] | None = None
        self._depth = 0
        self._locked = False

    @property
    def gx_dir(self) -> Path:
        return self.root / "gx"

    @property
    def index(self) -> Path:
        """The Data Docs entry page."""
        return self.docs / "index.html"

    # ---- the context -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Concurrent Airflow tasks share the project: one writes its configuration or Data Docs at a time."""
        import fcntl

        if self._locked:  # re-entered by this process (opening the context while holding it)
            yield
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".gx.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            self._locked = True
            try:
                yield
            finally:
                self._locked = False
                fcntl.flock(fh, fcntl.LOCK_UN)

    @property
    def context(self):
        if self._context is None:
            gx = import_gx()
            with self._file_lock():
                config = self.gx_dir / "great_expectations.yml"
                if not config.exists():
                    self.gx_dir.mkdir(parents=True, exist_ok=True)
                    config.write_text(_yml(os.path.relpath(self.docs, self.gx_dir) + "/"), encoding="utf-8")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._context = gx.get_context(mode="file", project_root_dir=str(self.root))
        return self._context

    # ---- suites, validation definitions and checkpoints ---------------------------------------------
    def checkpoint(self, name: str, config: dict[str, Any]):
        """The Checkpoint of a dataset, (re)written when its suite configuration changed."""
        fingerprint = hashlib.sha256(json.dumps([config, self.data_docs, _gx_version()], sort_keys=True,
                                                default=str).encode()).hexdigest()[:20]
        cached = self._checkpoints.get(name)
        if cached and cached[0] == fingerprint:
            return cached[1]
        checkpoint = self._find(name, fingerprint)
        if checkpoint is None:
            with self._file_lock():
                # another process (a stage worker of the run, an Airflow task) may have written the project
                # since this one opened it: its Data Context would not know that dataset's asset, and writing
                # the configuration from it would drop the other's assets
                self._context = None
                checkpoint = self._find(name, fingerprint) or self._write(name, config, fingerprint)
        self._checkpoints[name] = (fingerprint, checkpoint)
        return checkpoint

    def _find(self, name: str, fingerprint: str):
        """The dataset's Checkpoint as the project has it, if it was written for this suite configuration."""
        with contextlib.suppress(Exception):
            found = self.context.checkpoints.get(name)
            if found.validation_definitions[0].suite.meta.get("msp_fingerprint") == fingerprint:
                return found
        return None

    def _write(self, name: str, config: dict[str, Any], fingerprint: str):
        gx = import_gx()
        from great_expectations.checkpoint import UpdateDataDocsAction

        ctx = self.context
        for store in (ctx.checkpoints, ctx.validation_definitions, ctx.suites):
            with contextlib.suppress(Exception):
                store.delete(name)
        suite = expectation_suite(config, name)
        suite.meta["msp_fingerprint"] = fingerprint
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            suite = ctx.suites.add(suite)
            source = ctx.data_sources.get(DATASOURCE)
            try:
                asset = source.get_asset(name)
            except LookupError:
                asset = source.add_dataframe_asset(name)
            try:
                batch = asset.get_batch_definition(BATCH)
            except KeyError:
                batch = asset.add_batch_definition_whole_dataframe(BATCH)
            definition = ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
            actions = [UpdateDataDocsAction(name="update_data_docs", site_names=[SITE])] if self.data_docs else []
            return ctx.checkpoints.add(gx.Checkpoint(name=name, validation_definitions=[definition], actions=actions,
                                                     result_format=RESULT_FORMAT))

    def run(self, name: str, config: dict[str, Any], frame: pd.DataFrame, run_name: str):
        """Run the dataset's Checkpoint on a staged batch; returns GX's validation result."""
        from great_expectations.core.run_identifier import RunIdentifier

        checkpoint = self.checkpoint(name, config)
        self._defer()
        with warnings.catch_warnings(), memoized_configurations(), trusted_freshness(checkpoint):
            warnings.simplefilter("ignore")
            result = checkpoint.run(batch_parameters={"dataframe": frame},
                                    run_id=RunIdentifier(run_name=run_name, run_time=datetime.now(UTC)))
        (identifier, validation), = result.run_results.items()
        validation.meta["msp_result_key"] = identifier.to_tuple()
        return validation

    # ---- Data Docs ---------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def deferred_docs(self) -> Iterator[None]:
        """Within this block, Checkpoints' Update Data Docs actions are recorded, and the pages they ask for
        are built once when the block ends (with one index), instead of once per Checkpoint. Nothing of GX is
        imported unless a Checkpoint runs in the block."""
        if self._depth == 0:
            self._deferred = []
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                pending, self._deferred = self._deferred or [], None
                if self._context is not None and "build_data_docs" in vars(self._context):
                    del self._context.build_data_docs
                if pending and self.data_docs:
                    self.build_docs(pending)

    def _defer(self) -> None:
        """While deferring, this context's ``build_data_docs`` (what the action calls) only records."""
        ctx = self.context
        if self._deferred is None or "build_data_docs" in vars(ctx):
            return
        pending = self._deferred

        def record(site_names=None, resource_identifiers=None, dry_run=False, build_index=True):
            pending.extend(resource_identifiers or [])
            return {}

        ctx.build_data_docs = record  # an instance attribute: shadows the method of this context only

    def build_docs(self, resource_identifiers: list[Any] | None = None) -> Path:
        """Render Data Docs (only these resources when given) and the index; old results are pruned first."""
        ctx = self.context
        with self._file_lock():
            self.prune()
            unique = list({str(r): r for r in resource_identifiers or []}.values()) or None
            if unique:
                kept = {str(k) for k in ctx.validation_results_store.list_keys()}
                unique = [r for r in unique if "ValidationResultIdentifier" not in type(r).__name__ or str(r) in kept]
                unique = [r for r in unique if not self._suite_page_current(r)] or [_index_only()]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                type(ctx).build_data_docs(ctx, site_names=[SITE], resource_identifiers=unique)
        return self.index

    def _suite_page_current(self, identifier: Any) -> bool:
        """Whether an expectation suite's page is newer than the suite (every Checkpoint run asks for its
        suite's page again; a daily run's suites rarely change, and rendering them was a third of its Data
        Docs build)."""
        if type(identifier).__name__ != "ExpectationSuiteIdentifier":
            return False
        parts = identifier.to_tuple()
        suite = (self.gx_dir / "expectations").joinpath(*parts).with_suffix(".json")
        page = (self.docs / "expectations").joinpath(*parts).with_suffix(".html")
        try:
            return page.stat().st_mtime >= suite.stat().st_mtime
        except OSError:
            return False

    def prune(self, keep: int = KEEP_RESULTS) -> int:
        """Keep the last ``keep`` validation results of each suite (and their pages); returns how many went.

        GX stores a result as ``validations/<suite name split on dots>/<run name>/<run time>/<batch>.json``."""
        base = self.gx_dir / "uncommitted" / "validations"
        if not base.is_dir():
            return 0
        by_suite: dict[tuple[str, ...], list[Path]] = {}
        for path in base.rglob("*.json"):
            rel = path.relative_to(base)
            if len(rel.parts) >= 4:
                by_suite.setdefault(rel.parts[:-3], []).append(rel)
        removed = 0
        for results in by_suite.values():
            results.sort(key=lambda rel: (rel.parts[-2], rel.parts[-3]))  # run time, then run name
            for rel in results[:-keep] if keep else results:
                (base / rel).unlink()
                with contextlib.suppress(FileNotFoundError):
                    (self.docs / "validations" / rel.with_suffix(".html")).unlink()
                removed += 1
        for top in (base, self.docs / "validations"):
            if top.is_dir():
                for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                    with contextlib.suppress(OSError):
                        d.rmdir()
        return removed


def _index_only():
    """A resource no store holds: GX renders every page when given no resources, and only the index when
    given one it cannot find."""
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    return ExpectationSuiteIdentifier(name="msp.nothing_to_render")


def _gx_version() -> str:
    from importlib.metadata import version

    return version("great-expectations")


def project(lake: Lake, data_docs: bool = True, home: Path | None = None) -> GxProject:
    """The GX project of a lake (one per process). A local lake keeps it under ``<lake>/_meta/quality``; an
    S3 lake keeps the project in a local folder (``home``) and its Data Docs in the lake."""
    key = (lake.root, data_docs)
    with _LOCK:
        if key not in _PROJECTS:
            if not lake.local:
                raise NotImplementedError(
                    "the GX project of an S3 lake (Data Docs on S3) is not wired yet: run the audit with "
                    "quality.checkpoint = off on the aws profile, or see docs/quality.md")
            base = Path(lake._small_path(""))
            _PROJECTS[key] = GxProject(base / PROJECT_DIR, base / DOCS_DIR, data_docs)
        return _PROJECTS[key]


def pending_docs() -> dict[str, list[Any]]:
    """The Data Docs pages each deferring project of this process has been asked for, by project (the run's
    stage workers send theirs back to the run, which builds them with its own; see lakehouse/workers.py)."""
    with _LOCK:
        return {f"{root}|{docs}": p._deferred for (root, docs), p in _PROJECTS.items() if p._deferred is not None}


def build_pending_docs() -> int:
    """Build the Data Docs pages every deferring project of this process has been asked for so far, and each
    one's index; returns how many pages were asked for. (The run calls it in a forked process while its last
    stages run; it then clears its own lists, see lakehouse/runner.py.)"""
    with _LOCK:
        projects = [p for p in _PROJECTS.values() if p._deferred]
    asked = 0
    for p in projects:
        asked += len(p._deferred or [])
        if p.data_docs:
            p.build_docs(list(p._deferred or []))
    return asked


def forget_projects() -> None:
    """Drop cached projects (tests that delete a lake)."""
    with _LOCK:
        _PROJECTS.clear()


def remove_project(lake: Lake) -> None:
    """Delete a lake's GX project and Data Docs (they are regenerated on the next audit)."""
    base = Path(lake._small_path(""))
    for d in (base / PROJECT_DIR / "gx", base / DOCS_DIR):
        shutil.rmtree(d, ignore_errors=True)
    forget_projects()

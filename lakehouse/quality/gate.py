"""The quality gate: raw → processed, with every refused row in quarantine and every row accounted for.

For each raw dataset (parents before the datasets that look rows up in them), over all the run's days at
once, as Ibis expressions on the run's engine (DuckDB locally, Spark on AWS Glue):

1. read the run's raw days from the current snapshot; blanks and the declaration's ``null_tokens`` become
   null; each column is read as its declared type (:mod:`lakehouse.quality.compile`);
2. drop exact duplicates (same key and same ``_row_hash`` within a day) and count them;
3. add derived columns and flag every rule of the suite (baseline from the declaration +
   ``expectations/<name>.json``); a row that breaks a ``critical`` rule goes to ``quarantine.<name>`` with
   ``_rules_broken``, the rest to ``processed.<name>``;
4. dataset-level checks may stop the dataset (nothing is published for it, the stage fails after the other
   datasets are done): schema drift (a column whose values in one file mostly fail to read as the declared
   type), a day's row count falling against the day compared, a column's null share jumping. A missing or
   renamed column does not stop the dataset: a CSV file rejected at ingestion for it never reached raw, a
   JSON file whose required key is empty in every row has its rows quarantined (``not_null``); the other
   files and days are published, and when the column is a key column the stage fails at the end naming the
   file (``fail_on_drift``);
5. the audit of write-audit-publish: the dataset's Great Expectations Checkpoint validates the processed
   batch about to be published (with the columns it was decided from); a failed critical expectation means
   the gate let a bad row through, so nothing is published and the stage fails;
6. publish quarantine, then processed, each in ONE Iceberg commit replacing all the run's days;
7. reconcile: per day, raw rows = processed + quarantined + duplicates, checked against the raw table read
   independently (pyarrow, not the engine) and against what the two commits report.

A dataset whose raw snapshot, lookup parents' snapshots, suite, declaration, settings and code are those it
was last gated from for the same days is ``unchanged``: nothing is read or written (its signature is kept in
``_meta/quality/state/<dataset>.json``). Results go to the run ledger (``ctx.count``) and to
``_meta/quality/`` as JSON; the Data Docs of the run's Checkpoints are built once, at the end of the stage.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import schemas
from lakehouse.context import is_in
from lakehouse.lake import Range, day_partitions
from lakehouse.quality import report
from lakehouse.quality.compile import (
    DUP,
    LINEAGE,
    QUARANTINED,
    Layout,
    lookup_table,
    processed_columns,
    tagged_frame,
    typed_frame,
)
from lakehouse.quality.report import DatasetResult
from lakehouse.quality.suite import PASSES_BLOCKING, Derived, Suite, gate_order, load_all
from schemas import Dataset, raw_text_column

if TYPE_CHECKING:  # pragma: no cover
    import ibis
    import pyarrow as pa

    from lakehouse.context import RunContext

log = logging.getLogger(__name__)
DRIFT_REASONS = ("schema drift", "header repeats")
REJECTED = "quarantine.rejected_files"
#: Signatures kept per dataset (one per window of days gated).
KEEP_SIGNATURES = 60


class QualityGateError(RuntimeError):
    """One or more datasets failed the gate; nothing was published for them. ``withheld`` names their
    processed and quarantine tables (the runner still runs the stages that read none of them); None when a
    dataset stopped the stage (``fail_on_drift``), which skips every stage after it."""

    def __init__(self, message: str, withheld: list[str] | None = None):
        super().__init__(message)
        self.withheld = withheld


class ReconciliationError(AssertionError):
    """Rows were lost or invented between raw and the published tables: a bug, never bad data."""


def output_datasets(ds: Dataset) -> tuple[Dataset, Dataset]:
    """(processed, quarantine) of a raw dataset: declared ones win over the derived twins."""
    declared = schemas.catalog()
    if declared.get(ds.qualified_name) is ds:
        return declared[f"processed.{ds.name}"], declared[f"quarantine.{ds.name}"]
    return ds.processed_twin(), ds.quarantine_twin()


@dataclass
class Parents:
    """What the stage's datasets share: the lookup tables of the suites (keys of published parents), built
    once per parent snapshot and cached by the engine (``processed.clients`` is looked up by most datasets),
    and the tables' current snapshots, read from the catalog once and updated by the stage's own commits (a
    catalog read costs 20-80 ms here, and a dataset needs a dozen). A parent re-published in the same run has
    a new snapshot, so its children see the new rows."""

    ctx: RunContext
    resolve: Callable[[str], Dataset] = schemas.get
    cache: dict[tuple, Any] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    snapshots: dict[str, int | None] = field(default_factory=dict)

    def snapshot(self, ds: str | Dataset) -> int | None:
        ds = self.resolve(ds) if isinstance(ds, str) else ds
        if ds.qualified_name not in self.snapshots:
            self.snapshots[ds.qualified_name] = self.ctx.lake.snapshot_id(ds)
        return self.snapshots[ds.qualified_name]

    def write(self, ds: Dataset, rows: pa.Table, days: list[str] | None = None, **kwargs: Any):
        """``ctx.write`` replacing the run's days (or ``days``), remembering the snapshot it committed."""
        replace = self.ctx.date_partitions() if days is None else day_partitions(days)
        result = self.ctx.write(ds, rows, replace=replace, **kwargs)
        if result.snapshot_id is not None:
            self.snapshots[ds.qualified_name] = result.snapshot_id
        return result

    def published(self, ctx: RunContext, datasets: tuple[Dataset, ...]) -> None:
        """Remember the snapshots that the commits of staged writes (``ctx.deferred_writes``) produced."""
        for ds in datasets:
            out = ctx.outputs.get(ds.qualified_name)
            if out is not None and out.get("snapshot_id") is not None:
                self.snapshots[ds.qualified_name] = out["snapshot_id"]

    def table(self, d: Derived) -> ibis.Table:
        parent = self.resolve(d.lookup)
        snap = self.snapshot(parent)
        end = self.ctx.days[-1]
        key = (d.lookup, tuple(d.on.values()), d.value, d.name, snap, None if d.value else end)
        if key not in self.cache:
            # a key counts from the first day its parent exported it, so days after the run's end never matter
            where = {"dt": Range(None, end)} if not d.value and "dt" in parent.partition_by else None
            files = self.ctx.lake.files(parent, where, snap) if snap is not None else []
            source = self.ctx.engine.files(parent, files)
            if where:
                source = source.filter(source.dt <= end)
            self.cache[key] = lookup_table(source, d).cache()
        return self.cache[key]

    def release(self) -> None:
        for t in self.cache.values():
            with contextlib.suppress(Exception):
                t.release()
        self.cache.clear()


# ---- the stage ---------------------------------------------------------------------------------------------
def run(ctx: RunContext) -> None:
    """Raw → processed through the quality gate; refused rows to quarantine with the rules they broke."""
    suites = gate_order(load_all(names=ctx.params.get("datasets"), sources=ctx.params.get("sources")))
    results = gate(ctx, suites)
    failed = [r for r in results if r.status == "failed"]
    stopped = [r for r in results if r.stop and r.status != "failed"]
    messages = []
    if failed:
        messages.append(f"{len(failed)} dataset(s) failed the quality gate and were not published: " +
                        "; ".join(f"{r.dataset}: {r.errors[0]}" for r in failed))
    if stopped:
        messages.append(f"{len(stopped)} dataset(s) published without a file that drifted (fail_on_drift): " +
                        "; ".join(f"{r.dataset}: {r.stop[0]}" for r in stopped))
    if messages:
        # what the stages after the gate must not read; a stop (fail_on_drift) stops them all, as it means to
        withheld = None if stopped else [d.qualified_name for r in failed
                                         for d in output_datasets(schemas.get(f"raw.{r.dataset}"))]
        raise QualityGateError(" | ".join(messages), withheld=withheld)


def parts(ctx: RunContext):
    """The gate's run split into one part per dataset, each after the gated datasets its suite looks rows up
    in (in :func:`gate_order`, which breaks a cycle in name order), so that the workers share the largest
    source's datasets (a day's PSA export is ten of them). None when the run is already narrowed (an Airflow
    task gates one landing source) or there is one dataset."""
    from lakehouse.agents import Part

    if ctx.params.get("sources") or ctx.params.get("datasets"):
        return None
    ordered = gate_order(load_all())
    if len(ordered) < 2:
        return None
    position = {s.dataset.name: i for i, s in enumerate(ordered)}
    out = []
    for i, suite in enumerate(ordered):
        parents = {name for zone, _, name in (q.partition(".") for q in suite.lookups)
                   if zone == "processed" and position.get(name, i) < i}
        out.append(Part(suite.dataset.name, {"datasets": [suite.dataset.name]}, tuple(sorted(parents))))
    return out


def gate(ctx: RunContext, suites: list[Suite], resolve: Callable[[str], Dataset] = schemas.get) -> list[DatasetResult]:
    """Gate several datasets in the given order; failures are recorded, never raised here. The Data Docs of
    all the Checkpoints run are built once, at the end."""
    cfg = ctx.settings.model("quality")
    parents = Parents(ctx, resolve)
    rejected = _rejected_files(ctx, [s.dataset for s in suites])
    results: list[DatasetResult] = []
    docs = contextlib.nullcontext()
    if cfg.checkpoint == "on" and cfg.data_docs == "on" and ctx.lake.local:
        from lakehouse.quality.gx import project

        docs = project(ctx.lake, data_docs=True).deferred_docs()
    t0 = time.perf_counter()
    try:
        with docs:
            for i, suite in enumerate(suites):
                ctx.progress(f"quality {suite.name}", i, len(suites))
                results.append(gate_dataset(ctx, suite, parents, rejected.get(suite.name, [])))
    finally:
        parents.release()
    ctx.progress("quality", len(suites), len(suites))
    audited = [r for r in results if r.audit.get("checkpoint")]
    if audited:
        ctx.count("stage:quality").notes.append(
            f"{len(audited)} Checkpoint(s) in {sum(r.audit.get('seconds', 0) for r in audited):.2f} s; "
            f"gate {time.perf_counter() - t0:.2f} s; Data Docs: {report.data_docs_index(ctx.lake)}")
    return results


def _rejected_files(ctx: RunContext, datasets: list[Dataset]) -> dict[str, list[dict[str, Any]]]:
    """The run's days of ``quarantine.rejected_files``, by dataset (one read for the stage)."""
    ds = schemas.get(REJECTED)
    snap = ctx.lake.snapshot_id(ds)
    if snap is None:
        return {}
    names = sorted({d.name for d in datasets})
    rows = ctx.lake.read_arrow(ds, {"dataset": names, "dt": ctx.days}, snap).to_pylist()
    out: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(rows, key=lambda x: (x["dt"], x["source_file"])):
        out.setdefault(r["dataset"], []).append(r)
    return out


def gate_dataset(ctx: RunContext, suite: Suite, parents: Parents | None = None,
                 rejected: list[dict[str, Any]] | None = None) -> DatasetResult:
    """Gate one raw dataset for the run's days; returns what happened (status failed: nothing published)."""
    own_parents = parents is None
    parents = parents or Parents(ctx)
    ds = suite.dataset
    t0 = time.perf_counter()
    result = DatasetResult(ds.name, ctx.run_id, ctx.days, suite=str(suite.path.name) if suite.path else None,
                           engine=ctx.engine.name)
    try:
        _gate(ctx, suite, parents, result, rejected or [])
    except Exception as exc:  # a bug or an infrastructure error: record it, let the stage fail at the end
        log.error("quality gate of %s failed: %s: %s", ds.name, type(exc).__name__, exc)
        log.info("quality gate of %s: traceback", ds.name, exc_info=True)
        result.fail(f"{type(exc).__name__}: {exc}")
    finally:
        if own_parents:
            parents.release()
    count = ctx.count(f"processed.{ds.name}")
    if result.status == "unchanged":  # nothing new to decide: the published tables and last report stand
        count.notes.append(f"gate: {result.warnings[-1]}")
        return result
    if result.status == "failed":
        parents.failed.add(output_datasets(ds)[0].qualified_name)
        count.notes.append("FAILED the quality gate: " + result.errors[0])
        for e in result.errors:
            ctx.warn(f"quality {ds.name}: {e}")
    elif result.stop:
        count.notes.append("published without a drifted file, the stage fails: " + result.stop[0])
        for e in result.stop:
            ctx.warn(f"quality {ds.name}: {e}")
    result.seconds["total"] = round(time.perf_counter() - t0, 3)
    result.generated_at = datetime.now(UTC).isoformat(timespec="seconds")
    report.save(ctx.lake, result)
    return result


def _gate(ctx: RunContext, suite: Suite, parents: Parents, result: DatasetResult,
          rejected: list[dict[str, Any]]) -> None:
    cfg = ctx.settings.model("quality")
    ds = suite.dataset
    if ds.partition_by != ("dt",):
        raise ValueError(f"{ds.qualified_name}: the quality gate needs raw tables partitioned by dt")
    processed, quarantine = output_datasets(ds)
    days = ctx.days
    broken_parents = [q for q in suite.lookups if q in parents.failed]
    if broken_parents:
        result.fail(f"looks rows up in {', '.join(broken_parents)}, which failed the gate in this run; "
                    "gating now would quarantine good rows as orphans")
        return

    snap = parents.snapshot(ds)
    ctx.consumed.setdefault(ds.qualified_name, snap)
    signature = input_signature(ctx, suite, snap, {q: parents.snapshot(q) for q in suite.lookups}, rejected)
    state = _load_state(ctx, ds)
    key = _days_key(days)
    previous = (state.get("runs") or {}).get(key)
    if (ctx.settings.get("platform.skip_unchanged") and previous and previous.get("signature") == signature
            and all(parents.snapshot(d) == previous.get("outputs", {}).get(d.qualified_name)
                    for d in (processed, quarantine))):
        result.status = "unchanged"
        result.warnings.append(f"raw snapshot, parents, suite, settings and code unchanged since run "
                               f"{previous.get('run_id')}: not gated again")
        return

    t = time.perf_counter()
    compared = _compared_days(suite, days)
    raw_rows = _raw_rows(ctx, ds, snap, sorted(set(days) | set(compared)))
    present = {d: n for d, n in raw_rows.items() if d in days and n}
    _file_checks(ds, rejected, cfg, result)
    if not present:
        if _holds_rows(ctx, parents, processed, days) or _holds_rows(ctx, parents, quarantine, days):
            _publish_empty(parents, processed, quarantine, result)  # the days' exports are gone: so are their rows
        elif result.status != "failed":
            result.status = "no_data"
            result.warnings.append("no raw rows for the run's days: nothing to gate")
        _remember(ctx, parents, ds, state, key, signature, processed, quarantine, result)
        return
    _row_count_check(suite, raw_rows, cfg, result)

    # ---- a month at a time: the engine's tagged frame, the audit, the staged outputs ---------------------------
    from lakehouse.quality.audit import AuditFailed, AuditResult, audit_batch, gated_suite_config

    config = gated_suite_config(processed, suite)
    stats: list[dict[str, Any]] = []
    samples: dict[str, list[dict[str, Any]]] = {}
    audits: list[AuditResult] = []
    written: dict[str, int] = {}
    refused_written: dict[str, int] = {}
    seconds = dict.fromkeys(("engine", "checks", "audit", "publish"), 0.0)
    seconds["engine"] = time.perf_counter() - t
    so_far: list[str] = []
    flags = list(Layout(suite).flags.values())

    def final_checks() -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
        """The dataset checks over all the run's days, recorded in the result."""
        per_day, flag_totals = _reconcile_input(stats, raw_rows, days, suite, result)
        _retype_check(stats, suite, cfg, result)
        _null_share_check(ctx, suite, snap, per_day, raw_rows, cfg, result)
        _rule_results(suite, flag_totals, result)
        for rule in result.rules:
            rule["samples"] = samples.get(rule["id"], [])
        return per_day, flag_totals

    checked = None
    try:
        # the gate reads none of its outputs: a staged write may start from the table as loaded
        with ctx.deferred_writes(fresh=False):
            spans = _spans(ctx, days, raw_rows)
            for i, span in enumerate(spans):
                so_far += span
                with_rows = [d for d in span if present.get(d)]
                t = time.perf_counter()
                if with_rows:
                    files = ctx.lake.files(ds, {"dt": with_rows}, snap)
                    raw = ctx.engine.files(ds, files)
                    frame = _tagged(ctx, suite, raw.filter(is_in(raw.dt, with_rows)), parents)
                    span_stats = _file_stats(frame, suite)
                    stats += span_stats
                    if any(s[f] for s in span_stats for f in flags):  # some rule failed: show a few rows
                        for rule, rows in _samples(frame, suite, cfg.sample_failing_rows).items():
                            kept = samples.setdefault(rule, [])
                            kept += rows[: cfg.sample_failing_rows - len(kept)]
                    good, refused = _outputs(frame, suite)
                    del frame
                else:  # no raw rows on these days any more: their published rows go
                    good, refused = processed.arrow_schema().empty_table(), quarantine.arrow_schema().empty_table()
                seconds["engine"] += time.perf_counter() - t
                t = time.perf_counter()
                if with_rows and result.status != "failed" and i == len(spans) - 1:
                    checked = final_checks()  # the last batch: the checks of the whole run, before its audit
                elif with_rows and result.status != "failed":  # the checks so far, before anything is audited
                    probe = DatasetResult(ds.name, ctx.run_id, so_far)
                    per_day, _ = _reconcile_input(stats, raw_rows, so_far, suite, probe)
                    _retype_check(span_stats, suite, cfg, probe)
                    _null_share_check(ctx, suite, snap, per_day, raw_rows, cfg, probe)
                    if probe.status == "failed":
                        result.status = "failed"  # the checks of the whole run say why
                seconds["checks"] += time.perf_counter() - t
                if result.status == "failed":  # nothing will be published: the rest is only counted and checked
                    continue
                t = time.perf_counter()
                if with_rows:
                    try:
                        audits.append(audit_batch(ctx, processed, good, config=config))
                    except AuditFailed as exc:
                        result.fail(f"the Great Expectations audit of the batch to publish failed (a bug of the "
                                    f"gate, which let these rows through): {exc}")
                        raise _Withdrawn from None
                seconds["audit"] += time.perf_counter() - t
                t = time.perf_counter()
                good, refused = _sorted(processed, good, refused)
                # quarantine first: consumers never see a new processed day whose refused rows are not recorded
                refused_written.update(parents.write(quarantine, refused, days=span).partitions)
                written.update(parents.write(processed, good, days=span, audit=False).partitions)  # audited above
                seconds["publish"] += time.perf_counter() - t
            t = time.perf_counter()
            if checked is None:  # the last batch had no rows, or an earlier one failed a check
                checked = final_checks()
            per_day, _ = checked
            seconds["checks"] += time.perf_counter() - t
            if result.status == "failed":
                raise _Withdrawn
            t = time.perf_counter()
        parents.published(ctx, (quarantine, processed))
        seconds["publish"] += time.perf_counter() - t
    except _Withdrawn:  # nothing of the dataset was published
        return
    finally:
        result.seconds.update({k: round(v, 3) for k, v in seconds.items()})
    if audits:
        audit = AuditResult.merged(audits)
        result.audit = audit.to_json()
        for rule in result.rules:
            if rule["id"] in audit.results:
                rule["audit"] = audit.results[rule["id"]]
    _reconcile_output(per_day, written, refused_written, result)
    result.published = True
    _save_day_stats(ctx, ds, per_day)

    count = ctx.count(f"processed.{ds.name}")
    totals = result.counts
    count.rows_in += totals["raw"]
    count.quarantined += totals["quarantined"]
    count.duplicates += totals["duplicates"]
    count.notes.append(f"gate: {totals['raw']:,} raw = {totals['processed']:,} processed + "
                       f"{totals['quarantined']:,} quarantined + {totals['duplicates']:,} duplicates")
    if result.status == "passed" and (any(r["failed_rows"] and r["severity"] != "critical" for r in result.rules)
                                      or result.drift or result.rejected_files or totals["quarantined"]):
        result.status = "warned"
    _remember(ctx, parents, ds, state, key, signature, processed, quarantine, result)


class _Withdrawn(Exception):
    """A dataset's gate decided not to publish (the reason is in its result): its staged writes are discarded."""


def _spans(ctx: RunContext, days: list[str], raw_rows: dict[str, int]) -> list[list[str]]:
    """The run's days in the batches the gate decides and stages one after the other: consecutive whole
    calendar months of at most ``quality.batch_rows`` raw rows (a month larger than that is a batch alone),
    so that the engine's frame, the audit's batch and the memory hold a batch, not the run, while a small
    dataset's run stays one batch (each batch costs a Checkpoint run). All at once when ``platform.window``
    is off. Months, not days, because a month is a data file of the tables the gate writes."""
    if ctx.settings.get("platform.window") == "off":
        return [list(days)]
    budget = ctx.settings.model("quality").batch_rows
    months: dict[str, list[str]] = {}
    for d in days:
        months.setdefault(d[:7], []).append(d)
    spans: list[list[str]] = []
    rows = 0
    for month in months.values():
        n = sum(raw_rows.get(d, 0) for d in month)
        if spans and rows + n <= budget:
            spans[-1] += month
            rows += n
        else:
            spans.append(list(month))
            rows = n
    return spans


def _sorted(processed: Dataset, good: pa.Table, refused: pa.Table) -> tuple[pa.Table, pa.Table]:
    """The two outputs in the order they are stored (partition, then key or all columns; quarantine by file
    and row)."""
    names = [c.name for c in processed.stored_columns()]
    order = [*processed.partition_by, *(processed.primary_key or [c.name for c in processed.data_columns])]
    good = good.select(names).sort_by([(c, "ascending") for c in order])
    refused = refused.sort_by([("dt", "ascending"), ("_source_file", "ascending"), ("_row_number", "ascending")])
    return good, refused


COMPILED_DIR = "_meta/quality/compiled"


class _CompiledQueries:
    """The gate's compiled query of one dataset, kept in the lake between runs (the latest one only)."""

    def __init__(self, ctx: RunContext, ds: Dataset):
        self.lake, self.path = ctx.lake, f"{COMPILED_DIR}/{ds.name}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        with contextlib.suppress(ValueError, TypeError):
            kept = json.loads(self.lake.read_text(self.path) or "{}")
            if kept.get("key") == key:
                return kept["query"]
        return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.lake.write_text(self.path, json.dumps({"key": key, "query": value}))


def _tagged(ctx: RunContext, suite: Suite, raw: ibis.Table, parents: Parents) -> pa.Table:
    """The tagged frame of the rows to gate (:func:`tagged_frame`), computed by the engine. Its query depends
    only on the suite, the declarations and the gate's code, so it is compiled once and kept
    (:meth:`lakehouse.engine.Engine.to_arrow_compiled`); the rows and lookups are bound to it at each run."""
    used = [d for d in suite.derived if d.lookup and not d.late]
    inputs = {"raw": raw, **{f"lookup_{i}": parents.table(d) for i, d in enumerate(used)}}
    slot = {d.name: f"lookup_{i}" for i, d in enumerate(used)}

    def build(t: dict[str, ibis.Table]) -> ibis.Table:
        return tagged_frame(t["raw"], suite, lambda d: t[slot[d.name]])

    ds = suite.dataset
    key = json.dumps({"code": _code_fingerprint(), "suite": suite.gx_config(), "checks": suite.checks,
                      "declaration": [repr(d) for d in (ds, *output_datasets(ds))]}, sort_keys=True, default=str)
    return ctx.engine.to_arrow_compiled(build, inputs, hashlib.sha256(key.encode()).hexdigest(),
                                        _CompiledQueries(ctx, ds))


def staged_batch(settings, name: str, days: list[str]):
    """The batch the Checkpoint ``processed.<name>`` validates for some days, recomputed from the current raw
    snapshot and parents: the rows the gate publishes with the columns they were decided from, as GX sees
    them. For a GX user who re-runs the Checkpoint::

        context.checkpoints.get("processed.tickets").run(
            batch_parameters={"dataframe": staged_batch(settings, "tickets", ["2024-03-01"])})
    """
    from lakehouse.context import RunContext
    from lakehouse.quality.audit import gated_suite_config, gx_frame
    from lakehouse.quality.suite import load_suite

    suite = load_suite(schemas.get(f"raw.{name}"))
    ctx = RunContext.create(settings, [date.fromisoformat(d) for d in days])
    parents = Parents(ctx)
    try:
        snap = ctx.lake.snapshot_id(suite.dataset)
        raw = ctx.engine.files(suite.dataset, ctx.lake.files(suite.dataset, {"dt": days}, snap) if snap else [])
        frame = ctx.engine.to_arrow(tagged_frame(raw.filter(is_in(raw.dt, list(days))), suite, parents.table))
        good, _ = _outputs(frame, suite)
        processed = output_datasets(suite.dataset)[0]
        return gx_frame(good, gated_suite_config(processed, suite))
    finally:
        parents.release()
        ctx.close()


# ---- skipping a rerun that has nothing new to decide ---------------------------------------------------------
#: What the gate's decisions are made of besides the data: a change to any of these re-gates every day.
CODE = (*sorted(Path(__file__).parent.glob("*.py")), Path(schemas.__file__))
LIBRARIES = ("ibis-framework", "duckdb", "sqlglot", "pyspark", "great-expectations", "pyarrow")


@cache
def _code_fingerprint() -> str:
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256()
    for path in CODE:
        digest.update(path.read_bytes())
    for package in LIBRARIES:
        with contextlib.suppress(PackageNotFoundError):
            digest.update(f"{package}=={version(package)}".encode())
    return digest.hexdigest()


def input_signature(ctx: RunContext, suite: Suite, raw_snapshot: int | None, parents: dict[str, int | None],
                    rejected: list[dict[str, Any]]) -> str:
    """A hash of everything the gate's output for the run's days depends on: the raw table's snapshot (which
    also holds the days the row-count and null-share checks compare with), the snapshot of every table the
    suite looks rows up in, the files ingestion rejected for those days, the declaration, the suite, the
    ``[quality]`` settings, the engine and the gate's code. Equal signatures give equal outputs."""
    ds = suite.dataset
    parts = {
        "code": _code_fingerprint(), "engine": ctx.engine.name,
        "declaration": [repr(d) for d in (ds, *output_datasets(ds))],
        "suite": suite.gx_config(), "checks": suite.checks,
        "settings": ctx.settings.model("quality").model_dump(mode="json"),
        "days": ctx.days, "raw": raw_snapshot, "parents": parents,
        "rejected": [(r["source_file"], r["sha256"], r["reason"]) for r in rejected],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _days_key(days: list[str]) -> str:
    return f"{days[0]}..{days[-1]} ({len(days)})"


def _load_state(ctx: RunContext, ds: Dataset) -> dict[str, Any]:
    text = ctx.lake.read_text(report.state_path(ds.name))
    if not text:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {}


def _remember(ctx: RunContext, parents: Parents, ds: Dataset, state: dict[str, Any], key: str, signature: str,
              processed: Dataset, quarantine: Dataset, result: DatasetResult) -> None:
    """Record what the run's days were decided from (a failed dataset records nothing: it is gated again, and
    so is one published without a drifted file, so that the rerun fails again until the file is fixed)."""
    if result.status == "failed" or result.stop:
        return
    runs = dict(state.get("runs") or {})
    runs[key] = {"signature": signature, "run_id": ctx.run_id, "status": result.status,
                 "outputs": {d.qualified_name: parents.snapshot(d) for d in (processed, quarantine)},
                 "finished_at": datetime.now(UTC).isoformat(timespec="seconds")}
    runs = dict(sorted(runs.items(), key=lambda kv: kv[1]["finished_at"])[-KEEP_SIGNATURES:])
    ctx.lake.write_text(report.state_path(ds.name), json.dumps({"dataset": ds.name, "runs": runs}, indent=1))


# ---- reading raw counts (pyarrow, independent of the engine) ---------------------------------------------------
def _raw_rows(ctx: RunContext, ds: Dataset, snap: int | None, days: list[str]) -> dict[str, int]:
    """Rows per day of the raw table's snapshot (duplicates included), read with pyarrow: the reference the
    engine's counts are reconciled with, and the row counts the row-count check compares."""
    if snap is None or not days:
        return {}
    dts = ctx.lake.read_arrow(ds, {"dt": days}, snap, columns=["dt"])
    if not dts.num_rows:
        return {}
    return {r["dt"]: r["dt_count"] for r in dts.group_by("dt").aggregate([("dt", "count")]).to_pylist()}


def _holds_rows(ctx: RunContext, parents: Parents, ds: Dataset, days: list[str]) -> bool:
    snap = parents.snapshot(ds)
    return snap is not None and ctx.lake.read_arrow(ds, {"dt": days}, snap, columns=["dt"]).num_rows > 0


def _publish_empty(parents: Parents, processed: Dataset, quarantine: Dataset, result: DatasetResult) -> None:
    """The run's days have no raw rows any more (a corrected export is empty): their published rows go too."""
    parents.write(quarantine, quarantine.arrow_schema().empty_table())
    parents.write(processed, processed.arrow_schema().empty_table(), audit=False)
    result.counts = {"raw": 0, "processed": 0, "quarantined": 0, "duplicates": 0, "reconciled": True}
    result.published = True
    result.warnings.append("no raw rows for the run's days any more: their processed and quarantined rows were "
                           "removed")


# ---- checks before the engine -------------------------------------------------------------------------------------
def _file_checks(ds: Dataset, rejected: list[dict[str, Any]], cfg, result: DatasetResult) -> None:
    """Files ingestion rejected for the run's days (``quarantine.rejected_files``). A missing or renamed
    column is schema drift: the file's rows never reached raw, the dataset's other files and days are
    published, and when the column is a key column the stage fails once they are (``fail_on_drift``), naming
    the file; other rejections (and drift of other columns) are warnings."""
    for r in rejected:
        drift = str(r.get("reason", "")).startswith(DRIFT_REASONS)
        result.rejected_files.append({k: r.get(k) for k in ("dt", "source_file", "line", "column", "reason",
                                                            "sha256")} | {"drift": drift})
        if drift:
            key = r.get("column") in ds.primary_key
            blocking = key and cfg.fail_on_drift
            result.drift.append({"dt": r["dt"], "file": r["source_file"], "column": r.get("column"),
                                 "kind": "missing or renamed", "severity": "critical" if blocking else "warning",
                                 "message": r.get("reason")})
            message = (f"schema drift in {r['source_file']}: {'key ' if key else ''}column {r.get('column')}: "
                       f"{r.get('reason')} (file rejected at ingestion; the other files were gated)")
            if blocking:
                result.stop.append(message)
                result.errors.append(message)
            else:
                result.warnings.append(message)
        else:
            result.warnings.append(f"{r['source_file']} was rejected at ingestion"
                                   + (f" (line {r['line']})" if r.get("line") else "") + f": {r.get('reason')}")


def _compare_step(setting: dict[str, Any]) -> int | None:
    compare = setting.get("compare", "previous_day")
    return None if compare == "off" else 7 if compare == "same_weekday" else 1


def _compared_days(suite: Suite, days: list[str]) -> list[str]:
    """Days outside the run that the row-count and null-share checks compare the run's days with."""
    out = set()
    for check in ("row_count_drop", "null_share_jump"):
        setting = suite.checks.get(check) or {}
        step = _compare_step(setting)
        if step is None or setting.get("off"):
            continue
        out |= {(date.fromisoformat(d) - timedelta(days=step)).isoformat() for d in days}
    return sorted(out - set(days))


def _row_count_check(suite: Suite, raw_rows: dict[str, int], cfg, result: DatasetResult) -> None:
    setting = suite.checks.get("row_count_drop") or {}
    step = _compare_step(setting)
    if step is None:
        result.checks.append({"check": "row_count_drop", "status": "off", "message": "disabled in the suite"})
        return
    compare = setting.get("compare", "previous_day")
    drop_max = float(setting.get("max", cfg.row_count_drop_max))
    min_previous = int(setting.get("min_previous_rows", cfg.row_count_min_previous))
    compared, failed = 0, False
    for dt in sorted(d for d in result.dates):
        before = (date.fromisoformat(dt) - timedelta(days=step)).isoformat()
        prev_rows, rows = raw_rows.get(before, 0), raw_rows.get(dt, 0)
        if not rows or prev_rows < min_previous:  # a day without an export is not compared
            continue
        compared += 1
        if rows < (1 - drop_max) * prev_rows:
            message = (f"row count fell from {prev_rows:,} on {before} to {rows:,} on {dt} "
                       f"({(rows - prev_rows) / prev_rows:+.0%}; the limit is -{drop_max:.0%})")
            result.checks.append({"check": "row_count_drop", "status": "failed", "message": message})
            result.fail(message)
            failed = True
    if not failed:
        result.checks.append({"check": "row_count_drop", "status": "passed",
                              "message": f"{compared} day(s) compared with {compare.replace('_', ' ')} "
                                         f"(at least {min_previous} rows before; limit -{drop_max:.0%})"})


# ---- the engine's aggregation and what is checked on it ------------------------------------------------------------
def _file_stats(frame: pa.Table, suite: Suite) -> list[dict[str, Any]]:
    """One row per (day, source file) of the tagged rows: counts, rule flags, nulls and unreadable texts
    per column (an Arrow aggregation: the engine's one query is the tagged frame itself)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    layout = Layout(suite)
    keep = pc.invert(frame.column(DUP))
    cols: dict[str, pa.Array] = {"dt": frame.column("dt"), "_source_file": frame.column("_source_file"),
                                 "raw": pa.array(np.ones(frame.num_rows, dtype="int64")) if frame.num_rows
                                 else pa.array([], pa.int64())}
    aggs: list[tuple[str, str]] = [("raw", "sum")]

    def count(name: str, mask) -> None:
        cols[name] = pc.cast(pc.fill_null(mask, False), pa.int64())
        aggs.append((name, "sum"))

    count("duplicates", frame.column(DUP))
    count("quarantined", frame.column(QUARANTINED))
    for flag in layout.flags.values():
        count(flag, frame.column(flag))
    for j, c in enumerate(suite.dataset.data_columns):
        count(f"null{j}", pc.and_(keep, pc.is_null(frame.column(c.name))))
        if c.type != "string":
            text = frame.column(raw_text_column(c.name))
            count(f"text{j}", pc.and_(keep, pc.is_valid(text)))
            type_flag = layout.flags.get(f"type:{c.name}")
            if type_flag:  # a deterministic example of an unreadable value
                cols[f"bad{j}"] = pc.if_else(pc.fill_null(frame.column(type_flag), False), text,
                                             pa.scalar(None, pa.string()))
                aggs.append((f"bad{j}", "min"))
    grouped = pa.table(cols).group_by(["dt", "_source_file"]).aggregate(aggs)
    rename = {f"{name}_{how}": name for name, how in aggs}
    return [{rename.get(k, k): (int(v) if isinstance(v, int) and not isinstance(v, bool) else v)
             for k, v in row.items()} for row in grouped.to_pylist()]


def _reconcile_input(stats: list[dict[str, Any]], raw_rows: dict[str, int], days: list[str], suite: Suite,
                     result: DatasetResult) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    layout = Layout(suite)
    cols = suite.dataset.data_columns
    per_day: dict[str, dict[str, Any]] = {
        d: {"raw": 0, "duplicates": 0, "quarantined": 0, "nulls": {c.name: 0 for c in cols}}
        for d in days if raw_rows.get(d)}
    flag_totals = dict.fromkeys(layout.flags, 0)
    for s in stats:
        if s["dt"] not in per_day:
            raise ReconciliationError(f"{suite.name} {s['dt']}: the engine read rows of a day the raw table does "
                                      "not hold for the run")
        day = per_day[s["dt"]]
        for k in ("raw", "duplicates", "quarantined"):
            day[k] += s[k] or 0
        for j, c in enumerate(cols):
            day["nulls"][c.name] += s[f"null{j}"] or 0
        for rule_id, flag in layout.flags.items():
            flag_totals[rule_id] += s[flag] or 0
    for d, day in per_day.items():
        day["processed"] = day["raw"] - day["duplicates"] - day["quarantined"]
        if raw_rows[d] != day["raw"]:
            raise ReconciliationError(f"{suite.name} {d}: the raw table holds {raw_rows[d]:,} rows for the day, "
                                      f"the gate read {day['raw']:,}")
        if day["processed"] < 0:
            raise ReconciliationError(f"{suite.name} {d}: more rows removed than read")
    result.per_day = {d: {k: v for k, v in day.items() if k != "nulls"} for d, day in per_day.items()}
    result.counts = {k: sum(day[k] for day in per_day.values())
                     for k in ("raw", "processed", "quarantined", "duplicates")}
    result.counts["reconciled"] = False
    return per_day, flag_totals


def _retype_check(stats: list[dict[str, Any]], suite: Suite, cfg, result: DatasetResult) -> None:
    """A column whose values in one file mostly fail to read as the declared type was re-typed upstream; a
    required column empty in every row of a file (a JSON key renamed upstream) went missing."""
    found = False
    flags = Layout(suite).flags
    for s in sorted(stats, key=lambda x: (x["dt"], x["_source_file"])):
        rows = (s["raw"] or 0) - (s["duplicates"] or 0)
        for j, c in enumerate(suite.dataset.data_columns):
            empty = s.get(f"text{j}") == 0 if c.type != "string" else s.get(f"null{j}") == rows
            if not c.nullable and rows >= cfg.retype_min_values and empty:
                # every row of the file breaks not_null and is quarantined; the other files publish, and a key
                # column fails the stage once they are (fail_on_drift)
                key = c.name in suite.dataset.primary_key
                blocking = key and cfg.fail_on_drift
                message = (f"schema drift in {s['_source_file']}: {'key ' if key else ''}column {c.name}: required "
                           f"but empty in all {rows:,} rows (missing or renamed upstream?); its rows are quarantined")
                result.drift.append({"dt": s["dt"], "file": s["_source_file"], "column": c.name, "kind": "missing",
                                     "severity": "critical" if blocking else "warning", "message": message})
                if blocking:
                    result.stop.append(message)
                    result.errors.append(message)
                else:
                    result.warnings.append(message)
                continue
            if c.type == "string" or f"bad{j}" not in s:
                continue
            present = s.get(f"text{j}") or 0
            bad = s.get(flags[f"type:{c.name}"]) or 0
            if bad >= cfg.retype_min_values and present and bad / present > cfg.retype_share_max:
                found = True
                message = (f"schema drift in {s['_source_file']}: column {c.name}: {bad:,} of {present:,} values "
                           f"do not read as {c.type} (e.g. {s.get(f'bad{j}')!r}); re-typed upstream?")
                result.drift.append({"dt": s["dt"], "file": s["_source_file"], "column": c.name, "kind": "re-typed",
                                     "severity": "critical", "message": message})
                result.fail(message)
    result.checks.append({"check": "re-typed or emptied columns", "status": "failed" if found else "passed",
                          "message": f"a file fails when more than {cfg.retype_share_max:.0%} (and at least "
                                     f"{cfg.retype_min_values}) of a column's values do not read as its type; a "
                                     "required column empty in all its rows is drift: its rows are quarantined, and "
                                     "a key column fails the stage after the other files publish"})


def _stats_path(ds: Dataset, month: str) -> str:
    return f"{report.ROOT}/stats/{ds.name}/{month}.json"


def _save_day_stats(ctx: RunContext, ds: Dataset, per_day: dict[str, dict[str, Any]]) -> None:
    """Rows (without exact duplicates) and typed nulls per column of each gated day, one small file per month:
    the baseline of the next day's null-share check, without reading that day again."""
    by_month: dict[str, dict[str, Any]] = {}
    for d, day in per_day.items():
        by_month.setdefault(d[:7], {})[d] = {"rows": day["raw"] - day["duplicates"], "nulls": day["nulls"]}
    for month, values in by_month.items():
        text = ctx.lake.read_text(_stats_path(ds, month))
        kept = json.loads(text) if text else {}
        kept.update(values)
        ctx.lake.write_text(_stats_path(ds, month), json.dumps(dict(sorted(kept.items())), sort_keys=True))


def _day_stats(ctx: RunContext, ds: Dataset, snap: int | None, days: list[str],
               raw_rows: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Rows (without exact duplicates) and typed nulls per column of some days outside the run: from the
    stats the gate kept when it published them, else read from the raw table itself (days without raw
    rows have nothing to compare with)."""
    days = [d for d in days if raw_rows.get(d)]
    out: dict[str, dict[str, Any]] = {}
    for month in sorted({d[:7] for d in days}):
        text = ctx.lake.read_text(_stats_path(ds, month))
        kept = json.loads(text) if text else {}
        out.update({d: kept[d] for d in days if d in kept})
    missing = [d for d in days if d not in out]
    if snap is None or not missing:
        return out
    raw = ctx.engine.files(ds, ctx.lake.files(ds, {"dt": missing}, snap))
    frame = typed_frame(raw.filter(is_in(raw.dt, list(missing))), ds)
    keep = ~frame[DUP]
    aggs = {"rows": keep.cast("int64").sum()}
    for j, c in enumerate(ds.data_columns):
        aggs[f"null{j}"] = (keep & frame[c.name].isnull()).cast("int64").sum()
    for r in ctx.engine.to_arrow(frame.group_by("dt").aggregate(**aggs)).to_pylist():
        out[r["dt"]] = {"rows": int(r["rows"] or 0),
                        "nulls": {c.name: int(r[f"null{j}"] or 0) for j, c in enumerate(ds.data_columns)}}
    return out


def _null_share_check(ctx: RunContext, suite: Suite, snap: int | None, per_day: dict[str, dict[str, Any]],
                      raw_rows: dict[str, int], cfg, result: DatasetResult) -> None:
    setting = suite.checks.get("null_share_jump") or {}
    step = _compare_step(setting)
    if setting.get("off") or step is None:
        result.checks.append({"check": "null_share_jump", "status": "off", "message": "disabled in the suite"})
        return
    ignore = set(setting.get("ignore") or ())
    jump_max = float(setting.get("max", cfg.null_share_jump_max))
    compare = setting.get("compare", "previous_day")
    befores = {dt: (date.fromisoformat(dt) - timedelta(days=step)).isoformat() for dt in per_day}
    outside = _day_stats(ctx, suite.dataset, snap, sorted({b for b in befores.values() if b not in per_day}),
                         raw_rows)
    failures, n_compared = [], 0
    for dt in sorted(per_day):
        day = per_day[dt]
        rows = day["raw"] - day["duplicates"]
        before = befores[dt]
        if before in per_day:
            prev = {"rows": per_day[before]["raw"] - per_day[before]["duplicates"], "nulls": per_day[before]["nulls"]}
        else:
            prev = outside.get(before)
        if not prev or prev["rows"] < cfg.null_share_min_rows or rows < cfg.null_share_min_rows:
            continue
        n_compared += 1
        for name, nulls in day["nulls"].items():
            if name in ignore:
                continue
            share, prev_share = nulls / rows, prev["nulls"].get(name, 0) / prev["rows"]
            jump = share - prev_share
            pooled = (nulls + prev["nulls"].get(name, 0)) / (rows + prev["rows"])
            noise = cfg.null_share_z * math.sqrt(pooled * (1 - pooled) * (1 / rows + 1 / prev["rows"]))
            if jump > jump_max and jump > noise:
                failures.append(f"null share of {name} jumped from {prev_share:.0%} on {before} to {share:.0%} "
                                f"on {dt} (limit +{jump_max:.0%})")
    for f in failures:
        result.fail(f)
    result.checks.append({"check": "null_share_jump", "status": "failed" if failures else "passed",
                          "message": "; ".join(failures) if failures else
                          f"{n_compared} day(s) compared with {compare.replace('_', ' ')} (at least "
                          f"{cfg.null_share_min_rows} rows each; limit +{jump_max:.0%} and beyond {cfg.null_share_z} "
                          "standard errors)" + (f"; not checked: {', '.join(sorted(ignore))}" if ignore else "")})


def _rule_results(suite: Suite, flag_totals: dict[str, int], result: DatasetResult) -> None:
    checked = result.counts["raw"] - result.counts["duplicates"]
    for r in suite.rules:
        failed = flag_totals[r.id]
        mostly = r.kwargs.get("mostly", 1)
        result.rules.append({"id": r.id, "type": r.type, "severity": r.severity, "source": r.source,
                             "description": r.description, "kwargs": r.kwargs, "columns": r.columns,
                             "failed_rows": failed, "success": failed <= (1 - mostly) * checked})


# ---- failing-row samples and the two outputs -----------------------------------------------------------------------
def _samples(frame: pa.Table, suite: Suite, n: int) -> dict[str, list[dict[str, Any]]]:
    """Up to ``n`` failing rows per rule (file, row, key, the rule's columns as source text, derived values)."""
    import pyarrow.compute as pc

    if n <= 0:
        return {}
    layout = Layout(suite)
    texts = dict(layout.text_columns())
    derived = {d.name for d in suite.derived}
    out: dict[str, list[dict[str, Any]]] = {}
    for rule in suite.rules:
        flagged = frame.filter(pc.fill_null(frame.column(layout.flags[rule.id]), False))
        if not flagged.num_rows:
            continue
        flagged = flagged.sort_by([("dt", "ascending"), ("_source_file", "ascending"),
                                   ("_row_number", "ascending")]).slice(0, n)
        shown = ["dt", "_source_file", "_row_number", *suite.dataset.primary_key,
                 *[c.removeprefix("_raw_") for c in rule.columns]]
        rows = []
        for rec in flagged.to_pylist():
            row: dict[str, Any] = {}
            for c in dict.fromkeys(shown):
                if c in texts:
                    row[c] = rec[texts[c]]
                elif c in derived:
                    row[c] = None if rec[c] is None else str(rec[c])
                elif c in rec:
                    row[c] = rec[c]
            rows.append(row)
        out[rule.id] = rows
    return out


def _outputs(frame: pa.Table, suite: Suite) -> tuple[pa.Table, pa.Table]:
    """(processed rows with the derived columns their rules read, for the audit; quarantined rows as source
    text)."""
    import pyarrow.compute as pc

    dup, quarantined = frame.column(DUP), frame.column(QUARANTINED)
    extras = [d.name for d in suite.derived] + [PASSES_BLOCKING]
    keep = processed_columns(suite) + [c for c in extras if c not in processed_columns(suite)]
    good = frame.filter(pc.and_(pc.invert(dup), pc.invert(quarantined))).select(keep)
    refused = frame.filter(quarantined)
    names = dict(Layout(suite).text_columns())
    rest = ["_rules_broken", "_severity", "_rules_warned", *LINEAGE, *suite.dataset.partition_by]
    refused = refused.select([*names.values(), *rest]).rename_columns([*names, *rest])
    return good, refused


def _reconcile_output(per_day: dict[str, dict[str, Any]], written: dict[str, int], refused: dict[str, int],
                      result: DatasetResult) -> None:
    """raw = processed + quarantined + duplicates, per day, against what the two commits published."""
    for d, day in per_day.items():
        key = f"dt={d}"
        got_p, got_q = written.get(key, 0), refused.get(key, 0)
        if got_p != day["processed"] or got_q != day["quarantined"]:
            raise ReconciliationError(
                f"{result.dataset} {d}: published {got_p:,} processed and {got_q:,} quarantined rows, expected "
                f"{day['processed']:,} and {day['quarantined']:,}")
        if day["raw"] != got_p + got_q + day["duplicates"]:
            raise ReconciliationError(f"{result.dataset} {d}: {day['raw']:,} raw rows != {got_p:,} processed + "
                                      f"{got_q:,} quarantined + {day['duplicates']:,} duplicates")
    extra = {k: v for k, v in {**written, **refused}.items() if v and k.removeprefix("dt=") not in per_day}
    if extra:
        raise ReconciliationError(f"{result.dataset}: rows published for days that had no raw rows: {extra}")
    result.counts["reconciled"] = True


__all__ = ["LINEAGE", "QualityGateError", "ReconciliationError", "gate", "gate_dataset", "input_signature",
           "output_datasets", "run", "staged_batch"]

"""The quality gate: raw → processed, with every refused row in quarantine and every row accounted for.

For each raw dataset (parents before the datasets that look rows up in them), over all the run's days in
one Spark job:

1. read the run's raw partitions; blanks and the declaration's ``null_tokens`` become null; each column is
   read as its declared type (``try_`` casts, declared date ``formats``);
2. drop exact duplicates (same key and same ``_row_hash`` within a day) and count them;
3. flag every rule of the suite (baseline from the declaration + ``expectations/<name>.json``); a row that
   breaks a ``critical`` rule goes to ``quarantine/<name>/`` with ``_rules_broken``, the rest to
   ``processed/<name>/``, both replacing the run's days (a rerun gives the same tables);
4. before publishing, dataset-level checks may stop the dataset (nothing is published for it, the stage
   fails after the other datasets are done): schema drift (a file rejected at ingestion for a missing or
   renamed column, a column whose values in one file mostly fail to read as the declared type), a day's
   row count falling against the day before, a column's null share jumping;
5. Great Expectations validates the same frame with the same suite and must flag the same rows;
6. counts reconcile exactly: raw rows = processed + quarantined + removed duplicates, per day, checked
   against the raw partition pointers and against what the writes published.

Results go to the run ledger (``ctx.count``) and to ``_meta/quality/`` as JSON and HTML.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import schemas
from lakehouse.quality import gx as gx_validation
from lakehouse.quality import report
from lakehouse.quality.compile import (
    DUP,
    QUARANTINED,
    Layout,
    lookup_table,
    processed_rows,
    quarantine_rows,
    tagged_frame,
)
from lakehouse.quality.report import DatasetResult
from lakehouse.quality.suite import Derived, Suite, gate_order, load_all
from lakehouse.stages import stage
from schemas import Dataset, raw_text_column

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

    from lakehouse.context import RunContext

log = logging.getLogger(__name__)
DRIFT_REASONS = ("schema drift", "header repeats")


class QualityGateError(RuntimeError):
    """One or more datasets failed the gate; nothing was published for them."""


class ReconciliationError(AssertionError):
    """Rows were lost or invented between raw and the published tables: a bug, never bad data."""


@dataclass(frozen=True)
class GateOptions:
    """The ``[quality]`` settings (values and meanings in ``lakehouse/defaults.toml``, the one place they live)."""

    row_count_drop_max: float
    row_count_min_previous: int
    null_share_jump_max: float
    null_share_min_rows: int
    null_share_z: float
    retype_share_max: float
    retype_min_values: int
    fail_on_drift: bool
    sample_failing_rows: int
    gx_engine: str
    gx_max_rows: int
    arrow_write_max_rows: int
    skip_unchanged: bool

    @classmethod
    def from_settings(cls, settings) -> GateOptions:
        section = settings.section("quality")
        return cls(**{k: v for k, v in section.items() if k in cls.__dataclass_fields__})


@dataclass
class Parents:
    """The lookup tables of the suites (keys of published parents), built once per stage run and kept in
    memory: ``processed.clients`` is looked up by most datasets. Re-publishing a parent drops its tables."""

    ctx: RunContext
    resolve: Any = schemas.get
    cache: dict[tuple, DataFrame] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)

    def table(self, d: Derived) -> DataFrame:
        from pyspark import StorageLevel

        key = (d.lookup, tuple(d.on.values()), d.value, d.name)
        if key not in self.cache:
            with driver_listing(self.ctx):
                source = few_tasks(self.ctx.read(self.resolve(d.lookup)))
            self.cache[key] = lookup_table(source, d).persist(StorageLevel.MEMORY_AND_DISK)
        return self.cache[key]

    def published(self, qualified: str) -> None:
        for key in [k for k in self.cache if k[0] == qualified]:
            self.cache.pop(key).unpersist()

    def release(self) -> None:
        for df in self.cache.values():
            df.unpersist()
        self.cache.clear()


@contextlib.contextmanager
def driver_listing(ctx: RunContext):
    """List a local lake's files on the driver while reading.

    ``Lake.read_spark`` passes one path per published file; above 32 paths Spark lists them with a
    distributed job, which costs 4-14 s for a 2-year daily table here against 0.5 s on the driver. On S3 the
    distributed listing is the better one, so only a local lake switches.
    """
    key = "spark.sql.sources.parallelPartitionDiscovery.threshold"
    if not ctx.lake.local:
        yield
        return
    conf = ctx.spark.conf
    before = conf.get(key)
    conf.set(key, "1000000")
    try:
        yield
    finally:
        conf.set(key, before)


def few_tasks(df: DataFrame) -> DataFrame:
    """Read many small daily files in a few tasks instead of one task per file.

    Spark plans at least one scan task per file when files are smaller than ``openCostInBytes`` (4 MB): a
    2-year backfill of a daily table is 700+ tasks of a few kB each, which cost more than the data. A
    coalesce (no shuffle) packs them into a couple of tasks per core.
    """
    target = max(2, 2 * df.sparkSession.sparkContext.defaultParallelism)
    return df.coalesce(target) if df.rdd.getNumPartitions() > target else df


def output_datasets(ds: Dataset) -> tuple[Dataset, Dataset]:
    """(processed, quarantine) of a raw dataset: declared ones win over the derived twins."""
    declared = schemas.catalog()
    if declared.get(ds.qualified_name) is ds:
        return declared[f"processed.{ds.name}"], declared[f"quarantine.{ds.name}"]
    return ds.processed_twin(), ds.quarantine_twin()


# ---- the stage ---------------------------------------------------------------------------------------------
@stage("quality", agent="platform", reads=("raw.*",), writes=("processed.*", "quarantine.*"))
def run(ctx: RunContext) -> None:
    """Raw → processed through the quality gate; refused rows to quarantine with the rules they broke."""
    suites = gate_order(load_all(names=ctx.params.get("datasets"), sources=ctx.params.get("sources")))
    results = gate(ctx, suites)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise QualityGateError(f"{len(failed)} dataset(s) failed the quality gate and were not published: " +
                               "; ".join(f"{r.dataset}: {r.errors[0]}" for r in failed))


def gate(ctx: RunContext, suites: list[Suite], resolve=schemas.get) -> list[DatasetResult]:
    """Gate several datasets in the given order; failures are recorded, never raised here."""
    options = GateOptions.from_settings(ctx.settings)
    parents = Parents(ctx, resolve)
    results = []
    try:
        for i, suite in enumerate(suites):
            ctx.progress(f"quality {suite.name}", i, len(suites))
            results.append(gate_dataset(ctx, suite, options, parents))
    finally:
        parents.release()
    ctx.progress("quality", len(suites), len(suites))
    try:
        report.save_index(ctx.lake)
    except OSError as exc:  # the index is a convenience; the per-dataset results are written already
        ctx.warn(f"quality: could not write the index page: {exc}")
    return results


def gate_dataset(ctx: RunContext, suite: Suite, options: GateOptions | None = None,
                 parents: Parents | None = None) -> DatasetResult:
    """Gate one raw dataset for the run's days; returns what happened (status failed: nothing published)."""
    options = options or GateOptions.from_settings(ctx.settings)
    own_parents = parents is None
    parents = parents or Parents(ctx)
    ds = suite.dataset
    t0 = time.perf_counter()
    result = DatasetResult(ds.name, ctx.run_id, [d.isoformat() for d in ctx.dates],
                           suite=str(suite.path.name) if suite.path else None)
    try:
        _gate(ctx, suite, options, parents, result)
    except Exception as exc:  # a bug or an infrastructure error: record it, let the stage fail at the end
        log.exception("quality gate of %s failed", ds.name)
        result.fail(f"{type(exc).__name__}: {exc}")
    finally:
        if own_parents:
            parents.release()
    if result.status == "unchanged":  # nothing new to decide: the published tables and last report stand
        ctx.count(f"processed.{ds.name}").notes.append(f"gate: {result.warnings[-1]}")
        return result
    if result.status == "failed":
        parents.failed.add(f"processed.{ds.name}")
        ctx.count(f"processed.{ds.name}").notes.append("FAILED the quality gate: " + result.errors[0])
        for e in result.errors:
            ctx.warn(f"quality {ds.name}: {e}")
    result.seconds["total"] = round(time.perf_counter() - t0, 3)
    result.generated_at = datetime.now(UTC).isoformat(timespec="seconds")
    report.save(ctx.lake, result)
    return result


def _gate(ctx: RunContext, suite: Suite, o: GateOptions, parents: Parents, result: DatasetResult) -> None:
    ds = suite.dataset
    if ds.partition_by != ("dt",):
        raise ValueError(f"{ds.qualified_name}: the quality gate needs raw tables partitioned by dt")
    days = [d.isoformat() for d in ctx.dates]
    pointers = {d: p for d in days if (p := ctx.lake.pointer(ds, {"dt": d})) is not None}
    if not pointers:
        result.status = "no_data"
        result.warnings.append("no raw partition for the run's days: nothing to gate")
        return
    broken_parents = [q for q in suite.lookups if q in parents.failed]
    if broken_parents:
        result.fail(f"looks rows up in {', '.join(broken_parents)}, which failed the gate in this run; "
                    "gating now would quarantine good rows as orphans")
        return
    days_owned = ctx.date_partitions()
    signature = input_signature(ctx, suite, o, parents, pointers, days_owned)
    if o.skip_unchanged and (since := gated_before(ctx, ds, days_owned, signature)):
        result.status = "unchanged"
        result.warnings.append(f"inputs, suite, settings and code unchanged since run {since}: not gated again "
                               "(quality.skip_unchanged)")
        return
    _file_checks(pointers, o, result)
    _row_count_check(ctx, suite, pointers, o, result)

    # ---- one Spark job over all the run's days ---------------------------------------------------------
    from pyspark import StorageLevel

    t = time.perf_counter()
    with driver_listing(ctx):
        raw = few_tasks(ctx.lake.read_spark(ctx.spark, ds, [f"dt={d}" for d in sorted(pointers)]))
    frame = tagged_frame(raw, suite, parents.table).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        stats = _aggregate(frame, suite)
        result.seconds["validate"] = round(time.perf_counter() - t, 3)
        per_day, flag_totals = _reconcile_input(stats, pointers, suite, result)
        _retype_check(stats, suite, o, result)
        _null_share_check(ctx, suite, per_day, o, result)
        _rule_results(suite, flag_totals, result)

        t = time.perf_counter()
        candidate_rows = sum(v["raw"] - v["duplicates"] for v in per_day.values())
        outcome = gx_validation.validate(frame, suite, engine=o.gx_engine, max_rows=o.gx_max_rows,
                                         candidate_rows=candidate_rows, flag_totals=flag_totals,
                                         keep=_sample_columns(suite))
        result.gx = outcome.to_json()
        for rule in result.rules:
            if rule["id"] in outcome.results:
                rule["gx"] = outcome.results[rule["id"]]
                rule["agreement"] = outcome.agreement.get(rule["id"])
        result.seconds["great_expectations"] = round(time.perf_counter() - t, 3)

        t = time.perf_counter()
        if not any(flag_totals.values()):
            samples = {}
        elif outcome.frame is not None:  # the whole frame is in pandas already: no Spark job needed
            samples = _samples_from_pandas(outcome.frame, suite, o.sample_failing_rows)
        else:
            samples = _samples(frame, suite, o.sample_failing_rows)
        outcome.frame = None
        for rule in result.rules:
            rule["samples"] = samples.get(rule["id"], [])
        result.seconds["samples"] = round(time.perf_counter() - t, 3)
        if outcome.disagreements:
            result.fail("Great Expectations and the gate disagree (a bug in the rule compiler): " +
                        "; ".join(outcome.disagreements))
        if result.status == "failed":
            return

        t = time.perf_counter()
        processed, quarantine = output_datasets(ds)
        meta = {GATE_INPUT: signature}
        # quarantine first: consumers never see a new processed day whose refused rows are not recorded
        refused = _publish(ctx, quarantine, quarantine_rows(frame, suite), result.counts["quarantined"], days_owned,
                           o.arrow_write_max_rows, meta)
        written = _publish(ctx, processed, processed_rows(frame, suite), result.counts["processed"], days_owned,
                           o.arrow_write_max_rows, meta)
        parents.published(processed.qualified_name)
        result.seconds["publish"] = round(time.perf_counter() - t, 3)
        _reconcile_output(per_day, written.partitions, refused.partitions, result)
        result.published = True
    finally:
        frame.unpersist()

    count = ctx.count(f"processed.{ds.name}")
    totals = result.counts
    count.rows_in += totals["raw"]
    count.quarantined += totals["quarantined"]
    count.duplicates += totals["duplicates"]
    count.notes.append(f"gate: {totals['raw']:,} raw = {totals['processed']:,} processed + "
                       f"{totals['quarantined']:,} quarantined + {totals['duplicates']:,} duplicates")
    for d, v in per_day.items():
        ctx.lake.write_text(report.day_stats_path(ds.name, d), _json({
            "dataset": ds.name, "dt": d, "run_id": ctx.run_id, "raw": v["raw"], "rows": v["raw"] - v["duplicates"],
            "nulls": v["nulls"]}))
    if result.status == "passed" and (any(r["failed_rows"] and r["severity"] != "critical" for r in result.rules)
                                      or result.drift or result.rejected_files or totals["quarantined"]):
        result.status = "warned"


# ---- skipping a rerun that has nothing new to decide ---------------------------------------------------------
GATE_INPUT = "gate_input"  # key of the signature in the meta of every partition the gate publishes
#: What the gate's decisions are made of, besides the data: a change to any of these re-gates every day.
CODE = (*sorted(Path(__file__).parent.glob("*.py")), Path(schemas.__file__))


@cache
def _code_fingerprint() -> str:
    from importlib.metadata import version

    digest = hashlib.sha256()
    for path in CODE:
        digest.update(path.read_bytes())
    for package in ("pyspark", "great-expectations"):
        digest.update(f"{package}=={version(package)}".encode())
    return digest.hexdigest()


def input_signature(ctx: RunContext, suite: Suite, o: GateOptions, parents: Parents,
                    pointers: dict[str, dict], days: list[dict[str, str]]) -> str:
    """A hash of everything the gate's output for the run's days depends on: the raw partitions (their
    published versions), the days around them that the row-count and null-share checks compare with, the
    latest write of every table the suite looks rows up in, the declaration, the suite, the settings and the
    gate's code. Equal signatures give equal outputs, so a rerun with an equal one has nothing to publish."""
    ds = suite.dataset
    owned = sorted(p["dt"] for p in days)
    around = sorted({(date.fromisoformat(d) - timedelta(days=k)).isoformat() for d in owned for k in (1, 7)}
                    - set(owned))
    parts = {
        "code": _code_fingerprint(),
        "declaration": [repr(d) for d in (ds, *output_datasets(ds))],
        "suite": suite.gx_config(), "checks": suite.checks,
        "options": {k: v for k, v in asdict(o).items() if k != "skip_unchanged"},
        "days": owned,
        "raw": {d: p.get("version") for d, p in pointers.items()},
        "around": {b: [(ctx.lake.pointer(ds, {"dt": b}) or {}).get("version"),
                       ctx.lake.read_text(report.day_stats_path(ds.name, b))] for b in around},
        "parents": {q: (ctx.lake.last_publish(parents.resolve(q)) or {}).get("version") for q in suite.lookups},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def gated_before(ctx: RunContext, ds: Dataset, days: list[dict[str, str]], signature: str) -> str | None:
    """The run that published every one of ``days`` of the processed and quarantine tables from inputs with
    this ``signature``; None if any day is missing or came from other inputs."""
    since = None
    for target in output_datasets(ds):
        for part in days:
            ptr = ctx.lake.pointer(target, part)
            if not ptr or (ptr.get("meta") or {}).get(GATE_INPUT) != signature:
                return None
            since = ptr.get("run_id")
    return since or "?"


# ---- checks before Spark -------------------------------------------------------------------------------------
def _file_checks(pointers: dict[str, dict], o: GateOptions, result: DatasetResult) -> None:
    """Drift and rejections that ingestion recorded in the raw partition pointers."""
    for dt, ptr in sorted(pointers.items()):
        meta = ptr.get("meta") or {}
        for w in meta.get("warnings") or []:
            result.drift.append({"dt": dt, "file": w.get("source_file"), "column": _columns_in(w.get("warning", "")),
                                 "kind": "added", "severity": "warning", "message": w.get("warning")})
        for r in meta.get("rejected") or []:
            drift = str(r.get("reason", "")).startswith(DRIFT_REASONS)
            result.rejected_files.append({**r, "dt": dt, "drift": drift})
            if drift:
                result.drift.append({"dt": dt, "file": r.get("source_file"), "column": r.get("column"),
                                     "kind": "missing or renamed", "severity": "critical" if o.fail_on_drift
                                     else "warning", "message": r.get("reason")})
                message = (f"schema drift in {r.get('source_file')}: column {r.get('column')}: {r.get('reason')} "
                           "(file rejected at ingestion)")
                if o.fail_on_drift:
                    result.fail(message)
                else:
                    result.warnings.append(message)
            else:
                result.warnings.append(f"{r.get('source_file')} was rejected at ingestion"
                                       + (f" (line {r['line']})" if r.get("line") else "") + f": {r.get('reason')}")


def _columns_in(warning: str) -> str | None:
    # "schema drift: column(s) a, b not declared; accepted and ignored"
    if "column(s) " in warning:
        return warning.split("column(s) ", 1)[1].split(" not declared", 1)[0]
    if "key(s) " in warning:
        return warning.split("key(s) ", 1)[1].split(" not declared", 1)[0]
    return None


def _row_count_check(ctx: RunContext, suite: Suite, pointers: dict[str, dict], o: GateOptions,
                     result: DatasetResult) -> None:
    setting = (suite.checks.get("row_count_drop") or {})
    compare = setting.get("compare", "previous_day")
    if compare == "off":
        result.checks.append({"check": "row_count_drop", "status": "off", "message": "disabled in the suite"})
        return
    drop_max = float(setting.get("max", o.row_count_drop_max))
    min_previous = int(setting.get("min_previous_rows", o.row_count_min_previous))
    step = 7 if compare == "same_weekday" else 1
    compared = 0
    for dt, ptr in sorted(pointers.items()):
        before = (date.fromisoformat(dt) - timedelta(days=step)).isoformat()
        prev = pointers.get(before) or ctx.lake.pointer(suite.dataset, {"dt": before})
        if not prev or prev.get("rows", 0) < min_previous:
            continue
        compared += 1
        rows, prev_rows = ptr.get("rows", 0), prev["rows"]
        if rows < (1 - drop_max) * prev_rows:
            message = (f"row count fell from {prev_rows:,} on {before} to {rows:,} on {dt} "
                       f"({(rows - prev_rows) / prev_rows:+.0%}; the limit is -{drop_max:.0%})")
            result.checks.append({"check": "row_count_drop", "status": "failed", "message": message})
            result.fail(message)
    if not any(c["check"] == "row_count_drop" for c in result.checks):
        result.checks.append({"check": "row_count_drop", "status": "passed",
                              "message": f"{compared} day(s) compared with {compare.replace('_', ' ')} "
                                         f"(at least {min_previous} rows before; limit -{drop_max:.0%})"})


# ---- the Spark aggregation and what is checked on it -------------------------------------------------------------
def _aggregate(frame: DataFrame, suite: Suite) -> list[dict[str, Any]]:
    """One row per (day, source file): counts, rule flags, nulls and unreadable texts per column."""
    from pyspark.sql import functions as F

    layout = Layout(suite)
    keep = ~F.col(DUP)
    aggs = [F.count(F.lit(1)).alias("raw"), F.sum(F.col(DUP).cast("long")).alias("duplicates"),
            F.sum(F.col(QUARANTINED).cast("long")).alias("quarantined")]
    aggs += [F.sum(F.col(flag).cast("long")).alias(flag) for flag in layout.flags.values()]
    for j, c in enumerate(suite.dataset.data_columns):
        aggs.append(F.sum(F.when(keep & F.col(c.name).isNull(), 1).otherwise(0)).alias(f"null{j}"))
        if c.type != "string":
            text = F.col(raw_text_column(c.name))
            aggs.append(F.sum(F.when(keep & text.isNotNull(), 1).otherwise(0)).alias(f"text{j}"))
            type_flag = layout.flags.get(f"type:{c.name}")
            if type_flag:
                aggs.append(F.min(F.when(F.col(type_flag), text)).alias(f"bad{j}"))  # deterministic example
    return [r.asDict() for r in frame.groupBy("dt", "_source_file").agg(*aggs).collect()]


def _reconcile_input(stats: list[dict[str, Any]], pointers: dict[str, dict], suite: Suite,
                     result: DatasetResult) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    layout = Layout(suite)
    cols = suite.dataset.data_columns
    per_day: dict[str, dict[str, Any]] = {
        d: {"raw": 0, "duplicates": 0, "quarantined": 0, "nulls": {c.name: 0 for c in cols}} for d in pointers}
    flag_totals = dict.fromkeys(layout.flags, 0)
    for s in stats:
        day = per_day[s["dt"]]
        for k in ("raw", "duplicates", "quarantined"):
            day[k] += s[k] or 0
        for j, c in enumerate(cols):
            day["nulls"][c.name] += s[f"null{j}"] or 0
        for rule_id, flag in layout.flags.items():
            flag_totals[rule_id] += s[flag] or 0
    for d, day in per_day.items():
        day["processed"] = day["raw"] - day["duplicates"] - day["quarantined"]
        expected = pointers[d].get("rows")
        if expected is not None and expected != day["raw"]:
            raise ReconciliationError(f"{suite.name} {d}: the raw partition pointer says {expected:,} rows, "
                                      f"the gate read {day['raw']:,}")
        if day["processed"] < 0:
            raise ReconciliationError(f"{suite.name} {d}: more rows removed than read")
    result.per_day = {d: {k: v for k, v in day.items() if k != "nulls"} for d, day in per_day.items()}
    result.counts = {k: sum(day[k] for day in per_day.values())
                     for k in ("raw", "processed", "quarantined", "duplicates")}
    result.counts["reconciled"] = False
    return per_day, flag_totals


def _retype_check(stats: list[dict[str, Any]], suite: Suite, o: GateOptions, result: DatasetResult) -> None:
    """A column whose values in one file mostly fail to read as the declared type was re-typed upstream; a
    required column empty in every row of a file (a JSON key renamed upstream) went missing."""
    found = False
    for s in sorted(stats, key=lambda x: (x["dt"], x["_source_file"])):
        rows = (s["raw"] or 0) - (s["duplicates"] or 0)
        for j, c in enumerate(suite.dataset.data_columns):
            empty = s.get(f"text{j}") == 0 if c.type != "string" else s.get(f"null{j}") == rows
            if not c.nullable and rows >= o.retype_min_values and empty:
                found = True
                message = (f"schema drift in {s['_source_file']}: column {c.name}: required but empty in all {rows:,} "
                           "rows (missing or renamed upstream?)")
                result.drift.append({"dt": s["dt"], "file": s["_source_file"], "column": c.name, "kind": "missing",
                                     "severity": "critical", "message": message})
                result.fail(message)
                continue
            if c.type == "string" or f"bad{j}" not in s:
                continue
            present = s.get(f"text{j}") or 0
            bad = s.get(Layout(suite).flags[f"type:{c.name}"]) or 0
            if bad >= o.retype_min_values and present and bad / present > o.retype_share_max:
                found = True
                message = (f"schema drift in {s['_source_file']}: column {c.name}: {bad:,} of {present:,} values "
                           f"do not read as {c.type} (e.g. {s.get(f'bad{j}')!r}); re-typed upstream?")
                result.drift.append({"dt": s["dt"], "file": s["_source_file"], "column": c.name, "kind": "re-typed",
                                     "severity": "critical", "message": message})
                result.fail(message)
    result.checks.append({"check": "re-typed or emptied columns", "status": "failed" if found else "passed",
                          "message": f"a file fails when more than {o.retype_share_max:.0%} (and at least "
                                     f"{o.retype_min_values}) of a column's values do not read as its type, or a "
                                     "required column is empty in all its rows"})


def _null_share_check(ctx: RunContext, suite: Suite, per_day: dict[str, dict[str, Any]], o: GateOptions,
                      result: DatasetResult) -> None:
    setting = suite.checks.get("null_share_jump") or {}
    if setting.get("off"):
        result.checks.append({"check": "null_share_jump", "status": "off", "message": "disabled in the suite"})
        return
    ignore = set(setting.get("ignore") or ())
    jump_max = float(setting.get("max", o.null_share_jump_max))
    compare = setting.get("compare", "previous_day")
    step = 7 if compare == "same_weekday" else 1
    failures = []
    compared = 0
    for dt in sorted(per_day):
        day = per_day[dt]
        rows = day["raw"] - day["duplicates"]
        before = (date.fromisoformat(dt) - timedelta(days=step)).isoformat()
        if before in per_day:
            prev = {"rows": per_day[before]["raw"] - per_day[before]["duplicates"], "nulls": per_day[before]["nulls"]}
        else:
            text = ctx.lake.read_text(report.day_stats_path(suite.name, before))
            prev = _loads(text) if text else None
        if not prev or prev["rows"] < o.null_share_min_rows or rows < o.null_share_min_rows:
            continue
        compared += 1
        for name, nulls in day["nulls"].items():
            if name in ignore:
                continue
            share, prev_share = nulls / rows, prev["nulls"].get(name, 0) / prev["rows"]
            jump = share - prev_share
            pooled = (nulls + prev["nulls"].get(name, 0)) / (rows + prev["rows"])
            noise = o.null_share_z * math.sqrt(pooled * (1 - pooled) * (1 / rows + 1 / prev["rows"]))
            if jump > jump_max and jump > noise:
                failures.append(f"null share of {name} jumped from {prev_share:.0%} on {before} to {share:.0%} "
                                f"on {dt} (limit +{jump_max:.0%})")
    for f in failures:
        result.fail(f)
    result.checks.append({"check": "null_share_jump", "status": "failed" if failures else "passed",
                          "message": "; ".join(failures) if failures else
                          f"{compared} day(s) compared with {compare.replace('_', ' ')} (at least "
                          f"{o.null_share_min_rows} rows each; limit +{jump_max:.0%} and beyond {o.null_share_z} "
                          "standard errors)" + (f"; not checked: {', '.join(sorted(ignore))}" if ignore else "")})


def _rule_results(suite: Suite, flag_totals: dict[str, int], result: DatasetResult) -> None:
    checked = result.counts["raw"] - result.counts["duplicates"]
    for r in suite.rules:
        failed = flag_totals[r.id]
        mostly = r.kwargs.get("mostly", 1)
        result.rules.append({"id": r.id, "type": r.type, "severity": r.severity, "source": r.source,
                             "description": r.description, "kwargs": r.kwargs, "columns": r.columns,
                             "failed_rows": failed, "success": failed <= (1 - mostly) * checked})


def _sample_columns(suite: Suite) -> list[str]:
    """Frame columns a failing-row sample shows: source texts, derived values, lineage."""
    return ([src for _, src in Layout(suite).text_columns()] + [d.name for d in suite.derived] +
            ["dt", "_source_file", "_row_number"])


def _sample_row(values: dict[str, Any], suite: Suite, rule_columns: list[str]) -> dict[str, Any]:
    cols = [c.removeprefix("_raw_") for c in rule_columns]
    keep = ["dt", "_source_file", "_row_number", *suite.dataset.primary_key, *cols]
    return {k: values.get(k) for k in dict.fromkeys(keep) if k in values}


def _samples_from_pandas(pdf, suite: Suite, n: int) -> dict[str, list[dict[str, Any]]]:
    import pandas as pd

    layout = Layout(suite)
    texts = layout.text_columns()
    derived = [d.name for d in suite.derived]
    out: dict[str, list[dict[str, Any]]] = {}
    for rule in suite.rules:
        flagged = pdf[pdf[layout.flags[rule.id]].astype(bool)]
        if flagged.empty:
            continue
        flagged = flagged.sort_values(["dt", "_source_file", "_row_number"]).head(n)
        rows = []
        for rec in flagged.to_dict("records"):
            values: dict[str, Any] = {name: rec.get(src) for name, src in texts}
            values.update({d: None if pd.isna(rec.get(d)) else str(rec.get(d)) for d in derived})
            values.update(dt=rec["dt"], _source_file=rec["_source_file"], _row_number=int(rec["_row_number"]))
            rows.append(_sample_row(values, suite, rule.columns))
        out[rule.id] = rows
    return out


def _samples(frame: DataFrame, suite: Suite, n: int) -> dict[str, list[dict[str, Any]]]:
    """Up to ``n`` failing rows per rule (source text, derived values, lineage), in one small job."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if n <= 0:
        return {}
    layout = Layout(suite)
    texts = [F.col(src).alias(name) for name, src in layout.text_columns()]
    derived = [F.col(d.name).cast("string").alias(d.name) for d in suite.derived]
    failing = frame.where(F.col("_rules_broken").isNotNull() | F.col("_rules_warned").isNotNull())
    exploded = failing.select(
        F.explode(F.split(F.concat_ws("; ", "_rules_broken", "_rules_warned"), "; ")).alias("_rule"),
        "dt", "_source_file", "_row_number", *texts, *derived)
    w = Window.partitionBy("_rule").orderBy("dt", "_source_file", "_row_number")
    picked = exploded.where(F.col("_rule") != "").withColumn("_n", F.row_number().over(w)).where(F.col("_n") <= n)
    out: dict[str, list[dict[str, Any]]] = {}
    shown = {r.id: r.columns for r in suite.rules}
    for row in picked.orderBy("_rule", "_n").collect():
        d = row.asDict()
        rule = d.pop("_rule")
        out.setdefault(rule, []).append(_sample_row(d, suite, shown.get(rule, [])))
    return out


def _publish(ctx: RunContext, target: Dataset, rows: DataFrame, expected: int, days: list[dict[str, str]],
             arrow_max: int, meta: dict[str, Any]):
    """Write through Spark, or, when the rows are few (a daily run), through Arrow without a write job.

    Both paths publish the same rows, sorted the same way, with write-audit-publish.
    """
    if expected > arrow_max:
        return ctx.write(target, rows, replace=days, meta=meta)
    if expected == 0:
        return ctx.write_arrow(target, target.arrow_schema().empty_table(), replace=days, meta=meta)
    table = rows.toArrow()
    order = [*target.partition_by, *(target.primary_key or [c.name for c in target.data_columns])]
    return ctx.write_arrow(target, table.sort_by([(c, "ascending") for c in order]), replace=days, meta=meta)


def _reconcile_output(per_day: dict[str, dict[str, Any]], written: dict[str, int], refused: dict[str, int],
                      result: DatasetResult) -> None:
    """raw = processed + quarantined + duplicates, per day, against what the writes actually published."""
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


def _json(payload: dict[str, Any]) -> str:
    import json

    return json.dumps(payload, indent=1, sort_keys=True)


def _loads(text: str) -> dict[str, Any]:
    import json

    return json.loads(text)

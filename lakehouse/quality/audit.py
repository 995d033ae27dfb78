"""The audit step of write-audit-publish: the dataset's Great Expectations Checkpoint runs on the staged batch
before anything is committed.

:meth:`lakehouse.context.RunContext.write` calls :func:`audit_batch` for processed and analytics tables; the
quality gate calls it for each processed batch it is about to publish. The Checkpoint (one per dataset, in
the lake's GX project: :mod:`lakehouse.quality.gx`) validates the staged rows against the dataset's suite:

* an agent's output: the baseline its declaration implies (types, not-null, allowed values, ranges, unique
  key: :meth:`schemas.Dataset.baseline_expectations`) plus ``expectations/<dataset>.json``, whose
  ``meta.derived_columns`` with an ``expr`` (Spark SQL, transpiled by sqlglot) are added to the batch first;
* a gated dataset (``processed.<raw dataset>``): the baseline of the processed declaration plus the
  business rules of ``expectations/<name>.json`` (:func:`gated_suite_config`), on the rows the gate
  publishes together with the derived columns it decided them from (lookups, expressions). Every critical
  rule must hold on them: a row that broke one and was published anyway is a bug of the gate, and the
  audit stops it.

A failed ``critical`` expectation raises :class:`AuditFailed`: nothing is committed, the previous snapshot
stays what readers see, and the stage fails (so does its Airflow task). Failed ``warning`` and ``info``
expectations are reported in the run summary. ``quality.checkpoint = "off"`` skips the audit.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import schemas
from schemas import Dataset

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

    from lakehouse.context import RunContext

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"
log = logging.getLogger(__name__)


class AuditFailed(RuntimeError):
    """A staged batch broke a critical expectation; nothing was committed."""


@dataclass
class AuditResult:
    dataset: str
    rows: int
    checkpoint: str = ""
    success: bool = True
    failed: dict[str, str] = field(default_factory=dict)  #: rule → "<n> unexpected: description"
    warned: dict[str, str] = field(default_factory=dict)
    #: rule → {success, unexpected_count, element_count, partial_unexpected_list} as GX reported it
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    result_key: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    @classmethod
    def merged(cls, parts: list[AuditResult]) -> AuditResult:
        """One result for the Checkpoint runs of several batches of one dataset (a gate's months): rows and
        unexpected counts added up, a rule successful when it was in every batch."""
        first = parts[0]
        out = cls(first.dataset, 0, checkpoint=first.checkpoint)
        for p in parts:
            out.rows += p.rows
            out.success = out.success and p.success
            out.failed.update(p.failed)
            for rule, text in p.warned.items():
                out.warned.setdefault(rule, text)
            out.result_key += p.result_key
            out.seconds += p.seconds
            for rule, r in p.results.items():
                have = out.results.get(rule)
                if have is None:
                    out.results[rule] = dict(r, partial_unexpected_list=list(r.get("partial_unexpected_list") or []))
                    continue
                have["success"] = bool(have["success"] and r["success"])
                for k in ("unexpected_count", "element_count"):
                    if r.get(k) is not None:
                        have[k] = (have.get(k) or 0) + r[k]
                have["partial_unexpected_list"] = (have["partial_unexpected_list"]
                                                   + list(r.get("partial_unexpected_list") or []))[:5]
                have["exception"] = have.get("exception") or r.get("exception")
        return out

    def to_json(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "rows": self.rows, "success": self.success, "failed": self.failed,
                "warned": self.warned, "result_key": self.result_key, "seconds": round(self.seconds, 3)}


def suite_config(ds: Dataset, directory: Path = EXPECTATIONS_DIR) -> dict[str, Any]:
    """Baseline + suite file of an agent's output dataset, as one Great Expectations suite configuration."""
    expectations = []
    for e in ds.baseline_expectations():
        cols = e["kwargs"].get("column_list")
        if e["type"] == "expect_compound_columns_to_be_unique" and cols and len(cols) == 1:
            e = {**e, "type": "expect_column_values_to_be_unique", "kwargs": {"column": cols[0]}}
        expectations.append(e)
    derived: list[dict[str, Any]] = []
    path = directory / f"{ds.name}.json"
    if path.is_file():
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("name") != ds.name:
            raise ValueError(f"{path}: suite name {doc.get('name')!r} must be the dataset name {ds.name!r}")
        derived = list((doc.get("meta") or {}).get("derived_columns") or [])
        for d in derived:
            if not d.get("expr"):
                raise ValueError(f"{path}: derived column {d.get('name')!r} needs an expr (lookups are gate-only)")
        for e in doc.get("expectations") or []:
            if e.get("severity") not in ("critical", "warning", "info") or not (e.get("meta") or {}).get("rule"):
                raise ValueError(f"{path}: every expectation needs severity and meta.rule ({e.get('type')})")
            expectations.append(e)
    rules = [e["meta"]["rule"] for e in expectations]
    dupes = sorted({r for r in rules if rules.count(r) > 1})
    if dupes:
        raise ValueError(f"{path}: rule id(s) used twice: {dupes}")
    return {"name": ds.qualified_name, "expectations": expectations,
            "meta": {"dataset": ds.qualified_name, "derived_columns": derived}}


def gated_suite_config(ds: Dataset, suite=None) -> dict[str, Any] | None:
    """The suite of a gated dataset's processed table (``processed.tickets``): the baseline its own
    declaration implies (not-null typed columns, allowed values, ranges, the unique key per day) plus the
    business rules of ``expectations/<name>.json`` with their derived columns. The raw-text rules of the
    gate (``type:<col>``, ``not_null`` on the source text) are the gate's own: the published table has no
    source text, its declared types are enforced when the batch is cast to its schema, and the gate's
    predicates are shown to agree with GX (tests/quality/test_agreement.py). Measured on a daily run of the
    small lake: 346 expectations instead of 464, and 8.3 s of GX instead of 14-16 s, because the type
    rules are the ones with a row condition (pandas ``query`` per metric)."""
    if suite is None:
        raw = schemas.catalog().get(f"raw.{ds.name}")
        if ds.zone_root != "processed" or raw is None:
            return None
        from lakehouse.quality.suite import load_suite

        suite = load_suite(raw)
    config = suite.gx_config()
    expectations = [*ds.baseline_expectations(), *[r.config() for r in suite.rules if r.source == "suite"]]
    return {"name": ds.qualified_name, "expectations": expectations, "meta": config["meta"]}


def with_derived(table: pa.Table, derived: list[dict[str, Any]], dialect: str = "spark") -> pa.Table:
    """The batch with the suite's ``expr`` derived columns its stage did not add (DuckDB over Arrow)."""
    import duckdb
    import sqlglot

    missing = [d for d in derived if d.get("expr") and d["name"] not in table.column_names]
    if not missing:
        return table
    con = duckdb.connect()
    try:
        con.register("batch", table)
        exprs = [sqlglot.transpile(d["expr"], read=dialect, write="duckdb")[0] for d in missing]
        select = ", ".join(["*", *[f'({e}) AS "{d["name"]}"' for e, d in zip(exprs, missing, strict=True)]])
        return con.execute(f"SELECT {select} FROM batch").fetch_arrow_table()
    finally:
        con.close()


def comparable(table: pa.Table) -> pd.DataFrame:
    """The batch as pandas the way the compiled predicates compare it: decimals as floats, dates as
    datetimes (GX's pandas expectations compare numbers and datetimes, not ``Decimal``/``date`` objects)."""
    import pandas as pd
    import pyarrow as pa

    pdf = table.to_pandas()
    for f in table.schema:
        if pa.types.is_decimal(f.type):
            pdf[f.name] = pd.to_numeric(pdf[f.name].astype("float64"))
        elif pa.types.is_date(f.type):
            pdf[f.name] = pd.to_datetime(pdf[f.name])
    return pdf


def _summary(r) -> dict[str, Any]:
    info = r.result or {}
    exc = r.exception_info if isinstance(r.exception_info, dict) else {}
    return {"success": bool(r.success), "unexpected_count": info.get("unexpected_count"),
            "element_count": info.get("element_count"),
            "partial_unexpected_list": [str(v) for v in (info.get("partial_unexpected_list") or [])[:5]],
            "exception": exc.get("exception_message") if exc.get("raised_exception") else None}


def validate(ctx: RunContext, ds: Dataset, table: pa.Table, config: dict[str, Any]) -> AuditResult:
    """Run the dataset's Checkpoint on a staged batch (Arrow, with any columns its rules read)."""
    from lakehouse.quality.gx import project

    t0 = time.perf_counter()
    result = AuditResult(ds.qualified_name, table.num_rows, checkpoint=config["name"])
    if not config["expectations"]:
        return result
    frame = gx_frame(table, config, ds.qualified_name)
    cfg = ctx.settings.model("quality")
    gx_project = project(ctx.lake, data_docs=cfg.data_docs == "on")
    validation = gx_project.run(config["name"], config, frame, ctx.run_id)
    result.success = bool(validation.success)
    result.result_key = [str(p) for p in validation.meta.get("msp_result_key", ())]
    by_rule = {e["meta"]["rule"]: e for e in config["expectations"]}
    for r in validation.results:
        rule = r.expectation_config.meta["rule"]
        summary = _summary(r)
        result.results[rule] = summary
        if r.success:
            continue
        what = (f"error: {summary['exception']}" if summary["exception"] else
                f"{summary['unexpected_count']} unexpected (e.g. {summary['partial_unexpected_list'][:3]})")
        text = f"{what}: {by_rule[rule]['meta'].get('description', '')}"
        (result.failed if by_rule[rule].get("severity") == "critical" else result.warned)[rule] = text
    result.seconds = time.perf_counter() - t0
    return result


def gx_frame(table: pa.Table, config: dict[str, Any], name: str = "") -> pd.DataFrame:
    """The pandas frame a Checkpoint validates: the staged batch with its suite's ``expr`` derived columns,
    only the columns the rules read (GX's pandas row conditions cost time in proportion to the frame's
    width), decimals and dates as the compiled predicates compare them."""
    table = with_derived(table, (config.get("meta") or {}).get("derived_columns") or [])
    needed = {c for e in config["expectations"] for c in _columns(e["kwargs"])}
    missing = sorted(needed - set(table.column_names))
    if missing:
        raise AuditFailed(f"{name or config['name']}: the staged batch lacks column(s) {missing} that its "
                          "expectations read; nothing was committed")
    return comparable(table.select(sorted(needed)))


def _columns(kwargs: dict[str, Any]) -> list[str]:
    from lakehouse.quality.suite import condition_columns

    cols = list(kwargs.get("column_list") or [])
    cols += [kwargs[n] for n in ("column", "column_A", "column_B") if kwargs.get(n)]
    return cols + condition_columns(kwargs.get("row_condition"))


def audit_batch(ctx: RunContext, ds: Dataset | str, table: pa.Table | pd.DataFrame,
                config: dict[str, Any] | None = None) -> AuditResult:
    """Audit a staged batch (the write-audit-publish audit of ``ctx.write``): run the dataset's Checkpoint,
    raise :class:`AuditFailed` on a failed critical expectation, note warnings in the run summary.

    ``config`` is the suite configuration; by default the gate's suite for a gated dataset, else the
    declaration's baseline plus ``expectations/<dataset>.json``."""
    import pyarrow as pa

    ds = ds if isinstance(ds, Dataset) else schemas.get(ds)
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    if ctx.settings.model("quality").checkpoint == "off":
        return AuditResult(ds.qualified_name, table.num_rows, success=True)
    if config is None:
        config = gated_suite_config(ds) or suite_config(ds)
    if not table.num_rows:
        return AuditResult(ds.qualified_name, 0, checkpoint=config["name"])
    result = validate(ctx, ds, table, config)
    for rule, text in result.warned.items():
        ctx.warn(f"{ds.qualified_name}: {rule}: {text}")
    if not result.ok:
        raise AuditFailed(f"{ds.qualified_name}: {len(result.failed)} critical expectation(s) failed in the "
                          f"Checkpoint {result.checkpoint}, nothing was committed: "
                          + "; ".join(f"{k}: {v}" for k, v in result.failed.items()))
    ctx.count(ds.qualified_name).notes.append(
        f"audited {result.rows:,} rows: Checkpoint {result.checkpoint} ({len(result.warned)} warning(s))")
    return result

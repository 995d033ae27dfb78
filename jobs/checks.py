"""Write-audit-publish for agent outputs: check a job's rows against their dataset's expectations, then
publish them, or publish nothing.

The rules of an output dataset are the baseline its declaration implies (types, not-null, allowed values,
ranges, unique key: :meth:`schemas.Dataset.baseline_expectations`) plus its suite in
``expectations/<dataset>.json``, in the quality gate's format (Great Expectations 1.x expectations with a
``severity`` and ``meta.rule``; ``meta.derived_columns`` entries with an ``expr`` are Spark SQL expressions
added to the frame first, e.g. the profit identity). Great Expectations validates the rows (pandas engine:
agent outputs are small). A failed ``critical`` rule raises :class:`OutputCheckFailed` and the previous
data stays published; a failed ``warning`` rule is reported in the run summary.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import schemas
from schemas import Dataset

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

    from lakehouse.context import RunContext
    from lakehouse.lake import WriteResult

EXPECTATIONS_DIR = Path(__file__).resolve().parents[1] / "expectations"
log = logging.getLogger(__name__)


class OutputCheckFailed(RuntimeError):
    """A job's output broke a critical expectation; nothing was published."""


@dataclass
class CheckResult:
    dataset: str
    rows: int
    failed: dict[str, str] = field(default_factory=dict)  #: rule → "<n> unexpected: description"
    warned: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def suite_config(ds: Dataset, directory: Path = EXPECTATIONS_DIR) -> dict[str, Any]:
    """Baseline + suite file of an output dataset, as one Great Expectations suite configuration."""
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
    return {"name": ds.name, "expectations": expectations, "meta": {"dataset": ds.qualified_name,
                                                                     "derived_columns": derived}}


def conform(df: DataFrame, ds: Dataset) -> DataFrame:
    """The rows as they will be stored: declared columns, cast to the declared types."""
    from pyspark.sql import functions as F

    fields = ds.spark_schema().fields
    missing = [f.name for f in fields if f.name not in df.columns]
    if missing:
        raise OutputCheckFailed(f"{ds.qualified_name}: the job's output lacks declared columns {missing}")
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in fields])


def check(df: DataFrame, dataset: str | Dataset) -> CheckResult:
    """Validate a job's (conformed) Spark frame against its dataset's expectations."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    t0 = time.perf_counter()
    ds = dataset if isinstance(dataset, Dataset) else schemas.get(dataset)
    config = suite_config(ds)
    frame = df
    for d in config["meta"]["derived_columns"]:
        frame = frame.withColumn(d["name"], F.expr(d["expr"]))
    decimals = {f.name for f in frame.schema.fields if isinstance(f.dataType, T.DecimalType)}
    dates = {f.name for f in frame.schema.fields if isinstance(f.dataType, T.DateType)}
    pdf = frame.toPandas()
    import pandas as pd

    for c in decimals:
        pdf[c] = pd.to_numeric(pdf[c].astype("float64"))
    for c in dates:
        pdf[c] = pd.to_datetime(pdf[c])
    result = CheckResult(ds.qualified_name, len(pdf))
    if pdf.empty:
        result.seconds = time.perf_counter() - t0
        return result
    from great_expectations.core.expectation_suite import ExpectationSuite

    from lakehouse.quality.gx import gx_context

    ctx = gx_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        suite = ExpectationSuite(name=ds.name, expectations=config["expectations"])
        source = ctx.data_sources.add_or_update_pandas("agent_outputs")
        asset = source.add_dataframe_asset(f"{ds.name}_{time.monotonic_ns()}")
        batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": pdf})
        res = batch.validate(suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 3})
    by_rule = {e["meta"]["rule"]: e for e in config["expectations"]}
    for r in res.results:
        rule = r.expectation_config.meta["rule"]
        if r.success:
            continue
        info = r.result or {}
        exc = (r.exception_info or {}) if isinstance(r.exception_info, dict) else {}
        what = (f"{info.get('unexpected_count')} unexpected (e.g. {info.get('partial_unexpected_list')})"
                if not exc.get("raised_exception") else f"error: {exc.get('exception_message')}")
        text = f"{what}: {by_rule[rule]['meta'].get('description', '')}"
        (result.failed if by_rule[rule].get("severity") == "critical" else result.warned)[rule] = text
    result.seconds = time.perf_counter() - t0
    return result


def publish(ctx: RunContext, dataset: str, df: DataFrame, replace=None, **kwargs: Any) -> WriteResult:
    """Check ``df`` against ``dataset``'s expectations, then write it (write-audit-publish)."""
    ds = schemas.get(dataset)
    rows = conform(df, ds).cache()
    try:
        result = check(rows, ds)
        for rule, text in result.warned.items():
            ctx.warn(f"{dataset}: {rule}: {text}")
        if not result.ok:
            raise OutputCheckFailed(f"{dataset}: {len(result.failed)} critical expectation(s) failed, nothing was "
                                    "published: " + "; ".join(f"{k}: {v}" for k, v in result.failed.items()))
        ctx.count(dataset).notes.append(f"checked {result.rows:,} rows against {dataset}'s expectations "
                                        f"({len(result.warned)} warning(s))")
        return ctx.write(ds, rows, replace=replace, **kwargs)
    finally:
        rows.unpersist()


def publish_pandas(ctx: RunContext, dataset: str, frame, replace=None, **kwargs: Any) -> WriteResult:
    """:func:`publish` for a pandas frame (typed through the declaration's Arrow schema first)."""
    import pyarrow as pa

    ds = schemas.get(dataset)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.select(ds.arrow_schema().names).cast(ds.arrow_schema())
    df = ctx.spark.createDataFrame(table.to_pandas(), ds.spark_schema()) if table.num_rows else \
        ctx.spark.createDataFrame([], ds.spark_schema())
    return publish(ctx, dataset, df, replace=replace, **kwargs)

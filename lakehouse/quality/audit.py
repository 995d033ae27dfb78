"""The audit step of write-audit-publish: a staged batch is validated against its dataset's expectations
before it is committed.

The expectations of a dataset are the baseline its declaration implies (types, not-null, allowed values,
ranges, unique key: :meth:`schemas.Dataset.baseline_expectations`) plus its suite in
``expectations/<dataset>.json`` (Great Expectations 1.x expectations with a ``severity`` and ``meta.rule``;
``meta.derived_columns`` with an ``expr`` are SQL expressions added to the batch first, e.g. the profit
identity). Great Expectations validates the staged rows (pandas: a stage's batch is small); a failed
``critical`` expectation raises :class:`AuditFailed` and nothing is committed, so the previous snapshot stays
what readers see; a failed ``warning`` is reported in the run summary.
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
    import pandas as pd
    import pyarrow as pa

    from lakehouse.context import RunContext

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"
log = logging.getLogger(__name__)
_CONTEXT: Any = None


class AuditFailed(RuntimeError):
    """A staged batch broke a critical expectation; nothing was committed."""


@dataclass
class AuditResult:
    dataset: str
    rows: int
    failed: dict[str, str] = field(default_factory=dict)  #: rule → "<n> unexpected: description"
    warned: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def suite_config(ds: Dataset, directory: Path = EXPECTATIONS_DIR) -> dict[str, Any]:
    """Baseline + suite file of a typed dataset, as one Great Expectations suite configuration."""
    expectations = []
    for e in ds.baseline_expectations():
        cols = e["kwargs"].get("column_list")
        if e["type"] == "expect_compound_columns_to_be_unique" and cols and len(cols) == 1:
            e = {**e, "type": "expect_column_values_to_be_unique", "kwargs": {"column": cols[0]}}
        expectations.append(e)
    derived: list[dict[str, Any]] = []
    path = directory / f"{ds.name}.json"
    if path.is_file() and ds.zone_root != "processed":  # processed twins are the gate's; their suite is raw
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


def gx_context():
    """One ephemeral GX context per process (building one is cheap, importing GX is not)."""
    global _CONTEXT
    if _CONTEXT is None:
        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        _CONTEXT = ctx
    return _CONTEXT


def with_derived(table: pa.Table, derived: list[dict[str, Any]], dialect: str = "spark") -> pd.DataFrame:
    """The batch as pandas with the suite's derived columns (SQL expressions, run by DuckDB)."""
    import duckdb

    if not derived:
        return table.to_pandas()
    con = duckdb.connect()
    try:
        con.register("batch", table)
        import sqlglot

        exprs = [sqlglot.transpile(d["expr"], read=dialect, write="duckdb")[0] for d in derived]
        select = ", ".join(["*", *[f'({e}) AS "{d["name"]}"' for e, d in zip(exprs, derived, strict=True)]])
        return con.execute(f"SELECT {select} FROM batch").df()
    finally:
        con.close()


def validate(table: pa.Table, ds: Dataset) -> AuditResult:
    """Validate a staged batch against its dataset's expectations."""
    import pandas as pd
    import pyarrow as pa

    t0 = time.perf_counter()
    config = suite_config(ds)
    result = AuditResult(ds.qualified_name, table.num_rows)
    if not table.num_rows or not config["expectations"]:
        result.seconds = time.perf_counter() - t0
        return result
    pdf = with_derived(table, config["meta"]["derived_columns"])
    for f in table.schema:  # GX compares decimals and dates as numbers and datetimes
        if pa.types.is_decimal(f.type) and f.name in pdf:
            pdf[f.name] = pd.to_numeric(pdf[f.name].astype("float64"))
        elif pa.types.is_date(f.type) and f.name in pdf:
            pdf[f.name] = pd.to_datetime(pdf[f.name])
    from great_expectations.core.expectation_suite import ExpectationSuite

    ctx = gx_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        suite = ExpectationSuite(name=ds.name, expectations=config["expectations"])
        source = ctx.data_sources.add_or_update_pandas("staged")
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


def audit_batch(ctx: RunContext, ds: Dataset | str, table: pa.Table) -> AuditResult:
    """Audit a staged batch for ``ctx.write``: raise on a failed critical expectation, note warnings."""
    ds = ds if isinstance(ds, Dataset) else schemas.get(ds)
    if ctx.settings.model("quality").checkpoint == "off":
        return AuditResult(ds.qualified_name, table.num_rows)
    result = validate(table, ds)
    for rule, text in result.warned.items():
        ctx.warn(f"{ds.qualified_name}: {rule}: {text}")
    if not result.ok:
        raise AuditFailed(f"{ds.qualified_name}: {len(result.failed)} critical expectation(s) failed, nothing was "
                          "committed: " + "; ".join(f"{k}: {v}" for k, v in result.failed.items()))
    ctx.count(ds.qualified_name).notes.append(f"audited {result.rows:,} rows ({len(result.warned)} warning(s))")
    return result

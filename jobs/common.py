"""Helpers every agent job needs: the latest state of change exports, as-of reads, calendar months.

Processed tables keep every exported version of a record (a *change export* writes a row on each day the
record changes, in that day's ``dt`` partition). A job that wants "the agreement as it stands" takes the
latest version with :func:`latest`; a job that must be reproducible for a given run day reads only what
had arrived by then with :func:`read_as_of`, so a rerun of that day gives the same answer even after later
exports were ingested.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

    from lakehouse.context import RunContext

#: Lineage columns that break ties between two versions exported with the same ``updated_at``.
TIE_BREAKERS = ("dt", "_source_file", "_row_number")


# ---- reading ------------------------------------------------------------------------------------
def read_as_of(ctx: RunContext, dataset: str, as_of: date, since: date | None = None) -> DataFrame:
    """Published rows of a ``dt``-partitioned dataset exported on or before ``as_of`` (and on or after
    ``since``), pruned to those partitions before Spark reads anything."""
    import schemas

    ds = schemas.get(dataset)
    keys = None
    if "dt" in ds.partition_by and len(ds.partition_by) == 1:
        keys = [k for k in ctx.lake.partitions(ds)
                if k[3:] <= as_of.isoformat() and (since is None or k[3:] >= since.isoformat())]
    return ctx.read(ds, keys)


def first_export_day(ctx: RunContext, datasets: Iterable[str]) -> date | None:
    """Earliest ``dt`` published in any of ``datasets`` (from the partition pointers, no data read)."""
    import schemas

    days = [k[3:] for name in datasets for k in ctx.lake.partitions(schemas.get(name)) if k.startswith("dt=")]
    return date.fromisoformat(min(days)) if days else None


def stale_partitions(ctx: RunContext, upstream: str, downstream: str) -> list[str]:
    """Partition values (e.g. months) of ``upstream`` published after the same partition of
    ``downstream`` (or missing there): what a derived table must recompute. Both must share one partition
    column. Works across processes (Airflow tasks) because it compares the publish times in the pointers."""
    import schemas

    up, down = schemas.get(upstream), schemas.get(downstream)
    theirs, ours = ctx.lake.published(up), ctx.lake.published(down)
    stale = [k for k, ptr in theirs.items() if k not in ours or ptr["published_at"] >= ours[k]["published_at"]]
    return sorted(k.split("=", 1)[1] for k in stale)


def to_rebuild(ctx: RunContext, upstream: str, downstream: str) -> list[str]:
    """Partition values of ``upstream`` that ``downstream`` must recompute: every published one from the
    first stale value on (later values depend on earlier ones, e.g. trailing months). Empty when
    ``downstream`` is up to date."""
    stale = stale_partitions(ctx, upstream, downstream)
    return [v for v in published_values(ctx, upstream) if v >= stale[0]] if stale else []


def published_values(ctx: RunContext, dataset: str) -> list[str]:
    """Values of the (single) partition column of ``dataset`` that are published, sorted."""
    import schemas

    return sorted(k.split("=", 1)[1] for k in ctx.lake.partitions(schemas.get(dataset)))


def latest(df: DataFrame, key: Sequence[str], order: Sequence[str] = ("updated_at",)) -> DataFrame:
    """One row per ``key``: the version with the greatest ``order`` values (a change export's latest
    state). Ties are broken by export day, file and row number, so the pick is deterministic."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cols = [*order, *[c for c in TIE_BREAKERS if c in df.columns]]
    w = Window.partitionBy(*key).orderBy(*[F.col(c).desc_nulls_last() for c in cols])
    return df.withColumn("_version_rank", F.row_number().over(w)).where("_version_rank = 1").drop("_version_rank")


# ---- calendar months ---------------------------------------------------------------------------
def month_of(d: date) -> str:
    """``2024-03-15`` → ``2024-03``."""
    return f"{d.year:04d}-{d.month:02d}"


def month_start(month: str) -> date:
    return date(int(month[:4]), int(month[5:7]), 1)


def month_end(month: str) -> date:
    y, m = int(month[:4]), int(month[5:7])
    return date(y, m, calendar.monthrange(y, m)[1])


def add_months(month: str, n: int) -> str:
    y, m = int(month[:4]), int(month[5:7]) - 1 + n
    return f"{y + m // 12:04d}-{m % 12 + 1:02d}"


def months_between(first: str, last: str) -> list[str]:
    """Every month from ``first`` to ``last`` inclusive (empty when last < first)."""
    out, m = [], first
    while m <= last:
        out.append(m)
        m = add_months(m, 1)
    return out


def closing_day(month: str, close_days: int) -> date:
    """The day a month becomes final: its last day plus the grace for late invoices and time entries."""
    return month_end(month) + timedelta(days=close_days)


def month_col(c: Column | str) -> Column:
    """Spark: a date or timestamp column → ``yyyy-MM`` text."""
    from pyspark.sql import functions as F

    return F.date_format(F.col(c) if isinstance(c, str) else c, "yyyy-MM")


def month_start_col(c: Column | str) -> Column:
    """Spark: ``yyyy-MM`` text → the first day of that month (date)."""
    from pyspark.sql import functions as F

    return F.to_date(F.concat(F.col(c) if isinstance(c, str) else c, F.lit("-01")))


def months_frame(spark, months: Iterable[str]) -> DataFrame:
    """A one-column frame ``month`` (with ``month_start``/``month_end`` dates) of the given months."""
    from pyspark.sql import types as T

    rows = [(m, month_start(m), month_end(m)) for m in sorted(set(months))]
    schema = T.StructType([T.StructField("month", T.StringType(), False),
                           T.StructField("month_start", T.DateType(), False),
                           T.StructField("month_end", T.DateType(), False)])
    return spark.createDataFrame(rows, schema)

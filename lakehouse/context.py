"""What a stage receives: the settings, the lake, the run's dates, a lazily built Spark session,
and a ledger that counts rows in, out, quarantined and de-duplicated per dataset."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import schemas
from lakehouse.config import Settings
from lakehouse.lake import Lake, WriteResult
from schemas import Dataset

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession


def _dataset(ds: str | Dataset) -> Dataset:
    return ds if isinstance(ds, Dataset) else schemas.get(ds)


def new_run_id() -> str:
    return f"run-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


def date_range(start: date, end: date) -> list[date]:
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


@dataclass
class DatasetCount:
    rows_in: int = 0
    rows_out: int = 0
    quarantined: int = 0
    duplicates: int = 0
    partitions: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class RunContext:
    settings: Settings
    lake: Lake
    run_id: str
    dates: list[date]
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    counts: dict[str, DatasetCount] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: ``progress(description, completed, total)``; the CLI draws bars, Airflow logs lines.
    progress: Callable[[str, int, int], None] = lambda *_: None
    current_stage: str = ""
    #: Optional narrowing of a stage's work, e.g. ``{"sources": ["psa"]}`` (one Airflow task per source).
    params: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings, dates: list[date], run_id: str | None = None, lake: Lake | None = None,
               **kwargs: Any) -> RunContext:
        from lakehouse.catalog import publish_hook

        if lake is None:
            lake = Lake(settings.lake_root, keep_versions=int(settings.get("lake.keep_versions")),
                        on_publish=publish_hook(settings))
        return cls(settings=settings, lake=lake, run_id=run_id or new_run_id(), dates=dates, **kwargs)

    # ---- dates -------------------------------------------------------------------------------
    @property
    def start(self) -> date:
        return self.dates[0]

    @property
    def end(self) -> date:
        return self.dates[-1]

    def date_partitions(self) -> list[dict[str, str]]:
        """The ``dt`` partitions this run owns (used as ``replace=`` when writing daily tables)."""
        return [{"dt": d.isoformat()} for d in self.dates]

    # ---- spark ---------------------------------------------------------------------------------
    @property
    def spark(self) -> SparkSession:
        from lakehouse.spark import get_spark

        return get_spark(self.settings)

    # ---- counting ledger -----------------------------------------------------------------------
    def count(self, dataset: str) -> DatasetCount:
        return self.counts.setdefault(dataset, DatasetCount())

    def warn(self, message: str) -> None:
        self.warnings.append(f"[{self.current_stage}] {message}" if self.current_stage else message)

    # ---- reading and writing through the ledger --------------------------------------------------
    def read(self, dataset: str | Dataset, partitions=None) -> DataFrame:
        return self.lake.read_spark(self.spark, _dataset(dataset), partitions)

    def _record(self, result: WriteResult) -> WriteResult:
        c = self.count(result.dataset)
        c.rows_out += result.rows
        c.partitions += len(result.partitions)
        self.outputs[result.dataset] = {"rows": result.rows, "partitions": len(result.partitions),
                                        "version": result.version}
        return result

    def write(self, dataset: str | Dataset, df: DataFrame, replace=None, **kwargs: Any) -> WriteResult:
        """Write a Spark DataFrame to a declared dataset; the row count lands in the run summary."""
        return self._record(self.lake.write_spark(_dataset(dataset), df, self.run_id, replace=replace, **kwargs))

    def write_arrow(self, dataset: str | Dataset, table: pa.Table, replace=None, **kwargs: Any) -> WriteResult:
        return self._record(self.lake.write_arrow(_dataset(dataset), table, self.run_id, replace=replace, **kwargs))

    def write_pandas(self, dataset: str | Dataset, frame: pd.DataFrame, replace=None, **kwargs: Any) -> WriteResult:
        return self._record(self.lake.write_pandas(_dataset(dataset), frame, self.run_id, replace=replace,
                                                   **kwargs))

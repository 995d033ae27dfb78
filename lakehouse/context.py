"""What a stage receives: its settings, the lake, the run's days, the engine its table expressions run on,
and a ledger that counts rows in, out, quarantined and de-duplicated per dataset.

A stage reads with :meth:`RunContext.table` (a table expression over the current snapshot, for the job
engine) or :meth:`RunContext.read_pandas` / :meth:`~RunContext.read_arrow` (small tables, models), and
writes with :meth:`RunContext.write`, which audits the rows against the dataset's expectations (the
write-audit-publish audit: a Great Expectations Checkpoint on the staged batch) and commits them in one
Iceberg snapshot; inside :meth:`RunContext.deferred_writes` (a windowed stage's run of many days, done a
month at a time) the writes are staged and each table is committed once, at the end. A stage may only read
and write what its declaration names: reading or writing anything else is refused, so the declaration that
orders the run and schedules the DAGs cannot drift from the code.

Incremental work: :attr:`RunContext.rebuild` is true when the stage's settings or code changed since it last
ran (or it never ran): it must recompute everything it owns. Otherwise :meth:`RunContext.changed` tells
which partition values of an input changed since the stage last consumed it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import schemas
from lakehouse.config import Settings
from lakehouse.lake import Lake, StagedWrite, WriteResult, day_partitions, where_mask
from schemas import Dataset

if TYPE_CHECKING:  # pragma: no cover
    import ibis
    import pandas as pd
    import pyarrow as pa

    from lakehouse.agents import Stage
    from lakehouse.engine import Engine


class UndeclaredAccess(PermissionError):
    """A stage read or wrote a dataset its declaration does not name."""


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
    #: Optional narrowing of a stage's work, e.g. ``{"sources": ["psa"]}`` (one Airflow task per source).
    params: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The stage running now (set by the runner; None outside a run, e.g. in a test calling a function).
    stage: Stage | None = None
    #: The stage's settings or code changed since it last ran, or it never ran: recompute everything.
    rebuild: bool = True
    #: Input dataset -> the snapshot this stage consumed when it last ran (see :meth:`changed`).
    last_inputs: dict[str, int | None] = field(default_factory=dict)
    #: Input dataset -> the snapshot read in this run (recorded in the stage state when the stage succeeds).
    consumed: dict[str, int | None] = field(default_factory=dict)
    #: Open staged writes by table while :meth:`deferred_writes` runs (None: each write commits at once).
    deferred: dict[str, StagedWrite] | None = None
    #: What the running stage computed once and reuses (:meth:`cached`); emptied when a stage starts.
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)
    _fresh: bool = field(default=True, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    @classmethod
    def create(cls, settings: Settings, dates: list[date], run_id: str | None = None, lake: Lake | None = None,
               **kwargs: Any) -> RunContext:
        lake = lake or Lake.from_settings(settings)
        return cls(settings=settings, lake=lake, run_id=run_id or new_run_id(), dates=list(dates), **kwargs)

    # ---- dates ----------------------------------------------------------------------------------------
    @property
    def start(self) -> date:
        return self.dates[0]

    @property
    def end(self) -> date:
        return self.dates[-1]

    @property
    def days(self) -> list[str]:
        """The run's export days as ISO strings (the ``dt`` values it owns)."""
        return [d.isoformat() for d in self.dates]

    def date_partitions(self) -> list[dict[str, str]]:
        """The ``dt`` partitions this run owns (``replace=`` of daily tables)."""
        return day_partitions(self.dates)

    # ---- settings and engine --------------------------------------------------------------------------
    @property
    def config(self) -> Any:
        """The validated settings of the running stage's agent (``settings.model(<agent>)``)."""
        if self.stage is None:
            raise RuntimeError("ctx.config is the running stage's agent settings; no stage is running")
        return self.settings.model(self.stage.agent)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from lakehouse.environment import engine

            self._engine = engine(self.settings)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def cached(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()`` the first time the running stage asks for ``key``, the same value afterwards: for code
        called once per item that reads the same rows each time (a vote per proposal reads a score table)."""
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    # ---- the declaration bounds what a stage touches ------------------------------------------------------
    def _check(self, ds: Dataset, write: bool) -> None:
        if self.stage is None:
            return
        from lakehouse.agents import registry

        reg = registry()
        if self.stage.name not in reg.stages:
            return
        allowed = reg.may_write(self.stage, ds.qualified_name) if write else reg.may_read(self.stage,
                                                                                            ds.qualified_name)
        if not allowed:
            verb, field_ = ("write", "writes") if write else ("read", "reads")
            raise UndeclaredAccess(f"stage {self.stage.name} may not {verb} {ds.qualified_name}: add it to the "
                                   f"stage's {field_} in its agent's declaration")

    # ---- counting ledger ---------------------------------------------------------------------------------
    def count(self, dataset: str) -> DatasetCount:
        return self.counts.setdefault(dataset, DatasetCount())

    def warn(self, message: str) -> None:
        label = self.stage.name if self.stage is not None else ""
        self.warnings.append(f"[{label}] {message}" if label else message)

    # ---- reading ---------------------------------------------------------------------------------------
    def _snapshot(self, ds: Dataset) -> int | None:
        name = ds.qualified_name
        if name not in self.consumed:
            self.consumed[name] = self.lake.snapshot_id(ds)
        return self.consumed[name]

    def table(self, dataset: str | Dataset, where: Mapping[str, Any] | None = None) -> ibis.Table:
        """A table expression over the current snapshot's rows (matching ``where``, e.g. ``{"dt": days}`` or
        ``{"month": Range("2024-01", None)}``: files are pruned before anything is read)."""
        ds = _dataset(dataset)
        self._check(ds, write=False)
        snap = self._snapshot(ds)
        t = self.engine.files(ds, self.lake.files(ds, where, snap) if self._holds(ds, snap) else [])
        return filter_where(t, where)

    def _holds(self, ds: Dataset, snap: int | None) -> bool:
        """Whether the table may hold rows for this stage: it has a snapshot, or this stage staged rows."""
        return snap is not None or ds.qualified_name in self.lake.staged

    def read_arrow(self, dataset: str | Dataset, where: Mapping[str, Any] | None = None) -> pa.Table:
        ds = _dataset(dataset)
        self._check(ds, write=False)
        snap = self._snapshot(ds)
        if not self._holds(ds, snap):
            return ds.arrow_schema().empty_table()
        return self.lake.read_arrow(ds, where, snap)

    def read_pandas(self, dataset: str | Dataset, where: Mapping[str, Any] | None = None) -> pd.DataFrame:
        return self.read_arrow(dataset, where).to_pandas()

    def partition_values(self, dataset: str | Dataset, column: str | None = None) -> list[str]:
        """Sorted values of a partition column present in the current snapshot of an input."""
        ds = _dataset(dataset)
        self._check(ds, write=False)
        snap = self._snapshot(ds)
        return self.lake.partition_values(ds, column, snap) if self._holds(ds, snap) else []

    def changed(self, dataset: str | Dataset) -> list[dict[str, str]] | None:
        """Partition values of an input whose rows changed since this stage last consumed it; None when
        that is unknown (first run, an expired snapshot, or :attr:`rebuild`): treat everything as changed."""
        ds = _dataset(dataset)
        self._check(ds, write=False)
        if self.rebuild:
            return None
        since = self.last_inputs.get(ds.qualified_name)
        self._snapshot(ds)
        return self.lake.changed_partitions(ds, since)

    # ---- writing ---------------------------------------------------------------------------------------
    def write(self, dataset: str | Dataset, data: Any, replace: Iterable[Mapping[str, Any]] | None = None, *,
              audit: bool | None = None, properties: Mapping[str, str] | None = None) -> WriteResult:
        """Audit and commit rows (a table expression, an Arrow table or a pandas frame) to a declared dataset,
        replacing the partition values in ``replace`` and those present in the rows, in one snapshot.

        ``audit`` (default: on for processed and analytics tables) runs the dataset's expectations on the
        staged rows first; a failed blocking expectation raises and publishes nothing."""
        ds = _dataset(dataset)
        self._check(ds, write=True)
        table = self.to_arrow(data, ds)
        if audit is None:
            audit = ds.zone_root in ("processed", "analytics")
        if audit:
            from lakehouse.quality.audit import audit_batch

            audit_batch(self, ds, table)
        stage = self.stage.name if self.stage else ""
        if self.deferred is not None:
            staged = self.deferred.get(ds.qualified_name)
            if staged is None:
                staged = self.deferred[ds.qualified_name] = self.lake.stage(
                    ds, run_id=self.run_id, stage=stage, properties=properties, fresh=self._fresh)
            result = staged.add(table, replace)
        else:
            result = self.lake.replace(ds, table, run_id=self.run_id, replace=replace, stage=stage,
                                       properties=properties)
        c = self.count(result.dataset)
        c.rows_out += result.rows
        c.partitions += len(result.partitions)
        if self.deferred is None:  # a staged part is published when the block commits
            self._published(result)
        return result

    def _published(self, result: WriteResult) -> None:
        self.outputs[result.dataset] = {"rows": result.rows, "partitions": len(result.partitions),
                                        "snapshot_id": result.snapshot_id}

    @contextlib.contextmanager
    def deferred_writes(self, fresh: bool = True) -> Iterator[dict[str, StagedWrite]]:
        """Inside, :meth:`write` stages its rows (data files are written, nothing is published) and this
        context's reads of a staged table see them; at the end each table written is committed in ONE
        snapshot, in the order first written (so a stage that writes its audit records before its data still
        commits them first). An exception discards everything staged: no table changes. Inside another
        ``deferred_writes`` it stages into the outer one, which commits. ``fresh=False``: the block does not
        read what it writes, so a staged write may start from the table as last loaded (no catalog read; a
        stale one makes the commit retry on the new snapshot)."""
        if self.deferred is not None:
            yield self.deferred
            return
        self.deferred, self._fresh = (staged := {}), fresh
        try:
            yield staged
        except BaseException:
            self.deferred = None
            for w in staged.values():
                w.discard()
            raise
        self.deferred = None
        pending = list(staged.values())
        try:
            while pending:
                self._published(pending[0].commit())
                pending.pop(0)
        except BaseException:
            for w in pending:
                w.discard()
            raise

    def to_arrow(self, data: Any, ds: Dataset) -> pa.Table:
        """Rows as Arrow with the declared columns (extra columns dropped, types cast by the lake)."""
        import pyarrow as pa

        if isinstance(data, pa.Table):
            table = data
        elif hasattr(data, "to_pyarrow") or type(data).__module__.startswith("ibis"):
            table = self.engine.to_arrow(data)
        else:  # pandas
            table = pa.Table.from_pandas(data, preserve_index=False)
        names = [c.name for c in ds.stored_columns()]
        missing = [n for n in names if n not in table.column_names]
        if missing:
            from lakehouse.lake import LakeError

            raise LakeError(f"{ds.qualified_name}: the stage's rows lack declared columns {missing}")
        return table.select(names)

    def emit(self, event_type: str, events: list[Mapping[str, Any]], days: Iterable[str] | None = None) -> WriteResult:
        """Publish this stage's events of one type, replacing its events of those days (default: the run's)."""
        from lakehouse.events import write_outbox

        return write_outbox(self, event_type, events, list(days) if days is not None else self.days)


def filter_where(t: ibis.Table, where: Mapping[str, Any] | None) -> ibis.Table:
    """Rows of a table expression matching a partition filter (values, collections or ranges)."""
    from lakehouse.lake import Range

    for col, wanted in (where or {}).items():
        if col not in t.columns:
            continue
        if isinstance(wanted, Range):
            if wanted.lo is not None:
                t = t.filter(t[col] >= wanted.lo)
            if wanted.hi is not None:
                t = t.filter(t[col] <= wanted.hi)
        elif isinstance(wanted, str | int | float):
            t = t.filter(t[col] == wanted)
        else:
            t = t.filter(is_in(t[col], list(wanted)))
    return t


def is_in(column, values: list[Any]):
    """``column IN values`` as an Ibis predicate; a contiguous run of ISO days (a backfill's ``dt`` values)
    becomes a range, which compiles and plans in constant time where 731 literals took most of a gate's
    expression compilation."""
    from datetime import date, timedelta

    if len(values) > 8 and all(isinstance(v, str) and len(v) == 10 for v in values):
        try:
            days = sorted(date.fromisoformat(v) for v in set(values))
        except ValueError:
            days = []
        if days and (days[-1] - days[0]) == timedelta(days=len(days) - 1):
            return (column >= days[0].isoformat()) & (column <= days[-1].isoformat())
    return column.isin(values)


__all__ = ["DatasetCount", "RunContext", "UndeclaredAccess", "date_range", "filter_where", "is_in", "new_run_id",
           "where_mask"]

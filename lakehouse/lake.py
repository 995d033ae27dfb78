"""The lake: an Apache Iceberg table for every declared dataset, one atomic commit per stage output.

Every dataset of ``schemas/datasets/`` is an Iceberg table in its zone's namespace (``raw``, ``processed``,
``analytics``, ``quarantine``, ``events``) of the table catalog the profile picks (locally pyiceberg's SQL
catalog on a SQLite file under ``MSP_HOME``; on AWS the Glue Data Catalog), stored under
``<lake root>/<zone>/<name>/``. Its schema and partition spec derive from the declaration: columns in
declaration order with their types and nullability; each ``partition_by`` column an identity partition,
except the export day ``dt``, whose files are grouped by month (``truncate(7)``: ``2024-03``), so that a table
holds a file or a few per month rather than one tiny file per day (two years of a daily table: 24 files, not
730). Column statistics in each file still prune reads to the days asked for.

**Writing.** :meth:`Lake.replace` replaces the rows of some ``partition_by`` values (the run's days, a
stage's months) with new rows, in ONE commit that produces one snapshot: the files holding only replaced
rows are dropped, files that also hold other rows are rewritten without them (copy-on-write), and the new
rows are added. A crash before the commit leaves the previous snapshot whole (the files written for the
failed attempt are orphans that maintenance removes); readers see the previous snapshot or the new one,
never a mix. A replace is idempotent, so a retried commit never doubles rows. Each snapshot records the run
id, the stage and an idempotency key; a writer that loses a race with another (the catalog's
compare-and-swap refuses its commit) recomputes what to drop against the new snapshot and tries again, up to
``lake.commit_retries`` times, then fails with a clear error.

**Reading.** Readers pick a snapshot (the current one by default, or one as of a run or a time) and read its
data files (:meth:`Lake.files`): the job engine (DuckDB or Spark), the analysts' DuckDB catalog and the
tests all read the same files, with no Iceberg runtime needed.

The lake also keeps the platform's small files (run reports, quality reports, the model registry, stage
state) under ``<lake root>/_meta`` and ``<lake root>/ml-models``, written atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import posixpath
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs

from lakehouse import faults
from schemas import PARTITION_COLUMN, Dataset

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

log = logging.getLogger(__name__)

#: Zone folders of the lake (tables live under their zone; models and metadata are files).
ZONES = ("raw", "processed", "analytics/daily-summaries", "analytics/monthly-reports", "analytics/kpi-metrics",
         "analytics/predictions", "ml-models", "quarantine", "events")
#: Snapshot summary properties this platform writes on every commit.
RUN_ID = "msp.run-id"
STAGE = "msp.stage"
IDEMPOTENCY_KEY = "msp.idempotency-key"
REPLACED = "msp.replaced"
#: Table properties set at creation.
TABLE_PROPERTIES = {
    "format-version": "2",
    "commit.retry.num-retries": "0",  # the lake retries itself, recomputing what to drop (see module doc)
    "write.parquet.compression-codec": "zstd",
    "write.target-file-size-bytes": str(256 * 1024 * 1024),
}



@dataclass(frozen=True)
class Range:
    """An inclusive range of partition values (``Range("2024-03-01", None)``: from March 1st on)."""

    lo: Any = None
    hi: Any = None

    def __contains__(self, value: Any) -> bool:
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)


#: A partition filter: column -> one value, a collection of values, or a :class:`Range`.
Where = Mapping[str, Any]


class LakeError(RuntimeError):
    """A write could not be committed, or metadata is unreadable; the message says which table and why,
    and what readers still see."""


@dataclass(frozen=True)
class WriteResult:
    """What a commit published: rows per replaced partition value (``dt=2024-01-01`` → rows)."""

    dataset: str
    snapshot_id: int | None
    partitions: dict[str, int] = field(default_factory=dict)
    files_added: int = 0
    files_removed: int = 0

    @property
    def rows(self) -> int:
        return sum(self.partitions.values())

    @property
    def version(self) -> str:
        return str(self.snapshot_id) if self.snapshot_id is not None else ""


@dataclass(frozen=True)
class DataFile:
    """A data file of a snapshot: where it is, its rows, and the min/max of each partition column."""

    path: str
    records: int
    bounds: dict[str, tuple[Any, Any]]


def partition_key(partition: Mapping[str, Any] | None) -> str:
    """``{"dt": "2024-01-01"}`` → ``dt=2024-01-01`` ('' for an unpartitioned table)."""
    if not partition:
        return ""
    return "/".join(f"{k}={v}" for k, v in partition.items())


def parse_partition_key(key: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in key.split("/") if part)


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) or value is None


#: Manifests whose entries a lake keeps in memory (see Lake._plan); a daily run reads a few hundred.
MANIFESTS_KEPT = 4096
#: Where a local lake keeps the entries of its manifests (``Lake._entries``), under the lake root.
MANIFEST_CACHE = "_cache/manifests"
#: above this many values, a file-pruning IN predicate becomes the values' range (see :func:`where_expression`)
PRUNE_IN_LIMIT = 32


def where_expression(where: Where | None):
    """``where`` as a pyiceberg row filter (it prunes manifests and files; rows are filtered by the reader)."""
    from pyiceberg.expressions import (
        AlwaysTrue,
        And,
        EqualTo,
        GreaterThanOrEqual,
        In,
        LessThanOrEqual,
    )

    expr = AlwaysTrue()
    for col, wanted in (where or {}).items():
        if isinstance(wanted, Range):
            parts = ([GreaterThanOrEqual(col, wanted.lo)] if wanted.lo is not None else []) + \
                    ([LessThanOrEqual(col, wanted.hi)] if wanted.hi is not None else [])
        elif _scalar(wanted):
            parts = [EqualTo(col, wanted)]
        else:
            values = list(wanted)
            if len(values) > PRUNE_IN_LIMIT:
                # pyiceberg evaluates an IN predicate per literal per manifest entry and partition projection (a
                # two-year run's 731 days: 40 s of the gate's planning); the bounds prune as well for days, and
                # the callers filter files (_may_match) and rows exactly
                parts = [GreaterThanOrEqual(col, min(values)), LessThanOrEqual(col, max(values))]
            else:
                parts = [In(col, values)] if values else [In(col, ["\x00never"])]
        for part in parts:
            expr = part if isinstance(expr, AlwaysTrue) else And(expr, part)
    return expr


def where_mask(table: pa.Table, where: Where | None) -> pa.Table:
    """The rows of an Arrow table that match ``where``."""
    import pyarrow.compute as pc

    for col, wanted in (where or {}).items():
        if col not in table.column_names:
            continue
        column = table.column(col)
        if isinstance(wanted, Range):
            mask = pa.scalar(True)
            if wanted.lo is not None:
                mask = pc.and_(mask, pc.greater_equal(column, wanted.lo))
            if wanted.hi is not None:
                mask = pc.and_(mask, pc.less_equal(column, wanted.hi))
        elif _scalar(wanted):
            mask = pc.equal(column, wanted)
        else:
            mask = pc.is_in(column, value_set=pa.array(list(wanted), column.type))
        table = table.filter(mask)
    return table


def _keep(kept: dict[str, Any], key: str, value: Any) -> None:
    """Keep ``value`` in a dict of at most :data:`MANIFESTS_KEPT` entries, dropping the oldest first."""
    kept[key] = value
    while len(kept) > MANIFESTS_KEPT:
        kept.pop(next(iter(kept)))


def _filesystem(root: str) -> tuple[pafs.FileSystem, str]:
    if root.startswith("s3://"):
        fs, path = pafs.FileSystem.from_uri(root)
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), str(Path(root.removeprefix("file://")).resolve())


class Lake:
    """The lake at ``root`` (a local folder or ``s3://bucket/prefix``) with its Iceberg table catalog."""

    def __init__(self, root: str, catalog: Catalog, filesystem: pafs.FileSystem | None = None,
                 commit_retries: int = 4, on_commit: Callable[[Dataset, WriteResult], None] | None = None):
        self.root = root.rstrip("/")
        self.catalog = catalog
        if filesystem is None:
            self.fs, self._base = _filesystem(self.root)
        else:
            self.fs, self._base = filesystem, self.root.removeprefix("s3://")
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.commit_retries = commit_retries
        #: Called after every commit (the run ledger and the orchestration's asset events hook in here).
        self.on_commit = on_commit
        self._tables: dict[str, Table] = {}
        self._plans: dict[tuple[str, int, str], list[DataFile]] = {}
        self._manifest_entries: dict[str, list[DataFile]] = {}
        self._raw_entries: dict[str, dict[str, Any]] = {}
        #: Small files read (relative paths): the runner learns from it which promoted models a stage used.
        self.small_reads: set[str] = set()
        #: Open staged writes by table (:meth:`stage`): this lake's reads of those tables see their rows.
        self.staged: dict[str, StagedWrite] = {}

    @classmethod
    def from_settings(cls, settings, **kwargs: Any) -> Lake:
        from lakehouse.environment import table_catalog

        return cls(settings.lake_root, table_catalog(settings),
                   commit_retries=settings.model("lake").commit_retries, **kwargs)

    # ---- tables -------------------------------------------------------------------------------------------
    def location(self, ds: Dataset) -> str:
        return ds.location(self.root)

    def identifier(self, ds: Dataset) -> tuple[str, str]:
        return getattr(self.catalog, "msp_identifier", lambda d: d.table_identifier)(ds)

    def table(self, ds: Dataset, refresh: bool = False) -> Table:
        """The Iceberg table of a dataset, created from its declaration on first use."""
        name = ds.qualified_name
        if name in self._tables and not refresh:
            return self._tables[name]
        tbl = self._load(ds)
        if tbl is None:
            tbl = self._tables[name] = self._create(ds, self.identifier(ds))
        return tbl

    def _load(self, ds: Dataset) -> Table | None:
        """The table as the catalog has it now (None: never created)."""
        from pyiceberg.exceptions import NoSuchTableError

        try:
            tbl = self.catalog.load_table(self.identifier(ds))
        except NoSuchTableError:
            return None
        except Exception as exc:  # unreadable metadata: name the table, say what to do
            name = ds.qualified_name
            raise LakeError(f"{name}: cannot load its Iceberg metadata ({type(exc).__name__}: {exc}); the table's "
                            f"data is untouched. Inspect it with `msp lake history {name}`; if its current metadata "
                            "file is damaged, roll the catalog back to the previous metadata file.") from exc
        self._tables[ds.qualified_name] = tbl
        return tbl

    def _create(self, ds: Dataset, ident: tuple[str, str]) -> Table:
        """Create a table from its declaration. Another process may create it (or its namespace) at the same
        moment (concurrent Airflow tasks, the run's stage workers): losing that race is not an error, whatever
        the catalog raised, as long as the table is there afterwards."""
        try:
            self.catalog.create_namespace_if_not_exists(ident[0])
        except Exception:
            if ident[0] not in {n[0] for n in self.catalog.list_namespaces()}:
                raise
        try:
            return self.catalog.create_table(
                ident, schema=ds.iceberg_schema(), partition_spec=ds.partition_spec(),
                location=self.location(ds), properties={**TABLE_PROPERTIES, "comment": ds.description})
        except Exception:  # created meanwhile by a concurrent task
            if not self.catalog.table_exists(ident):
                raise
            return self.catalog.load_table(ident)

    def exists(self, ds: Dataset) -> bool:
        return self.catalog.table_exists(self.identifier(ds))

    def snapshot_id(self, ds: Dataset) -> int | None:
        """The current snapshot of a table (None: never written). Reads the catalog afresh."""
        tbl = self._load(ds)
        snap = tbl.current_snapshot() if tbl is not None else None
        return snap.snapshot_id if snap else None

    def snapshot_ids(self, datasets: Iterable[Dataset]) -> dict[str, int | None]:
        """The current snapshot of each table, by qualified name, read afresh as :meth:`snapshot_id` does;
        from one catalog query where the catalog answers for many tables at once (a stage's signature asks
        for every table it reads and writes, before and after it runs)."""
        idents = [(ds, self.identifier(ds)) for ds in datasets]
        batch = getattr(self.catalog, "current_snapshot_ids", None)
        known = batch([ident for _ds, ident in idents]) if batch is not None else {}
        return {ds.qualified_name: known[ident] if ident in known else self.snapshot_id(ds) for ds, ident in idents}

    def snapshot_as_of(self, ds: Dataset, when: datetime) -> int | None:
        if not self.exists(ds):
            return None
        snap = self.table(ds).snapshot_as_of_timestamp(int(when.timestamp() * 1000))
        return snap.snapshot_id if snap else None

    # ---- reading --------------------------------------------------------------------------------------------
    def data_files(self, ds: Dataset, where: Where | None = None, snapshot_id: int | None = None) -> list[DataFile]:
        """The data files of a snapshot (default: the current one) that may hold rows matching ``where``; with
        a staged write open on the table (:meth:`stage`), those of the snapshot it started from as the write
        will leave them."""
        staged = self.staged.get(ds.qualified_name)
        if staged is not None and (snapshot_id is None or snapshot_id == staged.base):
            return staged.live(where)
        return self._committed_files(ds, where, snapshot_id)

    def _committed_files(self, ds: Dataset, where: Where | None = None, snapshot_id: int | None = None
                         ) -> list[DataFile]:
        # "current" means current now, not when first loaded
        tbl = self._load(ds) if snapshot_id is None else (self._tables.get(ds.qualified_name) or self._load(ds))
        if tbl is None:
            return []
        snap = tbl.snapshot_by_id(snapshot_id) if snapshot_id is not None else tbl.current_snapshot()
        if snapshot_id is not None and snap is None and (tbl := self._load(ds)) is not None:
            snap = tbl.snapshot_by_id(snapshot_id)  # committed since the table was cached (by another process)
        if snapshot_id is not None and snap is None:
            raise LakeError(f"{ds.qualified_name} has no snapshot {snapshot_id} (expired by maintenance?)")
        if snap is None:
            return []
        cache_key = (ds.qualified_name, snap.snapshot_id, repr(sorted((where or {}).items(), key=str)))
        if cache_key not in self._plans:
            files = [f for _manifest, f in self._plan(tbl, snap, where)]
            if where:
                files = [f for f in files if self._may_match(f, where)]
            self._plans[cache_key] = sorted(files, key=lambda f: f.path)
        return self._plans[cache_key]

    def _plan(self, tbl: Table, snap: Any, where: Where | None) -> list[tuple[str, DataFile]]:
        """The live data files of a snapshot that may hold rows matching ``where``: (the manifest that lists
        it, the file). The caller filters files by their bounds (``_may_match``) and readers filter rows.

        A manifest file never changes once written and consecutive snapshots share most of theirs, so its
        entries are read once (pyiceberg's planner reads every manifest at every scan: 4-7 s of a daily run
        that plans some 300 scans) and kept, in memory and, for a local lake, in ``_cache/manifests`` (see
        :meth:`_entries`). A snapshot with delete files (which this platform never writes, but another engine
        could) is planned by pyiceberg."""
        from pyiceberg.manifest import ManifestContent

        manifests = snap.manifests(tbl.io)
        if any(m.content != ManifestContent.DATA for m in manifests):
            return [("", DataFile(task.file.file_path, task.file.record_count, self._bounds(tbl, task.file)))
                    for task in tbl.scan(row_filter=where_expression(where), snapshot_id=snap.snapshot_id).plan_files()]
        return [(m.manifest_path, f) for m in manifests for f in self._entries(tbl, m)]

    def _entries(self, tbl: Table, manifest: Any) -> list[DataFile]:
        """The live data files a manifest lists. Opening a manifest costs pyiceberg 3-5 ms (its Avro header
        and reader are rebuilt for every file), and each process of a run (the run's own, every stage worker,
        every Airflow task) would open the same few hundred again: the entries of a local lake's manifests are
        kept in ``_cache/manifests/<hash of its path>.json``, written once, read by every later process. The
        cache is derived data: a missing, unreadable or stale entry (the partition fields changed) is read
        from the manifest again; maintenance drops the entries of manifests it removed."""
        path = manifest.manifest_path
        entries = self._manifest_entries.get(path)
        if entries is not None:
            return entries
        fields = self._bound_fields(tbl)
        entries = self._cached_entries(path, fields)
        if entries is None:
            entries = [DataFile(f.file_path, f.record_count, self._bounds(tbl, f))
                       for f in self._raw(tbl, manifest).values()]
            self._cache_entries(path, fields, entries)
        _keep(self._manifest_entries, path, entries)
        return entries

    def _raw(self, tbl: Table, manifest: Any) -> dict[str, Any]:
        """pyiceberg's live data files of a manifest by path (what a commit deletes must be pyiceberg's own)."""
        raw = self._raw_entries.get(manifest.manifest_path)
        if raw is None:
            raw = {e.data_file.file_path: e.data_file
                   for e in manifest.fetch_manifest_entry(tbl.io, discard_deleted=True)}
            _keep(self._raw_entries, manifest.manifest_path, raw)
        return raw

    def _raw_files(self, tbl: Table, snap: Any, files: list[tuple[str, str]]) -> list[Any]:
        """pyiceberg's data files for (manifest, file path) pairs of :meth:`_plan`: only the manifests that
        list them are opened (a manifest of '': the snapshot was planned by pyiceberg, ask it again)."""
        if not files:
            return []
        manifests = {m.manifest_path: m for m in snap.manifests(tbl.io)}
        planned = ({t.file.file_path: t.file for t in tbl.scan(snapshot_id=snap.snapshot_id).plan_files()}
                   if any(not m for m, _f in files) else {})
        return [self._raw(tbl, manifests[m])[f] if m else planned[f] for m, f in files]

    @staticmethod
    def _bound_fields(tbl: Table) -> list[list[Any]]:
        schema = tbl.schema()
        return [[f.field_id, f.name, str(f.field_type)] for f in (schema.find_field(pf.source_id)
                                                                 for pf in tbl.spec().fields)]

    def _manifest_cache_file(self, manifest_path: str) -> str | None:
        """Where a local lake keeps a manifest's entries, relative to the lake root (None: not kept)."""
        if not self.local:
            return None
        digest = hashlib.sha256(manifest_path.encode()).hexdigest()[:32]
        return f"{MANIFEST_CACHE}/{digest[:2]}/{digest}.json"

    def _cached_entries(self, manifest_path: str, fields: list[list[Any]]) -> list[DataFile] | None:
        import json

        cache = self._manifest_cache_file(manifest_path)
        if cache is None:
            return None
        try:  # not read_bytes: that records the read among the stage's small reads
            doc = json.loads(Path(self._small_path(cache)).read_bytes())
            if doc["manifest"] != manifest_path or doc["fields"] != fields:
                return None
            return [DataFile(p, n, {c: (lo, hi) for c, (lo, hi) in b.items()}) for p, n, b in doc["entries"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _cache_entries(self, manifest_path: str, fields: list[list[Any]], entries: list[DataFile]) -> None:
        import json

        cache = self._manifest_cache_file(manifest_path)
        plain = (str, int, float, bool)
        if cache is None or not all(isinstance(v, plain) for e in entries for b in e.bounds.values() for v in b):
            return  # bounds JSON cannot carry exactly (decimals, bytes): kept in memory only
        doc = {"manifest": manifest_path, "fields": fields,
               "entries": [[e.path, e.records, {c: list(b) for c, b in e.bounds.items()}] for e in entries]}
        try:
            self.write_text(cache, json.dumps(doc, separators=(",", ":")))
        except OSError as exc:  # a cache: a read-only or full disk costs speed, not correctness
            log.debug("manifest cache %s not written: %s", cache, exc)

    def prune_manifest_cache(self) -> int:
        """Drop the cached entries of manifests that no longer exist (maintenance expired them); returns how
        many went."""
        import json

        if not self.local:
            return 0
        root = Path(self._small_path(MANIFEST_CACHE))
        removed = 0
        for cache in root.glob("*/*.json") if root.is_dir() else ():
            try:
                manifest = json.loads(cache.read_bytes())["manifest"]
            except (OSError, ValueError, KeyError, TypeError):
                manifest = None
            if manifest is None or not Path(self._fs_path(manifest)).exists():
                cache.unlink(missing_ok=True)
                removed += 1
        return removed

    @staticmethod
    def _bounds(tbl: Table, data_file) -> dict[str, tuple[Any, Any]]:
        from pyiceberg.conversions import from_bytes

        schema = tbl.schema()
        out = {}
        for pf in tbl.spec().fields:
            src = schema.find_field(pf.source_id)
            lo = (data_file.lower_bounds or {}).get(src.field_id)
            hi = (data_file.upper_bounds or {}).get(src.field_id)
            if lo is not None and hi is not None:
                out[src.name] = (from_bytes(src.field_type, lo), from_bytes(src.field_type, hi))
        return out

    @staticmethod
    def _may_match(f: DataFile, where: Where) -> bool:
        for col, wanted in where.items():
            if col not in f.bounds:
                continue
            lo, hi = f.bounds[col]
            if isinstance(wanted, Range):
                if (wanted.lo is not None and hi < wanted.lo) or (wanted.hi is not None and lo > wanted.hi):
                    return False
                continue
            values = [wanted] if _scalar(wanted) else list(wanted)
            if not any(lo <= v <= hi for v in values):
                return False
        return True

    def files(self, ds: Dataset, where: Where | None = None, snapshot_id: int | None = None) -> list[str]:
        return [f.path for f in self.data_files(ds, where, snapshot_id)]

    def partitions(self, ds: Dataset, snapshot_id: int | None = None) -> list[dict[str, str]]:
        """The distinct ``partition_by`` values a snapshot holds rows for, sorted (read from the data)."""
        if not ds.partition_by:
            return [{}] if self.data_files(ds, snapshot_id=snapshot_id) else []
        table = self.read_arrow(ds, snapshot_id=snapshot_id, columns=list(ds.partition_by))
        if not table.num_rows:
            return []
        uniq = table.group_by(list(ds.partition_by)).aggregate([]).to_pylist()
        return sorted(uniq, key=lambda r: tuple(str(r[c]) for c in ds.partition_by))

    def partition_values(self, ds: Dataset, column: str | None = None, snapshot_id: int | None = None) -> list[str]:
        """Sorted values of one partition column (default: the first) present in a snapshot."""
        column = column or ds.partition_by[0]
        return sorted({str(p[column]) for p in self.partitions(ds, snapshot_id)})

    def read_arrow(self, ds: Dataset, where: Where | None = None, snapshot_id: int | None = None,
                   columns: Sequence[str] | None = None) -> pa.Table:
        """The rows of a snapshot matching ``where``, with the declared schema (or only ``columns``)."""
        import pyarrow.parquet as pq

        full = ds.arrow_schema()
        wanted = list(columns) if columns is not None else full.names
        read = list(dict.fromkeys([*wanted, *[c for c in (where or {}) if c in full.names]]))
        schema = pa.schema([full.field(c) for c in read])
        parts = []
        for f in self.data_files(ds, where, snapshot_id):
            present = set(pq.read_schema(self._fs_path(f.path), filesystem=self.fs).names)
            t = pq.read_table(self._fs_path(f.path), filesystem=self.fs, columns=[c for c in read if c in present])
            parts.append(_conform(_fill_missing(t, schema), schema, ds))
        table = pa.concat_tables(parts) if parts else schema.empty_table()
        return where_mask(table, where).select(wanted)

    def read_pandas(self, ds: Dataset, where: Where | None = None, snapshot_id: int | None = None) -> pd.DataFrame:
        return self.read_arrow(ds, where, snapshot_id).to_pandas()

    def checksum(self, ds: Dataset, snapshot_id: int | None = None, exclude: Sequence[str] = ()) -> str:
        """Order-independent content checksum of a snapshot's rows (for idempotency and crash tests);
        ``exclude`` leaves out columns that differ between two equivalent runs (``_ingested_at``, ``_run_id``)."""
        table = self.read_arrow(ds, snapshot_id=snapshot_id)
        table = table.drop_columns([c for c in exclude if c in table.column_names])
        digest = hashlib.sha256()
        digest.update(",".join(table.column_names).encode())
        if table.num_rows:
            import pandas as pd

            row_hashes = pd.util.hash_pandas_object(table.to_pandas().astype(str), index=False).to_numpy()
            row_hashes.sort()
            digest.update(row_hashes.tobytes())
        digest.update(str(table.num_rows).encode())
        return digest.hexdigest()

    # ---- writing ----------------------------------------------------------------------------------------------
    def replace(self, ds: Dataset, data: pa.Table, *, run_id: str, replace: Iterable[Mapping[str, Any]] | None = None,
                stage: str = "", properties: Mapping[str, str] | None = None) -> WriteResult:
        """Replace the rows of some partition values with ``data``, in one commit (one snapshot).

        The partition values replaced are those in ``replace`` plus those present in ``data`` (a value listed
        in ``replace`` with no rows in ``data`` ends up empty, so a rerun that now yields nothing leaves no
        stale rows). An unpartitioned table is replaced whole. Nothing to drop and nothing to add: no commit.
        """
        staged = StagedWrite(self, ds, run_id=run_id, stage=stage, properties=properties)
        try:
            staged.add(data, replace)
            return staged.commit()
        except BaseException:
            staged.discard()
            raise

    def stage(self, ds: Dataset, *, run_id: str, stage: str = "", properties: Mapping[str, str] | None = None,
              fresh: bool = True) -> StagedWrite:
        """A write to ``ds`` whose rows come in several parts (:meth:`StagedWrite.add`, a month at a time) and
        are committed in one snapshot (:meth:`StagedWrite.commit`). Until then this lake's reads of the table
        see the staged rows in place of those they replace; other readers see the table as it was."""
        name = ds.qualified_name
        if name in self.staged:
            raise LakeError(f"{name}: a staged write to the table is open already; commit or discard it first")
        self.staged[name] = StagedWrite(self, ds, run_id=run_id, stage=stage, properties=properties, fresh=fresh)
        return self.staged[name]

    # ---- history ------------------------------------------------------------------------------------------------
    def history(self, ds: Dataset) -> list[dict[str, Any]]:
        """Snapshots of a table, oldest first: id, time, operation, run, stage, rows added and removed."""
        if not self.exists(ds):
            return []
        tbl = self.table(ds, refresh=True)
        current = tbl.current_snapshot()
        out = []
        for s in tbl.snapshots():
            summary = s.summary.additional_properties if s.summary else {}
            out.append({
                "snapshot_id": s.snapshot_id, "parent_id": s.parent_snapshot_id,
                "committed_at": datetime.fromtimestamp(s.timestamp_ms / 1000, UTC).isoformat(timespec="seconds"),
                "operation": s.summary.operation.value if s.summary else "",
                "run_id": summary.get(RUN_ID, ""), "stage": summary.get(STAGE, ""),
                "replaced": summary.get(REPLACED, ""),
                "added_records": int(summary.get("added-records", 0) or 0),
                "deleted_records": int(summary.get("deleted-records", 0) or 0),
                "total_records": int(summary.get("total-records", 0) or 0),
                "current": current is not None and s.snapshot_id == current.snapshot_id,
            })
        return out

    def snapshot_of_run(self, ds: Dataset, run_id: str) -> int | None:
        """The last snapshot a run committed to a table, else the one current when the run committed
        elsewhere (None when the table did not exist yet)."""
        for h in reversed(self.history(ds)):
            if h["run_id"] == run_id:
                return h["snapshot_id"]
        return None

    def changed_partitions(self, ds: Dataset, since: int | None) -> list[dict[str, str]] | None:
        """Partition values whose rows differ between snapshot ``since`` and the current one (None: unknown,
        i.e. ``since`` is None or expired: treat everything as changed).

        Only the data files one snapshot has and the other lacks are read; a file rewritten without changing
        some of its partition values' rows (copy-on-write of a month file when one day is replaced) does not
        report those values."""
        current = self.snapshot_id(ds)
        if since is None or current is None:
            return None
        if since == current:
            return []
        tbl = self.table(ds)
        if tbl.snapshot_by_id(since) is None:
            return None
        before = {f.path: f for f in self.data_files(ds, snapshot_id=since)}
        after = {f.path: f for f in self.data_files(ds, snapshot_id=current)}
        removed = [before[p] for p in sorted(before.keys() - after.keys())]
        added = [after[p] for p in sorted(after.keys() - before.keys())]
        if not ds.partition_by:
            return [{}] if removed or added else []
        old, new = _rows_by_value(self, ds, removed), _rows_by_value(self, ds, added)
        keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        return [dict(zip(ds.partition_by, k, strict=True)) for k in keys]

    # ---- paths and small files of the platform itself ---------------------------------------------------------
    def path(self, relative: str) -> str:
        return f"{self.root}/{relative.lstrip('/')}"

    def _fs_path(self, uri: str) -> str:
        """Lake URI (``file://…``, ``s3://…`` or a plain path) → path for the pyarrow filesystem."""
        if uri.startswith("file://"):
            return uri[len("file://"):]
        if uri.startswith("s3://"):
            return uri[len("s3://"):]
        return uri

    @contextlib.contextmanager
    def local_lock(self, relative: str):
        """An exclusive lock on ``relative`` (a ``.lock`` file beside the lake's small files) for a
        read-modify-write that processes of one machine share: stage workers, Airflow's local executor. A lake
        on S3 takes no lock here (its writers are told apart by the partitions they own)."""
        if not self.local:
            yield
            return
        import fcntl

        path = Path(self._small_path(relative + ".lock"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def write_text(self, relative: str, text: str) -> str:
        return self.write_bytes(relative, text.encode("utf-8"))

    def read_text(self, relative: str) -> str | None:
        data = self.read_bytes(relative)
        return None if data is None else data.decode("utf-8")

    def write_bytes(self, relative: str, data: bytes) -> str:
        """Write a small file (model artifact, report) atomically: readers see the old or the new bytes."""
        uri = self.path(relative)
        target = self._fs_path(uri) if not self.local else str(Path(self._base) / relative.lstrip("/"))
        if self.local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
            Path(tmp).write_bytes(data)
            Path(tmp).replace(target)
        else:  # one PUT: S3 never shows a half-written object
            self.fs.create_dir(posixpath.dirname(target), recursive=True)
            with self.fs.open_output_stream(target) as fh:
                fh.write(data)
        return uri

    def _small_path(self, relative: str) -> str:
        return str(Path(self._base) / relative.lstrip("/")) if self.local else f"{self._base}/{relative.lstrip('/')}"

    def read_bytes(self, relative: str) -> bytes | None:
        self.small_reads.add(relative.lstrip("/"))
        try:
            with self.fs.open_input_stream(self._small_path(relative)) as fh:
                return fh.read()
        except (FileNotFoundError, OSError):
            return None

    def list_files(self, relative: str) -> list[str]:
        """Relative paths of the files under a folder of the lake (sorted)."""
        base = self._small_path(relative.strip("/"))
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True))
        except FileNotFoundError:
            return []
        rel_root = len(self._base) + 1
        return sorted(i.path[rel_root:] for i in infos if i.type == pafs.FileType.File)

    def delete_file(self, relative: str) -> None:
        with contextlib.suppress(FileNotFoundError, OSError):
            self.fs.delete_file(self._small_path(relative))


# ---- helpers ---------------------------------------------------------------------------------------------------

@dataclass
class _StagedFile:
    """A data file a staged write has written: pyiceberg's description (what the commit appends) and ours."""

    file: Any
    entry: DataFile
    #: rows kept from a file of the snapshot the write started from: written again if that snapshot moves
    from_base: bool = False


class StagedWrite:
    """One table's write of a stage, made of parts and committed in one snapshot (see :meth:`Lake.stage`).

    Each :meth:`add` replaces some partition values, exactly as :meth:`Lake.replace` would, but against what
    the write has staged so far on top of its base snapshot: data files are written at once (so memory holds
    one part, a month of a backfill, not the whole run), files of the base that hold replaced rows are
    marked dropped (their other rows written again), and staged files of an earlier part whose values are
    replaced again are dropped too. :meth:`commit` publishes all of it in ONE snapshot; a crash before leaves
    the table as it was (the staged files are orphans that ``msp lake maintain`` removes; :meth:`discard`
    deletes them at once). When another writer committed meanwhile, the commit recomputes what it drops
    against the new snapshot and tries again, like :meth:`Lake.replace`.

    The Iceberg library writes data files only inside a transaction it commits at once (pyiceberg 0.12's
    ``append``/``overwrite`` take a whole table), so the parts are written with its data-file writer and
    added to one overwrite at the end, which is what a transaction does with them anyway."""

    def __init__(self, lake: Lake, ds: Dataset, *, run_id: str, stage: str = "",
                 properties: Mapping[str, str] | None = None, fresh: bool = False):
        self.lake, self.ds, self.run_id, self.stage = lake, ds, run_id, stage
        self.properties = dict(properties or {})
        # a one-part write may start from the table as last loaded (a commit on a stale snapshot fails and is
        # redone on the new one); a write of several parts reads its own rows meanwhile, from a current base
        self.tbl = lake.table(ds, refresh=fresh)
        snap = self.tbl.current_snapshot()
        self.base: int | None = snap.snapshot_id if snap is not None else None
        #: rows staged per replaced partition value (``dt=2024-01-01`` → rows)
        self.groups: dict[str, int] = {}
        #: files of the base snapshot the write drops: path → (the manifest that lists it, the file)
        self.dropped: dict[str, tuple[str, DataFile]] = {}
        self.files: list[_StagedFile] = []
        self._uuid = uuid.uuid4()
        self._counter = itertools.count(0)
        self.closed = False

    # ---- what the write leaves --------------------------------------------------------------------------------
    def live(self, where: Where | None = None) -> list[DataFile]:
        """The table's data files as the write will leave them, that may hold rows matching ``where``."""
        out = []
        if self.base is not None:
            snap = self.tbl.snapshot_by_id(self.base)
            out = [f for _m, f in self.lake._plan(self.tbl, snap, where) if f.path not in self.dropped]
        out += [s.entry for s in self.files]
        if where:
            out = [f for f in out if self.lake._may_match(f, where)]
        return sorted(out, key=lambda f: f.path)

    # ---- staging ------------------------------------------------------------------------------------------------
    def add(self, data: pa.Table, replace: Iterable[Mapping[str, Any]] | None = None) -> WriteResult:
        """Stage ``data`` in place of the rows of the partition values in ``replace`` and in ``data``; returns
        the rows staged per value (no snapshot id: nothing is published before :meth:`commit`)."""
        if self.closed:
            raise LakeError(f"{self.ds.qualified_name}: the staged write was committed or discarded already")
        ds = self.ds
        data = _conform(data, ds.arrow_schema(), ds)
        _check_required(data, ds)
        groups = _group_counts(data, ds.partition_by)
        for part in replace or ():
            groups.setdefault(partition_key({c: part[c] for c in ds.partition_by}), 0)
        if not groups:
            return WriteResult(ds.qualified_name, None, {})
        replaced = [parse_partition_key(k) for k in groups] if ds.partition_by else []
        before = len(self.dropped)
        kept_base = self._drop_from_base(replaced)
        kept_new, dropped = [], len(self.dropped) - before
        for s in list(self.files):
            rest = self._rest(s.entry, replaced)
            if rest is None:
                continue
            self.files.remove(s)
            self._delete(s)
            dropped += 1
            if rest.num_rows:
                (kept_base if s.from_base else kept_new).append(rest)
        added = self._write(pa.concat_tables([*kept_new, data]) if kept_new else data)
        if kept_base:
            added += self._write(pa.concat_tables(kept_base), from_base=True)
        self.groups.update(groups)
        faults.point("lake.part_staged")
        return WriteResult(ds.qualified_name, None, dict(groups), added, dropped)

    def _drop_from_base(self, replaced: list[dict[str, str]]) -> list[pa.Table]:
        """Mark the base snapshot's files holding replaced rows dropped (those not dropped already); returns
        their other rows, to be written again."""
        if self.base is None:
            return []
        kept = []
        for manifest, f in self.lake._plan(self.tbl, self.tbl.snapshot_by_id(self.base), self._where(replaced)):
            if f.path in self.dropped:
                continue
            rest = self._rest(f, replaced)
            if rest is None:
                continue
            self.dropped[f.path] = (manifest, f)
            if rest.num_rows:
                kept.append(rest)
        return kept

    def _where(self, replaced: list[dict[str, str]]) -> Where | None:
        if not self.ds.partition_by:
            return None
        return {c: sorted({r[c] for r in replaced}) for c in self.ds.partition_by}

    def _rest(self, f: DataFile, replaced: list[dict[str, str]]) -> pa.Table | None:
        """None when the file holds no replaced row; else its other rows (an empty table: none)."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        ds, lake = self.ds, self.lake
        if not ds.partition_by:  # an unpartitioned table is replaced whole
            return ds.arrow_schema().empty_table()
        if not lake._may_match(f, self._where(replaced)):
            return None
        rows = _conform(_fill_missing(pq.read_table(lake._fs_path(f.path), filesystem=lake.fs), ds.arrow_schema()),
                        ds.arrow_schema(), ds)
        wanted = pa.array(sorted({"\x1f".join(str(r[c]) for c in ds.partition_by) for r in replaced}), pa.string())
        cols = [rows.column(c) for c in ds.partition_by]
        key = pc.binary_join_element_wise(*cols, "\x1f") if len(cols) > 1 else cols[0]
        hit = pc.is_in(key, value_set=wanted)
        if not pc.any(hit).as_py():
            return None
        return rows.filter(pc.invert(hit))

    def _write(self, rows: pa.Table, from_base: bool = False) -> int:
        """Write rows as data files of the table (one or more per physical partition); returns how many."""
        from pyiceberg.io.pyarrow import _dataframe_to_data_files

        if not rows.num_rows:
            return 0
        n = 0
        meta = self.tbl.metadata
        for part in _by_partition(meta, rows):
            for data_file in _dataframe_to_data_files(table_metadata=meta, df=part, io=self.tbl.io,
                                                      write_uuid=self._uuid, counter=self._counter):
                entry = DataFile(data_file.file_path, data_file.record_count, self.lake._bounds(self.tbl, data_file))
                self.files.append(_StagedFile(data_file, entry, from_base))
                n += 1
        return n

    def _delete(self, s: _StagedFile) -> None:
        """Remove a staged file no snapshot lists (replaced again before the commit)."""
        with contextlib.suppress(OSError):
            self.lake.fs.delete_file(self.lake._fs_path(s.entry.path))

    # ---- publishing ---------------------------------------------------------------------------------------------
    def commit(self) -> WriteResult:
        """Publish what was staged in one snapshot (none when nothing is dropped and nothing added)."""
        from pyiceberg.exceptions import CommitFailedException, ValidationException

        if self.closed:
            raise LakeError(f"{self.ds.qualified_name}: the staged write was committed or discarded already")
        ds, lake = self.ds, self.lake
        replaced = [parse_partition_key(k) for k in self.groups] if ds.partition_by else []
        key = idempotency_key(ds.qualified_name, self.run_id, self.stage, sorted(self.groups))
        props = {RUN_ID: self.run_id, STAGE: self.stage, IDEMPOTENCY_KEY: key,
                 REPLACED: _describe(replaced), **self.properties}
        last: Exception | None = None
        try:
            for attempt in range(lake.commit_retries + 1):
                tbl = lake.table(ds, refresh=True) if attempt else self.tbl
                snap = tbl.current_snapshot()
                if (snap.snapshot_id if snap is not None else None) != self.base:
                    self._rebase(tbl, snap, replaced)
                if not self.groups or (not self.dropped and not self.files):  # nothing to drop, nothing to add
                    return WriteResult(ds.qualified_name, self.base, dict(self.groups))
                try:
                    result = self._commit(tbl, snap, props)
                except (CommitFailedException, ValidationException) as exc:
                    last = exc
                    log.warning("%s: commit lost a race with another writer (%s); retrying on the new snapshot "
                                "(%d/%d)", ds.qualified_name, exc, attempt + 1, lake.commit_retries)
                    continue
                if lake.on_commit is not None:
                    lake.on_commit(ds, result)
                return result
        finally:
            self.close()
        raise LakeError(f"{ds.qualified_name}: another writer kept committing to the table; gave up after "
                        f"{lake.commit_retries + 1} attempts ({last}). Nothing of this write was published; rerun it.")

    def _rebase(self, tbl: Table, snap: Any, replaced: list[dict[str, str]]) -> None:
        """Another writer committed since the write began: drop the replaced rows from its snapshot instead."""
        for s in [s for s in self.files if s.from_base]:
            self.files.remove(s)
            self._delete(s)
        self.tbl, self.base, self.dropped = tbl, snap.snapshot_id if snap is not None else None, {}
        kept = self._drop_from_base(replaced)
        if kept:
            self._write(pa.concat_tables(kept), from_base=True)

    def _commit(self, tbl: Table, snap: Any, props: dict[str, str]) -> WriteResult:
        ds, lake = self.ds, self.lake
        old = lake._raw_files(tbl, snap, [(m, f.path) for m, f in self.dropped.values()]) if snap is not None else []
        with tbl.transaction() as tx, tx.update_snapshot(snapshot_properties=props).overwrite() as op:
            for f in old:
                op.delete_data_file(f)
            for s in self.files:
                op.append_data_file(s.file)
            faults.point("lake.files_written")
        faults.point("lake.committed")
        tbl = lake.table(ds, refresh=True)
        new_snap = tbl.current_snapshot()
        rows = sum(self.groups.values())
        log.info("committed %s snapshot %s: %d rows in %d partition value(s), %d file(s) in, %d out",
                 ds.qualified_name, new_snap.snapshot_id, rows, len(self.groups), len(self.files), len(old))
        return WriteResult(ds.qualified_name, new_snap.snapshot_id, dict(self.groups), len(self.files), len(old))

    def discard(self) -> None:
        """Give the write up: delete its staged files; the table stays as it was."""
        if self.closed:
            return
        for s in self.files:
            self._delete(s)
        self.files = []
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.lake.staged.get(self.ds.qualified_name) is self:
            del self.lake.staged[self.ds.qualified_name]


def _rows_by_value(lake: Lake, ds: Dataset, files: list[DataFile]) -> dict[tuple, bytes]:
    """Per partition value, an order-independent digest of its rows in some data files."""
    import pandas as pd
    import pyarrow.parquet as pq

    if not files:
        return {}
    schema = ds.arrow_schema()
    table = pa.concat_tables([_conform(_fill_missing(pq.read_table(lake._fs_path(f.path), filesystem=lake.fs), schema),
                                       schema, ds) for f in files])
    frame = table.to_pandas()
    hashes = pd.util.hash_pandas_object(frame.astype(str), index=False)
    out: dict[tuple, bytes] = {}
    for key, idx in frame.groupby(list(ds.partition_by), sort=False).groups.items():
        key = key if isinstance(key, tuple) else (key,)
        values = hashes.loc[idx].to_numpy().copy()
        values.sort()
        out[tuple(str(k) for k in key)] = values.tobytes()
    return out


def idempotency_key(dataset: str, run_id: str, stage: str, partitions: Sequence[str]) -> str:
    return hashlib.sha256("|".join([dataset, run_id, stage, *partitions]).encode()).hexdigest()[:24]


def _describe(replaced: list[dict[str, str]]) -> str:
    """A short description of the replaced partition values for the snapshot summary."""
    if not replaced:
        return "all"
    cols = list(replaced[0])
    if len(cols) == 1:
        values = sorted(r[cols[0]] for r in replaced)
        return f"{cols[0]}={values[0]}" if len(values) == 1 else f"{cols[0]}={values[0]}..{values[-1]} ({len(values)})"
    return f"{len(replaced)} partition values of {', '.join(cols)}"


def _by_partition(table_metadata: Any, rows: pa.Table) -> Iterator[pa.Table]:
    """``rows`` split into one contiguous table per partition of the table's spec, each handed to pyiceberg's
    writer alone.

    Written here because pyiceberg (0.12) splits a write with one filter of the whole table per partition
    value, which is quadratic: a backfill's raw table of 730 days was 730 scans of all its rows (ingesting
    the small lake: 3.3 s of 27.8 s, and it grows with rows times days). Grouping by the partition values once
    (and sorting only when the rows are not already grouped, which a backfill's days in order are) and
    slicing costs one pass; pyiceberg then finds one partition per slice."""
    import pyarrow.compute as pc

    spec = table_metadata.spec()
    if spec.is_unpartitioned() or rows.num_rows == 0:
        yield rows
        return
    schema = table_metadata.schema()
    keys = {}
    for i, pf in enumerate(spec.fields):
        source = schema.find_field(pf.source_id)
        keys[f"k{i}"] = pf.transform.pyarrow_transform(source.field_type)(
            rows.column(schema.find_column_name(pf.source_id)))
    def runs(frame: pa.Table) -> list[tuple[int, int, int]]:
        """(first row, last row, rows) of each partition value, in row order."""
        frame = frame.append_column("_i", pa.array(range(frame.num_rows), pa.int64()))
        out = frame.group_by(list(keys)).aggregate([("_i", "min"), ("_i", "max"), ("_i", "count")])
        return sorted(zip(*(out.column(f"_i_{f}").to_pylist() for f in ("min", "max", "count")), strict=True))

    frame = pa.table(keys)
    found = runs(frame)
    if len(found) == 1:
        yield rows
        return
    if any(last - first + 1 != n for first, last, n in found):  # not yet grouped (a backfill's days are)
        order = pc.sort_indices(frame, sort_keys=[(k, "ascending") for k in keys])
        rows = rows.take(order)
        found = runs(frame.take(order))
    for first, last, _n in found:
        yield rows.slice(first, last - first + 1).combine_chunks()


def _conform(table: pa.Table, schema: pa.Schema, ds: Dataset) -> pa.Table:
    """Select and cast to the declared schema; fail clearly on a missing column or a type that does not fit."""
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise LakeError(f"{ds.qualified_name}: data lacks declared columns {missing}")
    nulls = [f.name for f in schema if not f.nullable and table.column(f.name).null_count]
    if nulls:
        raise LakeError(f"{ds.qualified_name}: required column(s) {', '.join(nulls)} hold nulls; nothing was "
                        "published")
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError) as exc:
        raise LakeError(f"{ds.qualified_name}: data does not fit the declared types: {exc}") from exc


def _fill_missing(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Columns a file lacks (written before a column was added to the declaration) as nulls."""
    for f in schema:
        if f.name not in table.column_names:
            table = table.append_column(pa.field(f.name, f.type, True), pa.nulls(table.num_rows, f.type))
    return table


def _check_required(table: pa.Table, ds: Dataset) -> None:
    bad = [c.name for c in ds.stored_columns() if not c.nullable and table.column(c.name).null_count]
    if bad:
        raise LakeError(f"{ds.qualified_name}: required column(s) {', '.join(bad)} hold nulls; nothing was published")


def _group_counts(table: pa.Table, partition_by: Sequence[str]) -> dict[str, int]:
    if not partition_by:
        return {"": table.num_rows}
    if not table.num_rows:
        return {}
    counts = table.group_by(list(partition_by)).aggregate([([], "count_all")]).to_pylist()
    return {partition_key({c: r[c] for c in partition_by}): r["count_all"] for r in counts}


def day_partitions(days: Iterable[Any]) -> list[dict[str, str]]:
    """``[{"dt": "2024-01-01"}, ...]`` for some days (dates or ISO strings)."""
    return [{PARTITION_COLUMN: d if isinstance(d, str) else d.isoformat()} for d in days]

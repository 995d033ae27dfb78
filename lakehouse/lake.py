"""The lake: zone paths, and write-audit-publish for every table.

Physical layout (one function, :meth:`Lake.path`, builds every path)::

    <root>/<zone>/<dataset>/<partition>=<value>/<version>/part-*.parquet
    <root>/<zone>/<dataset>/<partition>=<value>/_CURRENT        # the published version of that partition

A write goes to a fresh version folder, is audited (every file readable, row counts read from the
Parquet footers, schema as declared), then published by replacing the small ``_CURRENT`` pointer in
one atomic step: ``os.replace`` on a local disk, a single PUT on S3 (where the Glue partition location
is switched to the same version folder). Readers only follow pointers, so a write that fails or is
killed at any point before the pointer switch leaves the previous data published and unchanged, and a
rerun of a day replaces exactly that day's partitions. Older versions are pruned after publishing,
keeping ``keep_versions`` of them so that a query already running on the previous version finishes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import posixpath
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from schemas import Dataset

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

POINTER = "_CURRENT"
#: Per dataset: its latest write (version, run, time), one small read for whoever derives from it.
LAST_PUBLISH = "_LAST_PUBLISH"
STAGING = "_staging"
ZONES = ("raw", "processed", "analytics/daily-summaries", "analytics/monthly-reports",
         "analytics/kpi-metrics", "analytics/predictions", "ml-models", "quarantine", "events")

Partition = Mapping[str, str]


class LakeError(RuntimeError):
    """A write could not be audited or published; the previous data is still what readers see."""


@dataclass(frozen=True)
class WriteResult:
    """What a write published: rows per partition (``dt=2024-01-01`` → rows) and the version folder."""

    dataset: str
    version: str
    partitions: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.partitions.values())


def partition_key(partition: Partition | None) -> str:
    """``{"dt": "2024-01-01"}`` → ``dt=2024-01-01`` ('' for an unpartitioned table)."""
    if not partition:
        return ""
    return "/".join(f"{k}={v}" for k, v in partition.items())


def parse_partition_key(key: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in key.split("/") if part)


def new_version(run_id: str) -> str:
    """Version folder names sort by creation time and never collide across runs."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"v{stamp}-{run_id[-8:]}-{uuid.uuid4().hex[:6]}"


def _filesystem(root: str) -> tuple[pafs.FileSystem, str]:
    if root.startswith("s3://"):
        fs, path = pafs.FileSystem.from_uri(root)
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), str(Path(root).resolve())


class Lake:
    """The lake at ``root`` (a local folder or ``s3://bucket/prefix``)."""

    def __init__(self, root: str, keep_versions: int = 2, filesystem: pafs.FileSystem | None = None,
                 on_publish=None):
        self.root = root.rstrip("/")
        self.fs, self._base = _filesystem(self.root) if filesystem is None else (filesystem, self.root)
        if filesystem is not None and root.startswith("s3://"):
            self._base = root[len("s3://"):].rstrip("/")
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.keep_versions = max(1, keep_versions)
        #: Called as ``on_publish(dataset, partition_key, version_path)`` after each pointer switch
        #: (the Glue catalog hooks in here on the aws profile).
        self.on_publish = on_publish

    # ---- paths --------------------------------------------------------------------------------
    def path(self, zone: str, dataset: str, partition: Partition | None = None) -> str:
        """The one mapping from (zone, dataset, partition) to a location in the lake."""
        if zone not in ZONES:
            raise ValueError(f"unknown zone {zone!r}; zones are {', '.join(ZONES)}")
        parts = [self.root, zone, dataset]
        key = partition_key(partition)
        if key:
            parts.append(key)
        return "/".join(parts)

    def dataset_path(self, ds: Dataset) -> str:
        return self.path(ds.zone, ds.name)

    def _fs_path(self, uri: str) -> str:
        """Lake URI → path for the pyarrow filesystem."""
        return self._base + uri[len(self.root):]

    def _uri(self, fs_path: str) -> str:
        return self.root + fs_path[len(self._base):]

    # ---- pointers -------------------------------------------------------------------------------
    def _pointer_uri(self, ds: Dataset, key: str) -> str:
        base = self.dataset_path(ds)
        return f"{base}/{key}/{POINTER}" if key else f"{base}/{POINTER}"

    def _read_json(self, uri: str) -> dict[str, Any] | None:
        try:
            with self.fs.open_input_stream(self._fs_path(uri)) as fh:
                return json.loads(fh.read().decode("utf-8"))
        except (FileNotFoundError, OSError):
            return None

    def _write_json_atomic(self, uri: str, payload: Mapping[str, Any]) -> None:
        data = json.dumps(payload, indent=1, sort_keys=True, default=str).encode("utf-8")
        target = self._fs_path(uri)
        if self.local:
            tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
            Path(tmp).parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
            Path(tmp).replace(target)  # atomic on POSIX
        else:  # one PUT: S3 never shows a half-written object
            with self.fs.open_output_stream(target) as fh:
                fh.write(data)

    def pointer(self, ds: Dataset, partition: Partition | None = None) -> dict[str, Any] | None:
        return self._read_json(self._pointer_uri(ds, partition_key(partition)))

    def last_publish(self, ds: Dataset) -> dict[str, Any] | None:
        """The dataset's latest write (``version``, ``run_id``, ``published_at``, ``partitions``), None before
        the first: a cheap fingerprint for a consumer that must know whether anything was republished."""
        return self._read_json(f"{self.dataset_path(ds)}/{LAST_PUBLISH}")

    def partitions(self, ds: Dataset) -> list[str]:
        """Published partition keys of a dataset, sorted (``['dt=2024-01-01', ...]``)."""
        base = self._fs_path(self.dataset_path(ds))
        if not ds.partition_by:
            return [""] if self.pointer(ds) else []
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=len(ds.partition_by) > 1))
        except FileNotFoundError:
            return []
        depth = len(ds.partition_by)
        keys = []
        if depth == 1:
            for info in infos:
                name = posixpath.basename(info.path)
                if info.type == pafs.FileType.Directory and "=" in name:
                    keys.append(name)
        else:
            for info in infos:
                if info.type == pafs.FileType.File and info.path.endswith("/" + POINTER):
                    rel = info.path[len(base) + 1: -len(POINTER) - 1]
                    if rel.count("=") == depth:
                        keys.append(rel)
        published = [k for k in keys if self._read_json(self._pointer_uri(ds, k)) is not None]
        return sorted(published)

    def published(self, ds: Dataset) -> dict[str, dict[str, Any]]:
        """Pointer of every published partition."""
        out = {}
        for key in self.partitions(ds):
            ptr = self._read_json(self._pointer_uri(ds, key))
            if ptr is not None:
                out[key] = ptr
        return out

    def files(self, ds: Dataset, partitions: Iterable[str] | None = None) -> list[str]:
        """Published Parquet files (lake URIs) of a dataset, optionally of some partitions only."""
        wanted = set(partitions) if partitions is not None else None
        out = []
        for key, ptr in self.published(ds).items():
            if wanted is not None and key not in wanted:
                continue
            base = self.dataset_path(ds) + (f"/{key}" if key else "")
            out += [f"{base}/{ptr['version']}/{f}" for f in ptr["files"]]
        return out

    # ---- writing --------------------------------------------------------------------------------
    def write_arrow(self, ds: Dataset, table: pa.Table, run_id: str,
                    replace: Sequence[Partition] | None = None, meta: Mapping[str, Any] | None = None,
                    partition_meta: Mapping[str, Mapping[str, Any]] | None = None) -> WriteResult:
        """Write an Arrow table (or pandas via :meth:`write_pandas`), one version per partition.

        ``replace`` lists partitions the caller owns in this write: those with no rows are published
        empty, so a rerun that now yields nothing for a day does not leave stale rows behind.
        """
        table = _conform(table, ds)
        version = new_version(run_id)
        groups = _split(table, ds.partition_by)
        for part in replace or ():
            groups.setdefault(partition_key(part), table.slice(0, 0))
        staged: dict[str, list[str]] = {}
        for key, part_table in sorted(groups.items()):
            folder = self._version_dir(ds, key, version)
            files = []
            if part_table.num_rows:
                self.fs.create_dir(self._fs_path(folder), recursive=True)
                name = "part-00000.parquet"
                data = part_table.drop_columns([c for c in ds.partition_by if c in part_table.column_names])
                pq.write_table(data, self._fs_path(f"{folder}/{name}"), compression="snappy", filesystem=self.fs)
                files.append(name)
            staged[key] = files
        return self._audit_and_publish(ds, version, staged, run_id, meta, partition_meta)

    def write_pandas(self, ds: Dataset, frame: pd.DataFrame, run_id: str, **kwargs) -> WriteResult:
        return self.write_arrow(ds, pa.Table.from_pandas(frame, preserve_index=False), run_id, **kwargs)

    def write_spark(self, ds: Dataset, df: DataFrame, run_id: str,
                    replace: Sequence[Partition] | None = None, meta: Mapping[str, Any] | None = None,
                    sort_by: Sequence[str] | None = None) -> WriteResult:
        """Write a Spark DataFrame: Spark writes a staging folder, then each partition is moved
        into its own version folder and published.

        Rows are sorted within each partition (by ``sort_by`` or the primary key) so that a rerun
        writes the same rows in the same order.
        """
        from pyspark.sql import functions as F

        version = new_version(run_id)
        staging = f"{self.dataset_path(ds)}/{STAGING}/{version}"
        cols = [c.name for c in ds.stored_columns()]
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise LakeError(f"{ds.qualified_name}: the job's output lacks declared columns {missing}")
        df = df.select(*[F.col(c).cast(f.dataType) for c, f in zip(cols, ds.spark_schema().fields, strict=True)])
        order = list(sort_by or ds.primary_key or [c for c in cols if c not in ds.partition_by])
        if ds.partition_by:
            df = df.repartition(*ds.partition_by).sortWithinPartitions(*ds.partition_by, *order)
            df.write.mode("overwrite").option("compression", "snappy").partitionBy(*ds.partition_by).parquet(
                staging)
        else:
            df.coalesce(1).sortWithinPartitions(*order).write.mode("overwrite").parquet(staging)
        staged: dict[str, list[str]] = {}
        try:
            for key, files in self._list_staged(staging, ds).items():
                target = self._version_dir(ds, key, version)
                self._move_dir(f"{staging}/{key}" if key else staging, target, files)
                staged[key] = files
            for part in replace or ():
                staged.setdefault(partition_key(part), [])
        finally:
            self._delete_dir(staging)
        return self._audit_and_publish(ds, version, staged, run_id, meta, None)

    def _version_dir(self, ds: Dataset, key: str, version: str) -> str:
        base = self.dataset_path(ds)
        return f"{base}/{key}/{version}" if key else f"{base}/{version}"

    def _list_staged(self, staging: str, ds: Dataset) -> dict[str, list[str]]:
        base = self._fs_path(staging)
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True))
        except FileNotFoundError:
            return {}
        out: dict[str, list[str]] = {}
        for info in infos:
            if info.type != pafs.FileType.File or not info.path.endswith(".parquet"):
                continue
            rel = info.path[len(base) + 1:]
            key, _, name = rel.rpartition("/")
            out.setdefault(key, []).append(name)
        return {k: sorted(v) for k, v in out.items()}

    def _move_dir(self, src: str, dst: str, files: list[str]) -> None:
        self.fs.create_dir(self._fs_path(dst), recursive=True)
        for name in files:
            self.fs.move(self._fs_path(f"{src}/{name}"), self._fs_path(f"{dst}/{name}"))

    def _delete_dir(self, uri: str) -> None:
        with contextlib.suppress(FileNotFoundError, OSError):
            self.fs.delete_dir(self._fs_path(uri))

    def _audit_and_publish(self, ds: Dataset, version: str, staged: dict[str, list[str]], run_id: str,
                           meta: Mapping[str, Any] | None,
                           partition_meta: Mapping[str, Mapping[str, Any]] | None) -> WriteResult:
        """Audit every staged file (readable, declared columns, row count), then switch the pointers."""
        declared = {c.name for c in ds.stored_columns()} - set(ds.partition_by)
        counts: dict[str, int] = {}
        for key, files in staged.items():
            rows = 0
            for name in files:
                uri = f"{self._version_dir(ds, key, version)}/{name}"
                try:
                    md = pq.read_metadata(self._fs_path(uri), filesystem=self.fs)
                except Exception as exc:
                    raise LakeError(f"{ds.qualified_name}: staged file {uri} is unreadable ({exc}); "
                                    "nothing was published") from exc
                got = set(md.schema.to_arrow_schema().names)
                if got != declared:
                    raise LakeError(f"{ds.qualified_name}: staged file {uri} has columns {sorted(got ^ declared)} "
                                    "that differ from the declaration; nothing was published")
                rows += md.num_rows
            counts[key] = rows
        published_at = datetime.now(UTC).isoformat()
        for key, files in sorted(staged.items()):
            pointer = {
                "dataset": ds.qualified_name,
                "partition": key,
                "version": version,
                "files": files,
                "rows": counts[key],
                "run_id": run_id,
                "published_at": published_at,
                "meta": {**(meta or {}), **((partition_meta or {}).get(key, {}))},
            }
            self._write_json_atomic(self._pointer_uri(ds, key), pointer)
            if self.on_publish is not None:
                self.on_publish(ds, key, self._version_dir(ds, key, version))
            self._prune(ds, key, version)
        self._write_json_atomic(f"{self.dataset_path(ds)}/{LAST_PUBLISH}", {
            "dataset": ds.qualified_name, "version": version, "run_id": run_id, "published_at": published_at,
            "partitions": len(staged)})
        result = WriteResult(ds.qualified_name, version, counts)
        log.info("published %s: %d rows in %d partitions", ds.qualified_name, result.rows, len(counts))
        return result

    def _prune(self, ds: Dataset, key: str, current: str) -> None:
        folder = self._fs_path(self.dataset_path(ds) + (f"/{key}" if key else ""))
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(folder))
        except FileNotFoundError:
            return
        versions = sorted(posixpath.basename(i.path) for i in infos
                          if i.type == pafs.FileType.Directory and posixpath.basename(i.path).startswith("v"))
        keep = set(versions[-self.keep_versions:]) | {current}
        for name in versions:
            if name not in keep:
                self._delete_dir(self._uri(f"{folder}/{name}"))

    def delete_partition(self, ds: Dataset, partition: Partition) -> None:
        """Unpublish a partition (used only by explicit maintenance commands)."""
        self._delete_dir(self.path(ds.zone, ds.name, partition))

    # ---- reading ----------------------------------------------------------------------------------
    def read_arrow(self, ds: Dataset, partitions: Iterable[str] | None = None) -> pa.Table:
        """Published rows as one Arrow table, partition columns included (tests, small tables)."""
        schema = ds.arrow_schema()
        tables = []
        for key, ptr in self.published(ds).items():
            if partitions is not None and key not in set(partitions):
                continue
            base = self.dataset_path(ds) + (f"/{key}" if key else "")
            values = parse_partition_key(key)
            for name in ptr["files"]:
                t = pq.read_table(self._fs_path(f"{base}/{ptr['version']}/{name}"), filesystem=self.fs)
                for col in ds.partition_by:
                    t = t.append_column(col, pa.array([values[col]] * t.num_rows, pa.string()))
                tables.append(t.select(schema.names).cast(schema))
        if not tables:
            return schema.empty_table()
        return pa.concat_tables(tables)

    def read_pandas(self, ds: Dataset, partitions: Iterable[str] | None = None) -> pd.DataFrame:
        return self.read_arrow(ds, partitions).to_pandas()

    def read_spark(self, spark: SparkSession, ds: Dataset, partitions: Iterable[str] | None = None) -> DataFrame:
        """Published rows as a Spark DataFrame with the declared schema."""
        files = self.files(ds, partitions)
        schema = ds.spark_schema()
        if not files:
            return spark.createDataFrame([], schema)
        data_schema = type(schema)([f for f in schema.fields if f.name not in ds.partition_by])
        reader = spark.read.schema(data_schema)
        if ds.partition_by:
            reader = reader.option("basePath", self.dataset_path(ds))
            # Partition values come from the folder names; keep them as declared strings.
            df = reader.parquet(*files)
        else:
            df = reader.parquet(*files)
        return df.select(*[f.name for f in schema.fields])

    def checksum(self, ds: Dataset) -> str:
        """Order-independent content checksum of a dataset's published rows (for idempotency checks)."""
        table = self.read_arrow(ds)
        digest = hashlib.sha256()
        digest.update(",".join(table.column_names).encode())
        if table.num_rows:
            import pandas as pd

            frame = table.to_pandas()
            row_hashes = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
            row_hashes.sort()
            digest.update(row_hashes.tobytes())
        digest.update(str(table.num_rows).encode())
        return digest.hexdigest()

    # ---- small files of the platform itself (run reports, quality results, registries) -------------
    def write_text(self, relative: str, text: str) -> str:
        return self.write_bytes(relative, text.encode("utf-8"))

    def read_text(self, relative: str) -> str | None:
        data = self.read_bytes(relative)
        return None if data is None else data.decode("utf-8")

    def write_bytes(self, relative: str, data: bytes) -> str:
        """Write a small file (model artifact, report) atomically: readers see the old or the new bytes."""
        uri = f"{self.root}/{relative.lstrip('/')}"
        target = self._fs_path(uri)
        self.fs.create_dir(posixpath.dirname(target), recursive=True)
        if self.local:
            tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
            Path(tmp).write_bytes(data)
            Path(tmp).replace(target)
        else:
            with self.fs.open_output_stream(target) as fh:
                fh.write(data)
        return uri

    def read_bytes(self, relative: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(self._fs_path(f"{self.root}/{relative.lstrip('/')}")) as fh:
                return fh.read()
        except (FileNotFoundError, OSError):
            return None

    def list_files(self, relative: str) -> list[str]:
        """Relative paths of the files under a folder of the lake (sorted)."""
        base = self._fs_path(f"{self.root}/{relative.strip('/')}")
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True))
        except FileNotFoundError:
            return []
        rel_root = len(self._base) + 1
        return sorted(i.path[rel_root:] for i in infos if i.type == pafs.FileType.File)


# ---- helpers ------------------------------------------------------------------------------------
def _conform(table: pa.Table, ds: Dataset) -> pa.Table:
    """Select and cast to the declared stored schema; fail clearly on a missing column."""
    schema = ds.arrow_schema()
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise LakeError(f"{ds.qualified_name}: data lacks declared columns {missing}")
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise LakeError(f"{ds.qualified_name}: data does not fit the declared types: {exc}") from exc


def _split(table: pa.Table, partition_by: Sequence[str]) -> dict[str, pa.Table]:
    """The rows of each partition, in their original order: one stable sort and one ``take`` over the
    whole table, then zero-copy slices (a ``take`` per partition over a many-chunk table is quadratic)."""
    if not partition_by:
        return {"": table}
    if table.num_rows == 0:
        return {}
    keys = [partition_key(row) for row in table.select(list(partition_by)).to_pylist()]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    if any(i != j for i, j in enumerate(order)):
        table = table.take(pa.array(order, pa.int64()))
    table = table.combine_chunks()
    groups: dict[str, pa.Table] = {}
    start = 0
    for i in range(1, len(order) + 1):
        if i == len(order) or keys[order[i]] != keys[order[start]]:
            groups[keys[order[start]]] = table.slice(start, i - start)
            start = i
    return groups

"""Table maintenance: expire old snapshots, compact small files, remove orphan files.

Run by the ``lake.maintain`` stage (weekly, the maintenance DAG) and by ``msp lake maintain``:

1. **Expire snapshots** older than ``lake.snapshot_keep_days``, always keeping the newest
   ``lake.snapshot_keep_min`` of each table and the current one (time travel and readers mid-query keep what
   they need; pyiceberg's ``expire_snapshots`` refuses to expire a branch head).
2. **Compact**: a partition (a month of a daily table) holding at least ``lake.compact_min_files`` data
   files is rewritten as one file in one commit (same rows: the table's checksum does not change). Daily
   runs add a file a day; compaction keeps reads and planning cheap. pyiceberg has no rewrite-data-files
   action, so this is the copy-on-write overwrite the lake already does, partition by partition.
3. **Remove orphans**: files under a table's location that no remaining snapshot references (written for a
   commit that failed or was killed, or released by expiry), once older than ``lake.orphan_min_age_hours``,
   so a write in flight is never touched. Metadata files the current metadata no longer lists go too, and
   so do the lake's cached entries of manifests that are gone (``Lake.prune_manifest_cache``).

Each step reports what it did per table; nothing is removed that a kept snapshot still reads.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow.fs as pafs

import schemas
from lakehouse import faults

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.context import RunContext
    from lakehouse.lake import Lake
    from schemas import Dataset

log = logging.getLogger(__name__)


@dataclass
class TableMaintenance:
    table: str
    snapshots_before: int = 0
    snapshots_expired: int = 0
    partitions_compacted: int = 0
    files_before: int = 0
    files_after: int = 0
    orphans_removed: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def expire(lake: Lake, ds: Dataset, keep_days: int, keep_min: int, now: datetime | None = None) -> int:
    """Expire a table's snapshots older than ``keep_days`` beyond the newest ``keep_min``; returns how many."""
    tbl = lake.table(ds, refresh=True)
    snaps = sorted(tbl.snapshots(), key=lambda s: s.timestamp_ms)
    if len(snaps) <= keep_min:
        return 0
    current = tbl.current_snapshot()
    cutoff = int(((now or datetime.now(UTC)) - timedelta(days=keep_days)).timestamp() * 1000)
    candidates = [s.snapshot_id for s in snaps[:-keep_min] if s.timestamp_ms < cutoff
                  and (current is None or s.snapshot_id != current.snapshot_id)]
    if not candidates:
        return 0
    tbl.maintenance.expire_snapshots().by_ids(candidates).commit()
    lake.table(ds, refresh=True)
    return len(candidates)


def compact(lake: Lake, ds: Dataset, min_files: int, run_id: str) -> int:
    """Rewrite each physical partition holding at least ``min_files`` data files as one file; returns how
    many partitions were rewritten."""
    import pyarrow as pa

    tbl = lake.table(ds, refresh=True)
    snap = tbl.current_snapshot()
    if snap is None:
        return 0
    groups: dict[tuple, list[Any]] = {}
    for task in tbl.scan(snapshot_id=snap.snapshot_id).plan_files():
        groups.setdefault(tuple(task.file.partition), []).append(task.file)
    busy = {k: v for k, v in groups.items() if len(v) >= min_files}
    if not busy:
        return 0
    import pyarrow.parquet as pq
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    from lakehouse.lake import IDEMPOTENCY_KEY, RUN_ID, STAGE, _conform, _fill_missing

    schema = ds.arrow_schema()
    with tbl.transaction() as tx:
        props = {RUN_ID: run_id, STAGE: "lake.maintain", IDEMPOTENCY_KEY: f"compact-{snap.snapshot_id}",
                 "msp.maintenance": "compact"}
        with tx.update_snapshot(snapshot_properties=props).overwrite() as op:
            for files in busy.values():
                rows = pa.concat_tables([_conform(_fill_missing(pq.read_table(lake._fs_path(f.file_path),
                                                                              filesystem=lake.fs), schema), schema, ds)
                                         for f in files])
                order = [*ds.partition_by, *[k for k in ds.primary_key if k not in ds.partition_by]]
                if order and rows.num_rows:
                    rows = rows.sort_by([(c, "ascending") for c in order])
                for f in files:
                    op.delete_data_file(f)
                for data_file in _dataframe_to_data_files(table_metadata=tx.table_metadata, df=rows, io=tbl.io,
                                                          write_uuid=op.commit_uuid):
                    op.append_data_file(data_file)
            faults.point("maintenance.compacted")
    lake.table(ds, refresh=True)
    return len(busy)


def _referenced(lake: Lake, ds: Dataset) -> set[str]:
    """Every file a kept snapshot needs: data files, manifests, manifest lists, and the metadata files."""
    tbl = lake.table(ds, refresh=True)
    io = tbl.io
    keep: set[str] = {tbl.metadata_location}
    keep |= {m.metadata_file for m in tbl.metadata.metadata_log}
    for s in tbl.snapshots():
        keep.add(s.manifest_list)
        for m in s.manifests(io):
            keep.add(m.manifest_path)
            for entry in m.fetch_manifest_entry(io, discard_deleted=True):
                keep.add(entry.data_file.file_path)
    return {k.removeprefix("file://") for k in keep}


def remove_orphans(lake: Lake, ds: Dataset, min_age_hours: float, now: datetime | None = None) -> int:
    """Delete files under a table's location that no kept snapshot references and that are older than
    ``min_age_hours``; returns how many."""
    if not lake.exists(ds):
        return 0
    keep = _referenced(lake, ds)
    base = lake._fs_path(lake.location(ds))
    try:
        infos = lake.fs.get_file_info(pafs.FileSelector(base, recursive=True))
    except FileNotFoundError:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(hours=min_age_hours)
    removed = 0
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        path = info.path if lake.local else f"s3://{info.path}"
        if path.removeprefix("file://") in keep or info.path in keep:
            continue
        mtime = info.mtime
        if mtime is not None and mtime.replace(tzinfo=mtime.tzinfo or UTC) > cutoff:
            continue
        lake.fs.delete_file(info.path)
        removed += 1
    return removed


def maintain(lake: Lake, settings, run_id: str, datasets: list[Dataset] | None = None,
             now: datetime | None = None, progress=None) -> list[TableMaintenance]:
    """Expire, compact and clean every (or some) table; returns what was done per table."""
    cfg = settings.model("lake")
    out = []
    targets = [d for d in (datasets or schemas.catalog().values()) if lake.exists(d)]
    for i, ds in enumerate(targets):
        if progress:
            progress(f"maintain {ds.qualified_name}", i, len(targets))
        t0 = time.perf_counter()
        r = TableMaintenance(ds.qualified_name)
        tbl = lake.table(ds, refresh=True)
        r.snapshots_before = len(tbl.snapshots())
        r.files_before = len(lake.files(ds))
        r.partitions_compacted = compact(lake, ds, cfg.compact_min_files, run_id)
        r.snapshots_expired = expire(lake, ds, cfg.snapshot_keep_days, cfg.snapshot_keep_min, now)
        r.orphans_removed = remove_orphans(lake, ds, cfg.orphan_min_age_hours, now)
        lake._plans.clear()
        r.files_after = len(lake.files(ds))
        r.seconds = round(time.perf_counter() - t0, 3)
        out.append(r)
    dropped = lake.prune_manifest_cache()
    if dropped:
        log.info("manifest cache: %d entries of removed manifests dropped", dropped)
    return out


def run(ctx: RunContext) -> None:
    """Expire old snapshots, compact small files and remove orphan files of every table."""
    results = maintain(ctx.lake, ctx.settings, ctx.run_id, progress=ctx.progress)
    c = ctx.count("lake")
    c.notes.append(f"{len(results)} tables: {sum(r.snapshots_expired for r in results)} snapshots expired, "
                   f"{sum(r.partitions_compacted for r in results)} partitions compacted, "
                   f"{sum(r.orphans_removed for r in results)} orphan files removed")
    ctx.lake.write_text(f"_meta/maintenance/{ctx.run_id}.json", _json([r.__dict__ for r in results]))


def _json(payload: Any) -> str:
    import json

    return json.dumps(payload, indent=1, default=str)

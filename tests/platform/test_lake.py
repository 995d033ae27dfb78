"""The lake on Iceberg: one snapshot per replace, idempotent reruns, readers that see whole snapshots, two
writers that never append twice, time travel, maintenance, and clear errors on bad data or metadata."""

from __future__ import annotations

import contextlib
import os
import threading
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse.environment import forget_catalogs, table_catalog
from lakehouse.lake import Lake, LakeError, Range
from lakehouse.maintenance import compact, expire, remove_orphans
from schemas import Column, Dataset

EVENTS = Dataset(
    name="demo_events", zone="processed", owner="platform", description="test table",
    columns=(Column("event_id", "string", nullable=False), Column("amount", "decimal(12,2)"),
             Column("hours", "double")),
    primary_key=("event_id",),
)
MONTHLY = Dataset(name="demo_monthly", zone="analytics/monthly-reports", owner="platform", description="test",
                  columns=(Column("client_id", "string", nullable=False), Column("n", "long"),
                           Column("month", "string", nullable=False)),
                  primary_key=("client_id", "month"), partition_by=("month",))
WHOLE = Dataset(name="demo_whole", zone="processed", owner="platform", description="unpartitioned",
                columns=(Column("k", "string", nullable=False), Column("v", "long")), primary_key=("k",),
                partition_by=())


def rows(*items):
    return pa.table({
        "event_id": [r[0] for r in items],
        "amount": pa.array([Decimal(str(r[1])) for r in items], pa.decimal128(12, 2)),
        "hours": [float(r[2]) for r in items],
        "dt": [r[3] for r in items],
    })


JAN = [("a", 10.5, 1, "2024-01-01"), ("b", 3, 2, "2024-01-01"), ("c", 7.25, 0.5, "2024-01-02")]


@pytest.fixture
def lake(settings):
    forget_catalogs()
    return Lake.from_settings(settings)


def ids(lake, ds=EVENTS, **kw):
    return sorted(lake.read_arrow(ds, **kw).column(ds.primary_key[0]).to_pylist())


def test_a_replace_is_one_snapshot_recording_its_run_stage_and_key(lake):
    result = lake.replace(EVENTS, rows(*JAN), run_id="run-1", stage="test.stage")
    assert result.partitions == {"dt=2024-01-01": 2, "dt=2024-01-02": 1}
    hist = lake.history(EVENTS)
    assert len(hist) == 1
    assert (hist[0]["run_id"], hist[0]["stage"], hist[0]["added_records"]) == ("run-1", "test.stage", 3)
    assert hist[0]["replaced"] == "dt=2024-01-01..2024-01-02 (2)"
    # the two days of one month share a data file (monthly physical partitions)
    assert len(lake.files(EVENTS)) == 1
    assert lake.files(EVENTS)[0].startswith(lake.location(EVENTS))


def test_rerunning_a_replace_gives_the_same_rows_and_never_doubles_them(lake):
    lake.replace(EVENTS, rows(*JAN), run_id="run-1")
    before = lake.checksum(EVENTS)
    lake.replace(EVENTS, rows(*JAN), run_id="run-2")  # a retried or rerun commit
    assert lake.checksum(EVENTS) == before
    assert lake.read_arrow(EVENTS).num_rows == 3


def test_replacing_one_day_keeps_the_other_days_of_its_file(lake):
    lake.replace(EVENTS, rows(*JAN), run_id="run-1")
    lake.replace(EVENTS, rows(("d", 1, 1, "2024-01-02")), run_id="run-2")
    assert ids(lake) == ["a", "b", "d"]
    # a day listed in replace with no rows ends up empty: a rerun that now yields nothing leaves no stale rows
    lake.replace(EVENTS, rows(), run_id="run-3", replace=[{"dt": "2024-01-01"}])
    assert ids(lake) == ["d"]


def test_a_write_of_interleaved_months_is_split_once_into_a_file_per_physical_partition(lake):
    """The writer sorts a write by its physical partition (the month of ``dt``) and hands pyiceberg one slice
    per partition (its own split filters the whole table once per partition value)."""
    from lakehouse.lake import _by_partition

    days = ["2024-03-05", "2024-01-01", "2024-02-10", "2024-01-20", "2024-03-05", "2024-02-11"]
    items = [(f"e{i}", i, i, d) for i, d in enumerate(days)]
    lake.replace(EVENTS, rows(*items), run_id="run-1")
    assert len(lake.files(EVENTS)) == 3
    for month in ("2024-01", "2024-02", "2024-03"):
        assert len(lake.files(EVENTS, {"dt": [d for d in days if d.startswith(month)]})) == 1, month
    assert ids(lake) == sorted(f"e{i}" for i in range(len(days)))
    metadata = lake.table(EVENTS).metadata
    parts = list(_by_partition(metadata, rows(*items)))
    assert [sorted({d[:7] for d in p.column("dt").to_pylist()}) for p in parts] == [
        ["2024-01"], ["2024-02"], ["2024-03"]]
    assert sorted(r for p in parts for r in p.column("event_id").to_pylist()) == sorted(i[0] for i in items)
    (whole,) = _by_partition(metadata, rows(*items[1:2]))  # one partition: the rows as they are
    assert whole.num_rows == 1
    grouped = sorted(items, key=lambda i: i[3][:7], reverse=True)  # grouped by month, not sorted: kept in order
    assert [p.column("event_id").to_pylist() for p in _by_partition(metadata, rows(*grouped))] == [
        [i[0] for i in grouped if i[3].startswith(m)] for m in ("2024-03", "2024-02", "2024-01")]


def test_where_prunes_files_and_rows(lake):
    lake.replace(EVENTS, rows(*JAN, ("e", 1, 1, "2024-02-10")), run_id="run-1")
    assert len(lake.files(EVENTS)) == 2
    assert len(lake.files(EVENTS, {"dt": "2024-02-10"})) == 1
    assert ids(lake, where={"dt": "2024-01-02"}) == ["c"]
    assert ids(lake, where={"dt": ["2024-01-01", "2024-02-10"]}) == ["a", "b", "e"]
    assert ids(lake, where={"dt": Range("2024-01-02", None)}) == ["c", "e"]
    assert lake.partition_values(EVENTS) == ["2024-01-01", "2024-01-02", "2024-02-10"]


def test_an_unpartitioned_table_is_replaced_whole(lake):
    lake.replace(WHOLE, pa.table({"k": ["x", "y"], "v": pa.array([1, 2], pa.int64())}), run_id="r1")
    lake.replace(WHOLE, pa.table({"k": ["z"], "v": pa.array([3], pa.int64())}), run_id="r2")
    assert ids(lake, WHOLE) == ["z"]


def test_time_travel_reads_an_earlier_snapshot(lake):
    first = lake.replace(EVENTS, rows(*JAN), run_id="run-1").snapshot_id
    lake.replace(EVENTS, rows(("z", 1, 1, "2024-01-01")), run_id="run-2", replace=[{"dt": "2024-01-02"}])
    assert ids(lake) == ["z"]
    assert ids(lake, snapshot_id=first) == ["a", "b", "c"]
    assert lake.snapshot_of_run(EVENTS, "run-1") == first


def test_changed_partitions_between_two_snapshots(lake):
    first = lake.replace(MONTHLY, pa.table({"client_id": ["c1", "c2"], "n": pa.array([1, 2], pa.int64()),
                                            "month": ["2024-01", "2024-02"]}), run_id="r1").snapshot_id
    lake.replace(MONTHLY, pa.table({"client_id": ["c2"], "n": pa.array([5], pa.int64()), "month": ["2024-02"]}),
                 run_id="r2")
    assert lake.changed_partitions(MONTHLY, first) == [{"month": "2024-02"}]
    assert lake.changed_partitions(MONTHLY, lake.snapshot_id(MONTHLY)) == []
    assert lake.changed_partitions(MONTHLY, None) is None


def test_a_reader_on_a_snapshot_never_sees_a_writers_partial_work(lake):
    """While a multi-day replace commits, a reader pinned to the snapshot it started on keeps reading it, and
    a fresh reader sees either the old rows or the new ones, never a mix."""
    lake.replace(EVENTS, rows(*JAN), run_id="run-1")
    old = {"a", "b", "c"}
    new = {f"n{i}" for i in range(40)}
    seen: list[frozenset] = []
    stop = threading.Event()

    def read():
        reader = Lake(lake.root, lake.catalog)
        while not stop.is_set():
            reader._plans.clear()
            seen.append(frozenset(reader.read_arrow(EVENTS, snapshot_id=reader.snapshot_id(EVENTS))
                                  .column("event_id").to_pylist()))

    t = threading.Thread(target=read)
    t.start()
    try:
        for _ in range(3):
            data = rows(*[(f"n{i}", i, 1, f"2024-01-{1 + i % 2:02d}") for i in range(40)])
            lake.replace(EVENTS, data, run_id="run-2")
            lake.replace(EVENTS, rows(*JAN), run_id="run-3")
    finally:
        stop.set()
        t.join()
    assert seen and all(s in (frozenset(old), frozenset(new)) for s in seen)


def test_two_writers_rebase_and_never_append_twice(settings):
    """Writer A holds a stale table; writer B commits first. A's commit is refused by the catalog, A recomputes
    what to drop against B's snapshot and commits again: each day holds exactly one writer's rows."""
    forget_catalogs()
    a, b = Lake.from_settings(settings), Lake(settings.lake_root, table_catalog(settings))
    a.replace(EVENTS, rows(*JAN), run_id="run-0")
    a.table(EVENTS)  # A's cached table is now the snapshot before B's commit
    b.replace(EVENTS, rows(("b1", 1, 1, "2024-01-02"), ("b2", 1, 1, "2024-01-03")), run_id="run-b")
    a.replace(EVENTS, rows(("a1", 1, 1, "2024-01-02")), run_id="run-a")
    got = a.read_arrow(EVENTS)
    assert sorted(zip(got.column("dt").to_pylist(), got.column("event_id").to_pylist(), strict=True)) == [
        ("2024-01-01", "a"), ("2024-01-01", "b"), ("2024-01-02", "a1"), ("2024-01-03", "b2")]
    assert [h["run_id"] for h in a.history(EVENTS)] == ["run-0", "run-b", "run-a"]


def _open_files(path: Path) -> list[str]:
    """The files under ``path`` this process holds open."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(path)):
                held.append(target)
    return held


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to list open files")
def test_opening_the_local_catalog_leaves_no_connection_open_and_closing_before_a_fork_closes_all(settings):
    """A SQLite connection open in a process that forks is shared bookkeeping with the child (SQLite's locks
    belong to a process), so the run keeps none open when it forks a worker."""
    from lakehouse.environment import close_catalog_connections

    forget_catalogs()
    home = Path(settings.home)
    catalog = table_catalog(settings)
    assert _open_files(home / "iceberg.db") == []  # the connection that sets WAL mode is closed at once
    catalog.list_namespaces()
    assert _open_files(home / "iceberg.db")  # a pooled connection
    close_catalog_connections()
    assert _open_files(home / "iceberg.db") == []
    catalog.list_namespaces()  # and the pool opens a new one when asked


def test_commits_of_a_forked_worker_survive_the_run_closing_its_catalog_connections(settings):
    """A worker commits table after table while the run's process, which forked it, closes its own catalog
    connections (as its garbage collector did with a stray one). Were the run's connection inherited, the
    run's process would take itself for the database's last user on closing, checkpoint the WAL and delete it
    under the worker, whose later commits went to the deleted file and were lost."""
    import time

    from lakehouse.environment import close_catalog_connections
    from lakehouse.workers import in_background

    forget_catalogs()
    catalog = table_catalog(settings)
    names = [f"processed.fork_{i:02d}" for i in range(24)]
    with contextlib.suppress(Exception):
        catalog.create_namespace("processed")
    schema = pa.schema([pa.field("k", pa.string())])
    for name in names:
        catalog.create_table(name, schema=schema)
    catalog.load_table(names[0])  # the run's process holds a pooled connection when it forks

    def commit_all():
        for i, name in enumerate(names):
            table = catalog.load_table(name)
            with table.transaction() as tx:
                tx.set_properties({"msp.test-commit": str(i)})
            time.sleep(0.02)

    worker = in_background(commit_all)
    if worker is None:
        pytest.skip("processes cannot be forked here")
    time.sleep(0.15)  # a few commits in
    close_catalog_connections()
    catalog.load_table(names[-1])  # and opens a new one
    assert worker.result() is None
    forget_catalogs()
    fresh = table_catalog(settings)
    assert {name: fresh.load_table(name).properties.get("msp.test-commit") for name in names} == {
        name: str(i) for i, name in enumerate(names)}


def test_bad_data_is_refused_and_nothing_is_committed(lake):
    with pytest.raises(LakeError, match="lacks declared columns"):
        lake.replace(EVENTS, pa.table({"event_id": ["x"], "dt": ["2024-01-01"]}), run_id="r")
    with pytest.raises(LakeError, match="event_id hold nulls"):
        lake.replace(EVENTS, rows(*JAN).set_column(0, "event_id", pa.array([None, "b", "c"], pa.string())),
                     run_id="r")
    with pytest.raises(LakeError, match=r"do.* not fit the declared types"):
        lake.replace(EVENTS, rows(*JAN).set_column(2, "hours", pa.array(["x", "y", "z"])), run_id="r")
    assert lake.history(EVENTS) == []


def test_unreadable_metadata_is_an_error_naming_the_table(lake, settings):
    lake.replace(EVENTS, rows(*JAN), run_id="run-1")
    location = lake.table(EVENTS).metadata_location.removeprefix("file://")
    Path(location).write_text("x")
    forget_catalogs()  # a new process: the catalog keeps what it parsed, and a metadata file is never rewritten
    fresh = Lake.from_settings(settings)
    with pytest.raises(LakeError, match=r"processed\.demo_events: cannot load its Iceberg metadata"):
        fresh.table(EVENTS)


def test_maintenance_compacts_expires_and_removes_only_orphans(lake, settings):
    from datetime import UTC, datetime, timedelta

    for i in range(6):  # six daily commits: six files in January
        lake.replace(EVENTS, rows((f"e{i}", i, 1, f"2024-01-{i + 1:02d}")), run_id=f"run-{i}")
    checksum = lake.checksum(EVENTS)
    assert len(lake.files(EVENTS)) == 6
    assert compact(lake, EVENTS, min_files=4, run_id="maint") == 1
    lake._plans.clear()
    assert len(lake.files(EVENTS)) == 1 and lake.checksum(EVENTS) == checksum
    stray = Path(lake.location(EVENTS).removeprefix("file://")) / "data" / "stray.parquet"
    stray.write_bytes(b"not referenced")
    later = datetime.now(UTC) + timedelta(days=30)
    assert expire(lake, EVENTS, keep_days=7, keep_min=3, now=later) == 4  # 7 snapshots, keep the newest 3
    assert len(lake.table(EVENTS).snapshots()) == 3
    assert remove_orphans(lake, EVENTS, min_age_hours=24) == 0  # everything is younger than a day
    assert remove_orphans(lake, EVENTS, min_age_hours=0, now=later) >= 1 and not stray.exists()
    for snap in lake.table(EVENTS).snapshots():  # every kept snapshot still reads whole
        assert lake.read_arrow(EVENTS, snapshot_id=snap.snapshot_id).num_rows >= 5
    # keeping only the current snapshot releases the six daily files
    assert expire(lake, EVENTS, keep_days=7, keep_min=1, now=later) == 2
    assert remove_orphans(lake, EVENTS, min_age_hours=0, now=later) >= 6
    lake._plans.clear()
    assert lake.checksum(EVENTS) == checksum and len(lake.files(EVENTS)) == 1
    # the cached entries of the manifests maintenance removed go too; the current snapshot's stay
    assert lake.prune_manifest_cache() >= 1
    assert lake.prune_manifest_cache() == 0
    forget_catalogs()
    assert len(Lake.from_settings(settings).files(EVENTS)) == 1


def test_manifest_entries_are_read_once_then_from_the_lake_cache(lake, settings, monkeypatch):
    from pyiceberg.manifest import ManifestFile

    from lakehouse.lake import MANIFEST_CACHE

    for i in range(3):  # three commits, three manifests
        lake.replace(EVENTS, rows((f"e{i}", i, 1, f"2024-01-{i + 1:02d}")), run_id=f"run-{i}")
    expected = lake.files(EVENTS)
    cached = sorted(Path(lake._small_path(MANIFEST_CACHE)).glob("*/*.json"))
    assert cached, "the planned manifests' entries are kept in the lake's cache"

    # another process (a fresh lake object) plans from the cache without opening a manifest
    real_fetch = ManifestFile.fetch_manifest_entry

    def refuse(*_a, **_k):
        raise AssertionError("a cached manifest was opened")

    monkeypatch.setattr(ManifestFile, "fetch_manifest_entry", refuse)
    forget_catalogs()
    other = Lake.from_settings(settings)
    assert other.files(EVENTS) == expected
    assert other.files(EVENTS, where={"dt": "2024-01-02"}) == lake.files(EVENTS, where={"dt": "2024-01-02"})
    monkeypatch.setattr(ManifestFile, "fetch_manifest_entry", real_fetch)

    # a damaged entry is read from its manifest again, and rewritten
    cached[0].write_text("{not json", encoding="utf-8")
    forget_catalogs()
    third = Lake.from_settings(settings)
    assert third.files(EVENTS) == expected
    assert cached[0].read_text(encoding="utf-8").startswith("{\"manifest\"")

    # a writer fed by the cache drops exactly the replaced day's file: the rows agree with pyiceberg's scan
    third.replace(EVENTS, rows(("x", 9, 9, "2024-01-02")), run_id="run-x")
    assert ids(third) == ["e0", "e2", "x"]
    scanned = sorted(t.file.file_path for t in third.table(EVENTS, refresh=True).scan().plan_files())
    assert third.files(EVENTS) == scanned


def test_small_files_are_written_atomically(lake):
    lake.write_text("_meta/x/report.json", "{}")
    assert lake.read_text("_meta/x/report.json") == "{}"
    assert lake.list_files("_meta/x") == ["_meta/x/report.json"]
    assert lake.read_text("_meta/nothing.json") is None

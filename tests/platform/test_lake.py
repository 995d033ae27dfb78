"""The lake: paths, idempotent reruns, and write-audit-publish under failure."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lakehouse.lake import Lake, LakeError
from schemas import Column, Dataset

EVENTS = Dataset(
    name="demo_events", zone="processed", owner="platform", description="test table",
    columns=(Column("event_id", "string", nullable=False), Column("amount", "decimal(12,2)"),
             Column("hours", "double")),
    primary_key=("event_id",),
)
DAILY = Dataset(name="demo_daily", zone="analytics/daily-summaries", owner="cpi", description="test",
                columns=(Column("client_id", "string"), Column("n", "long")), primary_key=("client_id",))


def table(rows):
    from decimal import Decimal

    return pa.table({
        "event_id": [r[0] for r in rows],
        "amount": pa.array([Decimal(str(r[1])) for r in rows], pa.decimal128(12, 2)),
        "hours": [float(r[2]) for r in rows],
        "dt": [r[3] for r in rows],
    })


ROWS = [("a", 10.5, 1, "2024-01-01"), ("b", 3, 2, "2024-01-01"), ("c", 7.25, 0.5, "2024-01-02")]


def test_path_function_maps_zone_dataset_partition(tmp_path):
    lake = Lake(str(tmp_path))
    assert lake.path("raw", "tickets", {"dt": "2024-01-01"}) == f"{tmp_path}/raw/tickets/dt=2024-01-01"
    assert lake.path("analytics/kpi-metrics", "msp_kpis") == f"{tmp_path}/analytics/kpi-metrics/msp_kpis"
    with pytest.raises(ValueError, match="unknown zone"):
        lake.path("gold", "x")


def test_every_zone_is_written_where_the_path_function_says(tmp_path):
    lake = Lake(str(tmp_path))
    for ds in (EVENTS, DAILY):
        data = table(ROWS) if ds is EVENTS else pa.table(
            {"client_id": ["x"], "n": pa.array([1], pa.int64()), "dt": ["2024-01-05"]})
        result = lake.write_arrow(ds, data, run_id="run-1")
        for key in result.partitions:
            folder = tmp_path.joinpath(*lake.path(ds.zone, ds.name, dict([key.split("=")]))
                                       [len(str(tmp_path)) + 1:].split("/"))
            assert (folder / "_CURRENT").is_file()
            files = lake.files(ds, [key])
            assert files and all(f.startswith(str(folder) + "/v") for f in files)
    assert lake.partitions(EVENTS) == ["dt=2024-01-01", "dt=2024-01-02"]
    assert lake.read_arrow(DAILY).num_rows == 1


def test_write_reports_rows_per_partition(tmp_path):
    result = Lake(str(tmp_path)).write_arrow(EVENTS, table(ROWS), run_id="run-1")
    assert result.partitions == {"dt=2024-01-01": 2, "dt=2024-01-02": 1}
    assert result.rows == 3


def test_interleaved_days_across_many_chunks_keep_each_days_rows_in_their_order(tmp_path):
    lake = Lake(str(tmp_path))
    days = ["2024-01-03", "2024-01-01", "2024-01-02"]
    rows = [(f"e{i:02d}", i, i, days[i % 3]) for i in range(30)]
    chunked = pa.concat_tables([table(rows[i:i + 4]) for i in range(0, 30, 4)])  # 8 chunks, days interleaved
    result = lake.write_arrow(EVENTS, chunked, run_id="run-1")
    assert result.partitions == {f"dt={d}": 10 for d in days}
    for d in days:
        got = lake.read_arrow(EVENTS, [f"dt={d}"]).column("event_id").to_pylist()
        assert got == [r[0] for r in rows if r[3] == d]


def test_every_write_leaves_the_datasets_latest_version_in_one_small_file(tmp_path):
    lake = Lake(str(tmp_path))
    assert lake.last_publish(EVENTS) is None
    first = lake.write_arrow(EVENTS, table(ROWS), run_id="run-1")
    assert {k: lake.last_publish(EVENTS)[k] for k in ("version", "run_id", "partitions")} == {
        "version": first.version, "run_id": "run-1", "partitions": 2}
    second = lake.write_arrow(EVENTS, table(ROWS[:1]), run_id="run-2", replace=[{"dt": "2024-01-01"}])
    assert lake.last_publish(EVENTS)["version"] == second.version != first.version
    assert lake.partitions(EVENTS) == ["dt=2024-01-01", "dt=2024-01-02"]  # the marker is not a partition


def test_rerun_of_a_day_replaces_it_with_identical_content(tmp_path):
    lake = Lake(str(tmp_path))
    lake.write_arrow(EVENTS, table(ROWS), run_id="run-1")
    before = lake.checksum(EVENTS)
    lake.write_arrow(EVENTS, table([r for r in ROWS if r[3] == "2024-01-01"]), run_id="run-2",
                     replace=[{"dt": "2024-01-01"}])
    assert lake.checksum(EVENTS) == before
    assert lake.read_arrow(EVENTS).num_rows == 3  # the other day is untouched


def test_replace_publishes_an_empty_partition_when_a_day_now_has_no_rows(tmp_path):
    lake = Lake(str(tmp_path))
    lake.write_arrow(EVENTS, table(ROWS), run_id="run-1")
    result = lake.write_arrow(EVENTS, table(ROWS).slice(0, 0), run_id="run-2", replace=[{"dt": "2024-01-02"}])
    assert result.partitions == {"dt=2024-01-02": 0}
    assert sorted(lake.read_arrow(EVENTS).column("event_id").to_pylist()) == ["a", "b"]


def test_old_versions_are_pruned_but_the_previous_one_is_kept(tmp_path):
    lake = Lake(str(tmp_path), keep_versions=2)
    for run in range(4):
        lake.write_arrow(EVENTS, table(ROWS[:1]), run_id=f"run-{run}")
    folder = tmp_path / "processed" / "demo_events" / "dt=2024-01-01"
    assert len([p for p in folder.iterdir() if p.name.startswith("v")]) == 2


def test_wrong_types_are_refused_before_anything_is_published(tmp_path):
    lake = Lake(str(tmp_path))
    lake.write_arrow(EVENTS, table(ROWS), run_id="run-1")
    bad = pa.table({"event_id": ["z"], "amount": ["not a number"], "hours": [1.0], "dt": ["2024-01-01"]})
    with pytest.raises(LakeError, match="declared types"):
        lake.write_arrow(EVENTS, bad, run_id="run-2")
    assert sorted(lake.read_arrow(EVENTS).column("event_id").to_pylist()) == ["a", "b", "c"]


def test_spark_job_failing_mid_write_leaves_previous_data_readable_and_unchanged(tmp_path, spark):
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    lake = Lake(str(tmp_path))
    lake.write_arrow(EVENTS, table(ROWS), run_id="run-1")
    before = lake.checksum(EVENTS)

    @F.udf(T.DoubleType())
    def explode_on_c(event_id, hours):
        if event_id == "c":
            raise RuntimeError("disk full (simulated)")
        return hours

    df = spark.createDataFrame([(r[0], float(r[1]), float(r[2]), r[3]) for r in ROWS],
                               "event_id string, amount double, hours double, dt string")
    df = df.withColumn("hours", explode_on_c("event_id", "hours"))
    with pytest.raises(Exception, match="disk full"):
        lake.write_spark(EVENTS, df, run_id="run-2")
    assert lake.checksum(EVENTS) == before
    assert lake.read_spark(spark, EVENTS).count() == 3


def test_spark_write_then_read_round_trips_with_declared_schema(tmp_path, spark):
    lake = Lake(str(tmp_path))
    df = spark.createDataFrame([(r[0], float(r[1]), float(r[2]), r[3]) for r in ROWS],
                               "event_id string, amount double, hours double, dt string")
    result = lake.write_spark(EVENTS, df, run_id="run-1")
    assert result.partitions == {"dt=2024-01-01": 2, "dt=2024-01-02": 1}
    back = lake.read_spark(spark, EVENTS)
    # Parquet readers make every column nullable; names, order and types are the declared ones.
    assert [(f.name, f.dataType) for f in back.schema] == [(f.name, f.dataType) for f in EVENTS.spark_schema()]
    assert sorted((r.event_id, str(r.amount), r.dt) for r in back.collect()) == [
        ("a", "10.50", "2024-01-01"), ("b", "3.00", "2024-01-01"), ("c", "7.25", "2024-01-02")]
    first = lake.checksum(EVENTS)
    lake.write_spark(EVENTS, df, run_id="run-2")
    assert lake.checksum(EVENTS) == first
    assert not (tmp_path / "processed" / "demo_events" / "_staging").exists() or not any(
        (tmp_path / "processed" / "demo_events" / "_staging").iterdir())

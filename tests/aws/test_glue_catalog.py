"""On the aws profile, the lake's tables are Iceberg tables in the Glue Data Catalog (one database per zone, as
Athena analysts see them), and a commit moves the Glue table to its new metadata file: what Athena reads is
always one whole snapshot. Glue and S3 are moto's (no network, no credentials)."""

from __future__ import annotations

import boto3
import pyarrow as pa
import pytest

from lakehouse.environment import forget_catalogs
from lakehouse.lake import Lake
from tests.conftest import make_settings
from tests.platform.test_lake import EVENTS


def rows(*items) -> pa.Table:
    return pa.Table.from_pylist(
        [{"event_id": e, "amount": None, "hours": float(h), "dt": dt} for e, h, dt in items],
        schema=pa.schema([("event_id", pa.string()), ("amount", pa.decimal128(12, 2)), ("hours", pa.float64()),
                          ("dt", pa.string())]))


@pytest.fixture
def glue_lake(aws, tmp_path):
    settings = make_settings(tmp_path, MSP_PROFILE="aws", MSP_LAKE_ROOT=f"s3://{aws}/lake",
                             MSP_LANDING_ROOT=f"s3://{aws}/landing")
    assert settings.platform.table_catalog == "glue"
    forget_catalogs()
    yield settings, Lake.from_settings(settings)
    forget_catalogs()


def test_a_table_is_registered_in_its_zones_glue_database_and_each_commit_moves_its_metadata(glue_lake):
    settings, lake = glue_lake
    first = lake.replace(EVENTS, rows(("a", 1, "2024-01-01"), ("b", 2, "2024-01-01")), run_id="run-1")
    glue = boto3.client("glue", region_name="us-east-1")
    db = f"{settings.platform.glue_database_prefix}_processed"
    table = glue.get_table(DatabaseName=db, Name="demo_events")["Table"]
    assert table["Parameters"]["table_type"].upper() == "ICEBERG"
    first_metadata = table["Parameters"]["metadata_location"]
    assert first_metadata.startswith(f"s3://{settings.lake_root.removeprefix('s3://')}/")

    second = lake.replace(EVENTS, rows(("c", 3, "2024-01-01")), run_id="run-2")
    table = glue.get_table(DatabaseName=db, Name="demo_events")["Table"]
    assert table["Parameters"]["metadata_location"] != first_metadata
    assert table["Parameters"]["previous_metadata_location"] == first_metadata
    assert second.snapshot_id != first.snapshot_id
    # a reader through the catalog sees the latest snapshot whole, and the first one by its id
    assert lake.read_arrow(EVENTS).column("event_id").to_pylist() == ["c"]
    assert sorted(lake.read_arrow(EVENTS, snapshot_id=first.snapshot_id).column("event_id").to_pylist()) == ["a", "b"]

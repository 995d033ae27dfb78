"""On the aws profile, publishing a partition switches its Glue location to the new version folder."""

from __future__ import annotations

import boto3
import pyarrow as pa
import pyarrow.fs as pafs

from lakehouse.catalog import GlueCatalog, glue_database
from lakehouse.lake import Lake
from tests.conftest import make_settings
from tests.platform.test_lake import EVENTS, ROWS, table


def s3fs(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", access_key="testing",
                             secret_key="testing", region="us-east-1")


def test_publish_registers_table_and_switches_partition_location(aws, moto_endpoint, tmp_path):
    settings = make_settings(tmp_path, MSP_PROFILE="aws", MSP_LAKE_ROOT=f"s3://{aws}/lake",
                             MSP_LANDING_ROOT=f"s3://{aws}/landing")
    catalog = GlueCatalog(settings)
    lake = Lake(settings.lake_root, filesystem=s3fs(moto_endpoint), on_publish=catalog.publish)

    first = lake.write_arrow(EVENTS, table(ROWS), run_id="run-1")
    glue = boto3.client("glue", region_name="us-east-1")
    db = glue_database(settings, EVENTS)
    assert db == "msp_processed"
    tbl = glue.get_table(DatabaseName=db, Name="demo_events")["Table"]
    assert [c["Name"] for c in tbl["PartitionKeys"]] == ["dt"]
    assert {c["Name"]: c["Type"] for c in tbl["StorageDescriptor"]["Columns"]} == {
        "event_id": "string", "amount": "decimal(12,2)", "hours": "double"}
    part = glue.get_partition(DatabaseName=db, TableName="demo_events", PartitionValues=["2024-01-01"])["Partition"]
    assert part["StorageDescriptor"]["Location"] == f"s3://{aws}/lake/processed/demo_events/dt=2024-01-01/{first.version}/"

    second = lake.write_arrow(EVENTS, table(ROWS[:2]), run_id="run-2", replace=[{"dt": "2024-01-01"}])
    part = glue.get_partition(DatabaseName=db, TableName="demo_events", PartitionValues=["2024-01-01"])["Partition"]
    assert part["StorageDescriptor"]["Location"].endswith(f"/dt=2024-01-01/{second.version}/")
    assert len(glue.get_partitions(DatabaseName=db, TableName="demo_events")["Partitions"]) == 2
    # the data behind the switched location is readable and is what was published
    back = lake.read_arrow(EVENTS)
    assert sorted(back.column("event_id").to_pylist()) == ["a", "b", "c"]
    assert isinstance(back.column("amount").type, pa.Decimal128Type)

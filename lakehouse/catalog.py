"""The SQL catalog over the lake: DuckDB locally (the Athena stand-in), Glue + Athena on AWS.

Locally every declared dataset becomes a DuckDB view ``<zone root>.<dataset>`` over exactly the Parquet
files its partition pointers publish, so analysts never see a half-written version. Datasets with no
data yet still get an empty, typed view, so every table can be discovered with ``SHOW ALL TABLES``.

On the ``aws`` profile each publish registers the table in Glue (awswrangler) and points the
partition at the new version folder: that switch is the atomic publish step Athena readers see.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import schemas
from schemas import Dataset

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from lakehouse.config import Settings
    from lakehouse.lake import Lake

log = logging.getLogger(__name__)


# ---- DuckDB ---------------------------------------------------------------------------------------
def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_sql(ds: Dataset, files: list[str]) -> str:
    """``CREATE OR REPLACE VIEW`` for one dataset over its published files."""
    name = f'"{ds.zone_root}"."{ds.name}"'
    cols = ds.duckdb_columns()
    if not files:
        select = ", ".join(f'CAST(NULL AS {t}) AS "{c}"' for c, t in cols.items())
        return f"CREATE OR REPLACE VIEW {name} AS SELECT {select} WHERE false"
    file_list = "[" + ", ".join(_quote(f) for f in files) + "]"
    hive = "true" if ds.partition_by else "false"
    source = (f"read_parquet({file_list}, hive_partitioning={hive}, hive_types_autocast=false, "
              "union_by_name=true)")
    select = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in cols.items())
    return f"CREATE OR REPLACE VIEW {name} AS SELECT {select} FROM {source}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time on the DuckDB file (concurrent Airflow tasks refresh it too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def refresh_duckdb(settings: Settings, lake: Lake, only: list[str] | None = None) -> int:
    """(Re)create the views of every declared dataset (or only some); returns the number of views."""
    import duckdb

    path = settings.duckdb_path
    wanted = [schemas.get(n) for n in only] if only else list(schemas.catalog().values())
    with _locked(path):
        con = duckdb.connect(str(path))
        try:
            for root in sorted({d.zone_root for d in schemas.catalog().values()}):
                con.execute(f'CREATE SCHEMA IF NOT EXISTS "{root}"')
            for ds in wanted:
                con.execute(view_sql(ds, lake.files(ds)))
        finally:
            con.close()
    return len(wanted)


def query_duckdb(settings: Settings, sql: str) -> pd.DataFrame:
    """Run SQL on the local catalog (read-only) and return a DataFrame."""
    import duckdb

    path = settings.duckdb_path
    if not path.exists():
        raise FileNotFoundError(f"no catalog at {path}: run `msp run` (or `msp demo`) first")
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


# ---- Glue -----------------------------------------------------------------------------------------
def glue_database(settings: Settings, ds: Dataset) -> str:
    return ds.glue_database(settings.glue_database_prefix)


class GlueCatalog:
    """Registers published tables and partitions in the Glue Data Catalog."""

    def __init__(self, settings: Settings, session: Any = None):
        import boto3

        self.settings = settings
        self.session = session or boto3.Session(region_name=settings.aws_region)
        self.glue = self.session.client("glue")
        self._tables: set[tuple[str, str]] = set()

    def ensure_table(self, ds: Dataset, location: str) -> None:
        import awswrangler as wr

        database = glue_database(self.settings, ds)
        if (database, ds.name) in self._tables:
            return
        if wr.catalog.does_table_exist(database, ds.name, boto3_session=self.session):
            self._tables.add((database, ds.name))  # created by the infra stack (or an earlier run)
            return
        wr.catalog.create_database(database, exist_ok=True, boto3_session=self.session)
        columns, partitions = ds.glue_columns()
        wr.catalog.create_parquet_table(
            database=database, table=ds.name, path=location.rstrip("/") + "/", columns_types=columns,
            partitions_types=partitions, description=ds.description,
            columns_comments={c.name: c.description for c in ds.stored_columns() if c.description},
            mode="overwrite", boto3_session=self.session,
        )
        self._tables.add((database, ds.name))

    def publish(self, ds: Dataset, partition_key: str, version_location: str) -> None:
        """Point the partition at its new version folder (create it if new)."""
        from lakehouse.lake import parse_partition_key

        self.ensure_table(ds, self._location(ds, version_location, partition_key))
        database = glue_database(self.settings, ds)
        if not partition_key:
            self.glue.update_table(DatabaseName=database, TableInput=self._table_input(ds, version_location))
            return
        values = [parse_partition_key(partition_key)[p] for p in ds.partition_by]
        table = self.glue.get_table(DatabaseName=database, Name=ds.name)["Table"]
        sd = dict(table["StorageDescriptor"])
        sd["Location"] = version_location.rstrip("/") + "/"
        partition_input = {"Values": values, "StorageDescriptor": sd}
        try:
            self.glue.update_partition(DatabaseName=database, TableName=ds.name, PartitionValueList=values,
                                       PartitionInput=partition_input)
        except self.glue.exceptions.EntityNotFoundException:
            self.glue.create_partition(DatabaseName=database, TableName=ds.name, PartitionInput=partition_input)

    def _location(self, ds: Dataset, version_location: str, partition_key: str) -> str:
        loc = version_location.rstrip("/")
        return loc[: loc.index("/" + partition_key)] if partition_key else loc.rsplit("/", 1)[0]

    def _table_input(self, ds: Dataset, location: str) -> dict[str, Any]:
        table = self.glue.get_table(DatabaseName=glue_database(self.settings, ds), Name=ds.name)["Table"]
        keep = ("Name", "Description", "StorageDescriptor", "PartitionKeys", "TableType", "Parameters")
        table_input = {k: v for k, v in table.items() if k in keep}
        table_input["StorageDescriptor"] = {**table["StorageDescriptor"], "Location": location.rstrip("/") + "/"}
        return table_input


def publish_hook(settings: Settings):
    """The lake's ``on_publish`` callback for this profile (None locally: DuckDB views are
    refreshed once per run instead of once per partition)."""
    if settings.catalog_kind != "glue":
        return None
    catalog = GlueCatalog(settings)
    return catalog.publish


def refresh(settings: Settings, lake: Lake, only: list[str] | None = None) -> int:
    """Make the catalog show what the lake has published (local: DuckDB views; AWS: Glue is kept
    current at each publish, nothing to do)."""
    if settings.catalog_kind == "duckdb":
        return refresh_duckdb(settings, lake, only)
    return 0

"""Where analysts' SQL runs: a DuckDB file of views locally (the Athena stand-in), Athena on AWS.

Locally every declared dataset is a view ``<zone root>.<dataset>`` over exactly the data files of its
table's current Iceberg snapshot, so analysts never see a half-written commit; a dataset with no data yet
still gets an empty, typed view, so every table can be discovered with ``SHOW ALL TABLES``. A refresh builds
a new catalog file and swaps it in with one rename: a reader holding the old file open (a notebook, a
dashboard) keeps reading the snapshot it opened, and never makes a run fail. The new file starts as a copy
of the old one, and only the views of tables that changed since (another metadata file in the table catalog)
or whose declaration changed are rebuilt: a daily run changes about half of the tables. Which snapshot each
view reads is in the file too: ``SELECT * FROM msp_catalog.views``. The files a view names stay
until maintenance expires their snapshot (``lake.snapshot_keep_days``) and refreshes the catalog.

``msp sql --as-of RUN_ID|TIMESTAMP`` builds the same views in memory over the snapshots current at that
time (time travel).

The analysts' connection is read-only and confined to the lake: only ``SELECT`` (and ``EXPLAIN``) statements
run (``COPY``, ``EXPORT``, ``ATTACH``, ``INSTALL``/``LOAD``, ``CREATE``, ``SET`` ... are refused with a
one-line reason), file access is limited to the lake's own folder (``allowed_directories``, external access
off), and the configuration is locked so a query cannot undo it. A query can read the lake; it cannot change
it, nor read ``/etc/passwd``. On AWS the tables are Iceberg tables in the Glue Data Catalog that Athena reads
natively; :class:`AthenaCatalog` runs queries in the stack's workgroup.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import schemas
from lakehouse import faults
from schemas import Dataset

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from lakehouse.config import Settings
    from lakehouse.lake import Lake

log = logging.getLogger(__name__)


#: Where the catalog file says which snapshot each view reads (``SELECT * FROM msp_catalog.views``).
VIEWS_SCHEMA = "msp_catalog"
VIEWS_TABLE = f"{VIEWS_SCHEMA}.views"


def _metadata_locations(lake: Lake) -> dict[tuple[str, ...], str | None] | None:
    """Every table's current metadata file from the table catalog in one query, where it can say (the local
    SQL catalog); else None, and every view is rebuilt."""
    locations = getattr(lake.catalog, "metadata_locations", None)
    if locations is None:
        return None
    try:
        return {tuple(k): v for k, v in locations().items()}
    except Exception as exc:  # the views are rebuilt; the catalog's own error shows where it matters
        log.debug("metadata locations not read (%s): every view is rebuilt", exc)
        return None


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_sql(ds: Dataset, files: list[str]) -> str:
    """``CREATE OR REPLACE VIEW`` for one dataset over some data files (its snapshot's)."""
    name = f'"{ds.zone_root}"."{ds.name}"'
    cols = ds.duckdb_columns()
    if not files:
        select = ", ".join(f'CAST(NULL AS {t}) AS "{c}"' for c, t in cols.items())
        return f"CREATE OR REPLACE VIEW {name} AS SELECT {select} WHERE false"
    file_list = "[" + ", ".join(_quote(f.removeprefix("file://")) for f in files) + "]"
    source = f"read_parquet({file_list}, union_by_name=true)"
    select = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in cols.items())
    return f"CREATE OR REPLACE VIEW {name} AS SELECT {select} FROM {source}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One catalog builder at a time (concurrent Airflow tasks refresh it too); readers never wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class ReadOnlySql(PermissionError):
    """An analyst's statement would change something or reach outside the lake; it was not run."""


#: Statement types an analyst's query may contain.
ALLOWED_STATEMENTS = ("SELECT", "EXPLAIN")


def check_read_only(con, sql: str) -> None:
    """Refuse anything but SELECT/EXPLAIN statements, naming the first offending one."""
    for statement in con.extract_statements(sql):
        kind = statement.type.name
        if kind not in ALLOWED_STATEMENTS:
            raise ReadOnlySql(f"msp sql is read-only: {kind} statements are refused (the lake changes only through "
                              "`msp run`); use SELECT")


def sandbox(con, lake_root: str) -> None:
    """Confine a DuckDB connection to reading the lake: no other files, no extensions, settings locked."""
    root = str(lake_root).removeprefix("file://").rstrip("/") + "/"
    con.execute(f"SET allowed_directories = [{_quote(root)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")


class SqlCatalog:
    """An analysts' SQL catalog over the lake."""

    def refresh(self, lake: Lake) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def query(self, sql: str, as_of: str | None = None) -> pd.DataFrame:  # pragma: no cover - interface
        raise NotImplementedError


class DuckDBCatalog(SqlCatalog):
    def __init__(self, settings: Settings):
        self.settings = settings
        self.path = settings.duckdb_path

    def _build(self, con, lake: Lake, snapshot_of, current: bool = False) -> int:
        """Create (or replace) a view per declared dataset; returns how many views there are. ``current``: the
        views are over the current snapshots, and ``con`` may hold the previous refresh's views: a view whose
        table still has the metadata file and the columns it was built from is kept as it is."""
        for root in sorted({d.zone_root for d in schemas.catalog().values()}):
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{root}"')
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {VIEWS_SCHEMA}")
        con.execute(f"CREATE TABLE IF NOT EXISTS {VIEWS_TABLE} (dataset VARCHAR PRIMARY KEY, snapshot_id BIGINT, "
                    "files INTEGER, metadata_location VARCHAR, columns VARCHAR, refreshed_at TIMESTAMPTZ)")
        built = {d: (m, c) for d, m, c in con.execute(f"SELECT dataset, metadata_location, columns FROM {VIEWS_TABLE}")
                 .fetchall()} if current else {}
        locations = _metadata_locations(lake) if current else None
        declared = schemas.catalog()
        for name in sorted(set(built) - set(declared)):  # a dataset no longer declared: its view goes
            zone_root, _sep, table = name.partition(".")
            con.execute(f'DROP VIEW IF EXISTS "{zone_root}"."{table}"')
            con.execute(f"DELETE FROM {VIEWS_TABLE} WHERE dataset = ?", [name])
        kept = 0
        for ds in declared.values():
            columns = json.dumps(ds.duckdb_columns())
            location = locations.get(tuple(lake.identifier(ds))) if locations is not None else None
            # a table not created yet has no metadata file: its empty view is kept until it has one
            if locations is not None and built.get(ds.qualified_name) == (location, columns):
                kept += 1
                continue
            snap = snapshot_of(ds)
            files = lake.files(ds, snapshot_id=snap) if snap is not None else []
            con.execute(view_sql(ds, files))
            con.execute(f"INSERT OR REPLACE INTO {VIEWS_TABLE} VALUES (?, ?, ?, ?, ?, now())",
                        [ds.qualified_name, snap, len(files), location, columns])
        log.info("catalog: %d of %d views unchanged", kept, len(declared))
        return len(declared)

    def refresh(self, lake: Lake) -> int:
        """Bring the catalog file to every table's current snapshot; returns the number of views. The new file
        starts as a copy of the current one, whose views of unchanged tables stay."""
        import duckdb

        t0 = time.perf_counter()
        with _locked(self.path):
            tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
            if self.path.exists():
                shutil.copyfile(self.path, tmp)
            try:
                con = duckdb.connect(str(tmp))
            except duckdb.Error:  # an unreadable previous file: build from nothing
                tmp.unlink(missing_ok=True)
                con = duckdb.connect(str(tmp))
            try:
                n = self._build(con, lake, lake.snapshot_id, current=True)
                faults.point("catalog.building")
            finally:
                con.close()
            os.replace(tmp, self.path)  # readers of the old file keep it; new readers get the new one
        log.info("catalog %s: %d views in %.2f s", self.path, n, time.perf_counter() - t0)
        return n

    def connect(self, as_of: str | None = None, lake: Lake | None = None):
        """A read-only connection: the catalog file, or, with ``as_of``, views over the snapshots current
        at that time (a run id, or an ISO timestamp)."""
        import duckdb

        if as_of is None:
            if not self.path.exists():
                raise FileNotFoundError(f"no catalog at {self.path}: run `msp run` (or `msp demo`) first")
            con = duckdb.connect(str(self.path), read_only=True)
        else:
            from lakehouse.lake import Lake

            lake = lake or Lake.from_settings(self.settings)
            when = resolve_as_of(lake, as_of)
            con = duckdb.connect(":memory:")
            self._build(con, lake, lambda ds: lake.snapshot_as_of(ds, when))
        sandbox(con, self.settings.lake_root)
        return con

    def query(self, sql: str, as_of: str | None = None) -> pd.DataFrame:
        con = self.connect(as_of)
        try:
            check_read_only(con, sql)
            return con.execute(sql).df()
        finally:
            con.close()


def resolve_as_of(lake: Lake, as_of: str) -> datetime:
    """A run id (its report's finish time) or an ISO timestamp → the time to read the lake as of."""
    from lakehouse.lake import LakeError

    report = lake.read_text(f"_meta/runs/{as_of}.json")
    if report is not None:
        finished = json.loads(report).get("finished_at")
        if finished:
            return datetime.fromisoformat(finished)
    try:
        when = datetime.fromisoformat(as_of)
    except ValueError:
        raise LakeError(f"--as-of {as_of!r} is neither a run id (no report at _meta/runs/{as_of}.json) "
                        "nor an ISO timestamp (2024-06-30T12:00:00+00:00)") from None
    if when.tzinfo is None:
        from datetime import UTC

        when = when.replace(tzinfo=UTC)
    return when


class AthenaCatalog(SqlCatalog):
    """Athena over the Glue Data Catalog's Iceberg tables; queries run in the configured workgroup."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def refresh(self, lake: Lake) -> int:
        return 0  # Glue is the table catalog itself: every commit is visible to Athena at once

    def query(self, sql: str, as_of: str | None = None) -> pd.DataFrame:
        import awswrangler as wr

        if as_of is not None:
            raise ValueError("on Athena, time-travel with FOR TIMESTAMP AS OF in the SQL itself")
        p = self.settings.platform
        kwargs: dict[str, Any] = {"workgroup": p.athena_workgroup, "ctas_approach": False}
        if p.athena_output:
            kwargs["s3_output"] = p.athena_output
        return wr.athena.read_sql_query(sql, database=f"{p.glue_database_prefix}_analytics", **kwargs)

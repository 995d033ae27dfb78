"""One factory per environment choice, each picked once from the settings the profile filled in.

=================  ==============================================  ==============================================
choice             local profile                                   aws profile
=================  ==============================================  ==============================================
table catalog      pyiceberg SQL catalog on ``<home>/iceberg.db``   the AWS Glue Data Catalog (pyiceberg's Glue
                                                                   catalog)
job engine         DuckDB, in-process (:mod:`lakehouse.engine`)     Spark (AWS Glue 6.0)
SQL catalog        a DuckDB file of views (:mod:`lakehouse.catalog`) Athena, in the stack's workgroup
event bus          the lake's own router (``events.inbox``)         Amazon EventBridge, then the same router
job runner         the stage in the task's own process             an AWS Glue job per stage run
=================  ==============================================  ==============================================

Business code asks these factories for an implementation; it never asks which profile it runs on.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pyiceberg.catalog import Catalog

    from lakehouse.catalog import SqlCatalog
    from lakehouse.config import Settings
    from lakehouse.engine import Engine
    from lakehouse.events import EventBus

_LOCK = threading.Lock()
_CATALOGS: dict[tuple, Any] = {}
#: How long a writer waits for another process's SQLite transaction on the local table catalog.
SQLITE_BUSY_MS = 60_000


def _sqlite_catalog(uri: str, warehouse: str) -> Catalog:
    """pyiceberg's SQL catalog on a SQLite file, in WAL mode so that readers never block the writer and
    concurrent Airflow tasks wait for each other's commits instead of failing with 'database is locked'."""
    from sqlalchemy import event

    from lakehouse.iceberg_cache import CachingSqlCatalog

    path = Path(uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=SQLITE_BUSY_MS / 1000)
    try:
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        # closed now, not when the garbage collector finds it (``with`` only commits): a connection left open
        # here is inherited by every stage worker forked later, and its late close in the run's process
        # checkpointed and deleted the WAL under a worker still committing to it (see close_catalog_connections)
        con.close()
    catalog = CachingSqlCatalog("msp", uri=uri, warehouse=warehouse)

    @event.listens_for(catalog.engine, "connect")
    def _pragmas(dbapi_connection, _record):  # pragma: no cover - exercised by every connection
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cursor.close()

    catalog.engine.dispose()  # every pooled connection from now on gets the pragma
    return catalog


def s3_endpoint() -> str | None:
    """An S3 endpoint other than AWS's, from the standard variables (a test's moto server, a MinIO): boto3
    follows them by itself, pyiceberg's and DuckDB's S3 clients are told explicitly."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _glue_catalog(settings: Settings) -> Catalog:
    from pyiceberg.catalog.glue import GlueCatalog

    prefix = settings.platform.glue_database_prefix
    # the bucket's region is the stack's: naming it saves pyiceberg a region look-up per bucket
    props = {"glue.region": settings.aws_region, "s3.region": settings.aws_region, "warehouse": settings.lake_root}
    if s3_endpoint():
        props["s3.endpoint"] = s3_endpoint()
    catalog = GlueCatalog("msp", **props)
    # one Glue database per zone, named like the Athena databases analysts query (msp_raw, msp_processed, ...)
    catalog.msp_identifier = lambda ds: (ds.glue_database(prefix), ds.name)
    return catalog


def table_catalog(settings: Settings) -> Catalog:
    """The Iceberg catalog of the lake (one per process and location)."""
    p = settings.platform
    key = (p.table_catalog, p.iceberg_catalog_uri, p.lake_root)
    with _LOCK:
        if key not in _CATALOGS:
            if p.table_catalog == "sql":
                _CATALOGS[key] = _sqlite_catalog(p.iceberg_catalog_uri, p.lake_root)
            else:
                _CATALOGS[key] = _glue_catalog(settings)
        return _CATALOGS[key]


def close_catalog_connections() -> None:
    """Close this process's pooled connections to the local table catalog (the pool opens new ones when next
    asked). Called before every fork: SQLite must not have a connection open in a process that forks, or the
    child's own connections share the parent's lock bookkeeping (SQLite's file locks belong to a process and
    are not inherited) and a commit made in the child can be overwritten in the WAL and lost."""
    with _LOCK:
        for cat in _CATALOGS.values():
            engine = getattr(cat, "engine", None)
            if engine is not None:
                engine.dispose()


def forget_catalogs() -> None:
    """Drop cached catalogs (tests that delete a lake between cases)."""
    close_catalog_connections()
    with _LOCK:
        _CATALOGS.clear()


def engine(settings: Settings) -> Engine:
    from lakehouse.engine import make_engine

    made = make_engine(settings)
    if made.name == "duckdb" and str(settings.lake_root).startswith("s3://"):
        _duckdb_s3(made.con.con, settings)  # a local DuckDB over an S3 lake (tests against moto, a laptop)
    return made


def _duckdb_s3(con, settings: Settings) -> None:
    """Let a DuckDB connection read ``s3://``: the httpfs extension from its PyPI package (no download), and a
    secret with the standard AWS chain's credentials (boto3 resolves them; settings never hold any)."""
    from urllib.parse import urlparse

    import boto3

    try:
        from duckdb_extensions import import_extension

        import_extension("httpfs", con=con)
    except ImportError:  # pragma: no cover - the extension may be installed already
        pass
    con.execute("LOAD httpfs")
    creds = boto3.Session().get_credentials()
    opts = {"REGION": settings.aws_region}
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        opts |= {"KEY_ID": frozen.access_key, "SECRET": frozen.secret_key}
        if frozen.token:
            opts["SESSION_TOKEN"] = frozen.token
    endpoint = s3_endpoint()
    if endpoint:
        url = urlparse(endpoint)
        opts |= {"ENDPOINT": url.netloc, "URL_STYLE": "path", "USE_SSL": str(url.scheme == "https").lower()}
    body = ", ".join(f"{k} {v}" if k == "USE_SSL" else f"{k} '{v}'" for k, v in opts.items())
    con.execute(f"CREATE OR REPLACE SECRET msp_lake (TYPE s3, {body})")


def sql_catalog(settings: Settings) -> SqlCatalog:
    """Where analysts' SQL runs: the local DuckDB catalog file, or Athena."""
    from lakehouse.catalog import AthenaCatalog, DuckDBCatalog

    return DuckDBCatalog(settings) if settings.platform.catalog == "duckdb" else AthenaCatalog(settings)


def event_bus(settings: Settings) -> EventBus:
    """Where dispatched events go besides the lake's inbox: nowhere more locally, EventBridge on AWS."""
    from lakehouse.events import EventBridgeBus, LocalBus

    return LocalBus() if settings.platform.event_bus == "local" else EventBridgeBus(settings)


def runner_kind(settings: Settings) -> str:
    """``local`` or ``glue``: how an Airflow task runs its stage (see :mod:`lakehouse.airflow_dags`)."""
    return settings.platform.runner

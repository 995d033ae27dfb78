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
    from pyiceberg.catalog.sql import SqlCatalog
    from sqlalchemy import event

    path = Path(uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path, timeout=SQLITE_BUSY_MS / 1000) as con:
        con.execute("PRAGMA journal_mode=WAL")
    catalog = SqlCatalog("msp", uri=uri, warehouse=warehouse)

    @event.listens_for(catalog.engine, "connect")
    def _pragmas(dbapi_connection, _record):  # pragma: no cover - exercised by every connection
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cursor.close()

    catalog.engine.dispose()  # every pooled connection from now on gets the pragma
    return catalog


def _glue_catalog(settings: Settings) -> Catalog:
    from pyiceberg.catalog.glue import GlueCatalog

    prefix = settings.platform.glue_database_prefix
    catalog = GlueCatalog("msp", **{"glue.region": settings.aws_region, "warehouse": settings.lake_root})
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


def forget_catalogs() -> None:
    """Drop cached catalogs (tests that delete a lake between cases)."""
    with _LOCK:
        for cat in _CATALOGS.values():
            engine = getattr(cat, "engine", None)
            if engine is not None:
                engine.dispose()
        _CATALOGS.clear()


def engine(settings: Settings) -> Engine:
    from lakehouse.engine import make_engine

    return make_engine(settings)


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

"""The one Spark session factory.

Locally: ``local[N]`` tuned for a small machine (bound to 127.0.0.1, UI off, shuffle partitions sized
to the cores, UTC, micro-second Parquet timestamps, partition values kept as strings). On AWS Glue the
job's entry point (``lakehouse.glue_entry``) builds the GlueContext and hands its session in through
:func:`use_session`; ``awsglue`` is imported there and nowhere else. Jobs receive a session; they never
build one.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from lakehouse.config import Settings

_LOCK = threading.Lock()
#: The driver's log4j2 configuration: a quiet start-up (Spark's default prints its chatter on every run).
LOG4J2_CONFIG = Path(__file__).with_name("log4j2.properties")
_SESSION: SparkSession | None = None

#: Settings every session gets, local or Glue: they make jobs deterministic and readers consistent.
COMMON_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
}


def get_spark(settings: Settings | None = None) -> SparkSession:
    """The session of this process, created on first use and reused by every job of the run."""
    global _SESSION
    with _LOCK:
        if _SESSION is not None and not _is_stopped(_SESSION):
            return _SESSION
        if settings is None:
            from lakehouse.config import load_settings

            settings = load_settings()
        _SESSION = _local_session(settings.section("spark"))
        return _SESSION


def use_session(session: SparkSession) -> None:
    """Adopt a session built elsewhere (the Glue entry point) as the process session."""
    global _SESSION
    for key, value in COMMON_CONF.items():
        session.conf.set(key, value)
    _SESSION = session


def stop_spark() -> None:
    global _SESSION
    with _LOCK:
        if _SESSION is not None:
            _SESSION.stop()
            _SESSION = None


def _is_stopped(session: SparkSession) -> bool:
    try:
        return session.sparkContext._jsc is None
    except Exception:
        return True


def _local_session(conf: dict) -> SparkSession:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(conf.get("master", "local[2]"))
        .appName("msp-lakehouse")
        .config("spark.driver.memory", conf.get("driver_memory", "2g"))
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(conf.get("shuffle_partitions", 4)))
        .config("spark.default.parallelism", str(conf.get("shuffle_partitions", 4)))
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{LOG4J2_CONFIG}")
    )
    for key, value in COMMON_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(conf.get("log_level", "ERROR"))
    return session

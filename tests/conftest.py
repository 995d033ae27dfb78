"""Shared fixtures: isolated settings per test, and one Spark session per test process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lakehouse.config import Settings, load_settings

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
FIXTURES = Path(__file__).parent / "fixtures"


def make_settings(home: Path, **env: str) -> Settings:
    """Settings rooted in ``home``, ignoring the developer's own environment and msp.toml."""
    return load_settings(env={"MSP_HOME": str(home), "MSP_SPARK__DRIVER_MEMORY": "1g",
                              "MSP_SPARK__SHUFFLE_PARTITIONS": "2", **env})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "home")


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """The one Spark session of this test process (jobs reuse it through lakehouse.spark)."""
    from lakehouse.spark import get_spark, stop_spark

    session = get_spark(make_settings(tmp_path_factory.mktemp("spark-home")))
    yield session
    stop_spark()

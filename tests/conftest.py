"""Shared fixtures: isolated settings per test, and ONE pipeline lake per test run.

``pipeline_lake`` is the tiny synthetic MSP (seed 42) after every daily stage of every agent over the tiny
window, then training, then the daily stages again on the last day (so scores use the trained models). It is
built once per test run, whatever the number of pytest-xdist workers (a file lock in the run's shared temp
folder), and every agent's integration tests read it: an agent's own integration tests should take about
90 s at most on it. Tests must not write to it (Iceberg metadata holds absolute paths, so a lake cannot be
copied either): a test that changes a lake builds its own, small one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from lakehouse.config import Settings, load_settings

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
FIXTURES = Path(__file__).parent / "fixtures"
#: The tiny window (the generator's default for --scale tiny): 2024-01-01 .. 2024-04-30.
TINY_FIRST, TINY_LAST = date(2024, 1, 1), date(2024, 4, 30)
#: Settings of the shared lake that differ from the defaults (a short history needs a short horizon).
PIPELINE_ENV = {"MSP_CPI__CHURN_HORIZON_DAYS": "30", "MSP_CPI__CHURN_MIN_TRAIN_POSITIVES": "1"}


def make_settings(home: Path, **env: str) -> Settings:
    """Settings rooted in ``home``, ignoring the developer's own environment and msp.toml."""
    return load_settings(env={"MSP_HOME": str(home), "MSP_SPARK__DRIVER_MEMORY": "1g",
                              "MSP_SPARK__SHUFFLE_PARTITIONS": "2", **env})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "home")


@pytest.fixture
def throwaway_agent(tmp_path, monkeypatch):
    """A third-party agent package ``tmpagent`` installed on sys.path (see tests/agent_package.py); it
    consumes client.profitability.changed and emits tmpagent.busy.detected. Yields its site folder."""
    import sys

    from lakehouse import agents
    from lakehouse.environment import forget_catalogs
    from tests.agent_package import write_agent_package

    def forget_package():  # the package and its modules: a test that rewrites tmpagent/jobs.py must load it
        for name in [m for m in sys.modules if m == "tmpagent" or m.startswith("tmpagent.")]:
            del sys.modules[name]

    root = write_agent_package(tmp_path / "site")
    monkeypatch.syspath_prepend(str(root))
    forget_package()
    agents.reset()
    forget_catalogs()
    yield root
    forget_package()
    agents.reset()


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """The one Spark session of this test process (only the Spark-engine parity tests need it)."""
    from lakehouse.spark import get_spark, stop_spark

    session = get_spark(make_settings(tmp_path_factory.mktemp("spark-home")))
    yield session
    stop_spark()


def build_pipeline_lake(home: Path, **env: str) -> dict:
    """Generate the tiny MSP into ``home`` and run every stage over it (``env``: settings besides
    :data:`PIPELINE_ENV`); returns the run summaries."""
    from lakehouse.context import date_range
    from lakehouse.runner import run_pipeline
    from lakehouse.synth.cli import generate_with_progress

    settings = make_settings(home, **PIPELINE_ENV, **env)
    generate_with_progress(settings, scale="tiny", seed=42)
    days = date_range(TINY_FIRST, TINY_LAST)
    runs = {"daily": run_pipeline(settings, days, refresh_catalog=False),
            "train": run_pipeline(settings, days, kinds=["train"], refresh_catalog=False),
            "last_day": run_pipeline(settings, [TINY_LAST])}
    return {k: {"ok": r.ok, "run_id": r.run_id, "seconds": r.seconds,
                "failed": [(s.name, s.error) for s in r.stages if s.status not in ("ok", "unchanged")]}
            for k, r in runs.items()}


@pytest.fixture(scope="session")
def pipeline_lake(tmp_path_factory) -> Settings:
    """Settings of the shared tiny pipeline lake (see the module docstring). Read-only for tests."""
    root = tmp_path_factory.getbasetemp()
    shared = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root
    home = shared / "pipeline-lake"
    done = shared / "pipeline-lake.json"
    with open(shared / "pipeline-lake.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(home)
            done.write_text(json.dumps(build_pipeline_lake(home), indent=1))
    report = json.loads(done.read_text())
    failed = {k: v["failed"] for k, v in report.items() if not v["ok"]}
    assert not failed, f"the shared pipeline lake did not build cleanly: {failed}"
    return make_settings(home, **PIPELINE_ENV)

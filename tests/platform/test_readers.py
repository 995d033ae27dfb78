"""Readers never make a run fail, and never see a broken table: an analyst's notebook holding the DuckDB catalog
open during a whole ``msp run``, and a reader polling the catalog through a crash before the catalog refresh and
the rerun after it."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import duckdb
import pytest

from tests.processes import msp

DAY = "2024-01-01"
STAGES = ("ingest", "quality")  # the platform's stages: they publish raw and processed tables and the catalog

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("readers")]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A tiny MSP's first export day, run once through the platform's stages (so a catalog exists)."""
    home = tmp_path_factory.mktemp("readers")
    assert msp(home, "generate", "--scale", "tiny", "--seed", "42", "--days", "2").returncode == 0
    first = msp(home, "run", "--date", DAY, "--stages", *STAGES)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    return home


def count(con) -> int:
    return con.execute("SELECT count(*) FROM processed.tickets").fetchone()[0]


def test_a_notebook_holding_the_catalog_open_during_a_whole_run_never_fails_it(home):
    reader = duckdb.connect(str(home / "catalog.duckdb"), read_only=True)  # the analyst's notebook
    try:
        before = count(reader)
        run = msp(home, "run", "--date", "2024-01-02", "--stages", *STAGES)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        assert "Traceback" not in run.stderr
        assert count(reader) == before  # the notebook still reads the snapshot it opened
    finally:
        reader.close()
    fresh = duckdb.connect(str(home / "catalog.duckdb"), read_only=True)
    try:
        assert count(fresh) > before  # the run published the new day and the catalog points at it
    finally:
        fresh.close()


def test_a_reader_polling_through_a_crash_before_the_catalog_refresh_and_the_rerun_never_fails(home):
    errors: list[str] = []
    answers: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                con = duckdb.connect(str(home / "catalog.duckdb"), read_only=True)
                try:
                    answers.append(count(con))
                finally:
                    con.close()
            except Exception as exc:  # a file the views point at deleted, a half-written catalog ...
                errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.1)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        killed = msp(home, "run", "--date", DAY, "--force", "--stages", *STAGES, crash="runner.catalog")
        assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:]
        rerun = msp(home, "run", "--date", DAY, "--force", "--stages", *STAGES)
        assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
        maintained = msp(home, "lake", "maintain")
        assert maintained.returncode == 0, maintained.stdout[-2000:] + maintained.stderr[-2000:]
    finally:
        stop.set()
        poller.join(timeout=30)
    assert answers and not errors, errors[:3]
    assert min(answers) > 0

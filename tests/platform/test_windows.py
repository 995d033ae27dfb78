"""A long run a month at a time: staged writes committed in one snapshot per table, reads of a stage's own
staged rows, windowed stages whose output equals the output computed all at once, and crash safety of a
windowed run (killed between months, or while a month's part is staged)."""

from __future__ import annotations

import shutil
import signal
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse.agents import registry
from lakehouse.environment import forget_catalogs
from lakehouse.lake import Lake, LakeError
from lakehouse.runner import windows
from tests.conftest import make_settings
from tests.platform.test_crash import VOLATILE
from tests.platform.test_lake import EVENTS, WHOLE, ids, rows
from tests.processes import msp

FEB = [("f", 1, 1, "2024-02-01"), ("g", 2, 1, "2024-02-02")]
JAN = [("a", 10.5, 1, "2024-01-01"), ("b", 3, 2, "2024-01-01"), ("c", 7.25, 0.5, "2024-01-02")]


def checksums(home: Path) -> dict[str, str]:
    """Every table with a snapshot, by name: its rows' checksum (a table created and never written does not
    count: a windowed stage creates the tables it may write before it knows it writes nothing)."""
    import schemas

    forget_catalogs()
    lake = Lake.from_settings(make_settings(home))
    return {name: lake.checksum(ds, exclude=VOLATILE) for name, ds in schemas.catalog().items()
            if lake.exists(ds) and lake.snapshot_id(ds) is not None}


@pytest.fixture
def lake(settings):
    forget_catalogs()
    return Lake.from_settings(settings)


def test_a_staged_write_of_many_parts_is_one_snapshot_that_other_readers_see_only_when_committed(lake, settings):
    lake.replace(EVENTS, rows(("old", 1, 1, "2024-01-01"), ("z", 1, 1, "2024-03-01")), run_id="run-0")
    before = lake.snapshot_id(EVENTS)
    staged = lake.stage(EVENTS, run_id="run-1", stage="test.windowed")
    staged.add(rows(*JAN), replace=[{"dt": "2024-01-01"}, {"dt": "2024-01-02"}])
    staged.add(rows(*FEB), replace=[{"dt": "2024-02-01"}, {"dt": "2024-02-02"}])
    # this lake reads the table as the write will leave it; another reader sees the committed snapshot only
    assert ids(lake) == ["a", "b", "c", "f", "g", "z"]
    assert ids(lake, where={"dt": "2024-02-02"}) == ["g"]
    other = Lake(lake.root, lake.catalog)
    assert other.snapshot_id(EVENTS) == before and ids(other) == ["old", "z"]
    result = staged.commit()
    assert result.partitions == {"dt=2024-01-01": 2, "dt=2024-01-02": 1, "dt=2024-02-01": 1, "dt=2024-02-02": 1}
    hist = lake.history(EVENTS)
    assert len(hist) == 2 and (hist[-1]["run_id"], hist[-1]["stage"]) == ("run-1", "test.windowed")
    assert hist[-1]["added_records"] == 5 and hist[-1]["replaced"] == "dt=2024-01-01..2024-02-02 (4)"
    assert ids(other) == ["a", "b", "c", "f", "g", "z"] and EVENTS.qualified_name not in lake.staged
    with pytest.raises(LakeError, match="committed or discarded already"):
        staged.add(rows(*FEB))


def test_a_later_part_replaces_what_an_earlier_part_staged_for_the_same_values(lake):
    staged = lake.stage(EVENTS, run_id="run-1")
    staged.add(rows(*JAN))
    first_files = {f.path for f in lake.data_files(EVENTS)}
    staged.add(rows(("d", 1, 1, "2024-01-02")), replace=[{"dt": "2024-01-02"}])
    assert ids(lake) == ["a", "b", "d"]
    # the earlier part's file of January was rewritten without 2024-01-02, and removed at once
    assert all(not Path(p.removeprefix("file://")).exists() for p in first_files)
    staged.commit()
    assert ids(lake) == ["a", "b", "d"] and len(lake.history(EVENTS)) == 1
    whole = lake.stage(WHOLE, run_id="run-2")  # an unpartitioned table is replaced whole by each part
    whole.add(pa.table({"k": ["x", "y"], "v": [1, 2]}))
    whole.add(pa.table({"k": ["w"], "v": [3]}))
    whole.commit()
    assert ids(lake, WHOLE) == ["w"]


def test_a_discarded_staged_write_leaves_the_table_and_no_file_behind(lake):
    lake.replace(EVENTS, rows(*JAN), run_id="run-0")
    checksum, before = lake.checksum(EVENTS), lake.snapshot_id(EVENTS)
    staged = lake.stage(EVENTS, run_id="run-1")
    staged.add(rows(*FEB))
    written = [f.path for f in lake.data_files(EVENTS) if "2024-02" in str(f.bounds.get("dt"))]
    assert written and all(Path(p.removeprefix("file://")).exists() for p in written)
    staged.discard()
    assert lake.snapshot_id(EVENTS) == before and lake.checksum(EVENTS) == checksum
    assert not any(Path(p.removeprefix("file://")).exists() for p in written)


def test_a_staged_write_rebases_on_a_commit_made_meanwhile_and_keeps_the_other_writers_rows(lake, settings):
    lake.replace(EVENTS, rows(*JAN), run_id="run-0")
    staged = lake.stage(EVENTS, run_id="run-1")
    staged.add(rows(("b2", 1, 1, "2024-01-01")), replace=[{"dt": "2024-01-01"}])
    forget_catalogs()
    other = Lake.from_settings(settings)  # another process commits January 2nd and a February day
    other.replace(EVENTS, rows(("c2", 1, 1, "2024-01-02"), ("f", 1, 1, "2024-02-01")), run_id="run-other")
    staged.commit()
    # ours replaced January 1st; theirs (January 2nd, February 1st) stand; nothing doubled
    assert ids(Lake.from_settings(settings)) == ["b2", "c2", "f"]


def test_windowed_stages_run_a_month_at_a_time_when_the_setting_is_on(settings):
    reg = registry()
    days = [date(2024, 1, 30), date(2024, 1, 31), date(2024, 2, 1), date(2024, 3, 5)]
    ingest = reg.stages["ingest"]
    assert windows(settings, ingest, days) == [days[:2], days[2:3], days[3:]]
    assert windows(settings, ingest, days[:1]) == [days[:1]]
    off = make_settings(Path(settings.home), MSP_PLATFORM__WINDOW="off")
    assert windows(off, ingest, days) == [days]
    plain = next(s for s in reg.stages.values() if not s.window)
    assert windows(settings, plain, days) == [days]
    quarterly = next(s for s in reg.stages.values() if s.window == "quarter")
    assert windows(settings, quarterly, [*days, date(2024, 4, 2)]) == [days, [date(2024, 4, 2)]]


def test_every_windowed_stage_writes_what_the_whole_run_at_once_writes(pipeline_lake, tmp_path):
    """The shared lake was built with the default (windowed stages a month at a time); the same build with
    ``platform.window = "off"`` must give every table the same rows."""
    from tests.conftest import build_pipeline_lake

    windowed = [s.name for s in registry().stages.values() if s.window]
    assert {"ingest", "dsa.costs", "spo.opportunities"} <= set(windowed)
    home = tmp_path / "whole"
    report = build_pipeline_lake(home, MSP_PLATFORM__WINDOW="off")
    assert all(r["ok"] for r in report.values()), report
    shared = checksums(Path(pipeline_lake.home))
    at_once = checksums(home)
    assert set(shared) == set(at_once)
    differ = sorted(n for n in shared if shared[n] != at_once[n])
    assert not differ, f"tables that differ when windowed stages run a month at a time: {differ}"


# ---- crash safety of a windowed run (a run across a month's end: two windows of one day) ---------------------
FIRST, LAST = "2024-01-31", "2024-02-01"
AGENTS = ("dsa",)


@pytest.fixture(scope="module")
def month_end_landing(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("window-landing")
    done = msp(home, "generate", "--scale", "tiny", "--seed", "42", "--start", FIRST, "--days", "2")
    assert done.returncode == 0, done.stderr
    return home / "landing"


@pytest.fixture(scope="module")
def month_end_reference(tmp_path_factory, month_end_landing) -> dict[str, str]:
    """The tables of the run across the month's end, uninterrupted, all at once (the windowed run must give
    the same)."""
    home = tmp_path_factory.mktemp("window-reference")
    shutil.copytree(month_end_landing, home / "landing")
    run = msp(home, "run", "--from", FIRST, "--to", LAST, "--agents", *AGENTS, env={"MSP_PLATFORM__WINDOW": "off"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return checksums(home)


@pytest.mark.slow
@pytest.mark.xdist_group("crash")
@pytest.mark.parametrize("point", ["runner.window_done", "lake.part_staged:5"])
def test_a_windowed_run_killed_between_or_inside_months_publishes_nothing_partial_and_converges(
        tmp_path, month_end_landing, month_end_reference, point):
    home = tmp_path / "home"
    shutil.copytree(month_end_landing, home / "landing")
    killed = msp(home, "run", "--from", FIRST, "--to", LAST, "--agents", *AGENTS, crash=point)
    assert killed.returncode == -signal.SIGKILL, f"the run did not reach {point}: {killed.stdout[-2000:]}"
    partial = checksums(home)
    assert set(partial) <= set(month_end_reference)
    # ingestion (the first windowed stage) was killed before its commit: it published nothing, not January alone
    assert not [n for n in partial if n.startswith("raw.")]
    rerun = msp(home, "run", "--from", FIRST, "--to", LAST, "--agents", *AGENTS)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert checksums(home) == month_end_reference


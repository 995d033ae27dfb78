"""``msp ram solve``: benchmark files in the Solomon and VRPLIB formats (tests/ram/fixtures, see its README):
feasible routes, the known optimum found, and the time limit respected."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jobs.ram import benchmark as B
from jobs.ram import vrp as V
from lakehouse.cli import main
from tests.ram.brute import optimum

FIX = Path(__file__).parent / "fixtures"
#: file -> (format, optimum as printed: distance with the format's rounding); found by enumeration
KNOWN = {"RAM6.txt": ("solomon", 120.8), "ramcircle8.vrp": ("vrplib", 170.0), "ramtw7.vrp": ("vrplib", 182.0)}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_the_known_optimum_is_found(name):
    fmt, best = KNOWN[name]
    assert B.detect_format(FIX / name) == fmt
    inst = B.read(FIX / name)
    assert optimum(inst) / inst.scale == pytest.approx(best)          # the documented optimum is the optimum
    for sol in (V.solve_pyvrp(inst, time_limit_s=2.0, iterations=2000, seed=1), V.solve_vroom(inst)):
        assert V.check(inst, sol) == [] and sol.unassigned == []
        assert sol.cost(inst) == pytest.approx(best), sol.solver


def test_solomon_distances_are_truncated_to_one_decimal():
    inst = B.read(FIX / "RAM6.txt")
    # customer 1 at (60, 58), depot at (50, 50): sqrt(164) = 12.806... -> 12.8 (x 10, truncated)
    assert inst.scale == 10 and inst.distance[0, 1] == 128


def test_time_limits_are_respected():
    inst = B.read(FIX / "RAMR100.txt")
    assert len(inst.clients) == 100
    t0 = time.perf_counter()
    sol = V.solve_pyvrp(inst, time_limit_s=1.0, seed=1)
    took = time.perf_counter() - t0
    assert sol.info["runtime"] <= 1.1 and took < 3.0
    assert V.check(inst, sol) == [] and sol.unassigned == []
    t0 = time.perf_counter()
    V.solve_vroom(inst, exploration=5, threads=1, time_limit_s=1.0)
    assert time.perf_counter() - t0 < 3.0


def test_the_command_prints_cost_routes_and_time(capsys):
    assert main(["ram", "solve", str(FIX / "ramtw7.vrp"), "--time-limit", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "pyvrp: cost 182.0" in out and "vroom: cost 182.0" in out
    assert "Route #1:" in out and " s " in out


def test_a_file_that_is_no_instance_says_so(tmp_path, capsys):
    bad = tmp_path / "x.vrp"
    bad.write_text("NAME : x\nDIMENSION : three\n")
    assert main(["ram", "solve", str(bad)]) == 2
    assert "not a readable vrplib instance" in " ".join(capsys.readouterr().err.split())

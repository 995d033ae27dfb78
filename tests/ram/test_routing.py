"""Onsite routes: PyVRP never sends a technician to a visit needing a skill they lack (skills as routing
profiles), VROOM (native skills) agrees, time windows and shifts hold, and a visit that cannot be made today
is reported, not forced."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from jobs.ram import routing as R
from jobs.ram import vrp as V
from tests.ram.conftest import ram_settings

DAY = date(2024, 3, 5)


def at(h: int, m: int = 0) -> datetime:
    return datetime(2024, 3, 5, h, m, tzinfo=UTC)


def crew() -> list[R.Crew]:
    return [R.Crew("TC-A", 39.70, -105.00, {"windows_desktop": 3, "printers_peripherals": 4}, 15 * 60, 480),
            R.Crew("TC-B", 39.70, -104.80, {"windows_desktop": 3, "networking": 4}, 15 * 60, 480)]


def visits() -> list[R.Visit]:
    # four sites next to TC-A's home; the network job needs networking 4, which only TC-B has
    return [R.Visit("TK-1", "S1", 39.71, -105.00, 60, "windows_desktop", 2, at(14), "TC-A"),
            R.Visit("TK-2", "S2", 39.72, -105.01, 45, "printers_peripherals", 3, at(14), "TC-A"),
            R.Visit("TK-NET", "S3", 39.71, -105.02, 60, "networking", 4, at(14), "TC-A"),
            R.Visit("TK-4", "S4", 39.69, -104.99, 30, "windows_desktop", 1, at(16), "TC-B")]


def test_nobody_is_sent_without_the_skill():
    cfg = ram_settings()
    solved = R.solve_day(DAY, visits(), crew(), cfg)
    inst = solved["instance"]
    for name in R.SOLVERS:
        sol = solved[name]
        assert V.check(inst, sol) == [] and sol.unassigned == []
        by_route = {crew()[r.vehicle].technician_id: [inst.clients[i].name for i in r.visits] for r in sol.routes}
        assert "TK-NET" in by_route["TC-B"]                   # the far technician, the only one qualified
        assert "TK-NET" not in by_route.get("TC-A", [])
    assert solved["pyvrp"].distance == solved["vroom"].distance


def test_without_the_skill_rule_the_near_technician_would_take_it():
    cfg = ram_settings()
    free = [R.Visit(v.ticket_id, v.site_id, v.lat, v.lon, v.service_min, "windows_desktop", 1, v.created_at,
                    v.assigned_technician_id) for v in visits()]
    solved = R.solve_day(DAY, free, crew(), cfg, solvers=("pyvrp",))
    inst = solved["instance"]
    routes = {crew()[r.vehicle].technician_id: [inst.clients[i].name for i in r.visits]
              for r in solved["pyvrp"].routes}
    assert "TK-NET" in routes["TC-A"]                           # so the profiles above did the work
    assert solved["pyvrp"].distance < R.solve_day(DAY, visits(), crew(), cfg)["pyvrp"].distance


def test_check_flags_a_route_that_breaks_the_rules():
    cfg = ram_settings()
    inst, _ = R.build(DAY, visits(), crew(), cfg)
    net = next(i for i, c in enumerate(inst.clients) if c.name == "TK-NET")
    bad = V.Solution("manual", [V.Route(0, [net], [16 * 60], 0, 0, 15 * 60, 17 * 60)], [], 0.0)
    assert any("lacks skills" in p for p in V.check(inst, bad))
    late = V.Solution("manual", [V.Route(1, [net], [23 * 60 + 30], 0, 0, 23 * 60, 24 * 60)], [], 0.0)
    assert any("after its window closes" in p for p in V.check(inst, late))


def test_a_visit_after_closing_is_unroutable_and_windows_hold():
    cfg = ram_settings()
    vs = [*visits(), R.Visit("TK-LATE", "S5", 39.70, -104.95, 90, "windows_desktop", 1, at(23, 10), "TC-A")]
    solved = R.solve_day(DAY, vs, crew(), cfg)
    assert solved["unroutable"] == ["TK-LATE"]
    rows = R.route_rows(DAY, vs, crew(), solved)
    late = [r for r in rows if r["ticket_id"] == "TK-LATE"]
    assert {r["kind"] for r in late} == {"unrouted"} and {r["solver"] for r in late} == {"pyvrp", "vroom"}
    for r in rows:
        if r["kind"] == "visit":
            v = next(x for x in vs if x.ticket_id == r["ticket_id"])
            assert r["arrival"] >= max(v.created_at, at(cfg.site_open_utc_hour))
            assert r["departure"] <= at(0).replace(day=6)         # done by closing (24:00 UTC)


def test_route_rows_add_up():
    cfg = ram_settings()
    rows = R.route_rows(DAY, visits(), crew(), R.solve_day(DAY, visits(), crew(), cfg))
    for solver in R.SOLVERS:
        for route in {r["route"] for r in rows if r["solver"] == solver}:
            stops = sorted((r for r in rows if r["solver"] == solver and r["route"] == route),
                           key=lambda r: r["stop_seq"])
            assert stops[0]["kind"] == "start" and stops[-1]["kind"] == "end"
            assert sum(s["leg_km"] for s in stops) == pytest.approx(stops[0]["route_km"], abs=0.02)
            assert stops[0]["visits"] == len(stops) - 2

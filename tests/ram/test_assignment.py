"""Technician assignment on literal days: skills and levels are hard, the greedy baseline is "least-loaded
qualified technician, earliest SLA due first", and the CP-SAT optimiser (one worker, fixed seed) beats it
where the stated cost says it should, deterministically."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from jobs.ram import assignment as A
from jobs.ram import data
from tests.ram.conftest import ram_settings

DAY = date(2024, 3, 5)                      # a Tuesday
S0 = datetime(2024, 3, 5, 15, tzinfo=A.UTC)  # shift start (ram.workday_start_utc_hour = 15)


def tech(tid: str, desktop: int, hours: float = 40, lat: float = 39.70, lon: float = -104.90) -> data.Technician:
    return data.Technician(tid, "L3" if desktop >= 4 else "L1", {"windows_desktop": desktop}, lat, lon, hours,
                           date(2020, 1, 1), None)


def ticket(tid: str, level: int, created_min: int, sla_min: int, category: str = "hardware",
           priority: str = "low", onsite: bool = False, lat: float | None = None, lon: float | None = None
           ) -> data.Ticket:
    created = S0 + timedelta(minutes=created_min)
    return data.Ticket(tid, "CL-1", "ST-1", priority, category, "windows_desktop", level, onsite, created,
                       created + timedelta(minutes=sla_min), sla_min, lat=lat, lon=lon)


def calendar(techs: dict[str, data.Technician], cfg) -> pd.DataFrame:
    return data.calendar(techs, pd.DataFrame(), DAY - timedelta(days=7), DAY, cfg.workdays)


def problem(techs: list[data.Technician], tickets: list[data.Ticket], estimates: dict, cfg, backlog=None):
    ts = {t.technician_id: t for t in techs}
    return A.build_day(DAY, ts, calendar(ts, cfg), tickets, {("*", "*"): 1.0, **estimates}, backlog or {}, cfg)


def who(p: A.DayProblem, plan: A.Plan) -> dict[str, str]:
    return {p.jobs[i].ticket_id: p.techs[k].technician_id for i, k in plan.assignment.items()}


def test_skills_and_levels_are_hard(cfg):
    p = problem([tech("TC-J", 2), tech("TC-S", 4)],
                [ticket("T-hard", 3, -30, 480), ticket("T-easy", 1, -20, 480), ticket("T-none", 5, 0, 480)],
                {}, cfg)
    assert [len(e) for e in p.eligible] == [1, 2, 0]
    for plan in (A.greedy(p), A.solve(p)):
        assert who(p, plan)["T-hard"] == "TC-S"
        assert "T-none" not in who(p, plan)               # nobody qualified at work: unassigned
        assert plan.cost["unassigned"] == 1


def test_greedy_takes_the_least_loaded_and_the_earliest_due_first(cfg):
    p = problem([tech("TC-1", 3), tech("TC-2", 3)],
                [ticket("T-late", 1, -60, 2000), ticket("T-soon", 1, -50, 300)], {("hardware", "low"): 2.0}, cfg,
                backlog={"TC-1": 60})
    plan = A.greedy(p)
    # earliest due first: T-soon goes first, to the technician with no backlog; T-late then to the other
    assert who(p, plan) == {"T-soon": "TC-2", "T-late": "TC-1"}
    assert plan.start[1] == 0 and plan.start[0] == 60


def test_the_optimiser_keeps_the_senior_free_for_the_hard_ticket():
    cfg = ram_settings(skill_gap_weight=0.5)
    p = problem([tech("TC-1", 5), tech("TC-2", 2)],
                [ticket("T1", 1, -60, 4320), ticket("T2", 1, -60, 4320),
                 ticket("T3", 4, 70, 240, category="server", priority="critical")],
                {("hardware", "low"): 4.0, ("server", "critical"): 2.0}, cfg)
    base, opt = A.greedy(p), A.solve(p)
    # the baseline spreads the easy tickets (least loaded, ties by id), so the critical level-4 ticket waits
    assert who(p, base) == {"T1": "TC-1", "T2": "TC-2", "T3": "TC-1"}
    assert base.cost["breach"] + base.cost["overdue"] == 1
    # the optimiser gives the easy work to the junior (skill gap) and the senior is free when T3 arrives
    assert who(p, opt) == {"T1": "TC-2", "T2": "TC-2", "T3": "TC-1"}
    assert opt.cost["breach"] + opt.cost["overdue"] == 0
    assert opt.cost["total"] < base.cost["total"]


def test_queued_work_is_resequenced_when_an_urgent_ticket_arrives(cfg):
    p = problem([tech("TC-1", 5)],
                [ticket("T1", 1, -60, 4320), ticket("T2", 1, -59, 4320, category="network"),
                 ticket("T3", 1, 70, 240, category="server", priority="critical")],
                {("hardware", "low"): 2.0, ("network", "low"): 6.0, ("server", "critical"): 1.0}, cfg)
    base, opt = A.greedy(p), A.solve(p)
    assert base.cost["breach"] + base.cost["overdue"] == 1        # T3 waits behind six hours of T2
    order = [p.jobs[i].ticket_id for i in opt.order(0)]
    assert order == ["T1", "T3", "T2"]                            # T1 had started; T3 jumps the queue
    assert opt.cost["breach"] + opt.cost["overdue"] == 0


def test_the_optimiser_is_deterministic(cfg):
    techs = [tech(f"TC-{n}", 2 + n % 4, lat=39.6 + 0.05 * n) for n in range(6)]
    tickets = [ticket(f"T{n:02d}", 1 + n % 4, -60 + 37 * n, [240, 480, 1440, 4320][n % 4],
                      priority=["critical", "high", "medium", "low"][n % 4], onsite=n % 3 == 0,
                      lat=39.75 + 0.01 * n, lon=-104.95) for n in range(18)]
    runs = [A.solve(problem(techs, tickets, {}, cfg)) for _ in range(2)]
    assert runs[0].assignment == runs[1].assignment and runs[0].start == runs[1].start
    assert runs[0].cost["total"] <= A.greedy(problem(techs, tickets, {}, cfg)).cost["total"] + 1e-9


def test_onsite_travel_is_the_round_trip_from_home(cfg):
    near, far = tech("TC-N", 3, lat=39.70, lon=-104.90), tech("TC-F", 3, lat=40.20, lon=-104.90)
    p = problem([near, far], [ticket("T1", 1, 0, 4320, onsite=True, lat=39.71, lon=-104.90)], {}, cfg)
    km = {p.techs[k].technician_id: p.travel_km(0, k) for k in range(2)}
    assert km["TC-N"] == pytest.approx(2 * 1.3 * data.haversine_km(39.70, -104.90, 39.71, -104.90), rel=1e-9)
    assert who(p, A.solve(p)) == {"T1": "TC-N"}


def test_work_clock_and_wall_clock(cfg):
    p = problem([tech("TC-1", 3, hours=40)], [], {}, cfg)     # 480 working minutes a day
    assert [p.wall(0, w) for w in (0, 480, 481, 960, 961)] == [0, 480, 1441, 1920, 2881]
    for wall in (100, 480, 600, 1440, 1500, 3000):
        w = p.work_deadline(0, wall)
        assert p.wall(0, w) <= wall and p.wall(0, w + 1) > wall


def test_weekend_tickets_are_dispatched_on_monday(cfg):
    ts = {"TC-1": tech("TC-1", 3)}
    cal = data.calendar(ts, pd.DataFrame(), date(2024, 3, 1), date(2024, 3, 12), cfg.workdays)
    assert A.queue_days(cal, date(2024, 3, 9)) == []                      # Saturday: nobody at work
    assert A.queue_days(cal, date(2024, 3, 11)) == [date(2024, 3, 9), date(2024, 3, 10), date(2024, 3, 11)]
    assert A.queue_days(cal, date(2024, 3, 12)) == [date(2024, 3, 12)]


def test_plan_rows_have_both_plans_and_the_psa_pick(cfg):
    tk = [ticket("T1", 1, 0, 480), ticket("T-none", 5, 0, 480)]
    tk[0].psa_technician_id = "TC-9"
    p = problem([tech("TC-1", 3)], tk, {}, cfg)
    rows = {r["ticket_id"]: r for r in A.plan_rows(p, A.greedy(p), A.solve(p))}
    assert rows["T1"]["technician_id"] == rows["T1"]["baseline_technician_id"] == "TC-1"
    assert rows["T1"]["psa_technician_id"] == "TC-9" and rows["T1"]["sla_gate"] == "ok"
    assert rows["T-none"]["technician_id"] is None and rows["T-none"]["sla_gate"] == "unassigned"
    assert rows["T1"]["planned_start"] == S0 and rows["T1"]["planned_end"] == S0 + timedelta(hours=1)

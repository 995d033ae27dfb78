"""Utilization per technician and period against a hand computation on literal rows (DOMAIN.md section 3)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from jobs.ram import data
from jobs.ram import utilization as U

TS = pd.Timestamp("2024-01-01T08:00:00Z")


def technicians() -> pd.DataFrame:
    return pd.DataFrame([
        {"technician_id": "T1", "role": "L2", "skills": "windows_desktop:3|m365:2", "home_latitude": 39.7,
         "home_longitude": -104.9, "hours_per_week": 40, "hire_date": date(2020, 1, 1), "termination_date": None,
         "updated_at": TS},
        {"technician_id": "T2", "role": "L1", "skills": "windows_desktop:2", "home_latitude": 39.8,
         "home_longitude": -105.0, "hours_per_week": 32, "hire_date": date(2024, 3, 18), "termination_date": None,
         "updated_at": TS},
    ])


def pto() -> pd.DataFrame:
    rows = [("P1", "T1", "vacation", "2024-03-11", "2024-03-12", 16.0),   # Monday and Tuesday
            ("P2", "T1", "holiday", "2024-03-29", "2024-03-29", 8.0),     # a Friday
            ("P3", "T1", "sick", "2024-03-16", "2024-03-16", 8.0)]        # a Saturday: removes nothing
    return pd.DataFrame([{"pto_id": p, "technician_id": t, "pto_type": k, "start_date": date.fromisoformat(a),
                          "end_date": date.fromisoformat(b), "hours": h, "status": "approved", "requested_at": TS}
                         for p, t, k, a, b, h in rows])


def entries() -> pd.DataFrame:
    rows = [  # technician, client, ticket, day, hours, billable
        ("T1", "A", "TK1", "03-04", 8, True), ("T1", "A", "TK1", "03-05", 8, True),
        ("T1", "A", "TK1", "03-06", 8, True), ("T1", "A", "TK1", "03-07", 6, True),
        ("T1", "A", None, "03-13", 6, True), ("T1", "A", None, "03-14", 6, True),
        ("T1", "A", None, "03-15", 3, False),
        ("T1", "B", "TK2", "03-18", 8, True), ("T1", "B", "TK2", "03-19", 8, True),
        ("T1", "B", "TK2", "03-20", 4, True),
        ("T1", "B", None, "03-21", 8, True), ("T1", "B", None, "03-22", 8, True), ("T1", "B", None, "03-25", 4, True),
        ("T1", "A", None, "03-26", 8, True), ("T1", "A", None, "03-27", 10, True), ("T1", "A", None, "03-28", 2, False),
        ("T2", "C", None, "03-19", 10, True), ("T2", "C", None, "03-26", 10, True),
    ]
    return pd.DataFrame([{"technician_id": t, "client_id": c, "ticket_id": k,
                          "work_date": date.fromisoformat(f"2024-{d}"), "hours": float(h), "billable": b}
                         for t, c, k, d, h, b in rows])


def tickets() -> pd.DataFrame:
    rows = [("TK1", 1, "2024-03-07T20:00Z", True, "2024-03-04T16:00Z", True),
            ("TK2", 3, "2024-03-20T20:00Z", False, "2024-03-18T16:00Z", False),
            ("TK3", 2, "2024-03-25T20:00Z", True, "2024-03-21T16:00Z", True),
            ("TK4", 1, "2024-04-02T20:00Z", True, "2024-03-30T16:00Z", False)]   # resolved in April
    return pd.DataFrame([{"ticket_id": k, "required_skill_level": lv, "assigned_technician_id": "T1",
                          "resolved_at": pd.Timestamp(r), "resolution_sla_met": m, "first_response_at": pd.Timestamp(f),
                          "response_sla_met": fm, "updated_at": TS} for k, lv, r, m, f, fm in rows])


def cost_rates() -> pd.DataFrame:
    return pd.DataFrame([
        {"cost_rate_id": "CR1", "technician_id": "T1", "cost_rate": 50.0, "effective_from": date(2024, 1, 1),
         "effective_to": date(2024, 3, 15), "updated_at": TS},
        {"cost_rate_id": "CR2", "technician_id": "T1", "cost_rate": 55.0, "effective_from": date(2024, 3, 16),
         "effective_to": None, "updated_at": TS}])


def ehr() -> pd.DataFrame:
    return pd.DataFrame([{"client_id": "A", "month": "2024-03", "effective_hourly_rate": 120.0},
                         {"client_id": "B", "month": "2024-03", "effective_hourly_rate": 80.0}])


@pytest.fixture
def march(cfg) -> pd.DataFrame:
    techs = data.technicians(technicians())
    periods = U.periods_of_months(["2024-03"], date(2024, 3, 31))
    cal = data.calendar(techs, pto(), date(2024, 3, 1), date(2024, 3, 31), cfg.workdays)
    return U.transform(techs, cal, entries(), tickets(), periods, date(2024, 3, 31), cfg, ehr=ehr(),
                       cost_rates=cost_rates())


def test_month_equals_the_hand_computation(march):
    m = march[(march["grain"] == "month") & (march["technician_id"] == "T1")].iloc[0]
    # 21 weekdays x 8 h; Good Friday 8 h; two vacation days 16 h; the Saturday sick day removes nothing
    assert (m["scheduled_hours"], m["holiday_hours"], m["pto_hours"], m["available_hours"]) == (168, 8, 16, 144)
    assert (m["worked_hours"], m["billable_hours"]) == (105, 100)
    assert m["utilization_pct"] == pytest.approx(69.44) and m["band"] == "in"   # 100 / 144, inside 60-85 %
    assert m["realised_rate"] == pytest.approx(104.76)                   # (65 x 120 + 40 x 80) / 105
    assert m["labour_cost"] == pytest.approx(5550.0)                     # 45 h at 50 + 60 h at 55
    assert m["cost_rate"] == pytest.approx(52.86)
    assert (m["ticket_hours"], m["l1_hours"], m["l1_share_pct"]) == (50, 30, 60)
    assert (m["tickets_resolved"], m["tickets_resolved_in_sla"]) == (3, 2)   # TK4 resolved in April
    assert m["sla_adherence_pct"] == pytest.approx(66.67)
    assert (m["responses"], m["responses_in_sla"], m["response_adherence_pct"]) == (4, 2, 50)
    assert bool(m["complete"]) and m["month"] == "2024-03"


def test_a_technician_hired_mid_month(march):
    m = march[(march["grain"] == "month") & (march["technician_id"] == "T2")].iloc[0]
    assert (m["scheduled_hours"], m["available_hours"], m["billable_hours"]) == (64, 64, 20)   # 10 days x 6.4 h
    assert m["utilization_pct"] == pytest.approx(31.25) and m["band"] == "under"
    assert pd.isna(m["realised_rate"]) and pd.isna(m["labour_cost"])     # no EHR for C, no cost rate for T2


def test_week_of_the_vacation(march):
    w = march[(march["grain"] == "week") & (march["period"] == "2024-W11") & (march["technician_id"] == "T1")].iloc[0]
    assert (w["period_start"], w["period_end"]) == (date(2024, 3, 11), date(2024, 3, 17))
    assert (w["scheduled_hours"], w["pto_hours"], w["available_hours"]) == (40, 16, 24)
    assert (w["worked_hours"], w["billable_hours"], w["utilization_pct"]) == (15, 12, 50)
    # weeks whose Monday is in March: W10 .. W13 (W09 starts in February)
    assert sorted(march[(march["grain"] == "week") & (march["technician_id"] == "T1")]["period"]) == [
        "2024-W10", "2024-W11", "2024-W12", "2024-W13"]


def test_a_running_period_is_computed_to_the_run_day(cfg):
    techs = data.technicians(technicians())
    cal = data.calendar(techs, pto(), date(2024, 3, 1), date(2024, 3, 31), cfg.workdays)
    out = U.transform(techs, cal, entries(), tickets(), U.periods_of_months(["2024-03"], date(2024, 3, 8)),
                      date(2024, 3, 8), cfg)
    m = out[(out["grain"] == "month") & (out["technician_id"] == "T1")].iloc[0]
    assert (m["scheduled_hours"], m["billable_hours"], bool(m["complete"])) == (48, 30, False)   # 6 weekdays
    assert "T2" not in set(out["technician_id"])                       # not hired yet


def weeks(utils: list[float | None], tid: str = "T1", senior: bool = False, l1: float = 0.0) -> pd.DataFrame:
    rows = []
    for n, u in enumerate(utils):
        p = U.week_of(date(2024, 1, 1) + pd.Timedelta(days=7 * n))
        avail = 40.0 if u is not None else 0.0
        rows.append({"technician_id": tid, "grain": "week", "period": p.period, "period_start": p.start,
                     "period_end": p.end, "role": "L3" if senior else "L1", "senior": senior, "complete": True,
                     "available_hours": avail, "billable_hours": (u or 0) * 0.4, "worked_hours": (u or 0) * 0.4,
                     "utilization_pct": u, "ticket_hours": 20.0, "l1_hours": 20.0 * l1, "month": p.month})
    return pd.DataFrame(rows)


def test_streaks_count_weeks_running_and_skip_vacations(cfg):
    out = U.with_streaks(weeks([50, 55, None, 58, 40, 70, 90, 95]), None, cfg)
    assert list(out["counted"]) == [True, True, False, True, True, True, True, True]
    assert list(out["under_streak_weeks"]) == [1, 2, 2, 3, 4, 0, 0, 0]
    assert list(out["over_streak_weeks"]) == [0, 0, 0, 0, 0, 0, 1, 2]
    # trailing 4 counted weeks: (50 + 55 + 58 + 40) / 4 = 50.75
    assert out["trailing_utilization_pct"].iloc[4] == pytest.approx(50.75)


def test_streaks_continue_from_the_previous_run(cfg):
    first = U.with_streaks(weeks([50, 55, 58]), None, cfg)
    later = weeks([50, 55, 58, 40, 30]).iloc[3:].reset_index(drop=True)
    out = U.with_streaks(later, first, cfg)
    assert list(out["under_streak_weeks"]) == [4, 5]
    whole = U.with_streaks(weeks([50, 55, 58, 40, 30]), None, cfg)
    assert list(out["trailing_utilization_pct"]) == list(whole["trailing_utilization_pct"].iloc[3:])

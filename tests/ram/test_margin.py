"""Rule 1 (CPI margin drop -> RAM) on literal rows: which events RAM answers, the target-hours budget, the
senior L1 hours and the repeat categories, and its own event."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest

from jobs.ram import data, margin
from lakehouse.events import make_event, validate
from tests.ram.conftest import ram_settings

TS = pd.Timestamp("2024-01-01T08:00:00Z")


def cpi_event(client: str, reason: str, margin_pct: float = 12.0) -> dict:
    d = {"client_id": client, "period": "2024-03", "old_margin_pct": 45.0, "new_margin_pct": margin_pct,
         "old_tier": "silver", "new_tier": "at_risk", "reason": reason, "consecutive_months_below": 1}
    ev = {"metric": "margin_pct", "value": margin_pct, "threshold": 20.0, "comparison": "<",
          "source_rows": [{"dataset": "processed.client_profitability_monthly"}]}
    return make_event("client.profitability.changed", "cpi.margin_monitor", f"client:{client}", date(2024, 4, 5),
                      "2024-03", reason, d, ev)


def inbox(events: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"event_id": e["id"], "event_type": e["type"], "agent": "ram",
                          "handler": "ram.on_margin_change", "subject": e["subject"], "event_time": date(2024, 4, 5),
                          "envelope": json.dumps(e), "dt": "2024-04-05"} for e in events])


def test_reacts_to_tier_drops_and_problem_clients_once_per_client_month():
    cfg = ram_settings()
    found = margin.triggers(inbox([cpi_event("CL-1", "tier_down"), cpi_event("CL-1", "problem_client"),
                                   cpi_event("CL-2", "margin_drop")]), cfg)
    assert [(f["client_id"], f["reasons"]) for f in found] == [("CL-1", ["problem_client", "tier_down"])]
    assert len(found[0]["event_ids"]) == 2 and found[0]["day"] == "2024-04-05"


def frames():
    profit = pd.DataFrame([{"client_id": "CL-1", "month": "2024-03", "billed": 1000.0, "addition_cost": 300.0,
                            "labour_hours": 12.0, "labour_cost": 600.0}])
    techs = data.technicians(pd.DataFrame([
        {"technician_id": t, "role": r, "skills": "windows_desktop:3", "home_latitude": 39.7, "home_longitude": -104.9,
         "hours_per_week": 40, "hire_date": date(2020, 1, 1), "termination_date": None, "updated_at": TS}
        for t, r in (("S1", "L3"), ("J1", "L1"), ("J2", "L1"))]))
    rates = pd.DataFrame([{"cost_rate_id": f"CR{n}", "technician_id": t, "cost_rate": c,
                           "effective_from": date(2024, 1, 1), "effective_to": None, "updated_at": TS}
                          for n, (t, c) in enumerate((("S1", 80.0), ("J1", 40.0), ("J2", 44.0)))])
    cats = ["printing"] * 13 + ["backup"] * 12 + ["network"] * 5       # over Jan-Mar: 13, 12 and 5 tickets
    tickets = pd.DataFrame([{"ticket_id": f"TK{n}", "client_id": "CL-1", "category": c,
                             "required_skill_level": 1 if n < 2 else 3,
                             "created_at": pd.Timestamp(f"2024-0{1 + n % 3}-10T15:00Z"), "updated_at": TS}
                            for n, c in enumerate(cats)])
    entries = pd.DataFrame([
        {"technician_id": "S1", "client_id": "CL-1", "ticket_id": "TK0", "work_date": date(2024, 1, 10), "hours": 2.0},
        {"technician_id": "S1", "client_id": "CL-1", "ticket_id": "TK1", "work_date": date(2024, 2, 10), "hours": 1.0},
        {"technician_id": "S1", "client_id": "CL-1", "ticket_id": "TK2", "work_date": date(2024, 3, 10), "hours": 5.0},
        {"technician_id": "J1", "client_id": "CL-1", "ticket_id": "TK3", "work_date": date(2024, 3, 11), "hours": 1.0},
        {"technician_id": "S1", "client_id": "CL-1", "ticket_id": "TK0", "work_date": date(2023, 12, 1), "hours": 9.0},
    ])
    return profit, tickets, entries, techs, rates


def test_the_plan_equals_the_hand_computation():
    cfg = ram_settings()
    found = margin.triggers(inbox([cpi_event("CL-1", "tier_down")]), cfg)
    row = margin.transform(found, *frames(), cfg).iloc[0]
    # average hourly cost 600 / 12 = 50; budget ((1 - 0.5) x 1000 - 300) / 50 = 4 h; 12 - 4 = 8 h over
    assert (row["avg_hourly_cost"], row["target_hours"], row["hours_over_budget"]) == (50.0, 4.0, 8.0)
    # senior (L3) hours on level <= 2 tickets in Jan-Mar: TK0 2 h + TK1 1 h (December and level-3 work excluded)
    assert row["senior_l1_hours"] == 3.0
    assert row["senior_l1_saving"] == pytest.approx(3.0 / 3 * (80.0 - 42.0))   # a month, at the L1 mean rate
    assert row["repeat_categories"] == "printing:13, backup:12"               # >= 4 a month on average
    assert row["actions"] == "target_hours_budget,move_l1_off_seniors,proactive_fix"
    assert row["reasons"] == "tier_down" and row["dt"] == "2024-04-05"


def test_its_own_event_is_valid_and_deterministic():
    cfg = ram_settings()
    found = margin.triggers(inbox([cpi_event("CL-1", "tier_down")]), cfg)
    rec = margin.transform(found, *frames(), cfg).to_dict("records")[0]
    e1, e2 = margin.to_event(rec), margin.to_event(dict(rec))
    validate(e1)
    assert e1 == e2 and e1["subject"] == "client:CL-1" and e1["time"] == "2024-04-05"
    assert e1["data"]["source_event_ids"] == found[0]["event_ids"]
    assert e1["data"]["actions"] == ["target_hours_budget", "move_l1_off_seniors", "proactive_fix"]


def test_nothing_to_answer_gives_an_empty_table():
    cfg = ram_settings()
    assert margin.triggers(inbox([cpi_event("CL-1", "margin_drop")]), cfg) == []
    out = margin.transform([], pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), {}, pd.DataFrame(), cfg)
    assert out.empty and "target_hours" in out.columns

"""Churn snapshots: what a snapshot may see, which clients are eligible, and how the label is set."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from models.cpi import features as F
from models.cpi.train import RulesBaseline, time_split

MONTHS = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]


def monthly(client, values):
    """Profitability months of one client: values per month (margin, EHR, tickets, days late)."""
    rows = []
    for m, (margin, ehr, tickets, late) in zip(MONTHS, values, strict=False):
        rows.append({"client_id": client, "month": m, "billed": 1000.0, "mrr": 1000.0, "labour_hours": 10.0,
                     "reactive_hours": tickets * 0.5, "margin_pct": margin, "effective_hourly_rate": ehr,
                     "tickets": tickets, "tickets_per_endpoint": tickets / 10, "rhem": tickets * 0.05,
                     "avg_days_late": late, "csat_avg": 4.5, "endpoints": 10.0})
    return rows


@pytest.fixture
def data():
    m = pd.DataFrame(
        monthly("C1", [(50, 120, 10, 0)] * 6)
        # C2 slides: margin 50 -> 10, EHR 120 -> 60, tickets 10 -> 20, paying 30 days late by April
        + monthly("C2", [(50, 120, 10, 0), (50, 120, 10, 0), (50, 120, 10, 0), (10, 60, 20, 30), (10, 60, 20, 30),
                         (10, 60, 20, 30)]))
    life = pd.DataFrame([
        {"client_id": "C1", "service_start": date(2020, 1, 1), "service_end": None, "notice_date": None,
         "client_type": "managed", "industry": "legal", "employee_count": 20, "net_terms": 30,
         "client_billing_cycle": "monthly"},
        # C2 gives notice on May 20 and leaves on Jun 30
        {"client_id": "C2", "service_start": date(2021, 6, 1), "service_end": date(2024, 6, 30),
         "notice_date": date(2024, 5, 20), "client_type": "managed", "industry": "retail", "employee_count": 8,
         "net_terms": 15, "client_billing_cycle": "quarterly"},
    ])
    removals = pd.DataFrame({"client_id": ["C2", "C2", "C2"],
                             "removed_at": pd.to_datetime(["2024-02-01", "2024-04-10", "2024-04-30T23:00:00"],
                                                          format="ISO8601"),
                             "removed_by": ["technician", "end_user", "unknown"],
                             "reason": ["device_retired", "uninstalled", "uninstalled"]})
    installs = pd.DataFrame({"client_id": ["C2"], "first_seen": [date(2024, 4, 15)]})
    return m, life, removals, installs


def test_last_complete_month_and_month_ends():
    assert F.last_complete_month(date(2024, 4, 30)) == "2024-04"
    assert F.last_complete_month(date(2024, 5, 1)) == "2024-04"
    assert F.last_complete_month(date(2024, 5, 15)) == "2024-04"
    assert F.month_ends("2024-01", date(2024, 3, 30)) == [date(2024, 1, 31), date(2024, 2, 29)]


def test_snapshot_features_see_only_the_past(data, cfg):
    m, life, removals, installs = data
    snaps = F.build_snapshots(m, life, removals, installs, [date(2024, 4, 30), date(2024, 5, 15)], cfg,
                              as_of=date(2024, 12, 31)).set_index(["client_id", "snapshot_date"])
    c2 = snaps.loc[("C2", pd.Timestamp("2024-04-30"))]
    assert c2["month"] == "2024-04"
    # April against the mean of Jan-Mar: margin 10 - 50 = -40 pp, EHR (60 - 120) / 120 = -50 %, tickets +100 %
    assert (c2["margin_pct"], c2["margin_delta_3m"], c2["ehr_change_pct_3m"], c2["tickets_change_pct_3m"]) == (
        10, -40, -50, 100)
    assert c2["days_late_delta_3m"] == 30 and c2["margin_tier"] == "at_risk"
    # removals in (Jan 31, Apr 30]: all three; by users or without a reason: the last two; one remote tool
    assert (c2["agent_removals_90d"], c2["unplanned_removals_90d"], c2["remote_tools_90d"]) == (3, 2, 1)
    assert c2["removals_per_endpoint_90d"] == 0.3
    # rules: margin under 20, EHR under 100, RHEM 1.0 over 0.25, 30 days late, tickets 20 > 10 x 1.4
    assert [bool(c2[r]) for r in F.RULES] == [True, True, True, True, True]
    # mid-May: May is not complete yet, so the features still come from April
    assert snaps.loc[("C2", pd.Timestamp("2024-05-15")), "month"] == "2024-04"
    # tenure: 1,581 days from 2020-01-01 to 2024-04-30 / 30.4375 days per month = 51.94
    assert snaps.loc[("C1", pd.Timestamp("2024-04-30")), "tenure_months"] == 51.9


def test_label_eligibility_and_completeness(data, cfg):
    m, life, removals, installs = data
    days = [date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30), date(2024, 5, 31)]
    snaps = F.build_snapshots(m, life, removals, installs, days, cfg, as_of=date(2024, 6, 30))
    c2 = snaps[snaps["client_id"] == "C2"].set_index("snapshot_date")
    # notice on May 20: within 90 days of Feb 29 (81 days), Mar 31 and Apr 30; Jan 31 is 110 days before
    assert c2["label"].to_dict() == {pd.Timestamp("2024-01-31"): 0, pd.Timestamp("2024-02-29"): 1,
                                     pd.Timestamp("2024-03-31"): 1, pd.Timestamp("2024-04-30"): 1}
    # after its notice C2 is no longer scored (May 31 is missing); C1 still is
    assert pd.Timestamp("2024-05-31") not in c2.index
    assert (snaps["client_id"] == "C1").sum() == 5
    # a label is complete when snapshot + 90 days <= as_of (Jun 30): Mar 31 + 90 = Jun 29 is, Apr 30 is not
    complete = snaps[snaps["label_complete"]]["snapshot_date"].dt.strftime("%m-%d").unique().tolist()
    assert complete == ["01-31", "02-29", "03-31"]
    # with churn_event = end, the day that counts is Jun 30: 91 days after Mar 31 (too far), 61 after Apr 30
    at_end = cfg.model_copy(update={"churn_event": "end"})
    ended = F.build_snapshots(m, life, removals, installs, days, at_end, date(2024, 12, 31))
    e2 = ended[ended["client_id"] == "C2"].set_index("snapshot_date")["label"].to_dict()
    assert e2[pd.Timestamp("2024-03-31")] == 0 and e2[pd.Timestamp("2024-04-30")] == 1
    assert pd.Timestamp("2024-05-31") in e2  # still served after giving notice, until Jun 30


def test_time_split_keeps_an_embargo_of_one_horizon():
    days = pd.to_datetime(["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31", "2024-06-30"])
    snaps = pd.DataFrame({"snapshot_date": days, "label": [0, 1, 0, 1, 0, 1], "label_complete": True})
    train, test, info = time_split(snaps, test_share=0.34, horizon_days=60)
    # 6 days x 0.34 -> the last 2 are test (May 31, Jun 30); train needs snapshot + 60 days < May 31
    assert test["snapshot_date"].dt.strftime("%m-%d").tolist() == ["05-31", "06-30"]
    assert train["snapshot_date"].dt.strftime("%m-%d").tolist() == ["01-31", "02-29", "03-31"]
    assert (info["train_positives"], info["test_positives"], info["embargo_days"]) == (1, 1, 60)


def test_a_history_shorter_than_a_month_is_not_enough_data_not_a_crash(data, cfg):
    from models.cpi.train import NotEnoughData, train

    m, life, removals, installs = data
    # a 10-day run: no month has ended, so there is no snapshot day to train on
    snaps = F.build_snapshots(m, life, removals, installs, F.month_ends("2024-01", date(2024, 1, 10)), cfg,
                              date(2024, 1, 10))
    assert snaps.empty
    with pytest.raises(NotEnoughData, match="0 snapshot day"):
        train(snaps, cfg.churn_params())


def test_rules_baseline_turns_rule_counts_into_churn_rates():
    rows = pd.DataFrame({r: [False] * 6 for r in F.RULES})
    rows.loc[4:, "rule_margin_tier"] = True
    rows.loc[5, "rule_days_late"] = True
    y = [0, 0, 0, 0, 1, 1]
    base = RulesBaseline().fit(rows, y)
    # prior 2/6; 0 rules: (0 + 2 x 1/3) / (4 + 2) = 0.111; 1 rule: (1 + 2/3) / (1 + 2) = 0.556; 2 rules: same
    assert base.predict_proba(rows).round(3).tolist() == [0.111] * 4 + [0.556, 0.556]


def test_signals_in_words(data, cfg):
    m, life, removals, installs = data
    snap = F.build_snapshots(m, life, removals, installs, [date(2024, 4, 30)], cfg, as_of=date(2024, 12, 31))
    row = snap[snap["client_id"] == "C2"].iloc[0]
    assert F.signals(row, cfg) == [
        "1 unapproved remote-access tool(s) installed in 90 days",
        "2 RMM agent(s) removed by users or without a reason in 90 days",
        "margin 10.0% under the 20% tier", "effective hourly rate -50%", "tickets +100%",
        "paying 30 days after the due date", "RHEM 1.00 over 0.25"]

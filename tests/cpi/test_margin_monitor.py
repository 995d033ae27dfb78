"""The margin monitor's episodes: one per client in margin trouble, an event when it opens, worsens or closes
and none for a month that does neither; thresholds from settings, evidence, deterministic ids, and the state
of open episodes from the monitor's earlier events (a month judged alone gives what a backfill gives)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd

from jobs.cpi import margin_monitor as M
from lakehouse.events import episode_id, event_id

D = Decimal
TYPE = "client.profitability.changed"
REPORT_COLUMNS = ["client_id", "month", "margin_pct", "margin_tier", "prev_margin_pct", "prev_tier", "tier_change",
                  "margin_change_pp", "months_below_lowest", "suggested_action"]


def report(rows):
    return pd.DataFrame([dict(zip(REPORT_COLUMNS, r, strict=True)) for r in rows], columns=REPORT_COLUMNS)


def profit(rows):
    cols = ["client_id", "month", "billed", "addition_cost", "labour_cost", "labour_hours", "reactive_hours",
            "tickets", "effective_hourly_rate"]
    return pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows], columns=cols)


def history(client, margins, cfg, first="2024-01"):
    """Report rows of one client from its monthly margins (None: a month without billing), derived as the
    margin report derives them: tier, the month before, the tier move and the months under the lowest bound."""
    rows, prev, below = [], None, 0
    for i, margin in enumerate(margins):
        month = M.add_months(first, i)
        tier = cfg.tier(float(margin)) if margin is not None else None
        below = below + 1 if margin is not None and margin < cfg.lowest_bound else 0
        move = None
        if tier is not None:
            move = "new" if prev is None or prev[1] is None else (
                "down" if cfg.tier_rank(tier) > cfg.tier_rank(prev[1]) else
                "up" if cfg.tier_rank(tier) < cfg.tier_rank(prev[1]) else "same")
        change = D(str(margin)) - D(str(prev[0])) if margin is not None and prev and prev[0] is not None else None
        rows.append((client, month, None if margin is None else D(str(margin)), tier,
                     None if prev is None or prev[0] is None else D(str(prev[0])), prev[1] if prev else None, move,
                     change, below, "Reprice" if below >= cfg.problem_months else None))
        prev = (margin, tier)
    return report(rows)


def closing(months):
    """Month -> its closing day (5 days after its last day, cpi.month_close_days)."""
    return {m: date(int(n[:4]), int(n[5:]), 5) for m in months for n in [M.add_months(m, 1)]}


#: C1 from 2024-01: silver, a fall to bronze (opens), steady, 11 points lower (worsens), at_risk (worsens),
#: a problem client (worsens), steady, back in silver one month, under the bound again, two months back
#: (closes), steady, then a new fall (a new episode)
C1 = [57, 55, 35, 33, 24, 17, 15, 12, 43, 41, 45, 50, 52, 30]
NO_PROFIT = profit([])


def states(events):
    return [(e["data"]["period"], e["episode"]["state"], e["data"]["reason"], e["severity"]) for e in events]


def test_closing_months_are_judged_on_their_closing_day():
    # March closes Apr 5 (31 + 5 days); Feb 2024 closes Mar 5; other days close nothing
    assert M.closing_months([date(2024, 4, 5)], 5) == {"2024-03": date(2024, 4, 5)}
    assert M.closing_months([date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)], 5) == {"2024-02": date(2024, 3, 5)}
    assert M.closing_months([date(2024, 3, 31)], 0) == {"2024-03": date(2024, 3, 31)}


def test_an_episode_opens_once_worsens_and_closes_and_steady_months_raise_nothing(cfg):
    rows = history("C1", C1, cfg)
    events = M.find_events(rows, NO_PROFIT, closing(rows["month"]), cfg)
    assert states(events) == [
        ("2024-03", "opened", "tier_down", "warning"),          # silver 55 -> bronze 35 (and a 20-point drop)
        ("2024-05", "worsened", "margin_drop", "warning"),      # 24 <= 35 - 10 (cpi.episode_worsen_pp)
        ("2024-06", "worsened", "tier_down", "critical"),       # 17: at_risk, under 20 - 2
        ("2024-07", "worsened", "problem_client", "critical"),  # the second month under 20 %
        ("2024-12", "closed", "recovered", "info"),             # Nov 45, Dec 50 >= 40 + 2; Sep 43 then Oct 41 was not
        ("2025-02", "opened", "tier_down", "warning"),          # a new fall after the close: a new episode
    ]
    opened = date(2024, 4, 5)
    first = episode_id(TYPE, "client:C1", "margin_trouble", opened)
    assert [e["episode"]["id"] for e in events] == [first] * 5 + [
        episode_id(TYPE, "client:C1", "margin_trouble", date(2025, 3, 5))]
    assert all(e["episode"]["opened"] == "2024-04-05" for e in events[:5])
    assert events[4]["episode"]["closed"] == "2025-01-05" and "closed" not in events[3]["episode"]
    assert [e["id"] for e in events[:2]] == [event_id(TYPE, "client:C1", "2024-03", "margin_trouble:opened"),
                                            event_id(TYPE, "client:C1", "2024-05", "margin_trouble:worsened")]
    # the opening month's findings, the bound it fell under (silver's 40 %), the worst tier announced
    o = events[0]
    assert o["data"]["reasons"] == ["tier_down", "margin_drop"] and o["data"]["recovery_bound_pct"] == 40.0
    assert [f["reason"] for f in o["evidence"]["findings"]] == ["tier_down", "margin_drop"]
    assert [e["data"]["worst_tier"] for e in events] == ["bronze", "bronze", "at_risk", "at_risk", "at_risk",
                                                         "bronze"]
    worse = events[1]["evidence"]
    assert (worse["metric"], worse["value"], worse["threshold"], worse["comparison"]) == ("margin_pct", 24.0, 25.0,
                                                                                         "<=")
    close = events[4]
    assert (close["evidence"]["metric"], close["evidence"]["value"], close["evidence"]["threshold"],
            close["evidence"]["comparison"]) == ("margin_pct", 50.0, 42.0, ">=")
    assert close["data"]["months_recovered"] == 2 and close["data"]["reasons"] == []
    assert [s["keys"]["month"] for s in close["evidence"]["source_rows"]
            if s["dataset"] == "analytics.client_margin_report"] == ["2024-11", "2024-12"]


def test_the_open_episodes_come_from_the_earlier_events_so_a_month_alone_gives_what_a_backfill_gives(cfg):
    rows = history("C1", C1, cfg)
    months = closing(rows["month"])
    backfill = M.find_events(rows, NO_PROFIT, months, cfg)
    # month by month, each judged on the events already in the outbox (as a daily run reads them)
    outbox, daily = [], []
    for m in sorted(months):
        day = M.find_events(rows, NO_PROFIT, {m: months[m]}, cfg, previous=outbox)
        outbox += day
        daily += day
    assert daily == backfill
    # a rerun of one month with the outbox as it is (its own events are replaced, so not given) is the same
    june = [e for e in backfill if e["data"]["period"] == "2024-06"]
    assert M.find_events(rows, NO_PROFIT, {"2024-06": months["2024-06"]}, cfg,
                         previous=[e for e in backfill if e["data"]["period"] != "2024-06"]) == june
    # and without the earlier events the same month would open a new episode: the state is what they say
    alone = M.find_events(rows, NO_PROFIT, {"2024-06": months["2024-06"]}, cfg)
    assert states(alone) == [("2024-06", "opened", "tier_down", "critical")]


def test_open_episodes_read_the_latest_event_of_each_episode(cfg):
    rows = history("C1", C1, cfg)
    events = M.find_events(rows, NO_PROFIT, closing(rows["month"]), cfg)
    (ep,) = M.open_episodes(events[:4], cfg).values()
    assert (ep.client_id, ep.opened, ep.opened_period, ep.bound, ep.worst_rank, ep.margin, ep.problem,
            ep.last_period) == ("C1", date(2024, 4, 5), "2024-03", 40.0, 3, 15.0, True, "2024-07")
    assert M.open_episodes(events[:5], cfg) == {}  # closed
    # events written before the monitor had episodes carry none: they open nothing
    legacy = {**events[0], "episode": None}
    assert M.open_episodes([legacy], cfg) == {}


def test_opening_evidence_drivers_and_ids(cfg):
    rows = report([
        # C1 silver -> bronze (tier down at the 40 % bound) and -22 pp (beyond the 15 pp drop threshold)
        ("C1", "2024-03", D("35.00"), "bronze", D("57.00"), "silver", "down", D("-22.00"), 0, None),
        # C2 second month under 20 %: problem client (and no tier move: at_risk both months)
        ("C2", "2024-03", D("12.00"), "at_risk", D("15.00"), "at_risk", "same", D("-3.00"), 2, "Reprice"),
        # C4 tier up: nothing
        ("C4", "2024-03", D("65.00"), "gold", D("55.00"), "silver", "up", D("10.00"), 0, None),
        # C5 no billing this month: no tier, nothing to judge
        ("C5", "2024-03", None, None, D("50.00"), "silver", None, None, 0, None),
    ])
    money = profit([
        # C1: labour cost 2000 -> 3000 (+50 %, costs 1000 of profit), additions 500 -> 520 (+4 %, under the 10 %
        # reporting threshold), billed flat; hours 40 -> 56 (+40 %), tickets 20 -> 30 (+50 %), EHR 100 -> 80
        ("C1", "2024-02", D("7000"), D("500"), D("2000"), D("40"), D("30"), 20, D("100")),
        ("C1", "2024-03", D("7000"), D("520"), D("3000"), D("56"), D("30"), 30, D("80")),
        ("C2", "2024-02", D("1000"), D("0"), D("850"), D("10"), D("5"), 5, D("100")),
        ("C2", "2024-03", D("900"), D("0"), D("792"), D("10"), D("5"), 5, D("90")),
    ])
    events = M.find_events(rows, money, {"2024-03": date(2024, 4, 5)}, cfg)
    assert states(events) == [("2024-03", "opened", "tier_down", "warning"),
                              ("2024-03", "opened", "problem_client", "critical")]
    one, two = events
    assert one["id"] == event_id(TYPE, "client:C1", "2024-03", "margin_trouble:opened")
    assert one["time"] == "2024-04-05" and one["source"] == "cpi.margin_monitor"
    assert one["episode"] == {"id": episode_id(TYPE, "client:C1", "margin_trouble", date(2024, 4, 5)),
                              "state": "opened", "opened": "2024-04-05"}
    # the bound fallen under: silver's 40 %, or 57 - 15 = 42 after the 22-point drop, whichever is higher
    assert one["data"] == {"client_id": "C1", "period": "2024-03", "old_margin_pct": 57.0, "new_margin_pct": 35.0,
                           "old_tier": "silver", "new_tier": "bronze", "reason": "tier_down",
                           "reasons": ["tier_down", "margin_drop"], "state": "opened",
                           "episode_opened_period": "2024-03", "recovery_bound_pct": 42.0, "worst_tier": "bronze",
                           "consecutive_months_below": 0}
    ev = one["evidence"]
    assert (ev["metric"], ev["value"], ev["threshold"], ev["comparison"]) == ("margin_pct", 35.0, 40.0, "<")
    assert ev["findings"][1] == {"reason": "margin_drop", "metric": "margin_change_pp", "value": -22.0,
                                 "threshold": -15.0, "comparison": "<="}
    # drivers: the money that cost profit first (labour cost +1000), then the operational changes; the
    # +4 % addition cost change is under the 10 % threshold and billed did not move
    assert ev["drivers"] == [
        {"factor": "labour_cost", "change": "+50%", "before": 2000.0, "after": 3000.0},
        {"factor": "labour_hours", "change": "+40%", "before": 40.0, "after": 56.0},
        {"factor": "tickets", "change": "+50%", "before": 20.0, "after": 30.0},
        {"factor": "effective_hourly_rate", "change": "-20%", "before": 100.0, "after": 80.0},
    ]
    assert ev["source_rows"] == [
        {"dataset": "processed.client_profitability_monthly", "keys": {"client_id": "C1", "month": "2024-03"}},
        {"dataset": "processed.client_profitability_monthly", "keys": {"client_id": "C1", "month": "2024-02"}},
        {"dataset": "analytics.client_margin_report", "keys": {"client_id": "C1", "month": "2024-03"}},
    ]
    assert two["data"]["consecutive_months_below"] == 2 and two["data"]["suggested_action"] == "Reprice"
    assert two["evidence"]["threshold"] == 20.0 and two["data"]["recovery_bound_pct"] == 20.0
    # the same findings give the same events, ids included
    assert M.find_events(rows, money, {"2024-03": date(2024, 4, 5)}, cfg) == events


def test_a_problem_client_without_an_open_episode_opens_one_once(cfg):
    # three months under 20 % already when first judged: one episode, not one event a month
    rows = history("C3", [10, 7, 5, 6, 4], cfg)
    events = M.find_events(rows, NO_PROFIT, closing(["2024-03", "2024-04", "2024-05"]), cfg)
    assert states(events) == [("2024-03", "opened", "problem_client", "critical")]


def test_a_margin_just_under_a_bound_does_not_flap(cfg):
    wobble = report([("C9", "2024-03", D("39.00"), "bronze", D("41.00"), "silver", "down", D("-2.00"), 0, None)])
    # 39 is 1 point under the 40 % bound: within the 2-point hysteresis, no event; with none, an event
    assert M.find_events(wobble, NO_PROFIT, {"2024-03": date(2024, 4, 5)}, cfg) == []
    strict = cfg.model_copy(update={"tier_hysteresis_pp": 0.0})
    assert states(M.find_events(wobble, NO_PROFIT, {"2024-03": date(2024, 4, 5)}, strict)) == [
        ("2024-03", "opened", "tier_down", "warning")]
    # back at 41 then 43: 41 is under 40 + 2 (cpi.episode_close_hysteresis_pp), so only 43 counts; with one
    # month to close (cpi.episode_close_months = 1) the episode closes on 43
    rows = history("C9", [41, 39, 41, 43], cfg)
    quick = strict.model_copy(update={"episode_close_months": 1})
    assert states(M.find_events(rows, NO_PROFIT, closing(["2024-02", "2024-03", "2024-04"]), quick)) == [
        ("2024-02", "opened", "tier_down", "warning"), ("2024-04", "closed", "recovered", "info")]


def test_thresholds_come_from_settings(cfg):
    rows = history("C1", C1, cfg)
    months = closing(rows["month"])
    # a deeper worsening step and one month to close: May's 11-point fall is not enough, September closes
    loose = cfg.model_copy(update={"episode_worsen_pp": 12.0, "episode_close_months": 1})
    assert states(M.find_events(rows, NO_PROFIT, months, loose)) == [
        ("2024-03", "opened", "tier_down", "warning"), ("2024-06", "worsened", "tier_down", "critical"),
        ("2024-07", "worsened", "problem_client", "critical"), ("2024-09", "closed", "recovered", "info"),
        ("2025-02", "opened", "tier_down", "warning")]
    # a wider hysteresis: 35 is only 5 under the 40 % bound; the 20-point drop opens it, as a margin drop
    wide = cfg.model_copy(update={"tier_hysteresis_pp": 6.0})
    assert states(M.find_events(rows, NO_PROFIT, months, wide))[0] == ("2024-03", "opened", "margin_drop",
                                                                        "warning")
    # three problem months: July is not a problem client yet, August is
    slow = cfg.model_copy(update={"problem_months": 3})
    assert ("2024-08", "worsened", "problem_client", "critical") in states(
        M.find_events(history("C1", C1, slow), NO_PROFIT, months, slow))


def test_drivers_report_a_move_from_zero_without_a_percentage(cfg):
    before = {"labour_cost": 0, "billed": 100, "labour_hours": 0}
    after = {"labour_cost": 50, "billed": 100, "labour_hours": 2}
    assert M.drivers(before, after, cfg) == [
        {"factor": "labour_cost", "change": "+50.00 (from 0)", "before": 0.0, "after": 50.0},
        {"factor": "labour_hours", "change": "+2.00 (from 0)", "before": 0.0, "after": 2.0}]

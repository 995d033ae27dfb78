"""The pipeline forecaster: Alga's stage-weighted forecast and band on literal deals, owner rates after 20
closed deals, the vectorized forecast equal to the day-by-day one, the learned forecast (deterministic, a band
around its mean), and the backtest's metrics."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from models.spo import forecast as F
from tests.spo.conftest import frame

BASE = {"identified": 0.05, "qualified": 0.15, "assessment": 0.35, "proposed": 0.50, "verbal": 0.80}


def version(oid, stage, dt, mrr=1000, one_time=100, close="2024-03-20", owner="Ann Rep", created="2024-01-05",
            closed=None):
    return {"opportunity_id": oid, "lead_id": f"LD-{oid[3:]}", "opportunity_name": oid, "opportunity_type": "new_logo",
            "stage": stage, "confidence": "medium", "mrr": mrr, "one_time_value": one_time,
            "expected_close_date": close,
            "owner": owner, "created_at": f"{created}T20:00:00", "closed_at": closed and f"{closed}T21:00:00",
            "updated_at": f"{dt}T21:00:00", "dt": dt}


def test_alga_band_floor_is_won_plus_verbal_ceiling_adds_the_weighted_rest():
    opps = frame("processed.opportunities", [
        version("OP-000001", "verbal", "2024-03-01"),
        version("OP-000002", "qualified", "2024-03-01"),
        version("OP-000003", "won", "2024-03-05", mrr=500, one_time=50, closed="2024-03-05"),
        version("OP-000004", "proposed", "2024-03-01", close="2024-02-15"),      # overdue: counts now
        version("OP-000005", "qualified", "2024-03-01", close="2024-09-01"),     # beyond the 3 months
    ])
    history = F.deal_history(opps)
    day = pd.Timestamp("2024-03-10")
    rows, deals = F.stage_weighted(F.state_on(history, day), day, F.forecast_months(day, 3), BASE)
    march = rows.set_index("month").loc["2024-03"]
    assert march["won_mrr"] == 500
    assert march["low_mrr"] == 500 + 1000                               # won + verbal
    assert march["high_mrr"] == pytest.approx(1500 + 0.15 * 1000 + 0.5 * 1000)  # + weighted non-verbal
    assert march["expected_mrr"] == pytest.approx(500 + 0.8 * 1000 + 0.15 * 1000 + 0.5 * 1000)
    assert march["open_deals"] == 3 and rows["month"].tolist() == ["2024-03", "2024-04", "2024-05"]
    assert rows.set_index("month").loc["2024-04", "expected_mrr"] == 0
    assert set(deals["opportunity_id"]) == {"OP-000001", "OP-000002", "OP-000004"}
    assert set(deals["weight_source"]) == {"base"}


def closed_history(owner: str, n: int, start: date, won_every: int = 2) -> list[dict]:
    """``n`` deals of one owner, each through identified -> qualified -> proposed, then won or lost."""
    rows = []
    for i in range(n):
        oid = f"OP-{owner[:1]}{i:05d}"
        d0 = start + timedelta(days=3 * i)
        won = i % won_every == 0
        rows += [version(oid, "identified", d0.isoformat(), owner=owner, created=d0.isoformat()),
                 version(oid, "qualified", (d0 + timedelta(days=1)).isoformat(), owner=owner, created=d0.isoformat()),
                 version(oid, "proposed", (d0 + timedelta(days=2)).isoformat(), owner=owner, created=d0.isoformat())]
        end = (d0 + timedelta(days=3)).isoformat()
        rows.append(version(oid, "won" if won else "lost", end, owner=owner, created=d0.isoformat(), closed=end))
    return rows


def test_an_owner_gets_own_stage_rates_from_the_20th_closed_deal():
    rows = closed_history("Ann Rep", 20, date(2023, 1, 1)) + closed_history("Bob Rep", 19, date(2023, 1, 1))
    closed = F.closed_deals(F.deal_history(frame("processed.opportunities", rows)))
    rates = F.owner_rates(closed, pd.Timestamp("2024-01-01"), 20)
    assert set(rates) == {"Ann Rep"}                      # Bob has 19
    # every one of Ann's deals got as far as "proposed" (so past identified, qualified and assessment): half were
    # won; none reached verbal, which keeps its base rate
    assert rates["Ann Rep"] == {"identified": 0.5, "qualified": 0.5, "assessment": 0.5, "proposed": 0.5}
    # the day before her 20th deal closed she had 19
    twentieth = closed[closed["owner"] == "Ann Rep"]["close_day"].max()
    assert F.owner_rates(closed, twentieth, 20) == {}


def random_history(n=60, seed=5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    stages = F.OPEN_STAGES
    for i in range(n):
        created = date(2024, 1, 1) + timedelta(days=int(rng.integers(0, 330)))
        owner = ["Ann Rep", "Bob Rep", "Cy Rep"][i % 3]
        stop = int(rng.integers(0, 5))
        won = rng.random() < 0.2 + 0.15 * stop
        mrr, one = int(rng.integers(5, 50)) * 100, int(rng.integers(1, 20)) * 100
        d = created
        close = created + timedelta(days=int(rng.integers(30, 90)))
        for s in stages[: stop + 1]:
            rows.append(version(f"OP-{i:06d}", s, d.isoformat(), mrr, one, close.isoformat(), owner,
                                created.isoformat()))
            d += timedelta(days=int(rng.integers(3, 15)))
        if d < date(2025, 1, 31):
            rows.append(version(f"OP-{i:06d}", "won" if won else "lost", d.isoformat(), mrr, one, close.isoformat(),
                                owner, created.isoformat(), closed=d.isoformat()))
    return frame("processed.opportunities", rows)


def test_the_forecast_of_many_days_at_once_equals_the_day_by_day_one():
    history = F.deal_history(random_history())
    days = pd.date_range("2024-02-01", "2025-01-31", freq="11D")
    many = F.stage_weighted_many(history, days, 3, BASE, 5)
    for d in days:
        closed = F.closed_deals(history[history["_day"] <= d])
        for method, rates in (("base_rates", None), ("stage_weighted", F.owner_rates(closed, d, 5))):
            one, _ = F.stage_weighted(F.state_on(history, d), d, F.forecast_months(d, 3), BASE, rates)
            got = many[(many["day"] == d) & (many["method"] == method)].reset_index(drop=True)
            for c in ("expected_mrr", "low_mrr", "high_mrr", "won_mrr", "expected_one_time", "open_deals"):
                np.testing.assert_allclose(got[c].astype(float), one[c].astype(float), err_msg=f"{d} {method} {c}")


@pytest.fixture(scope="module")
def learned():
    opps = random_history(90, seed=9)
    history = F.deal_history(opps)
    day = pd.Timestamp("2024-11-01")
    known = history[history["_day"] <= day]
    model = F.fit_learned(known, F.closed_deals(known), day, snapshot_every=7, c=1.0)
    return history, day, model


def test_the_learned_forecast_is_deterministic_and_its_band_holds_its_mean(learned):
    history, day, model = learned
    state = F.state_on(history, day)
    closed = F.closed_deals(history[history["_day"] <= day])
    kw = {"sims": 500, "band": (0.1, 0.9), "seed": 7, "lookback_days": 365, "origin_every": 7}
    a, deals = F.learned(model, state, day, F.forecast_months(day, 3), closed, **kw)
    b, _ = F.learned(model, state, day, F.forecast_months(day, 3), closed, **kw)
    pd.testing.assert_frame_equal(a, b)
    assert (a["low_mrr"] <= a["expected_mrr"] + 1e-9).all() and (a["expected_mrr"] <= a["high_mrr"] + 1e-9).all()
    assert ((deals["p_win"] >= 0) & (deals["p_win"] <= 1)).all()
    # time to close: deals won later in the funnel closed sooner after a snapshot
    med = {s: np.median(v) for s, v in model.remaining_days.items() if len(v)}
    assert med["identified"] > med["verbal"]


def test_backtest_rows_and_summary():
    opps = random_history(90, seed=9)
    params = {"snapshot_every": 14, "c": 1.0, "sims": 300, "band": (0.1, 0.9), "seed": 7, "lookback_days": 365,
              "origin_every": 14}
    rows = F.backtest(opps, first_origin="2024-05-01", last_day="2025-01-31", months_ahead=3, base_rates=BASE,
                      min_closed_deals=5, learned_params=params)
    origins = sorted(rows["origin"].unique())
    assert origins[0] == date(2024, 5, 1) and origins[-1] == date(2024, 11, 1)   # Nov + 3 months ends Jan 31
    assert set(rows["method"]) == set(F.METHODS) and set(rows["horizon"]) == {1, 2, 3}
    zero = rows["actual_mrr"] == 0
    assert rows.loc[zero, "ape_mrr"].isna().all() and rows.loc[~zero, "ape_mrr"].notna().all()
    s = F.summarize(rows).set_index("method")
    for m in F.METHODS:
        r = rows[rows["method"] == m]
        assert s.loc[m, "mape_mrr"] == pytest.approx(r["ape_mrr"].mean())
        assert s.loc[m, "coverage_mrr"] == pytest.approx(r["covered_mrr"].mean())
        assert s.loc[m, "zero_months"] == int(zero[rows["method"] == m].sum())

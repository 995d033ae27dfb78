"""The detector on literal series: causal, bounded history, baseline and model, frequency rule, any-CSV scoring."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from models.dsa.detect import count_cusum, detect, params


def _cloud(n=200, seed=1, level=10.0):
    rng = np.random.default_rng(seed)
    days = np.arange(n)
    weekly = np.where(days % 7 >= 5, 0.7, 1.0)  # day 0 is a Monday
    return level * weekly * rng.lognormal(0, 0.08, n)


def _vendor(n=300, seed=2, rate=0.3, median=400.0):
    rng = np.random.default_rng(seed)
    y = np.zeros(n)
    for d in range(n):
        if d % 7 < 5:
            k = rng.poisson(rate)
            y[d] = sum(median * rng.lognormal(0, 0.6, k)) if k else 0.0
    return y


@pytest.fixture
def p(cfg):
    return cfg.detector("model")


def test_a_spike_on_a_smooth_series_is_flagged_and_nothing_else(p):
    y = _cloud()
    y[150] *= 8
    sc = detect(y[None, :], np.arange(len(y)), p)
    assert sc.flag[0, 150] and sc.start[0, 150] == 150 and sc.score[0, 150] > 0.999
    assert sc.flag[0].sum() == 1
    assert np.all((sc.score[np.isfinite(sc.score)] >= 0) & (sc.score[np.isfinite(sc.score)] <= 1))


def test_a_lumpy_vendor_buying_as_usual_is_not_flagged_but_a_purchase_twelve_times_its_median_is(p):
    y = _vendor()
    sc = detect(y[None, :], np.arange(len(y)), p)
    assert sc.flag[0].sum() == 0
    y[250] = 400.0 * 12  # a Wednesday
    sc = detect(y[None, :], np.arange(len(y)), p)
    assert sc.flag[0, 250] and sc.flag[0].sum() == 1


def test_decisions_are_causal_and_need_only_a_bounded_history(p):
    y = _cloud(520)
    y[300] *= 5
    y[470] *= 5
    full = detect(y[None, :], np.arange(520), p)
    # the future does not change a day's decision
    y2 = y.copy()
    y2[320:] *= 3
    early = detect(y2[None, :], np.arange(520), p)
    np.testing.assert_array_equal(full.flag[0, :320], early.flag[0, :320])
    np.testing.assert_allclose(full.expected[0, :320], early.expected[0, :320])
    # one day from its lookback only (and the series' first day), as a daily run does
    t = 470
    lb = p.lookback()
    assert lb < t
    part = detect(y[None, t - lb:t + 1], np.asarray([lb]), p, first_weekday=(t - lb) % 7,
                  first=np.asarray([-(t - lb)]))
    assert part.flag[0, 0] == full.flag[0, t] and full.flag[0, t]
    np.testing.assert_allclose(part.expected[0, 0], full.expected[0, t])
    np.testing.assert_allclose(part.upper[0, 0], full.upper[0, t])


def test_the_baseline_flags_the_spike_too(cfg):
    y = _cloud()
    y[150] *= 8
    sc = detect(y[None, :], np.arange(len(y)), cfg.detector("baseline"))
    assert sc.flag[0, 150]


def test_a_level_shift_of_a_resource_opens_on_its_first_day(p):
    y = _cloud(300)
    y[200:] *= 1.8
    sc = detect(y[None, :], np.arange(300), p)
    assert sc.flag[0, 200] and not sc.flag[0, 150:200].any()


def test_the_frequency_cusum_finds_a_vendor_buying_twice_as_often_and_dates_the_change(cfg):
    rng = np.random.default_rng(7)
    n, change = 700, 560
    N = np.zeros(n)
    for d in range(n):
        if d % 7 < 5:
            N[d] = rng.poisson(1.0 if d >= change else 0.5)
    p = cfg.detector("model")
    out = count_cusum(N[None, :], np.arange(n), p, first_weekday=0)
    flagged = np.flatnonzero(out["flag"][0])
    assert len(flagged) and flagged[0] > change and not (flagged < change).any()
    assert abs(int(out["start"][0, flagged[0]]) - change) <= 14


def test_any_csv_series_gets_a_score_and_a_flag_per_row(cfg, tmp_path):
    from jobs.dsa.cli import detect_series

    y = _cloud(120)
    y[100] *= 6
    frame = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=120, freq="D").strftime("%Y-%m-%d"),
                          "value": y})
    out = detect_series(frame, "when", "value", "model", cfg)
    assert list(out.columns[-5:]) == ["expected", "lower", "upper", "score", "flag"]
    assert out["score"].between(0, 1).all() and out.loc[100, "flag"] == 1 and out["flag"].sum() == 1
    # negative values: the baseline scores it; hourly rows: no calendar, season 24
    frame["value"] = frame["value"] - 8
    assert detect_series(frame, "when", "value", "model", cfg).attrs["method"] == "baseline"
    hourly = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=500, freq="h"), "v": _cloud(500)})
    hourly.loc[450, "v"] *= 10
    assert detect_series(hourly, "t", "v", "model", cfg).loc[450, "flag"] == 1


def test_statsforecast_conformal_variant_runs_on_a_short_series(cfg):
    y = _cloud(120)
    y[110] *= 6
    p = replace(cfg.detector("statsforecast"), fit_days=84, conformal_windows=6, windows=())
    sc = detect(y[None, :], np.arange(90, 120), p)
    assert sc.flag[0, 20] and np.isfinite(sc.expected).all()


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="method"):
        detect(np.zeros((1, 10)), np.arange(10), params("nope"))


def test_the_daily_layer_is_the_same_computed_a_few_days_or_all_days_at_once(monkeypatch):
    """The log-normal layer works on blocks of target days sized to the series (memory and speed); every
    target day is independent, so the blocks change nothing."""
    from models.dsa import detect as D

    rng = np.random.default_rng(7)
    Y = np.where(rng.random((40, 500)) < 0.6, rng.lognormal(3, 1, (40, 500)), 0.0)
    t = np.arange(380, 500)
    p = params("model")
    assert D.daily_block(818, p.fit_days) == 1 and D.daily_block(5, p.fit_days) == 128
    whole = D.lognormal_daily(Y, t, p, 0)
    monkeypatch.setattr(D, "DAILY_BLOCK_ELEMENTS", 40 * p.fit_days * 3)  # blocks of 3 days
    assert D.daily_block(40, p.fit_days) == 3
    blocks = D._daily(Y, t, p, 0, None)
    for k, v in whole.items():
        np.testing.assert_array_equal(blocks[k], v, err_msg=k)


def test_the_frequency_cusum_is_the_same_computed_a_few_days_or_all_days_at_once(cfg, monkeypatch):
    from models.dsa import detect as D

    rng = np.random.default_rng(3)
    N = rng.poisson(0.4, (30, 600)).astype(float)
    N[:5, 450:] = rng.poisson(1.2, (5, 150))
    t = np.arange(420, 600)
    p = cfg.detector("model")
    monkeypatch.setattr(D, "DAILY_BLOCK_ELEMENTS", 2**40)  # one block
    whole = count_cusum(N, t, p, 0)
    monkeypatch.setattr(D, "DAILY_BLOCK_ELEMENTS", 30 * p.fit_days * 7)  # blocks of a week
    blocks = count_cusum(N, t, p, 0)
    assert whole["flag"][:5].any()
    for k, v in whole.items():
        np.testing.assert_array_equal(blocks[k], v, err_msg=k)

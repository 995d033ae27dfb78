"""Causal anomaly detection on daily series: a seasonal expectation, a prediction interval, a score in [0, 1].

Two detectors share one shape, so that the agent, the evaluation and ``msp dsa detect --csv`` can swap them:

* **baseline** (named in DOMAIN.md section 5): *seasonal naive* (the median of the same weekday over the
  last ``weeks`` weeks) and a *robust z-score* of the day's residual against the residuals of the
  ``scale_days`` days before it: ``z = (r - median(r)) / (1.4826 * MAD(r))``; when the MAD is 0 (a series
  that is mostly zero) the scale falls back to ``1.2533 * mean |r - median(r)|`` (Iglewicz & Hoaglin's
  convention), and never goes below ``min_scale``. The interval is ``expected + median(r) +/- z * scale``.
* **model**: statsforecast's ``SeasonalExponentialSmoothingOptimized`` (a level per weekday, smoothed) refitted
  once a week on the ``fit_days`` days before the week starts, with statsforecast's conformal prediction
  intervals (``ConformalIntervals``: the absolute errors of ``conformal_windows`` rolling ``h = 7`` forecasts
  on the training data). The interval is the ``level`` % conformal interval; the score is the highest
  conformal level whose interval the value falls outside of.

**Level shifts** that stay inside the daily interval (a vendor buying 70-120 % more often, every purchase
ordinary) are caught by a second layer shared by both detectors: the sum over the last ``w`` days
(``windows``, e.g. 7 and 28) of the series *clipped at the daily upper bound* (so a one-day spike does not
also open a 28-day window), minus the sum of the daily expectations, is compared with the same residual
sums of the ``window_history`` days before the window began: robust z (baseline) or the empirical
``level`` quantile (model, split-conformal). Its start is the change point inside the window: the first day of
the suffix with the largest excess (the CUSUM estimate).

**Causal**: the decision on day ``t`` uses values up to ``t`` only (the expectation and its scale use days
before ``t``); every quantity looks back a bounded number of days (:func:`lookback`), so scoring one new day
from that much history gives exactly what a backfill over all days gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

MAD_TO_SIGMA = 1.4826
MEANAD_TO_SIGMA = 1.2533
#: Conformal levels the model reports (its score is the highest level the value falls outside of).
SCORE_LEVELS = (50, 80, 90, 95, 98, 99, 99.5)
METHODS = ("baseline", "model", "statsforecast")


@dataclass(frozen=True)
class DetectorParams:
    """How a detector decides; every value comes from the agent's settings (or the CLI's flags)."""

    method: str = "model"            #: baseline | model
    season: int = 7                  #: days in the seasonal cycle
    weeks: int = 8                   #: baseline: same-weekday values in the seasonal-naive median
    scale_days: int = 91             #: baseline: residual history of the robust scale
    z: float = 4.0                   #: baseline: interval half-width in robust z units
    min_scale: float = 1.0           #: floor of the baseline's scale (units of the series)
    level: float = 99.0              #: model: conformal level of the interval (%)
    fit_days: int = 364              #: model: training days of each weekly fit
    conformal_windows: int = 26      #: model: rolling forecasts the conformal scores come from
    windows: tuple[int, ...] = (28,)  #: level-shift layer: window lengths in days (empty: off)
    window_z: float = 6.0            #: level-shift layer: z of a window's excess over its expectation
    count_h: float = 0.0             #: purchase-frequency CUSUM threshold (0: off)
    count_ratio: float = 1.8         #: purchase-frequency CUSUM: the rise in frequency it is tuned to
    count_window: int = 120          #: purchase-frequency CUSUM: days it runs over
    direction: str = "up"            #: up (spend rises) | both
    min_log_scale: float = 0.05      #: model: floor of the log-scale (5 %)
    min_spend_days: int = 8          #: model: days with spend in the history before a day is judged
    loc_days: int = 56               #: model: recent days the level (median log spend) comes from
    weekparts: bool = True           #: model: working days and weekends apart (daily series on a calendar)
    min_pairs: int = 30              #: model: week-apart pairs of spend days needed to take the noise from them
    min_history: int = 56            #: days of history (from the first spend) before a day is judged

    def lookback(self) -> int:
        """Days of history before a day that its decision may depend on."""
        daily = self.season * self.weeks + self.scale_days if self.method == "baseline" else self.fit_days + 7
        w = max(self.windows, default=0)
        return daily + w + self.season


@dataclass
class Scores:
    """Per series and target day: expectation, interval, score in [0, 1], flag, and which rule flagged."""

    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    score: np.ndarray
    flag: np.ndarray
    #: 1 when the daily interval flagged, w when the w-day window did (the largest flagged), 0 otherwise
    window: np.ndarray
    #: start of the anomaly as estimated on that day (a day index), -1 when not flagged
    start: np.ndarray
    #: excess over the expectation that the flag is about (the day's, or the window's)
    excess: np.ndarray
    #: which rule flagged: 0 none, 1 the daily interval, 2 a window, 3 the purchase-frequency CUSUM
    rule: np.ndarray | None = None
    variance: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)


# ---- small helpers ----------------------------------------------------------------------------------------
def nan_quantile(a: np.ndarray, q: float, axis: int = -1) -> np.ndarray:
    """Quantile (linear interpolation, like numpy's default) ignoring NaN, along ``axis``; NaN when a slice
    has no value. Much faster than ``np.nanquantile`` on many short slices (one sort, NaN sorted last)."""
    a = np.moveaxis(np.asarray(a, dtype=float), axis, -1)
    s = np.sort(a, axis=-1)
    n = np.sum(np.isfinite(a), axis=-1)
    pos = q * np.maximum(n - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    v_lo = np.take_along_axis(s, lo[..., None], axis=-1)[..., 0]
    v_hi = np.take_along_axis(s, hi[..., None], axis=-1)[..., 0]
    out = v_lo + (pos - lo) * (v_hi - v_lo)
    return np.where(n > 0, out, np.nan)


def _nan_median(a: np.ndarray, axis: int) -> np.ndarray:
    return nan_quantile(a, 0.5, axis)


def _nan_mean(a: np.ndarray, axis: int) -> np.ndarray:
    n = np.sum(np.isfinite(a), axis=axis)
    total = np.nansum(a, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def robust_scale(r: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """(median, scale) of residuals along ``axis``: 1.4826 MAD, or 1.2533 mean absolute deviation when the
    MAD is 0."""
    med = _nan_median(r, axis)
    dev = np.abs(r - np.expand_dims(med, axis))
    mad = _nan_median(dev, axis)
    meanad = _nan_mean(dev, axis)
    scale = np.where(mad > 0, MAD_TO_SIGMA * mad, MEANAD_TO_SIGMA * meanad)
    return med, scale


def winsorized_scale(r: np.ndarray, axis: int = -1, k: float = 3.0) -> np.ndarray:
    """Standard deviation of residuals clipped at median +/- k robust scales: as efficient as the standard
    deviation on clean data (the MAD alone wastes 63 % of a small sample) and as robust as the MAD to a few
    outliers (an earlier anomaly must not widen the interval that judges the next one)."""
    med, sc = robust_scale(r, axis)
    m = np.expand_dims(med, axis)
    w = np.expand_dims(np.where(sc > 0, sc, np.inf), axis)
    clipped = np.clip(r, m - k * w, m + k * w)
    n = np.sum(np.isfinite(clipped), axis=axis)
    mean = _nan_mean(clipped, axis)
    var = np.nansum((clipped - np.expand_dims(mean, axis)) ** 2, axis=axis) / np.maximum(n - 1, 1)
    return np.where(n > 1, np.sqrt(var), np.nan)


def z_to_score(z: np.ndarray, direction: str) -> np.ndarray:
    """A robust z as a score in [0, 1]: ``2 Phi(|z|) - 1`` (0 at the expectation, -> 1 far outside); with
    ``direction='up'`` a value under its expectation scores 0."""
    zz = np.where(np.isfinite(z), z, 0.0)
    zz = np.maximum(zz, 0.0) if direction == "up" else np.abs(zz)
    from scipy.special import erf

    return erf(zz / math.sqrt(2.0))


def _lags(Y: np.ndarray, t: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """``Y[:, t - lag]`` for every target t and lag: shape (series, targets, lags); NaN before the start."""
    idx = t[:, None] - lags[None, :]
    out = Y[:, np.clip(idx, 0, None)]
    out[:, idx < 0] = np.nan
    return out


# ---- daily expectations ------------------------------------------------------------------------------------
def seasonal_naive(Y: np.ndarray, t: np.ndarray, season: int, weeks: int) -> np.ndarray:
    """Median of the same season position over the last ``weeks`` cycles, before each target day."""
    lags = season * np.arange(1, weeks + 1)
    return _nan_median(_lags(Y, t, lags), axis=2)


def baseline_daily(Y: np.ndarray, t: np.ndarray, p: DetectorParams) -> dict[str, np.ndarray]:
    """Baseline expectation, interval and robust z for target days ``t`` (see the module docstring).

    The seasonal-naive expectation of each day uses only the days before it, so it is computed once for the
    whole span the targets and their residual histories cover, then indexed."""
    t = np.asarray(t, dtype=np.int64)
    lo = max(0, int(t.min()) - p.scale_days) if len(t) else 0
    span = np.arange(lo, int(t.max()) + 1 if len(t) else 0)
    e_span = seasonal_naive(Y, span, p.season, p.weeks)
    r_span = Y[:, span] - e_span
    # residual history of each target: the scale_days days before it
    hist = t[:, None] - np.arange(1, p.scale_days + 1)[None, :] - lo
    r = r_span[:, np.clip(hist, 0, None)]
    r[:, hist < 0] = np.nan
    med, scale = robust_scale(r, axis=2)
    scale = np.maximum(np.nan_to_num(scale, nan=p.min_scale), p.min_scale)
    exp = e_span[:, t - lo]
    center = exp + np.nan_to_num(med)
    y = Y[:, t]
    out = {"expected": exp, "lower": center - p.z * scale, "upper": center + p.z * scale,
           "z": (y - center) / scale, "var": scale ** 2}
    out["score"] = z_to_score(out["z"], p.direction)
    return out


def lognormal_daily(Y: np.ndarray, t: np.ndarray, p: DetectorParams, first_weekday: int) -> dict[str, np.ndarray]:
    """Seasonal log-normal hurdle: P(spend) per weekday, log-amount location per weekday, robust log scale.

    Spend is multiplicative (a purchase is a price times a quantity) and often intermittent (a vendor bills a
    few days a month), so the amount on a day with spend is judged on the log scale against the days with
    spend of the last ``fit_days``: location = median of log spend + the weekday's offset, scale =
    1.4826 MAD of the log residuals (at least ``min_log_scale``). The upper bound is
    ``exp(location + z * scale)`` with ``z`` the one-sided normal quantile of ``level``; the expectation (for
    the impact) is ``P(spend on that weekday) * exp(location + scale^2 / 2)``, the log-normal mean."""

    S, n = Y.shape[0], len(t)
    H = p.fit_days
    cols = t[:, None] - np.arange(1, H + 1)[None, :]           # (targets, H): the days before each target
    V = Y[:, np.clip(cols, 0, None)]                            # (S, targets, H)
    V[:, cols < 0] = np.nan
    pos = np.where(V > 0, V, np.nan)
    L = np.log(pos)
    # classes: working days and weekends (spend is a business-day affair; a weekday-by-weekday pattern of a
    # vendor that buys twice a month is noise)
    wd = ((cols + first_weekday) % 7 >= 5).astype(np.int64)      # class of each history day
    wd_t = ((t + first_weekday) % 7 >= 5).astype(np.int64)
    if not p.weekparts:  # a series without a calendar (hourly, or observations): one class
        wd, wd_t = np.zeros_like(wd), np.zeros_like(wd_t)
    m_all = _nan_median(L, axis=2)                              # (S, targets)
    same = wd == wd_t[:, None]                                  # (targets, H)
    Ls = np.where(same[None, :, :], L, np.nan)
    cnt = np.sum(np.isfinite(Ls), axis=2)
    med_c = _nan_median(Ls, axis=2)
    offset = np.where(cnt >= 5, med_c - m_all, 0.0)
    Vs = np.where(same[None, :, :], V, np.nan)
    seen = np.sum(np.isfinite(Vs), axis=2)
    spent = np.sum(Vs > 0, axis=2)
    prob = np.where(seen > 0, spent / np.maximum(seen, 1), 0.0)
    recent = (np.arange(1, H + 1) <= p.loc_days)[None, None, :]
    # residuals of every history day against its own weekday's location
    off_all = np.zeros_like(L)
    for c in range(2):
        Lc = np.where((wd == c)[None, :, :], L, np.nan)
        k = np.sum(np.isfinite(Lc), axis=2)
        oc = np.where(k >= 5, _nan_median(Lc, axis=2) - m_all, 0.0)
        off_all = np.where((wd == c)[None, :, :], oc[:, :, None], off_all)
    R = L - m_all[:, :, None] - off_all
    # the noise: from week-apart differences of log spend where there are enough (they ignore a level shift,
    # which would otherwise widen the interval for a year), else from the residuals around the long-run level
    lag = 7
    D = (L[:, :, :-lag] - L[:, :, lag:]) / np.sqrt(2.0) if lag < H else np.full(L.shape, np.nan)
    pairs = np.sum(np.isfinite(D), axis=2)
    scale = np.where(pairs >= p.min_pairs, winsorized_scale(D, axis=2), winsorized_scale(R, axis=2))
    scale = np.maximum(np.nan_to_num(scale, nan=p.min_log_scale), p.min_log_scale)
    # the level now: the long-run location moved by the median residual of the recent loc_days (a growing
    # series' year-long median lags behind it); residuals are class-adjusted, so weekends do not bias it
    Rr = np.where(recent, R, np.nan)
    n_recent = np.sum(np.isfinite(Rr), axis=2)
    drift = np.where(n_recent >= 5, np.nan_to_num(_nan_median(Rr, axis=2)), 0.0)
    loc = m_all + offset + drift
    nz = np.sum(np.isfinite(L), axis=2)
    ok = nz >= p.min_spend_days
    # P(spend on this kind of day), smoothed so that a first purchase on a weekend never seen is rare, not
    # impossible
    prob_s = (spent + 0.5) / (seen + 1.0)  # Jeffreys' estimate of a proportion
    alpha = 1.0 - p.level / 100.0
    y = Y[:, t]
    from scipy.special import stdtr, stdtrit

    # a new value from a normal sample of nz values: Student's t with nz - 1 degrees of freedom, widened by
    # sqrt(1 + 1/nz) (the prediction interval of a new observation), so a short history gives a wide bound
    df = np.maximum(nz - 1, 1).astype(float)
    widen = np.sqrt(1.0 + 1.0 / np.maximum(nz, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        ly = np.log(np.where(y > 0, y, 1.0))
        zz = np.where(y > 0, (ly - loc) / scale, -np.inf)
        # tail probability of a day at least this large: P(spend) * P(amount >= y | spend)
        pval = np.where(y > 0, prob_s * (1.0 - stdtr(df, np.where(y > 0, zz, 0.0) / widen)), 1.0)
        # the bound: the amount whose tail probability is alpha (none when alpha >= P(spend))
        zb = widen * stdtrit(df, np.clip(1.0 - alpha / prob_s, 1e-12, 1 - 1e-12))
    score = 1.0 - pval
    if p.direction != "up":
        from scipy.special import ndtr

        score = np.where(y > 0, np.maximum(score, 2 * np.abs(ndtr(zz) - 0.5)), 1.0 - prob_s)
    expected = prob * np.exp(loc + scale ** 2 / 2)
    with np.errstate(over="ignore"):
        upper = np.where(alpha < prob_s, np.exp(np.minimum(loc + zb * scale, 700.0)), 0.0)
    zl = widen * stdtrit(df, np.full(df.shape, p.level / 100.0))
    lower = np.where(prob >= 0.5, np.exp(loc - zl * scale), 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        var = prob * np.exp(2 * loc + 2 * scale ** 2) - expected ** 2
    nan = np.full((S, n), np.nan)
    return {"var": np.where(ok, np.maximum(var, 0.0), nan),
            "expected": np.where(ok, expected, nan), "upper": np.where(ok, upper, nan),
            "lower": np.where(ok, lower, nan), "score": np.where(ok, score, nan), "z": np.where(ok, zz, nan)}


def week_origin(t: np.ndarray, first_weekday: int, season: int = 7) -> np.ndarray:
    """Index of the first day of the (weekly) fitting period holding each day; ``first_weekday`` is the
    weekday (0 = Monday) of day index 0."""
    return t - (t + first_weekday) % season


def model_daily(Y: np.ndarray, t: np.ndarray, p: DetectorParams, first_weekday: int,
                cache: dict[int, dict[str, np.ndarray]] | None = None) -> dict[str, np.ndarray]:
    """Model expectation, conformal interval and score for target days ``t``: one statsforecast fit per
    week (origin), on the ``fit_days`` days before it. ``cache`` keeps the fits of origins already done
    (origin -> {"mean", "lo-L", "hi-L"} arrays of shape (series, 7))."""
    cache = {} if cache is None else cache
    S = Y.shape[0]
    out = {k: np.full((S, len(t)), np.nan) for k in ("expected", "lower", "upper", "score", "var")}
    origins = week_origin(t, first_weekday, p.season)
    from scipy.special import ndtri

    z_level = float(ndtri(0.5 + p.level / 200.0))
    for o in sorted(set(origins.tolist())):
        if o not in cache:
            cache[o] = fit_week(Y, o, p)
        fc = cache[o]
        sel = np.flatnonzero(origins == o)
        h = t[sel] - o
        y = Y[:, t[sel]]
        out["expected"][:, sel] = fc["mean"][:, h]
        out["lower"][:, sel] = fc[f"lo-{_lv(p.level)}"][:, h]
        out["upper"][:, sel] = fc[f"hi-{_lv(p.level)}"][:, h]
        out["var"][:, sel] = ((fc[f"hi-{_lv(p.level)}"][:, h] - fc["mean"][:, h]) / z_level) ** 2
        score = np.zeros_like(y)
        for lv in SCORE_LEVELS:
            hi, lo = fc[f"hi-{_lv(lv)}"][:, h], fc[f"lo-{_lv(lv)}"][:, h]
            outside = y > hi if p.direction == "up" else (y > hi) | (y < lo)
            score = np.where(outside, lv / 100.0, score)
        # beyond the widest level: approach 1 with the distance in widths of the 99.5 % interval
        hi, mean = fc[f"hi-{_lv(SCORE_LEVELS[-1])}"][:, h], fc["mean"][:, h]
        width = np.maximum(hi - mean, 1e-9)
        beyond = np.maximum(y - hi, 0) / width
        score = np.where(beyond > 0, 0.995 + 0.005 * (1 - np.exp(-beyond)), score)
        out["score"][:, sel] = np.where(np.isnan(fc["mean"][:, h]), np.nan, score)
    return out


def _lv(level: float) -> str:
    return f"{level:g}"


def fit_week(Y: np.ndarray, origin: int, p: DetectorParams) -> dict[str, np.ndarray]:
    """Forecasts of the ``season`` days from ``origin`` for every series, fitted on the ``fit_days`` days
    before it, with conformal intervals at :data:`SCORE_LEVELS` and ``level``. A series with less history
    than the conformal windows need gets NaN (no decision)."""
    import os

    os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import SeasonalExponentialSmoothingOptimized
    from statsforecast.utils import ConformalIntervals

    S, h = Y.shape[0], p.season
    levels = sorted({*SCORE_LEVELS, p.level})
    out = {"mean": np.full((S, h), np.nan)}
    for lv in levels:
        out[f"lo-{_lv(lv)}"] = np.full((S, h), np.nan)
        out[f"hi-{_lv(lv)}"] = np.full((S, h), np.nan)
    lo = max(0, origin - p.fit_days)
    block = np.nan_to_num(Y[:, lo:origin])
    if block.shape[1] < max(p.min_history, 2 * h + 1):
        return out
    # the conformal windows need n_windows * h + 1 days: fewer days, fewer windows (at least 2)
    windows = min(p.conformal_windows, (block.shape[1] - 1) // h)
    if windows < 2:
        return out
    n = block.shape[1]
    ds = pd.date_range("2000-01-03", periods=n, freq="D")  # a neutral calendar: only positions matter
    df = pd.DataFrame({"unique_id": np.repeat(np.arange(S), n), "ds": np.tile(ds, S), "y": block.ravel()})
    # the weekday of the first training day must match the real one: shift the neutral calendar
    shift = (lo - origin) % h
    df["ds"] = df["ds"] + pd.Timedelta(days=int(shift))
    sf = StatsForecast(models=[SeasonalExponentialSmoothingOptimized(season_length=p.season)], freq="D", n_jobs=1)
    fc = sf.forecast(df=df, h=h, level=list(levels), prediction_intervals=ConformalIntervals(
        h=h, n_windows=windows, method="conformal_distribution"))
    fc = fc.sort_values(["unique_id", "ds"])
    ids = fc["unique_id"].to_numpy()
    col = "SeasESOpt"
    for key, name in [("mean", col)] + [(f"{s}-{_lv(lv)}", f"{col}-{s}-{_lv(lv)}") for lv in levels
                                        for s in ("lo", "hi")]:
        vals = fc[name].to_numpy(dtype=float).reshape(-1, h)
        out[key][ids.reshape(-1, h)[:, 0]] = vals
    return out


# ---- the level-shift layer ---------------------------------------------------------------------------------
def _window_sums(A: np.ndarray, w: int) -> np.ndarray:
    """``WS[:, j] = sum(A[:, j - w + 1 .. j])`` for every column j (NaN for j < w - 1 or a NaN inside).
    Each sum adds its own w values in order, so a value does not depend on how much history was passed."""
    from numpy.lib.stride_tricks import sliding_window_view

    out = np.full(A.shape, np.nan)
    if A.shape[1] >= w:
        out[:, w - 1:] = sliding_window_view(A, w, axis=1).sum(axis=2)
    return out


def window_layer(Y: np.ndarray, E: np.ndarray, U: np.ndarray, V: np.ndarray, t: np.ndarray, p: DetectorParams,
                 ) -> dict[int, dict[str, np.ndarray]]:
    """For each window length w: flag, excess, z and change-point start per series and target day.

    ``E``, ``U`` and ``V`` are the daily layer's expectation, upper bound and variance for every day index
    (NaN where it had no decision). The test: ``z = (sum of the window's values clipped at U - sum of E) /
    sqrt(sum of V)``, flagged above ``window_z``; the daily model's own variance makes a lumpy vendor's
    window sums as wide as its purchases are lumpy."""
    out: dict[int, dict[str, np.ndarray]] = {}
    clipped = np.where(np.isfinite(U), np.minimum(Y, np.maximum(U, E)), np.nan)
    resid = clipped - E  # NaN where the daily layer had no decision
    S = Y.shape[0]
    for w in p.windows:
        offs = np.arange(w)[::-1]  # from the window's first day to t
        cols = t[:, None] - offs[None, :]
        ok_cols = cols >= 0
        r = resid[:, np.clip(cols, 0, None)]
        v = V[:, np.clip(cols, 0, None)]
        r[:, ~ok_cols] = np.nan
        complete = np.isfinite(r).all(axis=2) & np.isfinite(v).all(axis=2)
        excess = np.nansum(r, axis=2)
        sd = np.sqrt(np.maximum(np.nansum(v, axis=2), 1e-12))
        z = np.where(complete, excess / sd, np.nan)
        flag = complete & (z > p.window_z)
        # change point: the suffix of the window with the largest excess over the expectation
        rr = np.where(np.isfinite(r), r, 0.0)
        suffix = np.cumsum(rr[:, :, ::-1], axis=2)[:, :, ::-1]  # suffix[k] = sum r[k..end]
        k = np.argmax(suffix, axis=2)
        start = cols[np.arange(len(t))[None, :].repeat(S, 0), k]
        out[w] = {"flag": flag, "excess": excess, "z": z, "start": start}
    return out


def count_cusum(N: np.ndarray, t: np.ndarray, p: DetectorParams, first_weekday: int) -> dict[str, np.ndarray]:
    """A Poisson CUSUM on the number of charges per day (Lucas 1985): a vendor that starts buying
    ``count_ratio`` times as often, each purchase ordinary, is a level shift no daily interval sees.

    For each target day: the rate per working day and per weekend day ``lambda0`` over the ``fit_days``
    before the CUSUM window, then ``S = max(0, S + N - k)`` over the ``count_window`` days up to the target,
    from 0, with ``k = lambda0 (r - 1) / ln r`` (the optimal reference value for a shift to ``r lambda0``).
    Flag when ``S > count_h``; the change point is the day after S was last 0. Computing S over a fixed window
    keeps the decision a function of a bounded history (a daily run and a backfill agree). Target days are
    independent: they are computed a few at a time (:func:`daily_block`), which bounds the memory of a long
    backfill (all of three years' days at once held 8 GB for 818 segments)."""
    t = np.asarray(t, dtype=np.int64)
    step = daily_block(N.shape[0], p.fit_days)
    if len(t) > step:
        blocks = [count_cusum(N, t[a:a + step], p, first_weekday) for a in range(0, len(t), step)]
        return {k: np.concatenate([b[k] for b in blocks], axis=1) for k in blocks[0]}
    S_, n = N.shape[0], len(t)
    W, H, r = p.count_window, p.fit_days, p.count_ratio
    cols = t[:, None] - W - np.arange(1, H + 1)[None, :]
    hist = N[:, np.clip(cols, 0, None)]
    hist[:, cols < 0] = np.nan
    wk_h = ((cols + first_weekday) % 7 >= 5)
    lam = np.zeros((2, S_, n))
    for c in (0, 1):
        sel = np.where((wk_h == bool(c))[None, :, :], hist, np.nan)
        lam[c] = _nan_mean(sel, axis=2)
    enough = np.sum(np.isfinite(hist), axis=2) >= H // 2
    k = np.nan_to_num(lam * (r - 1.0) / np.log(r))
    offs = np.arange(W)[::-1]
    wcols = t[:, None] - offs[None, :]                       # (targets, W) from the window's first day
    Nw = N[:, np.clip(wcols, 0, None)]
    Nw = np.where((wcols >= 0)[None, :, :], np.nan_to_num(Nw), 0.0)
    cls = ((wcols + first_weekday) % 7 >= 5).astype(np.int64)   # (targets, W)
    kw = np.where(cls[None, :, :] == 1, k[1][:, :, None], k[0][:, :, None])
    S = np.zeros((S_, n))
    last_zero = np.full((S_, n), -1, dtype=np.int64)
    for j in range(W):
        S = np.maximum(0.0, S + Nw[:, :, j] - kw[:, :, j])
        last_zero = np.where(S <= 0, wcols[:, j][None, :], last_zero)
    # the change point: the day after the CUSUM was last 0 (Page's estimate)
    start = np.where(last_zero >= 0, last_zero + 1, wcols[:, 0][None, :])
    flag = enough & (lam[0] > 0) & (p.count_h < S)
    return {"flag": flag, "S": S, "start": start, "rate": lam[0]}


# ---- both layers --------------------------------------------------------------------------------------------
def detect(Y: np.ndarray, targets: np.ndarray, p: DetectorParams, first_weekday: int = 0,
           cache: dict | None = None, known: dict[str, np.ndarray] | None = None,
           counts: np.ndarray | None = None, first: np.ndarray | None = None) -> Scores:
    """Score target days (indices into the columns of ``Y``, one row per series) causally.

    NaN in ``Y`` means "not observed"; 0 means no spend; ``first`` is each series' first day with spend (by
    default found in ``Y``; a daily run passes it from the whole history). ``known`` holds the daily ``expected`` and
    ``upper`` already decided for earlier days (the state a daily run reads back instead of recomputing;
    NaN where not known): the level-shift layer needs them for the days its windows look back over."""
    Y = np.asarray(Y, dtype=float)
    t = np.asarray(targets, dtype=np.int64)
    if p.method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {p.method!r}")
    w_max = max(p.windows, default=0)
    # the daily layer for the targets and, when windows are on, for the days their windows look back over
    need = np.unique(t)
    if w_max:
        back = np.arange(0, w_max)
        need = np.unique((t[:, None] - back[None, :]).ravel())
        need = need[need >= 0]
    if known is not None and len(need) > len(t):
        have = np.ones(len(need), dtype=bool)
        for k in ("expected", "upper", "var"):
            have &= np.isfinite(known[k][:, need]).all(axis=0)
        have &= ~np.isin(need, t)
        todo = np.union1d(need[~have], t)
    else:
        todo = need
    started = _first_observed(Y) if first is None else np.asarray(first, dtype=np.int64)
    Yd = Y.copy()
    Yd[np.arange(Y.shape[1])[None, :] < started[:, None]] = np.nan  # a series begins with its first spend
    part = _daily(Yd, todo, p, first_weekday, cache)
    daily = {k: np.full((Y.shape[0], len(need)), np.nan) for k in part}
    at = np.searchsorted(need, todo)
    for k in part:
        daily[k][:, at] = part[k]
    if known is not None and len(todo) < len(need):
        rest = np.setdiff1d(np.arange(len(need)), at)
        for k in ("expected", "upper", "var"):
            daily[k][:, rest] = known[k][:, need[rest]]
    pos = {int(d): i for i, d in enumerate(need)}
    sel = np.asarray([pos[int(d)] for d in t], dtype=np.int64)
    exp, lo, hi, score = (daily[k][:, sel] for k in ("expected", "lower", "upper", "score"))
    # not enough history: no decision
    judged = (t[None, :] - started[:, None] >= p.min_history) & np.isfinite(exp)
    y = Y[:, t]
    dflag = judged & (y > hi) if p.direction == "up" else judged & ((y > hi) | (y < lo))
    flag = dflag.copy()
    rule = np.where(dflag, 1, 0)
    window = np.where(dflag, 1, 0)
    start = np.where(dflag, t[None, :], -1)
    excess = np.where(dflag, y - exp, 0.0)
    if w_max:
        E = np.full(Y.shape, np.nan)
        U = np.full(Y.shape, np.nan)
        V = np.full(Y.shape, np.nan)
        E[:, need] = daily["expected"]
        U[:, need] = daily["upper"]
        V[:, need] = daily["var"]
        layer = window_layer(Y, E, U, V, t, p)
        for w in sorted(p.windows):
            f = layer[w]["flag"] & judged & ~dflag
            window = np.where(f, w, window)
            rule = np.where(f & (rule == 0), 2, rule)
            start = np.where(f & ((start < 0) | (layer[w]["start"] < start)), layer[w]["start"], start)
            excess = np.where(f, np.maximum(excess, layer[w]["excess"]), excess)
            flag |= f
            score = np.where(f, np.maximum(np.nan_to_num(score), z_to_score(layer[w]["z"], "up")), score)
    if counts is not None and p.count_h > 0:
        cc = count_cusum(np.asarray(counts, dtype=float), t, p, first_weekday)
        f = cc["flag"] & judged & ~flag
        window = np.where(f, p.count_window, window)
        rule = np.where(f, 3, rule)
        start = np.where(f, cc["start"], start)
        excess = np.where(f, np.maximum(excess, 0.0), excess)
        flag |= f
        score = np.where(f, np.maximum(np.nan_to_num(score), 1.0 - np.exp(-cc["S"] / max(p.count_h, 1e-9))), score)
    score = np.where(judged, np.clip(np.nan_to_num(score), 0.0, 1.0), np.nan)
    return Scores(expected=exp, lower=lo, upper=hi, score=score, flag=flag, window=window, start=start,
                  excess=excess, rule=rule, variance=daily["var"][:, sel])


#: Elements of the (series, target days, history days) arrays the log-normal layer builds at once: it works
#: on a few target days at a time, each independent of the others. Small blocks stay in the CPU's caches:
#: 818 segments x 364 days of history ran at 39 ms a target day in blocks of 2 days (0.6 million elements),
#: 63 ms in blocks of 8 and 131 ms in blocks of 128, which also held 9 GB for a three-year backfill.
DAILY_BLOCK_ELEMENTS = 2**19


def daily_block(series: int, history: int) -> int:
    """Target days the log-normal layer computes at once for ``series`` x ``history`` days (1 to 128)."""
    return max(1, min(128, DAILY_BLOCK_ELEMENTS // max(1, series * history)))


def _daily(Y, need, p, first_weekday, cache):
    if p.method == "baseline":
        return baseline_daily(Y, need, p)
    if p.method == "model":
        out = {}
        step = daily_block(Y.shape[0], p.fit_days)
        for a in range(0, len(need), step):
            part = lognormal_daily(Y, need[a:a + step], p, first_weekday)
            for k, v in part.items():
                out.setdefault(k, []).append(v)
        return {k: np.concatenate(v, axis=1) for k, v in out.items()}
    return model_daily(Y, need, p, first_weekday, cache)


def _first_observed(Y: np.ndarray) -> np.ndarray:
    """Index of each series' first day with spend (a series begins with its first non-zero value; a brand
    new segment is the new-service rule's business, not the interval's)."""
    obs = np.isfinite(Y) & (Y != 0)
    first = np.argmax(obs, axis=1)
    return np.where(obs.any(axis=1), first, Y.shape[1])


def params(method: str, **values: Any) -> DetectorParams:
    """DetectorParams for ``method`` with the given values (unknown keys refused)."""
    return replace(DetectorParams(), method=method, **values)

"""The pipeline forecaster: expected bookings (MRR and one-time value) per calendar month, with a band, for
the month of the forecast day and the months after it (DOMAIN.md section 2; Alga PSA's forecast [R2]).

**Baseline (stage-weighted, Alga PSA).** Every open deal counts in the month of its expected close date (a
date already passed counts in the current month: the deal is still open and expected now), weighted by the
close rate of its stage: Alga's base rates (identified 0.05, qualified 0.15, assessment 0.35, proposed 0.50,
verbal 0.80), replaced by the owner's own rates once the owner has closed ``min_closed_deals`` deals (20 in
Alga). Deals already won in the month count in full. Expected = won + Σ value × weight. The band is Alga's:
floor = won + verbal deals in full, ceiling = floor + Σ value × weight of the other open deals.

An owner's rate for a stage is the share of the owner's closed deals that *reached* that stage and were
won. (Alga groups closed deals by the furthest stage they reached, which gives every stage below verbal a
rate of 0 when won deals pass through all stages; "reached" is the probability a forecast needs.)

**Learned.** Two parts, each fitted only on what was known on the forecast day:

* P(win) of an open deal: a logistic regression on weekly snapshots of deals closed by then (stage, days in
  the stage, age, days since the last activity, days to the expected close, confidence, values, the owner's
  win rate so far);
* when it closes if won (time to close): the days from a snapshot to the close of won deals, pooled per
  stage;
* deals that do not exist yet: for every week of the last year, what deals created after that day booked in
  the windows that followed it (so a forecast of the third month counts the deals not yet in the pipeline).

A Monte Carlo draws each deal's outcome and close day and the not-yet-created bookings; the forecast is the
mean, the band the ``band`` quantiles (10 % and 90 % by default: an 80 % interval).

**Backtest** (:func:`backtest`): rolling origins on the first day of each month, each forecast made from the
data exported up to that day, compared with the bookings that followed (deals won in each month): MAPE of
bookings per month (months with no bookings left out, and counted), WAPE, and the share of months whose
bookings fell inside the band.

Nothing here reads the lake or imports ``jobs/``: settings arrive as parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.spo import history as H

OPEN_STAGES = ("identified", "qualified", "assessment", "proposed", "verbal")
CLOSED_STAGES = ("won", "lost")
STAGE_RANK = {s: i for i, s in enumerate(OPEN_STAGES)}
CONFIDENCE_RANK = {"low": 0, "medium": 1, "high": 2, "committed": 3}
VALUES = ("mrr", "one_time_value")
MODEL_NAME = "pipeline-forecast"
METHODS = ("base_rates", "stage_weighted", "learned")


# ---- deal histories ---------------------------------------------------------------------------------------
def deal_history(opps: pd.DataFrame) -> pd.DataFrame:
    """Opportunity versions (one per deal and export day) with numeric values, the stage rank and the day
    the deal entered its current stage (``stage_since``)."""
    v = H.versions(opps, "opportunity_id")
    for c in VALUES:
        v[c] = H.as_float(v[c]).fillna(0.0)
    v = v.sort_values(["opportunity_id", "_day"], kind="mergesort")
    changed = v["stage"].ne(v.groupby("opportunity_id")["stage"].shift())
    v["stage_since"] = v["_day"].where(changed).groupby(v["opportunity_id"]).ffill()
    v["expected_close"] = H.day(v["expected_close_date"])
    v["closed_day"] = H.day(v["closed_at"])
    v["created_day"] = H.day(v["created_at"])
    return v.sort_values("_day", kind="mergesort").reset_index(drop=True)


def closed_deals(history: pd.DataFrame) -> pd.DataFrame:
    """One row per deal that was won or lost: owner, outcome, close day, the export day its close was
    first known (``known_day``), values and the furthest open stage it reached."""
    last = history.sort_values(["opportunity_id", "_day"], kind="mergesort").drop_duplicates("opportunity_id",
                                                                                           keep="last")
    last = last[last["stage"].isin(CLOSED_STAGES)]
    reached = history[history["stage"].isin(OPEN_STAGES)].assign(rank=lambda f: f["stage"].map(STAGE_RANK))
    furthest = reached.groupby("opportunity_id")["rank"].max()
    first_closed = history[history["stage"].isin(CLOSED_STAGES)].groupby("opportunity_id")["_day"].min()
    out = last[["opportunity_id", "owner", "stage", "_day", "closed_day", "created_day", *VALUES]].copy()
    out["won"] = out["stage"] == "won"
    out["close_day"] = out["closed_day"].fillna(out["_day"])
    out["known_day"] = out["opportunity_id"].map(first_closed)
    out["furthest"] = out["opportunity_id"].map(furthest).fillna(0).astype(int)
    return out.drop(columns=["_day", "closed_day"]).reset_index(drop=True)


def state_on(history: pd.DataFrame, day) -> pd.DataFrame:
    """Each deal as exported on or before ``day``."""
    d = H.as_timestamp(day)
    v = history[history["_day"] <= d]
    return v.drop_duplicates("opportunity_id", keep="last").reset_index(drop=True)


def forecast_months(day, months_ahead: int) -> list[str]:
    """The month of ``day`` and the ``months_ahead - 1`` months after it (``yyyy-MM``)."""
    first = H.as_timestamp(day).to_period("M")
    return [(first + k).strftime("%Y-%m") for k in range(months_ahead)]


def _month(days: pd.Series) -> pd.Series:
    return days.dt.strftime("%Y-%m")


# ---- baseline: stage-weighted (Alga) ------------------------------------------------------------------------
def owner_rates(closed: pd.DataFrame, day, min_closed: int) -> dict[str, dict[str, float]]:
    """Owner → stage → share of the owner's deals closed before ``day`` that reached the stage and were
    won, for owners with at least ``min_closed`` closed deals."""
    past = closed[closed["close_day"] < H.as_timestamp(day)]
    out: dict[str, dict[str, float]] = {}
    for owner, g in past.groupby("owner"):
        if len(g) < min_closed:
            continue
        rates = {}
        for stage, rank in STAGE_RANK.items():
            cohort = g[g["furthest"] >= rank]
            if len(cohort):
                rates[stage] = float(cohort["won"].mean())
        out[str(owner)] = rates
    return out


def open_deals(state: pd.DataFrame, day, months: Sequence[str]) -> pd.DataFrame:
    """Open deals on ``day`` with the forecast month they count in (``month``), inside ``months`` only."""
    d = H.as_timestamp(day)
    o = state[state["stage"].isin(OPEN_STAGES)].copy()
    o["month"] = _month(o["expected_close"].where(o["expected_close"] >= d, d).fillna(d))
    return o[o["month"].isin(list(months))].reset_index(drop=True)


def won_in(state: pd.DataFrame, day, months: Sequence[str]) -> pd.DataFrame:
    """Deals won on or before ``day`` whose close falls in one of ``months``."""
    w = state[(state["stage"] == "won") & (state["closed_day"].fillna(state["_day"]) <= H.as_timestamp(day))].copy()
    w["month"] = _month(w["closed_day"].fillna(w["_day"]))
    return w[w["month"].isin(list(months))].reset_index(drop=True)


def stage_weighted(state: pd.DataFrame, day, months: Sequence[str], base_rates: Mapping[str, float],
                   rates_by_owner: Mapping[str, Mapping[str, float]] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per month: won, expected, floor, ceiling of MRR and one-time value; one row per open deal
    with its weight and where the weight came from)."""
    rates_by_owner = rates_by_owner or {}
    deals = open_deals(state, day, months)
    deals["weight"] = [rates_by_owner.get(str(o), {}).get(s, base_rates[s]) for o, s in
                       zip(deals["owner"], deals["stage"], strict=True)]
    deals["weight_source"] = ["owner" if s in rates_by_owner.get(str(o), {}) else "base" for o, s in
                              zip(deals["owner"], deals["stage"], strict=True)]
    won = won_in(state, day, months)
    rows = []
    for m in months:
        d, w = deals[deals["month"] == m], won[won["month"] == m]
        verbal = d["stage"] == "verbal"
        row = {"month": m, "open_deals": len(d), "won_deals": len(w)}
        for v, name in (("mrr", "mrr"), ("one_time_value", "one_time")):
            won_v = float(w[v].sum())
            weighted = float((d[v] * d["weight"]).sum())
            floor = won_v + float(d.loc[verbal, v].sum())
            row |= {f"won_{name}": won_v, f"expected_{name}": won_v + weighted, f"low_{name}": floor,
                    f"high_{name}": floor + float((d.loc[~verbal, v] * d.loc[~verbal, "weight"]).sum())}
        rows.append(row)
    return pd.DataFrame(rows), deals


def owner_rates_many(closed: pd.DataFrame, owner: pd.Series, days: pd.Series, stages: pd.Series,
                     min_closed: int) -> np.ndarray:
    """For each (owner, day, stage): the owner's rate of the stage over the deals closed before the day
    (as :func:`owner_rates`), or NaN where the owner has fewer than ``min_closed`` closed deals or none that
    reached the stage."""
    out = np.full(len(owner), np.nan)
    if closed.empty or owner.empty:
        return out
    c = closed.sort_values("close_day", kind="mergesort").reset_index(drop=True)
    stats = {"n": c.groupby("owner").cumcount() + 1.0}
    for stage, rank in STAGE_RANK.items():
        reached = (c["furthest"] >= rank).astype(float)
        stats[f"reached_{stage}"] = reached.groupby(c["owner"]).cumsum()
        stats[f"won_{stage}"] = (reached * c["won"]).groupby(c["owner"]).cumsum()
    c = pd.concat([c[["owner", "close_day"]].astype({"owner": object}), pd.DataFrame(stats)], axis=1)
    q = pd.DataFrame({"owner": owner.astype(object).to_numpy(), "day": H.day(days).to_numpy(),
                      "stage": stages.to_numpy(), "_i": np.arange(len(owner))}).sort_values("day", kind="mergesort")
    m = pd.merge_asof(q, c, left_on="day", right_on="close_day", by="owner", direction="backward",
                      allow_exact_matches=False)
    rate = np.full(len(m), np.nan)
    for stage in OPEN_STAGES:
        at = (m["stage"] == stage).to_numpy()
        reached, won = m[f"reached_{stage}"].to_numpy(), m[f"won_{stage}"].to_numpy()
        ok = at & (m["n"].to_numpy() >= min_closed) & (reached > 0)
        rate[ok] = won[ok] / reached[ok]
    out[m["_i"].to_numpy()] = rate
    return out


def stage_weighted_many(history: pd.DataFrame, days: Sequence, months_ahead: int, base_rates: Mapping[str, float],
                        min_closed: int) -> pd.DataFrame:
    """:func:`stage_weighted` for many days at once, with base rates (``base_rates``) and with owner rates
    (``stage_weighted``): one row per (day, method, month). The same numbers as calling it day by day."""
    wanted = pd.DatetimeIndex(sorted({H.as_timestamp(d) for d in days}))
    cols = ["day", "method", "month", "horizon", "open_deals", "won_deals", "calibrated_owners"] + [
        f"{k}_{v}" for v in ("mrr", "one_time") for k in ("won", "expected", "low", "high")]
    if history.empty or not len(wanted):
        return pd.DataFrame(columns=cols)
    first = history.groupby("opportunity_id")["_day"].min()
    grid = pd.DataFrame([(o, d) for d in wanted for o in first.index[first.to_numpy() <= d]],
                        columns=["opportunity_id", "day"])
    st = H.as_of(history, "opportunity_id", grid) if len(grid) else history.head(0).assign(day=pd.NaT)
    def month_no(days: pd.Series) -> np.ndarray:
        return (days.dt.year * 12 + days.dt.month).to_numpy()

    is_open = st["stage"].isin(OPEN_STAGES)
    close = st["expected_close"].where(st["expected_close"] >= st["day"], st["day"]).fillna(st["day"])
    won_day = st["closed_day"].fillna(st["_day"])
    is_won = (st["stage"] == "won") & (won_day <= st["day"])
    when = close.where(is_open, won_day)
    horizon = pd.Series(np.nan_to_num(month_no(when) - month_no(st["day"]), nan=-9).astype(int) + 1, index=st.index)
    keep = (is_open | is_won) & (horizon >= 1) & (horizon <= months_ahead)
    st, horizon, is_open, is_won = st[keep], horizon[keep], is_open[keep], is_won[keep]
    closed = closed_deals(history)
    known = closed.assign(close_day=closed["known_day"])
    owner_rate = owner_rates_many(known, st["owner"], st["day"], st["stage"], min_closed)
    base = st["stage"].map(dict(base_rates)).to_numpy(dtype=float)
    calibrated = _calibrated_owners(known, wanted, min_closed)
    frames = []
    for method, weight in (("base_rates", base), ("stage_weighted", np.where(np.isnan(owner_rate), base, owner_rate))):
        f = pd.DataFrame({"day": st["day"].to_numpy(), "horizon": horizon.to_numpy(), "open": is_open.to_numpy(),
                          "won": is_won.to_numpy(), "verbal": (st["stage"] == "verbal").to_numpy()})
        for v, name in (("mrr", "mrr"), ("one_time_value", "one_time")):
            val = st[v].to_numpy(dtype=float)
            w = np.where(is_won.to_numpy(), 1.0, np.where(is_open.to_numpy(), weight, 0.0))
            f[f"won_{name}"] = np.where(f["won"], val, 0.0)
            f[f"expected_{name}"] = val * w
            f[f"low_{name}"] = np.where(f["won"] | (f["open"] & f["verbal"]), val, 0.0)
            f[f"high_{name}"] = f[f"low_{name}"] + np.where(f["open"] & ~f["verbal"], val * w, 0.0)
        g = f.groupby(["day", "horizon"]).agg(open_deals=("open", "sum"), won_deals=("won", "sum"),
                                              **{c: (c, "sum") for c in f.columns if c.endswith(("_mrr", "_one_time"))})
        full = pd.MultiIndex.from_product([wanted, range(1, months_ahead + 1)], names=["day", "horizon"])
        g = g.reindex(full, fill_value=0).reset_index()
        g["method"] = method
        g["month"] = (g["day"].dt.to_period("M") + (g["horizon"] - 1)).dt.strftime("%Y-%m")
        g["calibrated_owners"] = g["day"].map(calibrated) if method == "stage_weighted" else np.nan
        frames.append(g)
    out = pd.concat(frames, ignore_index=True)
    out[["open_deals", "won_deals"]] = out[["open_deals", "won_deals"]].astype(int)
    return out[cols].sort_values(["day", "method", "horizon"], kind="mergesort").reset_index(drop=True)


def _calibrated_owners(closed: pd.DataFrame, days: pd.DatetimeIndex, min_closed: int) -> dict:
    """Day → how many owners had closed at least ``min_closed`` deals before it."""
    c = closed.sort_values("close_day", kind="mergesort")
    nth = c.assign(n=c.groupby("owner").cumcount() + 1)
    reached = nth.loc[nth["n"] == min_closed, "close_day"].sort_values().to_numpy()
    counts = np.searchsorted(reached, days.to_numpy(), side="left")
    return dict(zip(days, counts.astype(int), strict=True))


# ---- learned: P(win), time to close, deals not yet created --------------------------------------------------
WIN_NUMERIC = ("stage_rank", "confidence_rank", "age_days", "days_in_stage", "days_since_activity",
               "days_to_close", "log_mrr", "log_one_time", "owner_win_rate")


def deal_features(rows: pd.DataFrame, closed: pd.DataFrame, activities: pd.DataFrame | None = None,
                  prior: float = 0.5, strength: float = 5.0) -> pd.DataFrame:
    """Feature rows (:data:`WIN_NUMERIC`) of deal states, each as of its ``day``: days since the last
    activity (exported on the deal or in ``activities``, see :func:`activity_days`, on or before the day),
    and the owner's win rate over the deals closed before the day, smoothed towards ``prior``."""
    days = H.day(rows["day"])
    f = pd.DataFrame(index=rows.index)
    f["stage_rank"] = rows["stage"].map(STAGE_RANK).astype(float)
    f["confidence_rank"] = rows["confidence"].map(CONFIDENCE_RANK).astype(float)
    f["age_days"] = (days - rows["created_day"]).dt.days.astype(float)
    f["days_in_stage"] = (days - rows["stage_since"]).dt.days.astype(float)
    last = H.day(rows["last_activity_at"])
    if activities is not None and len(activities):
        acts = activities.assign(touch=1)
        seen = H.cumulative(acts, "opportunity_id", ["touch"], rows[["opportunity_id", "day"]], last=("touch",))
        keyed = seen.set_index(["opportunity_id", "day"])["last_touch"]
        found = pd.Series(keyed.reindex(pd.MultiIndex.from_arrays([rows["opportunity_id"], days])).to_numpy(),
                          index=rows.index)
        last = pd.concat([last, found], axis=1).max(axis=1)
    f["days_since_activity"] = (days - last.fillna(rows["created_day"])).dt.days.astype(float)
    f["days_to_close"] = (rows["expected_close"] - days).dt.days.astype(float)
    f["log_mrr"] = np.log1p(rows["mrr"].astype(float))
    f["log_one_time"] = np.log1p(rows["one_time_value"].astype(float))
    f["owner_win_rate"] = _owner_rate(rows["owner"], days, closed, prior, strength)
    return f


def _owner_rate(owner: pd.Series, days: pd.Series, closed: pd.DataFrame, prior: float, strength: float) -> np.ndarray:
    """Each (owner, day): (wins + strength × prior) / (closed + strength) over the owner's deals closed before
    the day."""
    out = np.full(len(owner), prior, dtype=float)
    if closed.empty or owner.empty:
        return out
    c = closed.sort_values("close_day", kind="mergesort")
    c = c.assign(wins=c.groupby("owner")["won"].cumsum().astype(float), n=c.groupby("owner").cumcount() + 1.0)
    q = pd.DataFrame({"owner": owner.astype(object).to_numpy(), "day": days.to_numpy(), "_i": np.arange(len(owner))})
    q = q.sort_values("day", kind="mergesort")
    m = pd.merge_asof(q, c[["owner", "close_day", "wins", "n"]].astype({"owner": object}), left_on="day",
                      right_on="close_day", by="owner", direction="backward", allow_exact_matches=False)
    rate = ((m["wins"] + strength * prior) / (m["n"] + strength)).fillna(prior).to_numpy()
    out[m["_i"].to_numpy()] = rate
    return out


def deal_snapshots(history: pd.DataFrame, closed: pd.DataFrame, days: Sequence, known_until,
                   activities: pd.DataFrame | None = None) -> pd.DataFrame:
    """Open deals on each of ``days`` with their features, outcome (won) and days to close, for deals closed
    by ``known_until`` (``closed`` holds what was known then)."""
    known = H.as_timestamp(known_until)
    done = closed[closed["close_day"] <= known].set_index("opportunity_id")
    hist = history[history["opportunity_id"].isin(done.index)]
    if hist.empty or not len(days):
        return pd.DataFrame(columns=[*WIN_NUMERIC, "opportunity_id", "stage", "day", "won", "days_to_outcome"])
    first = hist.groupby("opportunity_id")["_day"].min()
    wanted = pd.DatetimeIndex(sorted({H.as_timestamp(d) for d in days}))
    grid = pd.DataFrame([(o, d) for d in wanted for o in first.index[first.to_numpy() <= d]],
                        columns=["opportunity_id", "day"])
    if grid.empty:
        return pd.DataFrame(columns=[*WIN_NUMERIC, "opportunity_id", "stage", "day", "won", "days_to_outcome"])
    st = H.as_of(hist, "opportunity_id", grid)
    st = st[st["stage"].isin(OPEN_STAGES)].reset_index(drop=True)
    f = deal_features(st, done.reset_index(), activities)
    f["opportunity_id"] = st["opportunity_id"].to_numpy()
    f["stage"] = st["stage"].to_numpy()
    f["day"] = st["day"].to_numpy()
    f["won"] = st["opportunity_id"].map(done["won"]).astype(int).to_numpy()
    f["days_to_outcome"] = (st["opportunity_id"].map(done["close_day"]) - st["day"]).dt.days.to_numpy()
    return f


def activity_days(activities: pd.DataFrame | None) -> pd.DataFrame:
    """Sales activities that name a deal, as (opportunity_id, _day)."""
    if activities is None or activities.empty:
        return pd.DataFrame(columns=["opportunity_id", "_day"])
    a = activities[activities["opportunity_id"].notna()]
    return pd.DataFrame({"opportunity_id": a["opportunity_id"].to_numpy(), "_day": H.day(a["dt"]).to_numpy()})


@dataclass
class LearnedForecaster:
    """P(win) of an open deal, its time to close if won, and the bookings of deals created later."""

    win_model: Any
    remaining_days: dict[str, np.ndarray]
    fitted_on: str
    deals: int
    params: dict[str, Any] = field(default_factory=dict)

    def p_win(self, f: pd.DataFrame) -> np.ndarray:
        if f.empty:
            return np.zeros(0)
        if self.win_model is None or isinstance(self.win_model, float):
            return np.full(len(f), float(self.win_model or 0.0))
        return self.win_model.predict_proba(f[list(WIN_NUMERIC)])[:, 1]


def fit_learned(history: pd.DataFrame, closed: pd.DataFrame, day, *, snapshot_every: int, c: float,
                activities: pd.DataFrame | None = None) -> LearnedForecaster:
    """The learned parts, fitted on the deals closed before ``day`` (weekly snapshots of their open life)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    d = H.as_timestamp(day)
    past = closed[closed["close_day"] < d]
    first = history["_day"].min() if len(history) else d
    days = H.days_between(first, d - pd.Timedelta(days=1), snapshot_every)
    acts = None if activities is None else activities[activities["_day"] < d]
    snaps = deal_snapshots(history, past, days, d - pd.Timedelta(days=1), acts)
    if snaps.empty or snaps["won"].nunique() < 2:
        model: Any = float(snaps["won"].mean()) if len(snaps) else 0.0
    else:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        model.fit(snaps[list(WIN_NUMERIC)].fillna(0.0), snaps["won"].astype(int))
        model = _NanSafe(model)
    won = snaps[snaps["won"] == 1] if len(snaps) else snaps
    pools = {s: won.loc[won["stage"] == s, "days_to_outcome"].to_numpy(dtype=float) for s in OPEN_STAGES}
    return LearnedForecaster(model, pools, str(d.date()), len(past), {"snapshot_every": snapshot_every, "c": c})


class _NanSafe:
    """A fitted pipeline that reads missing feature values as 0 (a deal without a value or a date)."""

    def __init__(self, pipe):
        self.pipe = pipe

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        return self.pipe.predict_proba(x.fillna(0.0))


def new_deal_pool(closed: pd.DataFrame, day, windows: Sequence[tuple[int, int]], lookback_days: int,
                  every: int) -> np.ndarray:
    """Bookings (MRR, one-time) that deals created after each past origin won in each window after it.

    Origins are every ``every`` days over the ``lookback_days`` before ``day`` whose windows had passed by
    ``day``. Returns an array (origins, windows, 2)."""
    d = H.as_timestamp(day)
    last_b = max(b for _, b in windows)
    origins = [o for o in H.days_between(d - pd.Timedelta(days=lookback_days), d, every)
               if o + pd.Timedelta(days=last_b) < d]
    won = closed[closed["won"] & (closed["close_day"] < d)]
    out = np.zeros((len(origins), len(windows), 2))
    if not origins or won.empty:
        return out
    created = won["created_day"].to_numpy()
    close = won["close_day"].to_numpy()
    vals = won[list(VALUES)].to_numpy(dtype=float)
    for i, o in enumerate(origins):
        fresh = created > np.datetime64(o)
        for j, (a, b) in enumerate(windows):
            lo, hi = np.datetime64(o + pd.Timedelta(days=a)), np.datetime64(o + pd.Timedelta(days=b))
            hit = fresh & (close >= lo) & (close <= hi)
            out[i, j] = vals[hit].sum(axis=0)
    return out


def month_windows(day, months: Sequence[str]) -> list[tuple[int, int]]:
    """Day offsets (first, last) from ``day`` of each forecast month (the first month starts on ``day``)."""
    d = H.as_timestamp(day)
    out = []
    for m in months:
        start = max(pd.Timestamp(f"{m}-01"), d)
        end = pd.Timestamp(f"{m}-01") + pd.offsets.MonthEnd(0)
        out.append(((start - d).days, (end - d).days))
    return out


def learned(model: LearnedForecaster, state: pd.DataFrame, day, months: Sequence[str], closed: pd.DataFrame, *,
            sims: int, band: Sequence[float], seed: int, lookback_days: int, origin_every: int,
            activities: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per month: won, expected, low, high of MRR and one-time value; one row per open deal with
    its P(win) and expected close)."""
    d = H.as_timestamp(day)
    rng = np.random.default_rng(seed)
    won = won_in(state, day, months)
    deals = state[state["stage"].isin(OPEN_STAGES)].reset_index(drop=True).assign(day=d)
    acts = None if activities is None else activities[activities["_day"] <= d]
    f = deal_features(deals, closed[closed["close_day"] < d], acts)
    p = model.p_win(f)
    deals = deals.assign(p_win=p)
    windows = month_windows(day, months)
    totals = np.zeros((sims, len(months), 2))
    if len(deals):
        fallback = np.concatenate([v for v in model.remaining_days.values() if len(v)] or [np.array([30.0])])
        offs = np.zeros((sims, len(deals)), dtype=int)
        for s in deals["stage"].unique():
            cols = np.flatnonzero((deals["stage"] == s).to_numpy())
            pool = model.remaining_days.get(s, np.zeros(0))
            pool = pool if len(pool) else fallback
            offs[:, cols] = pool[rng.integers(0, len(pool), (sims, len(cols)))].astype(int)
        wins = rng.random((sims, len(deals))) < p
        vals = deals[list(VALUES)].to_numpy(dtype=float)
        for j, (a, b) in enumerate(windows):
            totals[:, j] += (wins & (offs >= a) & (offs <= b)).astype(float) @ vals
    pool_new = new_deal_pool(closed, day, windows, lookback_days, origin_every)
    if len(pool_new):
        pick = rng.integers(0, len(pool_new), sims)
        totals += pool_new[pick]
    expected_close = [d + pd.Timedelta(days=float(np.median(model.remaining_days.get(s) if len(
        model.remaining_days.get(s, [])) else [30.0]))) for s in deals["stage"]]
    deals["expected_close_learned"] = expected_close
    lo_q, hi_q = band
    rows = []
    for j, m in enumerate(months):
        w = won[won["month"] == m]
        row = {"month": m, "open_deals": int((deals["expected_close"].dt.strftime("%Y-%m") == m).sum()),
               "won_deals": len(w)}
        for k, (v, name) in enumerate((("mrr", "mrr"), ("one_time_value", "one_time"))):
            won_v = float(w[v].sum())
            sim = totals[:, j, k] + won_v
            row |= {f"won_{name}": won_v, f"expected_{name}": float(sim.mean()),
                    f"low_{name}": float(np.quantile(sim, lo_q)), f"high_{name}": float(np.quantile(sim, hi_q))}
        rows.append(row)
    return pd.DataFrame(rows), deals


# ---- backtest -------------------------------------------------------------------------------------------------
def actual_bookings(closed: pd.DataFrame, months: Sequence[str]) -> pd.DataFrame:
    won = closed[closed["won"]].assign(month=lambda f: _month(f["close_day"]))
    g = won.groupby("month")[list(VALUES)].sum()
    return g.reindex(list(months)).fillna(0.0).rename(columns={"mrr": "actual_mrr",
                                                               "one_time_value": "actual_one_time"})


def backtest(opps: pd.DataFrame, *, first_origin, last_day, months_ahead: int, base_rates: Mapping[str, float],
             min_closed_deals: int, learned_params: Mapping[str, Any],
             activities: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rolling-origin backtest (see the module docstring): one row per origin, forecast month and method,
    with the forecast, its band and the actual bookings. Origins are the first days of the months from
    ``first_origin`` whose ``months_ahead`` months had ended by ``last_day``."""
    history = deal_history(opps)
    acts = activity_days(activities) if activities is not None else None
    last = H.as_timestamp(last_day)
    origins = [o for o in pd.date_range(H.as_timestamp(first_origin) + pd.offsets.MonthBegin(0), last, freq="MS")
               if o + pd.DateOffset(months=months_ahead) <= last + pd.Timedelta(days=1)]
    out = []
    for origin in origins:
        state = state_on(history, origin)
        closed_known = closed_deals(history[history["_day"] <= origin])
        months = forecast_months(origin, months_ahead)
        truth = actual_bookings(closed_deals(history[history["_day"] <= last]), months)
        base, _ = stage_weighted(state, origin, months, base_rates)
        weighted, _ = stage_weighted(state, origin, months, base_rates,
                                     owner_rates(closed_known, origin, min_closed_deals))
        model = fit_learned(history[history["_day"] <= origin], closed_known, origin,
                            snapshot_every=learned_params["snapshot_every"], c=learned_params["c"],
                            activities=acts)
        learn, _ = learned(model, state, origin, months, closed_known, sims=learned_params["sims"],
                           band=learned_params["band"], seed=learned_params["seed"],
                           lookback_days=learned_params["lookback_days"], origin_every=learned_params["origin_every"],
                           activities=acts)
        for method, frame in (("base_rates", base), ("stage_weighted", weighted), ("learned", learn)):
            f = frame.set_index("month").join(truth)
            for k, (m, r) in enumerate(f.iterrows()):
                out.append({"origin": origin.date(), "month": m, "horizon": k + 1, "method": method,
                            **{c: float(r[c]) for c in ("expected_mrr", "low_mrr", "high_mrr", "actual_mrr",
                                                        "expected_one_time", "low_one_time", "high_one_time",
                                                        "actual_one_time")}})
    rows = pd.DataFrame(out)
    if rows.empty:
        return rows
    for v in ("mrr", "one_time"):
        a, e = rows[f"actual_{v}"], rows[f"expected_{v}"]
        rows[f"ape_{v}"] = ((e - a).abs() / a).where(a > 0)
        rows[f"covered_{v}"] = (rows[f"low_{v}"] <= a + 1e-9) & (a <= rows[f"high_{v}"] + 1e-9)
    return rows


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Per method: MAPE and WAPE of MRR and one-time bookings, band coverage, months scored."""
    out = []
    for method in METHODS:
        r = rows[rows["method"] == method]
        if r.empty:
            continue
        row: dict[str, Any] = {"method": method, "origins": int(r["origin"].nunique()), "months": len(r)}
        for v in ("mrr", "one_time"):
            a, e = r[f"actual_{v}"], r[f"expected_{v}"]
            row[f"mape_{v}"] = float(r[f"ape_{v}"].mean()) if r[f"ape_{v}"].notna().any() else None
            row[f"wape_{v}"] = float((e - a).abs().sum() / a.sum()) if a.sum() else None
            row[f"bias_{v}"] = float((e - a).sum() / a.sum()) if a.sum() else None
            row[f"coverage_{v}"] = float(r[f"covered_{v}"].mean())
        row["zero_months"] = int((r["actual_mrr"] <= 0).sum())
        out.append(row)
    return pd.DataFrame(out)

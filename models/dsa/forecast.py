"""Monthly spend forecast per department with prediction intervals, and its rolling-origin backtest.

* **baseline**: seasonal naive (the same month a year before) when the series holds 13 months or more, naive
  (the last month) otherwise; intervals from statsforecast's own residual-based formula.
* **model**: statsforecast ``AutoETS`` (error, trend and season chosen by AICc; a yearly season only when two
  full years are there), with its analytic prediction intervals.

Both at the levels of ``levels`` (80 and 95 %: AWS Cost Explorer shows an 80 % interval [R66]). The
**backtest** refits both at each of the last ``origins`` month ends that leave ``horizon`` months to check
(rolling origin) and reports, per method and months ahead, the MAPE and the share of actuals inside each
interval (coverage); FinOps "Run" maturity is a forecast within 12 % of actual [R67].
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

METHODS = ("baseline", "model")


def _fit_forecast(df: pd.DataFrame, h: int, levels: list[int], method: str) -> pd.DataFrame:
    """Forecasts (unique_id, ds, mean, lo-L, hi-L) of every series of ``df`` (unique_id, ds, y)."""
    os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, Naive, SeasonalNaive

    out = []
    for uid, g in df.groupby("unique_id", sort=True):
        n = len(g)
        if method == "baseline":
            model = SeasonalNaive(season_length=12) if n >= 13 else Naive()
        else:
            model = AutoETS(season_length=12 if n >= 24 else 1)
        sf = StatsForecast(models=[model], freq="MS", n_jobs=1)
        try:
            fc = sf.forecast(df=g, h=h, level=levels)
        except Exception:  # a series too short for the model: fall back to the naive
            sf = StatsForecast(models=[Naive()], freq="MS", n_jobs=1)
            fc = sf.forecast(df=g, h=h, level=levels)
        col = next(c for c in fc.columns if c not in ("unique_id", "ds") and "-lo-" not in c and "-hi-" not in c)
        tidy = pd.DataFrame({"unique_id": uid, "ds": fc["ds"], "mean": fc[col].to_numpy()})
        for lv in levels:
            tidy[f"lo-{lv}"] = fc[f"{col}-lo-{lv}"].to_numpy()
            tidy[f"hi-{lv}"] = fc[f"{col}-hi-{lv}"].to_numpy()
        out.append(tidy)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def to_frame(monthly: pd.DataFrame) -> pd.DataFrame:
    """``department, month (YYYY-MM), spend`` → statsforecast's (unique_id, ds, y), months without spend as 0."""
    if monthly.empty:
        return pd.DataFrame(columns=["unique_id", "ds", "y"])
    m = monthly.copy()
    m["ds"] = pd.to_datetime(m["month"] + "-01")
    rows = []
    for dept, g in m.groupby("department", sort=True):
        idx = pd.date_range(g["ds"].min(), g["ds"].max(), freq="MS")
        y = g.set_index("ds")["spend"].reindex(idx, fill_value=0.0)
        rows.append(pd.DataFrame({"unique_id": dept, "ds": idx, "y": y.to_numpy(dtype=float)}))
    return pd.concat(rows, ignore_index=True)


def forecast(monthly: pd.DataFrame, horizon: int, levels: list[int]) -> pd.DataFrame:
    """Forecast rows: department, month, horizon, method, mean, lo_L, hi_L (clipped at 0: spend is not
    negative)."""
    df = to_frame(monthly)
    out = []
    for method in METHODS:
        fc = _fit_forecast(df, horizon, levels, method)
        if fc.empty:
            continue
        fc["method"] = method
        out.append(fc)
    if not out:
        return pd.DataFrame()
    fc = pd.concat(out, ignore_index=True)
    fc["horizon"] = fc.groupby(["method", "unique_id"]).cumcount() + 1
    res = pd.DataFrame({"department": fc["unique_id"], "month": fc["ds"].dt.strftime("%Y-%m"),
                        "horizon": fc["horizon"].astype(int), "method": fc["method"],
                        "mean": fc["mean"].clip(lower=0).round(2)})
    for lv in levels:
        res[f"lo_{lv}"] = fc[f"lo-{lv}"].clip(lower=0).round(2)
        res[f"hi_{lv}"] = fc[f"hi-{lv}"].clip(lower=0).round(2)
    return res


def backtest(monthly: pd.DataFrame, origins: int, horizon: int, levels: list[int],
             min_train: int = 6) -> pd.DataFrame:
    """Rolling-origin backtest rows: method, department, origin, month, horizon, actual, forecast, ape and
    whether the actual is inside each interval."""
    df = to_frame(monthly)
    if df.empty:
        return pd.DataFrame()
    months = sorted(df["ds"].unique())
    cands = [m for i, m in enumerate(months) if i + 1 >= min_train and i + horizon < len(months)]
    rows = []
    for origin in cands[-origins:]:
        train = df[df["ds"] <= origin]
        test = df[(df["ds"] > origin)]
        for method in METHODS:
            fc = _fit_forecast(train, horizon, levels, method)
            if fc.empty:
                continue
            fc["horizon"] = fc.groupby("unique_id").cumcount() + 1
            j = fc.merge(test, on=["unique_id", "ds"], how="inner")
            for r in j.to_dict("records"):
                y, f = float(r["y"]), max(float(r["mean"]), 0.0)
                row: dict[str, Any] = {"method": method, "department": r["unique_id"],
                                       "origin": pd.Timestamp(origin).strftime("%Y-%m"),
                                       "month": pd.Timestamp(r["ds"]).strftime("%Y-%m"), "horizon": int(r["horizon"]),
                                       "actual": round(y, 2), "forecast": round(f, 2),
                                       "ape": round(abs(f - y) / abs(y) * 100.0, 3) if y else None}
                for lv in levels:
                    row[f"in_{lv}"] = bool(r[f"lo-{lv}"] <= y <= r[f"hi-{lv}"])
                rows.append(row)
    return pd.DataFrame(rows)


def summary(bt: pd.DataFrame, levels: list[int]) -> pd.DataFrame:
    """MAPE and interval coverage per method and months ahead (and over all horizons)."""
    if bt.empty:
        return pd.DataFrame()
    agg = {"mape_pct": ("ape", "mean"), "forecasts": ("ape", "size")}
    for lv in levels:
        agg[f"coverage_{lv}_pct"] = (f"in_{lv}", "mean")
    a = bt.groupby(["method", "horizon"]).agg(**agg).reset_index()
    b = bt.groupby(["method"]).agg(**agg).reset_index().assign(horizon=0)
    out = pd.concat([a, b], ignore_index=True)
    for lv in levels:
        out[f"coverage_{lv}_pct"] = (out[f"coverage_{lv}_pct"] * 100).round(1)
    out["mape_pct"] = out["mape_pct"].round(2)
    return out.sort_values(["method", "horizon"]).reset_index(drop=True)


def horizons_mape(bt: pd.DataFrame) -> dict[str, float]:
    s = bt.groupby("method")["ape"].mean()
    return {k: float(np.round(v, 2)) for k, v in s.items()}

"""The budget forecast stage: monthly spend per department (and for the whole MSP, ``all``) for the next
``dsa.forecast_horizon_months`` months with 80 and 95 % intervals, the budget beside it, and the rolling-origin
backtest of the model against the baseline (:mod:`models.dsa.forecast`).

It forecasts from the last complete month before the run's last day (its *origin*) and does the work once per
origin: a run whose origin was already forecast, with unchanged settings and code, leaves the tables as they
are (a daily run costs nothing between month ends).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from jobs.dsa.budget import BUDGETS, latest_budgets
from jobs.dsa.costs import LEAVES
from lakehouse.transforms import month_of

if TYPE_CHECKING:  # pragma: no cover
    from jobs.dsa.settings import DsaSettings
    from lakehouse.context import RunContext

FORECAST = "analytics.spend_forecast"
BACKTEST = "analytics.spend_forecast_backtest"
TOTAL = "all"


def origin_of(day: date) -> str:
    """The last complete month on ``day`` (the month before day's month, or day's month on its last day)."""
    nxt = day + timedelta(days=1)
    return month_of(day) if nxt.day == 1 else month_of(day.replace(day=1) - timedelta(days=1))


def monthly_spend(daily: pd.DataFrame, origin: str) -> pd.DataFrame:
    """department, month, spend of the complete months up to ``origin``, plus the MSP total (``all``)."""
    m = daily[daily["month"] <= origin].groupby(["department", "month"], as_index=False)["spend"].sum()
    total = m.groupby("month", as_index=False)["spend"].sum().assign(department=TOTAL)
    return pd.concat([m, total], ignore_index=True)[["department", "month", "spend"]]


def transform(monthly: pd.DataFrame, budgets: pd.DataFrame, origin: str, as_of: date, cfg: DsaSettings):
    from models.dsa.forecast import backtest, forecast

    levels = list(cfg.forecast_levels)
    fc = forecast(monthly, cfg.forecast_horizon_months, levels)
    if not fc.empty:
        b = latest_budgets(budgets, as_of)
        tot = b.groupby("month", as_index=False)["budget"].sum().assign(department=TOTAL)
        b = pd.concat([b[["department", "month", "budget"]], tot], ignore_index=True)
        fc = fc.merge(b, on=["department", "month"], how="left")
        fc["origin"] = origin
        fc["over_budget"] = fc["budget"].notna() & (fc["mean"] > fc["budget"])
    bt = backtest(monthly, cfg.backtest_origins, cfg.backtest_horizon_months, levels)
    if not bt.empty:
        bt["run_origin"] = origin
    return fc, bt


def run(ctx: RunContext) -> None:
    """Forecast from the last complete month, once per origin (see the module docstring)."""
    from lakehouse.lake import Range

    cfg: DsaSettings = ctx.config
    origin = origin_of(ctx.end)
    done = ctx.partition_values(FORECAST, "origin")
    if origin in done and not ctx.rebuild:
        ctx.count(FORECAST).notes.append(f"origin {origin} already forecast")
        return
    t = ctx.table(LEAVES, {"dt": Range(None, ctx.end.isoformat())})
    t = t.filter(t.source.isin(list(cfg.budget_sources)))
    daily = ctx.engine.to_pandas(t.group_by(["department", t.day.strftime("%Y-%m").name("month")])
                                  .aggregate(spend=t.cost.sum().cast("double")))
    if daily.empty:
        ctx.warn(f"no {LEAVES} yet: no forecast")
        return
    monthly = monthly_spend(daily, origin)
    if monthly["month"].nunique() < 2:
        ctx.warn(f"less than two complete months of spend by {origin}: no forecast (AWS: one billing cycle)")
        return
    budgets = ctx.read_pandas(BUDGETS, {"dt": Range(None, ctx.end.isoformat())})
    fc, bt = transform(monthly, budgets, origin, ctx.end, cfg)
    ctx.write(FORECAST, fc, replace=[{"origin": origin}])
    if not bt.empty:
        ctx.write(BACKTEST, bt, replace=[{"run_origin": origin}])

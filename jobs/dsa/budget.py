"""Budget vs actual per department and month, with AWS Budgets-style alerts, and ROI of the spend lines that
have a stated benefit.

Budget vs actual (``analytics.spend_budget_monthly``; DOMAIN.md section 5):

* **budget**: the latest approved version of the department's budget for the month known on the day computed
  (``processed.budgets``, change export: the highest ``updated_at`` per ``budget_id``);
* **actual**: BilledCost of the sources the budgets cover (``dsa.budget_sources``, default expenses and cloud)
  from the month's first day to the day computed (month to date; the whole month once it is over);
* **forecast to month end**: actual + the expected spend of the month's remaining days: the usage run-rate
  (mean daily usage spend of the last ``dsa.budget_forecast_days`` days, working days and weekends apart) for
  each remaining day, plus the recurring charges the department was billed last month after today's day of
  the month (subscriptions still to come). A complete month's forecast is its actual;
* **variance** = actual - budget and **variance %** = variance / budget x 100 (DOMAIN.md); the same of the
  forecast (``forecast_variance``);
* **alerts** as AWS Budgets: for each threshold of ``dsa.budget_alert_pct`` (e.g. 80 % of 200 USD is 160 USD),
  the highest threshold the actual spend has reached (``alert_actual_pct``) and the highest the forecasted
  spend reaches (``alert_forecast_pct``) [R65].

ROI (``analytics.spend_roi``): for each line of ``dsa.benefits`` (a vendor or a cloud service with a stated
monthly benefit), over the ``dsa.roi_months`` months ending with the month computed: cost = BilledCost of the
line, benefit = monthly benefit x months the line was paid, **ROI = (benefit - cost) / cost** and **payback =
cost / monthly benefit** (months), the standard definitions DOMAIN.md quotes.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from jobs.dsa.costs import LEAVES
from lakehouse.transforms import add_months, month_end, month_of, month_start

if TYPE_CHECKING:  # pragma: no cover
    from jobs.dsa.settings import DsaSettings
    from lakehouse.context import RunContext

BUDGET = "analytics.spend_budget_monthly"
ROI = "analytics.spend_roi"
BUDGETS = "processed.budgets"


def latest_budgets(budgets: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """The budget in force per department and month as known on ``as_of`` (latest version exported by then)."""
    if budgets.empty:
        return pd.DataFrame(columns=["department", "month", "budget", "budget_version"])
    b = budgets[budgets["dt"] <= as_of.isoformat()].copy()
    b = b.sort_values(["budget_id", "updated_at", "dt"]).groupby("budget_id").tail(1)
    b["month"] = [f"{int(y):04d}-{int(m):02d}" for y, m in zip(b["fiscal_year"], b["month"], strict=True)]
    b = b.sort_values(["department", "month", "updated_at"]).groupby(["department", "month"]).tail(1)
    return pd.DataFrame({"department": b["department"], "month": b["month"],
                         "budget": b["amount"].astype(float), "budget_version": b["version"].astype(int)})


def _weekend(d: date) -> bool:
    return d.weekday() >= 5


def month_rows(daily: pd.DataFrame, budgets: pd.DataFrame, month: str, as_of: date, cfg: DsaSettings) -> list[dict]:
    """One row per department for ``month`` as known on ``as_of`` (see the module docstring).

    ``daily``: day, department, recurring, cost (the budget sources' daily spend, up to ``as_of``)."""
    first, last = month_start(month), month_end(month)
    upto = min(as_of, last)
    b = latest_budgets(budgets, as_of)
    b = b[b["month"] == month]
    d = daily[(daily["day"] >= first) & (daily["day"] <= upto)]
    actual = d.groupby("department")["cost"].sum()
    # usage run-rate of the last N days, working days and weekends apart
    lo = upto - timedelta(days=cfg.budget_forecast_days - 1)
    recent = daily[(daily["day"] >= lo) & (daily["day"] <= upto) & (~daily["recurring"])]
    remaining = [upto + timedelta(days=i) for i in range(1, (last - upto).days + 1)]
    n_work = sum(1 for x in remaining if not _weekend(x))
    n_wkend = len(remaining) - n_work
    span = [lo + timedelta(days=i) for i in range(cfg.budget_forecast_days)]
    w_days = max(1, sum(1 for x in span if not _weekend(x)))
    e_days = max(1, len(span) - w_days)
    # recurring charges of the month before on later days of the month (subscriptions still to be billed)
    prev = add_months(month, -1)
    p_first, p_last = month_start(prev), month_end(prev)
    rec_prev = daily[(daily["day"] >= p_first) & (daily["day"] <= p_last) & daily["recurring"]
                     & (pd.to_datetime(daily["day"]).dt.day > upto.day)] if upto < last else daily.iloc[0:0]
    depts = sorted(set(b["department"]) | set(actual.index))
    out = []
    for dept in depts:
        act = float(actual.get(dept, 0.0))
        r = recent[recent["department"] == dept]
        weekend = r["day"].map(_weekend).astype(bool)  # a boolean Series: an empty list would select columns
        wk = r.loc[~weekend, "cost"].sum()
        we = r.loc[weekend, "cost"].sum()
        rec = float(rec_prev[rec_prev["department"] == dept]["cost"].sum()) if len(rec_prev) else 0.0
        forecast = act + (wk / w_days) * n_work + (we / e_days) * n_wkend + rec if remaining else act
        row = b[b["department"] == dept]
        budget = float(row["budget"].iloc[0]) if len(row) else None
        version = int(row["budget_version"].iloc[0]) if len(row) else None
        out.append(_row(dept, month, upto, last, budget, version, act, forecast, cfg))
    return out


def _row(dept, month, upto, last, budget, version, act, forecast, cfg) -> dict[str, Any]:
    def pct(x):
        return None if not budget else round(x / budget * 100.0, 2)

    def crossed(x):
        p = pct(x)
        hit = [t for t in cfg.budget_alert_pct if p is not None and p >= t]
        return max(hit) if hit else None

    complete = upto == last
    var = None if budget is None else round(act - budget, 2)
    fvar = None if budget is None else round(forecast - budget, 2)
    alert_a, alert_f = crossed(act), crossed(forecast)
    status = ("no_budget" if budget is None else "over_budget" if act > budget
              else "forecast_over_budget" if forecast > budget else "on_track")
    return {"department": dept, "month": month, "as_of": upto, "days_elapsed": upto.day,
            "days_in_month": calendar.monthrange(upto.year, upto.month)[1], "month_complete": complete,
            "budget": budget, "budget_version": version, "actual": round(act, 2),
            "actual_pct_of_budget": pct(act), "forecast_month_end": round(forecast, 2),
            "forecast_pct_of_budget": pct(forecast), "variance": var,
            "variance_pct": None if budget in (None, 0) else round((act - budget) / budget * 100.0, 2),
            "forecast_variance": fvar,
            "forecast_variance_pct": None if budget in (None, 0) else round((forecast - budget) / budget * 100.0, 2),
            "alert_actual_pct": alert_a, "alert_forecast_pct": alert_f, "status": status}


def roi_rows(monthly: pd.DataFrame, month: str, cfg: DsaSettings) -> list[dict[str, Any]]:
    """ROI and payback per benefit line over the ``roi_months`` ending with ``month``.

    ``monthly``: month, vendor, service, cost (all sources)."""
    first = add_months(month, -(cfg.roi_months - 1))
    w = monthly[(monthly["month"] >= first) & (monthly["month"] <= month)]
    out = []
    for b in cfg.benefits:
        sel = w[w[b.match] == b.line]
        by_month = sel.groupby("month")["cost"].sum()
        paid = by_month[by_month > 0]
        cost = float(paid.sum())
        months = len(paid)
        benefit = b.monthly_benefit * months
        out.append({"line": b.line, "match": b.match, "month": month, "months_paid": months,
                    "cost": round(cost, 2), "monthly_cost": round(cost / months, 2) if months else None,
                    "monthly_benefit": b.monthly_benefit, "benefit": round(benefit, 2),
                    "roi_pct": round((benefit - cost) / cost * 100.0, 2) if cost > 0 else None,
                    "payback_months": round(cost / b.monthly_benefit, 2) if cost > 0 else None,
                    "first_paid": paid.index.min() if months else None, "rationale": b.rationale})
    return out


def months_of_run(days: list[date]) -> dict[str, date]:
    """The months the run's days fall in → the day each is computed as of (the run's last day in it)."""
    out: dict[str, date] = {}
    for d in sorted(days):
        out[month_of(d)] = d
    return out


def run(ctx: RunContext) -> None:
    """Budget vs actual for the months of the run's days (as of the last run day in each), and ROI."""
    from lakehouse.lake import Range

    cfg: DsaSettings = ctx.config
    months = months_of_run(ctx.dates)
    first = month_start(add_months(min(months), -cfg.roi_months))
    t = ctx.table(LEAVES, {"dt": Range(first.isoformat(), ctx.end.isoformat())})
    daily = ctx.engine.to_pandas(
        t.filter(t.source.isin(list(cfg.budget_sources)))
         .group_by(["day", "department", "recurring"]).aggregate(cost=t.cost.sum().cast("double")))
    daily["day"] = pd.to_datetime(daily["day"]).dt.date
    monthly = ctx.engine.to_pandas(
        t.group_by([t.day.strftime("%Y-%m").name("month"), "vendor", "service"])
         .aggregate(cost=t.cost.sum().cast("double")))
    budgets = ctx.read_pandas(BUDGETS, {"dt": Range(None, ctx.end.isoformat())})
    rows, roi = [], []
    for m, as_of in months.items():
        rows += month_rows(daily, budgets, m, as_of, cfg)
        roi += roi_rows(monthly, m, cfg)
    replace = [{"month": m} for m in months]
    ctx.write(BUDGET, pd.DataFrame(rows, columns=BUDGET_COLUMNS), replace=replace)
    ctx.write(ROI, pd.DataFrame(roi, columns=ROI_COLUMNS), replace=replace)


BUDGET_COLUMNS = ["department", "month", "as_of", "days_elapsed", "days_in_month", "month_complete", "budget",
                  "budget_version", "actual", "actual_pct_of_budget", "forecast_month_end", "forecast_pct_of_budget",
                  "variance", "variance_pct", "forecast_variance", "forecast_variance_pct", "alert_actual_pct",
                  "alert_forecast_pct", "status"]
ROI_COLUMNS = ["line", "match", "month", "months_paid", "cost", "monthly_cost", "monthly_benefit", "benefit",
               "roi_pct", "payback_months", "first_paid", "rationale"]

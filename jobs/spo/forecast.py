"""Pipeline forecast stages: the weekly fit and backtest (``spo.forecast_train``) and the daily forecast
(``spo.forecast``).

The methods live in :mod:`models.spo.forecast`. The daily stage writes, for each run day, the month of the day
and the ``spo.forecast_months - 1`` months after it, by the Alga base rates, by Alga's stage-weighted forecast
(owner rates where earned) and, on the days on or after the promoted learned model's cut-off, by the learned
forecast (a model fitted later than a day would have seen that day's future: earlier days have their learned
forecast in the backtest instead).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.spo.common import ACTIVITY_COLUMNS, OPPORTUNITY_COLUMNS, current_model, first_export_day, read
from lakehouse.transforms import concat_frames

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from lakehouse.context import RunContext

OPPORTUNITIES = "processed.opportunities"
ACTIVITIES = "processed.activities"
FORECAST = "analytics.pipeline_forecast"
BACKTEST = "analytics.pipeline_backtest"
MONEY = ("expected_mrr", "low_mrr", "high_mrr", "won_mrr", "expected_one_time", "low_one_time", "high_one_time",
         "won_one_time")
FORECAST_COLUMNS = ("month", "horizon", "method", *MONEY, "open_deals", "won_deals", "calibrated_owners",
                    "model_version", "dt")
BACKTEST_COLUMNS = ("origin", "month", "horizon", "method", "expected_mrr", "low_mrr", "high_mrr", "actual_mrr",
                    "expected_one_time", "low_one_time", "high_one_time", "actual_one_time", "ape_mrr",
                    "ape_one_time", "covered_mrr", "covered_one_time", "trained_on")


def inputs(ctx: RunContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Opportunity versions and the deal activities exported up to the run's last day."""
    acts = read(ctx, ACTIVITIES, ctx.end, ACTIVITY_COLUMNS, where=lambda t: t.opportunity_id.notnull())
    return read(ctx, OPPORTUNITIES, ctx.end, OPPORTUNITY_COLUMNS), acts


def money(frame: pd.DataFrame, columns) -> pd.DataFrame:
    """Money columns as Decimals rounded to the cent (the declared decimal(14,2))."""
    from decimal import ROUND_HALF_UP, Decimal

    out = frame.copy()
    for c in columns:
        out[c] = [Decimal(str(round(float(v), 6))).quantize(Decimal("0.01"), ROUND_HALF_UP) for v in out[c]]
    return out


def forecast_rows(history: pd.DataFrame, acts: pd.DataFrame, days, cfg, learned=None, version: str | None = None,
                  ) -> pd.DataFrame:
    """The rows of ``analytics.pipeline_forecast`` for ``days`` (pure: deal history in, rows out)."""
    import pandas as pd

    from models.spo import forecast as F
    from models.spo import history as H

    frames = [F.stage_weighted_many(history, days, cfg.forecast_months, dict(cfg.stage_base_rates),
                                    cfg.owner_min_closed_deals).assign(model_version=None)]
    if learned is not None:
        p = cfg.learned_params()
        closed = F.closed_deals(history)
        for day in days:
            d = H.as_timestamp(day)
            if d < pd.Timestamp(learned.fitted_on):
                continue
            known = closed[closed["known_day"] <= d]
            rows, _ = F.learned(learned, F.state_on(history, d), d, F.forecast_months(d, cfg.forecast_months), known,
                                sims=p["sims"], band=p["band"], seed=p["seed"], lookback_days=p["lookback_days"],
                                origin_every=p["origin_every"], activities=acts)
            frames.append(rows.assign(day=d, method="learned", horizon=range(1, len(rows) + 1),
                                      calibrated_owners=None, model_version=version))
    rows = concat_frames(frames)  # the baseline rows have no model version
    rows["dt"] = pd.to_datetime(rows["day"]).dt.strftime("%Y-%m-%d")
    rows["calibrated_owners"] = pd.to_numeric(rows["calibrated_owners"]).astype("Int32")
    rows = money(rows, MONEY).sort_values(["dt", "method", "horizon"], kind="mergesort")
    return rows[list(FORECAST_COLUMNS)].reset_index(drop=True)


def run(ctx: RunContext) -> None:
    """Forecast bookings on each run day."""
    from models.spo import forecast as F

    cfg = ctx.config
    opps, acts = inputs(ctx)
    version, learned = current_model(ctx, F.MODEL_NAME)
    history = F.deal_history(opps) if len(opps) else None
    if history is None:
        import pandas as pd

        rows = pd.DataFrame(columns=list(FORECAST_COLUMNS))
    else:
        rows = forecast_rows(history, F.activity_days(acts), ctx.dates, cfg, learned, version)
    if learned is None:
        ctx.warn("no promoted learned pipeline forecast yet (spo.forecast_train): stage-weighted forecasts only")
    ctx.write(FORECAST, rows, replace=ctx.date_partitions())


def train_stage(ctx: RunContext) -> None:
    """Backtest the three methods on monthly origins, fit the learned forecast as of the run's last day, and
    promote it when it beats Alga's stage-weighted forecast on the backtest (WAPE of the MRR)."""
    import pandas as pd

    from lakehouse.model_registry import ModelRegistry, make_version
    from models.spo import forecast as F

    cfg = ctx.config
    opps, acts = inputs(ctx)
    first = first_export_day(opps)
    if first is None:
        ctx.warn("pipeline forecast not trained: no opportunities exported yet")
        return
    p = cfg.learned_params()
    first_origin = pd.Timestamp(first) + pd.DateOffset(months=cfg.backtest_first_origin_months)
    rows = F.backtest(opps, first_origin=first_origin, last_day=ctx.end, months_ahead=cfg.forecast_months,
                      base_rates=dict(cfg.stage_base_rates), min_closed_deals=cfg.owner_min_closed_deals,
                      learned_params=p, activities=acts)
    if rows.empty:
        ctx.warn(f"pipeline forecast not backtested: no origin from {first_origin.date()} has "
                 f"{cfg.forecast_months} complete months by {ctx.end}")
        ctx.write(BACKTEST, pd.DataFrame(columns=list(BACKTEST_COLUMNS)))
        return
    rows = rows.assign(trained_on=ctx.end)
    ctx.write(BACKTEST, money(rows, [c for c in BACKTEST_COLUMNS if c.startswith(("expected", "low", "high",
                                                                                  "actual"))])[list(BACKTEST_COLUMNS)])
    summary = F.summarize(rows)
    history = F.deal_history(opps)
    model = F.fit_learned(history, F.closed_deals(history), pd.Timestamp(ctx.end) + pd.Timedelta(days=1),
                          snapshot_every=p["snapshot_every"], c=p["c"], activities=F.activity_days(acts))
    model.fitted_on = ctx.end.isoformat()
    by = summary.set_index("method")
    metrics = {k: (None if pd.isna(v) else v) for k, v in by.loc["learned"].items()}
    metrics["baseline"] = {k: (None if pd.isna(v) else v) for k, v in by.loc["stage_weighted"].items()}
    metrics["base_rates"] = {k: (None if pd.isna(v) else v) for k, v in by.loc["base_rates"].items()}
    registry = ModelRegistry(ctx.lake, F.MODEL_NAME)
    version = make_version(ctx.end, rows, p, list(F.WIN_NUMERIC))
    card = {"intended_use": "Expected bookings per month with an 80 % band, beside Alga's stage-weighted forecast.",
            "data": f"rolling monthly origins from {first_origin.date()} to {ctx.end}; {len(rows)} forecast rows",
            "baseline": "Alga PSA's stage-weighted forecast: base rates, owner rates after "
                        f"{cfg.owner_min_closed_deals} closed deals; band floor = won + verbal, ceiling = floor + "
                        "weighted rest.",
            "limitations": "A few dozen deals a year: monthly bookings are lumpy and a month with no booking has no "
                           "percentage error (counted as zero_months)."}
    registry.save(model, version=version, metrics=metrics, primary_metric="wape_mrr", params=p,
                  features=list(F.WIN_NUMERIC), training_data=rows, higher_is_better=False, card=card,
                  extra={"summary": summary.to_dict("records")})
    learned_wape, base_wape = metrics.get("wape_mrr"), metrics["baseline"].get("wape_mrr")
    better = learned_wape is not None and (base_wape is None or learned_wape < base_wape)
    note = (f"{F.MODEL_NAME} {version}: backtest WAPE (MRR) learned {learned_wape} vs stage-weighted {base_wape}")
    if better:
        registry.promote(version, reason=f"beats the stage-weighted forecast on the backtest: {note}")
    ctx.count(f"ml-models.{F.MODEL_NAME}").notes.append(note + ("; promoted" if better else "; not promoted"))

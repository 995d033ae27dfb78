"""The monthly client margin report: margin tiers, problem clients, warning flags and the next step.

Rules (DOMAIN.md section 1; every threshold from ``[cpi]``):

* **margin tier**: ``cpi.tier_names`` by the lower bounds ``cpi.tier_bounds`` (default ≥ 60 % gold,
  40-59 silver, 20-39 bronze, < 20 at_risk [R21]); no tier when the month billed less than
  ``cpi.min_billed_for_margin`` (a margin of nothing means nothing).
* **problem client**: ``cpi.problem_months`` consecutive calendar months under the lowest bound [R21].
* **margin_forecast_next_pct**: DOMAIN's margin forecast baseline, the mean of the last 3 months' margins.
* flags: EHR under ``cpi.ehr_target``; RHEM over ``cpi.rhem_target`` [R9]; paying more than
  ``cpi.days_late_grace`` days after the due date on average (DOMAIN's "days-late > net_terms + 15" counts
  from the invoice date: days after due = days to pay − net_terms); a ticket surge when the month's tickets
  exceed the mean of the 3 months before by more than ``cpi.ticket_surge_pct`` %.
* **suggested_action**: DOMAIN's "Alerts/decisions" for whichever flags are up.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from jobs.checks import publish
from jobs.common import to_rebuild
from jobs.cpi.config import CpiConfig
from jobs.cpi.lifecycle import TABLE as LIFECYCLE
from jobs.cpi.profitability import CLIENT_TABLE
from lakehouse.stages import stage

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

    from lakehouse.context import RunContext

TABLE = "analytics.client_margin_report"

ACTIONS = {
    "problem": "Reprice, rescope or add exclusions to the agreement: margin under {low:g}% for {n} months running",
    "ehr": "Review over-consumption: effective hourly rate under the {ehr:g} USD/h target",
    "rhem": "Plan proactive fixes for repeat issues: reactive hours per endpoint over {rhem:g}",
    "late": "Follow up on payments: paying more than {grace} days after the due date",
    "surge": "Find the cause of the ticket surge before it erodes the margin",
}


def tier_col(margin: Column, billed: Column, cfg: CpiConfig) -> Column:
    """The tier name of a margin (null without a meaningful margin)."""
    from pyspark.sql import functions as F

    expr = None
    for bound, name in zip(cfg.tier_bounds, cfg.tier_names, strict=False):
        expr = (F.when(margin >= bound, name) if expr is None else expr.when(margin >= bound, name))
    expr = expr.otherwise(cfg.tier_names[-1])
    return F.when(margin.isNull() | (billed < cfg.min_billed_for_margin), F.lit(None)).otherwise(expr)


def tier_rank_col(tier: Column, cfg: CpiConfig) -> Column:
    from pyspark.sql import functions as F

    expr = None
    for i, name in enumerate(cfg.tier_names):
        expr = F.when(tier == name, i) if expr is None else expr.when(tier == name, i)
    return expr


def transform(profit: DataFrame, lifecycle: DataFrame, months: Iterable[str], cfg: CpiConfig) -> DataFrame:
    """Report rows for ``months`` from the client's whole monthly history (streaks and trends need it)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    df = profit.withColumn("_idx", F.substring("month", 1, 4).cast("int") * 12 + F.substring("month", 6, 2)
                           .cast("int"))
    w = Window.partitionBy("client_id").orderBy("_idx")
    prev_ok = (F.lag("_idx").over(w) == F.col("_idx") - 1)

    def prev(c: str) -> Column:
        return F.when(prev_ok, F.lag(c).over(w))

    df = df.withColumn("margin_tier", tier_col(F.col("margin_pct"), F.col("billed"), cfg))
    df = df.withColumn("_rank", tier_rank_col(F.col("margin_tier"), cfg))
    df = df.select("*", prev("margin_pct").alias("prev_margin_pct"), prev("margin_tier").alias("prev_tier"),
                   prev("_rank").alias("_prev_rank"), prev("labour_hours").alias("_prev_hours"))
    below = F.col("margin_tier").isNotNull() & (F.col("margin_pct") < cfg.lowest_bound)
    df = df.withColumn("_below", below)
    # a streak breaks on a month not below the bound, or on a gap in the months
    brk = (~F.col("_below")) | ~F.coalesce(prev_ok & F.lag("_below").over(w), F.lit(False))
    df = df.withColumn("_grp", F.sum(brk.cast("int")).over(w.rowsBetween(Window.unboundedPreceding, 0)))
    streak = F.when(F.col("_below"), F.row_number().over(Window.partitionBy("client_id", "_grp").orderBy("_idx")))
    df = df.withColumn("months_below_lowest", F.coalesce(streak, F.lit(0)).cast("int"))
    last3 = w.rangeBetween(-2, 0)
    before3 = w.rangeBetween(-3, -1)
    df = df.select(
        "*",
        F.round(F.avg("margin_pct").over(last3), 2).cast("decimal(12,2)").alias("margin_forecast_next_pct"),
        F.round(F.avg("tickets").over(before3), 2).alias("tickets_prev3_avg"))
    change = (F.col("margin_pct") - F.col("prev_margin_pct")).cast("decimal(12,2)")
    tier_change = (F.when(F.col("margin_tier").isNull(), F.lit(None))
                   .when(F.col("prev_tier").isNull(), "new")
                   .when(F.col("_rank") > F.col("_prev_rank"), "down")
                   .when(F.col("_rank") < F.col("_prev_rank"), "up").otherwise("same"))
    hours_change = F.when(F.col("_prev_hours") > 0, F.round(
        (F.col("labour_hours") - F.col("_prev_hours")) * 100 / F.col("_prev_hours"), 1).cast("double"))
    surge = (F.col("tickets_prev3_avg") > 0) & (
        F.col("tickets") > F.col("tickets_prev3_avg") * (1 + cfg.ticket_surge_pct / 100))
    df = df.select(
        "*", change.alias("margin_change_pp"), tier_change.alias("tier_change"),
        hours_change.alias("labour_hours_change_pct"),
        (F.col("months_below_lowest") >= cfg.problem_months).alias("problem_client"),
        F.coalesce(F.col("effective_hourly_rate") < cfg.ehr_target, F.lit(False)).alias("ehr_below_target"),
        F.coalesce(F.col("rhem") > cfg.rhem_target, F.lit(False)).alias("rhem_above_target"),
        F.coalesce(F.col("avg_days_late") > cfg.days_late_grace, F.lit(False)).alias("late_payer"),
        F.coalesce(surge, F.lit(False)).alias("ticket_surge"))
    texts = [
        F.when(F.col("problem_client"), F.lit(ACTIONS["problem"].format(low=cfg.lowest_bound, n=cfg.problem_months))),
        F.when(F.col("ehr_below_target"), F.lit(ACTIONS["ehr"].format(ehr=cfg.ehr_target))),
        F.when(F.col("rhem_above_target"), F.lit(ACTIONS["rhem"].format(rhem=cfg.rhem_target))),
        F.when(F.col("late_payer"), F.lit(ACTIONS["late"].format(grace=cfg.days_late_grace))),
        F.when(F.col("ticket_surge"), F.lit(ACTIONS["surge"])),
    ]
    action = F.concat_ws("; ", *texts)
    df = df.withColumn("suggested_action", F.when(action != "", action))
    names = lifecycle.select("client_id", "client_name", "client_type")
    return df.where(F.col("month").isin(sorted(set(months)))).join(names, "client_id", "left")


@stage("cpi.margin_report", agent="cpi", reads=(CLIENT_TABLE, LIFECYCLE), writes=(TABLE,))
def run(ctx: RunContext) -> None:
    """Margin tiers, problem clients (N months under the lowest tier), flags and suggested actions."""
    months = to_rebuild(ctx, CLIENT_TABLE, TABLE)
    if not months:
        return
    cfg = CpiConfig.from_settings(ctx.settings)
    report = transform(ctx.read(CLIENT_TABLE), ctx.read(LIFECYCLE), months, cfg)
    publish(ctx, TABLE, report, replace=[{"month": m} for m in months])

"""The daily CPI summary: where each client's month stands today, and who over-consumes.

For each run day and each client with work or billing that month: the day's hours and tickets, the
month-to-date labour hours, cost, reactive hours and tickets, the month's billed revenue (as known), and a
straight-line projection to month end (month-to-date × days in month / days elapsed). From the projection:

* **projected_margin_pct** = (billed − addition_cost − projected labour cost) / billed × 100;
* **projected_ehr** = (billed − deduction) / projected hours (``cpi.deduction_basis``);
* **consumption_quintile**: clients ranked by projected hours per billed dollar, 1 = the fifth that
  consumes most: DOMAIN.md section 1's "Quintile 1 over-utilizers" mid-month view [R7];
  **over_utilizer** = quintile 1 and projected EHR under ``cpi.ehr_target``.

Today's churn risk from ``analytics.churn`` is attached when it was scored.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from jobs.checks import publish
from jobs.common import latest, month_of, month_start, read_as_of
from jobs.cpi.churn import PREDICTIONS
from jobs.cpi.config import CpiConfig
from jobs.cpi.profitability import CLIENT_TABLE, costed_time
from lakehouse.stages import stage

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

    from lakehouse.context import RunContext

TABLE = "analytics.cpi_daily_summary"
TIME = "processed.time_entries"
RATES = "processed.technician_cost_rates"
TICKETS = "processed.tickets"


def transform(time_entries: DataFrame, cost_rates: DataFrame, tickets: DataFrame, profit: DataFrame,
              churn: DataFrame, days: list[date], cfg: CpiConfig) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    spark = time_entries.sparkSession
    first, last = month_start(month_of(min(days))), max(days)
    te = costed_time(time_entries.where(F.col("work_date").between(first, last)), cost_rates)
    work = te.groupBy("client_id", F.col("work_date").alias("day")).agg(
        F.sum("hours").alias("hours"), F.sum(F.col("hours") * F.col("cost_rate")).alias("cost"),
        F.sum(F.when(F.col("work_type").isin(*cfg.reactive_work_types), F.col("hours"))).alias("reactive"))
    opened = tickets.withColumn("day", F.to_date("created_at")).where(F.col("day").between(first, last)).groupBy(
        "client_id", "day").agg(F.count("*").alias("opened"))
    activity = work.join(opened, ["client_id", "day"], "full")
    n_days = (last - first).days + 1
    cal = spark.createDataFrame([(first + timedelta(days=i),) for i in range(n_days)],
                                T.StructType([T.StructField("day", T.DateType(), False)]))
    months = sorted({month_of(first + timedelta(days=i)) for i in range(n_days)})
    billed = profit.where(F.col("month").isin(months)).select(
        "client_id", "month", F.col("billed").alias("month_billed"),
        F.col("addition_cost").alias("month_addition_cost"), "addition_retail")
    clients = activity.select("client_id").union(billed.select("client_id")).distinct()
    grid = clients.crossJoin(cal).withColumn("month", F.date_format("day", "yyyy-MM"))
    g = grid.join(activity, ["client_id", "day"], "left")
    w = Window.partitionBy("client_id", "month").orderBy("day").rowsBetween(Window.unboundedPreceding, 0)
    g = g.select("client_id", "day", "month",
                 F.coalesce("hours", F.lit(0)).cast("decimal(12,2)").alias("labour_hours_day"),
                 F.coalesce("opened", F.lit(0)).cast("long").alias("tickets_opened_day"),
                 F.coalesce(F.sum("hours").over(w), F.lit(0)).cast("decimal(12,2)").alias("mtd_labour_hours"),
                 F.round(F.coalesce(F.sum("cost").over(w), F.lit(0)), 2).cast("decimal(14,2)").alias("mtd_labour_cost"),
                 F.coalesce(F.sum("reactive").over(w), F.lit(0)).cast("decimal(12,2)").alias("mtd_reactive_hours"),
                 F.coalesce(F.sum("opened").over(w), F.lit(0)).cast("long").alias("mtd_tickets"))
    g = g.where(F.col("day").isin(sorted(set(days)))).join(billed, ["client_id", "month"], "left")
    g = g.where((F.col("mtd_labour_hours") > 0) | (F.col("mtd_tickets") > 0) | F.col("month_billed").isNotNull())
    elapsed = F.dayofmonth("day")
    length = F.dayofmonth(F.last_day("day"))
    scale = length / elapsed
    g = g.withColumn("projected_labour_hours", F.round(F.col("mtd_labour_hours") * scale, 2).cast("decimal(12,2)"))
    g = g.withColumn("projected_labour_cost", F.round(F.col("mtd_labour_cost") * scale, 2).cast("decimal(14,2)"))
    deduction = {"none": F.lit(0), "cost": F.col("month_addition_cost"), "retail": F.col("addition_retail")}[
        cfg.deduction_basis]
    has_billed = F.col("month_billed") > 0
    g = g.withColumn("projected_margin_pct", F.when(has_billed, F.round(
        (F.col("month_billed") - F.col("month_addition_cost") - F.col("projected_labour_cost")) * 100
        / F.col("month_billed"), 2)).cast("decimal(12,2)"))
    g = g.withColumn("projected_ehr", F.when(F.col("projected_labour_hours") > 0, F.round(
        (F.coalesce(F.col("month_billed"), F.lit(0)) - F.coalesce(deduction, F.lit(0)))
        / F.col("projected_labour_hours"), 2)).cast("decimal(14,2)"))
    usage = F.when(has_billed, F.col("projected_labour_hours") / F.col("month_billed"))
    ranked = g.where(usage.isNotNull()).withColumn(
        "consumption_quintile",
        F.ntile(5).over(Window.partitionBy("day").orderBy(usage.desc(), F.col("client_id")))).select(
        "client_id", "day", "consumption_quintile")
    g = g.join(ranked, ["client_id", "day"], "left")
    g = g.withColumn("over_utilizer", F.coalesce(
        (F.col("consumption_quintile") == 1) & (F.col("projected_ehr") < cfg.ehr_target), F.lit(False)))
    risk = churn.select("client_id", F.to_date("dt").alias("day"), "churn_probability", "risk_band")
    g = g.join(risk, ["client_id", "day"], "left")
    return g.withColumn("dt", F.date_format("day", "yyyy-MM-dd")).drop("day", "addition_retail")


@stage("cpi.daily_summary", agent="cpi", reads=(TIME, RATES, TICKETS, CLIENT_TABLE, PREDICTIONS), writes=(TABLE,))
def run(ctx: RunContext) -> None:
    """Month-to-date hours, cost and tickets per client, projected margin and EHR, over-utilizers."""
    cfg = CpiConfig.from_settings(ctx.settings)
    since = month_start(month_of(ctx.start))
    te = latest(read_as_of(ctx, TIME, ctx.end, since), ["time_entry_id"], order=("created_at",))
    tickets = latest(read_as_of(ctx, TICKETS, ctx.end, since), ["ticket_id"])
    rates = latest(read_as_of(ctx, RATES, ctx.end), ["cost_rate_id"])
    out = transform(te, rates, tickets, ctx.read(CLIENT_TABLE), ctx.read(PREDICTIONS, [f"dt={d}" for d in ctx.dates]),
                    ctx.dates, cfg)
    publish(ctx, TABLE, out, replace=ctx.date_partitions())

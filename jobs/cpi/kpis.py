"""MSP-level KPIs per month (DOMAIN.md section 1, "Metrics & formulas").

* **mrr** = Σ clients' MRR (recurring and addition lines normalised to monthly); **arr** = 12 × MRR [R12];
  **mrr_share_pct** = MRR / billed × 100 (DOMAIN's "MRR % of revenue" = MRR × 12 / annual revenue, taken
  per month).
* **gross_margin_pct** = Σ profit / Σ billed × 100 over all clients (benchmarks: 46.2 % average managed
  services GM [R13], 45-50 % disciplined MSPs [R16]).
* **avg_ehr** = (Σ billed − Σ deduction) / Σ labour hours: the hours-weighted average effective hourly rate
  (a plain mean of client rates would let a client with 1 hour weigh like one with 200);
  ``cpi.deduction_basis`` as for each client.
* **logo_churn_pct** = clients whose service ended in the month / clients served on the month's first day
  × 100 [R12], from ``processed.client_lifecycle``.
* **rhem** = Σ reactive hours / Σ endpoints; **tickets_per_endpoint** likewise [R9][R10].
* tier counts and problem clients come from the margin report of the same month.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from jobs.checks import publish
from jobs.common import months_frame, to_rebuild
from jobs.cpi.config import CpiConfig
from jobs.cpi.lifecycle import TABLE as LIFECYCLE
from jobs.cpi.margin_report import TABLE as REPORT
from jobs.cpi.profitability import CLIENT_TABLE
from lakehouse.stages import stage

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

    from lakehouse.context import RunContext

TABLE = "analytics.cpi_kpis_monthly"


def transform(profit: DataFrame, report: DataFrame, lifecycle: DataFrame, months: Iterable[str],
              cfg: CpiConfig) -> DataFrame:
    from pyspark.sql import functions as F

    months = sorted(set(months))
    spark = profit.sparkSession
    p = profit.where(F.col("month").isin(months))
    deduction = {"none": F.lit(0), "cost": F.col("addition_cost"), "retail": F.col("addition_retail")}[
        cfg.deduction_basis]
    money = "decimal(16,2)"
    agg = p.groupBy("month").agg(
        F.sum("mrr").cast(money).alias("mrr"), F.sum("billed").cast(money).alias("billed"),
        F.sum("addition_cost").cast(money).alias("addition_cost"),
        F.sum("labour_cost").cast(money).alias("labour_cost"), F.sum("profit").cast(money).alias("gross_profit"),
        F.sum("labour_hours").cast("decimal(14,2)").alias("labour_hours"),
        F.sum("reactive_hours").alias("_reactive"), F.sum("endpoints").alias("_endpoints"),
        F.sum("tickets").alias("tickets"), F.sum(F.col("billed") - deduction).alias("_ehr_num"),
        F.sum("uncosted_hours").cast("decimal(14,2)").alias("uncosted_hours"),
        F.bool_and("month_final").alias("month_final"),
        F.median("margin_pct").cast("decimal(12,2)").alias("median_client_margin_pct"))

    def ratio(num, den, scale=2, type_="decimal(12,2)"):
        return F.when(den > 0, F.round(num / den, scale)).cast(type_)

    agg = agg.select(
        "month", "mrr", (F.col("mrr") * 12).cast(money).alias("arr"), "billed", "addition_cost", "labour_cost",
        "gross_profit", ratio(F.col("gross_profit") * 100, F.col("billed")).alias("gross_margin_pct"),
        ratio(F.col("mrr") * 100, F.col("billed")).alias("mrr_share_pct"),
        "labour_hours", "uncosted_hours", ratio(F.col("_ehr_num"), F.col("labour_hours"), 2, "decimal(14,2)")
        .alias("avg_ehr"),
        ratio(F.col("_reactive").cast("double"), F.col("_endpoints"), 4, "double").alias("rhem"),
        "tickets", ratio(F.col("tickets").cast("double"), F.col("_endpoints"), 4, "double")
        .alias("tickets_per_endpoint"),
        "median_client_margin_pct", "month_final")

    cal = months_frame(spark, months)
    lc = lifecycle.where(F.col("service_start").isNotNull()).crossJoin(cal)
    ended = F.col("service_end").isNotNull() & (F.col("service_end") <= F.col("as_of"))
    served_at_start = (F.col("service_start") <= F.col("month_start")) & (
        F.col("service_end").isNull() | (F.col("service_end") >= F.col("month_start")))
    served_in = (F.col("service_start") <= F.col("month_end")) & (
        F.col("service_end").isNull() | (F.col("service_end") >= F.col("month_start")))
    churned = ended & F.col("service_end").between(F.col("month_start"), F.col("month_end"))
    logos = lc.groupBy("month").agg(
        F.sum(served_at_start.cast("int")).cast("long").alias("clients_at_start"),
        F.sum(served_in.cast("int")).cast("long").alias("active_clients"),
        F.sum(F.col("service_start").between(F.col("month_start"), F.col("month_end")).cast("int")).cast("long")
        .alias("new_clients"),
        F.sum(churned.cast("int")).cast("long").alias("churned_clients"))
    logos = logos.withColumn("logo_churn_pct", ratio(F.col("churned_clients") * 100.0, F.col("clients_at_start"),
                                                     2, "decimal(9,2)"))
    r = report.where(F.col("month").isin(months))
    per_tier = r.where(F.col("margin_tier").isNotNull()).groupBy("month", "margin_tier").agg(
        F.count("*").cast("long").alias("n"))
    tiers = r.select("month").distinct().join(
        per_tier.groupBy("month").agg(F.to_json(F.map_from_entries(F.sort_array(
            F.collect_list(F.struct("margin_tier", "n"))))).alias("clients_by_tier")), "month", "left").join(
        r.groupBy("month").agg(
            F.sum(F.col("problem_client").cast("int")).cast("long").alias("problem_clients"),
            F.sum((F.col("margin_tier") == cfg.tier_names[-1]).cast("int")).cast("long")
            .alias("clients_lowest_tier")), "month")
    out = cal.select("month").join(agg, "month", "left").join(logos, "month", "left").join(tiers, "month", "left")
    zero = ["clients_at_start", "active_clients", "new_clients", "churned_clients", "problem_clients",
            "clients_lowest_tier", "tickets"]
    return out.fillna(0, subset=zero).fillna({"month_final": False})


@stage("cpi.kpis", agent="cpi", reads=(CLIENT_TABLE, REPORT, LIFECYCLE), writes=(TABLE,))
def run(ctx: RunContext) -> None:
    """MSP KPIs per month: MRR, ARR, gross margin, logo churn, average EHR, RHEM, tier counts."""
    months = to_rebuild(ctx, CLIENT_TABLE, TABLE)
    if not months:
        return
    cfg = CpiConfig.from_settings(ctx.settings)
    out = transform(ctx.read(CLIENT_TABLE), ctx.read(REPORT), ctx.read(LIFECYCLE), months, cfg)
    publish(ctx, TABLE, out, replace=[{"month": m} for m in months])


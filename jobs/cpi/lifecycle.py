"""Where each client stands in its relationship with the MSP: since when it is served, whether it gave
notice, when its service ends. One row per client, as known on the run day.

A client's agreements decide (DOMAIN.md section 0: ``contracts`` status, end_date, notice): an agreement
is *ending* when it is ``notice_given`` or ``terminated`` (or carries a notice date). A client whose every
agreement is ending has churned on the last end date (logo churn, [R12]); it gave notice on the latest
notice date among them. A client with at least one agreement not ending is active. Used by the KPIs
(logo churn) and by the churn model's labels (the client ends its agreement within the horizon).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from jobs.checks import publish
from jobs.common import latest, read_as_of
from lakehouse.stages import stage

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

    from lakehouse.context import RunContext

TABLE = "processed.client_lifecycle"
AGREEMENTS = "processed.agreements"
CLIENTS = "processed.clients"


def transform(agreements: DataFrame, clients: DataFrame, as_of: date) -> DataFrame:
    """One row per client from the latest state of its agreements and of the client record."""
    from pyspark.sql import functions as F

    a = latest(agreements, ["agreement_id"])
    ending = F.col("status").isin("notice_given", "terminated") | F.col("notice_date").isNotNull()
    a = a.withColumn("_ending", ending)
    per_client = a.groupBy("client_id").agg(
        F.min("start_date").alias("service_start"),
        F.count("*").cast("int").alias("agreements"),
        F.sum(F.when(~F.col("_ending"), 1).otherwise(0)).cast("int").alias("open_agreements"),
        F.max(F.when(F.col("_ending"), F.coalesce("end_date", "notice_date"))).alias("_last_end"),
        F.max(F.when(F.col("_ending"), F.col("notice_date"))).alias("_last_notice"),
        F.sum(F.when(~F.col("_ending"), F.col("mrr")).otherwise(0)).cast("decimal(14,2)").alias("contracted_mrr"),
    )
    all_ending = F.col("open_agreements") == 0
    per_client = per_client.select(
        "client_id", "service_start", "agreements", "open_agreements", "contracted_mrr",
        F.when(all_ending, F.col("_last_notice")).alias("notice_date"),
        F.when(all_ending, F.col("_last_end")).alias("service_end"))
    status = (F.when(F.col("service_end").isNull(), "active")
              .when(F.col("service_end") <= F.lit(as_of), "churned").otherwise("notice_given"))
    c = latest(clients, ["client_id"]).select(
        "client_id", "client_name", "client_type", "industry", "employee_count", "net_terms",
        F.col("billing_cycle").alias("client_billing_cycle"), F.to_date("created_at").alias("created_date"))
    return (c.join(per_client, "client_id", "left")
            .withColumn("agreements", F.coalesce("agreements", F.lit(0)))
            .withColumn("open_agreements", F.coalesce("open_agreements", F.lit(0)))
            .withColumn("status", F.when(F.col("agreements") == 0, "prospect").otherwise(status))
            .withColumn("as_of", F.lit(as_of)))


@stage("cpi.lifecycle", agent="cpi", reads=(AGREEMENTS, CLIENTS), writes=(TABLE,))
def run(ctx: RunContext) -> None:
    """Client service start, notice and end dates from agreements (who is active, who is leaving)."""
    as_of = ctx.end
    publish(ctx, TABLE, transform(read_as_of(ctx, AGREEMENTS, as_of), read_as_of(ctx, CLIENTS, as_of), as_of),
              replace=[{}])

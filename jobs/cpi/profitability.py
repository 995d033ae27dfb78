"""Profitability per client and month, and per agreement and month.

Formulas (DOMAIN.md section 1, MSPbots "Agreement Profitability" [R5]); a month is a calendar month:

* **billed** = Σ invoice line ``amount`` (= quantity × unit_price), each line spread evenly over the
  calendar months of its service period (annual agreements therefore count /12 per month, as [R5] shows
  them); ``one_time`` lines count in the month of ``service_period_start``; lines of voided invoices are
  excluded. A spread that does not divide to the cent gives the remainder to the first month, so months
  always add up to the line amount exactly.
* **addition_cost** = Σ quantity × unit_cost of the agreement additions active in the month (pass-through
  tools and licences bundled in the agreement); **addition_retail** = Σ quantity × unit_price of the same.
* **labour_hours** = Σ time entry hours by work date, billable or not; **labour_cost** = Σ hours × the
  technician's burdened cost rate effective on the work date (Alga ``user_cost_rates``), rounded half-up to
  the cent once per row of output. Hours with no cost rate are ``uncosted_hours`` (Alga's
  ``uncostedMinutes`` data-quality flag) and cost nothing.
* **profit** = billed − (addition_cost + labour_cost); **margin_pct** = profit / billed × 100 (null when
  billed is 0).
* **effective_hourly_rate** = (billed − deduction) / labour_hours, deduction by ``cpi.deduction_basis``:
  ``cost`` = addition_cost (MSPbots, default), ``retail`` = addition_retail (MSPCFO [R6]), ``none`` = 0
  (Alga: revenue per hour). **contribution_rate** = profit / labour_hours. Both null without hours.
* **mrr** = the month's share of recurring and addition lines (recurring lines normalised to monthly).
* **rhem** = reactive hours / endpoints, where reactive hours are time on ``cpi.reactive_work_types``
  (ticket work: reactive and onsite) and endpoints the mean of the month's daily managed-endpoint counts;
  **tickets_per_endpoint** = tickets opened in the month / endpoints [R9][R10].
* **avg_days_late** = amount-weighted mean of (payment_date − invoice due_date) over the month's payments
  (negative: paid early) [R1]; **csat_avg** = mean 1-5 rating of tickets closed in the month.

Agreement rows use the same formulas on the rows that name the agreement; endpoints are counted per client,
so an agreement's RHEM uses its client's endpoints. Agreement rows also carry **target_hours**, DOMAIN's
"Target Hours" budget: the hours the agreement can use and still reach ``cpi.target_margin_pct``,
((1 − target margin) × billed − addition_cost) / average cost per labour hour. DOMAIN writes the bracket as
[target margin % − addition costs / billed] × billed, which only reads as a labour budget when its
"target margin %" is the share of revenue allowed for costs, i.e. 1 − target margin; we use that reading.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from jobs.checks import publish
from jobs.common import (
    first_export_day,
    latest,
    month_col,
    month_of,
    months_between,
    months_frame,
    read_as_of,
)
from jobs.cpi.config import CpiConfig
from lakehouse.stages import stage

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

    from lakehouse.context import RunContext

CLIENT_TABLE = "processed.client_profitability_monthly"
AGREEMENT_TABLE = "processed.agreement_profitability_monthly"
INPUTS = {
    "invoices": "processed.invoices",
    "invoice_lines": "processed.invoice_lines",
    "additions": "processed.agreement_additions",
    "time_entries": "processed.time_entries",
    "cost_rates": "processed.technician_cost_rates",
    "tickets": "processed.tickets",
    "payments": "processed.payments",
    "endpoints": "processed.managed_endpoints",
}
#: Inputs exported on the day of the event they record (work date, payment date, snapshot date,
#: ticket creation/closing): a run only needs their partitions from the first month it recomputes.
EVENT_INPUTS = ("time_entries", "tickets", "payments", "endpoints")
MONEY = "decimal(14,2)"


@dataclass
class ProfitabilityInputs:
    """The processed inputs, each in the latest state known on the run day (see :func:`prepare`)."""

    invoices: DataFrame
    invoice_lines: DataFrame
    additions: DataFrame
    time_entries: DataFrame
    cost_rates: DataFrame
    tickets: DataFrame
    payments: DataFrame
    endpoints: DataFrame


def prepare(raw: dict[str, DataFrame]) -> ProfitabilityInputs:
    """Latest version of every record (change exports keep one row per change; immutable exports may
    still repeat a row, e.g. a re-sent file): one row per primary key."""
    return ProfitabilityInputs(
        invoices=latest(raw["invoices"], ["invoice_id"]),
        invoice_lines=latest(raw["invoice_lines"], ["invoice_line_id"], order=("created_at",)),
        additions=latest(raw["additions"], ["addition_id"]),
        time_entries=latest(raw["time_entries"], ["time_entry_id"], order=("created_at",)),
        cost_rates=latest(raw["cost_rates"], ["cost_rate_id"]),
        tickets=latest(raw["tickets"], ["ticket_id"]),
        payments=latest(raw["payments"], ["payment_id"], order=("created_at",)),
        endpoints=latest(raw["endpoints"], ["client_id", "snapshot_date"], order=()),
    )


# ---- facts: one frame per source, keyed by client, agreement and month ---------------------------
def billed_facts(invoice_lines: DataFrame, invoices: DataFrame, months: Iterable[str]) -> DataFrame:
    """Invoice lines spread over the months of their service period, in cents (see module docstring)."""
    from pyspark.sql import functions as F

    void = invoices.where(F.col("status") == "void").select("invoice_id")
    lines = invoice_lines.join(void, "invoice_id", "left_anti")
    first = F.trunc("service_period_start", "MM")
    last = F.when(F.col("line_type") == "one_time", first).otherwise(F.trunc("service_period_end", "MM"))
    lines = lines.withColumn("_months", F.sequence(first, F.greatest(first, last), F.expr("interval 1 month")))
    n = F.size("_months").cast("long")
    cents = (F.col("amount") * 100).cast("long")
    base = F.floor(cents / n).cast("long")
    spread = lines.select("client_id", "agreement_id", "line_type", cents.alias("_cents"), base.alias("_base"),
                          n.alias("_n"), F.posexplode("_months").alias("_pos", "_month"))
    share = F.col("_base") + F.when(F.col("_pos") == 0, F.col("_cents") - F.col("_base") * F.col("_n")).otherwise(0)
    out = spread.select("client_id", "agreement_id", month_col("_month").alias("month"), "line_type",
                        share.alias("billed_cents"))
    recurring = F.col("line_type").isin("recurring", "addition")
    return (out.where(F.col("month").isin(sorted(set(months))))
            .select("client_id", "agreement_id", "month", "billed_cents",
                    F.when(recurring, F.col("billed_cents")).otherwise(0).alias("mrr_cents"),
                    F.when(F.col("line_type") == "labour", F.col("billed_cents")).otherwise(0)
                    .alias("labour_billed_cents")))


def addition_facts(additions: DataFrame, months: DataFrame) -> DataFrame:
    """Cost (and retail value) of the additions active in each month: effective_date <= month end and
    cancelled_date empty or >= month start."""
    from pyspark.sql import functions as F

    active = additions.crossJoin(months).where(
        (F.col("effective_date") <= F.col("month_end"))
        & (F.col("cancelled_date").isNull() | (F.col("cancelled_date") >= F.col("month_start"))))
    return active.select(
        "client_id", "agreement_id", "month",
        (F.col("quantity") * F.col("unit_cost")).alias("addition_cost"),
        (F.col("quantity") * F.col("unit_price")).alias("addition_retail"))


def costed_time(time_entries: DataFrame, cost_rates: DataFrame) -> DataFrame:
    """Each time entry with the cost rate effective on its work date (effective_from <= work_date <=
    effective_to, open-ended when empty); overlapping rates resolve to the latest effective_from. Entries
    without a rate keep a null ``cost_rate``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    te = time_entries.alias("te")
    cr = cost_rates.select("technician_id", "cost_rate", "effective_from", "effective_to").alias("cr")
    cond = ((F.col("te.technician_id") == F.col("cr.technician_id"))
            & (F.col("cr.effective_from") <= F.col("te.work_date"))
            & (F.col("cr.effective_to").isNull() | (F.col("te.work_date") <= F.col("cr.effective_to"))))
    joined = te.join(cr, cond, "left").select("te.*", "cr.cost_rate", "cr.effective_from")
    w = Window.partitionBy("time_entry_id").orderBy(F.col("effective_from").desc_nulls_last())
    return joined.withColumn("_r", F.row_number().over(w)).where("_r = 1").drop("_r", "effective_from")


def labour_facts(time_entries: DataFrame, cost_rates: DataFrame, months: Iterable[str],
                 reactive_work_types: Iterable[str]) -> DataFrame:
    from pyspark.sql import functions as F

    t = costed_time(time_entries, cost_rates).withColumn("month", month_col("work_date"))
    t = t.where(F.col("month").isin(sorted(set(months))))
    hours = F.col("hours")
    return t.select(
        "client_id", "agreement_id", "month",
        hours.alias("labour_hours"),
        (hours * F.col("cost_rate")).alias("labour_cost_exact"),
        F.when(F.col("billable"), hours).otherwise(F.lit(0)).alias("billable_hours"),
        F.when(F.col("work_type").isin(*reactive_work_types), hours).otherwise(F.lit(0)).alias("reactive_hours"),
        F.when(F.col("cost_rate").isNull(), hours).otherwise(F.lit(0)).alias("uncosted_hours"))


def ticket_facts(tickets: DataFrame, months: Iterable[str]) -> DataFrame:
    """Tickets counted in the month they were opened; CSAT answers in the month the ticket closed."""
    from pyspark.sql import functions as F

    wanted = sorted(set(months))
    opened = tickets.select("client_id", "agreement_id", month_col("created_at").alias("month"),
                            F.lit(1).cast("long").alias("tickets"))
    rated = tickets.where(F.col("csat_rating").isNotNull() & F.col("closed_at").isNotNull()).select(
        "client_id", "agreement_id", month_col("closed_at").alias("month"),
        F.col("csat_rating").cast("long").alias("csat_sum"), F.lit(1).cast("long").alias("csat_responses"),
        F.when(F.col("csat_rating") >= 4, 1).otherwise(0).cast("long").alias("csat_positive"))
    return opened.unionByName(rated, allowMissingColumns=True).where(F.col("month").isin(wanted))


def payment_facts(payments: DataFrame, invoices: DataFrame, months: Iterable[str]) -> DataFrame:
    """Payments in the month of payment_date, with days late = payment_date − the invoice's due_date."""
    from pyspark.sql import functions as F

    inv = invoices.select("invoice_id", F.col("agreement_id").alias("_agreement_id"), "due_date")
    p = payments.join(inv, "invoice_id", "left").withColumn("month", month_col("payment_date"))
    days = F.datediff("payment_date", "due_date")
    return p.where(F.col("month").isin(sorted(set(months))) & F.col("due_date").isNotNull()).select(
        "client_id", F.col("_agreement_id").alias("agreement_id"), "month",
        F.col("amount").alias("paid_amount"), (F.col("amount") * days).alias("paid_days_weighted"),
        F.lit(1).cast("long").alias("payments"))


def endpoint_facts(endpoints: DataFrame, months: Iterable[str]) -> DataFrame:
    """Mean daily count of managed endpoints per client and month."""
    from pyspark.sql import functions as F

    e = endpoints.withColumn("month", month_col("snapshot_date")).where(F.col("month").isin(sorted(set(months))))
    return e.groupBy("client_id", "month").agg(F.avg("total_endpoints").alias("endpoints"))


# ---- metrics ---------------------------------------------------------------------------------------
SUMS = ("billed_cents", "mrr_cents", "labour_billed_cents", "addition_cost", "addition_retail", "labour_hours",
        "labour_cost_exact", "billable_hours", "reactive_hours", "uncosted_hours", "tickets", "csat_sum",
        "csat_responses", "csat_positive", "paid_amount", "paid_days_weighted", "payments")


def _ratio(num: Column, den: Column, scale: int, type_: str) -> Column:
    from pyspark.sql import functions as F

    return F.when(den.isNull() | (den == 0), F.lit(None)).otherwise(F.round(num / den, scale)).cast(type_)


def metrics(totals: DataFrame, cfg: CpiConfig) -> DataFrame:
    """The derived metrics of every row of summed facts (formulas in the module docstring)."""
    from pyspark.sql import functions as F

    def cents(c: str) -> Column:
        return (F.coalesce(F.col(c), F.lit(0)).cast("decimal(20,0)") / 100).cast(MONEY)

    def money(c: str) -> Column:
        return F.round(F.coalesce(F.col(c), F.lit(0)), 2).cast(MONEY)

    def hours(c: str) -> Column:
        return F.coalesce(F.col(c), F.lit(0)).cast("decimal(12,2)")

    df = totals.select(
        *[c for c in totals.columns if c not in SUMS],
        cents("billed_cents").alias("billed"), cents("mrr_cents").alias("mrr"),
        cents("labour_billed_cents").alias("labour_billed"),
        money("addition_cost").alias("addition_cost"), money("addition_retail").alias("addition_retail"),
        hours("labour_hours").alias("labour_hours"), hours("billable_hours").alias("billable_hours"),
        hours("reactive_hours").alias("reactive_hours"), hours("uncosted_hours").alias("uncosted_hours"),
        money("labour_cost_exact").alias("labour_cost"),
        F.coalesce(F.col("tickets"), F.lit(0)).cast("long").alias("tickets"),
        F.coalesce(F.col("csat_responses"), F.lit(0)).cast("long").alias("csat_responses"),
        F.col("csat_sum"), F.col("csat_positive"),
        F.coalesce(F.col("payments"), F.lit(0)).cast("long").alias("payments"),
        F.col("paid_amount"), F.col("paid_days_weighted"))
    deduction = {"none": F.lit(0), "cost": F.col("addition_cost"), "retail": F.col("addition_retail")}[
        cfg.deduction_basis]
    df = df.withColumn("profit", (F.col("billed") - F.col("addition_cost") - F.col("labour_cost")).cast(MONEY))
    return df.select(
        "*",
        _ratio(F.col("profit") * 100, F.col("billed"), 2, "decimal(12,2)").alias("margin_pct"),
        _ratio(F.col("billed") - deduction, F.col("labour_hours"), 2, "decimal(14,2)").alias("effective_hourly_rate"),
        _ratio(F.col("profit"), F.col("labour_hours"), 2, "decimal(14,2)").alias("contribution_rate"),
        _ratio(F.col("reactive_hours").cast("double"), F.col("endpoints"), 4, "double").alias("rhem"),
        _ratio(F.col("tickets").cast("double"), F.col("endpoints"), 4, "double").alias("tickets_per_endpoint"),
        _ratio(F.col("labour_cost"), F.col("endpoints"), 2, "decimal(14,2)").alias("labour_cost_per_endpoint"),
        _ratio(F.col("mrr"), F.col("endpoints"), 2, "decimal(14,2)").alias("revenue_per_endpoint"),
        _ratio(F.col("paid_days_weighted"), F.col("paid_amount"), 2, "decimal(9,2)").alias("avg_days_late"),
        _ratio(F.col("csat_sum").cast("double"), F.col("csat_responses"), 3, "double").alias("csat_avg"),
        _ratio(F.col("csat_positive").cast("double") * 100, F.col("csat_responses"), 2, "double")
        .alias("csat_positive_pct"),
    ).drop("csat_sum", "csat_positive", "paid_amount", "paid_days_weighted")


def _with_month_flags(df: DataFrame, cfg: CpiConfig, as_of: date) -> DataFrame:
    from pyspark.sql import functions as F

    finals = F.date_add(F.last_day(F.to_date(F.concat("month", F.lit("-01")))), cfg.month_close_days)
    return df.withColumn("month_final", finals <= F.lit(as_of)).withColumn("as_of", F.lit(as_of))


def transform(inputs: ProfitabilityInputs, months: Iterable[str], cfg: CpiConfig,
              as_of: date) -> tuple[DataFrame, DataFrame]:
    """(client rows, agreement rows) for ``months``, from inputs already in their latest state."""
    from pyspark.sql import functions as F

    months = sorted(set(months))
    spark = inputs.invoice_lines.sparkSession
    facts = (billed_facts(inputs.invoice_lines, inputs.invoices, months)
             .unionByName(addition_facts(inputs.additions, months_frame(spark, months)), allowMissingColumns=True)
             .unionByName(labour_facts(inputs.time_entries, inputs.cost_rates, months, cfg.reactive_work_types),
                          allowMissingColumns=True)
             .unionByName(ticket_facts(inputs.tickets, months), allowMissingColumns=True)
             .unionByName(payment_facts(inputs.payments, inputs.invoices, months), allowMissingColumns=True))
    sums = [F.sum(c).alias(c) for c in SUMS]
    endpoints = endpoint_facts(inputs.endpoints, months)

    client = facts.groupBy("client_id", "month").agg(*sums)
    client = client.join(endpoints, ["client_id", "month"], "full")
    client = _with_month_flags(metrics(client, cfg), cfg, as_of)

    agreement = facts.where(F.col("agreement_id").isNotNull()).groupBy("agreement_id", "client_id", "month").agg(*sums)
    agreement = agreement.join(endpoints, ["client_id", "month"], "left")
    agreement = metrics(agreement, cfg)
    avg_cost = _ratio(F.col("labour_cost"), F.col("labour_hours"), 6, "decimal(20,6)")
    budget = (F.lit(1 - cfg.target_margin_pct / 100).cast("decimal(9,6)") * F.col("billed") - F.col("addition_cost"))
    agreement = agreement.withColumn("target_hours", _ratio(budget, avg_cost, 2, "decimal(12,2)"))
    return client, _with_month_flags(agreement, cfg, as_of)


# ---- which months a run recomputes -----------------------------------------------------------------
def affected_months(raw_today: dict[str, DataFrame], all_lines: DataFrame, dates: list[date],
                    close_days: int) -> set[str]:
    """Months whose numbers the run's export days can change: the months of the days themselves, months
    that close on one of the days (their final recompute), and the months that rows exported on those days
    reach back to (a late labour invoice, a voided invoice, an addition or cost rate changed in the past).
    ``raw_today`` holds each input's rows exported on the run's days; ``all_lines`` every invoice line."""
    from pyspark.sql import functions as F

    months = {month_of(d) for d in dates}
    for d in dates:
        last = d - timedelta(days=close_days)
        if (last + timedelta(days=1)).day == 1:
            months.add(month_of(last))
    end = max(dates)
    spans = []
    lines = raw_today["invoice_lines"].select("service_period_start", "service_period_end", "line_type")
    voided = raw_today["invoices"].select("invoice_id").join(all_lines, "invoice_id").select(
        "service_period_start", "service_period_end", "line_type")
    for df in (lines, voided):
        spans.append(df.select(F.col("service_period_start").alias("a"),
                               F.when(F.col("line_type") == "one_time", F.col("service_period_start"))
                               .otherwise(F.col("service_period_end")).alias("b")))
    spans.append(raw_today["additions"].select(F.col("effective_date").alias("a"),
                                               F.coalesce("cancelled_date", F.lit(end)).alias("b")))
    spans.append(raw_today["cost_rates"].select(F.col("effective_from").alias("a"),
                                                F.coalesce("effective_to", F.lit(end)).alias("b")))
    for name, col in (("time_entries", "work_date"), ("payments", "payment_date"), ("endpoints", "snapshot_date")):
        spans.append(raw_today[name].select(F.col(col).alias("a"), F.col(col).alias("b")))
    for col in ("created_at", "closed_at"):
        spans.append(raw_today["tickets"].where(F.col(col).isNotNull())
                     .select(F.to_date(col).alias("a"), F.to_date(col).alias("b")))
    union = spans[0]
    for s in spans[1:]:
        union = union.unionByName(s)
    union = union.where(F.col("a").isNotNull()).select(month_col("a").alias("a"), month_col(F.least("b", F.lit(end)))
                                                       .alias("b")).distinct()
    for row in union.collect():
        if row.a <= row.b:
            months.update(months_between(row.a, row.b))
    return {m for m in months if m <= month_of(end)}


def load(ctx: RunContext, as_of: date, since: date | None) -> dict[str, DataFrame]:
    return {k: read_as_of(ctx, ds, as_of, since if k in EVENT_INPUTS else None) for k, ds in INPUTS.items()}


@stage("cpi.profitability", agent="cpi", reads=tuple(INPUTS.values()), writes=(CLIENT_TABLE, AGREEMENT_TABLE))
def run(ctx: RunContext) -> None:
    """Profit, margin, EHR, RHEM, MRR, days late and CSAT per client and agreement for the months the
    run's export days touch."""
    cfg = CpiConfig.from_settings(ctx.settings)
    as_of = ctx.end
    first = first_export_day(ctx, [INPUTS["invoice_lines"], INPUTS["time_entries"]])
    if first is None:
        ctx.warn("no invoice lines or time entries published yet: nothing to compute")
        return
    from pyspark.sql import functions as F

    days = [d.isoformat() for d in ctx.dates]
    today = {k: read_as_of(ctx, ds, as_of, since=ctx.start).where(F.col("dt").isin(days)) for k, ds in INPUTS.items()}
    all_lines = read_as_of(ctx, INPUTS["invoice_lines"], as_of)
    months = sorted(m for m in affected_months(today, all_lines, ctx.dates, cfg.month_close_days)
                    if m >= month_of(first))
    if not months:
        return
    from jobs.common import month_start

    inputs = prepare(load(ctx, as_of, month_start(months[0])))
    client, agreement = transform(inputs, months, cfg, as_of)
    replace = [{"month": m} for m in months]
    meta = {"as_of": as_of.isoformat()}
    ctx.count(CLIENT_TABLE).notes.append(f"months {months[0]}..{months[-1]} ({len(months)})")
    publish(ctx, CLIENT_TABLE, client, replace=replace, meta=meta)
    publish(ctx, AGREEMENT_TABLE, agreement, replace=replace, meta=meta)

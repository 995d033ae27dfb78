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

A day's row is what was known on the run that computed it: a run recomputes its own days only (a changed
setting applies from the next run's days; ``msp run --from/--to`` recomputes a range).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from jobs.cpi.exact import fdiv, half_up, ratio, to_decimal, units
from jobs.cpi.profitability import CLIENT_TABLE, costed_time
from lakehouse.transforms import as_of, latest, month_end, month_of, month_start

if TYPE_CHECKING:  # pragma: no cover
    import ibis

    from jobs.cpi.settings import CpiSettings
    from lakehouse.context import RunContext

TABLE = "analytics.cpi_daily_summary"
TIME = "processed.time_entries"
RATES = "processed.technician_cost_rates"
TICKETS = "processed.tickets"
PREDICTIONS = "analytics.churn"


def transform(time_entries: ibis.Table, cost_rates: ibis.Table, tickets: ibis.Table, profit: ibis.Table,
              churn: ibis.Table, days: list[date], cfg: CpiSettings) -> ibis.Table:
    import ibis
    import pyarrow as pa

    first, last = month_start(month_of(min(days))), max(days)
    te = time_entries.filter(time_entries.work_date.between(first, last))
    te = costed_time(te, cost_rates)
    hours = units(te.hours, 2)
    reactive = list(cfg.reactive_work_types)
    is_reactive = te.work_type.isin(reactive) if reactive else ibis.literal(False)
    work = te.group_by(["client_id", te.work_date.name("day")]).aggregate(
        _hours=hours.sum(), _cost=(hours * units(te.cost_rate, 2)).sum(),
        _reactive=hours.sum(where=is_reactive))
    t = tickets.mutate(day=tickets.created_at.date())
    t = t.filter(t.day.between(first, last))
    opened = t.group_by(["client_id", "day"]).aggregate(_opened=t.count())
    n_days = (last - first).days + 1
    cal_days = [first + timedelta(days=i) for i in range(n_days)]
    cal = ibis.memtable(pa.table({"day": pa.array(cal_days, pa.date32()),
                                  "_elapsed": pa.array([d.day for d in cal_days], pa.int64()),
                                  "_length": pa.array([month_end(month_of(d)).day for d in cal_days], pa.int64())}))
    months = sorted({month_of(first + timedelta(days=i)) for i in range(n_days)})
    p = profit.filter(profit.month.isin(months))
    billed = p.select("client_id", "month", month_billed=p.billed, month_addition_cost=p.addition_cost,
                      _add_retail=p.addition_retail)
    ids = [part.select(client_id=part.client_id.cast("string")) for part in (work, opened, billed)]
    clients = ids[0].union(ids[1]).union(ids[2]).distinct()
    grid = clients.cross_join(cal)
    grid = grid.mutate(month=grid.day.strftime("%Y-%m"))
    g = grid
    for part in (work, opened):
        j = g.left_join(part, ["client_id", "day"])
        g = j.select(*[g[c] for c in g.columns], *[part[c] for c in part.columns if c not in ("client_id", "day")])
    w = ibis.window(group_by=[g.client_id, g.month], order_by=g.day, rows=(None, 0))
    g = g.select(
        "client_id", "day", "month", "_elapsed", "_length",
        labour_hours_day=to_decimal(g._hours.coalesce(0), 2, 12),
        tickets_opened_day=g._opened.coalesce(0).cast("int64"),
        _mtd_hours=g._hours.sum().over(w).coalesce(0),
        # Σ hours × rate in 1/10,000 USD, rounded half-up to the cent
        _mtd_cost=ratio(g._cost.sum().over(w).coalesce(0), 100),
        _mtd_reactive=g._reactive.sum().over(w).coalesce(0),
        mtd_tickets=g._opened.sum().over(w).coalesce(0).cast("int64"))
    g = g.filter(g.day.isin(sorted(set(days))))
    j = g.left_join(billed, ["client_id", "month"])
    g = j.select(*[g[c] for c in g.columns], *[billed[c] for c in billed.columns if c not in ("client_id", "month")])
    g = g.filter((g._mtd_hours > 0) | (g.mtd_tickets > 0) | g.month_billed.notnull())
    # straight line to month end: x days in month / days elapsed, in doubles, rounded to the cent as Spark does
    scale = fdiv(g._length, g._elapsed)
    g = g.mutate(_proj_hours=half_up(g._mtd_hours.cast("float64") / 100 * scale, 2),
                 _proj_cost=half_up(g._mtd_cost.cast("float64") / 100 * scale, 2),
                 _billed=units(g.month_billed, 2), _add=units(g.month_addition_cost, 2))
    deduction = {"none": ibis.literal(0, type="int64"), "cost": g._add, "retail": units(g._add_retail, 2)}[
        cfg.deduction_basis]
    has_billed = g._billed > 0
    g = g.mutate(
        projected_margin_pct=to_decimal(ibis.ifelse(has_billed, ratio((g._billed - g._add - g._proj_cost) * 100,
                                                                      g._billed, 2), ibis.null("int64")), 2, 12),
        projected_ehr=to_decimal(ibis.ifelse(g._proj_hours > 0, ratio(g._billed.coalesce(0) - deduction.coalesce(0),
                                                                      g._proj_hours, 2), ibis.null("int64")), 2, 14),
        _usage=ibis.ifelse(has_billed, fdiv(g._proj_hours, g._billed), ibis.null("float64")))
    ranked = g.filter(g._usage.notnull())
    ranked = ranked.select("client_id", "day", consumption_quintile=(ibis.ntile(5).over(ibis.window(
        group_by=ranked.day, order_by=[ibis.desc(ranked._usage), ranked.client_id])) + 1).cast("int32"))
    j = g.left_join(ranked, ["client_id", "day"])
    g = j.select(*[g[c] for c in g.columns], ranked.consumption_quintile)
    g = g.mutate(over_utilizer=((g.consumption_quintile == 1) & (g.projected_ehr < cfg.ehr_target)).coalesce(False))
    risk = churn.select("client_id", "churn_probability", "risk_band", day=churn.dt.cast("date"))
    j = g.left_join(risk, ["client_id", "day"])
    g = j.select(*[g[c] for c in g.columns], risk.churn_probability, risk.risk_band)
    return g.select(
        "client_id", "month", "labour_hours_day", "tickets_opened_day",
        mtd_labour_hours=to_decimal(g._mtd_hours, 2, 12), mtd_labour_cost=to_decimal(g._mtd_cost, 2, 14),
        mtd_reactive_hours=to_decimal(g._mtd_reactive, 2, 12), mtd_tickets=g.mtd_tickets,
        month_billed=g.month_billed, month_addition_cost=g.month_addition_cost,
        projected_labour_hours=to_decimal(g._proj_hours, 2, 12), projected_labour_cost=to_decimal(g._proj_cost, 2, 14),
        projected_margin_pct=g.projected_margin_pct, projected_ehr=g.projected_ehr,
        consumption_quintile=g.consumption_quintile, over_utilizer=g.over_utilizer,
        churn_probability=g.churn_probability, risk_band=g.risk_band, dt=g.day.strftime("%Y-%m-%d"))


def run(ctx: RunContext) -> None:
    """Month-to-date hours, cost and tickets per client, projected margin and EHR, over-utilizers."""
    since = month_start(month_of(ctx.start))
    te = latest(ctx.table(TIME, as_of(ctx.end, since)), ["time_entry_id"], order=("created_at",))
    tickets = latest(ctx.table(TICKETS, as_of(ctx.end, since)), ["ticket_id"])
    rates = latest(ctx.table(RATES, as_of(ctx.end)), ["cost_rate_id"])
    months = {"month": sorted({month_of(d) for d in ctx.dates})}
    out = transform(te, rates, tickets, ctx.table(CLIENT_TABLE, months), ctx.table(PREDICTIONS, {"dt": ctx.days}),
                    ctx.dates, ctx.config)
    ctx.write(TABLE, out, replace=ctx.date_partitions())

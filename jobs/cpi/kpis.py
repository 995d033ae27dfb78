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
from typing import TYPE_CHECKING, Any

from jobs.cpi.exact import fdiv, half_up, ratio, to_decimal, to_double, units
from jobs.cpi.lifecycle import TABLE as LIFECYCLE
from jobs.cpi.margin_report import TABLE as REPORT
from jobs.cpi.profitability import CLIENT_TABLE
from lakehouse.transforms import months_table

if TYPE_CHECKING:  # pragma: no cover
    import ibis

    from jobs.cpi.settings import CpiSettings
    from lakehouse.context import RunContext

TABLE = "analytics.cpi_kpis_monthly"


def median_margin(profit: ibis.Table) -> ibis.Table:
    """Per month, the median client margin as Spark's ``median`` gives it (the two middle margins as
    doubles, 0.5 × lower + 0.5 × upper), rounded half-up to the cent: the same on every engine."""
    import ibis

    p = profit.filter(profit.margin_pct.notnull())
    p = p.mutate(_m=p.margin_pct.cast("float64"))
    w = ibis.window(group_by=p.month, order_by=[p._m, p.client_id])
    p = p.mutate(_rn=ibis.row_number().over(w), _n=p._m.count().over(ibis.window(group_by=p.month)))
    mid = p.filter((p._rn == (p._n - 1) // 2) | (p._rn == p._n // 2))
    m = mid.group_by("month").aggregate(_lo=mid._m.min(), _hi=mid._m.max())
    value = ibis.ifelse(m._lo == m._hi, m._lo, m._lo * 0.5 + m._hi * 0.5)
    return m.select("month", median_client_margin_pct=to_decimal(half_up(value, 2), 2, 12))


def tiers_json(report: ibis.Table) -> ibis.Table:
    """Per month, ``{"tier": clients, ...}`` as JSON text with sorted keys (as Spark's ``to_json`` of a
    sorted map writes it)."""
    import ibis

    t = report.filter(report.margin_tier.notnull())
    counts = t.group_by(["month", "margin_tier"]).aggregate(n=t.count())
    pairs = counts.mutate(_kv=ibis.literal('"') + counts.margin_tier + '":' + counts.n.cast("string"))
    out = pairs.group_by("month").aggregate(_kvs=pairs._kv.collect(order_by=pairs.margin_tier))
    return out.select("month", clients_by_tier=ibis.literal("{") + out._kvs.join(",") + "}")


def _positive(x: Any) -> Any:
    """``x`` where it is above 0, else null: a KPI ratio is only defined over a positive total."""
    import ibis

    return ibis.ifelse(x > 0, x, ibis.null(x.type()))


def transform(profit: ibis.Table, report: ibis.Table, lifecycle: ibis.Table, months: Iterable[str],
              cfg: CpiSettings) -> ibis.Table:
    import ibis

    months = sorted(set(months))
    p = profit.filter(profit.month.isin(months))
    deduction = {"none": ibis.literal(0, type="int64"), "cost": units(p.addition_cost, 2),
                 "retail": units(p.addition_retail, 2)}[cfg.deduction_basis]
    agg = p.group_by("month").aggregate(
        _mrr=units(p.mrr, 2).sum(), _billed=units(p.billed, 2).sum(), _add=units(p.addition_cost, 2).sum(),
        _labour=units(p.labour_cost, 2).sum(), _profit=units(p.profit, 2).sum(),
        _hours=units(p.labour_hours, 2).sum(), _reactive=units(p.reactive_hours, 2).sum(),
        _endpoints=p.endpoints.sum(), tickets=p.tickets.sum(),
        _ehr_num=(units(p.billed, 2) - deduction).sum(), _uncosted=units(p.uncosted_hours, 2).sum(),
        month_final=p.month_final.all())
    agg = agg.select(
        "month", mrr=to_decimal(agg._mrr, 2, 16), arr=to_decimal(agg._mrr * 12, 2, 16),
        billed=to_decimal(agg._billed, 2, 16), addition_cost=to_decimal(agg._add, 2, 16),
        labour_cost=to_decimal(agg._labour, 2, 16), gross_profit=to_decimal(agg._profit, 2, 16),
        gross_margin_pct=to_decimal(ratio(agg._profit * 100, _positive(agg._billed), 2), 2, 12),
        mrr_share_pct=to_decimal(ratio(agg._mrr * 100, _positive(agg._billed), 2), 2, 12),
        labour_hours=to_decimal(agg._hours, 2, 14), uncosted_hours=to_decimal(agg._uncosted, 2, 14),
        avg_ehr=to_decimal(ratio(agg._ehr_num, _positive(agg._hours), 2), 2, 14),
        rhem=to_double(half_up(fdiv(agg._reactive.cast("float64") / 100, _positive(agg._endpoints)), 4), 4),
        tickets="tickets",
        tickets_per_endpoint=to_double(half_up(fdiv(agg.tickets, _positive(agg._endpoints)), 4), 4),
        month_final="month_final")
    agg = agg.left_join(median_margin(p), "month")
    agg = agg.select(*[c for c in agg.columns if c != "month_right"])

    cal = months_table(months)
    lc = lifecycle.filter(lifecycle.service_start.notnull()).cross_join(cal)
    ended = lc.service_end.notnull() & (lc.service_end <= lc.as_of)
    served_at_start = (lc.service_start <= lc.month_start) & (lc.service_end.isnull()
                                                             | (lc.service_end >= lc.month_start))
    served_in = (lc.service_start <= lc.month_end) & (lc.service_end.isnull() | (lc.service_end >= lc.month_start))
    churned = ended & lc.service_end.between(lc.month_start, lc.month_end)
    starts = lc.service_start.between(lc.month_start, lc.month_end)

    def count(cond: Any) -> Any:
        return ibis.ifelse(cond, 1, 0).sum().cast("int64")

    logos = lc.group_by("month").aggregate(clients_at_start=count(served_at_start), active_clients=count(served_in),
                                           new_clients=count(starts), churned_clients=count(churned))
    logos = logos.mutate(logo_churn_pct=to_decimal(half_up(fdiv(logos.churned_clients.cast("float64") * 100.0,
                                                                _positive(logos.clients_at_start)), 2), 2, 9))
    r = report.filter(report.month.isin(months))
    per_month = r.group_by("month").aggregate(
        problem_clients=ibis.ifelse(r.problem_client, 1, 0).sum().cast("int64"),
        clients_lowest_tier=ibis.ifelse(r.margin_tier == cfg.tier_names[-1], 1, 0).sum().cast("int64"))
    tiers = per_month.left_join(tiers_json(r), "month")
    tiers = tiers.select(*[c for c in tiers.columns if c != "month_right"])

    out = cal.select("month")
    for part in (agg, logos, tiers):
        j = out.left_join(part, "month")
        out = j.select(*[out[c] for c in out.columns], *[part[c] for c in part.columns if c != "month"])
    zero = ["clients_at_start", "active_clients", "new_clients", "churned_clients", "problem_clients",
            "clients_lowest_tier", "tickets"]
    return out.mutate(**{c: out[c].coalesce(0) for c in zero}, month_final=out.month_final.coalesce(False))


def months_to_compute(ctx: RunContext) -> list[str]:
    """Months whose KPIs may have changed: every profitability month when the stage's settings or code
    changed (or what changed is unknown), else every month from the first one whose profitability or
    margin report changed since this stage last ran."""
    published = ctx.partition_values(CLIENT_TABLE, "month")
    changed = [ctx.changed(CLIENT_TABLE), ctx.changed(REPORT)]
    if any(c is None for c in changed):
        return published
    months = sorted(p["month"] for c in changed for p in c if p.get("month"))
    return [m for m in published if m >= months[0]] if months else []


def run(ctx: RunContext) -> None:
    """MSP KPIs per month: MRR, ARR, gross margin, logo churn, average EHR, RHEM, tier counts."""
    months = months_to_compute(ctx)
    if not months:
        return
    out = transform(ctx.table(CLIENT_TABLE), ctx.table(REPORT), ctx.table(LIFECYCLE), months, ctx.config)
    ctx.write(TABLE, out, replace=[{"month": m} for m in months])


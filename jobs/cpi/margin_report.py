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
from typing import TYPE_CHECKING, Any

from jobs.cpi.exact import fdiv, half_up, ratio, to_decimal, to_double, units
from jobs.cpi.lifecycle import TABLE as LIFECYCLE
from jobs.cpi.profitability import CLIENT_TABLE

if TYPE_CHECKING:  # pragma: no cover
    import ibis

    from jobs.cpi.settings import CpiSettings
    from lakehouse.context import RunContext

TABLE = "analytics.client_margin_report"

ACTIONS = {
    "problem": "Reprice, rescope or add exclusions to the agreement: margin under {low:g}% for {n} months running",
    "ehr": "Review over-consumption: effective hourly rate under the {ehr:g} USD/h target",
    "rhem": "Plan proactive fixes for repeat issues: reactive hours per endpoint over {rhem:g}",
    "late": "Follow up on payments: paying more than {grace} days after the due date",
    "surge": "Find the cause of the ticket surge before it erodes the margin",
}


def tier_col(margin: Any, billed: Any, cfg: CpiSettings) -> Any:
    """The tier name of a margin (null without a meaningful margin)."""
    import ibis

    branches = [(margin >= bound, name) for bound, name in zip(cfg.tier_bounds, cfg.tier_names, strict=False)]
    tier = ibis.cases(*branches, else_=cfg.tier_names[-1])
    return ibis.ifelse(margin.isnull() | (billed < cfg.min_billed_for_margin), ibis.null("string"), tier)


def tier_rank_col(tier: Any, cfg: CpiSettings) -> Any:
    import ibis

    return ibis.cases(*[(tier == name, i) for i, name in enumerate(cfg.tier_names)], else_=ibis.null("int64"))


def transform(profit: ibis.Table, lifecycle: ibis.Table, months: Iterable[str], cfg: CpiSettings) -> ibis.Table:
    """Report rows for ``months`` from the client's whole monthly history (streaks and trends need it)."""
    import ibis

    df = profit.mutate(_idx=profit.month[:4].cast("int64") * 12 + profit.month[5:7].cast("int64"),
                       _margin_c=units(profit.margin_pct, 2))
    w = ibis.window(group_by=df.client_id, order_by=df._idx)
    prev_ok = df._idx.lag().over(w) == df._idx - 1

    def prev(c: Any) -> Any:
        return ibis.ifelse(prev_ok, c.lag().over(w), ibis.null(c.type()))

    df = df.mutate(margin_tier=tier_col(df.margin_pct, df.billed, cfg))
    df = df.mutate(_rank=tier_rank_col(df.margin_tier, cfg))
    df = df.mutate(prev_margin_pct=prev(df.margin_pct), prev_tier=prev(df.margin_tier), _prev_rank=prev(df._rank),
                   _prev_hours=prev(units(df.labour_hours, 2)),
                   _below=df.margin_tier.notnull() & (df.margin_pct < cfg.lowest_bound))
    # a streak breaks on a month not below the bound, or on a gap in the months
    brk = (~df._below) | ~(prev_ok & df._below.lag().over(w)).coalesce(False)
    df = df.mutate(_brk=ibis.ifelse(brk, 1, 0))
    df = df.mutate(_grp=df._brk.sum().over(ibis.window(group_by=df.client_id, order_by=df._idx, rows=(None, 0))))
    streak = ibis.row_number().over(ibis.window(group_by=[df.client_id, df._grp], order_by=df._idx)) + 1
    last3 = ibis.window(group_by=df.client_id, order_by=df._idx, range=(-2, 0))
    before3 = ibis.window(group_by=df.client_id, order_by=df._idx, range=(-3, -1))
    df = df.mutate(
        months_below_lowest=ibis.ifelse(df._below, streak, 0).cast("int32"),
        # mean of the last 3 months' margins, exact, rounded half-up to 0.01
        margin_forecast_next_pct=to_decimal(ratio(df._margin_c.sum().over(last3), df._margin_c.count().over(last3)),
                                            2, 12),
        # mean tickets of the 3 months before, a double rounded to 2 decimals (as Spark's avg and round)
        tickets_prev3_avg=to_double(half_up(fdiv(df.tickets.sum().over(before3), df.tickets.count().over(before3)),
                                            2), 2))
    tier_change = ibis.cases((df.margin_tier.isnull(), ibis.null("string")), (df.prev_tier.isnull(), "new"),
                             (df._rank > df._prev_rank, "down"), (df._rank < df._prev_rank, "up"), else_="same")
    hours_c = units(df.labour_hours, 2)
    hours_change = ibis.ifelse(df._prev_hours > 0, to_double(ratio((hours_c - df._prev_hours) * 100, df._prev_hours,
                                                                   1), 1), ibis.null("float64"))
    surge = (df.tickets_prev3_avg > 0) & (df.tickets > df.tickets_prev3_avg * (1 + cfg.ticket_surge_pct / 100))
    df = df.mutate(
        margin_change_pp=(df.margin_pct - df.prev_margin_pct).cast("decimal(12,2)"), tier_change=tier_change,
        labour_hours_change_pct=hours_change,
        problem_client=df.months_below_lowest >= cfg.problem_months,
        ehr_below_target=(df.effective_hourly_rate < cfg.ehr_target).coalesce(False),
        rhem_above_target=(df.rhem > cfg.rhem_target).coalesce(False),
        late_payer=(df.avg_days_late > cfg.days_late_grace).coalesce(False),
        ticket_surge=surge.coalesce(False))
    texts = [
        ibis.ifelse(df.problem_client, ACTIONS["problem"].format(low=cfg.lowest_bound, n=cfg.problem_months),
                    ibis.null("string")),
        ibis.ifelse(df.ehr_below_target, ACTIONS["ehr"].format(ehr=cfg.ehr_target), ibis.null("string")),
        ibis.ifelse(df.rhem_above_target, ACTIONS["rhem"].format(rhem=cfg.rhem_target), ibis.null("string")),
        ibis.ifelse(df.late_payer, ACTIONS["late"].format(grace=cfg.days_late_grace), ibis.null("string")),
        ibis.ifelse(df.ticket_surge, ACTIONS["surge"], ibis.null("string")),
    ]
    action = ibis.literal("; ").join(texts)
    df = df.mutate(suggested_action=action.nullif(""))
    df = df.filter(df.month.isin(sorted(set(months))))
    names = lifecycle.select("client_id", "client_name", "client_type")
    j = df.left_join(names, "client_id")
    return j.select(*[df[c] for c in df.columns if not c.startswith("_")], names.client_name, names.client_type)


def months_to_report(ctx: RunContext) -> list[str]:
    """Months of the profitability table to (re)report: every one when the stage's settings or code
    changed (or what changed is unknown); otherwise every month from the first one whose profitability
    changed since this stage last ran (later months depend on earlier ones: streaks, trailing means)."""
    published = ctx.partition_values(CLIENT_TABLE, "month")
    changed = ctx.changed(CLIENT_TABLE)
    if changed is None:
        return published
    months = sorted(p["month"] for p in changed if p.get("month"))
    return [m for m in published if m >= months[0]] if months else []


def run(ctx: RunContext) -> None:
    """Margin tiers, problem clients (N months under the lowest tier), flags and suggested actions."""
    months = months_to_report(ctx)
    if not months:
        return
    report = transform(ctx.table(CLIENT_TABLE), ctx.table(LIFECYCLE), months, ctx.config)
    ctx.count(TABLE).notes.append(f"months {months[0]}..{months[-1]} ({len(months)})"
                                  + (" (rebuild: settings or code changed)" if ctx.rebuild else ""))
    ctx.write(TABLE, report, replace=[{"month": m} for m in months])

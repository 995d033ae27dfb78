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

Every sum is taken on integers (cents, centi-hours, 1/10,000 USD for hours × rate) and every ratio is
rounded half-up with integer arithmetic (:mod:`jobs.cpi.exact`), so DuckDB and Spark give the same rows to
the cent and the last decimal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from jobs.cpi.exact import decimal_literal, fdiv, half_up, ratio, to_decimal, to_double, units
from lakehouse.transforms import (
    TIE_BREAKERS,
    as_of,
    closing_day,
    latest,
    month_of,
    month_start,
    months_between,
    months_table,
)

if TYPE_CHECKING:  # pragma: no cover
    import ibis

    from jobs.cpi.settings import CpiSettings
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
#: The integer facts summed per client (and agreement) and month: cents, centi-hours (``_ch``), 1/10,000
#: USD (``_u4``: hours × rate), counts.
FACTS = ("billed_cents", "mrr_cents", "labour_billed_cents", "addition_cost_cents", "addition_retail_cents",
         "labour_hours_ch", "labour_cost_u4", "billable_hours_ch", "reactive_hours_ch", "uncosted_hours_ch",
         "tickets", "csat_sum", "csat_responses", "csat_positive", "paid_cents", "paid_days_cents", "payments",
         "endpoint_sum", "endpoint_days")


@dataclass
class ProfitabilityInputs:
    """The processed inputs, each in the latest state known on the run day (see :func:`prepare`)."""

    invoices: ibis.Table
    invoice_lines: ibis.Table
    additions: ibis.Table
    time_entries: ibis.Table
    cost_rates: ibis.Table
    tickets: ibis.Table
    payments: ibis.Table
    endpoints: ibis.Table


def prepare(raw: Mapping[str, ibis.Table]) -> ProfitabilityInputs:
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


def _month_index(d: Any) -> Any:
    return d.year() * 12 + d.month()


def _facts(t: ibis.Table, client: Any, agreement: Any, month: Any, **values: Any) -> ibis.Table:
    """One fact frame: keys plus every fact column (those not given are null), all int64 and nullable, so
    that the facts of every source union."""
    import ibis

    unknown = set(values) - set(FACTS)
    assert not unknown, unknown
    cols = {c: (values[c].cast("int64") if c in values else ibis.null("int64")) for c in FACTS}
    return t.select(client_id=client.cast("string"), agreement_id=agreement.cast("string"), month=month.cast("string"),
                    **cols)


def _months(months: Iterable[str]) -> ibis.Table:
    cal = months_table(months)
    return cal.mutate(_idx=_month_index(cal.month_start))


# ---- facts: one frame per source, keyed by client, agreement and month ---------------------------
def billed_facts(invoice_lines: ibis.Table, invoices: ibis.Table, months: Iterable[str]) -> ibis.Table:
    """Invoice lines spread over the months of their service period, in cents (see module docstring)."""
    import ibis

    void = invoices.filter(invoices.status == "void").select("invoice_id")
    lines = invoice_lines.anti_join(void, "invoice_id")
    first = _month_index(lines.service_period_start)
    last = ibis.ifelse(lines.line_type == "one_time", first, _month_index(lines.service_period_end))
    lines = lines.mutate(_first=first, _last=ibis.greatest(first, last), _cents=units(lines.amount, 2))
    lines = lines.mutate(_n=lines._last - lines._first + 1)
    lines = lines.mutate(_base=lines._cents // lines._n)
    cal = _months(months)
    spread = lines.join(cal, [lines._first <= cal._idx, cal._idx <= lines._last])
    share = spread._base + ibis.ifelse(spread._idx == spread._first, spread._cents - spread._base * spread._n, 0)
    recurring = spread.line_type.isin(["recurring", "addition"])
    return _facts(spread, spread.client_id, spread.agreement_id, spread.month, billed_cents=share,
                  mrr_cents=ibis.ifelse(recurring, share, 0),
                  labour_billed_cents=ibis.ifelse(spread.line_type == "labour", share, 0))


def addition_facts(additions: ibis.Table, months: Iterable[str]) -> ibis.Table:
    """Cost (and retail value) of the additions active in each month: effective_date <= month end and
    cancelled_date empty or >= month start."""
    cal = _months(months)
    active = additions.join(cal, [additions.effective_date <= cal.month_end,
                                  additions.cancelled_date.isnull() | (additions.cancelled_date >= cal.month_start)])
    qty = active.quantity.cast("int64")
    return _facts(active, active.client_id, active.agreement_id, active.month,
                  addition_cost_cents=qty * units(active.unit_cost, 2),
                  addition_retail_cents=qty * units(active.unit_price, 2))


def costed_time(time_entries: ibis.Table, cost_rates: ibis.Table) -> ibis.Table:
    """Each time entry with the cost rate effective on its work date (effective_from <= work_date <=
    effective_to, open-ended when empty); overlapping rates resolve to the latest effective_from (then the
    greatest rate id, so the pick is deterministic). Entries without a rate keep a null ``cost_rate``."""
    import ibis

    te = time_entries
    cr = cost_rates.select(_cr_tech=cost_rates.technician_id, cost_rate=cost_rates.cost_rate,
                           _cr_from=cost_rates.effective_from, _cr_to=cost_rates.effective_to,
                           _cr_id=cost_rates.cost_rate_id)
    joined = te.left_join(cr, [te.technician_id == cr._cr_tech, cr._cr_from <= te.work_date,
                               cr._cr_to.isnull() | (te.work_date <= cr._cr_to)])
    joined = joined.select(*[te[c] for c in te.columns], cr.cost_rate, cr._cr_from, cr._cr_id)
    w = ibis.window(group_by=joined.time_entry_id, order_by=[ibis.desc(joined._cr_from), ibis.desc(joined._cr_id)])
    ranked = joined.mutate(_r=ibis.row_number().over(w))
    return ranked.filter(ranked._r == 0).drop("_r", "_cr_from", "_cr_id")


def labour_facts(time_entries: ibis.Table, cost_rates: ibis.Table, months: Iterable[str],
                 reactive_work_types: Iterable[str]) -> ibis.Table:
    import ibis

    t = costed_time(time_entries, cost_rates)
    t = t.mutate(month=t.work_date.strftime("%Y-%m"))
    t = t.filter(t.month.isin(sorted(set(months))))
    hours = units(t.hours, 2)
    reactive = list(reactive_work_types)
    is_reactive = t.work_type.isin(reactive) if reactive else ibis.literal(False)
    return _facts(t, t.client_id, t.agreement_id, t.month, labour_hours_ch=hours,
                  labour_cost_u4=hours * units(t.cost_rate, 2),
                  billable_hours_ch=ibis.ifelse(t.billable, hours, 0),
                  reactive_hours_ch=ibis.ifelse(is_reactive, hours, 0),
                  uncosted_hours_ch=ibis.ifelse(t.cost_rate.isnull(), hours, 0))


def ticket_facts(tickets: ibis.Table, months: Iterable[str]) -> ibis.Table:
    """Tickets counted in the month they were opened; CSAT answers in the month the ticket closed."""
    import ibis

    wanted = sorted(set(months))
    opened = _facts(tickets, tickets.client_id, tickets.agreement_id, tickets.created_at.strftime("%Y-%m"),
                    tickets=ibis.literal(1))
    rated = tickets.filter(tickets.csat_rating.notnull() & tickets.closed_at.notnull())
    rated = _facts(rated, rated.client_id, rated.agreement_id, rated.closed_at.strftime("%Y-%m"),
                   csat_sum=rated.csat_rating, csat_responses=ibis.literal(1),
                   csat_positive=ibis.ifelse(rated.csat_rating >= 4, 1, 0))
    both = opened.union(rated)
    return both.filter(both.month.isin(wanted))


def payment_facts(payments: ibis.Table, invoices: ibis.Table, months: Iterable[str]) -> ibis.Table:
    """Payments in the month of payment_date, with days late = payment_date − the invoice's due_date."""
    import ibis

    inv = invoices.select(_inv_id=invoices.invoice_id, _agreement_id=invoices.agreement_id, _due=invoices.due_date)
    p = payments.left_join(inv, payments.invoice_id == inv._inv_id)
    p = p.select(*[payments[c] for c in payments.columns], inv._agreement_id, inv._due)
    p = p.mutate(month=p.payment_date.strftime("%Y-%m"))
    p = p.filter(p.month.isin(sorted(set(months))) & p._due.notnull())
    cents = units(p.amount, 2)
    return _facts(p, p.client_id, p._agreement_id, p.month, paid_cents=cents,
                  paid_days_cents=cents * p.payment_date.delta(p._due, unit="day"), payments=ibis.literal(1))


def endpoint_facts(endpoints: ibis.Table, months: Iterable[str]) -> ibis.Table:
    """Daily managed-endpoint counts per client and month (their mean is the month's ``endpoints``)."""
    import ibis

    e = endpoints.mutate(month=endpoints.snapshot_date.strftime("%Y-%m"))
    e = e.filter(e.month.isin(sorted(set(months))))
    return _facts(e, e.client_id, ibis.null("string"), e.month, endpoint_sum=e.total_endpoints,
                  endpoint_days=ibis.ifelse(e.total_endpoints.notnull(), 1, 0))


# ---- metrics ---------------------------------------------------------------------------------------
def _sums(facts: ibis.Table, keys: list[str]) -> ibis.Table:
    return facts.group_by(keys).aggregate(**{c: facts[c].sum() for c in FACTS})


def metrics(totals: ibis.Table, cfg: CpiSettings) -> ibis.Table:
    """The derived metrics of every row of summed facts (formulas in the module docstring)."""
    keys = [c for c in totals.columns if c not in FACTS]
    z = {c: totals[c].coalesce(0) for c in FACTS}
    deduction = {"none": 0, "cost": z["addition_cost_cents"], "retail": z["addition_retail_cents"]}
    # integers first (cents, centi-hours), once, so the ratios below refer to columns
    base = totals.select(
        *keys, _billed=z["billed_cents"], _mrr=z["mrr_cents"], _labour_billed=z["labour_billed_cents"],
        _add_cost=z["addition_cost_cents"], _add_retail=z["addition_retail_cents"],
        _deduction=deduction[cfg.deduction_basis], _hours=z["labour_hours_ch"],
        _billable=z["billable_hours_ch"], _reactive=z["reactive_hours_ch"], _uncosted=z["uncosted_hours_ch"],
        _labour_cost=ratio(z["labour_cost_u4"], 100),  # 1/10,000 USD -> cents, half-up once per row
        tickets=z["tickets"], payments=z["payments"], csat_responses=z["csat_responses"],
        _csat_sum=totals.csat_sum, _csat_positive=totals.csat_positive, _paid=totals.paid_cents,
        _paid_days=totals.paid_days_cents, _e_sum=totals.endpoint_sum, _e_days=totals.endpoint_days)
    base = base.mutate(_profit=base._billed - base._add_cost - base._labour_cost,
                       _endpoints=fdiv(base._e_sum, base._e_days))
    b = base
    e = b._endpoints
    return b.select(
        *keys,
        billed=to_decimal(b._billed, 2, 14), mrr=to_decimal(b._mrr, 2, 14),
        labour_billed=to_decimal(b._labour_billed, 2, 14),
        addition_cost=to_decimal(b._add_cost, 2, 14), addition_retail=to_decimal(b._add_retail, 2, 14),
        labour_hours=to_decimal(b._hours, 2, 12), billable_hours=to_decimal(b._billable, 2, 12),
        reactive_hours=to_decimal(b._reactive, 2, 12), uncosted_hours=to_decimal(b._uncosted, 2, 12),
        labour_cost=to_decimal(b._labour_cost, 2, 14), profit=to_decimal(b._profit, 2, 14),
        # profit / billed x 100 to 0.01 points: (profit_c x 100) / billed_c at 2 decimals
        margin_pct=to_decimal(ratio(b._profit * 100, b._billed, 2), 2, 12),
        # (billed - deduction) / hours: cents / centi-hours = USD/h, at 2 decimals
        effective_hourly_rate=to_decimal(ratio(b._billed - b._deduction, b._hours, 2), 2, 14),
        contribution_rate=to_decimal(ratio(b._profit, b._hours, 2), 2, 14),
        endpoints=e,
        # ratios to endpoints (a mean, a double) and CSAT means are doubles, rounded half-up as Spark rounds
        rhem=to_double(half_up(fdiv(b._reactive.cast("float64") / 100, e), 4), 4),
        tickets=b.tickets,
        tickets_per_endpoint=to_double(half_up(fdiv(b.tickets, e), 4), 4),
        labour_cost_per_endpoint=to_decimal(half_up(fdiv(b._labour_cost.cast("float64") / 100, e), 2), 2, 14),
        revenue_per_endpoint=to_decimal(half_up(fdiv(b._mrr.cast("float64") / 100, e), 2), 2, 14),
        payments=b.payments,
        avg_days_late=to_decimal(ratio(b._paid_days, b._paid, 2), 2, 9),
        csat_responses=b.csat_responses,
        csat_avg=to_double(half_up(fdiv(b._csat_sum, b.csat_responses), 3), 3),
        csat_positive_pct=to_double(half_up(fdiv(b._csat_positive * 100, b.csat_responses), 2), 2),
        # kept for the agreement's target hours (not stored)
        _billed_c=b._billed, _add_cost_c=b._add_cost, _labour_cost_c=b._labour_cost, _hours_ch=b._hours,
    )


def _month_flags(t: ibis.Table, months: list[str], close_days: int, day: date) -> ibis.Table:
    import ibis

    finals = [m for m in months if closing_day(m, close_days) <= day]
    final = t.month.isin(finals) if finals else ibis.literal(False)
    return t.mutate(month_final=final, as_of=ibis.literal(day, type="date"))


def fact_sums(inputs: ProfitabilityInputs, months: Iterable[str], cfg: CpiSettings) -> ibis.Table:
    """Every source's facts for ``months``, summed per client, agreement (null: no agreement, and the
    endpoint counts, which are per client) and month."""
    months = sorted(set(months))
    facts = (billed_facts(inputs.invoice_lines, inputs.invoices, months)
             .union(addition_facts(inputs.additions, months))
             .union(labour_facts(inputs.time_entries, inputs.cost_rates, months, cfg.reactive_work_types))
             .union(ticket_facts(inputs.tickets, months))
             .union(payment_facts(inputs.payments, inputs.invoices, months))
             .union(endpoint_facts(inputs.endpoints, months)))
    return _sums(facts, ["client_id", "agreement_id", "month"])


def from_sums(sums: ibis.Table, months: Iterable[str], cfg: CpiSettings, day: date) -> tuple[ibis.Table, ibis.Table]:
    """(client rows, agreement rows) from :func:`fact_sums` (sums of integers add up exactly)."""
    months = sorted(set(months))
    client = metrics(_sums(sums, ["client_id", "month"]), cfg)
    client = _month_flags(client, months, cfg.month_close_days, day)

    per_agreement = _sums(sums.filter(sums.agreement_id.notnull()), ["agreement_id", "client_id", "month"])
    client_endpoints = _sums(sums, ["client_id", "month"]).select("client_id", "month", "endpoint_sum",
                                                                   "endpoint_days")
    j = per_agreement.left_join(client_endpoints, ["client_id", "month"])
    per_agreement = j.select(*[per_agreement[c] for c in per_agreement.columns if c not in ("endpoint_sum",
                                                                                            "endpoint_days")],
                             client_endpoints.endpoint_sum, client_endpoints.endpoint_days)
    agreement = metrics(per_agreement, cfg)
    # ((1 - target margin) x billed - addition_cost) / (labour_cost / labour_hours), the average cost per hour
    # first rounded to 6 decimals (1/1,000,000 USD/h), the budget in 1/100,000,000 USD
    avg_cost_u6 = ratio(agreement._labour_cost_c, agreement._hours_ch, 6)
    share_u6 = int(decimal_literal(1 - cfg.target_margin_pct / 100, 6).scaleb(6))
    budget_u8 = agreement._billed_c * share_u6 - agreement._add_cost_c * 10**6
    agreement = agreement.mutate(target_hours=to_decimal(ratio(budget_u8, avg_cost_u6), 2, 12))
    agreement = _month_flags(agreement, months, cfg.month_close_days, day)
    hidden = ["_billed_c", "_add_cost_c", "_labour_cost_c", "_hours_ch"]
    return client.drop(*hidden), agreement.drop(*hidden)


def transform(inputs: ProfitabilityInputs, months: Iterable[str], cfg: CpiSettings,
              day: date) -> tuple[ibis.Table, ibis.Table]:
    """(client rows, agreement rows) for ``months``, from inputs already in their latest state."""
    return from_sums(fact_sums(inputs, months, cfg), months, cfg, day)


# ---- which months a run recomputes -----------------------------------------------------------------
#: Inputs whose records each cover a stretch of days, (key, first day, last day or null while open): an
#: addition is billed from its effective date to its cancellation, a cost rate applies from effective_from
#: to effective_to.
SPANNING = {"additions": ("addition_id", "effective_date", "cancelled_date"),
            "cost_rates": ("cost_rate_id", "effective_from", "effective_to")}


def _span(t: ibis.Table, a: Any, b: Any) -> ibis.Table:
    return t.select(a=a.cast("date"), b=b.cast("date"))


def changed_spans(new: ibis.Table, old: ibis.Table | None, key: str, first: str, last: str,
                  end: Any) -> list[ibis.Table]:
    """The stretches of days whose numbers the new versions of spanning records (:data:`SPANNING`) change.

    Without the versions known before (``old`` is None), or for a record not seen before, or one whose
    values changed (quantity, price, cost, rate, agreement...), it is the record's whole stretch, hull of
    the old and the new one. A record that only moved an end changes only the days between its old and new
    end: the yearly cancellation of an addition that has run since 2021 (its last day set to December
    31st) changes December and January, not the four years before. An open end counts as ``end``."""
    import ibis

    n = latest(new, [key])
    if old is None:
        return [_span(n, n[first], n[last].coalesce(end))]
    o = latest(old, [key])
    meta = {key, first, last, "created_at", "updated_at", *TIE_BREAKERS}
    values = [c for c in n.columns if c in o.columns and c not in meta and not c.startswith("_")]
    o = o.select(_k=o[key], _first=o[first].cast("date"), _last=o[last].cast("date").coalesce(end),
                 **{f"_o_{c}": o[c] for c in values})
    j = n.left_join(o, n[key] == o._k)
    j = j.mutate(_nf=j[first].cast("date"), _nl=j[last].cast("date").coalesce(end))
    same = ibis.and_(*[j[c].identical_to(j[f"_o_{c}"]) for c in values]) if values else ibis.literal(True)
    whole = j.filter(j._k.isnull() | ~same)
    moved = j.filter(j._k.notnull() & same)
    starts = moved.filter(moved._nf != moved._first)
    ends = moved.filter(moved._nl != moved._last)
    return [_span(whole, ibis.least(whole._nf, whole._first.coalesce(whole._nf)),
                  ibis.greatest(whole._nl, whole._last.coalesce(whole._nl))),
            _span(starts, ibis.least(starts._nf, starts._first), ibis.greatest(starts._nf, starts._first)),
            _span(ends, ibis.least(ends._nl, ends._last), ibis.greatest(ends._nl, ends._last))]


def reach(today: Mapping[str, ibis.Table], all_lines: ibis.Table, end: date,
          before: Mapping[str, ibis.Table | None] | None = None) -> ibis.Table:
    """Distinct (first, last) ``yyyy-MM`` spans that the rows of ``today`` reach (see
    :func:`affected_months`); ``last`` is capped at the month of ``end``. ``before`` holds, for the
    inputs of :data:`SPANNING`, the versions known before the run's days (see :func:`changed_spans`)."""
    import ibis

    end_lit = ibis.literal(end, type="date")
    lines = today["invoice_lines"]
    touched = today["invoices"].select("invoice_id").join(all_lines, "invoice_id")
    spans = [_span(df, df.service_period_start, ibis.ifelse(df.line_type == "one_time", df.service_period_start,
                                                            df.service_period_end)) for df in (lines, touched)]
    for name, (key, first, last) in SPANNING.items():
        spans.extend(changed_spans(today[name], (before or {}).get(name), key, first, last, end_lit))
    for name, col in (("time_entries", "work_date"), ("payments", "payment_date"), ("endpoints", "snapshot_date")):
        spans.append(_span(today[name], today[name][col], today[name][col]))
    tickets = today["tickets"]
    for col in ("created_at", "closed_at"):
        t = tickets.filter(tickets[col].notnull())
        spans.append(_span(t, t[col].date(), t[col].date()))
    union = spans[0]
    for s in spans[1:]:
        union = union.union(s)
    union = union.filter(union.a.notnull())
    return union.select(a=union.a.strftime("%Y-%m"), b=ibis.least(union.b, end_lit).strftime("%Y-%m")).distinct()


def affected_months(today: Mapping[str, ibis.Table], all_lines: ibis.Table, dates: list[date],
                    close_days: int, before: Mapping[str, ibis.Table | None] | None = None) -> set[str]:
    """Months whose numbers the run's export days can change: the months of the days themselves, months
    that close on one of the days (their final recompute), and the months that rows exported on those days
    reach back to (a late labour invoice, a voided invoice, an addition or cost rate changed in the past).
    ``today`` holds each input's rows exported on the run's days; ``all_lines`` every invoice line;
    ``before`` the versions of additions and cost rates known before those days, where they are known
    (:func:`changed_spans`)."""
    months = {month_of(d) for d in dates}
    for d in dates:
        last = d - timedelta(days=close_days)
        if (last + timedelta(days=1)).day == 1:
            months.add(month_of(last))
    end = max(dates)
    for row in reach(today, all_lines, end, before).to_pyarrow().to_pylist():
        if row["a"] <= row["b"]:
            months.update(months_between(row["a"], row["b"]))
    return {m for m in months if m <= month_of(end)}


def export_days(ctx: RunContext, dataset: str) -> list[str] | None:
    """The export days whose rows this run must look at: its own days, and the earlier days of ``dataset``
    that changed since the stage last ran (a source re-delivered, rows released from quarantine). None when
    that is unknown (then every month is recomputed)."""
    changed = ctx.changed(dataset)
    if changed is None:
        return None
    end = ctx.end.isoformat()
    return sorted(set(ctx.days) | {p["dt"] for p in changed if p.get("dt") and p["dt"] <= end})


def versions_before(ctx: RunContext, days: Mapping[str, list[str] | None]) -> dict[str, ibis.Table | None]:
    """For each input of :data:`SPANNING`, its rows exported before the run's first day: the versions the
    months already published were computed from, when the stage has seen every earlier day (None when an
    earlier day changed since: a re-delivered file, rows released from quarantine)."""
    start = ctx.start.isoformat()
    return {k: (ctx.table(INPUTS[k], as_of(ctx.start - timedelta(days=1)))
                if days[k] is not None and min(days[k]) >= start else None) for k in SPANNING}


def run(ctx: RunContext) -> None:
    """Profit, margin, EHR, RHEM, MRR, days late and CSAT per client and agreement for the months the
    run's export days touch (every month from the first export day when the stage's settings or code
    changed)."""
    cfg: CpiSettings = ctx.config
    end = ctx.end
    exported = [d for name in ("invoice_lines", "time_entries") for d in ctx.partition_values(INPUTS[name], "dt")]
    if not exported:
        ctx.warn("no invoice lines or time entries published yet: nothing to compute")
        return
    first = date.fromisoformat(min(exported))
    days = {k: (None if ctx.rebuild else export_days(ctx, ds)) for k, ds in INPUTS.items()}
    if any(v is None for v in days.values()):
        months = months_between(month_of(first), month_of(end))
        why = "rebuild (settings or code changed)" if ctx.rebuild else "inputs' changes unknown"
    else:
        today = {k: ctx.table(ds, {"dt": days[k]}) for k, ds in INPUTS.items()}
        all_lines = ctx.table(INPUTS["invoice_lines"], as_of(end))
        months = sorted(m for m in affected_months(today, all_lines, ctx.dates, cfg.month_close_days,
                                                   versions_before(ctx, days)) if m >= month_of(first))
        why = "months the run's export days touch"
    if not months:
        return
    since = month_start(months[0])
    raw = {k: ctx.table(ds, as_of(end, since if k in EVENT_INPUTS else None)) for k, ds in INPUTS.items()}
    # the sums once (a few rows per client-month), then both tables from them: transform() in two steps
    sums = ctx.engine.arrow(ctx.engine.to_arrow(fact_sums(prepare(raw), months, cfg)), "profitability_sums")
    client, agreement = from_sums(sums, months, cfg, end)
    replace = [{"month": m} for m in months]
    props = {"msp.as-of": end.isoformat()}
    ctx.count(CLIENT_TABLE).notes.append(f"months {months[0]}..{months[-1]} ({len(months)}): {why}")
    ctx.write(CLIENT_TABLE, client, replace=replace, properties=props)
    ctx.write(AGREEMENT_TABLE, agreement, replace=replace, properties=props)

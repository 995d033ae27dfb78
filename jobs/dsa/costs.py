"""One cost table in FinOps FOCUS 1.0 terms: the cloud export, the PSA expenses and the licences bought for
clients, with a department and a client (``processed.spend_costs``), and the daily spend of every cost line
the anomaly monitors watch (``processed.spend_leaf_daily``).

Mapping (DOMAIN.md section 5: the cost schema is FOCUS; PSA expenses and licence invoices go into the same
columns [SUGGESTION]):

* **cloud** (``processed.focus_costs``): the FOCUS columns as exported, one row per export row;
  ``department`` = ``Tags.business_unit`` (``dsa.untagged_department`` when the tag is missing),
  ``client_id`` = ``Tags.client_id``.
* **expenses** (``processed.expenses``, ITFlow): ``BilledCost`` = ``EffectiveCost`` = ``ListCost`` =
  ``ContractedCost`` = amount; ``ChargeCategory`` Purchase; ``ChargeFrequency`` Recurring for recurring
  subscriptions, One-Time otherwise; ``ProviderName`` = ``PublisherName`` = ``InvoiceIssuerName`` = the
  vendor; ``ServiceName`` = the expense category, ``ServiceCategory`` from it (:data:`SERVICE_CATEGORY`);
  the charge period is the expense day, the billing period its calendar month.
* **licences** (``processed.entitlements``): one row per active entitlement and month, on its billing day
  (the day of month of ``start_date``, the month's last day when shorter). ``EffectiveCost`` = seats x unit
  price (the month's share, amortised); ``BilledCost`` = the same for monthly billing, and for annual billing
  12 x seats x unit price in the months that are whole years after ``start_date`` and 0 in the others
  (FOCUS: BilledCost is the invoice basis, EffectiveCost amortises it). ``department`` =
  ``dsa.licence_department``, ``client_id`` = the entitlement's client. The version of the entitlement in
  force on the billing day is used (the latest export on or before it), so a rerun of a day gives the same rows.

**Reconciliation**: the BilledCost of the expense rows and of the cloud rows a run writes equals, to the cent
and in fact exactly (decimal arithmetic, no float), the amounts of the source rows it read; the run fails
before publishing anything otherwise (:func:`reconcile`).

Every transform is an Ibis expression (DuckDB locally, Spark on Glue): the cloud export is the big one
(6.6 million rows a year at the reference scale).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lakehouse.transforms import as_of

if TYPE_CHECKING:  # pragma: no cover
    import ibis

    from jobs.dsa.settings import DsaSettings
    from lakehouse.context import RunContext

COSTS = "processed.spend_costs"
LEAVES = "processed.spend_leaf_daily"
INPUTS = {"focus": "processed.focus_costs", "expenses": "processed.expenses",
          "entitlements": "processed.entitlements"}
MONEY = "decimal(38,11)"
QTY = "decimal(38,15)"
#: FOCUS ServiceCategory of each PSA expense category (FOCUS 1.0 allowed values).
SERVICE_CATEGORY = {
    "software_subscriptions": "Business Applications", "hosting": "Compute", "telecom": "Networking",
    "hardware": "Compute", "training": "Other", "marketing": "Other", "travel": "Other", "office": "Other",
    "contractors": "Other", "insurance": "Other", "professional_services": "Other", "events": "Other",
}
#: The columns of the cost table, in order (FOCUS 1.0 names in snake_case, then the MSP's dimensions).
COLUMNS = (
    "source", "source_id", "charge_date", "billed_cost", "effective_cost", "list_cost", "contracted_cost",
    "billing_currency", "charge_category", "charge_class", "charge_frequency", "charge_description",
    "charge_period_start", "charge_period_end", "billing_period_start", "billing_period_end",
    "billing_account_id", "provider_name", "publisher_name", "invoice_issuer_name", "service_name",
    "service_category", "sub_account_id", "sub_account_name", "resource_id", "resource_name", "resource_type",
    "region_id", "sku_id", "consumed_quantity", "consumed_unit", "pricing_category", "commitment_discount_id",
    "tags", "department", "client_id", "vendor_id", "expense_category", "dt")


def _tag(tags: ibis.Value, key: str) -> ibis.Value:
    """A string tag's value from the FOCUS ``Tags`` JSON text (null when absent); a regular expression, so
    the same expression runs on DuckDB and Spark."""
    return tags.re_extract(rf'"{key}"\s*:\s*"([^"]*)"', 1).nullif("")


def focus_lines(focus: ibis.Table, untagged_department: str) -> ibis.Table:
    """FOCUS export rows → cost-table rows (``source = cloud``)."""
    import ibis

    f = focus
    return f.select(
        source=ibis.literal("cloud"), source_id=f.id.cast("string"),
        charge_date=f.charge_period_start.cast("date"),
        billed_cost=f.billed_cost.cast(MONEY), effective_cost=f.effective_cost.cast(MONEY),
        list_cost=f.list_cost.cast(MONEY), contracted_cost=f.contracted_cost.cast(MONEY),
        billing_currency=f.billing_currency, charge_category=f.charge_category, charge_class=f.charge_class,
        charge_frequency=f.charge_frequency, charge_description=f.charge_description,
        charge_period_start=f.charge_period_start, charge_period_end=f.charge_period_end,
        billing_period_start=f.billing_period_start, billing_period_end=f.billing_period_end,
        billing_account_id=f.billing_account_id, provider_name=f.provider_name, publisher_name=f.publisher_name,
        invoice_issuer_name=f.invoice_issuer_name, service_name=f.service_name,
        service_category=f.service_category, sub_account_id=f.sub_account_id, sub_account_name=f.sub_account_name,
        resource_id=f.resource_id, resource_name=f.resource_name, resource_type=f.resource_type,
        region_id=f.region_id, sku_id=f.sku_id, consumed_quantity=f.consumed_quantity.cast(QTY),
        consumed_unit=f.consumed_unit, pricing_category=f.pricing_category,
        commitment_discount_id=f.commitment_discount_id, tags=f.tags,
        department=_tag(f.tags, "business_unit").fill_null(untagged_department),
        client_id=_tag(f.tags, "client_id"), vendor_id=ibis.null().cast("string"),
        expense_category=ibis.null().cast("string"), dt=f.dt)


def _service_category(category: ibis.Value) -> ibis.Value:
    import ibis

    return ibis.cases(*[(category == k, v) for k, v in SERVICE_CATEGORY.items()], else_="Other")


def expense_lines(expenses: ibis.Table) -> ibis.Table:
    """PSA expense rows → cost-table rows (``source = expenses``)."""
    import ibis

    e = expenses
    day = e.expense_date.cast("date")
    start = day.cast("timestamp")
    month = day.truncate("M").cast("timestamp")
    amount = e.amount.cast(MONEY)
    return e.select(
        source=ibis.literal("expenses"), source_id=e.expense_id, charge_date=day, billed_cost=amount,
        effective_cost=amount, list_cost=amount, contracted_cost=amount, billing_currency=e.currency,
        charge_category=ibis.literal("Purchase"), charge_class=ibis.null().cast("string"),
        charge_frequency=ibis.ifelse(e.recurring, "Recurring", "One-Time"), charge_description=e.description,
        charge_period_start=start, charge_period_end=start + ibis.interval(days=1),
        billing_period_start=month, billing_period_end=month + ibis.interval(months=1),
        billing_account_id=ibis.null().cast("string"), provider_name=e.vendor_name, publisher_name=e.vendor_name,
        invoice_issuer_name=e.vendor_name, service_name=e.category, service_category=_service_category(e.category),
        sub_account_id=ibis.null().cast("string"), sub_account_name=ibis.null().cast("string"),
        resource_id=ibis.null().cast("string"), resource_name=ibis.null().cast("string"),
        resource_type=ibis.null().cast("string"), region_id=ibis.null().cast("string"),
        sku_id=ibis.null().cast("string"),
        consumed_quantity=ibis.literal(1).cast(QTY), consumed_unit=ibis.literal("Purchase"),
        pricing_category=ibis.literal("Standard"), commitment_discount_id=ibis.null().cast("string"),
        tags=ibis.null().cast("string"), department=e.department, client_id=ibis.null().cast("string"),
        vendor_id=e.vendor_id, expense_category=e.category, dt=e.dt)


def billing_days(days: Iterable[date]) -> ibis.Table:
    """The run's days with what the licence billing rule needs: day of month, days in the month, month index."""
    import ibis
    import pyarrow as pa

    ds = sorted(set(days))
    return ibis.memtable(pa.table({
        "day": pa.array(ds, pa.date32()),
        "dom": pa.array([d.day for d in ds], pa.int32()),
        "last_dom": pa.array([calendar.monthrange(d.year, d.month)[1] for d in ds], pa.int32()),
        "month_index": pa.array([d.year * 12 + d.month - 1 for d in ds], pa.int32()),
        "day_text": pa.array([d.isoformat() for d in ds], pa.string()),
    }))


def licence_lines(entitlements: ibis.Table, days: ibis.Table, department: str) -> ibis.Table:
    """Licence charges on the given days (see the module docstring) from every exported entitlement version."""
    import ibis

    e = entitlements
    w = ibis.window(group_by=e.entitlement_id, order_by=[e.dt, e.updated_at])
    v = e.mutate(valid_to=e.dt.lead().over(w))
    start = v.start_date.cast("date")
    v = v.mutate(start_dom=start.day(), start_month=start.year() * 12 + start.month() - 1, start_day=start)
    j = v.join(days, [v.dt <= days.day_text, v.valid_to.isnull() | (v.valid_to > days.day_text)])
    on_day = (j.start_dom == j.dom) | ((j.start_dom > j.last_dom) & (j.dom == j.last_dom))
    live = (j.status == "active") & (j.start_day <= j.day) & (j.auto_renew | (j.day < j.renewal_date.cast("date")))
    j = j.filter(on_day & live)
    monthly = (j.seats.cast("decimal(38,11)") * j.unit_price.cast(MONEY)).cast(MONEY)
    annual = j.billing_frequency == "annual"
    anniversary = ((j.month_index - j.start_month) % 12) == 0
    billed = ibis.ifelse(annual, ibis.ifelse(anniversary, (monthly * 12).cast(MONEY), ibis.literal(0).cast(MONEY)),
                         monthly)
    start_ts = j.day.cast("timestamp")
    return j.select(
        source=ibis.literal("licences"), source_id=j.entitlement_id + "|" + j.day_text, charge_date=j.day,
        billed_cost=billed.cast(MONEY), effective_cost=monthly, list_cost=monthly, contracted_cost=monthly,
        billing_currency=ibis.literal("USD"), charge_category=ibis.literal("Purchase"),
        charge_class=ibis.null().cast("string"), charge_frequency=ibis.literal("Recurring"),
        charge_description=j.sku_name + " x " + j.seats.cast("string") + " seats (" + j.billing_frequency + ")",
        charge_period_start=start_ts, charge_period_end=start_ts + ibis.interval(months=1),
        billing_period_start=j.day.truncate("M").cast("timestamp"),
        billing_period_end=j.day.truncate("M").cast("timestamp") + ibis.interval(months=1),
        billing_account_id=ibis.null().cast("string"), provider_name=j.vendor, publisher_name=j.vendor,
        invoice_issuer_name=j.vendor, service_name=j.sku_name, service_category=ibis.literal("Business Applications"),
        sub_account_id=ibis.null().cast("string"), sub_account_name=ibis.null().cast("string"),
        resource_id=ibis.null().cast("string"), resource_name=ibis.null().cast("string"),
        resource_type=ibis.null().cast("string"), region_id=ibis.null().cast("string"), sku_id=j.sku_id,
        consumed_quantity=j.seats.cast(QTY), consumed_unit=ibis.literal("Seats"),
        pricing_category=ibis.literal("Committed"), commitment_discount_id=ibis.null().cast("string"),
        tags=ibis.null().cast("string"), department=ibis.literal(department), client_id=j.client_id,
        vendor_id=ibis.null().cast("string"), expense_category=ibis.null().cast("string"), dt=j.day_text)


def transform(focus: ibis.Table | None, expenses: ibis.Table | None, entitlements: ibis.Table | None,
              days: Sequence[date], cfg: DsaSettings) -> ibis.Table:
    """The cost table's rows for the run: every source row of the run's export days, and the licence charges
    of the run's days."""
    parts = []
    if focus is not None:
        parts.append(focus_lines(focus, cfg.untagged_department))
    if expenses is not None:
        parts.append(expense_lines(expenses))
    if entitlements is not None and days:
        parts.append(licence_lines(entitlements, billing_days(days), cfg.licence_department))
    parts = [conform(p) for p in parts]
    out = parts[0]
    for p in parts[1:]:
        out = out.union(p)
    return out


def conform(expr: ibis.Table) -> ibis.Table:
    """Columns in the cost table's order and declared types (nullable, UTC timestamps), so the parts union."""
    import schemas

    declared = schemas.get(COSTS).ibis_schema()
    return expr.select(**{c: expr[c].cast(declared[c].copy(nullable=True)) for c in COLUMNS})


def leaf_key(costs: ibis.Table, tag_keys: Sequence[str]) -> dict[str, ibis.Value]:
    """The columns of a cost line (leaf) of the anomaly monitors, from cost-table rows."""
    import ibis

    c = costs
    parts = []
    for k in tag_keys:
        v = _tag(c.tags.fill_null(""), k)
        parts.append(ibis.ifelse(v.isnull(), "", f'"{k}": "' + v.fill_null("") + '"'))
    if parts:
        body = parts[0]
        for p in parts[1:]:
            body = ibis.ifelse((body == "") | (p == ""), body + p, body + ", " + p)
        tags = ibis.ifelse(body == "", "", "{" + body + "}")
    else:
        tags = ibis.literal("")
    return {"source": c.source, "department": c.department,
            "vendor": c.provider_name,
            "service": ibis.ifelse(c.source == "expenses", c.expense_category.fill_null(c.service_name),
                                   c.service_name),
            "account": c.sub_account_id.fill_null(""), "resource": c.resource_id.fill_null(""),
            "recurring": c.charge_frequency == "Recurring", "tags": tags}


def leaf_daily(costs: ibis.Table, tag_keys: Sequence[str]) -> ibis.Table:
    """Daily spend (BilledCost) and number of charges of every cost line."""
    key = leaf_key(costs, tag_keys)
    t = costs.mutate(**{f"_{k}": v for k, v in key.items()})
    g = t.group_by([t.dt, *[t[f"_{k}"] for k in key]]).aggregate(cost=t.billed_cost.sum().cast(MONEY),
                                                                  lines=t.billed_cost.count())
    return g.select(day=g.dt.cast("date"), **{k: g[f"_{k}"] for k in key}, cost=g.cost, lines=g.lines.cast("int64"),
                    dt=g.dt)


def reconcile(sources: dict[str, Any], costs: Any, engine) -> dict[str, tuple[Decimal, Decimal]]:
    """Σ source amount and Σ BilledCost per source (expenses, cloud), exactly; raises when they differ."""
    got = {}
    totals = engine.to_pandas(costs.group_by("source").aggregate(total=costs.billed_cost.sum()))
    have = {r["source"]: Decimal(str(r["total"])) for r in totals.to_dict("records") if r["total"] is not None}
    for name, (table, column) in sources.items():
        if table is None:
            continue
        v = engine.to_pandas(table.aggregate(total=table[column].cast(MONEY).sum()))["total"].iloc[0]
        want = Decimal(str(v)) if v is not None else Decimal(0)
        got[name] = (want, have.get(name, Decimal(0)))
        if got[name][0] != got[name][1]:
            raise ValueError(f"{COSTS}: {name} BilledCost {got[name][1]} does not reconcile with the source "
                             f"amount {got[name][0]}; nothing was published")
    return got


def run(ctx: RunContext) -> None:
    """Map the run's export days of the cloud export and the expenses, and the licence charges of its days,
    into ``processed.spend_costs``; their cost lines' daily spend into ``processed.spend_leaf_daily``."""
    cfg: DsaSettings = ctx.config
    days = ctx.days
    focus = ctx.table(INPUTS["focus"], {"dt": days})
    expenses = ctx.table(INPUTS["expenses"], {"dt": days})
    entitlements = ctx.table(INPUTS["entitlements"], as_of(ctx.end))
    costs = transform(focus, expenses, entitlements, ctx.dates, cfg)
    staged = ctx.engine.arrow(ctx.engine.to_arrow(costs), "dsa_costs")
    checked = reconcile({"expenses": (expenses, "amount"), "cloud": (focus, "billed_cost")}, staged, ctx.engine)
    for name, (want, _) in checked.items():
        ctx.count(COSTS).notes.append(f"{name} BilledCost {want:.2f} reconciles with the source")
    replace = ctx.date_partitions()
    ctx.write(COSTS, staged, replace=replace)
    ctx.write(LEAVES, leaf_daily(staged, cfg.monitor_tag_keys), replace=replace)


def day_range(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]

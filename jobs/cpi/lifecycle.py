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

from lakehouse.transforms import as_of, latest

if TYPE_CHECKING:  # pragma: no cover
    import ibis

    from lakehouse.context import RunContext

TABLE = "processed.client_lifecycle"
AGREEMENTS = "processed.agreements"
CLIENTS = "processed.clients"


def transform(agreements: ibis.Table, clients: ibis.Table, day: date) -> ibis.Table:
    """One row per client from the latest state of its agreements and of the client record."""
    import ibis

    a = latest(agreements, ["agreement_id"])
    a = a.mutate(_ending=a.status.isin(["notice_given", "terminated"]) | a.notice_date.notnull())
    per_client = a.group_by("client_id").aggregate(
        service_start=a.start_date.min(),
        agreements=a.count().cast("int32"),
        open_agreements=(~a._ending).ifelse(1, 0).sum().cast("int32"),
        _last_end=a.end_date.coalesce(a.notice_date).max(where=a._ending),
        _last_notice=a.notice_date.max(where=a._ending),
        contracted_mrr=a.mrr.sum(where=~a._ending).coalesce(0).cast("decimal(14,2)"),
    )
    all_ending = per_client.open_agreements == 0
    per_client = per_client.select(
        "client_id", "service_start", "agreements", "open_agreements", "contracted_mrr",
        notice_date=ibis.ifelse(all_ending, per_client._last_notice, ibis.null("date")),
        service_end=ibis.ifelse(all_ending, per_client._last_end, ibis.null("date")))
    c = latest(clients, ["client_id"])
    c = c.select("client_id", "client_name", "client_type", "industry", "employee_count", "net_terms",
                 client_billing_cycle=c.billing_cycle, created_date=c.created_at.date())
    j = c.left_join(per_client, "client_id")
    out = j.select(*[c[k] for k in c.columns], *[per_client[k] for k in per_client.columns if k != "client_id"])
    status = ibis.cases((out.service_end.isnull(), "active"), (out.service_end <= ibis.literal(day), "churned"),
                        else_="notice_given")
    return out.mutate(agreements=out.agreements.coalesce(0), open_agreements=out.open_agreements.coalesce(0),
                      status=ibis.ifelse(out.agreements.coalesce(0) == 0, "prospect", status),
                      as_of=ibis.literal(day, type="date"))


def run(ctx: RunContext) -> None:
    """Client service start, notice and end dates from agreements (who is active, who is leaving)."""
    day = ctx.end
    out = transform(ctx.table(AGREEMENTS, as_of(day)), ctx.table(CLIENTS, as_of(day)), day)
    ctx.write(TABLE, out, replace=[{}])

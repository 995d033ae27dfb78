"""Rule 2 of the design, SPO opportunity → SLI (DOMAIN.md s. 7, "Sales opportunity → licence compliance
check"): when the Sales agent identifies an opportunity for a client (or for a lead, once it becomes one),
check the tenant before the quote orders seats: the seats bought and free to reuse, the idle seats that can
be reclaimed, and the E3/E5 fit, so that the quote does not over-order annual NCE seats.

Per opportunity event and SKU of the tenant (``analytics.licence_opportunity_checks``):

* **free_seats** = max(0, entitled − assigned) on the latest ``subscribed_skus`` snapshot on or before the
  event day; **idle_seats** = licensed users idle for ``sli.idle_days`` on the latest activity report;
  **reusable_seats** = free + idle.
* **e5_users** / **e3_fit_users**: users on an E5 SKU, and those of them the optimizer lists as downgrade
  candidates or for review (no premium workload seen in ``sli.idle_days``).
* **seats_to_order** (on the tenant's base plan: the SKU with the most assigned seats) = max(0, the
  opportunity's seats − reusable seats); null when the opportunity names no seat count.
* status: ``checked``; ``no_tenant`` (a client with no Microsoft 365 snapshot); ``pending_lead`` (a lead not yet
  a client on the opportunity's day). A pending lead is checked again on the first day the lake shows the client
  won from it (``clients.referral_lead_id``), when that is within ``sli.lead_recheck_days`` of the opportunity.

Every check is a function of the opportunity event and of the inputs as of the check's day (:func:`due_checks`):
the handler never reads its own earlier rows, so a rerun over any window writes the same rows and events. It
publishes ``license.opportunity.checked`` per check (``caused_by`` the opportunity); the event's id is also kept
in the table (``result_event_id``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from lakehouse.events import event_id, make_event
from lakehouse.lake import Range
from lakehouse.transforms import as_of

if TYPE_CHECKING:  # pragma: no cover
    from jobs.sli.settings import SliSettings
    from lakehouse.context import RunContext

CONSUMED_TYPE = "sales.opportunity.identified"
EVENT_TYPE = "license.opportunity.checked"
SOURCE = "sli.on_opportunity"
INBOX = "events.inbox"
CHECKS = "analytics.licence_opportunity_checks"
POSITION = "processed.licence_position"
SAVINGS = "analytics.licence_savings"
UTILISATION = "analytics.licence_utilisation"
CLIENTS = "processed.clients"
NO_SKU = "none"
E5 = ("SPE_E5", "ENTERPRISEPREMIUM")


@dataclass(frozen=True)
class Tenant:
    """What the lake knows of one client's tenant on a day: position rows (latest snapshot), utilisation
    rows (latest report) and the optimizer's downgrade findings of that report."""

    position: Sequence[Mapping[str, Any]] = ()
    utilisation: Sequence[Mapping[str, Any]] = ()
    downgrades: Sequence[Mapping[str, Any]] = ()


def opportunity(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a ``sales.opportunity.identified`` envelope the check needs."""
    data = envelope.get("data") or {}
    return {"event_id": envelope["id"], "time": date.fromisoformat(envelope["time"]),
            "kind": data.get("opportunity_kind"), "period": data.get("period"), "client_id": data.get("client_id"),
            "lead_id": data.get("lead_id"), "seats": data.get("seats")}


def check(opp: Mapping[str, Any], client_id: str | None, tenant: Tenant | None, day: date) -> list[dict[str, Any]]:
    """Rows of one check (pure: the opportunity, the client it resolves to, that client's tenant facts)."""
    base = {"check_date": day, "event_id": opp["event_id"], "opportunity_kind": opp["kind"],
            "opportunity_period": opp["period"], "client_id": client_id, "lead_id": opp["lead_id"],
            "requested_seats": opp["seats"], "snapshot_date": None, "report_date": None}
    empty = {"sku_part_number": NO_SKU, "sku_name": None, "entitled": None, "assigned": None, "free_seats": None,
             "idle_seats": None, "reusable_seats": None, "e5_users": None, "e3_fit_users": None,
             "seats_to_order": None}
    if client_id is None:
        return [{**base, **empty, "status": "pending_lead",
                 "recommendation": f"lead {opp['lead_id']} is not a client yet: checked again when it becomes one"}]
    if tenant is None or not tenant.position:
        seats = opp["seats"]
        return [{**base, **empty, "status": "no_tenant", "seats_to_order": seats,
                 "recommendation": "no Microsoft 365 tenant reported for this client: quote "
                                   + (f"{seats} seat(s)" if seats is not None else "the seats needed")
                                   + ", on a monthly term until usage is known"}]
    idle = {r["sku_part_number"]: int(r.get("idle_seats") or 0) for r in tenant.utilisation}
    report = max((r["report_date"] for r in tenant.utilisation), default=None)
    fits: dict[str, int] = {}
    for f in tenant.downgrades:
        fits[f["sku_part_number"]] = fits.get(f["sku_part_number"], 0) + 1
    rows = []
    base_sku = max(tenant.position, key=lambda r: (int(r["assigned"] or 0), r["sku_part_number"]))["sku_part_number"]
    for p in sorted(tenant.position, key=lambda r: r["sku_part_number"]):
        sku = p["sku_part_number"]
        free = max(int(p["entitled"]) - int(p["assigned"]), 0)
        reusable = free + idle.get(sku, 0)
        is_e5 = sku in E5
        row = {**base, "status": "checked", "sku_part_number": sku, "sku_name": p.get("sku_name"),
               "entitled": int(p["entitled"]), "assigned": int(p["assigned"]), "free_seats": free,
               "idle_seats": idle.get(sku, 0), "reusable_seats": reusable,
               "e5_users": int(p["assigned"]) if is_e5 else None, "e3_fit_users": fits.get(sku, 0) if is_e5 else None,
               "snapshot_date": p["snapshot_date"], "report_date": report, "seats_to_order": None}
        notes = []
        if sku == base_sku and opp["seats"] is not None:
            row["seats_to_order"] = max(int(opp["seats"]) - reusable, 0)
            notes.append(f"{opp['seats']} seat(s) asked, {reusable} reusable ({free} free, {idle.get(sku, 0)} idle): "
                         f"order {row['seats_to_order']}")
        elif reusable:
            notes.append(f"{reusable} seat(s) reusable ({free} free, {idle.get(sku, 0)} idle) before buying more")
        if is_e5 and fits.get(sku):
            notes.append(f"{fits[sku]} of {p['assigned']} E5 user(s) used no E5-only workload: quote E3 for them "
                         "after checking the blockers")
        row["recommendation"] = "; ".join(notes) or "no seats to reuse"
        rows.append(row)
    return rows


def result_event(rows: Sequence[Mapping[str, Any]], day: date) -> dict[str, Any]:
    """``license.opportunity.checked`` for the rows of one check."""
    first = rows[0]
    subject = f"client:{first['client_id']}" if first["client_id"] else f"lead:{first['lead_id']}"
    checked = [r for r in rows if r["status"] == "checked"]
    reusable = sum(int(r["reusable_seats"] or 0) for r in checked)
    to_order = next((r["seats_to_order"] for r in rows if r["seats_to_order"] is not None), None)
    data = {"opportunity_event_id": first["event_id"], "client_id": first["client_id"], "lead_id": first["lead_id"],
            "period": day.isoformat(), "status": first["status"], "requested_seats": first["requested_seats"],
            "reusable_seats": reusable if checked else None, "seats_to_order": to_order,
            "skus": [{"sku": r["sku_part_number"], "free": r["free_seats"], "idle": r["idle_seats"],
                      "e3_fit_users": r["e3_fit_users"]} for r in checked],
            "recommendation": " | ".join(r["recommendation"] for r in rows if r["recommendation"])}
    sources = [{"dataset": INBOX, "keys": {"event_id": first["event_id"], "agent": "sli"}}]
    if checked:
        sources += [{"dataset": POSITION, "keys": {"client_id": first["client_id"],
                                                    "dt": checked[0]["snapshot_date"].isoformat()}}]
        if checked[0]["report_date"]:
            sources.append({"dataset": UTILISATION, "keys": {"client_id": first["client_id"],
                                                              "dt": checked[0]["report_date"].isoformat()}})
    evidence = {"metric": "reusable_seats", "value": float(reusable) if checked else None,
                "threshold": first["requested_seats"], "comparison": ">=", "source_rows": sources}
    return make_event(EVENT_TYPE, SOURCE, subject, day, day.isoformat(), f"check:{first['event_id']}", data, evidence,
                      severity="info", caused_by=[first["event_id"]])


def outgoing_id(rows: Sequence[Mapping[str, Any]], day: date) -> str:
    first = rows[0]
    subject = f"client:{first['client_id']}" if first["client_id"] else f"lead:{first['lead_id']}"
    return event_id(EVENT_TYPE, subject, day.isoformat(), f"check:{first['event_id']}")


def resolve(opp: Mapping[str, Any], lead_clients: Mapping[str, str]) -> str | None:
    """The client an opportunity is about: its own client_id, else the client won from its lead."""
    return opp.get("client_id") or (lead_clients.get(opp["lead_id"]) if opp.get("lead_id") else None)


# ---- the stage ---------------------------------------------------------------------------------------------
COLUMNS = ("check_date", "event_id", "opportunity_kind", "opportunity_period", "client_id", "lead_id", "status",
           "requested_seats", "sku_part_number", "sku_name", "entitled", "assigned", "free_seats", "idle_seats",
           "reusable_seats", "e5_users", "e3_fit_users", "seats_to_order", "recommendation", "snapshot_date",
           "report_date", "result_event_id", "dt")


def _latest(rows: Iterable[Mapping[str, Any]], date_col: str) -> list[Mapping[str, Any]]:
    rows = list(rows)
    top = max((r[date_col] for r in rows), default=None)
    return [r for r in rows if r[date_col] == top]


def tenant_facts(ctx: RunContext, clients: Sequence[str], day: date) -> dict[str, Tenant]:
    """Position, utilisation and downgrade findings of some clients as known on ``day``."""
    if not clients:
        return {}
    where = {"dt": Range((day - timedelta(days=62)).isoformat(), day.isoformat())}
    pos = ctx.table(POSITION, where)
    pos = pos.filter(pos.client_id.isin(list(clients))).to_pyarrow().to_pylist()
    util = ctx.table(UTILISATION, where)
    util = util.filter(util.client_id.isin(list(clients))).to_pyarrow().to_pylist()
    sav = ctx.table(SAVINGS, where)
    sav = sav.filter(sav.client_id.isin(list(clients)) & (sav.finding == "downgrade")).to_pyarrow().to_pylist()
    out = {}
    for c in clients:
        u = _latest([r for r in util if r["client_id"] == c], "report_date")
        rep = u[0]["report_date"] if u else None
        out[c] = Tenant(position=_latest([r for r in pos if r["client_id"] == c], "snapshot_date"), utilisation=u,
                        downgrades=[r for r in sav if r["client_id"] == c and r["report_date"] == rep])
    return out


def lead_clients(ctx: RunContext, day: date) -> dict[str, tuple[str, date]]:
    """lead id -> (the client won from it, the first export day the lake shows it): known on ``day``."""
    clients = ctx.table(CLIENTS, as_of(day))
    rows = clients.filter(clients.referral_lead_id.notnull()).select("referral_lead_id", "client_id", "dt") \
        .to_pyarrow().to_pylist()
    out: dict[str, tuple[str, date]] = {}
    for r in sorted(rows, key=lambda r: (str(r["dt"]), r["client_id"])):
        out.setdefault(r["referral_lead_id"], (r["client_id"], date.fromisoformat(str(r["dt"]))))
    return out


def due_checks(opps: Iterable[Mapping[str, Any]], leads: Mapping[str, tuple[str, date]], days: Iterable[date],
               recheck_days: int) -> dict[date, list[tuple[dict[str, Any], str | None]]]:
    """The checks of ``days`` (pure): day -> [(opportunity, client or None)]. An opportunity is checked on its own
    day, as known then (a lead not yet a client: ``pending_lead``); a pending lead is checked again on the first
    day the lake shows the client won from it, when that is within ``recheck_days`` of the opportunity. So each
    check is a function of the event and of the inputs as of its day, never of the handler's earlier output or
    of the run's window: a rerun over any days writes the same rows."""
    days = set(days)
    out: dict[date, list[tuple[dict[str, Any], str | None]]] = {}
    for o in sorted(opps, key=lambda o: (o["time"], o["event_id"])):
        day = o["time"]
        won = leads.get(o["lead_id"]) if o.get("lead_id") and not o.get("client_id") else None
        if won is not None and won[1] > day:  # a lead on its day, a client later
            if day in days:
                out.setdefault(day, []).append((dict(o), None))
            if won[1] in days and (won[1] - day).days <= recheck_days:
                out.setdefault(won[1], []).append((dict(o), won[0]))
        elif day in days:
            out.setdefault(day, []).append((dict(o), o.get("client_id") or (won[0] if won else None)))
    return out


def run(ctx: RunContext) -> None:
    """Check the tenant of each opportunity routed to SLI on the run's days, and of the pending leads that became
    clients on them (:func:`due_checks`)."""
    import pyarrow as pa

    import schemas
    from lakehouse.agents import registry

    cfg: SliSettings = ctx.config
    lo = (ctx.start - timedelta(days=cfg.lead_recheck_days)).isoformat()
    inbox = [r for r in ctx.read_arrow(INBOX, {"agent": "sli", "dt": Range(lo, ctx.end.isoformat())}).to_pylist()
             if r["event_type"] == CONSUMED_TYPE]
    opps = {o["event_id"]: o for o in (opportunity(json.loads(r["envelope"])) for r in inbox)}
    leads = lead_clients(ctx, ctx.end) if any(o["lead_id"] for o in opps.values()) else {}
    due = due_checks(opps.values(), leads, ctx.dates, cfg.lead_recheck_days)
    rows: list[dict] = []
    events: list[dict] = []
    for when, todo in sorted(due.items()):
        facts = tenant_facts(ctx, sorted({c for _o, c in todo if c}), when)
        for o, client in sorted(todo, key=lambda t: t[0]["event_id"]):
            got = check(o, client, facts.get(client) if client else None, when)
            out_id = outgoing_id(got, when)
            rows += [{**r, "result_event_id": out_id, "dt": when.isoformat()} for r in got]
            events.append(result_event(got, when))
    ds = schemas.get(CHECKS)
    table = pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in rows], schema=ds.arrow_schema())
    ctx.count(CHECKS).notes.append(f"{sum(len(t) for t in due.values())} check(s), {len(rows)} row(s)")
    ctx.write(CHECKS, table, replace=ctx.date_partitions(), audit=None if rows else False)
    stage = ctx.stage
    if stage is not None and registry().may_write(stage, "events.outbox"):
        ctx.emit(EVENT_TYPE, events, ctx.days)
    elif events:
        ctx.count(CHECKS).notes.append(f"{len(events)} {EVENT_TYPE} event(s) built, not published: the handler "
                                       "may not write events.outbox (see jobs/sli/__init__.py)")

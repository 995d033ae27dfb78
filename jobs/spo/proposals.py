"""The ``spo.proposals`` stage: a proposal for every opportunity on the day it becomes eligible.

Eligible are the CRM deals at a qualified stage (qualified, assessment, proposed, verbal: a deal still
"identified" has had no discovery yet) and the generators' renewal, tm_to_managed and whitespace
opportunities opened that day (``analytics.sales_opportunities``). Each opportunity gets one proposal, on its
first eligible day (the stage's own rows of earlier days say which already have one), built from what was
exported on that day:

* a CRM deal: the lead's discovery facts (employees as users, endpoints as devices, locations as sites,
  compliance needs, current IT model, industry) and the managed-services bundle (``spo.managed_bundle``, plus
  ``spo.compliance_bundle`` when compliance needs are named, plus ``spo.onboarding_bundle``);
* tm_to_managed: the same bundle, sized from the client (employees as users, the managed endpoints count);
* renewal: the agreement's fee and its active additions at their current prices (changed by
  ``spo.renewal_price_change_pct``), for its renewal term;
* whitespace: the catalogue's service of the missing category, for the client's users, devices or sites.

The lines and totals are built by :func:`jobs.spo.proposal.build` (pure), and checked to sum before writing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from jobs.spo.common import LEAD_COLUMNS, OPPORTUNITY_COLUMNS, read
from jobs.spo.proposal import Facts, build, proposal_id, totals, writer

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.context import RunContext

PROPOSALS = "analytics.proposals"
LINES = "analytics.proposal_lines"
OPPORTUNITIES = "analytics.sales_opportunities"
QUALIFIED = ("qualified", "assessment", "proposed", "verbal")
GENERATED = ("renewal", "tm_to_managed", "whitespace")
PROPOSAL_COLUMNS = ("proposal_id", "opportunity_id", "proposal_kind", "client_id", "lead_id", "agreement_id",
                    "company_name", "industry", "users", "devices", "devices_estimated", "servers", "sites",
                    "compliance_needs",
                    "current_it_model", "owner", "prepared_on", "valid_until", "term_months", "monthly_total",
                    "one_time_total", "first_year_total", "line_count", "summary", "writer", "dt")
LINE_COLUMNS = ("proposal_id", "line_no", "code", "description", "category", "unit", "billing", "quantity",
                "unit_price", "amount", "source", "dt")


def _int(v) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def _str(v) -> str | None:
    return None if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA else str(v)


class Records:
    """The rows the facts are read from, each looked up as exported on or before a day (pure: frames in)."""

    def __init__(self, inputs: Mapping[str, pd.DataFrame]):
        from models.spo import history as H

        self.H = H

        def by_key(frame: pd.DataFrame, key: str) -> dict[str, pd.DataFrame]:
            if frame is None or frame.empty:
                return {}
            return dict(tuple(H.versions(frame, key).groupby(key, sort=False)))

        self.leads = by_key(inputs["leads"], "lead_id")
        self.clients = by_key(inputs["clients"], "client_id")
        self.agreements = by_key(inputs["agreements"], "agreement_id")
        additions = inputs["additions"]
        self.additions = {} if additions.empty else dict(tuple(H.versions(additions, "addition_id").groupby(
            "agreement_id", sort=False)))
        e = inputs["endpoints"]
        self.endpoints = {} if e is None or e.empty else dict(tuple(
            e.assign(_day=H.day(e["snapshot_date"])).sort_values("_day", kind="mergesort").groupby("client_id",
                                                                                                   sort=False)))

    def _on(self, table: dict[str, pd.DataFrame], value, day) -> dict[str, Any] | None:
        rows = table.get(value)
        if rows is None:
            return None
        rows = rows[rows["_day"] <= self.H.as_timestamp(day)]
        return None if rows.empty else rows.iloc[-1].to_dict()

    def lead(self, lead_id, day):
        return self._on(self.leads, lead_id, day)

    def client(self, client_id, day):
        return self._on(self.clients, client_id, day)

    def agreement(self, agreement_id, day):
        return self._on(self.agreements, agreement_id, day)

    def devices(self, client_id, day) -> tuple[int | None, int | None]:
        """(managed endpoints, servers) of the client's latest count on or before the day."""
        last = self._on(self.endpoints, client_id, day)
        return (None, None) if last is None else (int(last["total_endpoints"]), int(last["servers"]))

    def active_additions(self, agreement_id, day) -> list[dict[str, Any]]:
        v = self.additions.get(agreement_id)
        if v is None:
            return []
        d = self.H.as_timestamp(day)
        v = v[v["_day"] <= d].drop_duplicates("addition_id", keep="last")
        eff, cancel = self.H.day(v["effective_date"]), self.H.day(v["cancelled_date"])
        v = v[(eff <= d) & (cancel.isna() | (cancel >= d))]
        return v.sort_values(["product_code", "addition_id"]).to_dict("records")


def deal_facts(deal: Mapping[str, Any], lead: Mapping[str, Any] | None, day: date) -> Facts:
    lead = lead or {}
    return Facts(opportunity_id=deal["opportunity_id"], kind="new_logo",
                 company_name=_str(lead.get("company_name")) or str(deal.get("opportunity_name")), prepared_on=day,
                 industry=_str(lead.get("industry")), users=_int(lead.get("employees")),
                 devices=_int(lead.get("endpoints")), sites=_int(lead.get("locations")),
                 compliance_needs=_str(lead.get("compliance_needs")),
                 current_it_model=_str(lead.get("current_it_model")),
                 owner=_str(deal.get("owner")), lead_id=_str(deal.get("lead_id")))


def generated_facts(opp: Mapping[str, Any], lake: Records, day: date, cfg) -> Facts | None:
    """Facts of a generated opportunity (a row of ``analytics.sales_opportunities``) from the client's records."""
    client_id = _str(opp.get("client_id"))
    client = lake.client(client_id, day) if client_id else None
    if client is None:
        return None
    devices, servers = lake.devices(client_id, day)
    users = _int(client.get("employee_count"))
    estimated = devices is None and users is not None
    common = {"devices_estimated": estimated, "opportunity_id": opp["opportunity_id"], "kind": opp["opportunity_kind"],
              "company_name": str(client["client_name"]), "prepared_on": day, "industry": _str(client.get("industry")),
              "users": users, "devices": users if estimated else devices, "servers": servers, "sites": 1,
              "client_id": client_id, "current_it_model": "break_fix" if opp["opportunity_kind"] == "tm_to_managed"
              else None}
    kind = opp["opportunity_kind"]
    if kind == "tm_to_managed":
        return Facts(**common, tm_monthly=float(opp["value"]))
    if kind == "whitespace":
        return Facts(**common, category=_str(opp.get("service_category")))
    agreement = lake.agreement(opp["agreement_id"], day)
    if agreement is None:
        return None
    from models.spo import history as H

    by_product = {p: s for s in cfg.catalogue for p in (*s.product_codes, s.code)}
    current = [{"code": "AGREEMENT-FEE", "description": f"{agreement['agreement_name']}: monthly fee",
                "category": "managed_services", "unit": "flat", "quantity": 1,
                "unit_price": H.as_float(pd.Series([agreement["mrr"]])).iloc[0], "source": "agreement"}]
    for a in lake.active_additions(opp["agreement_id"], day):
        s = by_product.get(a["product_code"])
        current.append({"code": a["product_code"], "description": a["product_name"],
                        "category": s.category if s else "addition", "unit": s.unit if s else "flat",
                        "quantity": int(a["quantity"]), "unit_price": float(a["unit_price"]), "source": "addition"})
    term = _int(agreement.get("renewal_term_months")) or _int(agreement.get("term_months"))
    end = H.day(pd.Series([agreement["end_date"]])).iloc[0]
    return Facts(**{**common, "current_it_model": None}, agreement_id=opp["agreement_id"], current_lines=tuple(current),
                 term_months=term, agreement_name=str(agreement["agreement_name"]),
                 agreement_end=None if pd.isna(end) else end.date())


def eligible(deals: pd.DataFrame, generated: pd.DataFrame, days: Sequence, done: set[str]) -> list[tuple]:
    """(day, "deal" | "generated", row) of the opportunities to propose, first eligible day only."""
    from jobs.spo import generators as G

    out: list[tuple] = []
    seen = set(done)
    states = G.deal_states(deals, days) if len(deals) else pd.DataFrame(columns=["day", "stage"])
    states = states[states["stage"].isin(QUALIFIED)] if len(states) else states
    gen = generated[(generated["state"] == "opened") & generated["opportunity_kind"].isin(GENERATED)] \
        if len(generated) else generated
    for day in sorted({pd.Timestamp(d).normalize() for d in days}):
        today = states[states["day"] == day].sort_values("opportunity_id") if len(states) else states
        for r in today.to_dict("records"):
            if proposal_id(r["opportunity_id"]) not in seen:
                seen.add(proposal_id(r["opportunity_id"]))
                out.append((day.date(), "deal", r))
        g = gen[gen["dt"] == day.strftime("%Y-%m-%d")].sort_values("opportunity_id") if len(gen) else gen
        for r in g.to_dict("records"):
            if proposal_id(r["opportunity_id"]) not in seen:
                seen.add(proposal_id(r["opportunity_id"]))
                out.append((day.date(), "generated", r))
    return out


def build_all(inputs: Mapping[str, pd.DataFrame], days: Sequence, done: set[str], cfg, write=None
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(proposals, lines) for the opportunities eligible on ``days`` (pure)."""
    lake = Records(inputs)
    records, lines = [], []
    for day, what, row in eligible(inputs["opportunities"], inputs["generated"], days, done):
        facts = (deal_facts(row, lake.lead(row["lead_id"], day), day) if what == "deal"
                 else generated_facts(row, lake, day, cfg))
        if facts is None:
            continue
        record, ls = build(facts, cfg, write)
        if not ls:
            continue
        t = totals(ls)
        assert all(record[k] == v for k, v in t.items()), f"{record['proposal_id']}: lines do not sum to the totals"
        records.append({**record, "dt": day.isoformat()})
        lines += [{**ln, "dt": day.isoformat()} for ln in ls]
    p = pd.DataFrame(records, columns=list(PROPOSAL_COLUMNS))
    for c in ("users", "devices", "servers", "sites"):
        p[c] = pd.to_numeric(p[c]).astype("Int32")
    return p, pd.DataFrame(lines, columns=list(LINE_COLUMNS))


def load_inputs(ctx: RunContext) -> dict[str, pd.DataFrame]:
    from lakehouse.lake import Range

    endpoints = ctx.table("processed.managed_endpoints", {"dt": Range((ctx.start - timedelta(days=7)).isoformat(),
                                                                        ctx.end.isoformat())})
    endpoints = endpoints.select("client_id", "snapshot_date", "total_endpoints", "servers")
    return {"opportunities": read(ctx, "processed.opportunities", ctx.end, OPPORTUNITY_COLUMNS),
            "leads": read(ctx, "processed.leads", ctx.end, LEAD_COLUMNS),
            "clients": read(ctx, "processed.clients", ctx.end),
            "agreements": read(ctx, "processed.agreements", ctx.end),
            "additions": read(ctx, "processed.agreement_additions", ctx.end),
            "endpoints": ctx.engine.to_pandas(endpoints),
            "generated": ctx.read_pandas(OPPORTUNITIES, {"dt": ctx.days})}


def run(ctx: RunContext) -> None:
    """Prepare the proposals of the opportunities eligible on the run's days."""
    from lakehouse.lake import Range

    cfg = ctx.config
    before = (ctx.start - timedelta(days=1)).isoformat()
    done = set(ctx.read_pandas(PROPOSALS, {"dt": Range(None, before)})["proposal_id"])
    proposals, lines = build_all(load_inputs(ctx), ctx.dates, done, cfg, writer(cfg))
    ctx.count(PROPOSALS).notes.append(f"{len(proposals)} proposal(s), {len(lines)} pricing line(s)")
    ctx.write(PROPOSALS, proposals, replace=ctx.date_partitions())
    ctx.write(LINES, lines, replace=ctx.date_partitions())

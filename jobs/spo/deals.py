"""Rule 4 (DOMAIN.md section 7), SPO's proposals: taking a low-margin deal needs the agreement of two agents.

For each proposal ``spo.proposals`` prepared on the run's days for an existing client (``analytics.proposals``
with a ``client_id``: renewals, T&M to managed, whitespace), the client's margin over its
``spo.low_margin_months`` complete calendar months before the proposal's day is profit / billed x 100 of CPI's
``processed.client_profitability_monthly``. Below ``spo.low_margin_deal_pct`` the deal is a low-margin deal:
SPO publishes ``sales.deal.proposed`` (action ``low_margin_deal``), a consensus proposal. SPO's proposal is its
approval; RAM votes (``jobs/ram/votes.py``): technician utilization above ``ram.utilization_veto_pct`` vetoes it
(no capacity to serve it well), else approves. New logos have no margin yet and are not proposed.

Each proposal is a function of the proposal row and of the months before its day: a rerun over any days
publishes the same events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from lakehouse.transforms import add_months, month_of

if TYPE_CHECKING:  # pragma: no cover
    from jobs.spo.settings import SpoSettings
    from lakehouse.context import RunContext

EVENT_TYPE = "sales.deal.proposed"
SOURCE = "spo.deal_review"
PROPOSALS = "analytics.proposals"
PROFIT = "processed.client_profitability_monthly"


def months_before(day: date, n: int) -> list[str]:
    """The ``n`` complete calendar months before ``day``'s month, oldest first."""
    last = add_months(month_of(day), -1)
    return [add_months(last, -i) for i in range(n - 1, -1, -1)]


def low_margin_deals(proposals: Iterable[Mapping[str, Any]], profit: Iterable[Mapping[str, Any]],
                     cfg: SpoSettings) -> list[dict[str, Any]]:
    """``sales.deal.proposed`` events (pure): the proposals for existing clients whose margin over the months
    before their day is below ``cfg.low_margin_deal_pct``."""
    from lakehouse.events import make_event

    by_key = {(r["client_id"], r["month"]): r for r in profit}
    events = []
    for p in sorted(proposals, key=lambda r: (str(r["dt"]), r["proposal_id"])):
        client = p.get("client_id")
        if not client:
            continue
        day = date.fromisoformat(str(p["dt"]))
        months = months_before(day, cfg.low_margin_months)
        rows = [by_key[(client, m)] for m in months if (client, m) in by_key]
        billed = sum(float(r["billed"] or 0) for r in rows)
        if len(rows) < len(months) or billed <= 0:
            continue  # no full history of the client to judge the margin by
        margin = round(100.0 * sum(float(r["profit"] or 0) for r in rows) / billed, 2)
        if margin >= cfg.low_margin_deal_pct:
            continue
        monthly = float(p["monthly_total"]) if p.get("monthly_total") is not None else None
        data = {"proposal_id": f"deal:{p['proposal_id']}", "action": "low_margin_deal", "client_id": client,
                "spo_proposal_id": p["proposal_id"], "opportunity_id": p.get("opportunity_id"),
                "proposal_kind": p.get("proposal_kind"), "monthly_total": monthly, "margin_pct": margin,
                "threshold_pct": float(cfg.low_margin_deal_pct), "months": months,
                "summary": f"{p.get('proposal_kind')} deal for {client}, whose margin was {margin:.1f} % over "
                           f"{months[0]}..{months[-1]} (< {cfg.low_margin_deal_pct:.0f} %)"}
        evidence = {"metric": "margin_pct", "value": margin, "threshold": float(cfg.low_margin_deal_pct),
                    "comparison": "<",
                    "source_rows": [{"dataset": PROPOSALS, "keys": {"proposal_id": p["proposal_id"],
                                                                    "dt": day.isoformat()}},
                                    *({"dataset": PROFIT, "keys": {"client_id": client, "month": m}}
                                      for m in months)]}
        events.append(make_event(EVENT_TYPE, SOURCE, f"client:{client}", day, p["proposal_id"], "low_margin_deal",
                                 data, evidence, severity="warning"))
    return events


def run(ctx: RunContext) -> None:
    """The ``spo.deal_review`` stage: the run's low-margin deals, as consensus proposals."""
    cfg: SpoSettings = ctx.config
    proposals = [r for r in ctx.read_arrow(PROPOSALS, {"dt": ctx.days}).to_pylist() if r.get("client_id")]
    profit: list[dict[str, Any]] = []
    if proposals:
        months = sorted({m for p in proposals for m in months_before(date.fromisoformat(str(p["dt"])),
                                                                        cfg.low_margin_months)})
        t = ctx.table(PROFIT, {"month": months})
        clients = sorted({p["client_id"] for p in proposals})
        profit = t.filter(t.client_id.isin(clients)).select("client_id", "month", "billed", "profit") \
            .to_pyarrow().to_pylist()
    events = low_margin_deals(proposals, profit, cfg) if cfg.propose_low_margin_deals else []
    ctx.count("events.outbox").notes.append(f"{len(proposals)} client proposal(s), {len(events)} low-margin deal(s)")
    ctx.emit(EVENT_TYPE, events)

"""The ``spo.opportunities`` stage: the generators' findings become episodes, and each episode state change an
event (``sales.opportunity.identified``) and a row of ``analytics.sales_opportunities``.

An episode is one condition of one subject (:mod:`jobs.spo.generators`: ``condition``) from the day it was
first met until the day it no longer holds. On each run day, in order:

* a finding whose condition has no open episode and ``may_open`` opens one: state ``opened``, with the
  generator's evidence;
* a stalled deal still silent at ``stalled_critical_days`` moves its episode to ``worsened`` (once);
* an open episode whose condition no longer holds is ``closed``, with why (the deal was won, lost or
  touched again, the close date moved, the agreement renewed or ended, the client signed a managed agreement,
  the service was adopted...).

Open episodes carry over between runs through the stage's own table (its rows before the run's first day),
so a day's events are the same whether it runs alone or in a backfill, and a persisting condition makes one
event, not one a day. Ids are deterministic: the event id hashes (type, subject, opened day, kind:state:key),
the episode id (type, subject, condition, opened day); a rerun replaces the stage's outbox partitions of its
days with the same events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jobs.spo.common import ACTIVITY_COLUMNS, OPPORTUNITY_COLUMNS, read
from lakehouse.events import episode_id, event_id, make_event
from lakehouse.transforms import concat_frames

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.context import RunContext

EVENT_TYPE = "sales.opportunity.identified"
SOURCE = "spo.opportunities"
TABLE = "analytics.sales_opportunities"
ROW_COLUMNS = ("event_id", "episode_id", "opportunity_id", "opportunity_kind", "state", "opened_on", "condition",
               "subject", "client_id", "lead_id", "agreement_id", "service_category", "owner", "metric", "value",
               "threshold", "comparison", "expected_mrr", "expected_one_time", "seats", "severity",
               "suggested_action", "resolution", "summary", "dt")
SOURCES = {"stalled_deal": ("processed.opportunities", "processed.activities"),
           "close_date_passed": ("processed.opportunities",),
           "renewal": ("processed.agreements",),
           "tm_to_managed": ("processed.invoice_lines", "processed.agreements"),
           "whitespace": ("processed.agreement_additions", "processed.agreements")}


def generated_id(episode: str) -> str:
    """The opportunity id of a generated opportunity: ``SO-`` and 10 hex digits of its episode id."""
    return "SO-" + hashlib.sha256(episode.encode()).hexdigest()[:10].upper()


def _money(v: Any) -> str:
    return f"{float(v):,.2f}" if v is not None and not pd.isna(v) else "n/a"


def action(kind: str, f: Mapping[str, Any], state: str) -> str:
    """What a seller should do about a finding."""
    if kind == "stalled_deal":
        return ("Call the prospect today and agree the next step; escalate to the sales lead" if state == "worsened"
                else "Re-engage: send a follow-up and book the next meeting")
    if kind == "close_date_passed":
        return "Update the expected close date or close the deal as lost with its reason"
    if kind == "renewal":
        return ("Prepare the renewal packet: 12-month margin and EHR, licence right-sizing, vendor price changes, "
                "churn risk (DOMAIN.md section 7), then send the renewal proposal")
    if kind == "tm_to_managed":
        return "Propose a managed-services agreement: a flat fee instead of unpredictable T&M invoices"
    return f"Offer {f.get('service_category')} at the next QBR"


def summary(kind: str, f: Mapping[str, Any], state: str, names: Mapping[str, str]) -> str:
    who = names.get(str(f.get("client_id")), f.get("client_id")) or f.get("opportunity_id")
    if kind == "stalled_deal":
        return (f"Deal {f['opportunity_id']} ({f.get('stage')}, owner {f.get('owner')}) has had no activity for "
                f"{int(f['value'])} days (threshold {int(f['threshold'])}); MRR {_money(f.get('expected_mrr'))}")
    if kind == "close_date_passed":
        return (f"Deal {f['opportunity_id']} ({f.get('stage')}) is {int(f['value'])} day(s) past its expected close "
                f"date; MRR {_money(f.get('expected_mrr'))}")
    if kind == "renewal":
        return (f"Agreement {f['agreement_id']} of {who} ends in {int(f['value'])} days (window "
                f"{int(f['threshold'])}); fee {_money(f.get('expected_mrr'))}/month")
    if kind == "tm_to_managed":
        return (f"{who} was billed {_money(f['value'])}/month of time and materials on average over the last "
                f"{int(f.get('days') or 0)} months (threshold {_money(f['threshold'])}) without a managed agreement")
    return (f"{who} lacks {f.get('service_category')}, which {f['value']:.0%} of the contract clients have "
            f"(threshold {f['threshold']:.0%})")


def _severity(kind: str, state: str) -> str:
    if state == "closed":
        return "info"
    if state == "worsened":
        return "critical"
    return "warning" if kind in ("stalled_deal", "close_date_passed", "renewal") else "info"


def _text(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v == "" else v


def _row(finding: Mapping[str, Any], kind: str, state: str, opened: pd.Timestamp, day: pd.Timestamp,
         names: Mapping[str, str], resolution: str | None = None) -> dict[str, Any]:
    subject = finding["subject"]
    condition = finding["condition"]
    ep = episode_id(EVENT_TYPE, subject, condition, opened.date())
    opp = finding.get("opportunity_id")
    opp = _text(opp) or generated_id(ep)
    ev = event_id(EVENT_TYPE, subject, opened.date().isoformat(), f"{state}:{condition}")

    def num(k):
        v = finding.get(k)
        return None if v is None or (isinstance(v, float) and np.isnan(v)) or pd.isna(v) else float(v)

    return {"event_id": ev, "episode_id": ep, "opportunity_id": opp, "opportunity_kind": kind, "state": state,
            "opened_on": opened.date(), "condition": condition, "subject": subject,
            "client_id": _text(finding.get("client_id")), "lead_id": _text(finding.get("lead_id")),
            "agreement_id": _text(finding.get("agreement_id")),
            "service_category": _text(finding.get("service_category")), "owner": _text(finding.get("owner")),
            "metric": finding["metric"], "value": num("value"), "threshold": num("threshold"),
            "comparison": finding["comparison"], "expected_mrr": num("expected_mrr"),
            "expected_one_time": num("expected_one_time"),
            "seats": None if num("seats") is None else int(num("seats")), "severity": _severity(kind, state),
            "suggested_action": action(kind, finding, state), "resolution": resolution,
            "summary": summary(kind, finding, state, names) if state != "closed" else
            f"Closed: {resolution} ({kind.replace('_', ' ')} of {subject}, opened {opened.date()})",
            "score": num("score") if state != "closed" else None, "dt": day.strftime("%Y-%m-%d")}


def episodes(findings: pd.DataFrame, days: Sequence, open_before: Mapping[str, dict[str, Any]], *,
             critical_days: int, names: Mapping[str, str] | None = None, why_closed=None) -> list[dict[str, Any]]:
    """Rows of episode state changes on ``days`` (see the module docstring). ``open_before``: condition →
    the last row of each episode still open before the first day; ``why_closed(row, day)`` says why one closed."""
    names = names or {}
    open_: dict[str, dict[str, Any]] = {k: dict(v) for k, v in open_before.items()}
    by_day: dict[pd.Timestamp, dict[str, dict[str, Any]]] = {}
    for r in findings.to_dict("records"):
        by_day.setdefault(pd.Timestamp(r["day"]), {})[r["condition"]] = r
    out: list[dict[str, Any]] = []
    for day in sorted({pd.Timestamp(d).normalize() for d in days}):
        recs = by_day.get(day, {})
        for cond in sorted(open_):
            ep = open_[cond]
            f = recs.get(cond)
            if f is None or not f["holds"]:
                reason = why_closed(ep, day) if why_closed else "the condition no longer holds"
                row = _row(ep["_finding"], ep["opportunity_kind"], "closed", pd.Timestamp(ep["opened_on"]), day,
                           names, reason)
                out.append(row)
                del open_[cond]
                continue
            if (ep["opportunity_kind"] == "stalled_deal" and ep["state"] == "opened"
                    and f["value"] >= critical_days):
                f = {**f, "threshold": float(critical_days)}
                row = _row(f, "stalled_deal", "worsened", pd.Timestamp(ep["opened_on"]), day, names)
                out.append(row)
                open_[cond] = {**row, "_finding": f}
        for cond in sorted(recs):
            f = recs[cond]
            if cond in open_ or not f["may_open"]:
                continue
            row = _row(f, f["kind"], "opened", day, day, names)
            out.append(row)
            open_[cond] = {**row, "_finding": f}
    return out


def open_episodes(previous: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Condition → the last row of each episode not closed, from the stage's rows of earlier days."""
    if previous.empty:
        return {}
    prev = previous.sort_values(["dt", "event_id"], kind="mergesort")
    last = prev.drop_duplicates("episode_id", keep="last")
    last = last[last["state"] != "closed"]
    out = {}
    for r in last.to_dict("records"):
        r = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        finding = {**r, "kind": r["opportunity_kind"]}
        out[r["condition"]] = {**r, "_finding": finding}
    return out


def closing_reasons(deals: pd.DataFrame, agreements: pd.DataFrame, additions_owned: set, served: set):
    """``why_closed(row, day)`` from the day's deal and agreement states."""
    deal_ix = deals.set_index(["opportunity_id", "day"]).sort_index() if len(deals) else None
    agr_ix = agreements.set_index(["agreement_id", "day"]).sort_index() if len(agreements) else None

    def lookup(ix, key):
        if ix is None or key not in ix.index:
            return None
        row = ix.loc[key]
        return row.iloc[-1] if isinstance(row, pd.DataFrame) else row

    def why(ep: Mapping[str, Any], day: pd.Timestamp) -> str:
        kind = ep["opportunity_kind"]
        if kind in ("stalled_deal", "close_date_passed"):
            d = lookup(deal_ix, (ep["opportunity_id"], day))
            if d is None:
                return "the deal is no longer exported"
            if d["stage"] in ("won", "lost"):
                return f"the deal was {d['stage']}"
            if kind == "stalled_deal":
                return "activity resumed"
            return f"the expected close date moved to {pd.Timestamp(d['expected_close']).date()}"
        if kind == "renewal":
            a = lookup(agr_ix, (ep["agreement_id"], day))
            if a is None:
                return "the agreement is no longer exported"
            if a["status"] != "active":
                return f"the agreement is {a['status'].replace('_', ' ')}"
            if pd.notna(a["end"]) and str(pd.Timestamp(a["end"]).date()) not in ep["condition"]:
                return f"renewed: the term now ends {pd.Timestamp(a['end']).date()}"
            return "the term ended"
        if kind == "tm_to_managed":
            return ("a flat-fee agreement is active" if (ep["client_id"], day) in served
                    else "the T&M average fell below the threshold")
        if (ep["client_id"], ep["service_category"], day) in additions_owned:
            return "the service was adopted"
        return "the client is no longer a contract client" if (ep["client_id"], day) not in served else \
            "the condition no longer holds"

    return why


def find_all(inputs: Mapping[str, pd.DataFrame], days: Sequence, cfg) -> dict[str, Any]:
    """Every generator's findings over ``days`` and what says why an episode closed (pure)."""
    from jobs.spo import generators as G

    agreements = G.agreement_states(inputs["agreements"], days)
    categories = cfg.category_of_product()
    price = {}
    for s in cfg.catalogue:  # the first recurring service of each category is what a proposal would add
        if s.billing == "recurring" and s.category not in price:
            price[s.category] = (float(s.price), s.unit)
    whitespace, owned = G.whitespace_findings(agreements, inputs["additions"], categories, days,
                                              min_adoption=cfg.whitespace_min_adoption, list_price=price,
                                              users=_users(inputs["clients"]))
    parts = [G.deal_findings(inputs["opportunities"], inputs["activities"], days, stalled_days=cfg.stalled_days,
                             lead_scores=inputs.get("lead_scores")),
             G.renewal_findings(agreements, window_days=cfg.renewal_window_days),
             G.tm_findings(inputs["labour"], agreements, days, threshold=cfg.tm_monthly_threshold,
                           months=cfg.tm_trailing_months),
             whitespace]
    parts = [p for p in parts if len(p)]
    findings = concat_frames(parts) if parts else pd.DataFrame(columns=G.FINDING)  # a renewal has no lead
    deals = G.deal_states(inputs["opportunities"], days)
    active = agreements.loc[G.flat_fee_active(agreements), ["client_id", "day"]] if len(agreements) else None
    served = set(zip(active["client_id"], active["day"], strict=True)) if active is not None else set()
    return {"findings": findings, "why": closing_reasons(deals, agreements, owned, served),
            "names": _names(inputs["clients"])}


def _names(clients: pd.DataFrame) -> dict[str, str]:
    if clients.empty:
        return {}
    from models.spo import history as H

    c = H.latest(clients, "client_id")
    return dict(zip(c["client_id"], c["client_name"], strict=True))


def _users(clients: pd.DataFrame) -> dict[str, int]:
    if clients.empty:
        return {}
    from models.spo import history as H

    c = H.latest(clients, "client_id")
    return {k: int(v) for k, v in zip(c["client_id"], c["employee_count"], strict=True) if pd.notna(v)}


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(columns=list(ROW_COLUMNS))
    out = pd.DataFrame(rows)
    out["seats"] = pd.to_numeric(out["seats"]).astype("Int32")
    from decimal import ROUND_HALF_UP, Decimal

    for c in ("expected_mrr", "expected_one_time"):
        out[c] = pd.Series([None if v is None or pd.isna(v) else
                            Decimal(str(round(float(v), 6))).quantize(Decimal("0.01"), ROUND_HALF_UP)
                            for v in out[c]], index=out.index, dtype=object)
    return out.sort_values(["dt", "event_id"], kind="mergesort").reset_index(drop=True)


def to_event(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``sales.opportunity.identified`` event of a row."""
    kind = row["opportunity_kind"]
    def number(v):
        return None if v is None or pd.isna(v) else float(v)

    data = {"opportunity_kind": kind, "opportunity_id": row["opportunity_id"], "state": row["state"],
            "period": row["opened_on"].isoformat(), "client_id": row["client_id"], "lead_id": row["lead_id"],
            "agreement_id": row["agreement_id"], "service_category": row["service_category"], "owner": row["owner"],
            "score": number(row.get("score")), "expected_mrr": number(row["expected_mrr"]),
            "expected_one_time": number(row["expected_one_time"]),
            "seats": None if row["seats"] is None or pd.isna(row["seats"]) else int(row["seats"]),
            "suggested_action": row["suggested_action"], "resolution": row["resolution"]}
    keys = {"stalled_deal": {"opportunity_id": row["opportunity_id"]},
            "close_date_passed": {"opportunity_id": row["opportunity_id"]},
            "renewal": {"agreement_id": row["agreement_id"]}, "tm_to_managed": {"client_id": row["client_id"]},
            "whitespace": {"client_id": row["client_id"]}}[kind]
    sources = [{"dataset": ds, "keys": dict(keys)} for ds in SOURCES[kind]]
    evidence = {"metric": row["metric"], "value": row["value"], "threshold": row["threshold"],
                "comparison": row["comparison"], "source_rows": sources}
    day = date.fromisoformat(row["dt"])
    episode = {"id": row["episode_id"], "state": row["state"], "opened": row["opened_on"].isoformat()}
    if row["state"] == "closed":
        episode["closed"] = row["dt"]
    ev = make_event(EVENT_TYPE, SOURCE, row["subject"], day, row["opened_on"].isoformat(),
                    f"{row['state']}:{row['condition']}", data, evidence, severity=row["severity"], episode=episode)
    assert ev["id"] == row["event_id"]
    return ev


def load_inputs(ctx: RunContext) -> dict[str, pd.DataFrame]:
    """Everything the generators read, exported up to the run's last day."""
    from datetime import timedelta

    cfg = ctx.config
    since = ctx.start - timedelta(days=31 * (cfg.tm_trailing_months + 1))
    return {
        "opportunities": read(ctx, "processed.opportunities", ctx.end, OPPORTUNITY_COLUMNS),
        "activities": read(ctx, "processed.activities", ctx.end, ACTIVITY_COLUMNS,
                           where=lambda t: t.opportunity_id.notnull()),
        "agreements": read(ctx, "processed.agreements", ctx.end),
        "additions": read(ctx, "processed.agreement_additions", ctx.end),
        "labour": read(ctx, "processed.invoice_lines", ctx.end, ("client_id", "amount", "created_at", "dt"),
                       since=since, where=lambda t: t.line_type == "labour"),
        "clients": read(ctx, "processed.clients", ctx.end, ("client_id", "client_name", "employee_count", "updated_at",
                                                           "dt", "_source_file", "_row_number")),
        "lead_scores": ctx.read_pandas("analytics.lead_scores", {"dt": ctx.days}),
    }


def run(ctx: RunContext) -> None:
    """Evaluate the generators on each run day; record and emit the episode state changes."""
    from lakehouse.lake import Range

    cfg = ctx.config
    found = find_all(load_inputs(ctx), ctx.dates, cfg)
    from datetime import timedelta

    before = (ctx.start - timedelta(days=1)).isoformat()
    previous = ctx.read_pandas(TABLE, {"dt": Range(None, before)})
    rows = episodes(found["findings"], ctx.dates, open_episodes(previous), critical_days=cfg.stalled_critical_days,
                    names=found["names"], why_closed=found["why"])
    frame = rows_frame(rows)
    ctx.write(TABLE, frame, replace=ctx.date_partitions())
    events = [to_event(r) for r in frame.to_dict("records")]
    by_state = frame["state"].value_counts().to_dict() if len(frame) else {}
    ctx.count("events.outbox").notes.append(f"{len(events)} {EVENT_TYPE} event(s): {by_state or 'none'}")
    ctx.emit(EVENT_TYPE, events)

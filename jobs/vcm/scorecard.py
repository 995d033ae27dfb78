"""Stage ``vcm.scorecard``: a 1-5 score per vendor and calendar quarter on five dimensions, weighted.

* responsiveness: share of vendor-escalated tickets answered within the vendor's SLA response time
  (``sla_met_bands``);
* reliability: share of them resolved within their resolution target (``sla_met_bands``);
* invoice_accuracy: mean abs(billed - expected) / expected over the months with a contract in force:
  recurring charges billed against the monthly value (annual value / 12) of the contract in force, the latest
  effective one (``invoice_deviation_bands``);
* cost_trend: spend change against the previous quarter, in % (``cost_change_bands``);
* compliance: 5 minus ``compliance_penalties`` (floor 1): each missing term (payment terms, governing law,
  notice of a renewing contract), no liability cap stated, an uncapped liability, no contract on file for a
  vendor paid, billing with no contract in force.

The overall score is the weighted mean (``scorecard_weights``) over the dimensions that have data, so a vendor
is never marked down for data the MSP does not have; ``dimensions_scored`` says which counted. Tickets carry
no vendor today (``processed.tickets`` has no ``vendor_id``): responsiveness and reliability are scored when
they do, and until then ``notes`` says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pandas as pd

from models.vcm.fields import current_term

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.context import RunContext

SCORECARD = "analytics.vendor_scorecard"
DIMENSIONS = ("responsiveness", "reliability", "invoice_accuracy", "cost_trend", "compliance")


def quarter_of(d: date) -> str:
    return f"{d.year}-Q{(d.month - 1) // 3 + 1}"


def quarter_bounds(q: str) -> tuple[date, date]:
    y, n = int(q[:4]), int(q[-1])
    start = date(y, 3 * (n - 1) + 1, 1)
    end = date(y + (n == 4), (3 * n) % 12 + 1, 1) - timedelta(days=1)
    return start, end


def previous_quarter(q: str) -> str:
    start, _ = quarter_bounds(q)
    return quarter_of(start - timedelta(days=1))


def low_is_good(x: float | None, bands: Sequence[float]) -> float | None:
    if x is None or pd.isna(x):
        return None
    for score, bound in zip((5, 4, 3, 2), bands, strict=True):
        if x <= bound:
            return float(score)
    return 1.0


def high_is_good(x: float | None, bands: Sequence[float]) -> float | None:
    if x is None or pd.isna(x):
        return None
    for score, bound in zip((5, 4, 3, 2), bands, strict=True):
        if x >= bound:
            return float(score)
    return 1.0


def sla_minutes(text: str | None) -> int | None:
    """A vendor's support SLA in minutes to respond ("4-hour response" → 240, "Next business day" → 1440)."""
    if not text:
        return None
    t = text.lower()
    m = re.search(r"(\d+(?:\.\d+)?)\s*-?\s*(hour|hr|minute|min|day)", t)
    if m:
        n = float(m.group(1))
        return int(n * {"hour": 60, "hr": 60, "minute": 1, "min": 1, "day": 1440}[m.group(2)])
    if "next business day" in t or "nbd" in t:
        return 1440
    return None


def weighted(scores: dict[str, float | None], weights: dict[str, float]) -> tuple[float | None, list[str]]:
    used = [d for d in DIMENSIONS if scores.get(d) is not None and weights.get(d, 0) > 0]
    if not used:
        return None, []
    total = sum(weights[d] for d in used)
    return round(sum(scores[d] * weights[d] for d in used) / total, 3), used


def contract_months(register: pd.DataFrame, months: Sequence[str]) -> pd.DataFrame:
    """vendor_id x month → the monthly value of the contract in force (latest effective wins), and which."""
    rows = []
    for r in register.itertuples(index=False):
        if not r.vendor_id or r.effective_date is None or pd.isna(r.effective_date) or pd.isna(r.expiration_date):
            continue
        renews = bool(r.auto_renew) and r.renewal_type in ("auto_renew", "evergreen")
        for m in months:
            start = date(int(m[:4]), int(m[5:7]), 1)
            if start < pd.Timestamp(r.effective_date).date().replace(day=1):
                continue
            rmonths = r.renewal_term_months if not pd.isna(r.renewal_term_months) else r.term_months
            end, _ = current_term(pd.Timestamp(r.expiration_date).date(), renews,
                                  int(rmonths) if not pd.isna(rmonths) else None, start)
            if start > end:
                continue
            value = None if r.annual_value is None or pd.isna(r.annual_value) else float(r.annual_value) / 12
            rows.append({"vendor_id": r.vendor_id, "month": m, "contract_id": r.contract_id, "expected": value,
                         "effective": pd.Timestamp(r.effective_date).date()})
    out = pd.DataFrame(rows, columns=["vendor_id", "month", "contract_id", "expected", "effective"])
    return out.sort_values("effective").drop_duplicates(["vendor_id", "month"], keep="last")


def compliance(findings_for: dict[str, Any], penalties: dict[str, float]) -> tuple[float, list[str]]:
    score, found = 5.0, []
    for name, count in findings_for.items():
        if count:
            score -= penalties.get(name, 0.0) * count
            found.append(f"{name}" + (f" x{count}" if count > 1 else ""))
    return max(1.0, score), found


def transform(vendors: pd.DataFrame, expenses: pd.DataFrame, escalations: pd.DataFrame | None,
              register: pd.DataFrame, quarters: Sequence[str], as_of: date, cfg: Any) -> pd.DataFrame:
    """The scorecard rows of some quarters (pure: frames in, frame out)."""
    exp = expenses.copy()
    exp["expense_date"] = pd.to_datetime(exp["expense_date"]).dt.date
    exp["quarter"] = [quarter_of(d) for d in exp["expense_date"]]
    exp["month"] = [f"{d.year:04d}-{d.month:02d}" for d in exp["expense_date"]]
    exp["amount"] = exp["amount"].astype(float)
    months = sorted(set(exp["month"]))
    in_force = contract_months(register, months)
    in_force["quarter"] = [quarter_of(date(int(m[:4]), int(m[5:7]), 1)) for m in in_force["month"]]
    spend = exp.groupby(["vendor_id", "quarter"])["amount"].sum()
    recurring = exp[exp["recurring"].astype(bool)].groupby(["vendor_id", "month"])["amount"].sum().reset_index()
    billed = recurring.merge(in_force, on=["vendor_id", "month"], how="left")
    billed["quarter"] = [quarter_of(date(int(m[:4]), int(m[5:7]), 1)) for m in billed["month"]]
    has_contract = set(register["vendor_id"].dropna()) if len(register) else set()
    billed_by = dict(iter(billed.groupby(["vendor_id", "quarter"])))
    force_by = {k: list(dict.fromkeys(g["contract_id"])) for k, g in in_force.groupby(["vendor_id", "quarter"])}
    contract_rows = {r.contract_id: r for r in register.itertuples(index=False)} if len(register) else {}
    esc_by = dict(iter(escalations.groupby(["vendor_id", "quarter"]))) \
        if escalations is not None and len(escalations) else {}
    active_by = {q: set(exp.loc[exp["quarter"] == q, "vendor_id"]) | {v for v, qq in force_by if qq == q}
                 for q in quarters}
    empty = billed.head(0)
    rows = []
    for q in quarters:
        qs, qe = quarter_bounds(q)
        prev = previous_quarter(q)
        active = active_by[q]
        for v in vendors.itertuples(index=False):
            if v.vendor_id not in active:
                continue
            s, sp = float(spend.get((v.vendor_id, q), 0.0)), spend.get((v.vendor_id, prev))
            change = (s - float(sp)) / float(sp) * 100 if sp is not None and float(sp) > 0 else None
            b = billed_by.get((v.vendor_id, q), empty)
            compared = b[b["expected"].notna() & (b["expected"] > 0)]
            dev = ((compared["amount"] - compared["expected"]).abs() / compared["expected"] * 100)
            accurate = int((dev <= cfg.invoice_tolerance_pct).sum())
            q_contracts = force_by.get((v.vendor_id, q), [])
            findings = {"no_contract": int(v.vendor_id not in has_contract and s > 0),
                        "expired_contract_billing": int(v.vendor_id in has_contract and
                                                        bool(len(b[b["contract_id"].isna()]))),
                        "missing_term": 0, "no_liability_cap": 0, "uncapped_liability": 0}
            for c in (contract_rows[cid] for cid in q_contracts):
                missing = [c.payment_terms, c.governing_law] + ([c.notice_period_days] if c.auto_renew else [])
                findings["missing_term"] += sum(1 for x in missing
                                                if x is None or (isinstance(x, float) and pd.isna(x)))
                findings["no_liability_cap"] += int(c.liability_cap is None or pd.isna(c.liability_cap))
                findings["uncapped_liability"] += int(c.liability_cap == "uncapped")
            comp, found = compliance(findings, cfg.compliance_penalties)
            esc = esc_by.get((v.vendor_id, q)) if escalations is not None else None
            resp = res = None
            n_esc = 0 if esc is None else len(esc)
            if esc is not None and n_esc:
                resp = float(esc["responded_in_sla"].mean()) if esc["responded_in_sla"].notna().any() else None
                res = float(esc["resolved_in_sla"].mean()) if esc["resolved_in_sla"].notna().any() else None
            scores = {"responsiveness": high_is_good(resp, cfg.sla_met_bands),
                      "reliability": high_is_good(res, cfg.sla_met_bands),
                      "invoice_accuracy": low_is_good(float(dev.mean()) if len(dev) else None,
                                                      cfg.invoice_deviation_bands),
                      "cost_trend": low_is_good(change, cfg.cost_change_bands), "compliance": comp}
            overall, used = weighted(scores, cfg.scorecard_weights)
            notes = []
            if escalations is None:
                notes.append("responsiveness, reliability: tickets carry no vendor_id")
            elif not n_esc:
                notes.append("responsiveness, reliability: no vendor-escalated tickets")
            if not len(compared):
                notes.append("invoice_accuracy: no recurring charge in a month with a contract value")
            if change is None:
                notes.append("cost_trend: no spend in the previous quarter")
            rows.append({
                "vendor_id": v.vendor_id, "vendor_name": v.vendor_name, "quarter_start": qs, "quarter_end": qe,
                "quarter_final": qe < as_of, "spend": Decimal(f"{s:.2f}"),
                "spend_previous": None if sp is None else Decimal(f"{float(sp):.2f}"),
                "cost_change_pct": None if change is None else round(change, 3),
                "recurring_billed": Decimal(f"{compared['amount'].sum():.2f}") if len(compared) else None,
                "recurring_expected": Decimal(f"{compared['expected'].sum():.2f}") if len(compared) else None,
                "invoice_deviation_pct": round(float(dev.mean()), 3) if len(dev) else None,
                "accurate_months": accurate if len(compared) else None,
                "billed_months": len(compared) if len(compared) else None, "escalations": n_esc,
                "response_within_sla": resp, "resolution_within_sla": res,
                "contracts_in_force": len(q_contracts), "compliance_findings": "; ".join(found) or None,
                **{f"{d}_score": scores[d] for d in DIMENSIONS}, "overall_score": overall,
                "dimensions_scored": ", ".join(used), "notes": "; ".join(notes) or None, "as_of": as_of,
                "quarter": q})
    return pd.DataFrame(rows)


def run(ctx: RunContext) -> None:
    from lakehouse.lake import Range
    from lakehouse.transforms import as_of, latest

    cfg = ctx.config
    vendors = ctx.engine.to_pandas(latest(ctx.table("processed.vendors", as_of(ctx.end)), ["vendor_id"])
                                   .select("vendor_id", "vendor_name", "sla"))
    changed = ctx.changed("processed.expenses")
    if changed is None:
        first = ctx.partition_values("processed.expenses", "dt")
        start = date.fromisoformat(first[0]) if first else ctx.start
        quarters = sorted({quarter_of(start + timedelta(days=i)) for i in range((ctx.end - start).days + 1)})
    else:
        quarters = sorted({quarter_of(d) for d in ctx.dates} | {quarter_of(date.fromisoformat(p["dt"]))
                                                                for p in changed if p.get("dt", "") <= ctx.days[-1]})
    lo = quarter_bounds(previous_quarter(quarters[0]))[0].isoformat() if quarters else ctx.days[0]
    expenses = ctx.engine.to_pandas(ctx.table("processed.expenses", {"dt": Range(lo, ctx.days[-1])})
                                    .select("expense_date", "vendor_id", "amount", "recurring"))
    tickets = ctx.table("processed.tickets", {"dt": Range(lo, ctx.days[-1])})
    escalations = None
    if "vendor_id" in tickets.columns:  # scored once tickets carry the vendor they were escalated to
        t = ctx.engine.to_pandas(latest(tickets.filter(tickets.vendor_id.notnull()), ["ticket_id"]))
        sla = dict(zip(vendors["vendor_id"], vendors["sla"].map(sla_minutes), strict=True))
        t["quarter"] = [quarter_of(pd.Timestamp(x).date()) for x in t["created_at"]]
        wait = (pd.to_datetime(t["first_response_at"]) - pd.to_datetime(t["created_at"])).dt.total_seconds() / 60
        t["responded_in_sla"] = [None if pd.isna(w) or sla.get(v) is None else w <= sla[v]
                                 for w, v in zip(wait, t["vendor_id"], strict=True)]
        t["resolved_in_sla"] = t["resolution_sla_met"]
        escalations = t
    register = ctx.read_pandas("processed.contract_register")
    out = transform(vendors, expenses, escalations, register, quarters, ctx.end, cfg)
    ctx.count(SCORECARD).notes.append(f"{len(quarters)} quarter(s), {out['vendor_id'].nunique() if len(out) else 0}"
                                      " vendor(s)")
    import schemas

    ctx.write(SCORECARD, out if len(out) else schemas.get(SCORECARD).arrow_schema().empty_table(),
              replace=[{"quarter": q} for q in quarters])

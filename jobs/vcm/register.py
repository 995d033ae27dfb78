"""Stage ``vcm.register``: the contract register, its document versions, and the approval workflow.

Contracts from documents: each document's fields (processed.contract_fields) become its facts; its vendor
is linked to the vendor master by name (similarity at least ``vcm.vendor_match_min``); documents with the same
vendor and effective date are versions of one contract (the first document gives the contract its id, so
the id never changes when a later version lands or a field is read again); the latest version is the
register row. The term in force rolls into renewal terms after the expiration of a renewing contract
(:func:`models.vcm.fields.current_term`), and its opt-out deadline is that term's end minus the notice.
The register is computed as of the run's last day; it is small (one row per contract), so it is rewritten
whole, like the workflow, which folds the people's decisions (processed.contract_decisions, up to that day)
over the system's transitions (:mod:`jobs.vcm.workflow`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pandas as pd

from jobs.vcm.renewals import reminders
from jobs.vcm.workflow import Case, case_id, fold
from models.vcm.fields import FIELDS, current_term, from_text, term_end
from models.vcm.rules import similar
from models.vcm.text import name_key

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.context import RunContext

FIELDS_TABLE = "processed.contract_fields"
REVIEW = "processed.contract_review_queue"
REGISTER = "processed.contract_register"
VERSIONS = "processed.contract_versions"
WORKFLOW = "processed.contract_workflow"
DECISIONS = "processed.contract_decisions"
NEEDED = ("vendor_name", "effective_date", "expiration_date", "auto_renew", "stated_amount", "notice_period_days")


def document_facts(fields: pd.DataFrame, review: pd.DataFrame) -> pd.DataFrame:
    """One row per document: typed field values, its day, file, extractor, review counts."""
    if fields.empty:
        return pd.DataFrame(columns=["document_id", *FIELDS, "dt", "file_name", "extractor", "fields_in_review",
                                     "min_confidence", "document_review"])
    rows = []
    doc_review = set(review.loc[review["item"] == "document", "document_id"]) if len(review) else set()
    for doc_id, g in fields.groupby("document_id", sort=True):
        values = {r.field: from_text(r.field, r.value) for r in g.itertuples() if r.field in FIELDS}
        renews = bool(values.get("auto_renew"))
        needed = g[g["field"].isin([f for f in NEEDED if f != "notice_period_days" or renews])]
        rows.append({"document_id": doc_id, **values, "dt": g["dt"].iloc[0], "file_name": g["file_name"].iloc[0],
                     "source_file": g["source_file"].iloc[0] if "source_file" in g else g["file_name"].iloc[0],
                     "extractor": g["extractor"].iloc[0], "fields_in_review": int(g["needs_review"].sum()),
                     "min_confidence": float(needed["confidence"].min()) if len(needed) else None,
                     "document_review": doc_id in doc_review})
    return pd.DataFrame(rows)


def link_vendors(facts: pd.DataFrame, vendors: pd.DataFrame, min_match: float) -> pd.DataFrame:
    facts = facts.copy()
    names = list(zip(vendors["vendor_id"], vendors["vendor_name"], strict=True)) if len(vendors) else []
    ids, scores = [], []
    for name in facts["vendor_name"]:
        best = max(((similar(name, n), vid) for vid, n in names), default=(0.0, None)) if name else (0.0, None)
        ids.append(best[1] if best[0] >= min_match else None)
        scores.append(round(best[0], 4) if name else None)
    facts["vendor_id"], facts["vendor_match"] = ids, scores
    return facts


def assign_contracts(facts: pd.DataFrame) -> pd.DataFrame:
    """contract_id and version per document: same vendor (id, else name) and effective date = same contract."""
    facts = facts.sort_values(["dt", "file_name", "document_id"]).reset_index(drop=True)
    first: dict[tuple, str] = {}
    cids, versions = [], []
    counts: dict[str, int] = {}
    for r in facts.itertuples(index=False):
        vendor = r.vendor_id or name_key(r.vendor_name)
        key = (vendor, r.effective_date) if vendor and r.effective_date is not None and not pd.isna(
            r.effective_date) else ("doc", r.document_id)
        cid = first.setdefault(key, f"CT-{r.document_id[:10]}")
        counts[cid] = counts.get(cid, 0) + 1
        cids.append(cid)
        versions.append(counts[cid])
    facts["contract_id"], facts["version"] = cids, versions
    facts["seen"] = pd.to_datetime(facts["dt"]).dt.date
    nxt = facts.groupby("contract_id")["seen"].shift(-1)
    facts["valid_to"] = nxt.where(nxt.notna(), None)
    return facts


def _d(v: Any) -> date | None:
    if v is None or (not isinstance(v, date) and pd.isna(v)):
        return None
    return v if isinstance(v, date) else pd.Timestamp(v).date()


def status_of(f: dict[str, Any], as_of: date) -> str:
    eff, exp = _d(f.get("effective_date")), _d(f.get("expiration_date"))
    if f.get("document_review") or eff is None or exp is None:
        return "needs_review"
    if as_of < eff:
        return "not_started"
    renews = bool(f.get("auto_renew"))
    if as_of > exp and not renews:
        return "expired"
    return "active"


def workflow_rows(docs: pd.DataFrame, versions: pd.DataFrame, decisions: pd.DataFrame, thresholds, as_of: date
                  ) -> pd.DataFrame:
    """Every case of every contract folded with the decisions made up to the end of ``as_of``."""
    until = datetime.combine(as_of, time(23, 59, 59), tzinfo=UTC)
    cases: list[Case] = []
    for cid, g in docs.groupby("contract_id"):
        g = g.sort_values("version")
        clean = g[(g["fields_in_review"] == 0) & (~g["document_review"].astype(bool))]
        completed = clean["seen"].min() if len(clean) else None
        latest_clean = bool(len(g) and g.iloc[-1]["fields_in_review"] == 0 and not g.iloc[-1]["document_review"])
        cases.append(Case(case_id(cid, "new"), cid, "new", g["seen"].min(), completed))
        seen_opt: set[date] = set()
        for r in reminders(versions[versions["contract_id"] == cid], thresholds, as_of):
            if r.opt_out in seen_opt:
                continue
            seen_opt.add(r.opt_out)
            cases.append(Case(case_id(cid, "renewal", r.opt_out), cid, "renewal", r.day,
                              r.day if latest_clean else None))
    rows = []
    by_case = {k: g.to_dict("records") for k, g in decisions.groupby("case_id")} if len(decisions) else {}
    for c in cases:
        rows += fold(c, by_case.get(c.case_id, []), until)
    out = pd.DataFrame(rows, columns=["case_id", "contract_id", "case_kind", "seq", "at", "actor", "actor_kind",
                                      "action", "from_state", "to_state", "reason", "decision_id", "applied",
                                      "state"])
    out["as_of"] = as_of
    return out


def register_rows(docs: pd.DataFrame, workflow: pd.DataFrame, as_of: date) -> pd.DataFrame:
    rows = []
    last_state = {}
    if len(workflow):
        ordered = workflow.sort_values(["at", "case_id", "seq"])
        for cid, g in ordered.groupby("contract_id"):
            latest_case = g.sort_values(["at", "seq"]).iloc[-1]["case_id"]
            c = g[g["case_id"] == latest_case].sort_values("seq")
            applied = c[c["applied"]]
            last = applied.iloc[-1]
            last_state[cid] = (latest_case, last["state"], last["actor"], last["at"], last["reason"])
    for cid, g in docs.sort_values("version").groupby("contract_id"):
        f = g.iloc[-1].to_dict()
        renews = bool(f.get("auto_renew")) and f.get("renewal_type") in ("auto_renew", "evergreen")
        exp = _d(f.get("expiration_date"))
        months = f.get("renewal_term_months") if not pd.isna(f.get("renewal_term_months") or float("nan")) else None
        months = months or (f.get("term_months") if not pd.isna(f.get("term_months") or float("nan")) else None)
        notice = f.get("notice_period_days")
        notice = None if notice is None or pd.isna(notice) else int(notice)
        cur_end, k = current_term(exp, renews, int(months) if months else None, as_of) if exp else (None, None)
        next_opt = cur_end - timedelta(days=notice) if cur_end and renews and notice is not None else None
        if next_opt is not None and next_opt < as_of and months:  # passed: the contract renews; next term's
            next_opt = term_end(cur_end + timedelta(days=1), int(months)) - timedelta(days=notice)
        case, state, by, at, why = last_state.get(cid, (None, None, None, None, None))
        rows.append({
            "contract_id": cid, "document_id": f["document_id"], "versions": len(g), "file_name": f["file_name"],
            "source_file": f.get("source_file") or f["file_name"], "first_seen": g["seen"].min(),
            "version_seen": f["seen"], "vendor_id": f.get("vendor_id"), "vendor_name": f.get("vendor_name"),
            "vendor_match": f.get("vendor_match"), "msp_party": f.get("msp_party"),
            "agreement_date": _d(f.get("agreement_date")), "effective_date": _d(f.get("effective_date")),
            "term_months": f.get("term_months"), "expiration_date": exp, "auto_renew": f.get("auto_renew"),
            "renewal_type": f.get("renewal_type"), "renewal_term_months": f.get("renewal_term_months"),
            "notice_period_days": notice, "opt_out_deadline": _d(f.get("opt_out_deadline")),
            "current_term_end": cur_end, "renewals": k, "next_opt_out": next_opt,
            "days_to_opt_out": (next_opt - as_of).days if next_opt else None,
            "stated_amount": f.get("stated_amount"), "value_basis": f.get("value_basis"),
            "annual_value": f.get("annual_value"), "currency": f.get("currency"),
            "payment_terms": f.get("payment_terms"), "governing_law": f.get("governing_law"),
            "liability_cap": f.get("liability_cap"), "status": status_of(f, as_of),
            "fields_in_review": int(f.get("fields_in_review") or 0), "min_confidence": f.get("min_confidence"),
            "extractor": f.get("extractor") or "", "approval_case": case, "approval_state": state,
            "approval_by": by, "approval_at": at, "approval_reason": why, "as_of": as_of})
    out = pd.DataFrame(rows)
    for col in ("stated_amount", "annual_value"):
        if col in out:
            out[col] = [None if v is None or (isinstance(v, float) and pd.isna(v)) else Decimal(str(v))
                        for v in out[col]]
    for col in ("term_months", "renewal_term_months", "notice_period_days", "renewals", "days_to_opt_out"):
        if col in out:
            out[col] = out[col].astype("Int64")
    return out


def version_rows(docs: pd.DataFrame, as_of: date) -> pd.DataFrame:
    cols = ["contract_id", "document_id", "version", "seen", "valid_to", "file_name", "vendor_id", "vendor_name",
            "effective_date", "expiration_date", "auto_renew", "renewal_type", "renewal_term_months", "term_months",
            "notice_period_days", "annual_value"]
    out = docs[cols].copy() if len(docs) else pd.DataFrame(columns=cols)
    for col in ("renewal_term_months", "term_months", "notice_period_days"):
        out[col] = out[col].astype("Int64")
    out["annual_value"] = [None if v is None or (isinstance(v, float) and pd.isna(v)) else Decimal(str(v))
                           for v in out["annual_value"]]
    out["as_of"] = as_of
    return out


def build(fields: pd.DataFrame, review: pd.DataFrame, vendors: pd.DataFrame, decisions: pd.DataFrame,
          thresholds, min_match: float, as_of: date) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(register, versions, workflow) as of a day: the stage's whole computation, without I/O."""
    facts = document_facts(fields, review)
    if facts.empty:
        empty = pd.DataFrame()
        return empty, empty, empty
    docs = assign_contracts(link_vendors(facts, vendors, min_match))
    versions = version_rows(docs, as_of)
    workflow = workflow_rows(docs, versions, decisions, thresholds, as_of)
    register = register_rows(docs, workflow, as_of)
    return register, versions, workflow


def run(ctx: RunContext) -> None:
    from lakehouse.lake import Range
    from lakehouse.transforms import as_of, latest

    cfg = ctx.config
    day = ctx.end.isoformat()
    fields = ctx.read_pandas(FIELDS_TABLE, {"dt": Range(None, day)})
    review = ctx.read_pandas(REVIEW, {"dt": Range(None, day)})
    sources = ctx.engine.to_pandas(ctx.table("processed.contract_pages", {"dt": Range(None, day)})
                                   .select("document_id", "source_file").distinct())
    fields = fields.merge(sources.drop_duplicates("document_id"), on="document_id", how="left")
    vendors = ctx.engine.to_pandas(latest(ctx.table("processed.vendors", as_of(ctx.end)), ["vendor_id"])
                                   .select("vendor_id", "vendor_name"))
    decisions = ctx.read_pandas(DECISIONS, {"dt": Range(None, day)})
    register, versions, workflow = build(fields, review, vendors, decisions, cfg.reminder_days,
                                         cfg.vendor_match_min, ctx.end)
    ctx.count(REGISTER).rows_in += int(fields["document_id"].nunique()) if len(fields) else 0
    if len(register):
        ctx.count(REGISTER).notes.append(f"{(register['status'] == 'needs_review').sum()} contract(s) need review; "
                                         f"{register['vendor_id'].isna().sum()} not linked to a vendor")
    ctx.write(REGISTER, register if len(register) else _empty(REGISTER))
    for name, rows in ((VERSIONS, versions), (WORKFLOW, workflow)):
        if same_rows(ctx, name, rows):  # most days change no version and no case: no audit, no commit
            ctx.count(name).notes.append("unchanged: not rewritten")
            continue
        ctx.write(name, rows if len(rows) else _empty(name))


def same_rows(ctx: RunContext, name: str, rows: pd.DataFrame) -> bool:
    """Whether a small unpartitioned table already holds these rows (``as_of`` aside)."""
    import schemas

    ds = schemas.get(name)
    current = ctx.read_arrow(name)
    staged = ctx.to_arrow(rows, ds) if len(rows) else ds.arrow_schema().empty_table()
    if current.num_rows != staged.num_rows:
        return False
    cols = [c for c in current.column_names if c != "as_of"]
    try:
        staged = staged.select(cols).cast(current.select(cols).schema)
    except Exception:  # types differ: not the same rows
        return False

    def canon(t):
        return sorted(map(tuple, t.to_pandas().astype(str).itertuples(index=False, name=None)))

    return canon(current.select(cols)) == canon(staged)


def _empty(name: str):
    import schemas

    return schemas.get(name).arrow_schema().empty_table()

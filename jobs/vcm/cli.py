"""``msp vcm``: the VCM agent on the command line.

    msp vcm extract FILE...                  # fields of any text or PDF contract as JSON (spans, confidences)
    msp vcm contracts [--status active]      # the contract register
    msp vcm renewals --within 90             # contracts whose opt-out deadline is within 90 days
    msp vcm scorecard [--quarter 2025-Q3]    # vendor scorecards (1-5)
    msp vcm search "auto-renew notice 60 days"
    msp vcm review                           # the review queue
    msp vcm approve|reject|submit|sign CONTRACT_ID --by NAME --reason TEXT [--case CASE_ID]
    msp vcm history CONTRACT_ID              # the approval workflow of a contract, every transition
    msp vcm evaluate --home DIR              # field accuracy against a generated MSP's truth
    msp vcm ocr-check                        # is OCR available, and how to get it

Reads the published tables (no engine to start); decisions are one atomic commit each.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from lakehouse.config import Settings


def _cfg(settings: Settings):
    return settings.model("vcm")


def _read(settings: Settings, name: str):
    import schemas
    from lakehouse.lake import Lake

    return Lake.from_settings(settings).read_pandas(schemas.get(name))


def _print_table(df: pd.DataFrame, columns: list[str], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in df[columns].itertuples(index=False):
        t.add_row(*[_cell(v) for v in r])
    console.print(t)


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v) or str(v) in ("<NA>", "NaT", "nan", "None"):
        return ""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e12:
        return str(int(v))
    return str(v)


# ---- extract ---------------------------------------------------------------------------------------------------
def extract_files(settings: Settings | None, paths: list[str], extractor: str = "auto", ocr: bool = True
                  ) -> list[dict[str, Any]]:
    """What ``msp vcm extract`` prints: per file its pages (method, OCR confidence) and fields."""
    from dataclasses import asdict, replace

    from jobs.vcm.ocr import OcrConfig, read_pages
    from lakehouse.lake import Lake
    from models.vcm import load_extractor
    from models.vcm.rules import RulesExtractor

    cfg = _cfg(settings) if settings is not None else None
    ocr_cfg = OcrConfig.from_settings(cfg) if cfg is not None else OcrConfig()
    if not ocr:
        ocr_cfg = replace(ocr_cfg, enabled=False)
    msp = cfg.msp_names if cfg is not None else ()
    note = None
    if extractor == "rules" or cfg is None:
        model = rules = RulesExtractor(msp, cfg.date_order if cfg else "MDY")
    else:
        try:
            model, rules = load_extractor(Lake.from_settings(settings), cfg)
        except Exception as exc:
            model = rules = RulesExtractor(msp, cfg.date_order)
            note = f"no learned extractor available ({type(exc).__name__}); used the rules baseline"
        if model is rules and note is None:
            note = "no learned extractor promoted yet (msp run --kinds train): used the rules baseline"
    out = []
    for p in paths:
        data = Path(p).read_bytes()
        pages = read_pages(data, p, ocr_cfg)
        result = model.extract([pg.text for pg in pages])
        doc: dict[str, Any] = {"file": p, "pages": [{k: v for k, v in asdict(pg).items() if k != "text"} |
                                                    {"chars": len(pg.text)} for pg in pages],
                               **result.as_json()}
        if model is not rules:
            base = rules.extract([pg.text for pg in pages])
            doc["baseline"] = {k: v["value"] for k, v in base.as_json()["fields"].items()}
        if note:
            doc["note"] = note
        out.append(doc)
    return out


def cmd_extract(args, settings) -> int:
    docs = extract_files(settings, args.files, "rules" if args.rules else "auto", ocr=not args.no_ocr)
    print(json.dumps(docs if len(docs) > 1 else docs[0], indent=1, default=str))
    return 0


# ---- register views --------------------------------------------------------------------------------------------
def cmd_contracts(args, settings) -> int:
    reg = _read(settings, "processed.contract_register")
    if reg.empty:
        print("no contracts in the register yet: run the pipeline (msp run) on days with contract documents")
        return 0
    if args.status:
        reg = reg[reg["status"] == args.status]
    if args.vendor:
        reg = reg[reg["vendor_name"].fillna("").str.lower().str.contains(args.vendor.lower())]
    soon = _cfg(settings).expiring_soon_days
    reg = reg.sort_values(["status", "current_term_end"])
    reg["ends_soon"] = [("yes" if d is not None and d == d and 0 <= (d - r).days <= soon else "")
                        for d, r in zip(reg["current_term_end"], reg["as_of"], strict=True)]
    _print_table(reg, ["contract_id", "vendor_name", "status", "renewal_type", "effective_date", "current_term_end",
                       "ends_soon", "next_opt_out", "annual_value", "fields_in_review", "approval_state"],
                 f"Contract register as of {reg['as_of'].max() if len(reg) else ''} ({len(reg)} contracts)")
    return 0


def renewals_within(reg: pd.DataFrame, within: int) -> pd.DataFrame:
    out = reg[reg["days_to_opt_out"].notna()]
    out = out[(out["days_to_opt_out"] >= 0) & (out["days_to_opt_out"] <= within)]
    return out.sort_values("days_to_opt_out")


def cmd_renewals(args, settings) -> int:
    reg = _read(settings, "processed.contract_register")
    due = renewals_within(reg, args.within) if len(reg) else reg
    _print_table(due, ["contract_id", "vendor_name", "renewal_type", "current_term_end", "notice_period_days",
                       "next_opt_out", "days_to_opt_out", "annual_value", "approval_state"],
                 f"Opt-out deadlines within {args.within} days of {reg['as_of'].max() if len(reg) else '-'}: "
                 f"{len(due)}")
    return 0


def cmd_scorecard(args, settings) -> int:
    sc = _read(settings, "analytics.vendor_scorecard")
    if sc.empty:
        print("no scorecard yet: run the pipeline (msp run)")
        return 0
    quarter = args.quarter or (sc.loc[sc["quarter_final"], "quarter"].max() if sc["quarter_final"].any()
                               else sc["quarter"].max())
    sc = sc[sc["quarter"] == quarter].sort_values("overall_score")
    if args.vendor:
        sc = sc[sc["vendor_name"].str.lower().str.contains(args.vendor.lower())]
    below = _cfg(settings).score_alert_below
    sc["flag"] = ["below " + str(below) if s is not None and s == s and s < below else "" for s in sc["overall_score"]]
    _print_table(sc, ["vendor_id", "vendor_name", "overall_score", "invoice_accuracy_score", "cost_trend_score",
                      "compliance_score", "responsiveness_score", "dimensions_scored", "flag"],
                 f"Vendor scorecard {quarter}")
    return 0


def cmd_search(args, settings) -> int:
    from jobs.vcm.search import search

    reg = _read(settings, "processed.contract_register")
    pages = _read(settings, "processed.contract_pages")
    texts = {d: "\n".join(g.sort_values("page")["text"].fillna("")) for d, g in pages.groupby("document_id")} \
        if len(pages) else {}
    hits = search(reg, texts, args.query, args.limit or _cfg(settings).search_limit)
    if hits.empty:
        print(f"no contract matches {args.query!r}")
        return 0
    hits["score"] = hits["score"].round(3)
    _print_table(hits, ["contract_id", "vendor_name", "score", "renewal_type", "notice_period_days", "snippet"],
                 f"Contracts matching {args.query!r}")
    return 0


def cmd_review(args, settings) -> int:
    q = _read(settings, "processed.contract_review_queue")
    _print_table(q.sort_values(["dt", "file_name", "item"]), ["file_name", "item", "reason", "value", "confidence",
                                                              "detail"], f"Review queue: {len(q)} item(s)")
    return 0


# ---- decisions ---------------------------------------------------------------------------------------------------
def cmd_decide(args, settings) -> int:
    from jobs.vcm.workflow import decide

    row = decide(settings, args.contract_id, args.action, args.by, args.reason, args.case)
    verdict = "recorded" if row["applied"] else "recorded but NOT applied (another decision got there first)"
    print(f"{args.action} {row['case_id']} by {row['actor']}: {verdict}; the case is now {row['state']} "
          f"(decision {row['decision_id']}, {row['decided_at'].isoformat(timespec='seconds')})")
    return 0 if row["applied"] else 1


def cmd_history(args, settings) -> int:
    import pandas as pd

    from jobs.vcm.workflow import current_cases

    rows = [r for c in current_cases(settings, args.contract_id) for r in c["rows"]]
    _print_table(pd.DataFrame(rows), ["case_id", "seq", "at", "actor", "action", "from_state", "to_state", "applied",
                                      "reason"], f"Approval workflow of {args.contract_id}")
    return 0


# ---- evaluation and install check -----------------------------------------------------------------------------------
def cmd_evaluate(args, settings) -> int:
    from jobs.vcm.evaluation import evaluate_home, evaluate_rendered

    if args.rendered:
        report = evaluate_rendered(settings, args.rendered, seed=args.seed, styles=tuple(args.held_out),
                                   cache_dir=Path(args.home) / ".vcm-ocr-cache" if args.home else None)
    elif args.home:
        report = evaluate_home(settings, Path(args.home), extractors=args.extractors)
    else:
        raise ValueError("give --home DIR (a generated MSP) or --rendered N (held-out contracts made here)")
    print(report["markdown"])
    if args.json:
        Path(args.json).write_text(json.dumps(report["table"], indent=1, default=str))
    return 0


def cmd_ocr_check(args, settings) -> int:
    from jobs.vcm.ocr import status

    ok, message = status()
    print(("ok: " if ok else "warning: ") + message)
    return 0 if ok else 1


def register(subparsers) -> None:
    p = subparsers.add_parser("vcm", help="vendor contracts: extraction, register, renewals, approvals, scorecards")
    sub = p.add_subparsers(dest="vcm_command", required=True)
    e = sub.add_parser("extract", help="print the fields of text or PDF contracts as JSON")
    e.add_argument("files", nargs="+", metavar="FILE")
    e.add_argument("--rules", action="store_true", help="use the rules baseline only")
    e.add_argument("--no-ocr", action="store_true", help="do not OCR scanned pages")
    e.set_defaults(func=cmd_extract)
    c = sub.add_parser("contracts", help="the contract register")
    c.add_argument("--status", choices=("active", "expired", "not_started", "needs_review"))
    c.add_argument("--vendor", help="part of the vendor name")
    c.set_defaults(func=cmd_contracts)
    r = sub.add_parser("renewals", help="contracts whose opt-out deadline is near")
    r.add_argument("--within", type=int, default=90, metavar="DAYS")
    r.set_defaults(func=cmd_renewals)
    s = sub.add_parser("scorecard", help="vendor scorecards (1-5, weighted)")
    s.add_argument("--quarter", help="e.g. 2025-Q3 (default: the last closed quarter)")
    s.add_argument("--vendor", help="part of the vendor name")
    s.set_defaults(func=cmd_scorecard)
    q = sub.add_parser("search", help="rank contracts by full-text relevance")
    q.add_argument("query")
    q.add_argument("--limit", type=int)
    q.set_defaults(func=cmd_search)
    v = sub.add_parser("review", help="the review queue")
    v.set_defaults(func=cmd_review)
    for action in ("approve", "reject", "submit", "sign"):
        d = sub.add_parser(action, help=f"{action} a contract's open approval case (one atomic, logged decision)")
        d.add_argument("contract_id")
        d.add_argument("--by", required=True, metavar="NAME")
        d.add_argument("--reason", required=True, metavar="TEXT")
        d.add_argument("--case", help="the case id (default: the contract's case this action applies to)")
        d.set_defaults(func=cmd_decide, action=action)
    h = sub.add_parser("history", help="every transition of a contract's approval cases")
    h.add_argument("contract_id")
    h.set_defaults(func=cmd_history)
    ev = sub.add_parser("evaluate", help="field accuracy per field and format against a generated MSP's truth")
    ev.add_argument("--home", help="folder holding landing/ and truth/ (msp generate's MSP_HOME)")
    ev.add_argument("--rendered", type=int, metavar="N",
                    help="instead: N contracts in held-out wording styles, made into text, PDF and scanned files "
                         "(OCR'd) here; the learned extractor is trained without those styles")
    ev.add_argument("--held-out", type=int, nargs="+", default=[3, 4], metavar="STYLE")
    ev.add_argument("--seed", type=int, default=99, help="seed of the rendered contracts (default 99)")
    ev.add_argument("--extractors", nargs="+", default=["rules", "model"], choices=("rules", "model"))
    ev.add_argument("--json", help="also write the table as JSON to this file")
    ev.set_defaults(func=cmd_evaluate)
    o = sub.add_parser("ocr-check", help="is OCR (Tesseract) available, and how to install it")
    o.set_defaults(func=cmd_ocr_check)


def _today() -> date:  # pragma: no cover
    return date.today()


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="msp")
    register(parser.add_subparsers())

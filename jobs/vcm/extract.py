"""Stage ``vcm.extract``: every field of every contract document, with its span and confidence, and the
review queue.

The extractor is the promoted learned one (``ml-models/vcm-extractor``) when ``vcm.extractor = "model"`` and
one has been trained, else the rules baseline; the baseline always runs too and its value is kept beside the
model's (``baseline_value``). A field goes to the review queue when its confidence is under
``vcm.review_threshold`` (the model's confidence is first multiplied by ``vcm.disagreement_penalty`` where
the baseline read another value), when a field the register needs is missing, or when the dates contradict
the term; a document without usable text goes there whole, with the reason its pages carry.

Documents are re-read for the run's days and the days whose pages changed; everything is re-read when the
stage's code or settings changed or another extractor version is promoted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from models.vcm.fields import FIELDS, Extraction, to_text
from models.vcm.text import name_key

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.context import RunContext

PAGES = "processed.contract_pages"
FIELDS_TABLE = "processed.contract_fields"
REVIEW = "processed.contract_review_queue"
#: Fields the register cannot do without; missing, they go to review.
NEEDED = ("vendor_name", "effective_date", "expiration_date", "auto_renew", "stated_amount")
PAGE_REASONS = {"ocr_unavailable", "ocr_low_confidence", "unreadable", "no_text"}
FIELD_COLUMNS = ["document_id", "file_name", "field", "value", "confidence", "span_start", "span_end", "span_text",
                 "page", "method", "extractor", "baseline_value", "needs_review", "review_reason", "dt"]
REVIEW_COLUMNS = ["document_id", "file_name", "source_file", "item", "reason", "detail", "confidence", "threshold",
                  "value", "span_text", "page", "dt"]


def field_rows(doc: dict[str, Any], result: Extraction, baseline: Extraction | None, threshold: float,
               penalty: float) -> tuple[list[dict], list[dict]]:
    """(field rows, review rows) of one document. ``doc`` holds document_id, file_name, source_file, dt and
    ``page_reason`` (the first review reason of its pages, or None)."""
    fields, review = [], []
    base = {"document_id": doc["document_id"], "file_name": doc["file_name"], "dt": doc["dt"]}
    renews = bool(result.value("auto_renew"))
    needed = set(NEEDED) | ({"notice_period_days"} if renews else set())
    inconsistent = {"expiration_date"} if any("is not" in i and "months after" in i for i in result.issues) else set()
    for name in FIELDS:
        f = result.fields[name]
        value = to_text(f.value)
        baseline_value = to_text(baseline.fields[name].value) if baseline is not None else None
        conf = float(f.confidence)
        reason = None
        differs = value != baseline_value if name not in ("vendor_name", "msp_party") else \
            name_key(value) != name_key(baseline_value)  # "Inc." read as "Inc," by OCR is no disagreement
        if baseline is not None and baseline is not result and differs and value is not None:
            conf *= penalty
            reason = "extractors_disagree" if conf < threshold else None
        if name in inconsistent:
            reason = "inconsistent"
        elif value is None and name in needed:
            reason = "not_found"
        elif value is not None and conf < threshold and reason is None:
            reason = "low_confidence"
        fields.append({**base, "field": name, "value": value, "confidence": round(min(max(conf, 0.0), 1.0), 4),
                       "span_start": f.start, "span_end": f.end, "span_text": f.text, "page": f.page,
                       "method": f.method or "", "extractor": result.extractor, "baseline_value": baseline_value,
                       "needs_review": reason is not None, "review_reason": reason})
        if reason is not None and doc.get("page_reason") is None:
            detail = {"not_found": "the contract needs this field; none was found in the text",
                      "low_confidence": f"read with confidence {conf:.2f} < {threshold:.2f}",
                      "extractors_disagree": f"the rules baseline read {baseline_value!r}",
                      "inconsistent": "; ".join(result.issues)}[reason]
            review.append({**base, "source_file": doc["source_file"], "item": name, "reason": reason,
                           "detail": detail, "confidence": round(conf, 4), "threshold": threshold, "value": value,
                           "span_text": f.text, "page": f.page})
    if doc.get("page_reason"):
        hint = doc.get("page_detail") or ""
        review.append({**base, "source_file": doc["source_file"], "item": "document", "reason": doc["page_reason"],
                       "detail": hint, "confidence": None, "threshold": threshold, "value": None, "span_text": None,
                       "page": doc.get("page_number")})
    return fields, review


def page_problem(pages: pd.DataFrame) -> tuple[str | None, str | None, int | None]:
    from jobs.vcm.ocr import INSTALL_HINT

    bad = pages[pages["review_reason"].notna()]
    if bad.empty:
        return None, None, None
    r = bad.iloc[0]
    detail = {"ocr_unavailable": INSTALL_HINT,
              "ocr_low_confidence": f"OCR confidence {r['ocr_confidence']:.2f} on page {r['page']}: check the text",
              "unreadable": "the file could not be read or rendered; re-export it",
              "no_text": "the document holds no text"}.get(r["review_reason"], "")
    return str(r["review_reason"]), detail, int(r["page"])


def extract_frame(pages: pd.DataFrame, extractor, baseline, known_vendors: Sequence[str], threshold: float,
                  penalty: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Field and review rows of every document of a pages frame (processed.contract_pages rows)."""
    fields, review = [], []
    for doc_id, group in pages.sort_values(["document_id", "page"]).groupby("document_id", sort=True):
        texts = [t or "" for t in group["text"]]
        result = extractor.extract(texts, known_vendors)
        base = baseline.extract(texts, known_vendors) if baseline is not None and baseline is not extractor else None
        reason, detail, page = page_problem(group)
        first = group.iloc[0]
        doc = {"document_id": doc_id, "file_name": first["file_name"], "source_file": first["source_file"],
               "dt": first["dt"], "page_reason": reason, "page_detail": detail, "page_number": page}
        f, r = field_rows(doc, result, base, threshold, penalty)
        fields += f
        review += r
    return (pd.DataFrame(fields, columns=FIELD_COLUMNS),
            pd.DataFrame(review, columns=REVIEW_COLUMNS).astype({"confidence": "float64", "threshold": "float64"}))


def run(ctx: RunContext) -> None:
    from lakehouse.transforms import as_of, latest
    from models.vcm import load_extractor

    cfg = ctx.config
    extractor, baseline = load_extractor(ctx.lake, cfg)
    vendors = ctx.table("processed.vendors", as_of(ctx.end))
    known = sorted(set(ctx.engine.to_pandas(latest(vendors, ["vendor_id"]).select("vendor_name"))["vendor_name"]))
    used = ctx.engine.to_pandas(ctx.table(FIELDS_TABLE).select("extractor").distinct())["extractor"].tolist()
    changed = ctx.changed(PAGES)
    all_days = ctx.partition_values(PAGES, "dt")
    if changed is None or any(u != extractor.version for u in used):
        days = sorted(set(all_days) | set(ctx.days))
    else:
        days = sorted(set(ctx.days) | {p["dt"] for p in changed})
    pages = ctx.read_pandas(PAGES, {"dt": days}) if days else pd.DataFrame(columns=["document_id"])
    fields, review = extract_frame(pages, extractor, baseline, known, cfg.review_threshold, cfg.disagreement_penalty)
    c = ctx.count(FIELDS_TABLE)
    c.rows_in += int(pages["document_id"].nunique()) if len(pages) else 0
    c.notes.append(f"extractor {extractor.version}")
    ctx.count(REVIEW).notes.append(f"{review['document_id'].nunique() if len(review) else 0} document(s) to review")
    replace = [{"dt": d} for d in days]
    ctx.write(FIELDS_TABLE, fields, replace=replace)
    ctx.write(REVIEW, review, replace=replace)

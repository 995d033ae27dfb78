"""Stage ``vcm.documents``: the text of every page of every new contract document.

A document is its file's SHA-256: the same file landed again (another day, another name) is the document
already read, and adds nothing. Each document is read once, in the export day it first landed; a rerun of a
day reads that day's documents again and writes the same rows (OCR comes from the cache, so it is not run
twice). Text files come from ``processed.contract_documents`` as ingested; PDFs are read again from the
landing area through :class:`lakehouse.ingest.Landing` (a local folder or ``s3://``, so a Glue job reads them
the same way) for their text layer page by page, and OCR of the pages that are scans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from jobs.vcm.ocr import LakeCache, OcrConfig, read_pages

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.context import RunContext

DOCUMENTS = "processed.contract_documents"
PAGES = "processed.contract_pages"
COLUMNS = ["document_id", "page", "pages", "file_name", "source_file", "text", "method", "ocr_confidence",
           "ocr_engine", "chars", "needs_review", "review_reason", "dt"]


def first_landings(docs: pd.DataFrame) -> pd.DataFrame:
    """One row per document (SHA-256): its first landing (earliest export day, then file)."""
    if docs.empty:
        return docs
    return (docs.sort_values(["sha256", "dt", "_source_file"]).drop_duplicates("sha256", keep="first")
            .reset_index(drop=True))


def pages_frame(rows: list[dict]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=COLUMNS)
    return out.sort_values(["dt", "document_id", "page"]).reset_index(drop=True)


def read_document(row, landing, cfg: OcrConfig, cache) -> list[dict]:
    """The page rows of one document (a row of processed.contract_documents)."""
    if row["extraction"] == "text" or str(row["mime_type"]) == "text/plain":
        text = row["text"] or ""
        pages = [{"page": 1, "text": text, "method": "text", "ocr_confidence": None, "ocr_engine": None,
                  "review_reason": None if text.strip() else "no_text"}]
    else:
        try:
            data = landing.read(row["_source_file"])
        except (FileNotFoundError, OSError) as exc:
            return [{"document_id": row["sha256"], "page": 1, "pages": 1, "file_name": row["file_name"],
                     "source_file": row["_source_file"], "text": row["text"] or "", "method": "none",
                     "ocr_confidence": None, "ocr_engine": None, "chars": len(row["text"] or ""),
                     "needs_review": True, "review_reason": "unreadable", "dt": row["dt"], "_error": str(exc)}]
        pages = [p.__dict__ for p in read_pages(data, row["file_name"], cfg, cache, sha256=row["sha256"])]
    n = len(pages)
    return [{"document_id": row["sha256"], "page": p["page"], "pages": n, "file_name": row["file_name"],
             "source_file": row["_source_file"], "text": p["text"], "method": p["method"],
             "ocr_confidence": p["ocr_confidence"], "ocr_engine": p["ocr_engine"], "chars": len(p["text"] or ""),
             "needs_review": p["review_reason"] is not None, "review_reason": p["review_reason"], "dt": row["dt"]}
            for p in pages]


def run(ctx: RunContext) -> None:
    from lakehouse.ingest import Landing
    from lakehouse.transforms import as_of

    cfg = OcrConfig.from_settings(ctx.config)
    table = ctx.table(DOCUMENTS, as_of(ctx.end))
    known = ctx.engine.to_pandas(table.select("sha256", "dt", "_source_file"))
    first = first_landings(known) if not known.empty else known
    changed = ctx.changed(DOCUMENTS)
    if changed is None:  # first run or a rebuild: every day the input holds
        days = sorted(set(first["dt"])) if not first.empty else []
        days = sorted(set(days) | set(ctx.days))
    else:
        days = sorted(set(ctx.days) | {p["dt"] for p in changed if "dt" in p})
    if not first.empty:  # a document now first seen on an earlier day leaves the day it was in: rewrite that too
        mine = ctx.engine.to_pandas(ctx.table(PAGES).select("document_id", "dt").distinct())
        moved = mine.merge(first[first["dt"].isin(days)], left_on="document_id", right_on="sha256",
                           suffixes=("", "_new"))
        days = sorted(set(days) | set(moved.loc[moved["dt"] != moved["dt_new"], "dt"]))
    todo = first[first["dt"].isin(days)] if not first.empty else first
    rows: list[dict] = []
    if not todo.empty:
        wanted = table.filter(table.sha256.isin(list(todo["sha256"])) & table.dt.isin(list(todo["dt"].unique())))
        full = first_landings(ctx.engine.to_pandas(wanted))
        landing, cache = Landing(ctx.settings.landing_root), LakeCache(ctx.lake)
        for i, (_, row) in enumerate(full.iterrows()):
            ctx.progress("vcm documents", i, len(full))
            for r in read_document(row, landing, cfg, cache):
                if "_error" in r:
                    ctx.warn(f"{r['source_file']}: cannot read the landing file ({r.pop('_error')})")
                rows.append(r)
    out = pages_frame(rows)
    c = ctx.count(PAGES)
    c.rows_in += len(todo)
    c.duplicates += int(len(known) - len(first)) if not known.empty else 0
    ocr = out[out["method"] == "ocr"]
    if len(ocr):
        c.notes.append(f"{ocr['document_id'].nunique()} scanned document(s) read by OCR")
    waiting = out[out["review_reason"] == "ocr_unavailable"]
    if len(waiting):
        ctx.warn(f"{waiting['document_id'].nunique()} scanned document(s) could not be OCR'd (Tesseract missing); "
                 "they are in the review queue")
    ctx.write(PAGES, out, replace=[{"dt": d} for d in days])

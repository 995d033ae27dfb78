"""Field accuracy per field and per format against the planted truth of a generated MSP
(``truth/contract_documents.csv``): ``msp vcm evaluate --home DIR``, the tables of docs/vcm.md.

Every landed document is read as the pipeline reads it (text file, PDF text layer, OCR for scans, with the
same OCR settings; OCR results cached under ``DIR/.vcm-ocr-cache``), then by the rules baseline and by the
learned extractor, trained here exactly as the weekly training stage trains it (same corpus, same seed), so
the numbers do not depend on what a lake's registry holds.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


class DirCache:
    def __init__(self, folder: Path):
        self.folder = folder

    def get(self, key: str) -> str | None:
        p = self.folder / f"{key}.json"
        return p.read_text() if p.exists() else None

    def put(self, key: str, value: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{key}.json").write_text(value)


def documents(home: Path, cfg) -> list[tuple[list[str], dict]]:
    from jobs.vcm.ocr import OcrConfig, read_pages

    with open(home / "truth" / "contract_documents.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    cache, ocr = DirCache(home / ".vcm-ocr-cache"), OcrConfig.from_settings(cfg)
    out = []
    for r in rows:
        path = home / "landing" / r["file"]
        pages = read_pages(path.read_bytes(), path.name, ocr, cache)
        out.append(([p.text for p in pages], r))
    return out


def evaluate_home(settings, home: Path, extractors=("rules", "model")) -> dict[str, Any]:
    from jobs.vcm.train import train_and_measure
    from models.vcm.evaluate import accuracy_table, markdown
    from models.vcm.learned import LearnedExtractor, evaluate
    from models.vcm.rules import RulesExtractor

    cfg = settings.model("vcm")
    docs = documents(home, cfg)
    results = []
    if "rules" in extractors:
        results += evaluate(RulesExtractor(cfg.msp_names, cfg.date_order), docs, "rules")
    if "model" in extractors:
        roles, _, _ = train_and_measure(cfg)
        results += evaluate(LearnedExtractor(roles, cfg.msp_names, cfg.date_order), docs, "model")
    table = accuracy_table(results)
    return {"table": table, "markdown": markdown(table), "documents": len(docs)}

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


def rendered_corpus(n: int, seed: int, styles=(3, 4), distractors: str | None = "test", cache_dir: Path | None = None
                    ) -> list[tuple[list[str], dict]]:
    """``n`` corpus contracts made into real files (a text file, a PDF with a text layer, a scanned PDF in the
    generator's scan style) and read back as the pipeline reads them, OCR included: the check of a wording
    (and of OCR) the extractors have not seen, at any size."""
    import random

    from jobs.vcm.ocr import OcrConfig, read_pages
    from lakehouse.synth.contracts import pdf_scanned, pdf_text, render_text
    from models.vcm.corpus import sample, truth_row, with_distractors

    rng = random.Random(seed)
    cache = DirCache(cache_dir) if cache_dir else None
    out = []
    for i in range(n):
        doc = sample(rng, styles[i % len(styles)])
        text = render_text(doc)
        if distractors:
            text = with_distractors(text, rng, distractors, doc, rng.randrange(0, 4))
        fmt = ("txt", "pdf", "scanned_pdf")[i % 3]
        if fmt == "txt":
            data, name = (text + "\n").encode(), "c.txt"
        else:
            data, name = (pdf_text(text) if fmt == "pdf" else pdf_scanned(text, seed * 1000 + i)), "c.pdf"
        pages = read_pages(data, name, OcrConfig(), cache)
        out.append(([p.text for p in pages], truth_row(doc, fmt)))
    return out


def evaluate_rendered(settings, n: int, seed: int = 99, styles=(3, 4), cache_dir: Path | None = None
                      ) -> dict[str, Any]:
    """Rules, and the learned extractor trained without ``styles``, on ``n`` rendered held-out contracts."""
    from models.vcm.corpus import _MSPS, corpus
    from models.vcm.evaluate import accuracy_table, markdown
    from models.vcm.learned import evaluate, train
    from models.vcm.rules import RulesExtractor

    cfg = settings.model("vcm")
    docs = rendered_corpus(n, seed, styles, "test", cache_dir)
    msp = tuple(dict.fromkeys((*cfg.msp_names, *_MSPS)))
    seen = tuple(s for s in range(5) if s not in styles)
    model = train(corpus(cfg.train_documents // 2, cfg.train_seed, seen, cfg.train_noise_share), msp, cfg.date_order)
    results = evaluate(RulesExtractor(msp, cfg.date_order), docs, "rules") + evaluate(model, docs, "model")
    table = accuracy_table(results)
    return {"table": table, "markdown": markdown(table), "documents": len(docs)}

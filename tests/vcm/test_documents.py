"""Text from documents: a text file, a PDF text layer, ONE small real scan through Tesseract, and a scan
when OCR is unavailable (review queue, never lost); the OCR cache."""

from __future__ import annotations

import hashlib

import pytest

from jobs.vcm import ocr
from jobs.vcm.documents import first_landings
from lakehouse.synth.contracts import pdf_scanned, pdf_text

TEXT = ("SUBSCRIPTION AGREEMENT\n\nThis Agreement is made on 02/29/2024 between Scan Test Networks, the provider, "
        "and North Star IT LLC, the customer.\n\nThe subscription begins on 03/31/2024 and runs for 24 months "
        "through 03/30/2026.")


class MemoryCache(dict):
    def get(self, key):
        return super().get(key)

    def put(self, key, value):
        self[key] = value


def test_text_and_pdf_text_layer():
    assert ocr.read_pages(b"hello contract", "a.txt")[0].method == "text"
    pages = ocr.read_pages(pdf_text(TEXT), "a.pdf")
    assert [p.method for p in pages] == ["pdf_text"] and "03/31/2024" in pages[0].text


@pytest.mark.skipif(ocr.tesseract_version() is None, reason="Tesseract is not installed (python -m jobs.vcm.ocr)")
def test_one_real_scan_is_read_by_ocr_and_cached():
    data = pdf_scanned(TEXT, seed=3)
    cache = MemoryCache()
    pages = ocr.read_pages(data, "scan.pdf", ocr.OcrConfig(), cache)
    assert [p.method for p in pages] == ["ocr"]
    assert pages[0].ocr_confidence > 0.8 and pages[0].review_reason is None
    assert "03/31/2024" in pages[0].text and "Scan Test Networks" in pages[0].text
    assert len(cache) == 1
    from models.vcm.rules import RulesExtractor

    e = RulesExtractor(["North Star IT LLC"]).extract([pages[0].text])
    assert str(e.value("expiration_date")) == "2026-03-30"

    def boom(*_a, **_k):  # a second read comes from the cache: no OCR
        raise AssertionError("OCR ran again")

    original = ocr.ocr_image
    ocr.ocr_image = boom
    try:
        again = ocr.read_pages(data, "renamed.pdf", ocr.OcrConfig(), cache)
    finally:
        ocr.ocr_image = original
    assert again[0].text == pages[0].text


def test_scan_without_tesseract_goes_to_review(monkeypatch):
    monkeypatch.setattr(ocr, "tesseract_version", lambda: None)
    pages = ocr.read_pages(pdf_scanned("A scanned page of a contract.", seed=1), "scan.pdf")
    assert pages[0].method == "none" and pages[0].review_reason == "ocr_unavailable"
    ok, message = ocr.status()
    assert not ok and "apt-get install tesseract-ocr" in message


def test_first_landing_per_document():
    import pandas as pd

    sha = hashlib.sha256(b"x").hexdigest()
    docs = pd.DataFrame({"sha256": [sha, sha, "b" * 64], "dt": ["2024-02-01", "2024-01-05", "2024-01-07"],
                         "_source_file": ["v/2024-02-01/a.pdf", "v/2024-01-05/a.pdf", "v/2024-01-07/b.pdf"]})
    first = first_landings(docs)
    assert list(first["dt"]) == ["2024-01-07", "2024-01-05"] or set(first["dt"]) == {"2024-01-07", "2024-01-05"}
    assert len(first) == 2

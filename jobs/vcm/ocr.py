"""Text of a contract document, page by page: text files as they are, PDFs through their text layer, scanned
pages through OCR (Tesseract via pytesseract), each page with the method used and the OCR confidence.

A PDF page whose text layer holds fewer than ``text_layer_min_chars`` characters is a scan: its image is
taken from the PDF as embedded (a scanner's JPEG, no resampling) or, when the page is not one image, rendered
with poppler's ``pdftoppm`` at ``ocr_dpi``. OCR results are cached by the document's SHA-256 and the OCR
settings (engine version, language, resolution), so a document is OCR'd once, however often it is re-landed,
re-run or rebuilt.

Without Tesseract nothing is lost: the page gets method ``none`` and review reason ``ocr_unavailable``, the
document goes to the review queue with :data:`INSTALL_HINT`. ``python -m jobs.vcm.ocr`` checks the install
(exit 0 when OCR works, 1 with the hint otherwise).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any, Protocol

INSTALL_HINT = ("Tesseract OCR is not installed, so scanned contracts wait in the review queue. Install it "
                "(Debian/Ubuntu: sudo apt-get install tesseract-ocr tesseract-ocr-eng poppler-utils; macOS: brew "
                "install tesseract poppler; Windows: the UB Mannheim installer), then rerun the days of those "
                "documents (msp run --stages vcm.documents ... --force).")
#: Bumped when the way pages are turned into images or text changes (invalidates the OCR cache).
OCR_PIPELINE_VERSION = "1"


@dataclass
class Page:
    page: int
    text: str
    method: str  # text | pdf_text | ocr | none
    ocr_confidence: float | None = None
    ocr_engine: str | None = None
    review_reason: str | None = None

    @property
    def needs_review(self) -> bool:
        return self.review_reason is not None


@dataclass(frozen=True)
class OcrConfig:
    enabled: bool = True
    language: str = "eng"
    dpi: int = 300
    min_confidence: float = 0.6
    text_layer_min_chars: int = 40

    @classmethod
    def from_settings(cls, cfg: Any) -> OcrConfig:
        return cls(cfg.ocr == "auto", cfg.ocr_language, cfg.ocr_dpi, cfg.ocr_min_confidence, cfg.text_layer_min_chars)


class Cache(Protocol):
    def get(self, key: str) -> str | None: ...

    def put(self, key: str, value: str) -> None: ...


class LakeCache:
    """OCR results as small files in the lake (``_cache/vcm/ocr/<sha[:2]>/<key>.json``): local or S3 alike."""

    def __init__(self, lake):
        self.lake = lake

    def _path(self, key: str) -> str:
        return f"_cache/vcm/ocr/{key[:2]}/{key}.json"

    def get(self, key: str) -> str | None:
        return self.lake.read_text(self._path(key))

    def put(self, key: str, value: str) -> None:
        self.lake.write_text(self._path(key), value)


# ---- the OCR engine ------------------------------------------------------------------------------------------
@cache
def tesseract_version() -> str | None:
    """The installed Tesseract's version, or None when it (or pytesseract) is missing."""
    try:
        import pytesseract

        return str(pytesseract.get_tesseract_version()).split()[0]
    except Exception:
        return None


def status() -> tuple[bool, str]:
    """(OCR works, a line saying so or how to install it)."""
    version = tesseract_version()
    if version is None:
        return False, INSTALL_HINT
    langs = _languages()
    render = "pdftoppm found" if shutil.which("pdftoppm") else "pdftoppm missing (install poppler-utils to OCR " \
                                                               "pages that are not a single image)"
    return True, f"Tesseract {version} (languages: {', '.join(langs) or '?'}); {render}"


@cache
def _languages() -> tuple[str, ...]:
    try:
        import pytesseract

        return tuple(sorted(pytesseract.get_languages(config="")))
    except Exception:
        return ()


def engine_id(cfg: OcrConfig) -> str:
    return f"tesseract {tesseract_version()} {cfg.language} dpi={cfg.dpi} psm=3 v{OCR_PIPELINE_VERSION}"


def ocr_image(image, cfg: OcrConfig) -> tuple[str, float]:
    """(text, mean word confidence 0-1) of one page image; lines and paragraphs as Tesseract found them."""
    import pytesseract

    data = pytesseract.image_to_data(image.convert("L"), lang=cfg.language, config="--psm 3",
                                     output_type=pytesseract.Output.DICT)
    lines: dict[tuple[int, int, int], list[str]] = {}
    confs: list[tuple[float, int]] = []
    for i, word in enumerate(data["text"]):
        word = (word or "").strip()
        if not word:
            continue
        key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
        lines.setdefault(key, []).append(word)
        conf = float(data["conf"][i])
        if conf >= 0:
            confs.append((conf, len(word)))
    out, last_par = [], None
    for (block, par, _line), words in lines.items():
        if last_par is not None and (block, par) != last_par:
            out.append("")
        out.append(" ".join(words))
        last_par = (block, par)
    total = sum(n for _, n in confs)
    mean = sum(c * n for c, n in confs) / total / 100 if total else 0.0
    return "\n".join(out), round(mean, 4)


def _page_image(reader_page, data: bytes, number: int, cfg: OcrConfig):
    """The page as an image: its one embedded image when it is a scan, else a pdftoppm rendering."""
    try:
        images = list(reader_page.images)
    except Exception:
        images = []
    if len(images) == 1:
        img = images[0].image
        box = reader_page.mediabox
        if img is not None and img.width >= 0.5 * float(box.width) * cfg.dpi / 72 / 2:
            return img
    if not shutil.which("pdftoppm"):
        return None
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        src = f"{tmp}/doc.pdf"
        with open(src, "wb") as fh:
            fh.write(data)
        subprocess.run(["pdftoppm", "-r", str(cfg.dpi), "-gray", "-png", "-f", str(number), "-l", str(number), src,
                        f"{tmp}/page"], check=True, capture_output=True, timeout=120)
        produced = sorted(p for p in os.listdir(tmp) if p.startswith("page"))
        if not produced:
            return None
        with Image.open(f"{tmp}/{produced[0]}") as im:
            return im.copy()


# ---- documents -------------------------------------------------------------------------------------------------
def read_pages(data: bytes, name: str, cfg: OcrConfig | None = None, cache: Cache | None = None,
               sha256: str | None = None) -> list[Page]:
    """The pages of one document file (``.txt``/``.text``/``.md`` or ``.pdf``)."""
    cfg = cfg or OcrConfig()
    lower = name.lower()
    if lower.endswith((".txt", ".text", ".md")):
        text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
        return [Page(1, text, "text", review_reason=None if text.strip() else "no_text")]
    if not lower.endswith(".pdf"):
        raise ValueError(f"{name}: not a text or PDF file")
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        raw = [p.extract_text() or "" for p in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError):
        return [Page(1, "", "none", review_reason="unreadable")]
    sha256 = sha256 or hashlib.sha256(data).hexdigest()
    scans = [i for i, t in enumerate(raw) if len(t.strip()) < cfg.text_layer_min_chars]
    ocred: dict[int, tuple[str, float]] = {}
    engine = None
    if scans and cfg.enabled and tesseract_version() is not None:
        engine = engine_id(cfg)
        key = hashlib.sha256(f"{sha256}|{engine}".encode()).hexdigest()
        cached = cache.get(key) if cache is not None else None
        if cached:
            ocred = {int(k): tuple(v) for k, v in json.loads(cached).items()}
        missing = [i for i in scans if i not in ocred]
        for i in missing:
            img = _page_image(reader.pages[i], data, i + 1, cfg)
            if img is not None:
                ocred[i] = ocr_image(img, cfg)
        if missing and cache is not None:
            cache.put(key, json.dumps({str(k): list(v) for k, v in sorted(ocred.items())}))
    pages = []
    for i, text in enumerate(raw):
        if i not in scans:
            pages.append(Page(i + 1, text, "pdf_text"))
        elif i in ocred:
            t, conf = ocred[i]
            reason = None if conf >= cfg.min_confidence and t.strip() else "ocr_low_confidence"
            pages.append(Page(i + 1, t, "ocr", conf, engine, reason))
        elif not cfg.enabled or tesseract_version() is None:
            pages.append(Page(i + 1, text, "none", review_reason="ocr_unavailable"))
        else:
            pages.append(Page(i + 1, text, "none", review_reason="unreadable"))
    return pages or [Page(1, "", "none", review_reason="no_text")]


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.vcm.ocr [FILE...]``: check the OCR install; with files, print their pages as JSON."""
    argv = sys.argv[1:] if argv is None else argv
    ok, message = status()
    print(("ok: " if ok else "warning: ") + message, file=sys.stderr)
    for path in argv:
        with open(path, "rb") as fh:
            pages = read_pages(fh.read(), path)
        print(json.dumps([asdict(p) for p in pages], indent=1))
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""Typed detectors: every date, duration, amount, jurisdiction, payment term and party a contract mentions.

Detectors know what a value *looks like*, never what it *means*: a date is a date whether it opens the term
or dates a signature. Deciding which candidate fills which field is the extractors' job (the rules of
:mod:`models.vcm.rules`, the classifier of :mod:`models.vcm.learned`). Dates are read by patterns first
(``March 5, 2024``, ``5 March 2024``, ``the 5th day of March, 2024``, ``03/05/2024``, ``2024-03-05``) and by
dateparser for what the patterns leave (a month name garbled by OCR); numeric dates follow the configured
order (``MDY`` for a US MSP; a first number above 12 is read as a day).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from models.vcm.text import (
    CORPORATE_SUFFIX,
    CUSTOMER_ROLES,
    JURISDICTIONS,
    MONTHS,
    NUMBER_WORD_RE,
    VENDOR_ROLES,
    Clause,
    clauses,
    name_key,
    prepare,
    word_number,
)


@dataclass
class Candidate:
    """A typed value found at ``[start, end)`` of the document text, inside clause ``clause``."""

    kind: str  # date | months | days | money | law | payterms | party
    value: Any
    start: int
    end: int
    text: str
    clause: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Document:
    """A document prepared for extraction: its text, clauses and every candidate of every kind."""

    text: str
    prepared: str
    clauses: list[Clause]
    candidates: dict[str, list[Candidate]]
    page_starts: list[int]

    def clause_of(self, pos: int) -> Clause:
        lo, hi = 0, len(self.clauses) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.clauses[mid].start <= pos:
                lo = mid
            else:
                hi = mid - 1
        return self.clauses[lo] if self.clauses else Clause(0, len(self.text), "", 0)

    def clause_text(self, c: Candidate | Clause | int) -> str:
        cl = self.clauses[c] if isinstance(c, int) else (self.clauses[c.clause] if isinstance(c, Candidate) else c)
        return self.prepared[cl.start:cl.end]

    def page_of(self, pos: int) -> int:
        page = 1
        for i, s in enumerate(self.page_starts, start=1):
            if pos >= s:
                page = i
        return page


PAGE_BREAK = "\n\f\n"


def document(pages: list[str] | str, date_order: str = "MDY") -> Document:
    """Prepare a document (one text or its pages) and detect every candidate in it."""
    pages = [pages] if isinstance(pages, str) else list(pages)
    starts, pos = [], 0
    for p in pages:
        starts.append(pos)
        pos += len(p) + len(PAGE_BREAK)
    text = PAGE_BREAK.join(pages)
    prepared = prepare(text)
    cls = clauses(prepared)
    doc = Document(text, prepared, cls, {}, starts)
    doc.candidates = {
        "date": find_dates(doc, date_order),
        "months": [], "days": [],
        "money": find_money(doc),
        "law": find_jurisdictions(doc),
        "payterms": find_payment_terms(doc),
        "party": find_parties(doc),
    }
    for c in find_durations(doc):
        doc.candidates[c.kind].append(c)
    return doc


def _cand(doc: Document, kind: str, value: Any, start: int, end: int, **extra: Any) -> Candidate:
    return Candidate(kind, value, start, end, doc.text[start:end], doc.clause_of(start).index, dict(extra))


# ---- dates ---------------------------------------------------------------------------------------------------
_MONTH = r"(?P<mon>January|February|March|April|May|June|July|August|September|October|November|December|" \
         r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?"
_ORD = r"(?:st|nd|rd|th)?"
DATE_PATTERNS = (
    ("dmy_words", re.compile(r"\b(?:the\s+)?(?P<d>\d{1,2})" + _ORD + r"\s+(?:day\s+of\s+)?" + _MONTH +
                             r",?\s+(?:in\s+the\s+year\s+)?(?P<y>\d{4})\b", re.I)),
    ("mdy_words", re.compile(r"\b" + _MONTH + r"\s+(?P<d>\d{1,2})" + _ORD + r",?\s+(?P<y>\d{4})\b", re.I)),
    # an OCR'd year may carry a stray space ("202 1-06-09")
    ("iso", re.compile(r"\b(?P<y>\d{3} ?\d)[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})\b")),
    ("numeric", re.compile(r"\b(?P<a>\d{1,2})[/.\-](?P<b>\d{1,2})[/.\-](?P<y>\d{4}|\d{2})\b")),
)
_LOOSE_DATE = re.compile(r"\b(?:the\s+)?(?:\d{1,2}" + _ORD + r"\s+(?:day\s+of\s+)?[A-Za-z]{3,10}\.?,?\s+\d{4}|"
                         r"[A-Za-z]{3,10}\.?\s+\d{1,2}" + _ORD + r",?\s+\d{4})\b")


def _mk_date(y: int, m: int, d: int) -> date | None:
    if y < 100:
        y += 2000
    if not 1990 <= y <= 2100:
        return None
    try:
        return date(y, m, d)
    except ValueError:
        return None


def parse_date(text: str, date_order: str = "MDY") -> date | None:
    """One date from its text (any of the pattern forms, else dateparser); None if it is not a date."""
    for _, pattern in DATE_PATTERNS:
        m = pattern.fullmatch(text.strip().rstrip(".,"))
        if m:
            return _from_match(m, date_order)
    return _dateparser(text, date_order)


def _from_match(m: re.Match, date_order: str) -> date | None:
    g = m.groupdict()
    if g.get("mon"):
        mon = g["mon"].lower().rstrip(".")
        return _mk_date(int(g["y"]), MONTHS[mon if mon in MONTHS else mon[:3]], int(g["d"]))
    if g.get("m"):
        return _mk_date(int(g["y"].replace(" ", "")), int(g["m"]), int(g["d"]))
    a, b = int(g["a"]), int(g["b"])
    if date_order.upper().startswith("D") or a > 12:
        a, b = b, a
    return _mk_date(int(g["y"]), a, b)


def _dateparser(text: str, date_order: str) -> date | None:
    try:
        import dateparser
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    parsed = dateparser.parse(text, languages=["en"], settings={
        "DATE_ORDER": date_order.upper(), "STRICT_PARSING": True, "REQUIRE_PARTS": ["day", "month", "year"],
        "PREFER_DATES_FROM": "past", "RETURN_AS_TIMEZONE_AWARE": False})
    if parsed is None or not 1990 <= parsed.year <= 2100:
        return None
    return parsed.date()


def find_dates(doc: Document, date_order: str = "MDY") -> list[Candidate]:
    out: list[Candidate] = []
    taken: list[tuple[int, int]] = []
    text = doc.prepared
    for name, pattern in DATE_PATTERNS:
        for m in pattern.finditer(text):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue
            value = _from_match(m, date_order)
            if value is not None:
                taken.append((m.start(), m.end()))
                out.append(_cand(doc, "date", value, m.start(), m.end(), form=name))
    for m in _LOOSE_DATE.finditer(text):  # e.g. a month name garbled by OCR ("Septernber 4, 2024")
        if any(s < m.end() and m.start() < e for s, e in taken):
            continue
        word = re.search(r"[A-Za-z]{3,10}", m.group(0).removeprefix("the ").replace("day of", ""))
        if word and word.group(0).lower() in ("day", "the", "and", "on", "of", "dated"):
            continue
        value = _dateparser(m.group(0), date_order)
        if value is not None:
            taken.append((m.start(), m.end()))
            out.append(_cand(doc, "date", value, m.start(), m.end(), form="dateparser"))
    return sorted(out, key=lambda c: c.start)


# ---- durations -----------------------------------------------------------------------------------------------
DURATION = re.compile(
    r"\b(?:(?P<w>" + NUMBER_WORD_RE + r")\s*(?:\(\s*(?P<d1>\d{1,4})\s*\))?|(?P<d2>\d{1,4}))"
    r"[\s-]*(?P<q>calendar\s+|business\s+|consecutive\s+|working\s+)?(?P<u>months?|years?|days?|weeks?)(?![a-z])",
    re.I)


def find_durations(doc: Document) -> list[Candidate]:
    out = []
    for m in DURATION.finditer(doc.prepared):
        digits = m.group("d1") or m.group("d2")
        n = int(digits) if digits else word_number(m.group("w") or "")
        if not n:
            continue
        unit = m.group("u").lower().rstrip("s")
        if unit in ("year", "month"):
            out.append(_cand(doc, "months", n * (12 if unit == "year" else 1), m.start(), m.end(), unit=unit))
        else:
            out.append(_cand(doc, "days", n * (7 if unit == "week" else 1), m.start(), m.end(), unit=unit,
                             business=bool(m.group("q") and m.group("q").lower().startswith(("business", "working")))))
    return out


# ---- amounts -------------------------------------------------------------------------------------------------
MONEY = re.compile(r"(?P<cur>USD|US\$|\$|EUR|€|GBP|£)\s?"
                   r"(?P<n>\d{1,3}(?:[,.] ?\d{3}| \d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?)(?!\d)|"
                   r"(?P<n2>\d{1,3}(?:,\d{3})+(?:\.\d{2})?|\d+\.\d{2})\s?(?P<cur2>USD|dollars|US dollars)\b")
BASIS = (
    ("per_month", re.compile(r"per\s+(?:calendar\s+)?month|a\s+month|each\s+month|every\s+month|monthly|"
                             r"/\s*mo(?:nth)?\b|per\s+mo\b|month-to-month", re.I)),
    ("per_year", re.compile(r"per\s+(?:year|annum|contract\s+year)|a\s+year|each\s+year|every\s+year|annual(?:ly)?|"
                            r"yearly|/\s*(?:yr|year)\b|per\s+12\s+months|p\.a\.", re.I)),
    ("total", re.compile(r"in\s+total|total|over\s+the\s+(?:initial\s+|entire\s+|full\s+)?(?:term|period)|"
                         r"for\s+the\s+(?:entire\s+|initial\s+|full\s+)?term|one[-\s]time|lump[-\s]sum|"
                         r"in\s+the\s+aggregate", re.I)),
)


def parse_amount(text: str) -> Decimal | None:
    t = re.sub(r"\s", "", text)
    m = re.fullmatch(r"(\d[\d,.]*?)(?:[.,](\d{1,2}))?", t)
    if not m:
        return None
    whole = re.sub(r"[,.]", "", m.group(1))
    cents = (m.group(2) or "0").ljust(2, "0")
    try:
        return Decimal(f"{int(whole)}.{cents}")
    except ValueError:
        return None


def find_money(doc: Document) -> list[Candidate]:
    out = []
    for m in MONEY.finditer(doc.prepared):
        raw = m.group("n") or m.group("n2")
        value = parse_amount(raw)
        if value is None:
            continue
        cur = (m.group("cur") or m.group("cur2") or "$").upper()
        currency = {"$": "USD", "US$": "USD", "DOLLARS": "USD", "US DOLLARS": "USD", "€": "EUR",
                    "£": "GBP"}.get(cur, cur)
        c = _cand(doc, "money", value, m.start(), m.end(), currency=currency)
        c.extra.update(basis_of(doc, c))
        out.append(c)
    return out


def basis_of(doc: Document, c: Candidate) -> dict[str, Any]:
    """The basis an amount is stated on (per month, per year, total), read right after it, else before it
    in the same clause; ``basis_span`` is where the words are."""
    cl = doc.clauses[c.clause]
    after = doc.prepared[c.end:min(cl.end, c.end + 70)]
    before = doc.prepared[max(cl.start, c.start - 60):c.start]
    best = None
    for basis, pattern in BASIS:
        m = pattern.search(after)
        if m and (best is None or m.start() < best[1]):
            best = (basis, m.start(), c.end + m.start(), c.end + m.end())
    if best is None:
        for basis, pattern in BASIS:
            ms = list(pattern.finditer(before))
            if ms and (best is None or len(before) - ms[-1].end() < best[1]):
                off = c.start - len(before)
                best = (basis, len(before) - ms[-1].end(), off + ms[-1].start(), off + ms[-1].end())
    if best is None:
        return {"basis": None}
    return {"basis": best[0], "basis_span": (best[2], best[3])}


# ---- jurisdictions and payment terms ---------------------------------------------------------------------------
_JURIS = re.compile(r"\b(" + "|".join(re.escape(j) for j in sorted(JURISDICTIONS, key=len, reverse=True)) + r")\b",
                    re.I)
_CANON = {j.lower(): j.removeprefix("the ") for j in JURISDICTIONS}


def find_jurisdictions(doc: Document) -> list[Candidate]:
    out = []
    for m in _JURIS.finditer(doc.prepared):
        out.append(_cand(doc, "law", _CANON[m.group(1).lower()], m.start(), m.end()))
    return out


PAYTERMS = (
    (re.compile(r"\bnet[\s-]*(\d{1,3})\b", re.I), lambda m: f"Net {int(m.group(1))}"),
    (re.compile(r"\bdue\s+(?:up)?on\s+receipt\b|\bpayable\s+(?:up)?on\s+receipt\b|\bupon\s+receipt\s+of\s+(?:the\s+)?"
                r"invoice\b", re.I), lambda m: "Due on receipt"),
    (re.compile(r"\b(annual(?:ly)?|yearly|monthly|quarterly)\s*in\s+advance\b|\bin\s+advance\s+(annually|yearly|"
                r"monthly|quarterly)\b", re.I),
     lambda m: {"annual": "Annual", "annually": "Annual", "yearly": "Annual", "monthly": "Monthly",
                "quarterly": "Quarterly"}[(m.group(1) or m.group(2)).lower()] + " in advance"),
    (re.compile(r"\bwithin\s+(?:(" + NUMBER_WORD_RE + r")\s*)?\(?(\d{1,3})?\)?\s*(?:calendar\s+)?days\s+"
                r"(?:of|from|after|following)\s+(?:the\s+)?(?:date\s+of\s+)?(?:receipt\s+of\s+)?(?:the\s+|an?\s+|each\s+)?"
                r"(?:invoice|receipt|billing|statement)", re.I),
     lambda m: f"Net {int(m.group(2)) if m.group(2) else word_number(m.group(1) or '') or 0}"),
)


def find_payment_terms(doc: Document) -> list[Candidate]:
    out = []
    for pattern, canon in PAYTERMS:
        for m in pattern.finditer(doc.prepared):
            value = canon(m)
            if value and value != "Net 0":
                out.append(_cand(doc, "payterms", value, m.start(), m.end()))
    return sorted(out, key=lambda c: c.start)


# ---- parties -------------------------------------------------------------------------------------------------
_ROLES = sorted(VENDOR_ROLES + CUSTOMER_ROLES, key=len, reverse=True)
_ROLE_RE = "|".join(re.escape(r) for r in _ROLES)
ROLE_MARKER = re.compile(
    r"\(\s*(?:the\s+|hereinafter\s+(?:referred\s+to\s+as\s+)?(?:the\s+)?|each\s+a\s+)?[\"'\u201c\u2018]?"
    r"(?P<role>" + _ROLE_RE + r")[\"'\u201d\u2019]?\s*\)"
    r"|,\s+(?:the|as|acting\s+as)\s+(?P<role2>" + _ROLE_RE + r")\b", re.I)
ROLE_LABEL = re.compile(r"^[ \t]*(?P<role>" + _ROLE_RE + r")(?:\s+(?:name|legal\s+name|entity))?[ \t]*:[ \t]*"
                        r"(?P<name>[^\n]{2,100}?)[ \t]*$", re.I | re.M)
_BOUNDARY = re.compile(r"(?:\bby\s+and\s+between\b|\bbetween\b|\band\b|\bAND\b|\bBETWEEN\s*:|"
                       r"\(\s*[a-z0-9]{1,2}\s*\)|[;:]|\bwith\b|\bby\b|\bfrom\b|\bto\b|^)", re.M)
_SIGNATORY = re.compile(r"\b(?:by|name|title|signature|signed\s+by|attn|attention)\s*:\s*$", re.I)
_AFFILIATE = re.compile(r"\b(?:affiliates?|subsidiar(?:y|ies)|parent|successors?)\s+(?:of\s+)?$", re.I)


def side_of(role: str) -> str:
    r = role.lower()
    return "vendor" if r in VENDOR_ROLES else "customer" if r in CUSTOMER_ROLES else "unknown"


def clean_name(raw: str) -> str:
    name = raw.strip().strip("\"'\u201c\u201d\u2018\u2019 ,;:")
    if name.lower().startswith("the "):
        name = re.sub(r"^(?:the\s+)?(?:company\s+|firm\s+)?", "", name, flags=re.I)
    name = re.sub(r"\s+", " ", name)
    name = re.sub(r",?\s+(?:a|an)\s+[A-Z][a-z]+\s+(?:corporation|limited liability company|company|partnership).*$", "",
                  name)
    return name.strip(" ,")


def _plausible(name: str) -> bool:
    words = name.split()
    return (1 <= len(words) <= 8 and bool(re.match(r"[A-Z0-9]", name)) and any(ch.isalpha() for ch in name)
            and name.lower() not in set(_ROLES) and not re.match(r"(?i)^(?:this|the|each|either|both)\b",
                                                                          name))


def find_parties(doc: Document) -> list[Candidate]:
    """Names the contract defines as parties: ``Name ("Provider")``, ``Name, the customer,``, a
    ``Supplier: Name`` line. A name right after ``By:``/``Name:`` (a signatory) or after "affiliate of" is
    kept but marked, so extractors can pass over it."""
    text, out = doc.prepared, []
    for m in ROLE_MARKER.finditer(text):
        role = m.group("role") or m.group("role2")
        window_start = max(0, m.start() - 160)
        window = text[window_start:m.start()]
        cut = None
        for b in _BOUNDARY.finditer(window):
            if b.end() < len(window) - 1:
                cut = b
        start = window_start + (cut.end() if cut else 0)
        raw = text[start:m.start()]
        if "\n" in raw:
            start = start + raw.rindex("\n") + 1
            raw = text[start:m.start()]
        name = clean_name(raw)
        if not _plausible(name):
            continue
        s = text.index(name, start) if name in text[start:m.start() + 1] else start
        before = text[max(0, s - 40):s]
        out.append(_cand(doc, "party", name, s, s + len(name), role=role.lower(), side=side_of(role), form="marker",
                         signatory=bool(_SIGNATORY.search(before)), affiliate=bool(_AFFILIATE.search(before))))
    for m in ROLE_LABEL.finditer(text):
        name = clean_name(m.group("name"))
        if not _plausible(name):
            continue
        s = m.start("name") + max(0, m.group("name").find(name))
        out.append(_cand(doc, "party", name, s, s + len(name), role=m.group("role").lower(),
                         side=side_of(m.group("role")), form="label", signatory=False, affiliate=False))
    for m in re.finditer(r"\b((?:[A-Z][\w&'\-]*\.?[ \t]+){0,5}?[A-Z][\w&'\-]*,?[ \t]+" + CORPORATE_SUFFIX +
                         r")(?![\w])", text):
        name = clean_name(m.group(1))
        if _plausible(name) and not any(c.start <= m.start() < c.end for c in out):
            out.append(_cand(doc, "party", name, m.start(1), m.start(1) + len(name), role="", side="unknown",
                             form="suffix", signatory=bool(_SIGNATORY.search(text[max(0, m.start() - 40):m.start()])),
                             affiliate=bool(_AFFILIATE.search(text[max(0, m.start() - 40):m.start()]))))
    return sorted(out, key=lambda c: c.start)


def mentions(doc: Document, names: list[str]) -> list[Candidate]:
    """Where known names (our own, the vendor master's) occur in the text, case and spacing ignored."""
    out = []
    for name in names:
        words = name_key(name).split()
        if not words:
            continue
        parts = [r"(?:and|&)" if w == "and" else re.escape(w) for w in words]
        pattern = re.compile(r"(?<![A-Za-z0-9])" + r"[\W_]*".join(parts) + r"(?![A-Za-z0-9])", re.I)
        for m in pattern.finditer(doc.prepared):
            out.append(_cand(doc, "party", name, m.start(), m.end(), role="", side="unknown", form="known",
                             signatory=False, affiliate=False))
    return out

"""A labelled contract corpus to train and validate the learned extractor on, made here (nothing is
downloaded): the synthetic MSP's own contract wording (:func:`lakehouse.synth.contracts.render_text`, five
styles) filled with freshly sampled facts (vendors, dates, terms, amounts, laws the generator never uses
together), laid out as a text file, a PDF text layer (lines wrapped at the page width, no blank lines) or
an OCR result (narrower lines, OCR-like character slips), each with its truth row in the shape of
``truth/contract_documents.csv``.
"""

from __future__ import annotations

import random
import textwrap
from datetime import date, timedelta

from models.vcm.text import US_STATES

_WORDS = ("Acme", "Apex", "Bluebird", "Cobalt", "Summit", "Pioneer", "Granite", "Harbor", "Ironleaf", "Juniper",
          "Keystone", "Lumen", "Maple", "Northwind", "Orbit", "Pinnacle", "Quartz", "Riverside", "Silverline",
          "Tidewater", "Unity", "Vertex", "Willow", "Xenon", "Yellowstone", "Zenith", "Cedar", "Falcon", "Nimbus",
          "Sentinel", "Beacon", "Atlas", "Crescent", "Evergreen Valley", "Redstone", "Bright", "Clear", "True")
_KINDS = ("Networks", "Software", "Systems", "Security", "Telecom", "Cloud", "Data", "Consulting", "Supply",
          "Solutions", "Labs", "Partners", "Technologies", "Services", "Media", "Backup", "Voice", "Fiber")
_SUFFIX = ("", "", "", " Inc.", " LLC", " Ltd.", " Corp.", " Co.", " LLP", " Group")
_MSPS = ("North Star IT LLC", "Bluewave Managed Services Inc.", "Copperline IT Ltd.", "Harborview Tech Partners LLC")
TERMS = ("Net 30", "Net 45", "Net 15", "Net 60", "Due on receipt", "Annual in advance", "Monthly in advance")


def vendor_name(rng: random.Random) -> str:
    return f"{rng.choice(_WORDS)} {rng.choice(_KINDS)}{rng.choice(_SUFFIX)}"


def add_months(d: date, months: int) -> date:
    from lakehouse.synth.contracts import add_months as synth_add_months

    return synth_add_months(d, months)


def sample(rng: random.Random, style: int) -> dict:
    """The facts of one contract, in the generator's ``plan()`` shape."""
    term = rng.choice([6, 12, 12, 24, 24, 36, 36, 48, 60])
    effective = date(2019, 1, 1) + timedelta(days=rng.randrange(0, 9 * 365))
    signed = effective - timedelta(days=rng.randrange(1, 45))
    auto = rng.random() < 0.6
    notice = rng.choice([15, 30, 30, 45, 60, 60, 90, 120]) if auto else rng.choice([0, 30])
    rterm = rng.choice([12, 12, 12, 6, 24]) if auto else 0
    if style == 3 and auto:
        rterm = 12  # the style says "one (1) year periods"
    expiration = add_months(effective, term) - timedelta(days=1)
    annual = rng.randrange(6, 900) * 100_00
    basis = rng.choice(["per_year", "per_month", "total"])
    stated = {"per_year": annual, "per_month": annual // 12, "total": annual * term // 12}[basis]
    return {"vendor_name": vendor_name(rng), "msp_party": rng.choice(_MSPS), "agreement_date": signed,
            "effective_date": effective, "term_months": term, "expiration_date": expiration, "auto_renew": auto,
            "renewal_term_months": rterm, "notice_period_days": notice,
            "opt_out_deadline": expiration - timedelta(days=notice) if auto else None,
            "stated_amount_cents": stated, "annual_value_cents": annual, "value_basis": basis,
            "payment_terms": rng.choice(TERMS), "governing_law": rng.choice(US_STATES), "style": style}


def truth_row(doc: dict, fmt: str) -> dict:
    from lakehouse.synth.contracts import money

    return {"format": fmt, "vendor_name": doc["vendor_name"], "msp_party": doc["msp_party"],
            "agreement_date": doc["agreement_date"].isoformat(), "effective_date": doc["effective_date"].isoformat(),
            "term_months": str(doc["term_months"]), "expiration_date": doc["expiration_date"].isoformat(),
            "auto_renew": str(doc["auto_renew"]), "renewal_term_months": str(doc["renewal_term_months"] or ""),
            "notice_period_days": str(doc["notice_period_days"]),
            "opt_out_deadline": doc["opt_out_deadline"].isoformat() if doc["opt_out_deadline"] else "",
            "stated_amount": money(doc["stated_amount_cents"])[1:].replace(",", ""),
            "value_basis": doc["value_basis"], "annual_value": money(doc["annual_value_cents"])[1:].replace(",", ""),
            "payment_terms": doc["payment_terms"],
            "governing_law": doc["governing_law"], "wording_style": str(doc["style"])}


_SLIPS = {"l": "1", "I": "l", "O": "0", "o": "0", "S": "5", "e": "c", "m": "rn", ",": ".", ".": ",", "i": "l"}


def ocr_noise(text: str, rng: random.Random, rate: float = 0.01) -> str:
    """Character slips as Tesseract makes them on a noisy scan (letters, punctuation; digits are kept)."""
    out = []
    for ch in text:
        r = rng.random()
        if r < rate and ch in _SLIPS:
            out.append(_SLIPS[ch])
        elif r < rate * 1.3 and ch == " ":
            continue
        else:
            out.append(ch)
    return "".join(out)


def layout(text: str, fmt: str, rng: random.Random, noise: bool) -> list[str]:
    if fmt == "txt":
        return [text + "\n"]
    width = 92 if fmt == "pdf" else 80
    lines = []
    for para in text.split("\n"):
        lines += textwrap.wrap(para, width) or ([] if fmt == "pdf" else [""])
    out = "\n".join(lines)
    return [ocr_noise(out, rng) if noise else out]


# Clauses real contracts carry that hold dates, durations, amounts and places which are NOT the fields: the
# traps of DOMAIN.md section 8 (survival and cure periods, insurance and liability amounts, venues and
# addresses, earlier agreements). Pool "train" is mixed into training documents, pool "test" (other wording)
# into the held-out ones, so the check also measures traps phrased in ways the model has not seen.
DISTRACTORS = {
    "train": (
        "Provider shall maintain commercial general liability insurance of at least {money} per occurrence.",
        "Either party may terminate this Agreement for material breach not cured within {days_w} ({days}) days "
        "of written notice.",
        "The obligations of confidentiality survive for {years_w} ({years}) years after termination.",
        "Provider's principal office is located at {num} Main Street, {city}, {state}.",
        "This Agreement supersedes the proposal dated {date}.",
        "Late payments bear interest of 1.5% per month after {days} days.",
        "In no event shall either party's liability exceed {money}.",
        "Support requests are answered within {days2} business days.",
        "Customer may not solicit Provider's employees for {months} months after termination.",
    ),
    "test": (
        "Vendor carries cyber insurance with limits of no less than {money}.",
        "A party in default has {days} days from notice to remedy it before the other may end this agreement.",
        "Sections on confidentiality and indemnity remain in force for {years} years after the agreement ends.",
        "Notices go to the Vendor at {num} Oak Avenue, {city}, {state}.",
        "It replaces the letter of intent signed on {date}.",
        "Total damages recoverable are capped at {money}.",
        "Hardware warranty: {months} months from delivery.",
        "Disputes are heard by the courts of {city}, {state}.",
    ),
}
_CITIES = ("Denver", "Austin", "Dallas", "Boston", "Phoenix", "Seattle", "Atlanta", "Chicago", "Miami", "Portland")


def distractor(rng: random.Random, pool: str, doc: dict) -> str:
    from lakehouse.synth.contracts import fmt_date, money, words

    days, years, months = rng.choice([5, 10, 14, 20, 45]), rng.choice([2, 3, 5]), rng.choice([6, 18, 9])
    when = doc["agreement_date"] - timedelta(days=rng.randrange(60, 900))
    return rng.choice(DISTRACTORS[pool]).format(
        money=money(rng.randrange(1, 50) * 100_000_00), days=days, days_w=words(days), years=years,
        years_w=words(years), months=months, num=rng.randrange(10, 999), city=rng.choice(_CITIES),
        state=rng.choice(US_STATES), date=fmt_date(when, doc["style"]), days2=rng.choice([2, 3, 5]))


def with_distractors(text: str, rng: random.Random, pool: str, doc: dict, k: int) -> str:
    paras = text.split("\n\n") if "\n\n" in text else text.split("\n")
    sep = "\n\n" if "\n\n" in text else "\n"
    for _ in range(k):
        paras.insert(rng.randrange(2, len(paras) + 1), distractor(rng, pool, doc))
    return sep.join(paras)


def corpus(n: int, seed: int, styles: tuple[int, ...] = (0, 1, 2, 3, 4), noise_share: float = 0.3,
           distractors: str | None = "train") -> list[tuple[list[str], dict]]:
    """``n`` labelled documents: (page texts, truth row). ``distractors``: the trap pool mixed in (0-3
    clauses per document), or None for the bare wording."""
    from lakehouse.synth.contracts import render_text

    rng = random.Random(seed)
    out = []
    for i in range(n):
        style = styles[i % len(styles)]
        doc = sample(rng, style)
        fmt = rng.choice(["txt", "pdf", "scanned_pdf"])
        noisy = fmt == "scanned_pdf" and rng.random() < noise_share * 3
        text = render_text(doc)
        if distractors:
            text = with_distractors(text, rng, distractors, doc, rng.randrange(0, 4))
        out.append((layout(text, fmt, rng, noisy), truth_row(doc, fmt)))
    return out

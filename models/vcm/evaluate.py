"""Field accuracy of an extractor against the truth of labelled documents.

A field is right when its value equals the truth value, compared as follows (``docs/vcm.md`` shows the
tables this produces):

* dates (agreement, effective, expiration, opt-out deadline): the same day, exactly;
* names (vendor, our party): equal after case, accents, punctuation and spacing are ignored
  (:func:`models.vcm.text.name_key`), so an OCR comma for a full stop is not an error but a wrong word is;
* payment terms: equal ignoring case; jurisdictions, bases, numbers and booleans: equal;
* stated amount: equal to the cent; annual value: within one dollar, because a monthly amount stated to the
  cent (1,816.66 per month) cannot reproduce an annual value of 21,800.00 exactly;
* the notice period is scored only where the contract renews (a fixed-term contract states none, so the
  truth's number there is not in the text); a fixed-term contract's renewal term and opt-out deadline must
  come out empty.

Overall accuracy is the share of right (document, field) pairs over every scored pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from models.vcm.fields import Extraction
from models.vcm.text import name_key

SCORED = ("vendor_name", "msp_party", "agreement_date", "effective_date", "term_months", "expiration_date",
          "auto_renew", "renewal_term_months", "notice_period_days", "opt_out_deadline", "stated_amount",
          "value_basis", "annual_value", "payment_terms", "governing_law")
DATE_FIELDS = ("agreement_date", "effective_date", "expiration_date", "opt_out_deadline")


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v) or (isinstance(v, str) and v.strip() == "")


def truth_value(name: str, raw: Any) -> Any:
    """A truth CSV cell as a typed value."""
    if _blank(raw):
        return None
    s = str(raw).strip()
    if name in DATE_FIELDS:
        return date.fromisoformat(s)
    if name in ("term_months", "renewal_term_months", "notice_period_days"):
        return int(float(s))
    if name == "auto_renew":
        return s.lower() in ("true", "1", "yes")
    if name in ("stated_amount", "annual_value"):
        return Decimal(s)
    return s


def scored_fields(truth: Mapping[str, Any]) -> list[str]:
    renews = truth_value("auto_renew", truth.get("auto_renew"))
    return [f for f in SCORED if f != "notice_period_days" or renews]


def correct(name: str, got: Any, want: Any) -> bool:
    if _blank(want) or (name == "renewal_term_months" and want == 0):
        return _blank(got)
    if _blank(got):
        return False
    if name in ("vendor_name", "msp_party"):
        return name_key(str(got)) == name_key(str(want))
    if name == "payment_terms":
        return str(got).strip().lower() == str(want).strip().lower()
    if name == "annual_value":
        return abs(Decimal(str(got)) - Decimal(str(want))) <= Decimal("1.00")
    if name == "stated_amount":
        return Decimal(str(got)) == Decimal(str(want))
    return got == want


def score(extraction: Extraction | Mapping[str, Any], truth: Mapping[str, Any]) -> dict[str, bool]:
    """field → right or wrong, for the fields scored on this document."""
    values = extraction.values() if isinstance(extraction, Extraction) else extraction
    return {f: correct(f, values.get(f), truth_value(f, truth.get(f))) for f in scored_fields(truth)}


def accuracy_table(results: Iterable[tuple[str, str, dict[str, bool]]]) -> dict[str, Any]:
    """``results``: (format, extractor, field → right). Returns per extractor: per format and field the share
    right (and counts), and the overall share per format."""
    acc: dict[str, dict[str, dict[str, list[int]]]] = {}
    for fmt, extractor, marks in results:
        for f, ok in marks.items():
            cell = acc.setdefault(extractor, {}).setdefault(fmt, {}).setdefault(f, [0, 0])
            cell[0] += int(ok)
            cell[1] += 1
    out: dict[str, Any] = {}
    for extractor, by_fmt in acc.items():
        out[extractor] = {}
        for fmt, by_field in by_fmt.items():
            right = sum(v[0] for v in by_field.values())
            total = sum(v[1] for v in by_field.values())
            out[extractor][fmt] = {"overall": right / total if total else None, "pairs": total,
                                   "fields": {f: {"accuracy": v[0] / v[1], "right": v[0], "n": v[1]}
                                              for f, v in by_field.items()}}
    return out


def markdown(table: Mapping[str, Any], formats: Iterable[str] = ("txt", "pdf", "scanned_pdf")) -> str:
    """The accuracy table as markdown: one row per field, one column per (extractor, format)."""
    formats = [f for f in formats if any(f in t for t in table.values())]
    extractors = list(table)
    head = "| field | " + " | ".join(f"{e} {f}" for e in extractors for f in formats) + " |"
    lines = [head, "|---|" + "---:|" * (len(extractors) * len(formats))]
    names = [f for f in SCORED if any(f in table[e][fm]["fields"] for e in extractors for fm in formats
                                      if fm in table[e])]
    for name in names:
        cells = []
        for e in extractors:
            for fm in formats:
                c = table[e].get(fm, {}).get("fields", {}).get(name)
                cells.append(f"{c['accuracy']:.2f} ({c['right']}/{c['n']})" if c else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cells = []
    for e in extractors:
        for fm in formats:
            t = table[e].get(fm)
            cells.append(f"**{t['overall']:.3f}** ({t['pairs']})" if t and t["overall"] is not None else "")
    lines.append("| **overall** | " + " | ".join(cells) + " |")
    return "\n".join(lines)

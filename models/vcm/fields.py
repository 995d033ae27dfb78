"""The fields a vendor contract is read for, their value types, and the arithmetic that ties them together.

Calendar conventions (the ones the register, the reminders and the tests rely on):

* A term of *n* months starting on day *S* ends the day before its anniversary: the same day of the month
  *n* months later, or, when that month is too short (a term starting on January 31st or on February 29th),
  the first day of the next month. So 12 months from 2024-02-29 end on 2025-02-28, 1 month from 2023-01-31
  ends on 2023-02-28, 24 months from 2024-03-31 end on 2026-03-30.
* The opt-out deadline of an auto-renewing (or evergreen) contract is its term end minus the notice period
  in days: the last day written notice of non-renewal can still be given (DOMAIN.md section 6). A fixed-term
  contract has none.
* A renewal term starts the day after the term it follows ends.
* The annual value is the stated amount per year; 12 times a monthly amount; a total over the initial term
  times 12 / term months.
"""

from __future__ import annotations

import calendar
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

#: Every field, in the order the register shows them, with the type of its value.
FIELDS: dict[str, str] = {
    "vendor_name": "string",
    "msp_party": "string",
    "agreement_date": "date",
    "effective_date": "date",
    "term_months": "int",
    "expiration_date": "date",
    "auto_renew": "boolean",
    "renewal_type": "string",
    "renewal_term_months": "int",
    "notice_period_days": "int",
    "opt_out_deadline": "date",
    "stated_amount": "decimal",
    "value_basis": "string",
    "annual_value": "decimal",
    "currency": "string",
    "payment_terms": "string",
    "governing_law": "string",
    "liability_cap": "string",
}
#: Fields read from the text (the others are derived from them).
STATED = ("vendor_name", "msp_party", "agreement_date", "effective_date", "term_months", "expiration_date",
          "auto_renew", "renewal_term_months", "notice_period_days", "stated_amount", "value_basis",
          "payment_terms", "governing_law")
DERIVED = ("renewal_type", "opt_out_deadline", "annual_value", "currency", "liability_cap")
RENEWAL_TYPES = ("auto_renew", "evergreen", "fixed_term")
VALUE_BASES = ("per_month", "per_year", "total")


@dataclass
class FieldValue:
    """One extracted field: its value, the span of the document text it came from, and how sure we are."""

    field: str
    value: Any
    confidence: float
    start: int | None = None
    end: int | None = None
    text: str | None = None
    method: str = ""
    page: int | None = None
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["value"] = to_text(self.value)
        d["confidence"] = round(float(self.confidence), 4)
        return d


@dataclass
class Extraction:
    """Every field of one document, with the name and version of the extractor that read it."""

    fields: dict[str, FieldValue]
    extractor: str
    issues: list[str] = field(default_factory=list)

    def value(self, name: str) -> Any:
        f = self.fields.get(name)
        return None if f is None else f.value

    def values(self) -> dict[str, Any]:
        return {k: self.value(k) for k in FIELDS}

    def as_json(self) -> dict[str, Any]:
        return {"extractor": self.extractor, "issues": list(self.issues),
                "fields": {k: self.fields[k].as_json() for k in FIELDS if k in self.fields}}


def to_text(value: Any) -> str | None:
    """A field value as the text the lake stores (ISO dates, ``true``/``false``, plain decimals)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value.quantize(Decimal('0.01'), ROUND_HALF_UP)}"
    return str(value)


def from_text(name: str, text: str | None) -> Any:
    """The inverse of :func:`to_text` for a field."""
    if text is None or text == "":
        return None
    kind = FIELDS[name]
    if kind == "date":
        return date.fromisoformat(text)
    if kind == "int":
        return int(text)
    if kind == "boolean":
        return text.lower() == "true"
    if kind == "decimal":
        return Decimal(text)
    return text


# ---- calendar arithmetic ------------------------------------------------------------------------------------
def anniversary(start: date, months: int) -> date:
    """The same day of the month ``months`` later, or the 1st of the following month if that day does not
    exist (January 31 + 1 month → March 1; February 29 + 12 months → March 1)."""
    k = start.month - 1 + months
    y, m = start.year + k // 12, k % 12 + 1
    last = calendar.monthrange(y, m)[1]
    if start.day <= last:
        return date(y, m, start.day)
    return date(y + (m == 12), m % 12 + 1, 1)


def term_end(start: date, months: int) -> date:
    """Last day of a term of ``months`` months starting on ``start``."""
    return anniversary(start, months) - timedelta(days=1)


def term_ends(start: date, months: int) -> set[date]:
    """Every end a drafter may mean for ``months`` months from ``start``: :func:`term_end`, and the day
    before the anniversary clamped to the month's last day (January 31 + 1 month: February 28 or 29). The
    consistency checks accept either; derivations use :func:`term_end`."""
    k = start.month - 1 + months
    y, m = start.year + k // 12, k % 12 + 1
    clamped = date(y, m, min(start.day, calendar.monthrange(y, m)[1])) - timedelta(days=1)
    return {term_end(start, months), clamped}


def months_between(start: date, end: date) -> int | None:
    """The term in whole months whose :func:`term_end` from ``start`` is ``end`` (None if there is none)."""
    approx = (end.year - start.year) * 12 + end.month - start.month
    for n in (approx, approx + 1, approx - 1):
        if n > 0 and end in term_ends(start, n):
            return n
    return None


def opt_out_deadline(end: date | None, notice_days: int | None, renews: bool | None) -> date | None:
    if end is None or notice_days is None or not renews:
        return None
    return end - timedelta(days=int(notice_days))


def annual_value(amount: Decimal | None, basis: str | None, term_months: int | None) -> Decimal | None:
    if amount is None or basis is None:
        return None
    if basis == "per_year":
        return amount
    if basis == "per_month":
        return amount * 12
    if basis == "total" and term_months:
        return (amount * 12 / Decimal(term_months)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return None


def current_term(expiration: date, renews: bool, renewal_months: int | None, on: date) -> tuple[date, int]:
    """(end of the term in force on ``on``, renewals since the initial term): an auto-renewing contract
    rolls into renewal terms after its expiration; a fixed-term one stays at its expiration."""
    end, k = expiration, 0
    if not renews or not renewal_months:
        return end, 0
    while end < on:
        end = term_end(end + timedelta(days=1), renewal_months)
        k += 1
    return end, k


# ---- derived fields -------------------------------------------------------------------------------------------
def finish(fields: dict[str, FieldValue], text: str = "") -> list[str]:
    """Fill the derived fields and check the stated ones against each other; returns the issues found
    (inconsistent dates, a missing term). Confidence of a derived value is that of its weakest input."""
    issues: list[str] = []
    v = {k: (f.value if f is not None else None) for k, f in fields.items()}

    def conf(*names: str) -> float:
        cs = [fields[n].confidence for n in names if fields.get(n) is not None and fields[n].value is not None]
        return min(cs) if cs else 0.0

    eff, exp, term = v.get("effective_date"), v.get("expiration_date"), v.get("term_months")
    if eff and term and not exp:
        fields["expiration_date"] = FieldValue("expiration_date", term_end(eff, term), conf("effective_date",
                                               "term_months"), method="derived:effective_date+term_months")
    elif eff and exp and not term:
        n = months_between(eff, exp)
        if n:
            fields["term_months"] = FieldValue("term_months", n, conf("effective_date", "expiration_date"),
                                               method="derived:expiration_date-effective_date")
    elif eff and exp and term and exp not in term_ends(eff, term):
        issues.append(f"expiration_date {exp} is not {term} months after effective_date {eff} "
                      f"(that would end {term_end(eff, term)})")
    if eff and v.get("agreement_date") and v["agreement_date"] > eff + timedelta(days=366):
        issues.append(f"agreement_date {v['agreement_date']} is long after effective_date {eff}")
    v = {k: (f.value if f is not None else None) for k, f in fields.items()}
    renews = v.get("auto_renew")
    rtype = fields.get("renewal_type")
    if rtype is None or rtype.value is None:
        kind = None if renews is None else ("auto_renew" if renews else "fixed_term")
        fields["renewal_type"] = FieldValue("renewal_type", kind, conf("auto_renew"), method="derived:auto_renew")
    if renews is False:
        for name in ("renewal_term_months", "notice_period_days"):
            if fields.get(name) is not None and fields[name].value is not None:
                fields[name].notes.append("stated, but the contract does not renew")
    fields["opt_out_deadline"] = FieldValue(
        "opt_out_deadline", opt_out_deadline(v.get("expiration_date"), v.get("notice_period_days"), renews),
        conf("expiration_date", "notice_period_days", "auto_renew"),
        method="derived:expiration_date-notice_period_days")
    if renews and v.get("notice_period_days") is None:
        issues.append("the contract renews but no notice period was found: no opt-out deadline")
    fields["annual_value"] = FieldValue(
        "annual_value", annual_value(v.get("stated_amount"), v.get("value_basis"), v.get("term_months")),
        conf("stated_amount", "value_basis", *(("term_months",) if v.get("value_basis") == "total" else ())),
        method="derived:stated_amount+value_basis")
    if (fields.get("currency") is None or fields["currency"].value is None) and v.get("stated_amount") is not None:
        fields["currency"] = FieldValue("currency", "USD", conf("stated_amount"), method="derived:default USD")
    for name in FIELDS:
        fields.setdefault(name, FieldValue(name, None, 0.0, method="not found"))
    return issues

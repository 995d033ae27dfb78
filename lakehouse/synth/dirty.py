"""Dirty rows: extra copies of real rows, corrupted the way real exports go wrong.

Real rows are never touched: every dirty row is an *extra* row, either an exact duplicate of a real row
or a copy with a new key and one defect (a blank required field, a date in US format, a negative amount,
a foreign key that points nowhere). Once the quality gate drops exact duplicates and quarantines the
defective copies, the clean rows left are exactly the rows the planted truth was computed from.

Which rows get a copy is a pure hash of (seed, dataset, export day, row position), so the same export day
gets the same dirt whatever window of days a run writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from schemas import Dataset

KINDS = ("duplicate", "blank_required", "bad_date_format", "negative_amount", "unknown_fk")

#: Foreign keys per dataset (columns whose values must exist in another dataset).
FOREIGN_KEYS: dict[str, tuple[str, ...]] = {
    "contacts": ("client_id",), "sites": ("client_id",), "agreements": ("client_id",),
    "agreement_additions": ("agreement_id", "client_id"), "invoices": ("client_id", "agreement_id"),
    "invoice_lines": ("invoice_id", "client_id"), "payments": ("invoice_id", "client_id"),
    "tickets": ("client_id", "contact_id", "assigned_technician_id"),
    "time_entries": ("technician_id", "client_id", "ticket_id"), "managed_endpoints": ("client_id",),
    "technician_cost_rates": ("technician_id",), "technician_pto": ("technician_id",), "projects": ("client_id",),
    "opportunities": ("lead_id",), "activities": ("lead_id",), "software_inventory": ("client_id",),
    "agent_removals": ("client_id",), "entitlements": ("client_id",), "subscribed_skus": ("client_id",),
    "active_user_detail": ("client_id",), "expenses": ("vendor_id",),
}

#: Money columns that can never be negative (targets of the negative_amount defect).
MONEY: dict[str, tuple[str, ...]] = {
    "clients": ("hourly_rate",), "agreements": ("mrr",), "agreement_additions": ("unit_cost", "unit_price"),
    "invoices": ("subtotal", "total"), "invoice_lines": ("amount", "unit_price"), "payments": ("amount",),
    "technician_cost_rates": ("cost_rate",), "projects": ("fixed_fee",), "opportunities": ("mrr",),
    "entitlements": ("unit_price",), "expenses": ("amount",), "budgets": ("amount",),
}

_DATE = re.compile(r"^(\"?)(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}):(\d{2}))?(\"?)$")
_DIGITS = re.compile(r"\d")


@dataclass(frozen=True)
class Plan:
    """Where the defects of one dataset can go, derived from its declaration."""

    kinds: tuple[str, ...]
    blank: tuple[int, ...]  #: column positions that must not be blank
    dates: tuple[int, ...]
    money: tuple[int, ...]
    fks: tuple[int, ...]
    new_key: int | None  #: position of a surrogate key that a copy replaces; None for natural keys

    @staticmethod
    def of(ds: Dataset) -> Plan:
        names = [c.name for c in ds.data_columns]
        pk = list(ds.primary_key)
        surrogate = len(pk) == 1
        cols = ds.data_columns
        if surrogate:
            blank = [i for i, c in enumerate(cols) if not c.nullable and c.name not in pk]
            dates = [i for i, c in enumerate(cols) if c.type in ("date", "timestamp")]
            money = [names.index(n) for n in MONEY.get(ds.name, ())]
            fks = [names.index(n) for n in FOREIGN_KEYS.get(ds.name, ())]
        else:  # a copy must differ in a key column, or it would clash with the real row
            blank = [names.index(n) for n in pk if cols[names.index(n)].type == "string"]
            dates = [names.index(n) for n in pk if cols[names.index(n)].type in ("date", "timestamp")]
            money = []
            fks = [names.index(n) for n in FOREIGN_KEYS.get(ds.name, ()) if n in pk]
        kinds = ["duplicate"]
        kinds += ["blank_required"] if blank else []
        kinds += ["bad_date_format"] if dates else []
        kinds += ["negative_amount"] if money else []
        kinds += ["unknown_fk"] if fks else []
        return Plan(tuple(kinds), tuple(blank), tuple(dates), tuple(money), tuple(fks),
                    names.index(pk[0]) if surrogate else None)


def us_date(field: str) -> str | None:
    """2024-03-15 -> 03/15/2024 and 2024-03-15T10:20:30 -> 03/15/2024 10:20 (quotes kept)."""
    m = _DATE.match(field)
    if not m:
        return None
    q, y, mo, d, hh, mi, _, q2 = m.groups()
    text = f"{mo}/{d}/{y}" + (f" {hh}:{mi}" if hh else "")
    return f"{q}{text}{q2}"


def unknown_key(field: str) -> str:
    """Same shape as a real key, all digits 9 (never issued: id widths leave room)."""
    return _DIGITS.sub("9", field)


def new_key(field: str, day: int, j: int) -> str:
    """A key for a copy that no real row has: the real prefix, then a longer number."""
    quote = '"' if field.startswith('"') else ""
    body = field.strip('"')
    m = re.match(r"^(\D*)\d+$", body)
    prefix = m.group(1) if m else ""
    if not prefix and body.isdigit():
        return f"{quote}{9_000_000_000 + day * 10_000 + j}{quote}"
    return f"{quote}{prefix}{day + 20_000:05d}{j:05d}{quote}"


def corrupt(fields: list[str], kind: str, plan: Plan, u: float, day: int, j: int, blank_text: str) -> tuple[
        list[str], str]:
    """A corrupted copy of one row's field texts; returns (fields, corrupted column position or '')."""
    out = list(fields)
    if kind == "duplicate":
        return out, ""
    if plan.new_key is not None:
        out[plan.new_key] = new_key(out[plan.new_key], day, j)

    def choose(positions):
        usable = [p for p in positions if fields[p] not in ("", "null", "NULL", '""')]
        return usable[int(u * len(usable))] if usable else None

    if kind == "blank_required":
        p = choose(plan.blank)
        if p is not None:
            out[p] = blank_text
            return out, str(p)
    elif kind == "bad_date_format":
        p = choose(plan.dates)
        if p is not None and us_date(fields[p]):
            out[p] = us_date(fields[p])
            return out, str(p)
    elif kind == "negative_amount":
        p = choose(plan.money)
        if p is not None and not fields[p].lstrip('"').startswith("-") and fields[p].strip('"') not in (
                "0.00", "0"):
            q = '"' if fields[p].startswith('"') else ""
            out[p] = f"{q}-{fields[p].strip(chr(34))}{q}"
            return out, str(p)
    elif kind == "unknown_fk":
        p = choose(plan.fks)
        if p is not None:
            out[p] = unknown_key(fields[p])
            return out, str(p)
    return list(fields), ""  # the defect does not apply to this row: fall back to an exact duplicate


def choose_kind(plan: Plan, u: np.ndarray) -> np.ndarray:
    return np.asarray(plan.kinds, dtype=object)[(u * len(plan.kinds)).astype(int)]

"""Literal test rows as the lake stores them: one conversion of a hand-written value to its declared column
type, shared by the agents' fixtures (``tests/<agent>/conftest.py``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any


def stored_value(col, v: Any) -> Any:
    """``v`` as column ``col`` stores it: decimals exact, ISO dates and timestamps parsed (naive means UTC),
    doubles as floats, integer text as ints; None stays null."""
    if v is None:
        return None
    if col.decimal:
        return Decimal(str(v))
    if col.type == "date" and isinstance(v, str):
        return date.fromisoformat(v)
    if col.type == "timestamp" and isinstance(v, str):
        ts = datetime.fromisoformat(v)
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    if col.type == "double":
        return float(v)
    if col.type in ("int", "long") and isinstance(v, str):
        return int(v)
    return v

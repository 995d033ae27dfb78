"""Exact decimal arithmetic for Ibis expressions, the same on DuckDB and on Spark.

The CPI tables hold money and hours as decimals rounded half-up (away from zero on a tie) at a fixed
scale. DuckDB and Spark agree on decimal sums, products and differences, but not on division: Spark keeps
a decimal quotient, DuckDB returns a double, whose rounding can differ by a cent on a tie (59.995 is
59.99499... in binary). So every decimal ratio here is computed on integers (cents, centi-hours, counts)
and rounded with integer arithmetic: the exact quotient rounded half-up, whatever the engine. Ratios the
formulas define on doubles (per endpoint, CSAT means) are rounded by :func:`half_up`, which reproduces
Spark's ``round`` of a double on both engines.

    cents = units(t.amount, 2)                         # decimal(12,2) -> int64 cents, exactly
    margin = ratio(profit_c * 100, billed_c, 2)        # round_half_up(profit / billed * 100, 2), int64
    to_decimal(margin, 2, 12)                          # -> decimal(12,2)
    to_double(half_up(ratio_double, 4), 4)            # a double rounded half-up as Spark does

Magnitudes stay far below 2**53, so the engines' integer divisions (Spark and DuckDB both compile Ibis's
``//`` to ``floor(a / b)`` in doubles) are exact.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import ibis
import ibis.expr.datatypes as dt


def units(value: Any, scale: int) -> Any:
    """A decimal (or integer) expression as an int64 number of ``10**-scale`` units (exact when the value has
    at most ``scale`` decimals, as the declared money and hours columns do)."""
    return (value * 10**scale).cast("int64")


def ratio(num: Any, den: Any, scale: int = 0) -> Any:
    """``num / den`` rounded half-up to ``scale`` decimals, as an int64 of ``10**-scale`` units; null when
    ``den`` is null or 0. ``num`` and ``den`` are integer expressions (or Python ints)."""
    num = ibis.literal(num, type="int64") if isinstance(num, int) else num.cast("int64")
    den = ibis.literal(den, type="int64") if isinstance(den, int) else den.cast("int64")
    scaled = num * 10**scale if scale else num
    den_abs = den.abs().nullif(0)
    q = (scaled.abs() * 2 + den_abs) // (den_abs * 2)
    return q * ibis.ifelse((scaled < 0) != (den < 0), -1, 1)


def half_up(value: Any, scale: int = 0) -> Any:
    """A double expression rounded half-up (away from zero) to ``scale`` decimals, as int64 units, the way
    Spark's ``round`` does it: on the shortest decimal that names the double, so 2.675 (2.67499999... in
    binary) is a tie and rounds up, while 74.32499999999999 rounds down.

    The double is a tie exactly when the tie decimal, converted to a double, gives it back: that test and a
    comparison with the tie are plain IEEE operations, identical on every engine."""
    a = value.abs()
    k = (a * 10**scale).floor().cast("int64")
    tie = (k.cast("float64") * 2 + 1) / (2 * 10**scale)  # the double nearest to (k + 0.5) / 10**scale
    q = k + ibis.ifelse(a >= tie, 1, 0)
    return q * ibis.ifelse(value < 0, -1, 1)


def fdiv(num: Any, den: Any) -> Any:
    """``num / den`` in doubles, null when ``den`` is null or 0 (never infinity, nor an ANSI error on Spark)."""
    return num.cast("float64") / den.cast("float64").nullif(0)


def to_decimal(value_units: Any, scale: int, precision: int) -> Any:
    """int64 units of ``10**-scale`` → ``decimal(precision, scale)``, exactly."""
    wide = dt.Decimal(18 + scale, scale)
    if not scale:
        return value_units.cast(dt.Decimal(precision, 0))
    step = ibis.literal(Decimal(1).scaleb(-scale), type=wide)
    return (value_units.cast(wide) * step).cast(dt.Decimal(precision, scale))


def to_double(value_units: Any, scale: int) -> Any:
    """int64 units of ``10**-scale`` → the nearest double."""
    return value_units.cast("float64") / 10**scale


def decimal_literal(value: float, scale: int) -> Decimal:
    """A float setting as the decimal Spark's cast would make of it (its shortest repr, rounded half-up)."""
    return Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)

"""Turning simulated numbers into export text, column by column, with pyarrow compute (no Python loops).

Simulation code keeps days, seconds, cents and codes as integers; the text of an export is made only when
rows are written. Nullable integer columns use ``NULL`` as their missing value.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.synth.timeline import DAY, Timeline

NULL = np.iinfo(np.int64).min
_TWO = pa.array([f"{i:02d}" for i in range(100)])


def _mask(values: np.ndarray) -> np.ndarray | None:
    m = values == NULL
    return m if m.any() else None


def ids(prefix: str, width: int, numbers: np.ndarray) -> pa.Array:
    """``prefix`` + zero-padded number; NULL or negative numbers give a null."""
    numbers = np.asarray(numbers, dtype=np.int64)
    mask = numbers < 0
    text = pc.utf8_lpad(pc.cast(pa.array(np.where(mask, 0, numbers)), pa.string()), width, "0")
    out = pc.binary_join_element_wise(prefix, text, "")
    return pc.if_else(pa.array(mask), pa.nulls(len(numbers), pa.string()), out) if mask.any() else out


def pick(labels: list[str] | tuple[str, ...], codes: np.ndarray) -> pa.Array:
    """labels[code]; a negative code gives a null."""
    codes = np.asarray(codes, dtype=np.int64)
    mask = codes < 0
    return pa.array(list(labels), pa.string()).take(pa.array(np.where(mask, 0, codes), mask=mask if mask.any()
                                                              else None))


def scaled(values: np.ndarray, digits: int) -> pa.Array:
    """Integer ``values`` / 10**digits as fixed-point text (cents -> ``12.34``)."""
    values = np.asarray(values, dtype=np.int64)
    mask = _mask(values)
    v = np.where(mask, 0, values) if mask is not None else values
    a = np.abs(v)
    unit = 10**digits
    whole = pc.cast(pa.array(a // unit), pa.string())
    if digits == 0:
        text = whole
    elif digits == 2:
        text = pc.binary_join_element_wise(whole, _TWO.take(pa.array(a % unit)), ".")
    else:
        frac = pc.utf8_lpad(pc.cast(pa.array(a % unit), pa.string()), digits, "0")
        text = pc.binary_join_element_wise(whole, frac, ".")
    neg = v < 0
    if neg.any():
        text = pc.if_else(pa.array(neg), pc.binary_join_element_wise("-", text, ""), text)
    if mask is not None:
        text = pc.if_else(pa.array(mask), pa.nulls(len(v), pa.string()), text)
    return text


def integers(values: np.ndarray) -> pa.Array:
    values = np.asarray(values, dtype=np.int64)
    return pc.cast(pa.array(values, mask=_mask(values)), pa.string())


def booleans(values: np.ndarray) -> pa.Array:
    """bool array, or int8 with -1 for null."""
    values = np.asarray(values)
    if values.dtype == bool:
        return pa.array(["false", "true"]).take(pa.array(values.astype(np.int8)))
    mask = values < 0
    return pa.array(["false", "true"]).take(pa.array(np.where(mask, 0, values).astype(np.int8),
                                                       mask=mask if mask.any() else None))


def dates(tl: Timeline, days: np.ndarray) -> pa.Array:
    days = np.asarray(days, dtype=np.int64)
    mask = _mask(days)
    idx = tl.date_index(np.where(mask, 0, days) if mask is not None else days)
    return tl.date_text.take(pa.array(idx, mask=mask))


def timestamps(tl: Timeline, seconds: np.ndarray, sep: str = "T") -> pa.Array:
    seconds = np.asarray(seconds, dtype=np.int64)
    mask = _mask(seconds)
    s = np.where(mask, 0, seconds) if mask is not None else seconds
    day_text = tl.date_text.take(pa.array(tl.date_index(s // DAY)))
    time_text = tl.time_text.take(pa.array(s % DAY))
    out = pc.binary_join_element_wise(day_text, time_text, sep)
    if mask is not None:
        out = pc.if_else(pa.array(mask), pa.nulls(len(s), pa.string()), out)
    return out


def strings(values) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values if values.type == pa.string() else pc.cast(values, pa.string())
    return pa.array(np.asarray(values, dtype=object), pa.string())


def join(*parts, sep: str = "") -> pa.Array:
    """Element-wise concatenation of arrays and scalars (nulls stay null)."""
    return pc.binary_join_element_wise(*parts, sep)

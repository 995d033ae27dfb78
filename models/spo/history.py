"""What a change-exported table said on a given day, for many days at once (pandas).

Processed CRM and PSA tables keep every exported version of a record (a row on each day it changes, in
that day's ``dt``). A model snapshot or a generator evaluated on day *d* must see the record as exported on
or before *d* only, so that a rerun of *d* gives the same answer after later exports arrived, and so that
training rows never see their own future. :func:`as_of` answers that for a whole grid of (key, day) at once
with one sorted ``merge_asof`` instead of one filter per day.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

#: Columns that order two versions of a record (the last one wins), as in lakehouse.transforms.latest.
VERSION_ORDER = ("dt", "updated_at", "_source_file", "_row_number")


def day(values) -> pd.Series:
    """Dates, ISO strings or timestamps (any zone) → naive midnight timestamps (``datetime64[ns]``)."""
    s = pd.Series(values) if not isinstance(values, pd.Series) else values
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return pd.to_datetime(s, errors="coerce").dt.normalize().astype("datetime64[ns]")


def as_timestamp(d: date | str | pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(d).normalize()


def versions(frame: pd.DataFrame, key: Sequence[str] | str) -> pd.DataFrame:
    """One version per record and export day (the latest of the day), with ``_day`` (the export day as a
    timestamp), sorted by ``_day``: the input of :func:`as_of`."""
    key = [key] if isinstance(key, str) else list(key)
    f = frame.copy()
    f["_day"] = day(f["dt"])
    order = [c for c in VERSION_ORDER if c in f.columns]
    f = f.sort_values([*key, *order], kind="mergesort")
    f = f.drop_duplicates([*key, "_day"], keep="last")
    return f.sort_values("_day", kind="mergesort").reset_index(drop=True)


def latest(frame: pd.DataFrame, key: Sequence[str] | str, on: date | str | None = None) -> pd.DataFrame:
    """Each record as it stood on day ``on`` (default: its last version), one row per key."""
    key = [key] if isinstance(key, str) else list(key)
    v = versions(frame, key)
    if on is not None:
        v = v[v["_day"] <= as_timestamp(on)]
    return v.drop_duplicates(key, keep="last").reset_index(drop=True)


def as_of(history: pd.DataFrame, key: str, grid: pd.DataFrame) -> pd.DataFrame:
    """``grid`` (columns ``key`` and ``day``) joined with each record's version as exported on or before
    ``day``; records not yet exported on a day are left out. ``history`` comes from :func:`versions`."""
    g = grid[[key, "day"]].copy()
    g["day"] = day(g["day"])
    g = g.sort_values("day", kind="mergesort")
    out = pd.merge_asof(g, history, left_on="day", right_on="_day", by=key, direction="backward")
    return out[out["_day"].notna()].reset_index(drop=True)


def days_between(first: date | str, last: date | str, every: int = 1) -> list[pd.Timestamp]:
    """Every ``every``-th day from ``first`` to ``last`` inclusive."""
    lo, hi = as_timestamp(first), as_timestamp(last)
    if hi < lo:
        return []
    return list(pd.date_range(lo, hi, freq=f"{every}D"))


def cumulative(events: pd.DataFrame, key: str, flags: Sequence[str], grid: pd.DataFrame,
               last: Sequence[str] = ()) -> pd.DataFrame:
    """For each (key, day) of ``grid``: how many ``events`` (columns ``key``, ``_day`` and 0/1 ``flags``)
    happened on or before that day, and the last ``_day`` of each flag in ``last``. Keys with no event
    yet get zeros and NaT."""
    g = grid[[key, "day"]].copy()
    g["day"] = day(g["day"])
    out = g.copy()
    if events.empty:
        for f in flags:
            out[f] = 0
        for f in last:
            out[f"last_{f}"] = pd.NaT
        return out
    e = events.sort_values([key, "_day"], kind="mergesort")
    per_day = e.groupby([key, "_day"], sort=True)[list(flags)].sum()
    cum = per_day.groupby(level=0).cumsum().reset_index()
    for f in last:
        hit = per_day[f].reset_index()
        hit[f"last_{f}"] = hit["_day"].where(hit[f] > 0)
        cum[f"last_{f}"] = hit.groupby(key)[f"last_{f}"].ffill().to_numpy()
    cum = cum.sort_values("_day", kind="mergesort")
    out = pd.merge_asof(g.sort_values("day", kind="mergesort"), cum, left_on="day", right_on="_day", by=key,
                        direction="backward").drop(columns="_day")
    for f in flags:
        out[f] = out[f].fillna(0).astype("int64")
    return out


def days_since(later: pd.Series, earlier: pd.Series) -> pd.Series:
    """Whole days from ``earlier`` to ``later`` (NaN where ``earlier`` is missing)."""
    return (day(later) - day(earlier)).dt.days.astype("float64")


def as_float(s: pd.Series) -> pd.Series:
    """Decimals, numbers or numeric text as float64 (blanks as NaN)."""
    return pd.to_numeric(s.map(lambda v: np.nan if v is None or (isinstance(v, float) and np.isnan(v))
                                else float(v)), errors="coerce").astype("float64")

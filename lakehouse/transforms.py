"""Helpers every agent's transforms need, as Ibis expressions and calendar arithmetic.

Processed tables keep every exported version of a record: a *change export* writes a row on each day the
record changes (in that day's ``dt``). A job that wants "the record as it stands" takes the latest version
with :func:`latest`; a job that must be reproducible for a given run day reads only what had arrived by then
(``ctx.table(name, {"dt": Range(None, day)})``, see :func:`as_of`), so a rerun of that day gives the same
answer even after later exports were ingested.

Nothing here reads or writes: these are pure functions of table expressions and dates, usable by any agent
and by the models (``models/<agent>/`` may import the platform).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from lakehouse.lake import Range

if TYPE_CHECKING:  # pragma: no cover
    import ibis

#: Lineage columns that break ties between two versions exported with the same ``updated_at``.
TIE_BREAKERS = ("dt", "_source_file", "_row_number")


def as_of(day: date | str, since: date | str | None = None) -> dict[str, Range]:
    """The ``where`` of a read as known on ``day`` (exported on or before it, and on or after ``since``)."""
    def iso(d):
        return d if isinstance(d, str) or d is None else d.isoformat()

    return {"dt": Range(iso(since), iso(day))}


def latest(t: ibis.Table, key: Sequence[str], order: Sequence[str] = ("updated_at",)) -> ibis.Table:
    """One row per ``key``: the version with the greatest ``order`` values (a change export's latest state).
    Ties are broken by export day, file and row number, so the pick is deterministic."""
    import ibis

    cols = [c for c in (*order, *TIE_BREAKERS) if c in t.columns]
    w = ibis.window(group_by=[t[k] for k in key], order_by=[ibis.desc(t[c]) for c in cols])
    ranked = t.mutate(_version_rank=ibis.row_number().over(w))
    return ranked.filter(ranked._version_rank == 0).drop("_version_rank")


# ---- calendar months -------------------------------------------------------------------------------------
def month_of(d: date) -> str:
    """``2024-03-15`` → ``2024-03``."""
    return f"{d.year:04d}-{d.month:02d}"


def month_start(month: str) -> date:
    return date(int(month[:4]), int(month[5:7]), 1)


def month_end(month: str) -> date:
    y, m = int(month[:4]), int(month[5:7])
    return date(y, m, calendar.monthrange(y, m)[1])


def add_months(month: str, n: int) -> str:
    y, m = int(month[:4]), int(month[5:7]) - 1 + n
    return f"{y + m // 12:04d}-{m % 12 + 1:02d}"


def months_between(first: str, last: str) -> list[str]:
    """Every month from ``first`` to ``last`` inclusive (empty when last < first)."""
    out, m = [], first
    while m <= last:
        out.append(m)
        m = add_months(m, 1)
    return out


def closing_day(month: str, close_days: int) -> date:
    """The day a month becomes final: its last day plus the grace for late invoices and time entries."""
    return month_end(month) + timedelta(days=close_days)


def month_col(value: Any) -> Any:
    """A date or timestamp expression → its ``yyyy-MM`` text."""
    return value.strftime("%Y-%m")


def months_table(months: Iterable[str]) -> ibis.Table:
    """A table of months: ``month`` (``yyyy-MM``), ``month_start`` and ``month_end`` (dates)."""
    import ibis
    import pyarrow as pa

    ms = sorted(set(months))
    return ibis.memtable(pa.table({"month": pa.array(ms, pa.string()),
                                   "month_start": pa.array([month_start(m) for m in ms], pa.date32()),
                                   "month_end": pa.array([month_end(m) for m in ms], pa.date32())}))


def concat_frames(frames: Sequence[Any]) -> Any:
    """``pandas.concat`` of frames with the same columns, where a frame may leave a column blank (a finding
    with no lead, a forecast with no model): a column's type comes from the frames that fill it, and every
    column is kept. This is pandas' behaviour until 2.x, which warns that it will change (blank columns would
    then turn a typed column into ``object``); the frames must not be empty as a whole."""
    import pandas as pd

    columns = list(dict.fromkeys(c for f in frames for c in f.columns))
    return pd.concat([f.dropna(axis=1, how="all") for f in frames], ignore_index=True).reindex(columns=columns)


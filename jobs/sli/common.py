"""What the SLI stages share: which snapshots a run must (re)compute, versions as of a day, and episodes.

**Snapshots, not days.** Microsoft 365 reports are snapshots: ``subscribed_skus`` weekly (Mondays), the
active-user report monthly (first Monday). A stage recomputes the snapshots its run touches (snapshots exported
on the run's days, or on the days of an input that changed since the stage last ran) and every later one up
to the run's last day, because an episode chains a snapshot to the one before it. A day with no new snapshot
and no changed input recomputes nothing.

**Episodes.** A condition of one subject (a tenant's SKU short of seats, a user's idle seat) holds over a run
of consecutive snapshots of the lake's calendar; :func:`episodes` numbers those runs, carries an episode over
from the snapshot before the recomputed range (the *seed*, read back from the stage's own table) and states
each row: ``opened``, ``worsened`` (the measure above its episode maximum so far), ``ongoing`` or ``closed``
(the first snapshot without the condition after an episode; it keeps the episode's opening day so the
closing event can name it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import ibis
    import pyarrow as pa

    from lakehouse.context import RunContext

STATES = ("opened", "worsened", "ongoing", "closed")


def materialize(t: ibis.Table) -> ibis.Table:
    """Compute ``t`` now and continue from its rows (Ibis ``cache``: a temporary table on DuckDB, a cached
    DataFrame on Spark). Ibis compiles a deep expression in time that grows faster than its depth, so the
    stages cut theirs at a few natural boundaries; the rows are the same either way."""
    return t.cache()


# ---- which snapshots to compute ---------------------------------------------------------------------------
def touched_days(ctx: RunContext, datasets: Iterable[str]) -> list[str] | None:
    """Export days this run must look at: its own days and the days of ``datasets`` that changed since the
    stage last ran (on or before the run's last day); None when that is unknown (first run, settings or code
    changed, an expired snapshot): recompute everything."""
    if ctx.rebuild:
        return None
    end = ctx.end.isoformat()
    out = set(ctx.days)
    for ds in datasets:
        changed = ctx.changed(ds)
        if changed is None:
            return None
        out |= {p["dt"] for p in changed if p.get("dt") and p["dt"] <= end}
    return sorted(out)


def snapshots_to_compute(calendar: Sequence[str], touched: list[str] | None, end: str,
                         direct: Iterable[str] = ()) -> list[str]:
    """Snapshot dates (ISO) of ``calendar`` to recompute: from the first one on or after the earliest touched
    day (or a ``direct`` snapshot) up to ``end``; all of them up to ``end`` when ``touched`` is None.

    >>> snapshots_to_compute(["2024-01-01", "2024-01-08", "2024-01-15"], ["2024-01-03"], "2024-01-15")
    ['2024-01-08', '2024-01-15']
    >>> snapshots_to_compute(["2024-01-01", "2024-01-08"], ["2024-01-09"], "2024-01-09")
    []
    """
    cal = sorted(d for d in set(calendar) if d <= end)
    if touched is None:
        return cal
    starts = list(touched) + list(direct)
    if not starts:
        return []
    first = min(starts)
    return [d for d in cal if d >= first]


def previous(calendar: Sequence[str], day: str) -> str | None:
    """The calendar date before ``day`` (None when it is the first)."""
    before = [d for d in calendar if d < day]
    return max(before) if before else None


def calendar_table(calendar: Sequence[str], column: str = "snapshot_date") -> pa.Table:
    """``<column>`` → ``_prev_snapshot``: each calendar date and the one before it (null for the first)."""
    import pyarrow as pa

    cal = sorted(set(calendar))
    days = [date.fromisoformat(d) for d in cal]
    return pa.table({column: pa.array(days, pa.date32()),
                     "_prev_snapshot": pa.array([None, *days[:-1]], pa.date32())})


# ---- versions of change exports ---------------------------------------------------------------------------
def versions_as_of(versions: ibis.Table, key: Sequence[str], days: ibis.Table, day_col: str = "as_of",
                   order: Sequence[str] = ("updated_at",)) -> ibis.Table:
    """For every day of ``days`` (a table with a date column ``day_col``), the version of each ``key`` that
    stood on that day: the latest exported on or before it (``dt`` <= day; several versions of one day: the
    greatest ``order``, then file and row, as :func:`lakehouse.transforms.latest` breaks ties).

    Each version is valid from its export day to the next version's, so the join is a range join: every
    version meets only the days it stood on (no versions x days blow-up over a long history)."""
    import ibis

    v = versions.mutate(_exported=versions.dt.cast("date"))
    cols = [c for c in (*order, "_source_file", "_row_number") if c in versions.columns]
    same_day = ibis.window(group_by=[*[v[k] for k in key], v._exported], order_by=[ibis.desc(v[c]) for c in cols])
    v = v.mutate(_rank=ibis.row_number().over(same_day))
    v = v.filter(v._rank == 0).drop("_rank")
    w = ibis.window(group_by=[v[k] for k in key], order_by=v._exported)
    v = v.mutate(_valid_to=v._exported.lead().over(w))
    j = v.join(days, (v._exported <= days[day_col]) & (v._valid_to.isnull() | (days[day_col] < v._valid_to)))
    return j.drop("_exported", "_valid_to")


def days_table(days: Iterable[str], column: str = "as_of") -> pa.Table:
    import pyarrow as pa

    return pa.table({column: pa.array(sorted({date.fromisoformat(d) for d in days}), pa.date32())})


# ---- episodes ----------------------------------------------------------------------------------------------
def episodes(rows: ibis.Table, key: Sequence[str], active: str, measure: str, prefix: str,
             seed: ibis.Table | None = None, date_col: str = "snapshot_date") -> ibis.Table:
    """Add ``<prefix>_opened``, ``<prefix>_snapshots``, ``<prefix>_max`` and ``<prefix>_state`` to ``rows``.

    ``rows`` has the ``key`` columns, ``date_col``, ``_prev_snapshot`` (the calendar date before it, see
    :func:`calendar_table`), a boolean column ``active`` (the condition holds) and an integer ``measure``
    (how bad: seats short, idle seats). ``seed`` is the stage's own output at the calendar date before the
    first of ``rows`` (the key, ``date_col``, ``active``, ``measure`` and the four episode columns), so an
    episode running into the recomputed range keeps its opening day, count and maximum. An episode breaks
    when a snapshot of the calendar is missing for the key. Rows of ``seed`` are not returned. The columns
    are computed in one pass over ``rows`` (no join back), so the engine reads the input once.
    """
    import ibis

    opened, count, top, state = (f"{prefix}_{s}" for s in ("opened", "snapshots", "max", "state"))
    schema = rows.schema()
    base = rows.mutate(_seed=ibis.literal(False), _s_opened=ibis.null().cast("date"),
                       _s_count=ibis.null().cast("int64"), _s_max=ibis.null().cast("int64"))
    if seed is not None:
        fill = {c: ibis.null().cast(t) for c, t in schema.items() if c not in (*key, date_col, active, measure)}
        s = seed.mutate(**fill, _seed=ibis.literal(True), _s_opened=seed[opened].cast("date"),
                        _s_count=seed[count].cast("int64"), _s_max=seed[top].cast("int64"))
        s = s.mutate(**{active: s[active].cast(schema[active]), measure: s[measure].cast(schema[measure]),
                        **{k: s[k].cast(schema[k]) for k in (*key, date_col)}})
        base = base.union(s.select(*base.columns))
    u = base
    w = ibis.window(group_by=[u[k] for k in key], order_by=u[date_col])
    u = u.mutate(_lag_date=u[date_col].lag().over(w), _lag_active=u[active].lag().over(w))
    contiguous = (u._lag_date == u._prev_snapshot).fill_null(False)
    was = u._lag_active.fill_null(False) & contiguous
    u = u.mutate(_new=ibis.ifelse(u._seed, u[active], u[active] & ~was), _closed=~u[active] & was & ~u._seed)
    upto = ibis.window(group_by=[u[k] for k in key], order_by=u[date_col], rows=(None, 0))
    u = u.mutate(_island=u._new.cast("int64").sum().over(upto))
    isl = ibis.window(group_by=[*[u[k] for k in key], u._island], order_by=u[date_col], rows=(None, 0))
    u = u.mutate(
        _ep_opened=u._s_opened.fill_null(u[date_col]).first().over(isl),
        _ep_count=ibis.ifelse(u._seed, u._s_count.fill_null(1), 1).sum().over(isl),
        _ep_max=u._s_max.fill_null(u[measure].cast("int64")).max().over(isl),
    )
    w2 = ibis.window(group_by=[u[k] for k in key], order_by=u[date_col])
    u = u.mutate(_prev_max=u._ep_max.lag().over(w2), _prev_opened=u._ep_opened.lag().over(w2),
                 _prev_count=u._ep_count.lag().over(w2))
    act, closed = u[active], u._closed
    out = u.mutate(**{
        opened: ibis.ifelse(act, u._ep_opened, ibis.ifelse(closed, u._prev_opened, ibis.null().cast("date"))),
        count: ibis.ifelse(act, u._ep_count, ibis.ifelse(closed, u._prev_count, ibis.null().cast("int64"))),
        top: ibis.ifelse(act, u._ep_max, ibis.ifelse(closed, u._prev_max, ibis.null().cast("int64"))),
        state: ibis.cases((act & u._new, "opened"), (act & (u[measure] > u._prev_max), "worsened"),
                          (act, "ongoing"), (closed, "closed"), else_=ibis.null().cast("string")),
    })
    return out.filter(~out._seed).select(*schema.names, opened, count, top, state)


def iso(d: Any) -> str | None:
    if d is None:
        return None
    return d if isinstance(d, str) else d.isoformat()


# ---- renewals ------------------------------------------------------------------------------------------------
def next_renewal_expr(renewal_date: ibis.Value, term_months: ibis.Value, day: ibis.Value) -> ibis.Value:
    """The first renewal on or after ``day``: ``renewal_date``, rolled forward by whole terms when it has
    passed (an auto-renewing subscription whose new term has not been exported yet)."""
    import ibis

    term = ibis.greatest(term_months.cast("int64"), 1)
    behind = ibis.greatest(day.delta(renewal_date, unit="month").cast("int64"), 0)
    k = behind // term
    first = renewal_date + (k * term).as_interval("M")
    return ibis.ifelse(first < day, renewal_date + ((k + 1) * term).as_interval("M"), first).cast("date")


def add_months(d: date, n: int) -> date:
    """``d`` plus ``n`` calendar months, the day clamped to the month's end (as SQL date + interval)."""
    import calendar as cal_

    y, m = divmod(d.month - 1 + n, 12)
    y, m = d.year + y, m + 1
    return date(y, m, min(d.day, cal_.monthrange(y, m)[1]))


def next_renewal(renewal_date: date, term_months: int, day: date) -> date:
    """Python twin of :func:`next_renewal_expr` (the CLI and the tests use it)."""
    term = max(int(term_months), 1)
    behind = max((day.year - renewal_date.year) * 12 + day.month - renewal_date.month, 0)
    k = behind // term
    first = add_months(renewal_date, k * term)
    return add_months(renewal_date, (k + 1) * term) if first < day else first


@contextlib.contextmanager
def docs_once(ctx: RunContext) -> Iterator[None]:
    """Within the block, the audits of the stage's writes render their Great Expectations Data Docs once, at
    its end, instead of once per write (the platform's deferred docs, as the quality gate uses them)."""
    q = ctx.settings.model("quality")
    if q.checkpoint != "on" or q.data_docs != "on" or not getattr(ctx.lake, "local", False):
        yield
        return
    from lakehouse.quality.gx import project

    with project(ctx.lake, data_docs=True).deferred_docs():
        yield

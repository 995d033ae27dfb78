"""Days, months, business days and holidays of the simulated horizon.

Simulation code counts days as integers from the scale's first export day (day 0; negative days are in
the past) and seconds from its midnight (UTC). This module turns those integers into calendar facts
(weekday, month, US federal holiday) and into the text the exports carry.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pyarrow as pa

DAY = 86_400


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    d = date(year, month, 1)
    d += timedelta(days=(weekday - d.weekday()) % 7)
    return d + timedelta(weeks=n - 1)


def _last_weekday(year: int, month: int, weekday: int) -> date:
    d = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return d - timedelta(days=(d.weekday() - weekday) % 7)


def us_holidays(year: int) -> list[tuple[date, str]]:
    """US federal holidays as observed (Saturday -> Friday, Sunday -> Monday)."""
    fixed = [(date(year, 1, 1), "New Year's Day"), (date(year, 6, 19), "Juneteenth"),
             (date(year, 7, 4), "Independence Day"), (date(year, 11, 11), "Veterans Day"),
             (date(year, 12, 25), "Christmas Day")]
    out = []
    for d, name in fixed:
        if d.weekday() == 5:
            d -= timedelta(days=1)
        elif d.weekday() == 6:
            d += timedelta(days=1)
        out.append((d, name))
    out += [(_nth_weekday(year, 1, 0, 3), "Martin Luther King Jr. Day"),
            (_nth_weekday(year, 2, 0, 3), "Presidents' Day"), (_last_weekday(year, 5, 0), "Memorial Day"),
            (_nth_weekday(year, 9, 0, 1), "Labor Day"), (_nth_weekday(year, 11, 3, 4), "Thanksgiving Day")]
    return sorted(out)


class Timeline:
    """Calendar facts for days 0..n_days-1 from ``start``, plus text lookup tables for exports."""

    #: days before ``start`` and after the horizon that dates in exports may reach
    PAST = 12_000
    FUTURE = 4_000

    def __init__(self, start: date, n_days: int):
        self.start = start
        self.n_days = n_days
        dates = [start + timedelta(days=i) for i in range(n_days)]
        self.dates = dates
        self.year = np.array([d.year for d in dates], dtype=np.int32)
        self.month_of_year = np.array([d.month for d in dates], dtype=np.int32)
        self.dom = np.array([d.day for d in dates], dtype=np.int32)
        self.dow = np.array([d.weekday() for d in dates], dtype=np.int32)  # 0 = Monday
        hol = {d for y in range(start.year, dates[-1].year + 2) for d, _ in us_holidays(y)}
        self.holiday = np.array([d in hol for d in dates])
        self.business = (self.dow < 5) & ~self.holiday
        # months: index 0 is the month of ``start``; negative indexes are months before it
        self.month = (self.year - start.year) * 12 + self.month_of_year - start.month
        self.n_months = int(self.month[-1]) + 1
        self.M_PAST = 420
        firsts = []
        for m in range(-self.M_PAST, self.n_months + 72):
            k = start.month - 1 + m
            firsts.append(date(start.year + k // 12, k % 12 + 1, 1))
        self._mf = np.array([(f - start).days for f in firsts], dtype=np.int64)
        self._date_text = None
        self._time_text = None

    # ---- conversions -----------------------------------------------------------------------
    def day_of(self, d: date) -> int:
        return (d - self.start).days

    def date_of(self, day: int) -> date:
        return self.start + timedelta(days=int(day))

    def first_day(self, m):
        """First day (day number) of month index m; works for arrays and for months before the start."""
        return self._mf[np.asarray(m) + self.M_PAST]

    def month_range(self, m: int) -> tuple[int, int]:
        """[first day, first day of next month) of month m."""
        return int(self.first_day(m)), int(self.first_day(m + 1))

    def month_of(self, days):
        """Month index of day numbers (any day within the tables' range)."""
        return np.searchsorted(self._mf, np.asarray(days), side="right") - 1 - self.M_PAST

    def last_day(self, m):
        """Last day (day number) of month index m."""
        return self.first_day(np.asarray(m) + 1) - 1

    def calendar_year(self, m):
        return self.start.year + (self.start.month - 1 + np.asarray(m)) // 12

    def calendar_month(self, m):
        """1..12 for month index m."""
        return (self.start.month - 1 + np.asarray(m)) % 12 + 1

    def business_day_on_or_after(self, days):
        """Next business day (same day if it is one); days past the horizon are returned unchanged."""
        days = np.asarray(days, dtype=np.int64)
        if not hasattr(self, "_next_bd"):
            nxt = np.empty(self.n_days + 1, dtype=np.int64)
            nxt[self.n_days] = self.n_days
            for d in range(self.n_days - 1, -1, -1):
                nxt[d] = d if self.business[d] else nxt[d + 1]
            self._next_bd = nxt
        inside = (days >= 0) & (days < self.n_days)
        out = days.copy()
        out[inside] = self._next_bd[days[inside]]
        return out

    # ---- export text ------------------------------------------------------------------------
    @property
    def date_text(self) -> pa.Array:
        """ISO date text for day numbers -PAST .. n_days + FUTURE (index = day + PAST)."""
        if self._date_text is None:
            base = self.start - timedelta(days=self.PAST)
            self._date_text = pa.array([(base + timedelta(days=i)).isoformat()
                                        for i in range(self.PAST + self.n_days + self.FUTURE)])
        return self._date_text

    @property
    def time_text(self) -> pa.Array:
        """``HH:MM:SS`` for every second of a day."""
        if self._time_text is None:
            self._time_text = pa.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY)])
        return self._time_text

    def date_index(self, days: np.ndarray) -> np.ndarray:
        idx = np.asarray(days, dtype=np.int64) + self.PAST
        if idx.size and (idx.min() < 0 or idx.max() >= len(self.date_text)):
            raise ValueError("a generated date falls outside the text table; widen Timeline.PAST/FUTURE")
        return idx

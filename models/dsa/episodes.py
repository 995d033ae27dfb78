"""From daily flags to anomaly records shaped like AWS Cost Anomaly Detection's ``Anomaly``.

A segment's flagged days make one *episode*: it opens on the first flagged day (its start is the detector's
estimate, which for a level shift lies before the day it was detected), stays open while days keep being
flagged, and closes when ``close_after`` days in a row are not (its end is the last flagged day). While it is
open its ``end_date`` is empty, as AWS leaves ``AnomalyEndDate`` empty for an ongoing anomaly. The record
carries, like AWS's ``Impact``: the total actual and expected spend from start to the last detected day, the
total impact (actual - expected), the impact percentage (impact / expected), the largest daily impact, the
largest and the current score, and the ranked root causes with their contributions (:func:`root_causes`).

The **new-service rule** (DOMAIN.md section 5, Huawei's rule [R72]): a vendor or service that billed nothing
for ``new_service_quiet_days`` (the lake holding at least that much history) and then bills at least
``new_service_min`` opens a ``new_service`` episode, whose expected spend is 0; it closes after
``new_service_days``.

The **threshold gates alerts, not detection** (AWS): every episode is recorded; ``alerted`` says whether its
total impact reached ``min_impact`` *and* its impact percentage reached ``min_impact_pct``, and
``alerted_on`` the first day it did. Everything is decided day by day from the state of the day before, so a
daily run that carries the open episodes forward gives exactly what a backfill gives.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np


@dataclass(frozen=True)
class EpisodeParams:
    close_after: int = 3
    #: a level shift found by a window or the frequency rule ends after this many quiet days (its evidence
    #: dips under the threshold now and then while it lasts)
    close_after_shift: int = 28
    min_impact: float = 100.0
    min_impact_pct: float = 20.0
    new_service_quiet_days: int = 90
    new_service_min: float = 1.0
    new_service_days: int = 11
    spike_max_days: int = 3
    #: severity bands on the impact percentage (Huawei: minor < 20 %, major 20-50 %, critical >= 50 %)
    major_pct: float = 20.0
    critical_pct: float = 50.0


@dataclass
class Episode:
    """One anomaly of one segment (the mutable state a day's run carries to the next)."""

    source: str
    dimension: str
    segment: str
    start: int                      #: day index
    last_detected: int
    rule: str                       #: interval | window | new_service
    window: int = 1
    end: int | None = None          #: last flagged day, once closed
    closed_on: int | None = None    #: day the closure was decided
    actual: float = 0.0
    expected: float = 0.0
    max_daily_impact: float = 0.0
    max_score: float = 0.0
    current_score: float = 0.0
    alerted_on: int | None = None
    quiet: int = 0                  #: unflagged days in a row since last_detected
    through: int = -1               #: last day whose spend is in actual / expected
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def impact(self) -> float:
        return self.actual - self.expected

    @property
    def impact_pct(self) -> float | None:
        return self.impact / self.expected * 100.0 if self.expected > 0 else None

    def kind(self, p: EpisodeParams) -> str:
        if self.rule == "new_service":
            return "new_service"
        last = self.end if self.end is not None else self.last_detected
        return "spike" if self.rule == "interval" and last - self.start + 1 <= p.spike_max_days else "level_shift"

    def passes(self, p: EpisodeParams) -> bool:
        pct = self.impact_pct
        return self.impact >= p.min_impact and (pct is None or pct >= p.min_impact_pct)


def segment_key(source: str, dimension: str, segment: str) -> str:
    return f"{source}|{dimension}={segment}"


def anomaly_id(source: str, dimension: str, segment: str, start: date, new_service: bool = False) -> str:
    """Deterministic id of an anomaly: its monitor (source and dimension), segment, start day, and whether the
    new-service rule opened it (a segment has one anomaly of each family at a time, starting after the last)."""
    family = "new_service" if new_service else "anomaly"
    return hashlib.sha256(f"{family}|{source}|{dimension}|{segment}|{start.isoformat()}".encode()).hexdigest()[:32]


def severity(pct: float | None, p: EpisodeParams) -> str:
    if pct is None or pct >= p.critical_pct:
        return "critical"
    return "major" if pct >= p.major_pct else "minor"


def _add_spend(e: Episode, y: np.ndarray, expected: np.ndarray, upto: int) -> None:
    """Add the spend of days (e.through, upto] to the episode's totals."""
    for d in range(max(e.through + 1, e.start), upto + 1):
        exp = 0.0 if e.rule == "new_service" else float(np.nan_to_num(expected[d]))
        act = float(y[d])
        e.actual += act
        e.expected += exp
        e.max_daily_impact = max(e.max_daily_impact, act - exp)
    e.through = max(e.through, upto)


RULES = {1: "interval", 2: "window", 3: "frequency"}


def step(open_: dict[str, Episode], seg_index: dict[str, int], day: int, Y: np.ndarray, E: np.ndarray,
         flag: np.ndarray, score: np.ndarray, start: np.ndarray, window: np.ndarray, new: np.ndarray,
         keys: list[tuple[str, str, str]], p: EpisodeParams, rule: np.ndarray | None = None,
         last_end: dict[str, int] | None = None) -> tuple[list[Episode], list[Episode]]:
    """Advance every segment by one day.

    ``Y`` and ``E`` are (series, days) actual and expected spend; ``flag``, ``score``, ``start``, ``window``
    and ``rule`` (:data:`RULES` codes) the detector's output for ``day`` (one value per series); ``new``
    whether the new-service rule fires.
    ``open_`` maps a segment key to its open episode and is updated in place. Returns (episodes that changed
    on this day, episodes closed on it)."""
    touched: list[Episode] = []
    closed: list[Episode] = []
    busy = set(np.flatnonzero(flag | new).tolist()) | {seg_index[k] for k in open_ if k in seg_index}
    for i in sorted(busy):
        src, dim, seg = keys[i]
        key = segment_key(src, dim, seg)
        e = open_.get(key)
        if e is not None and e.rule == "new_service":
            _add_spend(e, Y[i], E[i], day)
            e.last_detected = day if Y[i, day] > 0 else e.last_detected
            if day - e.start + 1 >= p.new_service_days:
                e.end, e.closed_on = e.last_detected, day
                closed.append(e)
                del open_[key]
            touched.append(e)
            continue
        if new[i]:
            if e is not None:  # an interval episode cannot be open on a segment that billed nothing for 90 days
                e.end, e.closed_on = e.last_detected, day
                closed.append(e)
            e = Episode(src, dim, seg, start=day, last_detected=day, rule="new_service", max_score=1.0,
                        current_score=1.0)
            _add_spend(e, Y[i], E[i], day)
            open_[key] = e
            touched.append(e)
            continue
        if flag[i]:
            if e is None:
                s = int(start[i]) if start[i] >= 0 else day
                code = int(rule[i]) if rule is not None else (1 if window[i] <= 1 else 2)
                if last_end is not None and key in last_end:
                    s = max(s, last_end[key] + 1)
                e = Episode(src, dim, seg, start=min(s, day), last_detected=day, rule=RULES.get(code, "interval"),
                            window=int(window[i]))
                open_[key] = e
            else:
                e.last_detected = day
                e.quiet = 0
                code = int(rule[i]) if rule is not None else (1 if window[i] <= 1 else 2)
                if code > 1 and e.rule == "interval":
                    e.rule, e.window = RULES[code], int(window[i])
            e.current_score = float(np.nan_to_num(score[i]))
            e.max_score = max(e.max_score, e.current_score)
            _add_spend(e, Y[i], E[i], day)
            touched.append(e)
        elif e is not None:
            e.quiet += 1
            e.current_score = float(np.nan_to_num(score[i]))
            if e.quiet >= (p.close_after if e.rule == "interval" else p.close_after_shift):
                e.end, e.closed_on = e.last_detected, day
                closed.append(e)
                del open_[key]
                touched.append(e)
                if last_end is not None:
                    last_end[key] = e.end
    return touched, closed


def new_service(Y: np.ndarray, t: int, first_day: int, p: EpisodeParams) -> np.ndarray:
    """Whether each series bills at least ``new_service_min`` on day ``t`` after ``new_service_quiet_days``
    of nothing (and the lake holds that many days before ``t``)."""
    q = p.new_service_quiet_days
    if t - first_day < q:
        return np.zeros(Y.shape[0], dtype=bool)
    before = np.nansum(np.abs(Y[:, t - q:t]), axis=1)
    return (before == 0) & (np.nan_to_num(Y[:, t]) >= p.new_service_min)


def root_causes(leaves: np.ndarray, leaf_expected: np.ndarray, members: np.ndarray, start: int, end: int,
                labels: list[dict[str, Any]], top: int = 5) -> list[dict[str, Any]]:
    """Ranked root causes of an anomaly: the finest cost groups (``labels``: source, department, vendor,
    service, account, resource) inside its segment (``members``: indices of the leaves), each with its
    contribution (actual - its own expectation over the anomaly's days) and its share of the positive
    contributions (AWS's ``RootCause.Impact.Contribution``)."""
    if not len(members):
        return []
    start = max(int(start), 0)
    act = np.nansum(leaves[members, start:end + 1], axis=1)
    exp = np.nansum(np.nan_to_num(leaf_expected[members, start:end + 1]), axis=1)
    contrib = act - exp
    positive = contrib[contrib > 0].sum()
    order = np.argsort(-contrib, kind="stable")
    out = []
    for j in order[:top]:
        if contrib[j] <= 0:
            break
        out.append({**labels[int(members[j])], "contribution": round(float(contrib[j]), 2),
                    "contribution_pct": round(float(contrib[j] / positive * 100.0), 1) if positive > 0 else None})
    return out


def day_of(first: date, index: int | None) -> date | None:
    return None if index is None else first + timedelta(days=int(index))

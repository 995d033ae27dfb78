"""Cost monitors: the segments a detector watches, built from the finest cost lines, and the day-by-day run
that turns detections into anomaly records and alerts.

**Leaves and segments.** A *leaf* is the finest cost line the monitors know: one (source, department, vendor,
service, account, resource, charge frequency, tags) combination with its daily spend. A *segment* is one
value of a monitored dimension (``department=hosting``, ``vendor=AWS``, ``service=Amazon CloudWatch``,
``resource=arn:...``, ``tag=application:PSA``) and its daily spend is the sum of the leaves it holds. Usage
monitors watch usage (non-recurring) spend; recurring subscriptions bill on a fixed day each month and are
judged by the new-service rule only (a vendor that starts billing), not against a daily interval.

**One anomaly, one alert.** Like AWS Cost Anomaly Detection, every monitored segment records its own
anomalies; an unusual day of one resource is also an unusual day of its service, department and tags. The
alert goes to the most specific segment: an anomaly is *covered* when a more specific segment (fewer leaves)
holding its top root cause has an anomaly over the same days, and *explained* when one cost line brings most
of its impact (``concentration``) and that line's own monitor finds nothing unusual (an ordinary large
purchase of a vendor that buys in large amounts). Covered and explained anomalies are recorded, linked, and
not alerted. The threshold (``min_impact`` and ``min_impact_pct``) gates alerts, never detection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from models.dsa.detect import DetectorParams, Scores, detect
from models.dsa.episodes import (Episode, EpisodeParams, anomaly_id, new_service, root_causes, segment_key, severity,
                                 step)

#: Leaf label columns (a leaf is one distinct combination of these).
LEAF_COLUMNS = ("source", "department", "vendor", "service", "account", "resource", "recurring", "tags")
#: Dimensions a monitor can watch; ``tag`` watches the tag keys of ``MonitorSpec.tag_keys``.
DIMENSIONS = ("department", "vendor", "service", "account", "resource", "tag")


@dataclass(frozen=True)
class MonitorSpec:
    dimensions: tuple[str, ...] = ("department", "vendor", "service", "resource", "tag")
    tag_keys: tuple[str, ...] = ("application", "environment")
    #: dimensions the new-service rule watches (all spend, recurring included)
    new_service_dimensions: tuple[str, ...] = ("vendor", "service")
    #: the most specific dimension of each source: an anomaly there is about one cost line
    home: tuple[tuple[str, str], ...] = (("expenses", "vendor"), ("cloud", "resource"), ("licences", "vendor"))
    concentration: float = 0.6
    sources: tuple[str, ...] = ("expenses", "cloud")


@dataclass
class Cube:
    """Leaves (labels + daily spend) and the segments built from them, over consecutive days."""

    first_day: date
    leaves: pd.DataFrame                  #: one row per leaf: LEAF_COLUMNS
    L: np.ndarray                         #: (leaves, days) spend
    keys: list[tuple[str, str, str]]      #: (source, dimension, segment) of every segment
    members: list[np.ndarray]             #: leaf indices of each segment
    usage: np.ndarray                     #: (segments, days) usage spend
    counts: np.ndarray                    #: (segments, days) usage charges (cost lines)
    total: np.ndarray                     #: (segments, days) all spend (new-service rule)
    watch_usage: np.ndarray               #: segments the interval monitors watch
    watch_new: np.ndarray                 #: segments the new-service rule watches
    specificity: np.ndarray               #: leaves per segment

    @property
    def days(self) -> int:
        return self.L.shape[1]

    def day(self, i: int) -> date:
        return self.first_day + timedelta(days=int(i))

    def index(self, d: date) -> int:
        return (d - self.first_day).days


def _tags(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, str) and value.strip():
        import json

        try:
            doc = json.loads(value)
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}
    return {}


def build_cube(lines: pd.DataFrame, first_day: date, last_day: date, spec: MonitorSpec) -> Cube:
    """A cube from daily cost lines: columns ``day`` (date), the LEAF_COLUMNS and ``cost``.

    ``lines`` holds one row per leaf and day (the lake's ``spend_leaf_daily``) or finer rows (summed)."""
    n = (last_day - first_day).days + 1
    df = lines[lines["source"].isin(spec.sources)].copy() if len(lines) else lines.copy()
    for c in LEAF_COLUMNS:
        if c not in df.columns:
            df[c] = None
    df["tags"] = df["tags"].where(df["tags"].notna(), "")
    for c in ("department", "vendor", "service", "account", "resource"):
        df[c] = df[c].where(df[c].notna(), "")
    df["recurring"] = df["recurring"].fillna(False).astype(bool)
    df["d"] = [(d - first_day).days for d in pd.to_datetime(df["day"]).dt.date] if len(df) else []
    df = df[(df["d"] >= 0) & (df["d"] < n)] if len(df) else df
    leaves = (df[list(LEAF_COLUMNS)].drop_duplicates().sort_values(list(LEAF_COLUMNS), kind="stable")
              .reset_index(drop=True))
    L = np.zeros((len(leaves), n))
    C = np.zeros((len(leaves), n))
    if len(df):
        pos = df.merge(leaves.reset_index().rename(columns={"index": "_leaf"}), on=list(LEAF_COLUMNS), how="left")
        at = (pos["_leaf"].to_numpy(), pos["d"].to_numpy())
        np.add.at(L, at, pos["cost"].astype(float).to_numpy())
        np.add.at(C, at, pos["lines"].astype(float).to_numpy() if "lines" in pos else 1.0)
    seg: dict[tuple[str, str, str], list[int]] = {}
    for i, r in enumerate(leaves.itertuples(index=False)):
        row = r._asdict()
        src = str(row["source"])
        for dim in DIMENSIONS:
            if dim != "tag" and dim not in spec.dimensions and dim not in spec.new_service_dimensions:
                continue
            if dim == "tag":
                if "tag" not in spec.dimensions:
                    continue
                t = _tags(row["tags"])
                for k in spec.tag_keys:
                    if k in t:
                        seg.setdefault((src, "tag", f"{k}:{t[k]}"), []).append(i)
                continue
            v = row[dim]
            if v:
                seg.setdefault((src, dim, str(v)), []).append(i)
    keys = sorted(seg)
    members = [np.asarray(seg[k], dtype=np.int64) for k in keys]
    rec = leaves["recurring"].to_numpy(dtype=bool) if len(leaves) else np.zeros(0, bool)
    usage = np.stack([L[m[~rec[m]]].sum(axis=0) for m in members]) if keys else np.zeros((0, n))
    counts = np.stack([C[m[~rec[m]]].sum(axis=0) for m in members]) if keys else np.zeros((0, n))
    total = np.stack([L[m].sum(axis=0) for m in members]) if keys else np.zeros((0, n))
    watch_usage = np.asarray([k[1] in spec.dimensions for k in keys], dtype=bool)
    watch_new = np.asarray([k[1] in spec.new_service_dimensions for k in keys], dtype=bool)
    return Cube(first_day, leaves, L, keys, members, usage, counts, total, watch_usage, watch_new,
                np.asarray([len(m) for m in members], dtype=np.int64))


@dataclass
class MonitorState:
    """What a day's run carries to the next: open episodes, and the closed ones still in memory."""

    open: dict[str, Episode] = field(default_factory=dict)   #: interval episodes, by segment key
    new: dict[str, Episode] = field(default_factory=dict)    #: new-service episodes, by segment key
    done: list[Episode] = field(default_factory=list)


def _leaf_labels(cube: Cube) -> list[dict[str, Any]]:
    out = []
    for r in cube.leaves.itertuples(index=False):
        d = r._asdict()
        out.append({k: (d[k] or None) for k in ("source", "department", "vendor", "service", "account", "resource")})
    return out


def _home_dimension(spec: MonitorSpec, source: str) -> str:
    return dict(spec.home).get(source, "vendor")


def run(cube: Cube, targets: list[int], p: DetectorParams, ep: EpisodeParams, spec: MonitorSpec,
        state: MonitorState | None = None, known: dict[str, np.ndarray] | None = None,
        first_weekday: int | None = None) -> tuple[MonitorState, dict[str, Any]]:
    """Detect on the target days in order, carrying episodes from ``state``; returns the new state and the
    daily scores of the watched segments (for the scores table) with the records touched."""
    state = state or MonitorState()
    fw = cube.first_day.weekday() if first_weekday is None else first_weekday
    t = np.asarray(sorted(targets), dtype=np.int64)
    watched = np.flatnonzero(cube.watch_usage)
    Y = cube.usage[watched]
    src = np.asarray([cube.keys[i][0] for i in watched])
    # purchase frequency is a property of expenses (one line per purchase); a cloud line is one per period
    N = np.where((src == "expenses")[:, None], cube.counts[watched], 0.0)
    sc: Scores = detect(Y, t, p, first_weekday=fw,
                        known=None if known is None else {k: v[watched] for k, v in known.items()}, counts=N)
    # leaf expectations (root causes), the same method's daily layer, no windows
    from dataclasses import replace as _replace

    leaf_p = _replace(p, windows=())
    rec = cube.leaves["recurring"].to_numpy(dtype=bool) if len(cube.leaves) else np.zeros(0, bool)
    leaf_usage = np.where(rec[:, None], 0.0, cube.L)
    lo = max(0, int(t.min()) - 400) if len(t) else 0
    span = np.arange(lo, int(t.max()) + 1) if len(t) else np.arange(0)
    leaf_exp = np.full(cube.L.shape, np.nan)
    if len(span) and len(leaf_usage):
        leaf_exp[:, span] = detect(leaf_usage, span, leaf_p, first_weekday=fw).expected
    labels = _leaf_labels(cube)
    # the expected spend of a segment is the sum of its cost lines' expectations, so that an anomaly's impact
    # is the sum of its root causes' contributions (a line too new to judge is expected at 0)
    E = np.zeros(Y.shape)
    leaf_e = np.nan_to_num(np.where(rec[:, None], 0.0, leaf_exp))
    for j, i in enumerate(watched):
        E[j] = leaf_e[cube.members[i]].sum(axis=0)
    keys_u = [cube.keys[i] for i in watched]
    idx_u = {segment_key(*k): j for j, k in enumerate(keys_u)}
    new_idx = np.flatnonzero(cube.watch_new)
    keys_n = [cube.keys[i] for i in new_idx]
    idx_n = {segment_key(*k): j for j, k in enumerate(keys_n)}
    Yn = cube.total[new_idx]
    En = np.zeros(Yn.shape)
    seg_of = {segment_key(*k): i for i, k in enumerate(cube.keys)}
    touched_all: dict[str, Episode] = {}
    ns_open, iv_open = state.new, state.open
    for j, day in enumerate(t):
        day = int(day)
        tu, cu = step(iv_open, idx_u, day, Y, E, sc.flag[:, j], sc.score[:, j], sc.start[:, j], sc.window[:, j],
                      np.zeros(len(keys_u), bool), keys_u, ep)
        fire = new_service(Yn, day, 0, ep)
        # a brand-new segment only: a vendor or service that existed before the lake began is not new
        z = np.zeros(len(keys_n), bool)
        tn, cn = step(ns_open, idx_n, day, Yn, En, z, z.astype(float), -np.ones(len(keys_n)),
                      np.ones(len(keys_n)), fire, keys_n, ep)
        for e in [*tu, *tn]:
            touched_all[_key(e)] = e
            _decide(e, day, cube, seg_of, labels, leaf_exp, ep, spec,
                    [*iv_open.values(), *ns_open.values(), *state.done, *cu, *cn])
        state.done.extend([*cu, *cn])
    return state, {"scores": sc, "targets": t, "watched": watched, "touched": list(touched_all.values())}


def _key(e: Episode) -> str:
    return f"{segment_key(e.source, e.dimension, e.segment)}@{e.start}"


def _decide(e: Episode, day: int, cube: Cube, seg_of: dict[str, int], labels: list[dict[str, Any]],
            leaf_exp: np.ndarray, ep: EpisodeParams, spec: MonitorSpec, others: list[Episode]) -> None:
    """Root causes, coverage and the alert decision of an episode on ``day`` (causal: what is known then)."""
    i = seg_of.get(segment_key(e.source, e.dimension, e.segment))
    if i is None:
        return
    members = cube.members[i]
    if e.rule == "new_service":
        exp = np.zeros_like(leaf_exp)
        rc = root_causes(cube.L, exp, members, e.start, e.through, labels)
    else:
        rec = cube.leaves["recurring"].to_numpy(dtype=bool)
        m = members[~rec[members]]
        rc = root_causes(np.where(rec[:, None], 0.0, cube.L), leaf_exp, m, e.start, e.through, labels)
    e.extra["root_causes"] = rc
    covered = None
    explained = False
    if rc:
        top = rc[0]
        leaf = next((k for k in members if labels[k] == {x: top[x] for x in labels[k]}), None)
        home = _home_dimension(spec, str(top.get("source")))
        if leaf is not None:
            for o in others:
                if o is e or o.last_detected < e.start or (o.end is not None and o.end < e.start) or o.start > day:
                    continue
                j = seg_of.get(segment_key(o.source, o.dimension, o.segment))
                if j is None or cube.specificity[j] >= cube.specificity[i] or leaf not in set(cube.members[j].tolist()):
                    continue
                covered = anomaly_id(o.source, o.dimension, o.segment, cube.day(o.start))
                break
        if covered is None and e.dimension != home and e.rule != "new_service":
            share = (top.get("contribution_pct") or 0) / 100.0
            explained = share >= spec.concentration
    e.extra["covered_by"] = covered
    e.extra["explained"] = explained
    if e.alerted_on is None and covered is None and not explained and e.passes(ep):
        e.extra["alert_day"] = day
    e.alerted_on = e.extra.get("alert_day")


def records(cube: Cube, episodes: list[Episode], ep: EpisodeParams, method: str, as_of: int) -> pd.DataFrame:
    """Anomaly records (AWS ``Anomaly`` shape) of episodes, as known on day ``as_of``."""
    rows = []
    for e in episodes:
        start = cube.day(e.start)
        closed = e.closed_on is not None and e.closed_on <= as_of
        end = cube.day(e.end) if closed and e.end is not None else None
        last = cube.day(e.last_detected)
        rc = e.extra.get("root_causes") or []
        top = rc[0] if rc else {}
        rows.append({
            "anomaly_id": anomaly_id(e.source, e.dimension, e.segment, start), "method": method,
            "source": e.source, "dimension": e.dimension, "segment": e.segment, "kind": e.kind(ep), "rule": e.rule,
            "window_days": int(e.window), "start_date": start, "end_date": end, "last_detected": last,
            "duration_days": ((end or last) - start).days + 1, "status": "closed" if closed else "open",
            "actual_spend": round(e.actual, 2), "expected_spend": round(e.expected, 2),
            "total_impact": round(e.impact, 2),
            "impact_pct": None if e.impact_pct is None else round(e.impact_pct, 2),
            "max_daily_impact": round(e.max_daily_impact, 2), "max_score": round(e.max_score, 4),
            "current_score": round(e.current_score, 4), "severity": severity(e.impact_pct, ep),
            "alerted": e.alerted_on is not None, "alerted_on": cube.day(e.alerted_on) if e.alerted_on is not None else None,
            "covered_by": e.extra.get("covered_by"), "explained": bool(e.extra.get("explained")),
            "top_root_cause": _describe(top), "root_causes": rc,
        })
    return pd.DataFrame(rows)


def _describe(rc: dict[str, Any]) -> str | None:
    if not rc:
        return None
    for k in ("resource", "vendor", "service"):
        if rc.get(k):
            return f"{k}:{rc[k]}"
    return None

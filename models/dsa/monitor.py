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
from models.dsa.episodes import (
    Episode,
    EpisodeParams,
    anomaly_id,
    new_service,
    root_causes,
    segment_key,
    severity,
    step,
)

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
    #: last anomalous day of each segment's latest closed interval episode (the next one starts after it)
    last_end: dict[str, int] = field(default_factory=dict)


def _leaf_labels(cube: Cube) -> list[dict[str, Any]]:
    out = []
    for r in cube.leaves.itertuples(index=False):
        d = r._asdict()
        out.append({k: (d[k] or None) for k in ("source", "department", "vendor", "service", "account", "resource")})
    return out


def _home_dimension(spec: MonitorSpec, source: str) -> str:
    return dict(spec.home).get(source, "vendor")


@dataclass
class DayResult:
    """What the monitors decided over the target days: the daily scores of the watched segments, the cost
    lines' expectations, the anomaly records as known at the end of each day, and the alerts' events."""

    targets: np.ndarray
    watched: np.ndarray
    scores: Scores
    leaf_expected: np.ndarray                      #: (leaves, targets)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


SEVERITY_RANK = {"minor": 0, "major": 1, "critical": 2}


def run(cube: Cube, targets: list[int], p: DetectorParams, ep: EpisodeParams, spec: MonitorSpec,
        state: MonitorState | None = None, known: dict[str, np.ndarray] | None = None,
        leaf_known: np.ndarray | None = None, first_spend: np.ndarray | None = None,
        leaf_first: np.ndarray | None = None,
        lake_first: int = 0, worsen_ratio: float = 2.0, method: str | None = None,
        first_weekday: int | None = None) -> tuple[MonitorState, DayResult]:
    """Detect on the target days in order, carrying the episodes of ``state`` from the day before.

    ``known`` (``expected``, ``upper``, ``var`` of the watched segments, NaN where unknown) and ``leaf_known``
    (the cost lines' expectations) are what earlier days decided, read back from the lake by a daily run;
    ``first_spend`` the day index of each watched segment's first spend over the whole history (it may lie
    before the cube); ``lake_first`` the index of the lake's first day (the new-service rule needs its quiet
    days inside the lake)."""
    state = state or MonitorState()
    fw = cube.first_day.weekday() if first_weekday is None else first_weekday
    t = np.asarray(sorted(targets), dtype=np.int64)
    watched = np.flatnonzero(cube.watch_usage)
    Y = cube.usage[watched]
    src = np.asarray([cube.keys[i][0] for i in watched])
    # purchase frequency is a property of one buyer-vendor relationship (one expense line per purchase): the
    # frequency rule watches the home segments of expenses (vendors); a cloud line is one per period
    home = np.asarray([cube.keys[i][1] == _home_dimension(spec, cube.keys[i][0]) for i in watched], dtype=bool)
    N = np.where(((src == "expenses") & home)[:, None], cube.counts[watched], 0.0)
    sc: Scores = detect(Y, t, p, first_weekday=fw, known=known, counts=N, first=first_spend)
    # the cost lines' expectations (root causes): the same method's daily layer
    from dataclasses import replace as _replace

    leaf_p = _replace(p, windows=(), count_h=0.0)
    rec = cube.leaves["recurring"].to_numpy(dtype=bool) if len(cube.leaves) else np.zeros(0, bool)
    leaf_usage = np.where(rec[:, None], 0.0, cube.L)
    leaf_exp = np.full(cube.L.shape, np.nan) if leaf_known is None else leaf_known.copy()
    back = max(p.count_window, max(p.windows, default=0), ep.new_service_days) + 7
    lo = max(0, int(t.min()) - back) if len(t) else 0
    span = np.arange(lo, int(t.max()) + 1) if len(t) else np.arange(0)
    todo = span[~np.isfinite(leaf_exp[:, span]).all(axis=0) | np.isin(span, t)] if len(leaf_exp) else span[:0]
    if len(todo) and len(leaf_usage):
        leaf_exp[:, todo] = detect(leaf_usage, todo, leaf_p, first_weekday=fw, first=leaf_first).expected
    labels = _leaf_labels(cube)
    # the expected spend of a segment is the sum of its cost lines' expectations, so that an anomaly's impact
    # is the sum of its root causes' contributions (a line too new to judge is expected at 0)
    leaf_e = np.nan_to_num(np.where(rec[:, None], 0.0, leaf_exp))
    E = np.zeros(Y.shape)
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
    result = DayResult(t, watched, sc, leaf_exp[:, t] if len(t) else np.zeros((len(leaf_exp), 0)))
    ns_open, iv_open = state.new, state.open
    for j, day in enumerate(t):
        day = int(day)
        tu, cu = step(iv_open, idx_u, day, Y, E, sc.flag[:, j], sc.score[:, j], sc.start[:, j], sc.window[:, j],
                      np.zeros(len(keys_u), bool), keys_u, ep, rule=sc.rule[:, j], last_end=state.last_end)
        fire = new_service(Yn, day, lake_first, ep)
        z = np.zeros(len(keys_n), bool)
        tn, cn = step(ns_open, idx_n, day, Yn, En, z, z.astype(float), -np.ones(len(keys_n)),
                      np.ones(len(keys_n)), fire, keys_n, ep)
        touched = {_key(e): e for e in [*tu, *tn]}
        for e in touched.values():
            _decide(e, day, cube, seg_of, labels, leaf_exp, ep, spec,
                    [*iv_open.values(), *ns_open.values(), *state.done, *cu, *cn])
            ev = _event_state(e, day, ep, worsen_ratio)
            if ev:
                result.events.append({"day": cube.day(day), "state": ev,
                                      "record": _record(cube, e, ep, method or p.method, day)})
        state.done.extend([*cu, *cn])
        # the day's snapshot: every episode open at its end, and those that changed or closed on it
        shown = {**{_key(e): e for e in [*iv_open.values(), *ns_open.values()]}, **touched}
        for e in shown.values():
            result.snapshots.append({**_record(cube, e, ep, method or p.method, day), "dt": cube.day(day).isoformat()})
    # closed episodes older than any window that could still cover a new one are forgotten
    keep = (int(t.max()) if len(t) else 0) - 2 * max(p.count_window, ep.new_service_days, 60)
    state.done = [e for e in state.done if (e.end if e.end is not None else e.last_detected) >= keep]
    return state, result


def _event_state(e: Episode, day: int, ep: EpisodeParams, worsen_ratio: float) -> str | None:
    """opened / worsened / closed when an alerted episode changes state on ``day`` (one event per change)."""
    if e.alerted_on is None:
        return None
    last = e.extra.get("last_event")
    sev = severity(e.impact_pct, ep)
    if e.closed_on == day:
        if last is None or last[0] == "closed":
            return None
        e.extra["last_event"] = ("closed", e.impact, sev)
        return "closed"
    if last is None:
        e.extra["last_event"] = ("opened", e.impact, sev)
        return "opened"
    grew = e.impact >= worsen_ratio * max(last[1], 1e-9) and e.impact > 0
    if SEVERITY_RANK[sev] > SEVERITY_RANK[last[2]] or grew:
        e.extra["last_event"] = ("worsened", e.impact, sev)
        return "worsened"
    return None


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
            # the earliest-started finer episode covers it (ties by segment): an order of its own, not the
            # order the episodes were opened in this process, which a run resuming from stored state does
            # not know (a daily run after a backfill must choose what the backfill chose)
            for o in sorted(others, key=lambda o: (o.start, o.source, o.dimension, o.segment, o.rule)):
                if o is e or o.last_detected < e.start or (o.end is not None and o.end < e.start) or o.start > day:
                    continue
                j = seg_of.get(segment_key(o.source, o.dimension, o.segment))
                if j is None or leaf not in set(cube.members[j].tolist()):
                    continue
                finer = cube.specificity[j] < cube.specificity[i] or (
                    cube.specificity[j] == cube.specificity[i] and o.dimension == home and e.dimension != home)
                if not finer:
                    continue
                covered = anomaly_id(o.source, o.dimension, o.segment, cube.day(o.start), o.rule == "new_service")
                break
        if covered is None and e.dimension != home and e.rule != "new_service":
            share = (top.get("contribution_pct") or 0) / 100.0
            explained = share >= spec.concentration
    e.extra["covered_by"] = covered
    e.extra["explained"] = explained
    if e.alerted_on is None and covered is None and not explained and e.passes(ep):
        e.extra["alert_day"] = day
    e.alerted_on = e.extra.get("alert_day")


def _record(cube: Cube, e: Episode, ep: EpisodeParams, method: str, as_of: int) -> dict[str, Any]:
    """An anomaly record (AWS ``Anomaly`` shape) of an episode, as known at the end of day ``as_of``."""
    start = cube.day(e.start)
    closed = e.closed_on is not None and e.closed_on <= as_of
    end = cube.day(e.end) if closed and e.end is not None else None
    last = cube.day(e.last_detected)
    rc = e.extra.get("root_causes") or []
    top = rc[0] if rc else {}
    lev = e.extra.get("last_event")
    return {
        "anomaly_id": anomaly_id(e.source, e.dimension, e.segment, start, e.rule == "new_service"),
        "method": method,
        "source": e.source, "dimension": e.dimension, "segment": e.segment, "kind": e.kind(ep), "rule": e.rule,
        "window_days": int(e.window), "start_date": start, "end_date": end, "last_detected": last,
        "duration_days": ((end or last) - start).days + 1, "status": "closed" if closed else "open",
        # the running totals are the state a daily run carries on from: stored unrounded
        "actual_spend": float(e.actual), "expected_spend": float(e.expected),
        "total_impact": round(e.impact, 2),
        "impact_pct": None if e.impact_pct is None else round(e.impact_pct, 2),
        "max_daily_impact": float(e.max_daily_impact), "max_score": float(e.max_score),
        "current_score": float(e.current_score), "severity": severity(e.impact_pct, ep),
        "alerted": e.alerted_on is not None,
        "alerted_on": cube.day(e.alerted_on) if e.alerted_on is not None else None,
        "covered_by": e.extra.get("covered_by"), "explained": bool(e.extra.get("explained")),
        "top_root_cause": _describe(top), "root_causes": rc, "department": top.get("department"),
        "quiet_days": int(e.quiet), "through_date": cube.day(e.through) if e.through >= 0 else None,
        "last_event_state": lev[0] if lev else None, "last_event_impact": float(lev[1]) if lev else None,
        "last_event_severity": lev[2] if lev else None,
    }


def records(cube: Cube, episodes: list[Episode], ep: EpisodeParams, method: str, as_of: int) -> pd.DataFrame:
    """Anomaly records of episodes, as known on day ``as_of``."""
    return pd.DataFrame([_record(cube, e, ep, method, as_of) for e in episodes])


def episode_from_record(r: dict[str, Any], cube: Cube) -> Episode:
    """The open episode a stored record describes (the state a daily run carries from the day before)."""
    def idx(d):
        if d is None or (isinstance(d, float) and d != d):
            return None
        d = d if isinstance(d, date) else pd.Timestamp(d).date()
        return cube.index(d)

    e = Episode(r["source"], r["dimension"], r["segment"], start=idx(r["start_date"]),
                last_detected=idx(r["last_detected"]), rule=r["rule"], window=int(r["window_days"]),
                end=idx(r.get("end_date")), actual=float(r["actual_spend"]), expected=float(r["expected_spend"]),
                max_daily_impact=float(r["max_daily_impact"]), max_score=float(r["max_score"]),
                current_score=float(r["current_score"]), alerted_on=idx(r.get("alerted_on")),
                quiet=int(r.get("quiet_days") or 0))
    through = idx(r.get("through_date"))
    e.through = -1 if through is None else through
    if r.get("status") == "closed":
        e.closed_on = idx(r.get("as_of")) if r.get("as_of") is not None else e.end
    rc = r.get("root_causes")
    if isinstance(rc, str):
        import json

        rc = json.loads(rc)
    e.extra["root_causes"] = list(rc or [])
    e.extra["covered_by"] = r.get("covered_by")
    e.extra["explained"] = bool(r.get("explained"))
    if e.alerted_on is not None:
        e.extra["alert_day"] = e.alerted_on
    if r.get("last_event_state"):
        e.extra["last_event"] = (r["last_event_state"], float(r["last_event_impact"]), r["last_event_severity"])
    return e


def _describe(rc: dict[str, Any]) -> str | None:
    if not rc:
        return None
    for k in ("resource", "vendor", "service"):
        if rc.get(k):
            return f"{k}:{rc[k]}"
    return None

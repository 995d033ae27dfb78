"""The spend anomaly monitors as a daily stage: ``analytics.spend_anomaly_scores``,
``analytics.spend_anomalies`` and the ``spend.anomaly.detected`` events.

**Incremental.** A day's run reads the cost lines' daily spend of the history the detector looks back over
(``processed.spend_leaf_daily``, about a year and a half), what the earlier days decided (the daily
expectations, bounds and variances of the last weeks from its own scores table, the anomalies open at the end
of the day before from its anomalies table) and scores the new day only: no refit over the whole history.
The model's parameters are medians and scales of windows of the history, so scoring one day is a few array
operations; a backfill scores its days in order in one pass. A rerun of a day replaces that day's rows and
events with the same ones.

When the stage's settings or code changed (``ctx.rebuild``), or nothing was scored yet, it scores every day
from the lake's first day to the run's last; when days were skipped since the last scored day, it scores them
too (the state of a day is the day before's).

**Events** (``spend.anomaly.detected``): one per alerted anomaly and change of state: opened (first day it
passes the alert threshold and is neither covered nor explained), worsened (its impact doubled, or its
severity rose, since its last event), closed (its end was decided). The id hashes the anomaly and the state;
the episode id hashes the anomaly, so the events of one anomaly form one episode.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jobs.dsa.costs import LEAVES
from models.dsa.episodes import segment_key
from models.dsa.monitor import LEAF_COLUMNS, MonitorState, build_cube, episode_from_record
from models.dsa.monitor import run as monitor_run

if TYPE_CHECKING:  # pragma: no cover
    from jobs.dsa.settings import DsaSettings
    from lakehouse.context import RunContext

SCORES = "analytics.spend_anomaly_scores"
ANOMALIES = "analytics.spend_anomalies"
EVENT_TYPE = "spend.anomaly.detected"
SOURCE = "dsa.anomalies"
RULE_NAMES = {0: None, 1: "interval", 2: "window", 3: "frequency"}


def leaf_name(r: dict[str, Any]) -> str:
    return "|".join(str(r[c]) for c in LEAF_COLUMNS)


def lookback_days(cfg: DsaSettings) -> int:
    """Days of history before the first scored day that the detector reads."""
    p = cfg.detector()
    return max(p.lookback(), p.count_window + p.fit_days + 7, cfg.new_service_quiet_days + 7,
               cfg.baseline_weeks * 7 + cfg.baseline_scale_days + 7) + max(cfg.window_days, default=0) + 7


def state_days(cfg: DsaSettings) -> int:
    """Days of stored verdicts a daily run reads back (windows, CUSUM starts, root-cause spans)."""
    return max(cfg.frequency_window_days, max(cfg.window_days, default=0), cfg.new_service_days) + 14


def _first_spend(leaves: pd.DataFrame, cube, first: date) -> tuple[np.ndarray, np.ndarray]:
    """Day index (relative to the cube) of each watched segment's and each leaf's first usage spend, from the
    first-spend day of every cost line (``leaves``: LEAF_COLUMNS + first_day)."""
    known = {leaf_name(r): (r["first_day"] - first).days for r in leaves.to_dict("records")}
    leaf_first = np.asarray([known.get(leaf_name(r), cube.days) for r in cube.leaves.to_dict("records")],
                            dtype=np.int64)
    watched = np.flatnonzero(cube.watch_usage)
    rec = cube.leaves["recurring"].to_numpy(dtype=bool) if len(cube.leaves) else np.zeros(0, bool)
    seg_first = []
    for i in watched:
        m = cube.members[i]
        m = m[~rec[m]]
        seg_first.append(int(leaf_first[m].min()) if len(m) else cube.days)
    # a line that never spent on usage: its first day is "after the cube" (never judged)
    leaf_first = np.where(rec, cube.days, leaf_first)
    return np.asarray(seg_first, dtype=np.int64), leaf_first


def _known(scores: pd.DataFrame, cube, watched: np.ndarray, first: date) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The stored verdicts of earlier days as arrays over the cube's days (NaN where not stored)."""
    S, T = len(watched), cube.days
    known = {k: np.full((S, T), np.nan) for k in ("expected", "upper", "var")}
    leaf_known = np.full((len(cube.leaves), T), np.nan)
    if scores is None or scores.empty:
        return known, leaf_known
    seg_row = {segment_key(*cube.keys[i]): j for j, i in enumerate(watched)}
    leaf_row = {leaf_name(r): j for j, r in enumerate(cube.leaves.to_dict("records"))}
    day = np.asarray([(date.fromisoformat(d) - first).days for d in scores["dt"]], dtype=np.int64)
    ok = (day >= 0) & (day < T)
    is_leaf = (scores["dimension"] == "leaf").to_numpy()
    keys = [segment_key(s, d, g) for s, d, g in zip(scores["source"], scores["dimension"], scores["segment"],
                                                    strict=True)]
    for idx, (k, d, lf, good) in enumerate(zip(keys, day, is_leaf, ok, strict=True)):
        if not good:
            continue
        if lf:
            j = leaf_row.get(scores["segment"].iat[idx])
            if j is not None:
                v = scores["expected"].iat[idx]
                leaf_known[j, d] = np.nan if v is None else v
            continue
        j = seg_row.get(k)
        if j is None:
            continue
        for col, name in (("expected", "expected"), ("upper", "upper"), ("variance", "var")):
            v = scores[col].iat[idx]
            known[name][j, d] = np.nan if v is None or pd.isna(v) else float(v)
    return known, leaf_known


SCORE_COLUMNS = ["method", "source", "dimension", "segment", "actual", "expected", "lower", "upper", "variance",
                 "score", "flagged", "rule", "start_estimate", "excess", "dt"]


def active(cube, t: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """(segments x days, cost lines x days): whether a segment (a cost line) had a charge in the ``lookback``
    days up to each target day, the history a day's run reads. Rows are written for those only, so the
    table is the same whether the days were scored one run a day, a month at a time or all at once (a run
    over a longer span would otherwise write empty rows for lines before they started or long after they
    stopped)."""
    spent = cube.L != 0
    seen = np.concatenate([np.zeros((len(spent), 1), np.int64), np.cumsum(spent, axis=1)], axis=1)
    t = np.asarray(t, dtype=np.int64)
    leaf = (seen[:, t + 1] - seen[:, np.maximum(t - lookback, 0)]) > 0
    seg = np.stack([leaf[m].any(axis=0) for m in cube.members]) if cube.members else np.zeros((0, len(t)), bool)
    return seg, leaf


def score_rows(cube, res, method: str, lookback: int) -> pd.DataFrame:
    """The scores table's rows of the target days: watched segments, then the cost lines' expectations, on the
    days they are active (:func:`active`)."""
    sc, t, watched = res.scores, res.targets, res.watched
    n, S = len(t), len(watched)
    if not n:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    seg_on, leaf_on = active(cube, t, lookback)
    days = np.asarray([cube.day(int(d)).isoformat() for d in t], dtype=object)
    keys = np.asarray([cube.keys[i] for i in watched], dtype=object).reshape(S, 3)

    def fin(a):
        a = np.round(np.asarray(a, dtype=float), 6)
        return np.where(np.isfinite(a), a, np.nan)

    flag = sc.flag.astype(bool)
    starts = np.where(flag & (sc.start >= 0), sc.start, -1)
    start_day = np.asarray([None if s < 0 else cube.day(int(s)) for s in starts.T.ravel()], dtype=object)
    rule = sc.rule if sc.rule is not None else np.zeros_like(sc.window)
    seg = pd.DataFrame({
        "method": method, "source": np.repeat(keys[:, 0][None, :], n, 0).ravel(),
        "dimension": np.repeat(keys[:, 1][None, :], n, 0).ravel(),
        "segment": np.repeat(keys[:, 2][None, :], n, 0).ravel(),
        "actual": fin(cube.usage[watched][:, t]).T.ravel(), "expected": fin(sc.expected).T.ravel(),
        "lower": fin(sc.lower).T.ravel(), "upper": fin(sc.upper).T.ravel(),
        "variance": fin(sc.variance).T.ravel() if sc.variance is not None else np.nan,
        "score": fin(sc.score).T.ravel(), "flagged": flag.T.ravel(),
        "rule": np.asarray([RULE_NAMES.get(int(r)) for r in rule.T.ravel()], dtype=object),
        "start_estimate": start_day, "excess": np.where(flag, fin(sc.excess), np.nan).T.ravel(),
        "dt": np.repeat(days, S)})[seg_on[watched].T.ravel()]
    leaves = cube.leaves.to_dict("records")
    usage = [i for i, r in enumerate(leaves) if not r["recurring"]]
    L = len(usage)
    names = np.asarray([leaf_name(leaves[i]) for i in usage], dtype=object)
    srcs = np.asarray([leaves[i]["source"] for i in usage], dtype=object)
    lf = pd.DataFrame({
        "method": method, "source": np.tile(srcs, n), "dimension": "leaf", "segment": np.tile(names, n),
        "actual": fin(cube.L[usage][:, t]).T.ravel(), "expected": fin(res.leaf_expected[usage]).T.ravel(),
        "lower": np.nan, "upper": np.nan, "variance": np.nan, "score": np.nan, "flagged": False, "rule": None,
        "start_estimate": None, "excess": np.nan, "dt": np.repeat(days, L)})[leaf_on[usage].T.ravel()]
    out = pd.concat([seg, lf], ignore_index=True) if L else seg.reset_index(drop=True)
    return out[SCORE_COLUMNS]


def _num(v) -> float | None:
    v = float(v)
    return round(v, 6) if np.isfinite(v) else None


def anomaly_rows(snapshots: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(snapshots)
    if frame.empty:
        return frame
    frame["root_causes"] = [json.dumps(rc, sort_keys=True) for rc in frame["root_causes"]]
    return frame


def to_event(ev: dict[str, Any], min_impact: float | None = None) -> dict[str, Any]:
    """A ``spend.anomaly.detected`` event (opened / worsened / closed) of an alerted anomaly."""
    from lakehouse.events import episode_id, make_event

    r, state, day = ev["record"], ev["state"], ev["day"]
    subject = f"spend:{r['source']}/{r['dimension']}={r['segment']}"
    iso = lambda d: d.isoformat() if d is not None else None  # noqa: E731
    data = {"anomaly_id": r["anomaly_id"], "anomaly_kind": r["kind"], "state": state, "source": r["source"],
            "dimension": r["dimension"], "segment": r["segment"], "department": r.get("department"),
            "start_date": iso(r["start_date"]), "end_date": iso(r["end_date"]),
            "last_detected": iso(r["last_detected"]),
            "duration_days": int(r["duration_days"]), "actual_spend": round(float(r["actual_spend"]), 2),
            "expected_spend": round(float(r["expected_spend"]), 2), "impact_amount": float(r["total_impact"]),
            "impact_pct": r["impact_pct"], "max_score": round(float(r["max_score"]), 4),
            "severity_band": r["severity"],
            "root_cause": r["top_root_cause"],
            "root_causes": [dict(rc) for rc in (r["root_causes"] or [])[:5]]}
    evidence = {"metric": "total_impact", "value": float(r["total_impact"]), "threshold": min_impact,
                "comparison": ">=",
                "source_rows": [{"dataset": ANOMALIES, "keys": {"anomaly_id": r["anomaly_id"], "dt": day.isoformat()}},
                                {"dataset": SCORES, "keys": {"source": r["source"], "dimension": r["dimension"],
                                                             "segment": r["segment"],
                                                             "dt": [iso(r["start_date"]), iso(r["last_detected"])]}}],
                "drivers": [{"factor": f"{k}:{rc[k]}", "change": f"{rc['contribution']:+.2f} USD",
                             "after": rc["contribution"]}
                            for rc in (r["root_causes"] or [])[:3] for k in ("resource", "vendor", "service")
                            if rc.get(k)][:3]}
    episode = {"id": episode_id(EVENT_TYPE, subject, "anomaly", r["start_date"]), "state": state,
               "opened": iso(r["alerted_on"]) or day.isoformat()}
    if state == "closed":
        episode["closed"] = day.isoformat()
    severity = "info" if state == "closed" else ("critical" if r["severity"] == "critical" else "warning")
    rule = f"{state}:{day.isoformat()}" if state == "worsened" else state
    return make_event(EVENT_TYPE, SOURCE, subject, day, r["anomaly_id"], rule, data, evidence,
                      severity=severity, episode=episode)


def plan_days(ctx: RunContext, first: date) -> tuple[list[date], bool]:
    """The days to score and whether it is a full rebuild (see the module docstring)."""
    scored = ctx.partition_values(SCORES, "dt")
    before = [d for d in scored if d < ctx.start.isoformat()]
    if ctx.rebuild or not before:
        start, full = first, True
    else:
        last = date.fromisoformat(before[-1])
        start, full = min(ctx.start, last + timedelta(days=1)), False
    start = max(start, first)
    days = [start + timedelta(days=i) for i in range((ctx.end - start).days + 1)]
    return days, full


def run(ctx: RunContext) -> None:
    """Score the run's days (see the module docstring)."""
    from lakehouse.lake import Range

    cfg: DsaSettings = ctx.config
    method = cfg.anomaly_method
    leaf_days = ctx.partition_values(LEAVES, "dt")
    if not leaf_days:
        ctx.warn(f"no {LEAVES} published yet: nothing to score")
        ctx.emit(EVENT_TYPE, [])
        return
    first = date.fromisoformat(leaf_days[0])
    days, full = plan_days(ctx, first)
    if not days:
        ctx.emit(EVENT_TYPE, [])
        return
    hist = max(first, days[0] - timedelta(days=lookback_days(cfg)))
    spec = cfg.monitors()
    leaves = ctx.read_pandas(LEAVES, {"dt": Range(hist.isoformat(), ctx.end.isoformat())})
    cube = build_cube(leaves, hist, ctx.end, spec)
    t = ctx.table(LEAVES)
    usage = t.filter((~t.recurring) & (t.cost != 0))
    firsts = ctx.engine.to_pandas(usage.group_by(list(LEAF_COLUMNS)).aggregate(first_day=usage.day.min()))
    firsts["first_day"] = pd.to_datetime(firsts["first_day"]).dt.date
    seg_first, leaf_first = _first_spend(firsts, cube, hist)
    state, known, leaf_known = MonitorState(), None, None
    if not full:
        since = (days[0] - timedelta(days=state_days(cfg))).isoformat()
        before = (days[0] - timedelta(days=1)).isoformat()
        scores = ctx.read_pandas(SCORES, {"dt": Range(since, before)})
        scores = scores[scores["method"] == method]
        watched = np.flatnonzero(cube.watch_usage)
        known, leaf_known = _known(scores, cube, watched, hist)
        snaps = ctx.read_pandas(ANOMALIES, {"dt": Range((days[0] - timedelta(days=2 * state_days(cfg))).isoformat(),
                                                       before)})
        snaps = snaps[snaps["method"] == method] if not snaps.empty else snaps
        state = restore_state(snaps, cube, before)
    idx = [cube.index(d) for d in days]
    state, res = monitor_run(cube, idx, cfg.detector(), cfg.episodes(), spec, state=state, known=known,
                     leaf_known=leaf_known, first_spend=seg_first, leaf_first=leaf_first,
                     lake_first=cube.index(first), worsen_ratio=cfg.worsen_ratio, method=method)
    replace = [{"dt": d.isoformat()} for d in days]
    ctx.write(SCORES, score_rows(cube, res, method, lookback_days(cfg)), replace=replace)
    ctx.write(ANOMALIES, anomaly_rows(res.snapshots) if res.snapshots else empty(ANOMALIES), replace=replace)
    events = [to_event(e, cfg.min_impact) for e in res.events]
    ctx.count(ANOMALIES).notes.append(f"{'rebuild: ' if full else ''}{len(days)} day(s) scored, "
                                      f"{sum(1 for e in res.events if e['state'] == 'opened')} alert(s) opened")
    ctx.emit(EVENT_TYPE, events, days=[d.isoformat() for d in days])


def empty(name: str) -> pd.DataFrame:
    import schemas

    return schemas.get(name).arrow_schema().empty_table().to_pandas()


def restore_state(snaps: pd.DataFrame, cube, before: str) -> MonitorState:
    """Open episodes at the end of the day ``before`` and the recently closed ones, from stored snapshots."""
    state = MonitorState()
    if snaps is None or snaps.empty:
        return state
    latest = snaps.sort_values("dt").groupby("anomaly_id", sort=False).tail(1)
    for r in latest.to_dict("records"):
        r = {**r, "as_of": r["dt"]}
        e = episode_from_record(r, cube)
        key = segment_key(e.source, e.dimension, e.segment)
        if r["status"] == "open" and r["dt"] == before:
            (state.new if e.rule == "new_service" else state.open)[key] = e
        elif r["status"] == "closed":
            state.done.append(e)
            if e.rule != "new_service" and e.end is not None:
                state.last_end[key] = max(state.last_end.get(key, -10**9), e.end)
    return state

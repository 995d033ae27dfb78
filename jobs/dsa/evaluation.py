"""``msp dsa evaluate``: the anomaly detectors against the planted truth of a synthetic MSP, from the lake's
cost lines, without writing anything: every method is run over every day in memory (the same code the
``dsa.detect`` stage runs day by day) and scored by :func:`models.dsa.evaluate.evaluate`."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.config import Settings


def cost_lines(settings: Settings) -> pd.DataFrame:
    import schemas
    from lakehouse.lake import Lake

    return Lake.from_settings(settings).read_pandas(schemas.get("processed.spend_leaf_daily"))


def run_method(lines: pd.DataFrame, cfg, method: str, overrides: dict[str, Any] | None = None):
    """(current anomaly records, seconds) of one method over every day of ``lines``."""
    from models.dsa.monitor import build_cube, run

    if overrides:
        cfg = cfg.model_copy(update=overrides)
    first, last = min(lines["day"]), max(lines["day"])
    first = first if isinstance(first, date) else pd.Timestamp(first).date()
    last = last if isinstance(last, date) else pd.Timestamp(last).date()
    spec = cfg.monitors()
    cube = build_cube(lines, first, last, spec)
    t0 = time.perf_counter()
    _, res = run(cube, list(range(cube.days)), cfg.detector(method), cfg.episodes(), spec,
                 worsen_ratio=cfg.worsen_ratio, method=method)
    secs = time.perf_counter() - t0
    snap = pd.DataFrame(res.snapshots)
    cur = snap.sort_values("dt").groupby("anomaly_id").tail(1) if not snap.empty else snap
    return cur, secs


def evaluate_methods(settings: Settings, methods: list[str], truth_dir: Path, tolerance: int = 2,
                     overrides: dict[str, Any] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    from models.dsa.evaluate import evaluate

    cfg = settings.model("dsa")
    lines = cost_lines(settings)
    if lines.empty:
        raise LookupError("no processed.spend_leaf_daily yet: run `msp run --agents dsa` first")
    lines["day"] = pd.to_datetime(lines["day"]).dt.date
    truth = pd.read_csv(truth_dir / "spend_anomalies.csv")
    truth = truth[pd.to_datetime(truth["start_date"]).dt.date <= max(lines["day"])]
    rows, detail = [], {}
    for m in methods:
        cur, secs = run_method(lines, cfg, m, overrides)
        res = {tol: evaluate(cur, truth, tol) for tol in sorted({tolerance, 7})}
        r = res[tolerance]
        rows.append({"method": m, "planted": r["planted"], "found": r["found"], "recall": r["recall"],
                     "alerts": r["alerts"], "true_alerts": r["true_alerts"], "precision": r["precision"],
                     "root_cause_correct": f"{r['root_cause_correct']}/{r['found']}",
                     "median_days_to_detect": r["median_days_to_detect"], "max_days_to_detect": r["max_days_to_detect"],
                     "recall_7d": res[7]["recall"], "precision_7d": res[7]["precision"], "seconds": round(secs, 1)})
        detail[m] = r
    return pd.DataFrame(rows), detail

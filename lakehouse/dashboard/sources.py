"""The platform's own tables for the dashboard, read from what the runner and the model registry leave in the
lake (small JSON files, not Iceberg tables), as frames the dashboard registers as temporary tables next to the
catalog's views:

``run_reports``   one row per run report (``_meta/runs/<run id>.json``): run_id, started_at, finished_at,
                  day (of started_at), start, end (the export days it covered), seconds, ok, stages, failed,
                  skipped, warnings
``run_stages``    one row per stage of a run: run_id, started_at, stage, agent, status, seconds, error
``run_counts``    one row per dataset of a run: run_id, started_at, dataset, rows_in, rows_out, quarantined,
                  duplicates, partitions
``model_versions`` one row per stored model version (``ml-models/<model>/<version>/version.json``): model,
                  version, created_at, metric (the primary one), higher_is_better, score, baseline (the same
                  metric of the version's named baseline, when its metrics hold one), lift (score minus
                  baseline, signed so that positive is better), current (the promoted version), training_rows,
                  promoted, reason (the registry's decision)

Every frame has its columns even when the lake holds no report or model yet, so panel SQL always binds.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from lakehouse.lake import Lake

log = logging.getLogger(__name__)
RUNS_DIR = "_meta/runs"
MODELS_DIR = "ml-models"

COLUMNS: dict[str, dict[str, str]] = {
    "run_reports": {"run_id": "object", "started_at": "datetime64[ns, UTC]", "finished_at": "datetime64[ns, UTC]",
                    "day": "object", "start": "object", "end": "object", "seconds": "float64", "ok": "bool",
                    "stages": "int64", "failed": "int64", "skipped": "int64", "warnings": "int64"},
    "run_stages": {"run_id": "object", "started_at": "datetime64[ns, UTC]", "stage": "object", "agent": "object",
                   "status": "object", "seconds": "float64", "error": "object"},
    "run_counts": {"run_id": "object", "started_at": "datetime64[ns, UTC]", "dataset": "object", "rows_in": "int64",
                   "rows_out": "int64", "quarantined": "int64", "duplicates": "int64", "partitions": "int64"},
    "model_versions": {"model": "object", "version": "object", "created_at": "datetime64[ns, UTC]",
                       "metric": "object", "higher_is_better": "bool", "score": "float64", "baseline": "float64",
                       "lift": "float64", "current": "bool", "training_rows": "int64", "promoted": "object",
                       "reason": "object"},
}


def _frame(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    cols = COLUMNS[name]
    frame = pd.DataFrame(rows, columns=list(cols))
    for col, dtype in cols.items():
        if dtype.startswith("datetime"):
            frame[col] = pd.to_datetime(frame[col], utc=True, errors="coerce")
        elif dtype == "object":
            frame[col] = frame[col].astype(object)
        elif dtype == "bool":
            frame[col] = frame[col].fillna(False).astype(bool)
        elif dtype == "int64":
            frame[col] = pd.to_numeric(frame[col], errors="coerce").fillna(0).astype("int64")
        else:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(dtype)
    return frame


def _json(lake: Lake, relative: str) -> Any:
    text = lake.read_text(relative)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        log.warning("dashboard: %s is not JSON; left out", lake.path(relative))
        return None


def run_tables(lake: Lake) -> dict[str, pd.DataFrame]:
    """``run_reports``, ``run_stages`` and ``run_counts`` from every run report in the lake."""
    reports, stages, counts = [], [], []
    for path in lake.list_files(RUNS_DIR):
        if not path.endswith(".json"):
            continue
        doc = _json(lake, path)
        if not isinstance(doc, dict) or "run_id" not in doc:
            continue
        run_id, started = doc["run_id"], doc.get("started_at") or None
        st = [s for s in doc.get("stages") or [] if isinstance(s, dict)]
        reports.append({"run_id": run_id, "started_at": started, "finished_at": doc.get("finished_at") or None,
                        "day": (started or "")[:10] or None, "start": doc.get("start"), "end": doc.get("end"),
                        "seconds": doc.get("seconds"), "ok": bool(doc.get("ok")), "stages": len(st),
                        "failed": sum(s.get("status") == "failed" for s in st),
                        "skipped": sum(s.get("status") == "skipped" for s in st),
                        "warnings": len(doc.get("warnings") or [])})
        stages += [{"run_id": run_id, "started_at": started, "stage": s.get("name"), "agent": s.get("agent"),
                    "status": s.get("status"), "seconds": s.get("seconds"), "error": s.get("error")} for s in st]
        counts += [{"run_id": run_id, "started_at": started, "dataset": name, **{k: c.get(k) for k in
                    ("rows_in", "rows_out", "quarantined", "duplicates", "partitions")}}
                   for name, c in (doc.get("counts") or {}).items() if isinstance(c, dict)]
    return {"run_reports": _frame("run_reports", reports), "run_stages": _frame("run_stages", stages),
            "run_counts": _frame("run_counts", counts)}


def _baseline(metrics: dict[str, Any], metric: str) -> float | None:
    """The primary metric of the version's baseline: ``metrics["baseline"][metric]``, else the first nested set
    of metrics that holds it."""
    nested = [v for k, v in metrics.items() if isinstance(v, dict) and k == "baseline"]
    nested += [v for k, v in metrics.items() if isinstance(v, dict) and k != "baseline"]
    for values in nested:
        value = values.get(metric)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def model_table(lake: Lake) -> dict[str, pd.DataFrame]:
    """``model_versions``: every stored version of every model in the lake's registry."""
    files = lake.list_files(MODELS_DIR)
    rows: list[dict[str, Any]] = []
    for model in sorted({f.split("/")[1] for f in files if f.count("/") >= 2}):
        current = (_json(lake, f"{MODELS_DIR}/{model}/CURRENT.json") or {}).get("version")
        decisions = {d.get("version"): d for d in _json(lake, f"{MODELS_DIR}/{model}/history.json") or []
                     if isinstance(d, dict)}
        for path in files:
            parts = path.split("/")
            if len(parts) != 4 or parts[1] != model or parts[3] != "version.json":
                continue
            doc = _json(lake, path)
            if not isinstance(doc, dict):
                continue
            metrics = doc.get("metrics") or {}
            metric = doc.get("primary_metric")
            score = metrics.get(metric)
            score = float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None
            base = _baseline(metrics, metric)
            better = bool(doc.get("higher_is_better", True))
            lift = None if score is None or base is None else (score - base if better else base - score)
            decision = decisions.get(parts[2]) or {}
            rows.append({"model": model, "version": parts[2], "created_at": doc.get("created_at") or None,
                         "metric": metric, "higher_is_better": better, "score": score, "baseline": base,
                         "lift": lift, "current": parts[2] == current, "training_rows": doc.get("training_rows"),
                         "promoted": None if not decision else ("yes" if decision.get("promoted") else "no"),
                         "reason": decision.get("reason")})
    return {"model_versions": _frame("model_versions", rows)}


def platform_tables(lake: Lake) -> dict[str, pd.DataFrame]:
    return {**run_tables(lake), **model_table(lake)}

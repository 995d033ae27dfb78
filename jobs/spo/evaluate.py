"""The lead scorer against the synthetic MSP's planted truth (``msp spo evaluate``; evaluation only: no
stage reads the truth).

``truth/leads.csv`` holds each lead's planted conversion probability ``p_convert``. The report re-scores the
test snapshots of the promoted model version (its ``training_data.parquet``, split ``test``) with the model
and its baseline, and gives the Spearman rank correlation of each with ``p_convert``:

* on each test lead's first snapshot (scored within a week of its creation, before engagement says much):
  the planted probability is about converting at all, and a lead that young converts, if it does, inside
  the 90-day horizon;
* on every test snapshot (later snapshots also say *when*: a lead open for months has had its chance).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.config import Settings


def spearman(a, b) -> float | None:
    from scipy.stats import spearmanr

    if len(a) < 3:
        return None
    return round(float(spearmanr(a, b).statistic), 4)


def lead_truth_report(settings: Settings) -> list[str]:
    import pandas as pd

    from lakehouse.lake import Lake
    from lakehouse.model_registry import ModelRegistry
    from models.spo import leads as M

    truth = Path(settings.truth_root) / "leads.csv"
    if not truth.is_file():
        raise LookupError(f"no planted truth at {truth}: `msp generate` writes it beside the landing area")
    registry = ModelRegistry(Lake.from_settings(settings), M.MODEL_NAME)
    current = registry.current()
    if current is None:
        raise LookupError("no promoted lead scorer: run `msp run --stages spo.lead_train` first")
    scorer = registry.load(current.version)
    data = registry.training_data(current.version)
    test = data[data["split"] == "test"].reset_index(drop=True)
    scored = M.score(scorer, test).merge(pd.read_csv(truth)[["lead_id", "p_convert"]], on="lead_id", how="inner")
    first = scored[scored["age_days"] < 7].sort_values("day").drop_duplicates("lead_id")
    m, b = current.metrics, current.metrics.get("baseline", {})
    lines = [f"lead scorer {current.version}: test snapshots {current.extra.get('split', {}).get('test_from')} .. "
             f"{current.extra.get('split', {}).get('test_to')}",
             f"  {'metric':<22}{'model':>10}{'baseline':>10}"]
    for k in ("roc_auc", "pr_auc", "brier", "ece", "lift_top_decile", "rows", "positives"):
        lines.append(f"  {k:<22}{_f(m.get(k)):>10}{_f(b.get(k)):>10}")
    lines.append(f"  {'spearman (first week)':<22}{_f(spearman(first['probability'], first['p_convert'])):>10}"
                 f"{_f(spearman(first['baseline_probability'], first['p_convert'])):>10}   ({len(first)} leads)")
    lines.append(f"  {'spearman (all rows)':<22}{_f(spearman(scored['probability'], scored['p_convert'])):>10}"
                 f"{_f(spearman(scored['baseline_probability'], scored['p_convert'])):>10}   ({len(scored)} rows)")
    return lines


def _f(v) -> str:
    return "n/a" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))

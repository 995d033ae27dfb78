"""The metrics every binary classifier of the project reports, for the model and its baseline alike.

* ``roc_auc``: ranking quality over all thresholds (0.5 = chance).
* ``pr_auc``: average precision; the honest summary when positives are rare (chance = the base rate).
* ``lift_top_decile`` (lift@10 %): positive rate among the 10 % highest scores / the overall rate (how much
  better than picking rows at random the top of the list is) [DOMAIN.md section 1, SUGGESTION].
* ``brier``: mean squared error of the probabilities (calibration and sharpness; lower is better).
* ``ece``: expected calibration error over 10 equal-width probability bins (Guo et al., "On Calibration of
  Modern Neural Networks", 2017): Σ_b (n_b / n) · |positive rate_b − mean probability_b|; 0 is perfect (rows
  scored 30 % are positive 30 % of the time); lower is better.

Undefined values (a test set with a single class) are ``None``, never a made-up number.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def binary_metrics(y_true, score) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y = np.asarray(y_true, dtype=int)
    p = np.asarray(score, dtype=float)
    if len(y) != len(p):
        raise ValueError(f"{len(y)} labels for {len(p)} scores")
    n, pos = len(y), int(y.sum())
    out: dict[str, Any] = {"rows": n, "positives": pos, "base_rate": round(pos / n, 6) if n else None,
                           "roc_auc": None, "pr_auc": None, "lift_top_decile": None,
                           "brier": round(float(brier_score_loss(y, p)), 6) if n else None,
                           "ece": expected_calibration_error(y, p)}
    if n and 0 < pos < n:
        out["roc_auc"] = round(float(roc_auc_score(y, p)), 6)
        out["pr_auc"] = round(float(average_precision_score(y, p)), 6)
        out["lift_top_decile"] = round(lift_at(y, p, 0.10), 6)
    return out


def expected_calibration_error(y_true, score, bins: int = 10) -> float | None:
    """Σ over ``bins`` equal-width probability bins of (rows in the bin / rows) × |positive rate − mean
    probability| (a probability of exactly 1 falls in the last bin); None without rows."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(score, dtype=float)
    if not len(y):
        return None
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(y[m].mean() - p[m].mean())
    return round(float(total), 6)


def lift_at(y_true, score, share: float) -> float:
    """Positive rate among the ``share`` highest scores / the overall positive rate.

    The top group holds ceil(share × n) rows. Rows tied with the last one in are counted by expectation
    (as if the tie were broken at random), so a constant score gives a lift of exactly 1."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(score, dtype=float)
    k = max(1, math.ceil(share * len(y)))
    edge = np.sort(p)[::-1][k - 1]
    above, tied = p > edge, p == edge
    hits = y[above].sum() + (k - above.sum()) * y[tied].mean()
    base = y.mean()
    return float(hits / k / base) if base > 0 else float("nan")

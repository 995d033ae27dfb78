"""Train and evaluate the churn model against its rules baseline on a time-based split.

* **Split**: snapshot days are ordered; the latest ``cpi.churn_test_share`` of them (with complete labels)
  are the test set. Training uses only earlier snapshots whose label window closed before the first test
  day (an embargo of one horizon), so no training label looks into the test period.
* **Baseline** (named, :class:`RulesBaseline`): the number of DOMAIN.md rules a client breaks (margin in
  the lowest tier, EHR under target, RHEM over target, paying late, ticket surge), turned into a
  probability by the churn rate of that count in the training rows.
* **Model**: :func:`lakehouse.ml.tabular.fit_binary` (gradient-boosted trees, sigmoid-calibrated) on
  :data:`models.cpi.features.FEATURES`.
* **Metrics** for both on the same test rows: ROC-AUC, PR-AUC (primary: positives are rare), lift in the
  top decile, Brier score, calibration error (:mod:`lakehouse.ml.metrics`).

The parameters come from the agent's settings (``CpiSettings.churn_params()``: ``horizon_days``,
``event``, ``test_share``, ``min_train_positives``, ``model_params``, ``calibration``, ``random_state``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lakehouse.ml.metrics import binary_metrics
from lakehouse.ml.tabular import TabularModel, fit_binary, permutation_importance
from models.cpi.features import FEATURES, RULES

MODEL_NAME = "churn-prediction"
BASELINE_NAME = "rules: lowest margin tier + EHR < target + RHEM > target + days late > grace + ticket surge"


class NotEnoughData(ValueError):
    """Too few labelled snapshots (or positives) to train and test honestly; the message says what."""


class RulesBaseline:
    """P(churn) = churn rate, in the training rows, of clients breaking the same number of rules."""

    name = BASELINE_NAME

    def __init__(self, rules: Sequence[str] = tuple(RULES), smoothing: float = 2.0):
        self.rules = list(rules)
        self.smoothing = smoothing
        self.rates_: dict[int, float] = {}
        self.prior_ = 0.0

    def hits(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[self.rules].fillna(False).astype(bool).sum(axis=1).to_numpy()

    def fit(self, frame: pd.DataFrame, y) -> RulesBaseline:
        y = np.asarray(y, dtype=float)
        k = self.hits(frame)
        self.prior_ = float(y.mean()) if len(y) else 0.0
        a = self.smoothing
        self.rates_ = {int(h): float((y[k == h].sum() + a * self.prior_) / ((k == h).sum() + a))
                       for h in range(len(self.rules) + 1)}
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.array([self.rates_.get(int(h), self.prior_) for h in self.hits(frame)], dtype=float)


@dataclass
class ChurnModel:
    """What the registry stores: the learned model and the baseline fitted on the same rows."""

    model: TabularModel
    baseline: RulesBaseline
    horizon_days: int
    churn_event: str


@dataclass
class TrainResult:
    artifact: ChurnModel
    metrics: dict[str, Any]
    split: dict[str, Any]
    train: pd.DataFrame
    test: pd.DataFrame
    importance: dict[str, float] = field(default_factory=dict)


def time_split(snaps: pd.DataFrame, test_share: float, horizon_days: int) -> tuple[pd.DataFrame, pd.DataFrame,
                                                                                    dict[str, Any]]:
    """(train, test, description) over snapshots with complete labels; see the module docstring."""
    labelled = snaps[snaps["label_complete"]]
    days = sorted(labelled["snapshot_date"].unique())
    if len(days) < 2:
        raise NotEnoughData(f"{len(days)} snapshot day(s) with a complete {horizon_days}-day label; need at least 2 "
                            "(one to train, one to test)")
    n_test = min(len(days) - 1, max(1, round(len(days) * test_share)))
    first_test = pd.Timestamp(days[-n_test])
    test = labelled[labelled["snapshot_date"] >= first_test]
    train = labelled[labelled["snapshot_date"] + pd.Timedelta(days=horizon_days) < first_test]
    info = {"snapshot_days": len(days), "test_days": n_test,
            "train_from": str(pd.Timestamp(days[0]).date()),
            "train_to": str(train["snapshot_date"].max().date()) if len(train) else None,
            "test_from": str(first_test.date()), "test_to": str(pd.Timestamp(days[-1]).date()),
            "embargo_days": horizon_days, "train_rows": len(train), "test_rows": len(test),
            "train_positives": int(train["label"].sum()), "test_positives": int(test["label"].sum())}
    return train, test, info


def train(snaps: pd.DataFrame, params: Mapping[str, Any]) -> TrainResult:
    """Fit the baseline and the model on the training snapshots; score both on the test snapshots."""
    horizon = int(params["horizon_days"])
    tr, te, info = time_split(snaps, float(params["test_share"]), horizon)
    if info["train_positives"] < int(params["min_train_positives"]):
        raise NotEnoughData(f"{info['train_positives']} churn example(s) in the training window "
                            f"{info['train_from']}..{info['train_to']}; need {params['min_train_positives']} "
                            "(cpi.churn_min_train_positives)")
    baseline = RulesBaseline().fit(tr, tr["label"])
    model = fit_binary(tr, "label", FEATURES, params=params["model_params"], calibration=params["calibration"],
                       random_state=int(params["random_state"]))
    p_model = model.predict_proba(te)
    p_base = baseline.predict_proba(te)
    metrics = {**binary_metrics(te["label"], p_model), "baseline": binary_metrics(te["label"], p_base)}
    importance = permutation_importance(model, te, te["label"], repeats=3, random_state=int(params["random_state"]))
    te = te.assign(probability=p_model, baseline_probability=p_base)
    return TrainResult(ChurnModel(model, baseline, horizon, str(params["event"])), metrics, info, tr, te,
                       importance)


def score_frame(artifact: ChurnModel, snaps: pd.DataFrame) -> pd.DataFrame:
    """Probabilities of the model and of the baseline for each snapshot row."""
    if snaps.empty:
        return snaps.assign(probability=pd.Series(dtype=float), baseline_probability=pd.Series(dtype=float))
    return snaps.assign(probability=artifact.model.predict_proba(snaps),
                        baseline_probability=artifact.baseline.predict_proba(snaps))

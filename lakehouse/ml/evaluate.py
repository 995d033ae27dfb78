"""Evaluate a declared model and its named baseline on anyone's tabular data (``msp model evaluate``).

An MSP's real export differs from our synthetic one: other column names, text categories, blanks, a
"Yes"/"No" label. :func:`evaluate_frame` takes any frame, a label column and optionally a time column:

* with a time column, a **time split**: the rows of the latest ``test_share`` of the distinct times are the
  test set; the model and the baseline learn on the earlier rows whose outcome was known before the first
  test time (``embargo_days`` before it, for a label that looks ahead: "leaves within 90 days");
* without one, **stratified 5-fold cross-validation**: every row is scored once by models that did not see
  it, and the metrics are computed on those out-of-fold scores.

Both the model and its baseline are scored on the same rows with :func:`lakehouse.ml.metrics.binary_metrics`
(ROC-AUC, PR-AUC, Brier, expected calibration error, lift@10 %). Rows without a label are left out and
counted; text columns that hold a different value on every row (identifiers) are not features.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lakehouse.ml.metrics import binary_metrics
from lakehouse.ml.tabular import _blank_to_nan, column_kind, labels

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.ml import ModelSpec

#: Metrics shown, in order, with how they read.
METRICS = (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("brier", "Brier (lower is better)"),
           ("ece", "calibration error (ECE, lower is better)"), ("lift_top_decile", "lift@10%"),
           ("rows", "rows scored"), ("positives", "positives"), ("base_rate", "base rate"))
DEFAULT_TEST_SHARE = 0.3


class EvaluationError(ValueError):
    """The data cannot be evaluated as asked; the message says why and what to change."""


@dataclass
class Evaluation:
    model: str
    baseline: str
    label: str
    method: str
    rows: int
    features: list[str]
    metrics: dict[str, dict[str, Any]]
    split: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=str)

    def lines(self) -> list[str]:
        """The report as plain text lines."""
        def fmt(v: Any) -> str:
            return "n/a" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))

        out = [f"{self.model} vs baseline '{self.baseline}' on {self.rows:,} labelled rows",
               f"method: {self.method}",
               f"label {self.label!r}; {len(self.features)} feature column(s): {', '.join(self.features)}"]
        out += [f"  {n}" for n in self.notes]
        if self.split:
            out.append("split: " + ", ".join(f"{k} {v}" for k, v in self.split.items()))
        out.append(f"  {'metric':<42}{'model':>10}{'baseline':>10}")
        for key, title in METRICS:
            out.append(f"  {title:<42}{fmt(self.metrics['model'].get(key)):>10}"
                       f"{fmt(self.metrics['baseline'].get(key)):>10}")
        return out


def read_csv(path: str | Path) -> pd.DataFrame:
    """A CSV as pandas' nullable types (text as the ``string`` dtype, blanks as missing values)."""
    try:
        return pd.read_csv(path, skipinitialspace=True, dtype_backend="numpy_nullable")
    except FileNotFoundError:
        raise EvaluationError(f"no such file: {path}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise EvaluationError(f"{path}: not a readable CSV ({exc})") from None


def _times(values: pd.Series) -> tuple[pd.Series, bool]:
    """The time column as datetimes (True) or numbers (False); unreadable values are missing."""
    text = _blank_to_nan(values)
    if column_kind(values) == "numeric" and not pd.api.types.is_datetime64_any_dtype(values):
        return pd.to_numeric(text, errors="coerce").astype("float64"), False
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    return parsed, True


def feature_columns(frame: pd.DataFrame, exclude: Sequence[str]) -> tuple[list[str], list[str]]:
    """(features, identifier columns left out): every column but ``exclude``, less the text columns whose
    values differ on every row."""
    features, ids = [], []
    for c in frame.columns:
        if c in exclude:
            continue
        values = _blank_to_nan(frame[c]).dropna()
        if column_kind(frame[c]) == "categorical" and len(values) > 20 and values.astype(str).is_unique:
            ids.append(str(c))
        else:
            features.append(str(c))
    return features, ids


def _both_classes(y: np.ndarray, what: str) -> None:
    if len(np.unique(y)) < 2:
        raise EvaluationError(f"the {what} holds only label {int(y[0]) if len(y) else '-'} ({len(y)} rows): "
                              "a model and its baseline cannot be compared there")


def evaluate_frame(spec: ModelSpec, frame: pd.DataFrame, label: str, time_col: str | None = None,
                   params: Mapping[str, Any] | None = None, *, folds: int = 5, test_share: float | None = None,
                   embargo_days: int | None = None, ignore: Sequence[str] = ()) -> Evaluation:
    """The model of ``spec`` and its named baseline, trained and scored on ``frame`` (see the module
    docstring); ``params`` are the spec's parameters (:meth:`ModelSpec.parameters`); ``ignore`` names columns
    that are not features (keys, outcomes known only later)."""
    params = dict(params or {})
    for col, what in ((label, "label"), (time_col, "time"), *((c, "ignored") for c in ignore)):
        if col is not None and col not in frame.columns:
            raise EvaluationError(f"no {what} column {col!r}; the columns are: {', '.join(map(str, frame.columns))}")
    notes: list[str] = []
    has_label = _blank_to_nan(frame[label]).notna()
    if not has_label.all():
        notes.append(f"{int((~has_label).sum()):,} row(s) without a label left out")
    data = frame[has_label].reset_index(drop=True)
    try:
        y = labels(data[label])
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None
    _both_classes(y, "data")
    features, ids = feature_columns(data, [label, *([time_col] if time_col else []), *ignore])
    if ids:
        notes.append(f"identifier column(s) left out (a different value on every row): {', '.join(ids)}")
    if not features:
        raise EvaluationError("no feature columns left besides the label and the time column")
    data = data.assign(**{label: y})
    baseline_name = spec.baseline(features)

    def fit_and_score(train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        model = spec.fit(train, label, features, params)
        base = spec.fit_baseline(train, label, features, params)
        return np.asarray(model.predict_proba(test), float), np.asarray(base.predict_proba(test), float)

    if time_col is not None:
        t, is_date = _times(data[time_col])
        if t.isna().all():
            raise EvaluationError(f"time column {time_col!r} holds no dates or numbers")
        if t.isna().any():
            notes.append(f"{int(t.isna().sum()):,} row(s) without a readable {time_col!r} left out")
        known = t.notna().to_numpy()
        data, y, t = data[known].reset_index(drop=True), y[known], t[known].reset_index(drop=True)
        times = t.drop_duplicates().sort_values().reset_index(drop=True)
        if len(times) < 2:
            raise EvaluationError(f"time column {time_col!r} has a single value: use no --time-col for "
                                  "cross-validation")
        share = test_share if test_share is not None else float(params.get("test_share", DEFAULT_TEST_SHARE))
        n_test = min(len(times) - 1, max(1, round(len(times) * share)))
        first_test = times.iloc[-n_test]
        embargo = embargo_days if embargo_days is not None else int(params.get("embargo_days", 0) or 0)
        cutoff = first_test - (pd.Timedelta(days=embargo) if is_date else 0)
        test_mask = (t >= first_test).to_numpy()
        train_mask = (t < cutoff).to_numpy() if embargo and is_date else ~test_mask
        _both_classes(y[train_mask], "training part (before the test times)")
        _both_classes(y[test_mask], "test part (the latest times)")
        p_model, p_base = fit_and_score(data[train_mask], data[test_mask])
        y_eval = y[test_mask]

        def show(v: Any) -> str:
            return str(pd.Timestamp(v).date()) if is_date else f"{v:g}"

        split = {"train_rows": int(train_mask.sum()), "test_rows": int(test_mask.sum()),
                 "train_to": show(t[train_mask].max()), "test_from": show(first_test), "test_to": show(times.iloc[-1]),
                 "embargo_days": embargo if is_date else 0}
        method = f"time split on {time_col!r} (latest {n_test} of {len(times)} distinct times as the test set)"
    else:
        from sklearn.model_selection import StratifiedKFold

        k = min(folds, int(np.bincount(y).min()))
        if k < 2:
            raise EvaluationError("fewer than 2 rows of the rarer label: cross-validation needs 2 or more")
        if k < folds:
            notes.append(f"{k} folds instead of {folds} (the rarer label has only {k} rows)")
        cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=int(params.get("random_state", 0)))
        p_model, p_base = np.zeros(len(y)), np.zeros(len(y))
        for train_idx, test_idx in cv.split(np.zeros(len(y)), y):
            p_model[test_idx], p_base[test_idx] = fit_and_score(data.iloc[train_idx], data.iloc[test_idx])
        y_eval = y
        split = {"folds": k, "rows_per_fold": int(np.ceil(len(y) / k))}
        method = f"stratified {k}-fold cross-validation (metrics on the out-of-fold scores)"
    metrics = {"model": binary_metrics(y_eval, p_model), "baseline": binary_metrics(y_eval, p_base)}
    return Evaluation(spec.title, baseline_name, label, method, len(data), features, metrics, split, notes)

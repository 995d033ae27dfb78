"""Simple named baselines that fit any tabular frame, for models whose own baseline needs columns a user's
data may not have (a model is only as good as what it beats on the same rows).

* :class:`LogisticBaseline`: logistic regression on the numeric columns (median-imputed, standardised) and
  the text columns (one-hot, blanks as their own level); the textbook first model of a binary outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lakehouse.ml.tabular import THREADS, FrameEncoder, labels

LOGISTIC = "logistic regression (numeric columns standardised, text columns one-hot)"


class LogisticBaseline:
    name = LOGISTIC

    def __init__(self, random_state: int = 0, max_categories: int = 20):
        self.random_state = random_state
        self.max_categories = max_categories

    def fit(self, frame: pd.DataFrame, label: str, features: Sequence[str]) -> LogisticBaseline:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler
        from threadpoolctl import threadpool_limits

        self.features = list(features)
        self.encoder = FrameEncoder().fit(frame[self.features])
        numeric = [c for c in self.features if self.encoder.kinds_[c] == "numeric"]
        text = [c for c in self.features if self.encoder.kinds_[c] == "categorical"]
        parts = []
        if numeric:
            parts.append(("num", Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                                           ("scale", StandardScaler())]), numeric))
        if text:
            parts.append(("txt", Pipeline([("fill", SimpleImputer(strategy="constant", fill_value="(blank)")),
                                           ("onehot", OneHotEncoder(handle_unknown="ignore",
                                                                    max_categories=self.max_categories))]), text))
        self.pipe = Pipeline([("columns", ColumnTransformer(parts)),
                              ("model", LogisticRegression(max_iter=1000, random_state=self.random_state))])
        with threadpool_limits(THREADS):
            self.pipe.fit(self._x(frame), labels(frame[label]))
        return self

    def _x(self, frame: pd.DataFrame) -> pd.DataFrame:
        x = self.encoder.transform(frame.reindex(columns=self.features))
        for c, kind in self.encoder.kinds_.items():
            if kind == "categorical":
                x[c] = x[c].astype(object).where(x[c].notna(), np.nan)
        return x

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(THREADS):
            return self.pipe.predict_proba(self._x(frame))[:, 1]


def fit_logistic(frame: pd.DataFrame, label: str, features: list[str], params: Mapping[str, Any]) -> LogisticBaseline:
    """:data:`lakehouse.ml.Fit` of the logistic baseline."""
    return LogisticBaseline(random_state=int(params.get("random_state", 0))).fit(frame, label, features)

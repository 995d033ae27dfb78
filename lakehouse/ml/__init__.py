"""Machine learning shared by every agent's models: the platform side of ``models/<agent>/``.

* :mod:`lakehouse.ml.tabular`: a calibrated gradient-boosted classifier for any tabular frame (numeric and
  text columns, blanks, missing values, pandas' string dtype);
* :mod:`lakehouse.ml.metrics`: the metrics every binary classifier reports, for the model and its baseline
  alike (ROC-AUC, PR-AUC, lift@10 %, Brier, expected calibration error);
* :mod:`lakehouse.ml.baselines`: simple named baselines that fit any frame;
* :mod:`lakehouse.model_registry` (beside this package): versions of a model in the lake, promoted only when better;
* :mod:`lakehouse.ml.evaluate` and ``msp model evaluate`` (:mod:`lakehouse.ml.cli`): any declared model and
  its named baseline on a user's own CSV.

An agent declares each tabular model it trains (``Model(name, title, "models.<agent>.<module>:SPEC")`` in
its :class:`lakehouse.agents.Agent`) with a :class:`ModelSpec`: how to fit the model and its named baseline
on any frame. Importing this package imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd


class Scorer(Protocol):
    """A fitted binary classifier: P(label = 1) for every row of a frame."""

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray: ...


#: ``fit(frame, label, features, params) -> Scorer``: train on ``frame`` (the label column and the feature
#: columns, any names and types) with the spec's parameters.
Fit = Callable[["pd.DataFrame", str, list[str], Mapping[str, Any]], Scorer]


@dataclass(frozen=True)
class ModelSpec:
    """How to fit a model, and its named baseline, on any tabular frame (``msp model evaluate``).

    ``params`` maps the declaring agent's settings model to the parameters ``fit`` and ``fit_baseline``
    receive (hyper-parameters, random state, ``test_share`` and ``embargo_days`` for a time split), so the
    model package need not import the agent's settings. ``baseline(features)`` names the baseline that
    ``fit_baseline`` fits on those columns."""

    name: str
    title: str
    fit: Fit
    fit_baseline: Fit
    baseline: Callable[[list[str]], str]
    params: Callable[[Any], Mapping[str, Any]] | None = None
    primary_metric: str = "pr_auc"

    def parameters(self, settings_model: Any = None) -> dict[str, Any]:
        return dict(self.params(settings_model)) if self.params and settings_model is not None else {}


__all__ = ["Fit", "ModelSpec", "Scorer"]

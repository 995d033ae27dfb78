"""The churn model as a :class:`lakehouse.ml.ModelSpec`: the same learner and baseline, on any frame.

``msp model evaluate --model churn --csv FILE --label COL`` fits, on a user's own table (their column names,
text categories, blanks):

* the model: :func:`lakehouse.ml.tabular.fit_binary` (calibrated gradient-boosted trees) with the
  ``[cpi]`` churn settings (``churn_model_params``, ``churn_calibration``, ``churn_random_state``);
* the named baseline: the rules baseline of :mod:`models.cpi.train` when the frame carries its rule flags
  (our own snapshots: ``training_data.parquet`` of a model version), else the logistic baseline of
  :mod:`lakehouse.ml.baselines` (a user's table has none of our rule columns).

A time split holds out the latest ``churn_test_share`` of the times with an embargo of one label horizon
(``churn_horizon_days``), as training does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lakehouse.ml import ModelSpec
from models.cpi.features import RULES


def _fit(frame, label: str, features: list[str], params: Mapping[str, Any]):
    from lakehouse.ml.tabular import fit_binary

    return fit_binary(frame, label, features, params=params.get("model_params"),
                      calibration=str(params.get("calibration", "sigmoid")),
                      random_state=int(params.get("random_state", 0)))


def _has_rules(features: list[str]) -> bool:
    return set(RULES) <= set(features)


def _fit_baseline(frame, label: str, features: list[str], params: Mapping[str, Any]):
    if _has_rules(features):
        from models.cpi.train import RulesBaseline

        return RulesBaseline().fit(frame, frame[label])
    from lakehouse.ml.baselines import fit_logistic

    return fit_logistic(frame, label, features, params)


def _baseline_name(features: list[str]) -> str:
    from lakehouse.ml.baselines import LOGISTIC
    from models.cpi.train import BASELINE_NAME

    return BASELINE_NAME if _has_rules(features) else LOGISTIC


def _params(settings: Any) -> dict[str, Any]:
    """The churn parameters of the agent's settings, and the time split's share and embargo."""
    p = dict(settings.churn_params())
    return {**p, "embargo_days": p["horizon_days"]}


SPEC = ModelSpec(name="churn", title="churn model (calibrated gradient boosting)", fit=_fit,
                 fit_baseline=_fit_baseline, baseline=_baseline_name, params=_params, primary_metric="pr_auc")

"""The generic model pieces (:mod:`lakehouse.ml`, first used by CPI's churn model): the tabular classifier on
a frame that has nothing to do with churn, the metrics, and the model registry (save, load, promote only when
better, model card)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from lakehouse.lake import Lake
from lakehouse.ml.metrics import binary_metrics, expected_calibration_error, lift_at
from lakehouse.ml.tabular import column_kind, fit_binary, labels
from lakehouse.model_registry import ModelRegistry, RegistryError, make_version


@pytest.fixture(scope="module")
def leads():
    """A lead-scoring-like frame: money as Decimal, text categories with blanks and None, a yes/no flag as
    text, numbers stored as text with blanks, dates, an all-empty column, and a yes/no label."""
    rng = np.random.default_rng(3)
    n = 400
    segment = rng.choice(["smb", "mid", "enterprise", "", "  ", None], n)
    referral = rng.choice(["yes", "no"], n)
    frame = pd.DataFrame({
        "deal_value": [Decimal(f"{v:.2f}") for v in rng.gamma(2, 5000, n)],
        "segment": segment,
        "referral": referral,
        "seats": np.where(rng.random(n) < 0.1, "", rng.integers(1, 300, n).astype(str)),
        "first_touch": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
        "never_filled": [None] * n,
    })
    p = 0.1 + 0.5 * (referral == "yes") + 0.25 * (segment == "enterprise")
    frame["converted"] = np.where(rng.random(n) < p, "yes", "no")
    return frame


def test_any_tabular_frame_trains_and_scores(leads):
    model = fit_binary(leads.iloc[:300], "converted", random_state=1)
    assert model.kinds == {"deal_value": "numeric", "segment": "categorical", "referral": "categorical",
                           "seats": "numeric", "first_touch": "numeric", "never_filled": "numeric"}
    assert model.calibration == "sigmoid, 3-fold"
    test = leads.iloc[300:]
    p = model.predict_proba(test)
    assert p.shape == (100,) and np.all((p >= 0) & (p <= 1))
    # the planted signal (referrals convert) is found on rows the model never saw
    m = binary_metrics(labels(test["converted"]), p)
    assert m["roc_auc"] > 0.7
    # scoring copes with unseen categories, missing columns and blanks
    odd = test.drop(columns=["seats"]).assign(segment="government", referral="")
    assert np.isfinite(model.predict_proba(odd)).all()


def test_pandas_string_dtype_and_nullable_types_read_like_plain_ones():
    assert labels(pd.Series(["Yes", "no", " YES ", "N"], dtype="string", name="y")).tolist() == [1, 0, 1, 0]
    assert labels(pd.Series([True, False], dtype="boolean", name="y")).tolist() == [1, 0]
    assert column_kind(pd.Series(["1", "2.5", None, " "], dtype="string")) == "numeric"
    assert column_kind(pd.Series(["gold", None], dtype="string")) == "categorical"
    assert column_kind(pd.Series([1, None], dtype="Int64")) == "numeric"


def test_label_and_kind_inference_refuse_what_they_cannot_read():
    assert column_kind(pd.Series(["1", "2", "", None])) == "numeric"
    assert column_kind(pd.Series(["a", "2"])) == "categorical"
    assert labels(pd.Series([True, False])).tolist() == [1, 0]
    with pytest.raises(ValueError, match="binary"):
        labels(pd.Series(["a", "b"], name="y"))
    with pytest.raises(ValueError, match="missing"):
        labels(pd.Series([1, None], name="y"))
    with pytest.raises(ValueError, match="single class"):
        fit_binary(pd.DataFrame({"x": [1, 2, 3], "y": [0, 0, 0]}), "y")


def test_metrics_by_hand():
    y = [1, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    p = [0.9, 0.8, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    m = binary_metrics(y, p)
    # ranks: positives at 1st and 3rd of 10. ROC-AUC: each positive beats the 8 negatives below it, except
    # 0.7 < 0.8: (8 + 7) / 16 = 0.9375. PR-AUC = (1/1 + 2/3) / 2 = 0.8333. Top decile = the 0.9 row (a
    # positive): 1 / base rate 0.2 = 5. Brier = (0.01 + 0.64 + 0.09 + 7 x 0.01) / 10 = 0.081
    assert (m["roc_auc"], round(m["pr_auc"], 4), m["lift_top_decile"], m["brier"]) == (0.9375, 0.8333, 5.0, 0.081)
    # ECE over 10 bins: 0.9 alone (|1 - 0.9|), 0.8 alone (|0 - 0.8|), 0.7 alone (|1 - 0.7|), seven 0.1s (|0 - 0.1|):
    # (0.1 + 0.8 + 0.3) / 10 + 7 / 10 x 0.1 = 0.19
    assert m["ece"] == 0.19
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0 and expected_calibration_error([], []) is None
    # ties at the decile edge count by expectation: all equal scores give a lift of exactly 1
    assert lift_at(y, [0.5] * 10, 0.1) == 1.0
    assert binary_metrics([0, 0], [0.1, 0.2])["roc_auc"] is None  # undefined, not invented


def test_registry_saves_loads_and_promotes_only_a_better_model(settings, leads):
    lake = Lake.from_settings(settings)
    reg = ModelRegistry(lake, "lead-scoring")
    with pytest.raises(RegistryError, match="no promoted version"):
        reg.load()
    model = fit_binary(leads, "converted", random_state=1)
    v1 = make_version(date(2024, 6, 30), leads, {"a": 1})
    assert v1 == make_version(date(2024, 6, 30), leads, {"a": 1}) and v1.startswith("20240630-")
    reg.save(model, version=v1, metrics={"pr_auc": 0.60, "roc_auc": 0.8, "baseline": {"pr_auc": 0.5}},
             primary_metric="pr_auc", params={"a": 1}, features=model.features, training_data=leads,
             card={"intended_use": "Rank leads.", "limitations": "Synthetic."})
    first = reg.promote_if_better(v1)
    assert first.promoted and first.reason == "first version with a score"
    loaded = reg.load()
    assert np.allclose(loaded.predict_proba(leads), model.predict_proba(leads))
    assert len(reg.training_data(v1)) == len(leads)
    card = lake.read_text(f"ml-models/lead-scoring/{v1}/model_card.md")
    assert "| pr_auc | 0.6000 | 0.5000 |" in card and "Rank leads." in card and "Synthetic." in card
    assert json.loads(lake.read_text(f"ml-models/lead-scoring/{v1}/features.json"))[0]["name"] == "deal_value"

    reg.save(model, version="20240707-worse", metrics={"pr_auc": 0.55}, primary_metric="pr_auc")
    worse = reg.promote_if_better("20240707-worse")
    assert not worse.promoted and reg.current().version == v1
    assert "0.5500 vs 0.6000 on their own test sets: not better" in worse.reason
    # judged on the same test rows, where the champion scores only 0.50, the challenger wins
    reg.save(model, version="20240714-better", metrics={"pr_auc": 0.55}, primary_metric="pr_auc")
    better = reg.promote_if_better("20240714-better", champion_score=0.50)
    assert better.promoted and reg.current().version == "20240714-better"
    assert "on the same test rows" in better.reason
    assert reg.versions() == [v1, "20240707-worse", "20240714-better"]
    assert [h["promoted"] for h in reg.history()] == [True, False, True]

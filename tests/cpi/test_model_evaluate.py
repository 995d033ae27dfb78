"""``msp model evaluate``: the churn model and its named baseline on a CSV that is nothing like our exports
(other column names, text categories, blanks, a Yes/No label, an identifier column)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from lakehouse.ml.cli import register
from lakehouse.ml.evaluate import EvaluationError, evaluate_frame, read_csv
from models.cpi.churn import SPEC

MONTHS = pd.date_range("2023-01-31", periods=24, freq="ME")
METRIC_LINES = ("ROC-AUC", "PR-AUC", "Brier (lower is better)", "calibration error (ECE, lower is better)",
                "lift@10%")


def their_export(n_accounts: int = 40, seed: int = 11) -> pd.DataFrame:
    """A subscription business's monthly account snapshots: 'Cancelled?' is Yes when the account leaves.
    Basic-plan accounts with many support tickets leave far more often."""
    rng = np.random.default_rng(seed)
    rows = []
    for a in range(n_accounts):
        plan = ["Basic", "Pro", "Enterprise"][a % 3]
        region = ["North", "South", "", None][a % 4]
        for m in MONTHS:
            tickets = int(rng.poisson(9 if plan == "Basic" else 2))
            p = 0.03 + 0.5 * (plan == "Basic") * (tickets >= 9)
            rows.append({"Account Ref": f"ACC-{a:03d}-{m:%y%m}", "Snapshot Month": m.strftime("%Y-%m-%d"),
                         "Plan": plan, "Region": region,
                         "Support Tickets": "" if rng.random() < 0.1 else tickets,
                         "Monthly Fee": round(float(rng.normal(400 if plan != "Basic" else 90, 20)), 2),
                         "Cancelled?": "Yes" if rng.random() < p else "No"})
    frame = pd.DataFrame(rows)
    frame.loc[[5, 77, 300], "Cancelled?"] = ""  # three rows whose outcome nobody recorded
    return frame


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("byo") / "accounts.csv"
    their_export().to_csv(path, index=False)
    return path


def run_cli(settings, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args, settings)


def test_cross_validation_on_their_csv_prints_and_writes_both_metric_sets(settings, csv_path, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert run_cli(settings, ["model", "evaluate", "--csv", str(csv_path), "--label", "Cancelled?",
                              "--model", "churn", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "stratified 5-fold cross-validation" in printed and "logistic regression" in printed
    for title in METRIC_LINES:
        [line] = [x for x in printed.splitlines() if x.strip().startswith(title)]
        assert len(line.split()) - len(title.split()) == 2  # a model value and a baseline value
    result = json.loads(out.read_text())
    # 40 accounts x 24 months, less the 3 rows without a label; the identifier is not a feature
    assert result["rows"] == 957 and result["split"] == {"folds": 5, "rows_per_fold": 192}
    assert result["notes"] == ["3 row(s) without a label left out",
                               "identifier column(s) left out (a different value on every row): Account Ref"]
    assert result["features"] == ["Snapshot Month", "Plan", "Region", "Support Tickets", "Monthly Fee"]
    for who in ("model", "baseline"):
        m = result["metrics"][who]
        assert m["rows"] == 957 and all(m[k] is not None for k in ("roc_auc", "pr_auc", "brier", "ece",
                                                                     "lift_top_decile"))
    # the planted rule (Basic plan and many tickets) is found on rows the models did not see
    assert result["metrics"]["model"]["roc_auc"] > 0.75 and result["metrics"]["model"]["lift_top_decile"] > 2


def test_time_split_uses_the_models_test_share_and_label_horizon(settings, csv_path, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert run_cli(settings, ["model", "evaluate", "--model", "churn", "--csv", str(csv_path), "--label",
                              "Cancelled?", "--time-col", "Snapshot Month", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    # [cpi] churn_test_share 0.34 of 24 months = the last 8 (2024-05-31..2024-12-31): 40 x 8 = 320 test rows;
    # training stops one 90-day horizon (churn_horizon_days) before the first test month: Feb 29 + 90 days =
    # May 29 is before May 31, Mar 31 + 90 is not; 14 months x 40 = 560 rows less the 3 without a label
    assert result["split"] == {"train_rows": 557, "test_rows": 320, "train_to": "2024-02-29",
                               "test_from": "2024-05-31", "test_to": "2024-12-31", "embargo_days": 90}
    assert "Snapshot Month" not in result["features"]
    assert all(result["metrics"][w]["rows"] == 320 for w in ("model", "baseline"))
    assert "time split on 'Snapshot Month'" in capsys.readouterr().out


def test_pandas_string_dtype_gives_the_same_evaluation(settings, csv_path):
    params = SPEC.parameters(settings.model("cpi"))
    frame = read_csv(csv_path)
    assert str(frame["Plan"].dtype) == "string"
    plain = evaluate_frame(SPEC, frame, "Cancelled?", "Snapshot Month", params=params)
    as_text = evaluate_frame(SPEC, frame.astype("string"), "Cancelled?", "Snapshot Month", params=params)
    assert as_text.metrics == plain.metrics and as_text.features == plain.features


def test_mistakes_get_a_clear_message(settings, csv_path, capsys):
    # more than one model is declared: the command asks which, naming them
    assert run_cli(settings, ["model", "evaluate", "--csv", str(csv_path), "--label", "Cancelled?"]) == 2
    assert "pick one with --model: churn" in capsys.readouterr().err
    churn = ["model", "evaluate", "--model", "churn", "--csv", str(csv_path)]
    assert run_cli(settings, [*churn, "--label", "Churned"]) == 2
    assert "no label column 'Churned'" in capsys.readouterr().err
    assert run_cli(settings, [*churn, "--label", "Plan"]) == 2
    assert "must be binary" in capsys.readouterr().err
    with pytest.raises(EvaluationError, match="no such file"):
        read_csv(csv_path.parent / "missing.csv")

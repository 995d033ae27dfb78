"""Lead scoring stages: weekly training (``spo.lead_train``) and daily scoring (``spo.lead_score``).

The modelling lives in :mod:`models.spo.leads` (snapshots, features, split, baseline, metrics); these stages
read the processed CRM tables as of their days, call it, and store the results: the model in the registry
(``ml-models/lead-score/<version>/``), the daily scores in ``analytics.lead_scores``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.spo.common import ACTIVITY_COLUMNS, LEAD_COLUMNS, current_model, first_export_day, read, save_and_promote

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from lakehouse.context import RunContext

LEADS = "processed.leads"
ACTIVITIES = "processed.activities"
SCORES = "analytics.lead_scores"
SCORE_COLUMNS = ("lead_id", "company_name", "owner", "status", "age_days", "probability", "baseline_probability",
                 "priority_tier", "priority_rank", "reasons", "horizon_days", "model_version", "dt")


def inputs(ctx: RunContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lead versions and sales activities exported up to the run's last day."""
    return (read(ctx, LEADS, ctx.end, LEAD_COLUMNS), read(ctx, ACTIVITIES, ctx.end, ACTIVITY_COLUMNS))


def train_stage(ctx: RunContext) -> None:
    """Train the lead scorer on weekly snapshots up to the run's last day; promote it if it beats the
    current version on the same test rows."""
    from lakehouse.model_registry import make_version
    from models.spo import history as H
    from models.spo import leads as M

    cfg = ctx.config
    leads, acts = inputs(ctx)
    first = first_export_day(leads)
    if first is None:
        ctx.warn("lead scorer not trained: no leads exported yet")
        return
    days = H.days_between(first, ctx.end, cfg.lead_snapshot_every_days)
    snaps = M.add_labels(M.snapshots(leads, acts, days, cfg.lead_max_age_days), leads, cfg.lead_horizon_days,
                         ctx.end)
    try:
        result = M.train(snaps, **cfg.lead_params())
    except M.NotEnoughData as exc:
        ctx.warn(f"lead scorer not trained: {exc}")
        return
    data = snaps[snaps["label_complete"]].assign(split=None)
    data.loc[data.index.isin(result.train.index), "split"] = "train"
    data.loc[data.index.isin(result.test.index), "split"] = "test"
    params = {**cfg.lead_params(), "calibration_used": result.scorer.calibration, "tier_cuts": result.scorer.tier_cuts,
              "max_age_days": cfg.lead_max_age_days, "snapshot_every_days": cfg.lead_snapshot_every_days,
              "as_of": ctx.end.isoformat()}
    version = make_version(ctx.end, data, params, list(M.TREE_FEATURES))
    test_f = M.features(result.test)
    card = {
        "intended_use": (f"P(a lead becomes a client within {cfg.lead_horizon_days} days of the scoring day), for "
                         "sales reps to choose whom to call first (HubSpot's likelihood to close; priority tiers "
                         "are quartiles of the reference scores). Not for deciding whom to ignore: a low score "
                         "on a lead a rep knows well should be questioned, not obeyed."),
        "data": "\n".join(f"- {k}: {v}" for k, v in result.split.items()),
        "baseline": f"{M.BASELINE_NAME}, measured on the same test snapshots.",
        "importance": "Drop in test ROC-AUC when a feature is shuffled (top 12):\n\n" + "\n".join(
            f"- `{k}`: {v:.4f}" for k, v in result.importance.items()),
        "limitations": ("A few hundred leads: the test months hold a few dozen conversions, so the metrics move "
                        "by a few points from one training run to the next. Status, assessment and "
                        "opportunity fields are left out on purpose (they are filled in by reps after contact)."
                        " Reliability on the test rows (bin, rows, mean probability, observed rate): "
                        + "; ".join(f"{r['bin']}: {r['rows']}, {r['mean_probability']:.3f}, {r['observed_rate']:.3f}"
                                    for r in M.reliability(result.test["label"], result.test["probability"]))),
    }

    def champion(old) -> float | None:
        from lakehouse.ml.metrics import binary_metrics

        return binary_metrics(result.test["label"], old.predict(test_f)[0]).get(cfg.lead_primary_metric)

    save_and_promote(ctx, M.MODEL_NAME, result.scorer, version=version, metrics=result.metrics,
                     primary_metric=cfg.lead_primary_metric, params=params, features=list(M.TREE_FEATURES),
                     feature_kinds=M.feature_kinds(), training_data=data, card=card,
                     extra={"split": result.split, "permutation_importance": result.importance},
                     champion_score=champion)


def scores(scored: pd.DataFrame, version: str, horizon_days: int) -> pd.DataFrame:
    """The rows of ``analytics.lead_scores`` from scored snapshots (rank 1 = highest probability of the day)."""
    from models.spo.leads import reasons

    out = scored[["lead_id", "company_name", "owner", "status"]].copy()
    out["age_days"] = scored["age_days"].astype("int32")
    out["probability"] = scored["probability"].astype(float).round(6)
    out["baseline_probability"] = scored["baseline_probability"].astype(float).round(6)
    out["priority_tier"] = scored["tier"].astype(str)
    out["dt"] = scored["day"].dt.strftime("%Y-%m-%d")
    out = out.sort_values(["dt", "probability", "lead_id"], ascending=[True, False, True], kind="mergesort")
    out["priority_rank"] = out.groupby("dt").cumcount().add(1).astype("int32")
    out["reasons"] = reasons(scored.loc[out.index])
    out["horizon_days"] = horizon_days
    out["model_version"] = version
    return out[list(SCORE_COLUMNS)].reset_index(drop=True)


def score_stage(ctx: RunContext) -> None:
    """Score every open lead on each run day with the current model."""
    from models.spo import leads as M

    cfg = ctx.config
    version, scorer = current_model(ctx, M.MODEL_NAME)
    if scorer is None:
        ctx.warn(f"no promoted lead scorer yet (spo.lead_train): leads not scored on {ctx.days[0]}..{ctx.days[-1]}")
        return
    leads, acts = inputs(ctx)
    snaps = M.snapshots(leads, acts, ctx.dates, cfg.lead_max_age_days)
    out = scores(M.score(scorer, snaps), version, scorer.horizon_days) if len(snaps) else None
    if out is None:
        import pandas as pd

        out = pd.DataFrame(columns=list(SCORE_COLUMNS))
    ctx.write(SCORES, out, replace=ctx.date_partitions())

"""Churn prediction stages: weekly training (``cpi.churn_train``) and daily scoring (``cpi.churn_score``).

The modelling lives in :mod:`models.cpi` (features, split, baseline, metrics); these stages only read the
published tables, call it with the ``[cpi]`` settings, and store the results: the model in the registry
(``ml-models/churn-prediction/<version>/``), the daily scores in ``analytics.churn``.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from jobs.cpi.lifecycle import TABLE as LIFECYCLE
from jobs.cpi.profitability import CLIENT_TABLE
from lakehouse.lake import Range
from lakehouse.transforms import as_of, latest, month_of

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from jobs.cpi.settings import CpiSettings
    from lakehouse.context import RunContext

PREDICTIONS = "analytics.churn"
REMOVALS = "processed.agent_removals"
SOFTWARE = "processed.software_inventory"
READS = (CLIENT_TABLE, LIFECYCLE, REMOVALS, SOFTWARE)


def load_inputs(ctx: RunContext, day: date) -> dict[str, pd.DataFrame]:
    """The published tables the snapshots are built from, as known on ``day``."""
    import re

    import pandas as pd

    from models.cpi.features import MONTHLY_COLUMNS

    cfg: CpiSettings = ctx.config
    monthly = ctx.read_pandas(CLIENT_TABLE, {"month": Range(None, month_of(day))})[MONTHLY_COLUMNS]
    lifecycle = ctx.read_pandas(LIFECYCLE)
    removals = latest(ctx.table(REMOVALS, as_of(day)), ["removal_id"], order=("removed_at",))
    removals = ctx.engine.to_arrow(removals.select("client_id", "removed_at", "removed_by", "reason")).to_pandas()
    pattern = "|".join(re.escape(t.lower()) for t in cfg.remote_access_tools) or "^$"
    sw = ctx.table(SOFTWARE, as_of(day))
    sw = sw.filter(sw.software_name.lower().re_search(pattern))
    installs = sw.group_by(["install_id", "client_id"]).aggregate(first_seen=sw.first_seen.min())
    installs = ctx.engine.to_arrow(installs.select("client_id", "first_seen")).to_pandas()
    return {"monthly": monthly, "lifecycle": lifecycle, "removals": removals,
            "installs": installs if len(installs) else pd.DataFrame(columns=["client_id", "first_seen"])}


def snapshots(inputs: dict[str, pd.DataFrame], days, cfg: CpiSettings, day: date) -> pd.DataFrame:
    from models.cpi.features import build_snapshots

    return build_snapshots(inputs["monthly"], inputs["lifecycle"], inputs["removals"], inputs["installs"], days,
                           cfg, day)


def training_days(inputs: dict[str, pd.DataFrame], day: date) -> list[date]:
    """Month ends from the first profitability month to ``day``."""
    from models.cpi.features import month_ends

    months = inputs["monthly"]["month"]
    return month_ends(months.min(), day) if len(months) else []


def train_stage(ctx: RunContext) -> None:
    """Train the churn model on monthly snapshots (time split, rules baseline); promote it if it beats
    the current version."""
    from lakehouse.ml.metrics import binary_metrics
    from lakehouse.model_registry import ModelRegistry, make_version
    from models.cpi.features import FEATURES, NUMERIC
    from models.cpi.train import BASELINE_NAME, MODEL_NAME, NotEnoughData, train

    cfg: CpiSettings = ctx.config
    day = ctx.end
    inputs = load_inputs(ctx, day)
    snaps = snapshots(inputs, training_days(inputs, day), cfg, day)
    try:
        result = train(snaps, cfg.churn_params())
    except NotEnoughData as exc:
        ctx.warn(f"churn model not trained: {exc}")
        return
    registry = ModelRegistry(ctx.lake, MODEL_NAME)
    params = {"model": result.artifact.model.params, "calibration": result.artifact.model.calibration,
              "horizon_days": cfg.churn_horizon_days, "churn_event": cfg.churn_event,
              "test_share": cfg.churn_test_share, "random_state": cfg.churn_random_state, "as_of": day.isoformat()}
    data = snaps[snaps["label_complete"]].assign(split=None)
    data.loc[data.index.isin(result.train.index), "split"] = "train"
    data.loc[data.index.isin(result.test.index), "split"] = "test"
    version = make_version(day, data, params, FEATURES)
    card = {
        "intended_use": (f"P(a client ends its agreement within {cfg.churn_horizon_days} days), scored daily for "
                         "account-manager outreach and QBRs (DOMAIN.md section 1). Not a verdict: combine with "
                         "the signals shown beside each score."),
        "data": "\n".join(f"- {k}: {v}" for k, v in result.split.items()),
        "baseline": f"{BASELINE_NAME}; count of rules broken → churn rate of that count in the training rows.",
        "limitations": ("Few churners per month: metrics on the test months are noisy. Trained on one MSP's history; "
                        "signals (RMM canaries, payment drift) depend on those exports being complete."),
    }
    top = dict(list(result.importance.items())[:10])
    card["importance"] = "Drop in test ROC-AUC when a feature is shuffled (top 10):\n\n" + "\n".join(
        f"- `{k}`: {v:.4f}" for k, v in top.items())
    registry.save(result.artifact, version=version, metrics=result.metrics, primary_metric=cfg.churn_primary_metric,
                  params=params, features=FEATURES,
                  feature_kinds={f: ("numeric" if f in NUMERIC else "categorical") for f in FEATURES},
                  training_data=data, card=card, extra={"split": result.split, "permutation_importance": top})
    champion = None
    current = registry.current()
    if current is not None and current.version != version:
        try:
            old = registry.load(current.version)
            champion = binary_metrics(result.test["label"], old.model.predict_proba(result.test)).get(
                cfg.churn_primary_metric)
        except Exception as exc:  # an unreadable old model must not block a new one
            ctx.warn(f"could not re-score churn model {current.version}: {exc}")
    decision = registry.promote_if_better(version, champion_score=champion)
    note = (f"churn model {version}: {cfg.churn_primary_metric} {result.metrics.get(cfg.churn_primary_metric)} "
            f"(baseline {result.metrics['baseline'].get(cfg.churn_primary_metric)}); "
            f"{'promoted' if decision.promoted else 'kept ' + str(decision.champion_version)}: {decision.reason}")
    ctx.count("ml-models.churn-prediction").notes.append(note)


def predictions(scored: pd.DataFrame, cfg: CpiSettings, version: str) -> pd.DataFrame:
    """The rows of ``analytics.churn`` from scored snapshots."""
    import numpy as np

    from models.cpi.features import RULES, signals

    out = scored[["client_id", "snapshot_date", "month"]].copy()
    p = scored["probability"].astype(float).round(6)
    out["churn_probability"] = p
    out["risk_band"] = np.where(p >= cfg.churn_risk_threshold, "high",
                                np.where(p >= cfg.churn_watch_threshold, "watch", "low"))
    out["at_risk"] = p >= cfg.churn_risk_threshold
    out["baseline_probability"] = scored["baseline_probability"].astype(float).round(6)
    hits = scored[RULES].astype(bool)
    out["rules_hit"] = hits.sum(axis=1).astype("int32")
    names = [r[len("rule_"):] for r in RULES]
    out["rules"] = [", ".join(n for n, hit in zip(names, row, strict=True) if hit) or None
                    for row in hits.to_numpy()]
    out["signals"] = ["; ".join(signals(row, cfg)) or None for row in scored.to_dict("records")]
    out["model_version"] = version
    out["horizon_days"] = cfg.churn_horizon_days
    out["dt"] = out.pop("snapshot_date").dt.strftime("%Y-%m-%d")
    return out.sort_values(["dt", "client_id"]).reset_index(drop=True)


def score_stage(ctx: RunContext) -> None:
    """Score every active client's churn risk on each run day with the current churn model."""
    from lakehouse.model_registry import ModelRegistry
    from models.cpi.train import MODEL_NAME, score_frame

    cfg: CpiSettings = ctx.config
    registry = ModelRegistry(ctx.lake, MODEL_NAME)
    current = registry.current()
    if current is None:
        ctx.warn("no promoted churn model yet (cpi.churn_train): churn not scored")
        return
    artifact = registry.load(current.version)
    inputs = load_inputs(ctx, ctx.end)
    snaps = snapshots(inputs, ctx.dates, cfg, ctx.end)
    out = predictions(score_frame(artifact, snaps), cfg, current.version)
    ctx.write(PREDICTIONS, out, replace=ctx.date_partitions())

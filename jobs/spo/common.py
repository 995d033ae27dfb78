"""Reading what a stage needs as of its run days, and storing models: the I/O the SPO stages share."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from lakehouse.transforms import as_of

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from lakehouse.context import RunContext

#: Columns of the CRM tables the SPO models read (lineage columns order the versions).
VERSION = ("dt", "_source_file", "_row_number")
LEAD_COLUMNS = ("lead_id", "company_name", "industry", "employees", "endpoints", "locations", "compliance_needs",
                "current_it_model", "lead_source", "referred_by_client_id", "owner", "status", "email_opens",
                "email_clicks", "web_visits", "form_submissions", "calls", "meetings", "assessment_done",
                "last_engagement_at", "created_at", "converted_at", "updated_at", *VERSION)
ACTIVITY_COLUMNS = ("activity_id", "activity_type", "direction", "lead_id", "opportunity_id", "owner", "occurred_at",
                    "outcome", "opened", "clicked", "dt")
OPPORTUNITY_COLUMNS = ("opportunity_id", "lead_id", "opportunity_name", "opportunity_type", "stage", "confidence",
                       "mrr", "one_time_value", "expected_close_date", "owner", "created_at", "last_activity_at",
                       "closed_at", "loss_reason", "updated_at", *VERSION)


def read(ctx: RunContext, dataset: str, day: date, columns: Sequence[str] | None = None,
         since: date | None = None, where=None) -> pd.DataFrame:
    """The rows of ``dataset`` exported on or before ``day`` (and on or after ``since``) as pandas, with
    only ``columns``; ``where`` filters the table expression before anything is read."""
    t = ctx.table(dataset, as_of(day, since))
    if where is not None:
        t = t.filter(where(t))
    if columns:
        t = t.select(*[c for c in columns if c in t.columns])
    return ctx.engine.to_pandas(t)


def first_export_day(frame: pd.DataFrame) -> date | None:
    """The earliest export day (``dt``) of some rows."""
    if frame.empty:
        return None
    return date.fromisoformat(str(frame["dt"].min()))


def save_and_promote(ctx: RunContext, model_name: str, artifact: Any, *, version: str, metrics: dict,
                     primary_metric: str, params: dict, features: list[str], feature_kinds: dict[str, str],
                     training_data, card: dict, extra: dict, champion_score) -> str:
    """Store a trained version and promote it only if it beats the current one (``champion_score(old)``
    re-scores the current version on the new version's test rows); returns a note for the run summary."""
    from lakehouse.model_registry import ModelRegistry

    registry = ModelRegistry(ctx.lake, model_name)
    registry.save(artifact, version=version, metrics=metrics, primary_metric=primary_metric, params=params,
                  features=features, feature_kinds=feature_kinds, training_data=training_data, card=card,
                  extra=extra)
    champion = None
    current = registry.current()
    if current is not None and current.version != version:
        try:
            champion = champion_score(registry.load(current.version))
        except Exception as exc:  # an unreadable old model must not block a new one
            ctx.warn(f"could not re-score {model_name} {current.version}: {exc}")
    decision = registry.promote_if_better(version, champion_score=champion)
    note = (f"{model_name} {version}: {primary_metric} {metrics.get(primary_metric)} (baseline "
            f"{(metrics.get('baseline') or {}).get(primary_metric)}); "
            f"{'promoted' if decision.promoted else 'kept ' + str(decision.champion_version)}: {decision.reason}")
    ctx.count(f"ml-models.{model_name}").notes.append(note)
    return note


def current_model(ctx: RunContext, model_name: str):
    """(version, artifact) of the promoted version, or (None, None)."""
    from lakehouse.model_registry import ModelRegistry

    registry = ModelRegistry(ctx.lake, model_name)
    current = registry.current()
    if current is None:
        return None, None
    return current.version, registry.load(current.version)

"""The CPI agent's settings: types, allowed ranges and the rules that tie them together.

The values live in ``jobs/cpi/settings.toml`` (the one place: this model has no defaults of its own) and
can be overridden in ``msp.toml`` (``[cpi]``) or with ``MSP_CPI__<KEY>``; a misspelt key or a value out of
range stops the run with a message naming the key and where it was set. Every number a CPI stage compares
against comes from here, so a user can trace any flag to its setting.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from lakehouse.config import Section

Share = Annotated[float, Field(ge=0, le=1)]
Points = Annotated[float, Field(ge=0, le=100)]


class CpiSettings(Section):
    tier_bounds: Annotated[tuple[float, ...], Field(min_length=1, max_length=8)]
    tier_names: Annotated[tuple[str, ...], Field(min_length=2, max_length=9)]
    problem_months: Annotated[int, Field(ge=1, le=24)]
    margin_drop_pp: Annotated[float, Field(gt=0, le=100)]
    tier_hysteresis_pp: Points
    # margin-trouble episodes (jobs/cpi/margin_monitor.py): when an open one worsens, when it closes
    episode_worsen_pp: Annotated[float, Field(gt=0, le=100)]
    episode_close_months: Annotated[int, Field(ge=1, le=24)]
    episode_close_hysteresis_pp: Points
    min_billed_for_margin: Annotated[float, Field(ge=0)]
    month_close_days: Annotated[int, Field(ge=0, le=60)]
    deduction_basis: Literal["none", "cost", "retail"]
    ehr_target: Annotated[float, Field(gt=0)]
    target_margin_pct: Annotated[float, Field(gt=0, lt=100)]
    rhem_target: Annotated[float, Field(gt=0)]
    reactive_work_types: tuple[str, ...]
    days_late_grace: Annotated[int, Field(ge=0, le=365)]
    ticket_surge_pct: Annotated[float, Field(gt=0)]
    driver_min_change_pct: Annotated[float, Field(ge=0)]
    csat_drop_points: Annotated[float, Field(gt=0, le=4)]
    remote_access_tools: tuple[str, ...]
    churn_horizon_days: Annotated[int, Field(ge=1, le=730)]
    churn_event: Literal["notice", "end"]
    churn_risk_threshold: Share
    churn_watch_threshold: Share
    churn_test_share: Annotated[float, Field(gt=0, lt=1)]
    churn_min_train_positives: Annotated[int, Field(ge=1)]
    churn_primary_metric: Literal["pr_auc", "roc_auc", "lift_top_decile", "brier"]
    churn_model_params: dict[str, float | int]
    churn_calibration: Literal["sigmoid", "isotonic"]
    churn_random_state: int
    insights_provider: Literal["template", "bedrock"]
    bedrock_model_id: Annotated[str, Field(min_length=1)]
    bedrock_max_tokens: Annotated[int, Field(ge=1, le=4096)]
    # consensus (lakehouse/consensus.py, jobs/cpi/votes.py): churn risk vetoes a price increase or rescope
    churn_veto_mode: Literal["enforce", "warn", "dry_run"]
    churn_veto_tension_utilization_pct: Annotated[float, Field(ge=0, le=200)]
    churn_veto_tension_discount: Annotated[float, Field(ge=0, le=1)]

    @model_validator(mode="after")
    def _consistent(self) -> CpiSettings:
        bounds = list(self.tier_bounds)
        if bounds != sorted(bounds, reverse=True) or len(set(bounds)) != len(bounds):
            raise ValueError(f"tier_bounds must be strictly decreasing, got {bounds}")
        if len(self.tier_names) != len(bounds) + 1:
            raise ValueError(f"tier_names needs {len(bounds) + 1} names for {len(bounds)} bounds, "
                             f"got {list(self.tier_names)}")
        if self.churn_watch_threshold > self.churn_risk_threshold:
            raise ValueError("churn_watch_threshold must not be above churn_risk_threshold")
        return self

    @property
    def lowest_bound(self) -> float:
        """The margin (%) under which a month counts towards the problem-client rule."""
        return self.tier_bounds[-1]

    def tier(self, margin_pct: float | None) -> str | None:
        """The tier of a margin (None when there is no margin)."""
        if margin_pct is None:
            return None
        for bound, name in zip(self.tier_bounds, self.tier_names, strict=False):
            if margin_pct >= bound:
                return name
        return self.tier_names[-1]

    def tier_rank(self, name: str | None) -> int | None:
        """0 for the best tier, higher is worse."""
        return None if name is None else self.tier_names.index(name)

    def churn_params(self) -> dict[str, Any]:
        """What the churn model (``models.cpi``) needs, by the names it uses."""
        return {"horizon_days": self.churn_horizon_days, "event": self.churn_event,
                "test_share": self.churn_test_share, "min_train_positives": self.churn_min_train_positives,
                "model_params": dict(self.churn_model_params), "calibration": self.churn_calibration,
                "random_state": self.churn_random_state}

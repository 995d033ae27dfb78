"""The CPI agent's thresholds, read once from the ``[cpi]`` settings section and checked.

Every number a CPI stage compares against comes from here (defaults in ``lakehouse/defaults.toml``,
overridable in ``msp.toml`` or ``MSP_CPI__<KEY>``), so a user can trace any flag to its setting.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from lakehouse.config import ConfigError, Settings

DEDUCTION_BASES = ("none", "cost", "retail")
CHURN_EVENTS = ("notice", "end")
INSIGHT_PROVIDERS = ("template", "bedrock")


@dataclass(frozen=True)
class CpiConfig:
    """The ``[cpi]`` settings (values and meanings in ``lakehouse/defaults.toml``, the one place they live)."""

    tier_bounds: tuple[float, ...]
    tier_names: tuple[str, ...]
    problem_months: int
    margin_drop_pp: float
    tier_hysteresis_pp: float
    min_billed_for_margin: float
    month_close_days: int
    deduction_basis: str
    ehr_target: float
    target_margin_pct: float
    rhem_target: float
    reactive_work_types: tuple[str, ...]
    days_late_grace: int
    ticket_surge_pct: float
    driver_min_change_pct: float
    csat_drop_points: float
    remote_access_tools: tuple[str, ...]
    churn_horizon_days: int
    churn_event: str
    churn_risk_threshold: float
    churn_watch_threshold: float
    churn_test_share: float
    churn_min_train_positives: int
    churn_primary_metric: str
    churn_model_params: dict[str, Any]
    churn_calibration: str
    churn_random_state: int
    insights_provider: str
    bedrock_model_id: str
    bedrock_max_tokens: int

    @classmethod
    def from_settings(cls, settings: Settings) -> CpiConfig:
        section = settings.section("cpi")
        known = {f.name for f in fields(cls)}
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in section.items() if k in known}
        cfg = cls(**kwargs)
        cfg.check()
        return cfg

    def check(self) -> None:
        """Refuse contradictory thresholds with a message naming the setting."""
        bounds = list(self.tier_bounds)
        if bounds != sorted(bounds, reverse=True) or len(set(bounds)) != len(bounds):
            raise ConfigError(f"cpi.tier_bounds must be strictly decreasing, got {bounds}")
        if len(self.tier_names) != len(bounds) + 1:
            raise ConfigError(f"cpi.tier_names needs {len(bounds) + 1} names for {len(bounds)} bounds, "
                              f"got {list(self.tier_names)}")
        if self.deduction_basis not in DEDUCTION_BASES:
            raise ConfigError(f"cpi.deduction_basis must be one of {DEDUCTION_BASES}, got {self.deduction_basis!r}")
        if self.churn_event not in CHURN_EVENTS:
            raise ConfigError(f"cpi.churn_event must be one of {CHURN_EVENTS}, got {self.churn_event!r}")
        if self.insights_provider not in INSIGHT_PROVIDERS:
            raise ConfigError(f"cpi.insights_provider must be one of {INSIGHT_PROVIDERS}, "
                              f"got {self.insights_provider!r}")
        if self.problem_months < 1:
            raise ConfigError("cpi.problem_months must be at least 1")
        if not 0 < self.churn_test_share < 1:
            raise ConfigError("cpi.churn_test_share must be between 0 and 1")
        if not 0 <= self.churn_watch_threshold <= self.churn_risk_threshold <= 1:
            raise ConfigError("cpi.churn_watch_threshold must be between 0 and cpi.churn_risk_threshold (<= 1)")
        if self.churn_horizon_days < 1:
            raise ConfigError("cpi.churn_horizon_days must be at least 1")

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

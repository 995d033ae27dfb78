"""The CPI agent's thresholds, read once from the ``[cpi]`` settings section and checked.

Every number a CPI stage compares against comes from here (defaults in ``lakehouse/defaults.toml``,
overridable in ``msp.toml`` or ``MSP_CPI__<KEY>``), so a user can trace any flag to its setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from lakehouse.config import ConfigError, Settings

DEDUCTION_BASES = ("none", "cost", "retail")
CHURN_EVENTS = ("notice", "end")
INSIGHT_PROVIDERS = ("template", "bedrock")


@dataclass(frozen=True)
class CpiConfig:
    tier_bounds: tuple[float, ...] = (60.0, 40.0, 20.0)
    tier_names: tuple[str, ...] = ("gold", "silver", "bronze", "at_risk")
    problem_months: int = 2
    margin_drop_pp: float = 15.0
    tier_hysteresis_pp: float = 2.0
    min_billed_for_margin: float = 1.0
    month_close_days: int = 5
    deduction_basis: str = "cost"
    ehr_target: float = 100.0
    target_margin_pct: float = 50.0
    rhem_target: float = 0.25
    reactive_work_types: tuple[str, ...] = ("reactive", "onsite")
    days_late_grace: int = 15
    ticket_surge_pct: float = 40.0
    driver_min_change_pct: float = 10.0
    csat_drop_points: float = 0.5
    remote_access_tools: tuple[str, ...] = ("anydesk", "teamviewer", "screenconnect", "splashtop", "logmein")
    churn_horizon_days: int = 90
    churn_event: str = "notice"
    churn_risk_threshold: float = 0.5
    churn_watch_threshold: float = 0.2
    churn_test_share: float = 0.34
    churn_min_train_positives: int = 3
    churn_primary_metric: str = "pr_auc"
    churn_model_params: dict[str, Any] = field(default_factory=dict)
    churn_calibration: str = "sigmoid"
    churn_random_state: int = 7
    insights_provider: str = "template"
    bedrock_model_id: str = ""
    bedrock_max_tokens: int = 300

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

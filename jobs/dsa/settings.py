"""The DSA agent's settings: types, allowed ranges and the rules that tie them together.

The values live in ``jobs/dsa/settings.toml`` (the one place: this model has no defaults of its own) and can
be overridden in ``msp.toml`` (``[dsa]``) or with ``MSP_DSA__<KEY>``. Every threshold a DSA stage compares
against comes from here, so a user can trace any flag or alert to its setting.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lakehouse.config import Section

Pct = Annotated[float, Field(ge=0, le=1000)]
Days = Annotated[int, Field(ge=1, le=3660)]
SOURCES = ("expenses", "cloud", "licences")


class Benefit(BaseModel):
    """A spend line with a stated benefit (ROI and payback): the vendor (or cloud service) it is bought from
    and the monthly benefit the MSP expects of it (USD: hours saved x cost rate, revenue it enables...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    line: Annotated[str, Field(min_length=1)]
    match: Literal["vendor", "service"]
    monthly_benefit: Annotated[float, Field(gt=0)]
    rationale: str


class DsaSettings(Section):
    # ---- the cost table ----
    licence_department: Annotated[str, Field(min_length=1)]
    untagged_department: Annotated[str, Field(min_length=1)]
    # ---- budget vs actual ----
    budget_sources: tuple[Literal["expenses", "cloud", "licences"], ...]
    budget_alert_pct: Annotated[tuple[float, ...], Field(min_length=1)]
    budget_forecast_days: Annotated[int, Field(ge=7, le=120)]
    # ---- ROI ----
    roi_months: Annotated[int, Field(ge=1, le=60)]
    benefits: tuple[Benefit, ...]
    # ---- anomaly monitors ----
    monitor_sources: Annotated[tuple[Literal["expenses", "cloud", "licences"], ...], Field(min_length=1)]
    monitor_dimensions: Annotated[tuple[Literal["department", "vendor", "service", "account", "resource", "tag"], ...],
                                  Field(min_length=1)]
    monitor_tag_keys: tuple[str, ...]
    new_service_dimensions: tuple[Literal["vendor", "service", "resource"], ...]
    anomaly_method: Literal["model", "baseline", "statsforecast"]
    # the detector (models/dsa/detect.py)
    level: Annotated[float, Field(gt=50, lt=100)]
    min_history_days: Days
    fit_days: Annotated[int, Field(ge=28, le=3660)]
    loc_days: Annotated[int, Field(ge=7, le=3660)]
    min_spend_days: Annotated[int, Field(ge=3, le=3660)]
    min_log_scale: Annotated[float, Field(gt=0, le=5)]
    baseline_weeks: Annotated[int, Field(ge=2, le=52)]
    baseline_scale_days: Annotated[int, Field(ge=14, le=730)]
    baseline_z: Annotated[float, Field(gt=0)]
    window_days: tuple[Annotated[int, Field(ge=2, le=366)], ...]
    window_z: Annotated[float, Field(gt=0)]
    frequency_h: Annotated[float, Field(ge=0)]
    frequency_ratio: Annotated[float, Field(gt=1, le=10)]
    frequency_window_days: Annotated[int, Field(ge=14, le=730)]
    # episodes and alerts (models/dsa/episodes.py)
    close_after_days: Annotated[int, Field(ge=1, le=60)]
    close_after_shift_days: Annotated[int, Field(ge=1, le=180)]
    min_impact: Annotated[float, Field(ge=0)]
    min_impact_pct: Pct
    concentration: Annotated[float, Field(gt=0, le=1)]
    new_service_quiet_days: Days
    new_service_min: Annotated[float, Field(ge=0)]
    new_service_days: Days
    spike_max_days: Annotated[int, Field(ge=1, le=30)]
    major_pct: Pct
    critical_pct: Pct
    worsen_ratio: Annotated[float, Field(gt=1)]
    # ---- budget forecast ----
    forecast_horizon_months: Annotated[int, Field(ge=3, le=12)]
    forecast_levels: Annotated[tuple[Annotated[int, Field(gt=0, lt=100)], ...], Field(min_length=1)]
    backtest_origins: Annotated[int, Field(ge=1, le=36)]
    backtest_horizon_months: Annotated[int, Field(ge=1, le=12)]
    forecast_target_mape_pct: Pct
    # ---- rule 3: renewal packets ----
    packet_months: Annotated[int, Field(ge=3, le=36)]
    # consensus (lakehouse/consensus.py, jobs/dsa/votes.py): a budget overrun vetoes new spend
    budget_veto_mode: Literal["enforce", "warn", "dry_run"]
    budget_veto_pct: Annotated[float, Field(ge=0, le=1000)]

    @model_validator(mode="after")
    def _consistent(self) -> DsaSettings:
        if list(self.budget_alert_pct) != sorted(set(self.budget_alert_pct)):
            raise ValueError(f"budget_alert_pct must be increasing, got {list(self.budget_alert_pct)}")
        if self.major_pct > self.critical_pct:
            raise ValueError("major_pct must not be above critical_pct")
        if self.loc_days > self.fit_days:
            raise ValueError("loc_days must not be above fit_days")
        if "tag" in self.monitor_dimensions and not self.monitor_tag_keys:
            raise ValueError("monitor_dimensions has tag: name the tag keys in monitor_tag_keys")
        return self

    # ---- what the models need, by the names they use ----
    def detector(self, method: str | None = None):
        from models.dsa.detect import params

        return params(method or self.anomaly_method, level=self.level, min_history=self.min_history_days,
                      fit_days=self.fit_days, loc_days=self.loc_days, min_spend_days=self.min_spend_days,
                      min_log_scale=self.min_log_scale, weeks=self.baseline_weeks,
                      scale_days=self.baseline_scale_days, z=self.baseline_z, windows=tuple(self.window_days),
                      window_z=self.window_z, count_h=self.frequency_h, count_ratio=self.frequency_ratio,
                      count_window=self.frequency_window_days)

    def episodes(self):
        from models.dsa.episodes import EpisodeParams

        return EpisodeParams(close_after=self.close_after_days, close_after_shift=self.close_after_shift_days,
                             min_impact=self.min_impact,
                             min_impact_pct=self.min_impact_pct, new_service_quiet_days=self.new_service_quiet_days,
                             new_service_min=self.new_service_min, new_service_days=self.new_service_days,
                             spike_max_days=self.spike_max_days, major_pct=self.major_pct,
                             critical_pct=self.critical_pct)

    def monitors(self):
        from models.dsa.monitor import MonitorSpec

        return MonitorSpec(dimensions=tuple(self.monitor_dimensions), tag_keys=tuple(self.monitor_tag_keys),
                           new_service_dimensions=tuple(self.new_service_dimensions),
                           concentration=self.concentration, sources=tuple(self.monitor_sources))

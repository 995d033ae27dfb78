"""The RAM agent's settings: types, allowed ranges and the rules that tie them together.

The values live in ``jobs/ram/settings.toml`` (the one place: this model has no defaults of its own) and can
be overridden in ``msp.toml`` (``[ram]``) or with ``MSP_RAM__<KEY>``. Every threshold a RAM stage compares
against, every weight of the assignment's cost and every solver limit comes from here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from lakehouse.config import Section

Pct = Annotated[float, Field(ge=0, le=1000)]
Weight = Annotated[float, Field(ge=0)]
Hour = Annotated[int, Field(ge=0, le=24)]
Role = Annotated[str, Field(pattern=r"^(L1|L2|L3|field)$")]


class RamSettings(Section):
    # ---- utilization monitor ------------------------------------------------------------------------
    workdays: Annotated[tuple[int, ...], Field(min_length=1, max_length=7)]
    under_utilization_pct: Pct
    over_utilization_pct: Pct
    streak_weeks: Annotated[int, Field(ge=1, le=52)]
    min_week_available_hours: Annotated[float, Field(ge=0, le=80)]
    worsen_pp: Annotated[float, Field(gt=0, le=100)]
    senior_roles: Annotated[tuple[Role, ...], Field(min_length=1)]
    l1_max_level: Annotated[int, Field(ge=1, le=5)]
    senior_l1_share_pct: Annotated[float, Field(gt=0, le=100)]
    senior_l1_min_hours: Annotated[float, Field(ge=0)]
    late_days: Annotated[int, Field(ge=0, le=60)]
    # ---- technician assignment ----------------------------------------------------------------------
    workday_start_utc_hour: Hour
    sla_gates_pct: Annotated[tuple[float, float, float, float], Field()]
    gate_weights: Annotated[tuple[float, float, float, float], Field()]
    skill_gap_weight: Weight
    travel_weight_per_km: Weight
    imbalance_weight: Weight
    unassigned_weight: Annotated[float, Field(gt=0)]
    estimate_days: Annotated[int, Field(ge=7, le=730)]
    min_estimate_samples: Annotated[int, Field(ge=1)]
    estimate_statistic: Literal["mean", "median"]
    default_ticket_hours: Annotated[float, Field(gt=0, le=24)]
    backlog_days: Annotated[int, Field(ge=1, le=90)]
    capacity_recent_days: Annotated[int, Field(ge=0, le=180)]
    max_plan_days: Annotated[int, Field(ge=1, le=62)]
    assign_window_minutes: Annotated[int, Field(ge=5, le=1440)]
    assign_candidates: Annotated[int, Field(ge=1, le=100)]
    assign_time_limit_s: Annotated[float, Field(gt=0, le=600)]
    assign_deterministic_limit: Annotated[float, Field(gt=0, le=600)]
    assign_workers: Annotated[int, Field(ge=1, le=64)]
    assign_seed: int
    # ---- routes -------------------------------------------------------------------------------------
    road_factor: Annotated[float, Field(ge=1, le=3)]
    speed_kmh: Annotated[float, Field(gt=0, le=200)]
    site_open_utc_hour: Hour
    site_close_utc_hour: Hour
    route_time_limit_s: Annotated[float, Field(gt=0, le=600)]
    route_iterations: Annotated[int, Field(ge=1)]
    route_seed: int
    vroom_exploration: Annotated[int, Field(ge=1, le=5)]
    # ---- rule 1: client margin drop -> RAM ----------------------------------------------------------
    react_reasons: Annotated[tuple[str, ...], Field(min_length=1)]
    target_margin_pct: Annotated[float, Field(gt=0, lt=100)]
    repeat_category_min: Annotated[int, Field(ge=1)]
    repeat_lookback_months: Annotated[int, Field(ge=1, le=24)]
    # consensus (lakehouse/consensus.py, jobs/ram/votes.py) and the rescope proposal of rule 1
    utilization_veto_mode: Literal["enforce", "warn", "dry_run"]
    utilization_veto_pct: Annotated[float, Field(ge=0, le=200)]
    propose_rescope: bool

    @model_validator(mode="after")
    def _consistent(self) -> RamSettings:
        if not self.under_utilization_pct < self.over_utilization_pct:
            raise ValueError("under_utilization_pct must be below over_utilization_pct")
        gates = list(self.sla_gates_pct)
        if gates != sorted(gates) or len(set(gates)) != 4 or gates[0] <= 0:
            raise ValueError(f"sla_gates_pct must be four increasing positive percentages, got {gates}")
        if any(w < 0 for w in self.gate_weights):
            raise ValueError("gate_weights must not be negative")
        if any(d < 0 or d > 6 for d in self.workdays) or len(set(self.workdays)) != len(self.workdays):
            raise ValueError("workdays are distinct weekday numbers, Monday = 0 ... Sunday = 6")
        if not self.site_open_utc_hour < self.site_close_utc_hour:
            raise ValueError("site_open_utc_hour must be before site_close_utc_hour")
        unknown = sorted(set(self.react_reasons) - {"tier_down", "margin_drop", "problem_client"})
        if unknown:
            raise ValueError(f"react_reasons: unknown CPI reason(s) {unknown}")
        return self

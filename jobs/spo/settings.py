"""The SPO agent's settings: types, allowed ranges and the rules that tie them together.

The values live in ``jobs/spo/settings.toml`` (the one place: this model has no defaults of its own) and can
be overridden in ``msp.toml`` (``[spo]``) or with ``MSP_SPO__<KEY>`` (lists and tables as JSON). Every
threshold a generator compares against, every price a proposal quotes and every model parameter comes from
here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lakehouse.config import Section

Share = Annotated[float, Field(ge=0, le=1)]
Days = Annotated[int, Field(ge=1, le=3650)]
Money = Annotated[float, Field(ge=0)]
STAGES = ("identified", "qualified", "assessment", "proposed", "verbal")
PRIORITIES = ("critical", "high", "medium", "low")
UNITS = ("user", "device", "workstation", "server", "network_device", "site", "flat")


class Service(BaseModel):
    """One service of the MSP's catalogue, with its list price (USD per unit; per month when recurring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Annotated[str, Field(min_length=1, max_length=40)]
    name: Annotated[str, Field(min_length=1)]
    category: Annotated[str, Field(min_length=1)]
    unit: Literal["user", "device", "workstation", "server", "network_device", "site", "flat"]
    billing: Literal["recurring", "one_time"]
    price: Money
    #: product codes of the PSA's agreement additions that deliver this service (whitespace, renewals)
    product_codes: tuple[str, ...] = ()
    in_scope: tuple[str, ...] = ()
    out_of_scope: tuple[str, ...] = ()


class SpoSettings(Section):
    # lead scoring
    lead_horizon_days: Days
    lead_max_age_days: Days
    lead_snapshot_every_days: Annotated[int, Field(ge=1, le=90)]
    lead_test_share: Annotated[float, Field(gt=0, lt=1)]
    lead_min_train_positives: Annotated[int, Field(ge=1)]
    lead_model_params: dict[str, float | int | bool | str]
    lead_calibration: Literal["sigmoid", "isotonic", "none"]
    lead_calibration_folds: Annotated[int, Field(ge=2, le=10)]
    lead_baseline_c: Annotated[float, Field(gt=0)]
    lead_random_state: int
    lead_primary_metric: Literal["pr_auc", "roc_auc", "lift_top_decile"]
    # pipeline forecast
    forecast_months: Annotated[int, Field(ge=1, le=12)]
    stage_base_rates: dict[str, Share]
    owner_min_closed_deals: Annotated[int, Field(ge=1)]
    forecast_band: Annotated[tuple[float, float], Field()]
    forecast_sims: Annotated[int, Field(ge=100, le=100_000)]
    forecast_seed: int
    forecast_lookback_days: Days
    forecast_origin_every_days: Annotated[int, Field(ge=1, le=31)]
    forecast_snapshot_every_days: Annotated[int, Field(ge=1, le=31)]
    forecast_win_c: Annotated[float, Field(gt=0)]
    backtest_first_origin_months: Annotated[int, Field(ge=1, le=36)]
    # opportunity generators
    stalled_days: Days
    stalled_critical_days: Days
    renewal_window_days: Days
    tm_monthly_threshold: Money
    tm_trailing_months: Annotated[int, Field(ge=1, le=36)]
    whitespace_min_adoption: Annotated[float, Field(gt=0, le=1)]
    # proposals
    msp_name: Annotated[str, Field(min_length=1)]
    catalogue: Annotated[tuple[Service, ...], Field(min_length=1)]
    managed_bundle: Annotated[tuple[str, ...], Field(min_length=1)]
    compliance_bundle: tuple[str, ...]
    onboarding_bundle: tuple[str, ...]
    general_out_of_scope: tuple[str, ...]
    sla_response_minutes: dict[str, Annotated[int, Field(ge=1)]]
    sla_resolution_minutes: dict[str, Annotated[int, Field(ge=1)]]
    term_months: Annotated[int, Field(ge=1, le=120)]
    net_terms_days: Annotated[int, Field(ge=0, le=120)]
    notice_period_days: Annotated[int, Field(ge=0, le=365)]
    proposal_valid_days: Annotated[int, Field(ge=1, le=365)]
    renewal_price_change_pct: Annotated[float, Field(ge=-50, le=50)]
    proposal_writer: Literal["template", "bedrock"]
    bedrock_model_id: Annotated[str, Field(min_length=1)]
    bedrock_max_tokens: Annotated[int, Field(ge=1, le=4096)]
    # consensus (rule 4): low-margin deals are proposals (jobs/spo/deals.py)
    propose_low_margin_deals: bool
    low_margin_deal_pct: Annotated[float, Field(ge=-100, le=100)]
    low_margin_months: Annotated[int, Field(ge=1, le=24)]

    @model_validator(mode="after")
    def _consistent(self) -> SpoSettings:
        missing = [s for s in STAGES if s not in self.stage_base_rates]
        extra = sorted(set(self.stage_base_rates) - set(STAGES))
        if missing or extra:
            raise ValueError(f"stage_base_rates needs exactly the open stages {list(STAGES)} "
                             f"(missing {missing}, unknown {extra})")
        lo, hi = self.forecast_band
        if not 0 <= lo < hi <= 1:
            raise ValueError(f"forecast_band must be two quantiles 0 <= low < high <= 1, "
                             f"got {list(self.forecast_band)}")
        if self.stalled_critical_days < self.stalled_days:
            raise ValueError("stalled_critical_days must not be below stalled_days")
        codes = [s.code for s in self.catalogue]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"catalogue codes used twice: {dupes}")
        unknown = sorted({c for c in (*self.managed_bundle, *self.compliance_bundle, *self.onboarding_bundle)
                          if c not in codes})
        if unknown:
            raise ValueError(f"bundles name services that are not in the catalogue: {unknown}")
        for name, table in (("sla_response_minutes", self.sla_response_minutes),
                            ("sla_resolution_minutes", self.sla_resolution_minutes)):
            if sorted(table) != sorted(PRIORITIES):
                raise ValueError(f"{name} needs exactly the priorities {list(PRIORITIES)}, got {sorted(table)}")
        return self

    def service(self, code: str) -> Service:
        for s in self.catalogue:
            if s.code == code:
                return s
        raise KeyError(f"no service {code!r} in spo.catalogue")

    def category_of_product(self) -> dict[str, str]:
        """PSA product code → catalogue category (whitespace compares categories, as Alga does)."""
        return {p: s.category for s in self.catalogue for p in (*s.product_codes, s.code)}

    def lead_params(self) -> dict:
        """What :func:`models.spo.leads.train` needs, by its names."""
        return {"test_share": self.lead_test_share, "horizon_days": self.lead_horizon_days,
                "min_train_positives": self.lead_min_train_positives, "params": dict(self.lead_model_params),
                "calibration": self.lead_calibration, "folds": self.lead_calibration_folds,
                "random_state": self.lead_random_state, "baseline_c": self.lead_baseline_c}

    def learned_params(self) -> dict:
        """What :mod:`models.spo.forecast`'s learned forecast needs, by its names."""
        return {"snapshot_every": self.forecast_snapshot_every_days, "c": self.forecast_win_c,
                "sims": self.forecast_sims, "band": tuple(self.forecast_band), "seed": self.forecast_seed,
                "lookback_days": self.forecast_lookback_days, "origin_every": self.forecast_origin_every_days}

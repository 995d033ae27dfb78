"""The VCM agent's settings: types and allowed ranges (values: ``jobs/vcm/settings.toml``, the one place).

Override them in ``msp.toml`` (``[vcm]``) or with ``MSP_VCM__<KEY>``. Every threshold a VCM stage compares
against comes from here, so a reminder, a review item or a score can be traced to its setting.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from lakehouse.config import Section

Share = Annotated[float, Field(ge=0, le=1)]
Score = Annotated[float, Field(ge=1, le=5)]


class VcmSettings(Section):
    msp_names: Annotated[tuple[str, ...], Field(min_length=1)]
    date_order: Literal["MDY", "DMY"]
    review_threshold: Share
    extractor: Literal["model", "rules"]
    disagreement_penalty: Share
    ocr: Literal["auto", "off"]
    ocr_language: Annotated[str, Field(pattern=r"^[a-z_+]{3,40}$")]
    ocr_dpi: Annotated[int, Field(ge=72, le=600)]
    ocr_min_confidence: Share
    text_layer_min_chars: Annotated[int, Field(ge=0, le=10_000)]
    vendor_match_min: Share
    reminder_days: Annotated[tuple[int, ...], Field(min_length=1, max_length=10)]
    expiring_soon_days: Annotated[int, Field(ge=1, le=3650)]
    train_documents: Annotated[int, Field(ge=20, le=20_000)]
    train_noise_share: Share
    train_seed: int
    train_holdout_styles: tuple[int, ...]
    scorecard_weights: dict[str, Annotated[float, Field(ge=0)]]
    invoice_tolerance_pct: Annotated[float, Field(ge=0, le=100)]
    invoice_deviation_bands: Annotated[tuple[float, ...], Field(min_length=4, max_length=4)]
    cost_change_bands: Annotated[tuple[float, ...], Field(min_length=4, max_length=4)]
    sla_met_bands: Annotated[tuple[float, ...], Field(min_length=4, max_length=4)]
    compliance_penalties: dict[str, Annotated[float, Field(ge=0, le=4)]]
    score_alert_below: Score
    search_limit: Annotated[int, Field(ge=1, le=1000)]

    @model_validator(mode="after")
    def _consistent(self) -> VcmSettings:
        days = list(self.reminder_days)
        if days != sorted(set(days), reverse=True):
            raise ValueError(f"reminder_days must be distinct and decreasing (e.g. [90, 60, 30]), got {days}")
        known = {"responsiveness", "reliability", "invoice_accuracy", "cost_trend", "compliance"}
        unknown = set(self.scorecard_weights) - known
        if unknown or not any(self.scorecard_weights.values()):
            raise ValueError(f"scorecard_weights: dimensions are {sorted(known)} with at least one weight > 0; "
                             f"got {self.scorecard_weights}")
        for name in ("invoice_deviation_bands", "cost_change_bands"):
            b = list(getattr(self, name))
            if b != sorted(b):
                raise ValueError(f"{name} must be increasing (the 5, 4, 3, 2 upper bounds), got {b}")
        b = list(self.sla_met_bands)
        if b != sorted(b, reverse=True):
            raise ValueError(f"sla_met_bands must be decreasing (the 5, 4, 3, 2 lower bounds), got {b}")
        return self

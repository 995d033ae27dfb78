"""The SLI agent's settings: types and allowed ranges (the values live in ``jobs/sli/settings.toml``).

Override them in ``msp.toml`` (``[sli]``) or with ``MSP_SLI__<KEY>``. Every threshold an SLI stage compares
against comes from here, so each finding can be traced to its setting (DOMAIN.md section 4; docs/sli.md).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from lakehouse.config import Section

Days = Annotated[int, Field(ge=1, le=3650)]


class SliSettings(Section):
    idle_days: Annotated[int, Field(ge=7, le=730)]
    reclaim_retention_days: Annotated[int, Field(ge=0, le=365)]
    spare_seats_pct: Annotated[float, Field(ge=0, le=100)]
    billing_drift_min_seats: Annotated[int, Field(ge=1, le=10_000)]
    install_events_need_entitlement: bool
    renewal_window_hours: Annotated[int, Field(ge=1, le=24 * 60)]
    renewal_alert_days: Days
    renewal_alert_min_term_months: Annotated[int, Field(ge=1, le=60)]
    monthly_term_premium_pct: Annotated[float, Field(ge=0, le=200)]
    lead_recheck_days: Days
    catalogue: Annotated[str, Field(min_length=1)]
    # consensus (lakehouse/consensus.py, jobs/sli/votes.py): a compliance shortfall vetoes cancelling seats
    compliance_veto_mode: Literal["enforce", "warn", "dry_run"]
    compliance_veto_seats: Annotated[int, Field(ge=1, le=100_000)]

    @model_validator(mode="after")
    def _consistent(self) -> SliSettings:
        if self.renewal_window_hours % 24:
            raise ValueError(f"renewal_window_hours must be whole days (a multiple of 24), got "
                             f"{self.renewal_window_hours}")
        return self

    @property
    def window_days(self) -> int:
        """The renewal / purchase window in whole days (168 h = 7 days)."""
        return self.renewal_window_hours // 24

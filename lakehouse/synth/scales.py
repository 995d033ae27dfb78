"""The three sizes of synthetic MSP, and the window of export days a run may ask for.

Every scale has a fixed first export day, so nothing depends on today's date, and a fixed horizon: the
planted world (clients, churners, leads, anomalies...) is laid out once over the whole horizon, which is
what makes any export day reproducible whatever window of days a run writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


class HorizonError(ValueError):
    """The requested export days fall outside what the scale simulates."""


@dataclass(frozen=True)
class Scale:
    name: str
    clients: int  #: clients under contract on the first export day (more are won from the CRM later)
    technicians: int
    start: date  #: first export day
    days: int  #: default window: export days written when no window is asked for
    horizon_days: int  #: maximum number of export days from ``start`` (the simulated world ends there)
    sales_reps: int
    leads_per_month: float
    vendors: int
    contracts: int  #: contract documents
    cloud_hourly_resources: int  #: cloud resources billed per hour (compute)
    cloud_daily_resources: int  #: cloud resources billed per day (storage, backup, ...)
    expenses_per_business_day: float
    churners_in_window: int  #: churners whose notice falls inside the default window (at least)
    anomalies_per_kind: int  #: spend anomalies planted per kind and source inside the default window

    @property
    def end(self) -> date:
        """Last export day of the default window."""
        return self.start + timedelta(days=self.days - 1)

    @property
    def horizon_end(self) -> date:
        """Last export day the scale can generate."""
        return self.start + timedelta(days=self.horizon_days - 1)

    def window(self, start: date | None = None, days: int | None = None) -> tuple[date, date]:
        """(first, last) export day of a run; raises HorizonError with the allowed range when outside it."""
        first = start or self.start
        if days is None:
            last = self.end if start is None else min(self.end, self.horizon_end)
            if last < first:
                last = first
        else:
            if days < 1:
                raise HorizonError(f"--days must be at least 1, got {days}")
            last = first + timedelta(days=days - 1)
        if first < self.start or last > self.horizon_end:
            raise HorizonError(
                f"scale {self.name!r} simulates export days {self.start} to {self.horizon_end} "
                f"({self.horizon_days} days); the window {first} to {last} is outside it")
        return first, last


SCALES: dict[str, Scale] = {
    s.name: s
    for s in (
        Scale("tiny", clients=12, technicians=4, start=date(2024, 1, 1), days=121, horizon_days=366,
              sales_reps=2, leads_per_month=5, vendors=8, contracts=6, cloud_hourly_resources=2,
              cloud_daily_resources=8, expenses_per_business_day=3, churners_in_window=2,
              anomalies_per_kind=1),
        Scale("small", clients=150, technicians=15, start=date(2024, 1, 1), days=731, horizon_days=1096,
              sales_reps=3, leads_per_month=14, vendors=25, contracts=30, cloud_hourly_resources=5,
              cloud_daily_resources=40, expenses_per_business_day=12, churners_in_window=12,
              anomalies_per_kind=2),
        Scale("reference", clients=1000, technicians=80, start=date(2024, 1, 1), days=1096, horizon_days=1461,
              sales_reps=8, leads_per_month=70, vendors=60, contracts=120, cloud_hourly_resources=250,
              cloud_daily_resources=500, expenses_per_business_day=60, churners_in_window=60,
              anomalies_per_kind=4),
    )
}


def get_scale(name: str) -> Scale:
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"unknown scale {name!r} (choose one of {', '.join(SCALES)})") from None

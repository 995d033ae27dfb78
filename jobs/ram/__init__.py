"""RAM: the Resource Allocation & Margin agent (DOMAIN.md section 3).

Stages, in run order (the registry orders them by what they read and write)::

    ram.utilization   technicians, PTO, cost rates, time entries,  -> analytics.technician_utilization
                      tickets, CPI client_profitability_monthly

Thresholds, cost weights and solver limits come from the ``[ram]`` settings
(:class:`jobs.ram.settings.RamSettings`, defaults in ``settings.toml``).
"""

from __future__ import annotations

from jobs.ram.settings import RamSettings
from lakehouse.agents import Agent, Stage

UTILIZATION = "analytics.technician_utilization"

AGENT = Agent(
    name="ram",
    title="Resource Allocation & Margin",
    package=__name__,
    summary="technician utilization, ticket assignment, onsite routes, margin recovery plans",
    settings=RamSettings,
    defaults="settings.toml",
    stages=(
        Stage("ram.utilization", "jobs.ram.utilization:run", kind="transform",
              reads=("processed.technicians", "processed.technician_pto", "processed.technician_cost_rates",
                     "processed.time_entries", "processed.tickets", "processed.client_profitability_monthly"),
              writes=(UTILIZATION,),
              description="Utilization, realised rate, senior time on L1 work and SLA adherence per technician "
                          "and week and month."),
    ),
    emits=(),
    docs="docs/ram.md",
)

"""DSA: the Departmental Spend Analytics agent (DOMAIN.md section 5, rule 3 of section 7). Work in progress."""

from __future__ import annotations

from jobs.dsa.settings import DsaSettings
from lakehouse.agents import Agent, Stage

COSTS = "processed.spend_costs"
LEAVES = "processed.spend_leaf_daily"

AGENT = Agent(
    name="dsa",
    title="Departmental Spend Analytics",
    package=__name__,
    summary="costs in FOCUS terms, budget vs actual, spend anomalies with root cause, budget forecast, ROI",
    settings=DsaSettings,
    defaults="settings.toml",
    stages=(
        Stage("dsa.costs", "jobs.dsa.costs:run", kind="transform",
              reads=("processed.focus_costs", "processed.expenses", "processed.entitlements"),
              writes=(COSTS, LEAVES),
              description="Cloud export, PSA expenses and licences in FOCUS columns with department and client "
                          "(BilledCost reconciles with the sources); daily spend per cost line."),
    ),
    docs="docs/dsa.md",
)

"""RAM: the Resource Allocation & Margin agent (DOMAIN.md section 3, and rule 1 of section 7).

Stages, in run order (the registry orders them by what they read and write)::

    ram.utilization     technicians, PTO, cost rates, time entries,   -> analytics.technician_utilization
                        tickets, CPI client_profitability_monthly
    ram.alerts          technician_utilization                        -> events.outbox (resource.utilization.alert)
    ram.assign          technicians, PTO, tickets, time entries, sites -> analytics.ram_assignments
                        (CP-SAT optimiser, greedy baseline, what the PSA did)
    ram.routes          ram_assignments, technicians, PTO, sites       -> analytics.ram_routes (PyVRP; VROOM baseline)
    ram.on_margin_change  events.inbox (client.profitability.changed)  -> analytics.ram_margin_recommendations

``msp ram replay`` replays the history (baseline vs optimiser vs the MSP) and ``msp ram solve FILE`` runs the
route solvers on Solomon and VRPLIB benchmark files. Thresholds, cost weights and solver limits come from the
``[ram]`` settings (:class:`jobs.ram.settings.RamSettings`, defaults in ``settings.toml``).
"""

from __future__ import annotations

from jobs.ram.settings import RamSettings
from lakehouse.agents import Agent, Panel, Question, Rule, Stage, Vote

UTILIZATION = "analytics.technician_utilization"
ASSIGNMENTS = "analytics.ram_assignments"
ROUTES = "analytics.ram_routes"
RECOMMENDATIONS = "analytics.ram_margin_recommendations"
PEOPLE = ("processed.technicians", "processed.technician_pto")

AGENT = Agent(
    name="ram",
    title="Resource Allocation & Margin",
    package=__name__,
    summary="technician utilization, ticket assignment, onsite routes, margin recovery plans",
    settings=RamSettings,
    defaults="settings.toml",
    stages=(
        Stage("ram.utilization", "jobs.ram.utilization:run", kind="transform",
              reads=(*PEOPLE, "processed.technician_cost_rates", "processed.time_entries", "processed.tickets",
                     "processed.client_profitability_monthly"),
              writes=(UTILIZATION,),
              description="Utilization, realised rate, senior time on L1 work and SLA adherence per technician "
                          "and week and month."),
        Stage("ram.alerts", "jobs.ram.alerts:run", kind="transform", reads=(UTILIZATION,),
              writes=("events.outbox",),
              description="resource.utilization.alert episodes: under or over the band N weeks running, senior "
                          "technicians on L1 work (opened, worsened, closed)."),
        Stage("ram.assign", "jobs.ram.assignment:run", kind="transform",
              reads=(*PEOPLE, "processed.tickets", "processed.time_entries", "processed.sites"),
              writes=(ASSIGNMENTS,),
              description="The day's tickets to qualified technicians: CP-SAT on SLA gates, skill gap, travel and "
                          "load; the greedy baseline and the PSA's choice beside it."),
        Stage("ram.routes", "jobs.ram.routing:run", kind="transform",
              reads=(ASSIGNMENTS, *PEOPLE, "processed.sites"), writes=(ROUTES,),
              description="Routes of the day's onsite visits from the technicians' homes with time windows and "
                          "skills (PyVRP; VROOM baseline)."),
        Stage("ram.on_margin_change", "jobs.ram.margin:run", kind="handler",
              reads=("events.inbox", "processed.client_profitability_monthly", "processed.tickets",
                     "processed.time_entries", "processed.technicians", "processed.technician_cost_rates"),
              writes=(RECOMMENDATIONS, "events.outbox"),
              description="Rule 1: a client's margin fell below a tier -> target-hours budget, L1 work to move "
                          "off seniors, repeat categories to fix proactively; a rescope proposal when moving L1 "
                          "work cannot close the gap (rule 4 decides it)."),
    ),
    emits=("resource.utilization.alert", "resource.margin.recommendation", "resource.rescope.proposed"),
    rules=(Rule("client.profitability.changed", "ram.on_margin_change",
                when={"reason": ("tier_down", "problem_client", "margin_drop")}, trace_column="source_event_ids",
                description="Rule 1: margin drop -> margin recovery plan (ram.react_reasons narrows further)"),),
    proposes=("resource.rescope.proposed",),
    votes=(Vote(("low_margin_deal", "hire"), "jobs.ram.votes:utilization_veto", veto="utilization_veto",
                description="utilization above ram.utilization_veto_pct vetoes a low-margin deal"),),
    cli="jobs.ram.cli:register",
    questions=(
        Question("Technicians outside the utilization band, last complete month",
                 "SELECT technician_id, role, band, available_hours, billable_hours, utilization_pct, realised_rate, "
                 "cost_rate, l1_share_pct, sla_adherence_pct FROM analytics.technician_utilization "
                 "WHERE grain = 'month' AND period = (SELECT max(period) FROM analytics.technician_utilization "
                 "WHERE grain = 'month' AND complete) AND band <> 'in' ORDER BY utilization_pct DESC"),
        Question("Dispatch plans: optimiser against the greedy baseline, last 7 planned days",
                 "SELECT dt, count(*) AS tickets, "
                 "sum(CASE WHEN sla_gate IN ('breach', 'overdue') THEN 1 ELSE 0 END) AS planned_breaches, "
                 "sum(CASE WHEN baseline_sla_gate IN ('breach', 'overdue') THEN 1 ELSE 0 END) AS baseline_breaches, "
                 "round(sum(travel_km), 1) AS travel_km, "
                 "sum(CASE WHEN technician_id <> psa_technician_id THEN 1 ELSE 0 END) AS changed_vs_psa "
                 "FROM analytics.ram_assignments GROUP BY dt ORDER BY dt DESC LIMIT 7"),
    ),
    panels=(
        Panel("ram_utilization", "Technician utilization per month (billable share of available hours, %)",
              "SELECT period AS month, round(avg(utilization_pct), 1) AS mean_pct, round(min(utilization_pct), 1) "
              "AS min_pct, round(max(utilization_pct), 1) AS max_pct, count(*) FILTER (WHERE band <> 'in') "
              "AS outside_band FROM analytics.technician_utilization WHERE grain = 'month' GROUP BY period "
              "ORDER BY period", chart="line", x="month", y=("mean_pct", "min_pct", "max_pct"),
              description="Mean, lowest and highest technician utilization each month; outside_band counts "
                          "technicians outside the target band."),
        Panel("ram_solver_gap", "Dispatch optimiser against the greedy baseline, per planned day",
              "SELECT dt, max(objective) AS optimiser, max(baseline_objective) AS baseline, "
              "round(100 * (1 - max(objective) / nullif(max(baseline_objective), 0)), 1) AS gain_pct, "
              "count(*) AS tickets FROM analytics.ram_assignments GROUP BY dt ORDER BY dt",
              chart="bar", x="dt", y=("optimiser", "baseline"), group="agents",
              description="The assignment solver's objective (lower is better) and the greedy baseline's on the "
                          "same tickets (analytics.ram_assignments)."),
    ),
    docs="docs/ram.md",
)

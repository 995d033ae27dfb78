"""CPI: the Client Profitability Intelligence agent (DOMAIN.md section 1).

Stages, in run order (the registry orders them by what they read and write)::

    cpi.lifecycle       processed.agreements, clients        -> processed.client_lifecycle
    cpi.profitability   processed invoices, lines, additions,  -> processed.client_profitability_monthly
                        time, cost rates, tickets, payments,      processed.agreement_profitability_monthly
                        endpoints
    cpi.margin_report   profitability + lifecycle             -> analytics.client_margin_report (tiers, problem clients)
    cpi.kpis            profitability + report + lifecycle    -> analytics.cpi_kpis_monthly (MRR, ARR, GM, churn...)
    cpi.margin_monitor  report + profitability                -> events.outbox (client.profitability.changed)
    cpi.churn_train     snapshots of the tables above         -> ml-models/churn-prediction/<version>/ (weekly)
    cpi.churn_score     snapshots + the current model         -> analytics.churn (daily)
    cpi.daily_summary   time, tickets, profitability, churn   -> analytics.cpi_daily_summary
    cpi.insights        summary + report + churn              -> analytics.client_insights

Each module keeps its pure transforms apart from the stage function doing I/O; thresholds come from the
``[cpi]`` settings (:class:`jobs.cpi.settings.CpiSettings`, defaults in ``settings.toml``).
"""

from __future__ import annotations

from jobs.cpi.settings import CpiSettings
from lakehouse.agents import Agent, Model, Panel, Question, Stage, Vote

PSA = ("processed.invoices", "processed.invoice_lines", "processed.agreement_additions", "processed.time_entries",
       "processed.technician_cost_rates", "processed.tickets", "processed.payments", "processed.managed_endpoints")
CLIENT_MONTHS = "processed.client_profitability_monthly"
AGREEMENT_MONTHS = "processed.agreement_profitability_monthly"
LIFECYCLE = "processed.client_lifecycle"
REPORT = "analytics.client_margin_report"
CHURN = "analytics.churn"
CHURN_INPUTS = (CLIENT_MONTHS, LIFECYCLE, "processed.agent_removals", "processed.software_inventory")

AGENT = Agent(
    name="cpi",
    title="Client Profitability Intelligence",
    package=__name__,
    summary="margin per client and agreement, problem clients, churn risk",
    settings=CpiSettings,
    defaults="settings.toml",
    stages=(
        Stage("cpi.lifecycle", "jobs.cpi.lifecycle:run", kind="transform",
              reads=("processed.agreements", "processed.clients"), writes=(LIFECYCLE,),
              description="Client service start, notice and end dates from agreements (who is active, who is "
                          "leaving)."),
        Stage("cpi.profitability", "jobs.cpi.profitability:run", kind="transform", reads=PSA,
              writes=(CLIENT_MONTHS, AGREEMENT_MONTHS),
              description="Profit, margin, EHR, RHEM, MRR, days late and CSAT per client and agreement for the "
                          "months the run's export days touch."),
        Stage("cpi.margin_report", "jobs.cpi.margin_report:run", kind="transform", reads=(CLIENT_MONTHS, LIFECYCLE),
              writes=(REPORT,),
              description="Margin tiers, problem clients (N months under the lowest tier), flags and suggested "
                          "actions."),
        Stage("cpi.kpis", "jobs.cpi.kpis:run", kind="transform", reads=(CLIENT_MONTHS, REPORT, LIFECYCLE),
              writes=("analytics.cpi_kpis_monthly",),
              description="MSP KPIs per month: MRR, ARR, gross margin, logo churn, average EHR, RHEM, tier counts."),
        Stage("cpi.margin_monitor", "jobs.cpi.margin_monitor:run", kind="transform", reads=(REPORT, CLIENT_MONTHS),
              writes=("events.outbox",),
              description="client.profitability.changed once per margin-trouble episode of a client (opened by a "
                          "tier drop, a margin drop or a problem client; updated when it worsens; closed on "
                          "recovery), judged on the months closing on the run's days."),
        Stage("cpi.churn_train", "jobs.cpi.churn:train_stage", kind="train", reads=CHURN_INPUTS,
              description="Train the churn model on monthly snapshots (time split, rules baseline); promote it if "
                          "it beats the current version."),
        Stage("cpi.churn_score", "jobs.cpi.churn:score_stage", kind="score", reads=CHURN_INPUTS, writes=(CHURN,),
              after=("cpi.churn_train",),
              description="Score every active client's churn risk on each run day with the current churn model."),
        Stage("cpi.daily_summary", "jobs.cpi.daily_summary:run", kind="transform",
              reads=("processed.time_entries", "processed.technician_cost_rates", "processed.tickets",
                     CLIENT_MONTHS, CHURN),
              writes=("analytics.cpi_daily_summary",),
              description="Month-to-date hours, cost and tickets per client, projected margin and EHR, "
                          "over-utilizers."),
        Stage("cpi.insights", "jobs.cpi.insights:run", kind="transform", reads=(REPORT, CLIENT_MONTHS, CHURN),
              writes=("analytics.client_insights",),
              description="A plain-language note per unprofitable or at-risk client, for the run's last day."),
    ),
    emits=("client.profitability.changed",),
    votes=(Vote(("price_increase", "rescope"), "jobs.cpi.votes:churn_veto", veto="churn_veto",
                description="high churn risk vetoes a price increase (threshold lowered when technicians are "
                            "over-utilized: the utilization <-> churn tension)"),),
    cli="jobs.cpi.cli:register",
    questions=(
        Question("The MSP's KPIs, last six months",
                 "SELECT month, mrr, gross_margin_pct, avg_ehr, active_clients, churned_clients, problem_clients "
                 "FROM analytics.cpi_kpis_monthly ORDER BY month DESC LIMIT 6"),
        Question("Least profitable clients in the last closed month",
                 "SELECT client_name, billed, profit, margin_pct, margin_tier, effective_hourly_rate AS ehr, "
                 "months_below_lowest FROM analytics.client_margin_report "
                 "WHERE month = (SELECT max(month) FROM analytics.client_margin_report WHERE month_final) "
                 "ORDER BY margin_pct LIMIT 8"),
        Question("Clients most likely to churn, as scored on the last day",
                 "SELECT client_id, churn_probability, risk_band, signals FROM analytics.churn "
                 "WHERE dt = (SELECT max(dt) FROM analytics.churn) ORDER BY churn_probability DESC LIMIT 8"),
    ),
    panels=(
        Panel("cpi_margin_trend", "Client profitability trend: MRR and gross profit per month",
              "SELECT month, mrr, gross_profit, gross_margin_pct, active_clients, problem_clients "
              "FROM analytics.cpi_kpis_monthly ORDER BY month", chart="line", x="month", y=("mrr", "gross_profit"),
              description="All clients together (analytics.cpi_kpis_monthly); the newest month may not be final."),
        Panel("cpi_margin_tiers", "Clients per margin tier, per month",
              "SELECT month, margin_tier AS series, count(*) AS clients FROM analytics.client_margin_report "
              "GROUP BY ALL ORDER BY month, series", chart="bar", x="month", y=("clients",),
              description="How many clients each month falls in each margin tier (analytics.client_margin_report)."),
        Panel("cpi_churn_risk", "Churn risk bands on the last scored day",
              "SELECT risk_band, count(*) AS clients, round(avg(churn_probability), 3) AS mean_probability, "
              "round(avg(baseline_probability), 3) AS mean_baseline_probability FROM analytics.churn "
              "WHERE dt = (SELECT max(dt) FROM analytics.churn) GROUP BY risk_band ORDER BY mean_probability DESC",
              chart="bar", x="risk_band", y=("clients",), group="agents",
              description="Clients per risk band as the promoted churn model scored them on the newest day."),
    ),
    models=(Model("churn", "Client churn within the horizon (calibrated gradient boosting)",
                  "models.cpi.churn:SPEC"),),
    docs="docs/cpi.md",
)

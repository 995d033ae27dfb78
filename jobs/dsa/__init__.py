"""DSA: the Departmental Spend Analytics agent (DOMAIN.md section 5, rule 3 of section 7).

Stages, in run order (the registry orders them by what they read and write)::

    dsa.costs       focus_costs, expenses, entitlements -> processed.spend_costs (FOCUS columns, department, client)
                                                           processed.spend_leaf_daily (daily spend per cost line)
    dsa.budget      spend_leaf_daily, budgets           -> analytics.spend_budget_monthly (budget vs actual, alerts)
                                                           analytics.spend_roi (ROI and payback)
    dsa.detect      spend_leaf_daily                    -> analytics.spend_anomaly_scores, analytics.spend_anomalies,
                                                           events.outbox (spend.anomaly.detected)
    dsa.forecast    spend_leaf_daily, budgets           -> analytics.spend_forecast, analytics.spend_forecast_backtest
    dsa.on_renewal  events.inbox (contract.renewal.due) -> analytics.vendor_spend_packets (rule 3)

``msp dsa budget|anomalies|forecast|detect --csv FILE`` on the command line; thresholds come from the
``[dsa]`` settings (:class:`jobs.dsa.settings.DsaSettings`, defaults in ``settings.toml``).
"""

from __future__ import annotations

from jobs.dsa.settings import DsaSettings
from lakehouse.agents import Agent, Panel, Question, Rule, Stage, Vote

COSTS = "processed.spend_costs"
LEAVES = "processed.spend_leaf_daily"
SCORES = "analytics.spend_anomaly_scores"
ANOMALIES = "analytics.spend_anomalies"
BUDGET = "analytics.spend_budget_monthly"
ROI = "analytics.spend_roi"
FORECAST = "analytics.spend_forecast"
BACKTEST = "analytics.spend_forecast_backtest"
PACKETS = "analytics.vendor_spend_packets"

AGENT = Agent(
    name="dsa",
    title="Departmental Spend Analytics",
    package=__name__,
    summary="costs in FOCUS terms, budget vs actual, spend anomalies with root cause, budget forecast, ROI",
    settings=DsaSettings,
    defaults="settings.toml",
    stages=(
        Stage("dsa.costs", "jobs.dsa.costs:run", kind="transform", window="quarter",
              reads=("processed.focus_costs", "processed.expenses", "processed.entitlements"),
              writes=(COSTS, LEAVES),
              description="Cloud export, PSA expenses and licences in FOCUS columns with department and client "
                          "(BilledCost reconciles with the sources); daily spend per cost line."),
        Stage("dsa.budget", "jobs.dsa.budget:run", kind="transform", reads=(LEAVES, "processed.budgets"),
              writes=(BUDGET, ROI),
              description="Budget vs actual per department and month: variance, forecast to month end, AWS "
                          "Budgets-style alerts on actual and forecasted spend; ROI and payback of stated benefits."),
        Stage("dsa.detect", "jobs.dsa.anomalies:run", kind="score", reads=(LEAVES,),
              writes=(SCORES, ANOMALIES, "events.outbox"),
              description="Spend anomalies per monitored segment (department, vendor, service, resource, tag): "
                          "seasonal expectation and interval, new-service rule, root causes; AWS-shaped records "
                          "and spend.anomaly.detected episodes."),
        Stage("dsa.forecast", "jobs.dsa.forecast:run", kind="transform", reads=(LEAVES, "processed.budgets"),
              writes=(FORECAST, BACKTEST),
              description="Monthly spend per department for 3-12 months with 80/95 % intervals (AutoETS; "
                          "seasonal-naive baseline) and its rolling-origin backtest, once per month end."),
        Stage("dsa.on_renewal", "jobs.dsa.renewal:run", kind="handler",
              reads=("events.inbox", LEAVES, "processed.budgets", "processed.vendors", ANOMALIES),
              writes=(PACKETS, "events.outbox"),
              description="Rule 3: a vendor contract's renewal is due -> the vendor's spend packet (12-month spend, "
                          "trend, share of budget, anomalies, forecast if renewed)."),
    ),
    emits=("spend.anomaly.detected", "spend.renewal.packet"),
    rules=(Rule("contract.renewal.due", "dsa.on_renewal", description="Rule 3: renewal due -> vendor spend packet"),),
    votes=(Vote(("new_spend", "hire"), "jobs.dsa.votes:budget_veto", veto="budget_veto",
                description="a budget overrun vetoes new spend"),),
    cli="jobs.dsa.cli:register",
    questions=(
        Question("Departments over budget or forecast to be, this month",
                 "SELECT department, month, budget, actual, forecast_month_end, forecast_pct_of_budget, "
                 "alert_actual_pct, alert_forecast_pct, status FROM analytics.spend_budget_monthly "
                 "WHERE month = (SELECT max(month) FROM analytics.spend_budget_monthly) "
                 "ORDER BY forecast_pct_of_budget DESC NULLS LAST"),
        Question("Spend anomalies alerted in the last 90 days, largest impact first",
                 "SELECT start_date, end_date, source, dimension, segment, kind, total_impact, impact_pct, "
                 "severity, top_root_cause FROM (SELECT *, row_number() OVER (PARTITION BY anomaly_id "
                 "ORDER BY dt DESC) AS r FROM analytics.spend_anomalies) WHERE r = 1 AND alerted AND "
                 "start_date >= (SELECT max(CAST(dt AS DATE)) FROM analytics.spend_anomalies) - INTERVAL 90 DAY "
                 "ORDER BY total_impact DESC LIMIT 10"),
    ),
    panels=(
        Panel("dsa_budget", "Spend vs budget, all departments",
              "SELECT month, sum(actual) AS actual, sum(budget) AS budget FROM analytics.spend_budget_monthly "
              "GROUP BY month ORDER BY month", chart="line", x="month", y=("actual", "budget")),
        Panel("dsa_alerts", "Spend anomalies alerted per month",
              "SELECT strftime(start_date, '%Y-%m') AS month, count(DISTINCT anomaly_id) AS alerts "
              "FROM analytics.spend_anomalies WHERE alerted GROUP BY 1 ORDER BY 1", chart="bar", x="month",
              y=("alerts",)),
    ),
    docs="docs/dsa.md",
)

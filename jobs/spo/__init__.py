"""SPO: the Sales Pipeline Optimization agent (DOMAIN.md section 2, and the generators of section 7).

Stages, in run order (the registry orders them by what they read and write)::

    spo.lead_train       leads, activities                     -> ml-models/lead-score/<version>/ (weekly)
    spo.lead_score       leads, activities + the current model  -> analytics.lead_scores (daily)
    spo.forecast_train   opportunities, activities              -> ml-models/pipeline-forecast/<version>/,
                                                                   analytics.pipeline_backtest (weekly)
    spo.forecast         opportunities, activities + the model  -> analytics.pipeline_forecast (daily)
    spo.opportunities    opportunities, activities, agreements,  -> analytics.sales_opportunities,
                         additions, invoice lines, clients         events.outbox (sales.opportunity.identified)
    spo.proposals        opportunities, leads, clients,          -> analytics.proposals,
                         agreements, additions, endpoints,         analytics.proposal_lines
                         the generators' opportunities
    spo.deal_review      proposals, CPI client profitability     -> events.outbox (sales.deal.proposed: a
                                                                   low-margin deal, a consensus proposal)

Each module keeps its pure transforms apart from the stage function doing I/O; the models live in
``models/spo/``; thresholds, prices and parameters come from the ``[spo]`` settings
(:class:`jobs.spo.settings.SpoSettings`, defaults in ``settings.toml``).
"""

from __future__ import annotations

from jobs.spo.settings import SpoSettings
from lakehouse.agents import Agent, Model, Panel, Question, Stage

LEADS = ("processed.leads", "processed.activities")
DEALS = ("processed.opportunities", "processed.activities")
SCORES = "analytics.lead_scores"
FORECAST = "analytics.pipeline_forecast"
BACKTEST = "analytics.pipeline_backtest"
OPPORTUNITIES = "analytics.sales_opportunities"
PROPOSALS = "analytics.proposals"
LINES = "analytics.proposal_lines"
GENERATOR_INPUTS = ("processed.opportunities", "processed.activities", "processed.agreements",
                    "processed.agreement_additions", "processed.invoice_lines", "processed.clients", SCORES)
PROPOSAL_INPUTS = ("processed.opportunities", "processed.leads", "processed.clients", "processed.agreements",
                   "processed.agreement_additions", "processed.managed_endpoints", OPPORTUNITIES)

AGENT = Agent(
    name="spo",
    title="Sales Pipeline Optimization",
    package=__name__,
    summary="lead scores, pipeline forecast with a band, proposals, opportunities (stalled, renewals, T&M, whitespace)",
    settings=SpoSettings,
    defaults="settings.toml",
    stages=(
        Stage("spo.lead_train", "jobs.spo.leads:train_stage", kind="train", reads=LEADS,
              description="Train the lead scorer on weekly lead snapshots (time split, logistic-regression "
                          "baseline on the lead fields); promote it if it beats the current version."),
        Stage("spo.lead_score", "jobs.spo.leads:score_stage", kind="score", reads=LEADS, writes=(SCORES,),
              after=("spo.lead_train",),
              description="Score every open lead on each run day: P(client within the horizon), priority tier."),
        Stage("spo.forecast_train", "jobs.spo.forecast:train_stage", kind="train", reads=DEALS, writes=(BACKTEST,),
              description="Fit the learned forecast (P(win), time to close, deals not created yet) and backtest "
                          "it against the stage-weighted baseline on rolling monthly origins."),
        Stage("spo.forecast", "jobs.spo.forecast:run", kind="score", reads=DEALS, writes=(FORECAST,),
              after=("spo.forecast_train",),
              description="Expected bookings (MRR, one-time) per month with a band: Alga's stage-weighted "
                          "forecast (base and owner rates) and the learned one."),
        Stage("spo.opportunities", "jobs.spo.opportunities:run", kind="transform", window="quarter",
              reads=GENERATOR_INPUTS,
              writes=(OPPORTUNITIES, "events.outbox"),
              description="Stalled deals, close dates passed, renewals due, T&M clients ripe for a managed "
                          "agreement, whitespace: one sales.opportunity.identified event per episode."),
        Stage("spo.proposals", "jobs.spo.proposals:run", kind="transform", reads=PROPOSAL_INPUTS,
              writes=(PROPOSALS, LINES),
              description="A proposal (summary, scope, pricing lines from the catalogue, SLA, terms) for each "
                          "opportunity on the day it becomes eligible."),
        Stage("spo.deal_review", "jobs.spo.deals:run", kind="transform",
              reads=(PROPOSALS, "processed.client_profitability_monthly"), writes=("events.outbox",),
              description="Rule 4: a proposal for a client served below spo.low_margin_deal_pct is a low-margin "
                          "deal, proposed to consensus (sales.deal.proposed; RAM's utilization veto)."),
    ),
    emits=("sales.opportunity.identified", "sales.deal.proposed"),
    proposes=("sales.deal.proposed",),
    cli="jobs.spo.cli:register",
    questions=(
        Question("Leads to call first, as scored on the last day",
                 "SELECT priority_rank AS rank, lead_id, company_name, owner, round(probability, 3) AS p_client_90d, "
                 "priority_tier AS tier, reasons FROM analytics.lead_scores "
                 "WHERE dt = (SELECT max(dt) FROM analytics.lead_scores) ORDER BY priority_rank LIMIT 8"),
        Question("Bookings forecast for the next months, with the band",
                 "SELECT month, method, expected_mrr, low_mrr, high_mrr, expected_one_time, open_deals "
                 "FROM analytics.pipeline_forecast WHERE dt = (SELECT max(dt) FROM analytics.pipeline_forecast) "
                 "AND method IN ('stage_weighted', 'learned') ORDER BY month, method"),
        Question("Open sales opportunities found by the generators",
                 "SELECT opportunity_kind AS kind, count(*) AS opened, sum(expected_mrr) AS mrr_at_stake "
                 "FROM analytics.sales_opportunities WHERE state = 'opened' GROUP BY opportunity_kind "
                 "ORDER BY mrr_at_stake DESC"),
    ),
    panels=(
        Panel("spo_forecast", "Bookings forecast (MRR) made on the last day",
              "WITH latest AS (SELECT * FROM analytics.pipeline_forecast "
              "WHERE dt = (SELECT max(dt) FROM analytics.pipeline_forecast)) "
              "SELECT month, method, expected_mrr, low_mrr, high_mrr FROM latest WHERE method = (SELECT method "
              "FROM latest ORDER BY method = 'learned' DESC, method = 'stage_weighted' DESC, method LIMIT 1) "
              "ORDER BY month", chart="bar", x="month", y=("expected_mrr", "low_mrr", "high_mrr"),
              description="The learned forecast once its model is trained and promoted, else the stage-weighted "
                          "one (the method column says which)."),
        Panel("spo_funnel", "Pipeline conversion: opportunities per stage (latest state of each)",
              "WITH o AS (SELECT opportunity_id, arg_max(stage, updated_at) AS stage, arg_max(mrr, updated_at) AS mrr "
              "FROM processed.opportunities GROUP BY opportunity_id) SELECT stage, count(*) AS opportunities, "
              "sum(mrr) AS mrr FROM o GROUP BY stage ORDER BY list_position(['identified', 'qualified', "
              "'assessment', 'proposed', 'verbal', 'won', 'lost'], stage) NULLS LAST, stage",
              chart="bar", x="stage", y=("opportunities",),
              description="Every opportunity in the CRM export at its latest stage, open stages first, then won "
                          "and lost."),
    ),
    models=(Model("lead_score", "Lead becomes a client within 90 days (calibrated gradient boosting)",
                  "models.spo.leads:SPEC"),),
    docs="docs/spo.md",
)

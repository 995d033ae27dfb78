"""CPI: the Client Profitability Intelligence agent (DOMAIN.md section 1).

Stages, in run order (the registry orders them by what they read and write)::

    cpi.lifecycle       processed.agreements, clients        -> processed.client_lifecycle
    cpi.profitability   processed invoices, lines, additions,  -> processed.client_profitability_monthly
                        time, cost rates, tickets, payments,      processed.agreement_profitability_monthly
                        endpoints
    cpi.margin_report   profitability + clients               -> analytics.client_margin_report (tiers, problem clients)
    cpi.kpis            profitability + report + lifecycle    -> analytics.cpi_kpis_monthly (MRR, ARR, GM, churn...)
    cpi.margin_monitor  report + profitability                -> events.outbox (client.profitability.changed)
    cpi.churn_train     snapshots of the tables above         -> ml-models/churn-prediction/<version>/ (weekly)
    cpi.churn_score     snapshots + the current model         -> analytics.churn (daily)
    cpi.daily_summary   time, tickets, profitability, churn   -> analytics.cpi_daily_summary
    cpi.insights        summary + report + churn              -> analytics.client_insights

Each module keeps its pure transforms apart from the stage function doing I/O; thresholds come from
``[cpi]`` settings through :class:`jobs.cpi.config.CpiConfig`.
"""

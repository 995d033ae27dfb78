"""SLI: the Software License Intelligence agent (DOMAIN.md section 4; the ServiceNow SAM rule set of s. 8).

Stages, in run order (the registry orders them by what they read and write)::

    sli.position       subscribed_skus, entitlements, additions,  -> processed.licence_position (weekly)
                       software_inventory, clients                   processed.licence_installs
    sli.user_activity  active_user_detail                         -> processed.licence_user_activity (monthly)
    sli.savings        activity + position + entitlements         -> analytics.licence_savings
                                                                     analytics.licence_utilisation
    sli.renewals       entitlements + position + utilisation      -> analytics.licence_renewals (the run's last day)
    sli.alerts         the tables above + entitlements            -> events.outbox (license.compliance.violation)
    sli.on_opportunity events.inbox (sales.opportunity.identified) -> analytics.licence_opportunity_checks

Microsoft 365 reports are snapshots (weekly SKUs, monthly activity): a day without a new snapshot recomputes
nothing but the renewal plan and the day's renewal alerts. Thresholds come from the ``[sli]`` settings
(:class:`jobs.sli.settings.SliSettings`, defaults in ``settings.toml``); product names, PSA codes, installs,
suites and downgrades from the catalogue (``catalogue.toml``). docs/sli.md has the rules and their sources.
"""

from __future__ import annotations

from jobs.sli.settings import SliSettings
from lakehouse.agents import Agent, Panel, Question, Rule, Stage, Vote

POSITION = "processed.licence_position"
INSTALLS = "processed.licence_installs"
ACTIVITY = "processed.licence_user_activity"
SAVINGS = "analytics.licence_savings"
UTILISATION = "analytics.licence_utilisation"
RENEWALS = "analytics.licence_renewals"
CHECKS = "analytics.licence_opportunity_checks"
ENTITLEMENTS = "processed.entitlements"

AGENT = Agent(
    name="sli",
    title="Software License Intelligence",
    package=__name__,
    summary="licence compliance, idle seats and right-sizing, NCE renewal windows",
    settings=SliSettings,
    defaults="settings.toml",
    stages=(
        Stage("sli.position", "jobs.sli.position:run", kind="transform",
              reads=("processed.subscribed_skus", ENTITLEMENTS, "processed.agreement_additions",
                     "processed.software_inventory", "processed.clients"),
              writes=(POSITION, INSTALLS),
              description="Entitled, assigned, available, shortfall and true-up exposure per tenant and SKU on "
                          "each snapshot; PSA billed quantity vs vendor seats; installs vs licences."),
        Stage("sli.user_activity", "jobs.sli.activity:run", kind="transform",
              reads=("processed.active_user_detail",), writes=(ACTIVITY,),
              description="Licensed users' last activity and idle seats (no activity in any workload for "
                          "sli.idle_days) on each monthly report."),
        Stage("sli.savings", "jobs.sli.savings:run", kind="transform",
              reads=(ACTIVITY, POSITION, ENTITLEMENTS, "processed.clients"), writes=(SAVINGS, UTILISATION),
              description="Idle, deleted-but-licensed, unassigned and double-licensed seats and downgrade "
                          "candidates with their saving and staged reclaim plan; utilisation KPIs."),
        Stage("sli.renewals", "jobs.sli.renewals:run", kind="transform",
              reads=(ENTITLEMENTS, POSITION, UTILISATION, INSTALLS, "processed.clients"), writes=(RENEWALS,),
              description="Next renewal and its 168-hour window per entitlement, seats that can be cut and the "
                          "saving, monthly-term premium, alerts sli.renewal_alert_days ahead."),
        Stage("sli.alerts", "jobs.sli.alerts:run", kind="transform",
              reads=(POSITION, INSTALLS, UTILISATION, ENTITLEMENTS, "processed.clients"), writes=("events.outbox",),
              description="license.compliance.violation once per episode (opened, worsened, closed) and once per "
                          "renewal with seats to cut."),
        Stage("sli.on_opportunity", "jobs.sli.opportunity:run", kind="handler",
              reads=("events.inbox", POSITION, UTILISATION, SAVINGS, "processed.clients"),
              writes=(CHECKS, "events.outbox"),
              description="Rule 2: on sales.opportunity.identified, check the tenant (free and idle seats, E3/E5 "
                          "fit) so the quote does not over-order annual NCE seats."),
    ),
    emits=("license.compliance.violation", "license.opportunity.checked"),
    # the handler's own events are dispatched by the run's next round (dispatch never waits for handlers)
    rules=(Rule("sales.opportunity.identified", "sli.on_opportunity", when={"state": ("opened",)},
                description="Rule 2: a new sales opportunity -> tenant licence check before the quote"),),
    votes=(Vote(("cancel_seats",), "jobs.sli.votes:compliance_veto", veto="compliance_veto",
                description="a licence compliance shortfall vetoes cancelling seats"),),
    cli="jobs.sli.cli:register",
    questions=(
        Question("Licence shortfalls open on the last snapshot, by true-up exposure",
                 "SELECT client_name, sku_name, entitled, assigned, shortfall, true_up_exposure, "
                 "shortfall_episode_opened AS since, billing_drift "
                 "FROM processed.licence_position "
                 "WHERE snapshot_date = (SELECT max(snapshot_date) FROM processed.licence_position) "
                 "AND shortfall > 0 ORDER BY true_up_exposure DESC LIMIT 8"),
        Question("Monthly licence savings on the last activity report, by finding",
                 "SELECT finding, status, count(*) AS findings, sum(seats) AS seats, sum(monthly_saving) AS "
                 "monthly_saving, min(saving_from) AS first_saving FROM analytics.licence_savings "
                 "WHERE report_date = (SELECT max(report_date) FROM analytics.licence_savings) "
                 "GROUP BY finding, status ORDER BY monthly_saving DESC"),
    ),
    panels=(
        Panel("sli_idle_cost", "Idle licence cost per month (USD)",
              "SELECT report_date, sum(idle_cost) AS idle_cost, sum(waste_amount) AS waste "
              "FROM analytics.licence_utilisation GROUP BY report_date ORDER BY report_date",
              chart="line", x="report_date", y=("idle_cost", "waste")),
        Panel("sli_shortfalls", "Tenant SKUs short of seats",
              "SELECT snapshot_date, count(*) FILTER (WHERE shortfall > 0) AS short_skus, "
              "sum(true_up_exposure) AS exposure FROM processed.licence_position GROUP BY snapshot_date "
              "ORDER BY snapshot_date", chart="line", x="snapshot_date", y=("short_skus",)),
        Panel("sli_savings", "Licence savings found per report (monthly USD)",
              "SELECT report_date, finding AS series, sum(monthly_saving) AS monthly_saving, count(*) AS findings "
              "FROM analytics.licence_savings GROUP BY ALL ORDER BY report_date, series",
              chart="line", x="report_date", y=("monthly_saving",),
              description="Monthly savings of the licence findings (idle seats, unassigned seats, downgrades) per "
                          "report, by kind of finding."),
    ),
    docs="docs/sli.md",
)

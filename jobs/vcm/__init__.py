"""VCM: the Vendor & Contract Management agent (DOMAIN.md section 6).

Stages, in run order (the registry orders them by what they read and write)::

    vcm.documents        processed.contract_documents          -> processed.contract_pages (text per page:
                         (+ the document files in the landing      text file, PDF text layer or OCR, cached by
                         area, for PDFs and scans)                  SHA-256)
    vcm.extract          contract_pages, vendors               -> processed.contract_fields (value, span,
                                                                  confidence), processed.contract_review_queue
    vcm.register         fields, review queue, vendors,        -> processed.contract_register (one row per
                         contract_decisions                       contract), contract_versions, contract_workflow
    vcm.scorecard        vendors, tickets, expenses, register  -> analytics.vendor_scorecard (vendor x quarter)
    vcm.renewals         versions, register, scorecard         -> events.outbox (contract.renewal.due at
                                                                  90 / 60 / 30 days before the opt-out deadline)
    vcm.extractor_train  (a labelled corpus)                   -> ml-models/vcm-extractor/<version>/ (weekly)

``msp vcm approve|reject|submit|sign`` append decisions to processed.contract_decisions outside any run;
``msp vcm extract FILE...`` reads any text or PDF file. Thresholds come from the ``[vcm]`` settings
(:class:`jobs.vcm.settings.VcmSettings`, defaults in ``settings.toml``); the extractors live in
``models/vcm/``.
"""

from __future__ import annotations

from jobs.vcm.settings import VcmSettings
from lakehouse.agents import Agent, Panel, Question, Stage

DOCUMENTS = "processed.contract_documents"
PAGES = "processed.contract_pages"
FIELDS = "processed.contract_fields"
REVIEW = "processed.contract_review_queue"
REGISTER = "processed.contract_register"
VERSIONS = "processed.contract_versions"
DECISIONS = "processed.contract_decisions"
WORKFLOW = "processed.contract_workflow"
SCORECARD = "analytics.vendor_scorecard"

AGENT = Agent(
    name="vcm",
    title="Vendor & Contract Management",
    package=__name__,
    summary="contract extraction (text, PDF, scans), the contract register, renewal reminders, approvals, "
            "vendor scorecards, contract search",
    settings=VcmSettings,
    defaults="settings.toml",
    stages=(
        Stage("vcm.documents", "jobs.vcm.documents:run", kind="transform", reads=(DOCUMENTS,), writes=(PAGES,),
              description="Text of every page of every new contract document: text files as they are, PDFs "
                          "through their text layer, scans through OCR (cached by SHA-256); unreadable ones to "
                          "the review queue."),
        Stage("vcm.extract", "jobs.vcm.extract:run", kind="transform", reads=(PAGES, "processed.vendors"),
              writes=(FIELDS, REVIEW),
              description="Contract fields with spans and confidences (the promoted learned extractor, the rules "
                          "baseline beside it); low-confidence, missing and inconsistent values to review."),
        Stage("vcm.register", "jobs.vcm.register:run", kind="transform",
              reads=(FIELDS, REVIEW, PAGES, "processed.vendors", DECISIONS), writes=(REGISTER, VERSIONS, WORKFLOW),
              description="The contract register (latest version per contract, renewal type, term in force, "
                          "next opt-out deadline) and the approval workflow of every case."),
        Stage("vcm.scorecard", "jobs.vcm.scorecard:run", kind="transform",
              reads=("processed.vendors", "processed.tickets", "processed.expenses", REGISTER, VERSIONS),
              writes=(SCORECARD,),
              description="Vendor scorecard per quarter: responsiveness, reliability, invoice accuracy, cost trend, "
                          "compliance (1-5, weighted)."),
        Stage("vcm.renewals", "jobs.vcm.renewals:run", kind="transform",
              reads=(VERSIONS, REGISTER, WORKFLOW, SCORECARD),
              writes=("events.outbox",),
              description="Emit contract.renewal.due on the days a reminder (90 / 60 / 30 days before the "
                          "opt-out deadline) falls due."),
        Stage("vcm.extractor_train", "jobs.vcm.train:run", kind="train", reads=(),
              description="Train the learned extractor on a labelled contract corpus (wording styles held out for "
                          "the generalisation check); promote it if it beats the current one."),
    ),
    emits=("contract.renewal.due",),
    cli="jobs.vcm.cli:register",
    questions=(
        Question("Vendor contracts by next opt-out deadline (the last day to give notice of non-renewal)",
                 "SELECT contract_id, vendor_name, renewal_type, current_term_end, next_opt_out, days_to_opt_out, "
                 "annual_value, approval_state FROM processed.contract_register "
                 "WHERE days_to_opt_out >= 0 ORDER BY days_to_opt_out LIMIT 8"),
        Question("Weakest vendors in the last closed quarter (scorecard, 1-5)",
                 "SELECT vendor_name, quarter, overall_score, invoice_accuracy_score, cost_trend_score, "
                 "compliance_score, dimensions_scored FROM analytics.vendor_scorecard "
                 "WHERE quarter = (SELECT max(quarter) FROM analytics.vendor_scorecard WHERE quarter_final) "
                 "AND overall_score IS NOT NULL ORDER BY overall_score LIMIT 8"),
    ),
    panels=(
        Panel("vcm_review_queue", "Contract review queue: all items, then by reason",
              "SELECT coalesce(reason, 'all') AS reason, count(*) AS items, count(DISTINCT document_id) AS documents "
              "FROM processed.contract_review_queue GROUP BY ROLLUP (reason) ORDER BY reason IS NOT NULL, items DESC",
              chart="bar", x="reason", y=("items", "documents"),
              description="What waits for a person: the total (0 when nothing does), then per reason."),
        Panel("vcm_confidence", "Contract extraction confidence per field", group="agents",
              sql="SELECT field, round(avg(confidence), 3) AS mean_confidence, round(min(confidence), 3) "
              "AS min_confidence, count(*) AS documents, count(*) FILTER (WHERE needs_review) AS needs_review "
              "FROM processed.contract_fields GROUP BY field ORDER BY mean_confidence",
              chart="bar", x="field", y=("mean_confidence", "min_confidence"),
              description="Mean and lowest extraction confidence of each contract field over the documents read."),
        Panel("vcm_renewals", "Vendor contracts by next opt-out month",
              "SELECT strftime(next_opt_out, '%Y-%m') AS month, count(*) AS contracts, sum(annual_value) "
              "AS annual_value FROM processed.contract_register WHERE next_opt_out IS NOT NULL GROUP BY 1 "
              "ORDER BY 1", chart="bar", x="month", y=("contracts",),
              description="Renewals coming up: contracts whose opt-out deadline falls in each month, with their "
                          "annual value."),
        Panel("vcm_scorecard", "Vendor scorecard: overall score per quarter",
              "SELECT quarter, vendor_name AS series, overall_score FROM analytics.vendor_scorecard "
              "ORDER BY quarter, series", chart="line", x="quarter", y=("overall_score",),
              description="Each vendor's overall score (1-5) per quarter (analytics.vendor_scorecard)."),
    ),
    docs="docs/vcm.md",
)

"""The platform's own dashboard panels: system health and model performance, declared like an agent's
(:class:`lakehouse.agents.Panel`), over the catalog's views and the dashboard's platform tables
(:mod:`lakehouse.dashboard.sources`). Panels over every dataset of a zone are written from the dataset
declarations, so a new dataset or source appears without an edit here; a panel over a table that is not
declared (the events' dead letters, until it is) is left out.

A query may return a ``series`` column: each of its values becomes one line (or bar) per ``y`` column.
"""

from __future__ import annotations

import schemas
from lakehouse.agents import Panel

SYSTEM_PANELS: tuple[Panel, ...] = (
    Panel("system_last_run", "Last run", chart="kpi", group="system",
          sql="SELECT run_id, seconds, stages, failed, skipped, warnings FROM run_reports "
              "ORDER BY started_at DESC LIMIT 1",
          y=("seconds", "stages", "failed", "skipped", "warnings"),
          description="The newest run report in _meta/runs: its seconds, stages run, failed and skipped stages, "
                      "and warnings."),
    Panel("system_run_seconds", "Run duration over time (seconds)", chart="line", group="system",
          sql="SELECT started_at, seconds, stages FROM run_reports ORDER BY started_at",
          x="started_at", y=("seconds",),
          description="Wall-clock seconds of every recorded run (msp run, msp demo, Airflow stage tasks)."),
    Panel("system_stage_seconds", "Stage durations over time (the ten slowest stages, seconds)", chart="line",
          group="system",
          sql="WITH top AS (SELECT stage FROM run_stages WHERE status = 'ok' GROUP BY stage "
              "ORDER BY sum(seconds) DESC LIMIT 10) "
              "SELECT s.started_at, s.stage AS series, s.seconds FROM run_stages s JOIN top USING (stage) "
              "WHERE s.status = 'ok' ORDER BY s.started_at, s.stage",
          x="started_at", y=("seconds",),
          description="Seconds per stage per run, for the stages that took the most time in total (runs that "
                      "found a stage unchanged are left out)."),
    Panel("system_stage_outcomes", "Stage outcomes per run", chart="bar", group="system",
          sql="SELECT strftime(started_at, '%m-%d %H:%M') || ' ' || right(run_id, 4) AS run, "
              "count(*) FILTER (WHERE status = 'ok') AS ok, count(*) FILTER (WHERE status = 'unchanged') AS unchanged, "
              "count(*) FILTER (WHERE status = 'failed') AS failed, "
              "count(*) FILTER (WHERE status = 'skipped') AS skipped "
              "FROM run_stages GROUP BY run_id, started_at ORDER BY started_at",
          x="run", y=("ok", "unchanged", "failed", "skipped"),
          description="Per run: stages that ran, found nothing new, failed, or were skipped because a stage "
                      "they depend on failed."),
    Panel("system_failures", "Stage failures (all recorded runs)", chart="table", group="system",
          sql="SELECT stage, agent, count(*) AS runs, count(*) FILTER (WHERE status = 'failed') AS failed, "
              "count(*) FILTER (WHERE status = 'skipped') AS skipped, "
              "max(started_at) FILTER (WHERE status = 'failed') AS last_failed, "
              "arg_max(error, started_at) FILTER (WHERE status = 'failed') AS last_error "
              "FROM run_stages GROUP BY stage, agent ORDER BY failed DESC, skipped DESC, stage",
          description="Every stage with how often it failed or was skipped, and its last error."),
    Panel("system_events", "Events emitted per month, by type", chart="line", group="system",
          sql="SELECT strftime(event_time, '%Y-%m') AS month, event_type AS series, count(*) AS events "
              "FROM events.outbox GROUP BY 1, 2 ORDER BY 1, 2",
          x="month", y=("events",),
          description="Event throughput: events in the outbox by business month and type."),
    Panel("system_routes", "Events routed to each consuming agent", chart="bar", group="system",
          sql="SELECT agent || ': ' || event_type AS route, count(*) AS events, count(DISTINCT subject) AS subjects "
              "FROM events.inbox GROUP BY agent, event_type ORDER BY events DESC",
          x="route", y=("events", "subjects"),
          description="What the dispatcher delivered into the inbox, per consuming agent and event type."),
)

MODEL_PANELS: tuple[Panel, ...] = (
    Panel("models_vs_baseline", "Models: primary metric against the baseline, per version", chart="bar",
          group="agents",
          sql="SELECT model || ' ' || version || ' (' || metric || ')' AS version, score, baseline "
              "FROM model_versions WHERE score IS NOT NULL ORDER BY model, created_at",
          x="version", y=("score", "baseline"),
          description="Every stored model version's primary test metric next to the same metric of its named "
                      "baseline (from the model registry, ml-models/<model>/<version>/version.json)."),
    Panel("models_versions", "Model versions and promotion decisions", chart="table", group="agents",
          sql="SELECT model, version, created_at, metric, round(score, 4) AS score, round(baseline, 4) AS baseline, "
              "round(lift, 4) AS lift, current, promoted, reason, training_rows FROM model_versions "
              "ORDER BY model, created_at DESC",
          description="Lift is the score minus the baseline's, signed so that positive is better; current is "
                      "the promoted version."),
)

DEAD_LETTERS = "events.dead_letters"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def data_panels() -> tuple[Panel, ...]:
    """Rows per dataset through the gate, and freshness per source, written from the declarations."""
    declared = schemas.catalog()
    raw = [ds for ds in declared.values() if ds.zone_root == "raw"]
    out: list[Panel] = []
    gated = [ds for ds in raw if f"processed.{ds.name}" in declared and f"quarantine.{ds.name}" in declared]
    if gated:
        parts = [f"SELECT '{ds.name}' AS dataset, (SELECT count(*) FROM raw.{_q(ds.name)}) AS raw, "
                 f"(SELECT count(*) FROM processed.{_q(ds.name)}) AS processed, "
                 f"(SELECT count(*) FROM quarantine.{_q(ds.name)}) AS quarantined" for ds in gated]
        out.append(Panel(
            "system_rows", "Rows per dataset: raw, processed, quarantined", chart="bar", group="system",
            sql="SELECT dataset, raw, processed, quarantined, raw - processed - quarantined AS duplicates FROM ("
                + " UNION ALL ".join(parts) + ") ORDER BY raw DESC",
            x="dataset", y=("raw", "processed", "quarantined"),
            description="Rows each raw table holds, and where they went through the quality gate: raw = processed "
                        "+ quarantined + removed duplicates."))
    sourced = [ds for ds in raw if ds.source and "dt" in ds.duckdb_columns() and "_ingested_at" in ds.duckdb_columns()]
    if sourced:
        parts = [f"SELECT '{ds.source}' AS source, '{ds.name}' AS dataset, max(dt) AS last_day, "
                 f"max(_ingested_at) AS last_ingested, count(DISTINCT dt) AS days FROM raw.{_q(ds.name)}"
                 for ds in sourced]
        out.append(Panel(
            "system_freshness", "Data freshness per source", chart="table", group="system",
            sql="WITH d AS (" + " UNION ALL ".join(parts) + ") "
                "SELECT source, count(*) AS datasets, count(*) FILTER (WHERE last_day IS NULL) AS empty, "
                "min(last_day) AS oldest_latest_day, max(last_day) AS latest_day, max(last_ingested) AS last_ingested, "
                "date_diff('day', CAST(max(last_day) AS DATE), CAST((SELECT max(last_day) FROM d) AS DATE)) "
                "AS days_behind FROM d GROUP BY source ORDER BY days_behind DESC NULLS FIRST, source",
            description="Per source system: its newest export day in the raw tables, the oldest newest day of its "
                        "datasets (a dataset that stopped arriving), when it was last ingested, and how many days "
                        "it is behind the freshest source."))
    return tuple(out)


def dead_letter_panels() -> tuple[Panel, ...]:
    """The dead letters of the event handlers, when the table is declared (nothing otherwise)."""
    ds = schemas.catalog().get(DEAD_LETTERS)
    if ds is None:
        return ()
    cols = ds.duckdb_columns()
    by = next((c for c in ("event_type", "handler", "agent") if c in cols), None)
    counts = ("count(*) FILTER (WHERE status = 'dead') AS dead, count(*) FILTER (WHERE status <> 'dead') AS resolved"
              if "status" in cols else "count(*) AS dead")
    y = ("dead", "resolved") if "status" in cols else ("dead",)  # the kpi's figures
    if by is None:
        return (Panel("system_dead_letters", "Event dead letters", chart="kpi", group="system", y=y,
                      sql=f"SELECT {counts} FROM {DEAD_LETTERS}",
                      description="Events a handler failed on, waiting for `msp events redrive`."),)
    return (Panel("system_dead_letters", "Event dead letters: all, then per " + by.replace("_", " "), chart="table",
                  group="system",
                  sql=f"SELECT 'all' AS {_q(by)}, {counts} FROM {DEAD_LETTERS} UNION ALL "
                      f"(SELECT CAST({_q(by)} AS VARCHAR), {counts} FROM {DEAD_LETTERS} GROUP BY 1 ORDER BY 2 DESC)",
                  description="Deliveries a handler failed on: dead ones wait for `msp events redrive`, resolved ones "
                              "succeeded on a later attempt (a total of 0 is good news)."),)


#: Panels over the events' platform tables, each shown only when its table is declared.
EVENT_PANELS: tuple[tuple[str, Panel], ...] = (
    ("events.digest", Panel(
        "events_digest", "Daily digest: the top items on the newest day, across agents", chart="table",
        group="business",
        sql="SELECT rank, agent, event_type, subject, severity, episode_state, metric, round(value, 2) AS value, "
            "threshold, round(impact_usd, 0) AS impact_usd, round(score, 2) AS score, dt AS day FROM events.digest "
            "WHERE dt = (SELECT max(dt) FROM events.digest) ORDER BY rank LIMIT 20",
        description="What an owner should act on first: one item per episode, ranked by impact (`msp events "
                    "digest --date D`).")),
    ("events.consensus_decisions", Panel(
        "events_consensus", "Consensus decisions: all proposals, then per action", chart="bar", group="business",
        sql="SELECT coalesce(action, 'all') AS action, count(*) FILTER (WHERE decision = 'approved') AS approved, "
            "count(*) FILTER (WHERE decision = 'vetoed') AS vetoed, "
            "count(*) FILTER (WHERE decision = 'no_consensus') AS no_consensus, sum(warnings) AS warned "
            "FROM events.consensus_decisions GROUP BY ROLLUP (action) ORDER BY action IS NOT NULL, action",
        x="action", y=("approved", "vetoed", "no_consensus"),
        description="Proposals that touch price or headcount and how the agents' votes decided them (warned: "
                    "vetoes in warn mode, recorded but not binding).")),
)


def event_panels() -> tuple[Panel, ...]:
    declared = schemas.catalog()
    return tuple(p for table, p in EVENT_PANELS if table in declared)


def platform_panels() -> tuple[Panel, ...]:
    """Every panel the platform declares, in display order within each group."""
    system = list(SYSTEM_PANELS)
    system[1:1] = data_panels()
    return (*system, *dead_letter_panels(), *MODEL_PANELS, *event_panels())

"""``msp demo``: a sample MSP end to end on this machine, with nothing to configure."""

from __future__ import annotations

from rich.console import Console

from lakehouse.config import Settings
from lakehouse.ingest import Landing

#: (question, SQL) pairs shown and answered at the end of the demo.
EXAMPLE_QUERIES: tuple[tuple[str, str], ...] = (
    ("The MSP's KPIs, last six months",
     "SELECT month, mrr, gross_margin_pct, avg_ehr, active_clients, churned_clients, problem_clients "
     "FROM analytics.cpi_kpis_monthly ORDER BY month DESC LIMIT 6"),
    ("Least profitable clients in the last closed month",
     "SELECT client_name, billed, profit, margin_pct, margin_tier, effective_hourly_rate AS ehr, months_below_lowest "
     "FROM analytics.client_margin_report "
     "WHERE month = (SELECT max(month) FROM analytics.client_margin_report WHERE month_final) "
     "ORDER BY margin_pct LIMIT 8"),
    ("Clients most likely to churn, as scored on the last day",
     "SELECT client_id, churn_probability, risk_band, signals FROM analytics.churn "
     "WHERE dt = (SELECT max(dt) FROM analytics.churn) ORDER BY churn_probability DESC LIMIT 8"),
    ("Why the quality gate quarantined ticket rows",
     "SELECT _rules_broken AS rules, count(*) AS rows FROM quarantine.tickets GROUP BY ALL ORDER BY rows DESC LIMIT 6"),
)


def landing_dates(settings: Settings):
    """First and last export day present in the landing area (None when it is empty)."""
    import schemas

    landing = Landing(settings.landing_root)
    days = sorted({f.dt for ds in schemas.datasets("raw") for f in landing.files(ds)})
    return (days[0], days[-1]) if days else None


def run_demo(settings: Settings, scale: str, seed: int, console: Console) -> int:
    from datetime import date

    from lakehouse.catalog import query_duckdb
    from lakehouse.cli import execute, print_frame
    from lakehouse.context import date_range

    span = landing_dates(settings)
    if span is None:
        from lakehouse.synth.cli import generate_with_progress

        console.rule(f"Generating a sample MSP (scale {scale}, seed {seed})")
        generate_with_progress(settings, scale=scale, seed=seed)
        span = landing_dates(settings)
    else:
        console.print(f"Landing area already holds exports {span[0]} → {span[1]}; reusing them.")
    console.rule(f"Running every stage over {span[0]} → {span[1]}")
    summary = execute(settings, date_range(date.fromisoformat(span[0]), date.fromisoformat(span[1])))
    console.rule("Where the results are")
    console.print(f"  lake          {settings.lake_root}")
    console.print(f"  SQL catalog   {settings.duckdb_path}   (msp sql \"SELECT ...\")")
    console.print(f"  run report    {settings.lake_root}/_meta/runs/{summary.run_id}.json")
    console.print(f"  planted truth {settings.truth_root}   (for evaluation only; agents never read it)")
    if settings.catalog_kind == "duckdb":
        for question, sql in EXAMPLE_QUERIES:
            console.rule(question)
            console.print(f"[dim]msp sql \"{sql}\"[/]")
            try:
                print_frame(query_duckdb(settings, sql), "table")
            except Exception as exc:
                console.print(f"[red]query failed:[/] {exc}")
    return 0 if summary.ok else 1

"""Write-audit-publish of agent outputs: rows that break a critical expectation are never published."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

import schemas
from jobs.checks import OutputCheckFailed, publish, suite_config
from lakehouse.context import RunContext
from tests.cpi.test_margin_report import month_row

TABLE = "processed.client_profitability_monthly"


def rows(spark, **changes):
    from tests.cpi.conftest import frame

    row = month_row("C1", "2024-03", 1000, 400)
    row.update(changes)
    return frame(spark, TABLE, [row])


def test_every_output_suite_loads_with_its_baseline():
    for name in ("processed.client_profitability_monthly", "processed.agreement_profitability_monthly",
                 "processed.client_lifecycle", "analytics.client_margin_report", "analytics.cpi_kpis_monthly",
                 "analytics.churn", "analytics.cpi_daily_summary", "analytics.client_insights"):
        config = suite_config(schemas.get(name))
        rules = [e["meta"]["rule"] for e in config["expectations"]]
        assert len(rules) == len(set(rules)) and any(r.startswith("not_null:") for r in rules), name


def test_good_rows_publish_and_bad_rows_do_not(settings, spark):
    ctx = RunContext.create(settings, [date(2024, 4, 5)])
    publish(ctx, TABLE, rows(spark), replace=[{"month": "2024-03"}])
    ds = schemas.get(TABLE)
    before = ctx.lake.checksum(ds)
    # profit that is not billed - additions - labour: the profit identity fails, nothing is published
    with pytest.raises(OutputCheckFailed, match="profit_identity"):
        publish(ctx, TABLE, rows(spark, profit=Decimal("999.00")), replace=[{"month": "2024-03"}])
    assert ctx.lake.checksum(ds) == before
    # a warning rule (hours without a cost rate) publishes and says so in the run summary
    publish(ctx, TABLE, rows(spark, uncosted_hours=Decimal("2.00")), replace=[{"month": "2024-03"}])
    assert any("all_hours_costed" in w for w in ctx.warnings)
    assert ctx.lake.read_pandas(ds)["uncosted_hours"].tolist() == [Decimal("2.00")]

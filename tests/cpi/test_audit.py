"""Write-audit-publish of the CPI tables: rows that break a critical expectation are never published."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

import schemas
from lakehouse.context import RunContext
from lakehouse.quality.audit import AuditFailed, suite_config
from tests.cpi.conftest import arrow
from tests.cpi.test_margin_report import month_row

TABLE = "processed.client_profitability_monthly"
CPI_TABLES = ("processed.client_profitability_monthly", "processed.agreement_profitability_monthly",
              "processed.client_lifecycle", "analytics.client_margin_report", "analytics.cpi_kpis_monthly",
              "analytics.churn", "analytics.cpi_daily_summary", "analytics.client_insights")


def rows(**changes):
    row = month_row("C1", "2024-03", 1000, 400)
    row.update(changes)
    return arrow(TABLE, [row])


def test_every_output_suite_loads_with_its_baseline():
    for name in CPI_TABLES:
        config = suite_config(schemas.get(name))
        rules = [e["meta"]["rule"] for e in config["expectations"]]
        assert len(rules) == len(set(rules)) and any(r.startswith("not_null:") for r in rules), name
    rules = {e["meta"]["rule"] for e in suite_config(schemas.get(TABLE))["expectations"]}
    assert {"profit_identity", "margin_identity", "ehr_needs_hours", "all_hours_costed"} <= rules


def test_good_rows_publish_and_bad_rows_do_not(settings):
    ctx = RunContext.create(settings, [date(2024, 4, 5)])
    ctx.write(TABLE, rows(), replace=[{"month": "2024-03"}])
    ds = schemas.get(TABLE)
    before = ctx.lake.checksum(ds)
    # profit that is not billed - additions - labour: the profit identity fails, nothing is published
    with pytest.raises(AuditFailed, match="profit_identity"):
        ctx.write(TABLE, rows(profit=Decimal("999.00")), replace=[{"month": "2024-03"}])
    assert ctx.lake.checksum(ds) == before
    # a warning rule (hours without a cost rate) publishes and says so in the run summary
    ctx.write(TABLE, rows(uncosted_hours=Decimal("2.00")), replace=[{"month": "2024-03"}])
    assert any("all_hours_costed" in w for w in ctx.warnings)
    assert ctx.lake.read_pandas(ds)["uncosted_hours"].tolist() == [Decimal("2.00")]

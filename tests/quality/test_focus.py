"""The FinOps FOCUS 1.0 sample (tests/fixtures/focus, CC BY 4.0) passes its gate through the real
declaration and stage; a FOCUS export with a broken column is refused with a message naming the file."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import schemas
from lakehouse.lake import Lake
from lakehouse.runner import run_pipeline
from tests.conftest import FIXTURES

SAMPLE = FIXTURES / "focus" / "focus_sample.csv"


def land(settings, day: str, text: str, name: str | None = None) -> None:
    folder = settings.home / "landing" / "cloud" / "focus_costs"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / (name or f"focus_costs_{day}.csv")).write_text(text, encoding="utf-8")


def gate_cloud(settings, *days: str):
    return run_pipeline(settings, [date.fromisoformat(d) for d in days], stages=["ingest", "quality"],
                        params={"sources": ["cloud"]}, refresh_catalog=False)


def test_the_focus_sample_passes_its_gate(settings):
    text = SAMPLE.read_text(encoding="utf-8")
    land(settings, "2024-09-30", text)
    summary = gate_cloud(settings, "2024-09-30")
    assert summary.ok, [s.error for s in summary.stages]
    counts = summary.counts["processed.focus_costs"]
    assert (counts["rows_in"], counts["rows_out"], counts["quarantined"], counts["duplicates"]) == (200, 200, 0, 0)
    rows = Lake.from_settings(settings).read_arrow(schemas.get("processed.focus_costs")).to_pylist()
    source = list(csv.DictReader(io.StringIO(text)))
    assert sum(r["billed_cost"] for r in rows) == sum(Decimal(r["BilledCost"]) for r in source)
    assert all(r["charge_period_end"] > r["charge_period_start"] for r in rows)
    assert sum(r["commitment_discount_id"] is None for r in rows) == sum(
        r["CommitmentDiscountId"] in ("NULL", "") for r in source)


def test_a_focus_file_with_a_text_billed_cost_or_a_renamed_column_is_refused_by_name(settings):
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    header, body = lines[0], lines[1:41]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(next(csv.reader([header])))
    for fields in csv.reader(body):
        fields[1] = f"USD {fields[1]}"  # BilledCost exported as text
        writer.writerow(fields)
    land(settings, "2024-09-29", out.getvalue())
    land(settings, "2024-09-30", "\n".join([header.replace('"ChargePeriodEnd"', '"ChargePeriodEndDate"'),
                                            *body]) + "\n")
    summary = gate_cloud(settings, "2024-09-29", "2024-09-30")
    quality = next(s for s in summary.stages if s.name == "quality")
    assert quality.status == "failed"
    assert "focus_costs: schema drift in cloud/focus_costs/focus_costs_2024-09-29.csv: column billed_cost" \
           in quality.error
    from lakehouse.quality import report

    result = next(r for r in report.latest(Lake.from_settings(settings)) if r["dataset"] == "focus_costs")
    assert result["status"] == "failed"
    assert ("schema drift in cloud/focus_costs/focus_costs_2024-09-29.csv: column billed_cost: 40 of 40 values do "
            "not read as decimal(38,11) (e.g. 'USD 0.00000000000'); re-typed upstream?") in result["errors"]
    # the renamed (non-key) column rejected its file at ingestion and is named, as a warning
    assert any("focus_costs_2024-09-30.csv: column charge_period_end" in w for w in result["warnings"])
    assert Lake.from_settings(settings).read_arrow(schemas.get("processed.focus_costs")).num_rows == 0

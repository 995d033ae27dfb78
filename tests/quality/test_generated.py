"""The synthetic MSP's dirty rows are exactly what the gate refuses: every planted defect is quarantined
(or dropped, for exact duplicates) and no clean row is, through the real declarations, suites and stage."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date, timedelta

import pytest

import schemas
from lakehouse.lake import Lake
from lakehouse.runner import run_pipeline

START, DAYS = date(2024, 1, 1), 7
#: the PSA datasets whose rules cover every kind of dirt (and their parents, for the foreign keys)
GATED = ("clients", "contacts", "technicians", "agreements", "tickets", "time_entries", "invoices", "invoice_lines",
         "payments")


def test_the_gate_refuses_exactly_the_rows_the_generator_dirtied(settings):
    synth = pytest.importorskip("lakehouse.synth")
    synth.generate(scale="tiny", seed=7, landing_root=settings.home / "landing", truth_root=settings.home / "truth",
                   start=START, days=DAYS, dirty_rate=0.05)
    dates = [START + timedelta(days=i) for i in range(DAYS)]
    summary = run_pipeline(settings, dates, stages=["ingest", "quality"],
                           params={"sources": ["psa"], "datasets": list(GATED)}, refresh_catalog=False)
    assert summary.ok, [(s.name, s.error) for s in summary.stages]

    with open(settings.home / "truth" / "dirty_rows.csv", newline="") as fh:
        planted = [r for r in csv.DictReader(fh) if r["dataset"] in GATED]
    assert planted, "the generator planted no dirty rows in the window"
    lake = Lake.from_settings(settings)
    refused = {(r["_source_file"], r["_row_number"]): r["_rules_broken"]
               for name in GATED for r in lake.read_arrow(schemas.get(f"quarantine.{name}")).to_pylist()}
    defects = {(r["file"], int(r["row_number"])): r for r in planted if r["kind"] != "duplicate"}
    assert set(refused) == set(defects)
    kind_to_rule = {"blank_required": "not_null:", "bad_date_format": "type:", "negative_amount": "range:",
                    "unknown_fk": "fk:"}
    for key, r in defects.items():
        assert f"{kind_to_rule[r['kind']]}{r['column']}" in refused[key].split("; "), (key, r, refused[key])
    duplicates = Counter(r["dataset"] for r in planted if r["kind"] == "duplicate")
    removed = {name.split(".", 1)[1]: c["duplicates"] for name, c in summary.counts.items()
               if name.startswith("processed.") and c["duplicates"]}
    assert removed == dict(duplicates)
    for name, c in summary.counts.items():
        if name.startswith("processed."):
            assert c["rows_in"] == c["rows_out"] + c["quarantined"] + c["duplicates"], name

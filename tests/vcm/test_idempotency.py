"""The VCM stages on a small lake of their own (documents written straight into processed, no OCR): rerunning
a day yields identical tables and no duplicate events; landing the same PDF again adds nothing."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

import schemas
from lakehouse.context import RunContext, date_range
from lakehouse.ingest import parse_document
from lakehouse.lake import Lake
from lakehouse.runner import run_pipeline
from lakehouse.synth.contracts import pdf_text, render_text
from tests.conftest import make_settings

VCM = ["vcm.documents", "vcm.extract", "vcm.register", "vcm.scorecard", "vcm.renewals"]
TABLES = ["processed.contract_pages", "processed.contract_fields", "processed.contract_review_queue",
          "processed.contract_register", "processed.contract_versions", "processed.contract_workflow",
          "analytics.vendor_scorecard", "events.outbox"]
DAYS = date_range(date(2024, 1, 1), date(2024, 3, 31))


def _doc(style, vendor, effective, expiration, auto, notice, basis="per_month", amount=150000):
    return {"style": style, "vendor_name": vendor, "msp_party": "North Star IT LLC",
            "agreement_date": effective.replace(day=1), "effective_date": effective, "term_months": 12,
            "expiration_date": expiration, "auto_renew": auto, "renewal_term_months": 12 if auto else 0,
            "notice_period_days": notice, "stated_amount_cents": amount, "value_basis": basis,
            "payment_terms": "Net 30", "governing_law": "Colorado"}


def _land(settings, rel: str, data: bytes) -> None:
    path = Path(settings.landing_root) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _documents_rows(items: list[tuple[str, str, bytes]]) -> pd.DataFrame:
    """processed.contract_documents rows as the gate would publish them: (dt, relative path, bytes)."""
    ds = schemas.get("raw.contract_documents")
    rows = []
    for dt, rel, data in items:
        values = dict(zip([c.name for c in ds.data_columns], parse_document(ds, data, rel).rows[0], strict=True))
        rows.append({**values, "size_bytes": int(values["size_bytes"]), "page_count": int(values["page_count"]),
                     "_source_file": rel, "_source_hash": hashlib.sha256(data).hexdigest(), "_row_number": 1,
                     "_row_hash": hashlib.sha256(rel.encode()).hexdigest(),
                     "_ingested_at": datetime(2024, 4, 1, tzinfo=UTC), "_run_id": "run-test", "dt": dt})
    return pd.DataFrame(rows)


def _write(settings, name, frame, days):
    for c in schemas.get(name).stored_columns():  # columns a test leaves out are null
        if c.name not in frame.columns:
            frame[c.name] = None
    ctx = RunContext.create(settings, [date(2024, 4, 1)], run_id=f"seed-{name}")
    try:
        ctx.write(name, ctx.to_arrow(frame, schemas.get(name)) if len(frame) else
                  schemas.get(name).arrow_schema().empty_table(), replace=[{"dt": d} for d in days], audit=False)
    finally:
        ctx.close()


@pytest.fixture
def lake(tmp_path):
    # every stage really reruns (no skipping of unchanged inputs); the audits of the writes are the pipeline
    # lake's business (tests/vcm/test_pipeline.py), here they would only triple the time
    settings = make_settings(tmp_path / "home", MSP_PLATFORM__SKIP_UNCHANGED="false", MSP_QUALITY__CHECKPOINT="off")
    pdf = pdf_text(render_text(_doc(0, "Leap Day Hosting", date(2023, 3, 1), date(2024, 2, 29), True, 30)))
    txt = (render_text(_doc(1, "Fixed Print Co", date(2023, 6, 1), date(2024, 5, 31), False, 0)) + "\n").encode()
    items = [("2024-01-02", "vendors/contract_documents/2024-01-02/leapday-contract.pdf", pdf),
             ("2024-01-05", "vendors/contract_documents/2024-01-05/fixedprint-contract.txt", txt)]
    for _, rel, data in items:
        _land(settings, rel, data)
    _write(settings, "processed.contract_documents", _documents_rows(items), [d for d, _, _ in items])
    vendors = pd.DataFrame([{"vendor_id": "VN-0001", "vendor_name": "Leap Day Hosting", "category": "cloud",
                             "payment_terms": "Net 30", "status": "active", "sla": "4-hour response",
                             "created_at": datetime(2023, 1, 1, tzinfo=UTC),
                             "updated_at": datetime(2023, 1, 1, tzinfo=UTC),
                             "_source_file": "v.csv", "_source_hash": "h", "_row_number": 1, "_row_hash": "r",
                             "_ingested_at": datetime(2024, 1, 1, tzinfo=UTC), "_run_id": "run-test",
                             "dt": "2024-01-01"}])
    _write(settings, "processed.vendors", vendors, ["2024-01-01"])
    expenses = pd.DataFrame([{"expense_id": f"EX-{m}", "expense_date": date(2024, m, 1), "department": "hosting",
                              "vendor_id": "VN-0001", "vendor_name": "Leap Day Hosting", "category": "cloud",
                              "description": "Subscription", "amount": 1500.0, "currency": "USD",
                              "payment_method": "ach", "recurring": True,
                              "created_at": datetime(2024, m, 1, tzinfo=UTC), "_source_file": "e.csv",
                              "_source_hash": "h", "_row_number": m, "_row_hash": f"r{m}",
                              "_ingested_at": datetime(2024, 4, 1, tzinfo=UTC), "_run_id": "run-test",
                              "dt": f"2024-0{m}-01"} for m in (1, 2, 3)])
    _write(settings, "processed.expenses", expenses, [f"2024-0{m}-01" for m in (1, 2, 3)])
    return settings, pdf


def _checksums(settings):
    lake = Lake.from_settings(settings)
    return {t: lake.checksum(schemas.get(t)) for t in TABLES}


def _run(settings, days):
    r = run_pipeline(settings, days, stages=VCM, refresh_catalog=False)
    assert r.ok, [(s.name, s.error) for s in r.stages]
    return r


def test_rerun_is_identical_and_relanding_adds_nothing(lake):
    settings, pdf = lake
    _run(settings, DAYS)
    before = _checksums(settings)
    lake_ = Lake.from_settings(settings)
    outbox = lake_.read_pandas(schemas.get("events.outbox"))
    # Leap Day Hosting: expires 2024-02-29, 30 days' notice -> opt-out 2024-01-30; learned of on 2024-01-02
    # (after its 90-day day, 2023-11-01, and its 60-day day, 2023-12-01): the 60-day reminder that day, then
    # the 30-day one on 2023-12-31... which has passed too: only the 30-day reminder, on 2024-01-02. The
    # renewed term ends 2025-02-28 (opt-out 2025-01-29): its reminders lie after the window.
    events = [(e.event_time, e.subject) for e in outbox.itertuples()]
    assert len(events) == 1 and events[0][0] == date(2024, 1, 2)
    reg = lake_.read_pandas(schemas.get("processed.contract_register")).set_index("vendor_name")
    assert reg.loc["Leap Day Hosting", "opt_out_deadline"] == date(2024, 1, 30)
    assert reg.loc["Leap Day Hosting", "current_term_end"] == date(2025, 2, 28)       # renewed once by 2024-03-31
    assert reg.loc["Leap Day Hosting", "next_opt_out"] == date(2025, 1, 29)
    assert reg.loc["Fixed Print Co", "renewal_type"] == "fixed_term"
    assert pd.isna(reg.loc["Fixed Print Co", "next_opt_out"])

    _run(settings, [date(2024, 3, 31)])                   # rerun the last day
    assert _checksums(settings) == before
    # rerun the day the event fell due: its day partitions are the same; the as-of tables (register,
    # workflow, the open quarter's scorecard) are as known that day, until the next day's run
    _run(settings, [date(2024, 1, 2)])
    again = _checksums(settings)
    for t in ("processed.contract_pages", "processed.contract_fields", "processed.contract_review_queue",
              "events.outbox"):
        assert again[t] == before[t], t
    _run(settings, [date(2024, 3, 31)])
    assert _checksums(settings) == before

    # the same PDF lands again, another day and another name: nothing new anywhere
    rel = "vendors/contract_documents/2024-03-15/leapday-contract-copy.pdf"
    _land(settings, rel, pdf)
    items = [("2024-03-15", rel, pdf)]
    _write(settings, "processed.contract_documents", _documents_rows(items), ["2024-03-15"])
    _run(settings, [date(2024, 3, 15)])
    after = _checksums(settings)
    for t in ("processed.contract_pages", "processed.contract_fields", "processed.contract_review_queue",
              "events.outbox"):
        assert after[t] == before[t], t
    _run(settings, [date(2024, 3, 31)])
    assert _checksums(settings) == before
    reg = Lake.from_settings(settings).read_pandas(schemas.get("processed.contract_register"))
    assert list(reg.sort_values("vendor_name")["versions"]) == [1, 1]       # the copy is not a new version


def test_approval_commands_append_atomic_decisions(lake, capsys):
    import argparse

    from jobs.vcm import cli as vcm_cli
    from jobs.vcm.workflow import WorkflowError, current_cases

    settings, _ = lake
    _run(settings, [date(2024, 1, 5)])
    reg = Lake.from_settings(settings).read_pandas(schemas.get("processed.contract_register"))
    cid = reg.set_index("vendor_name").loc["Fixed Print Co", "contract_id"]
    parser = argparse.ArgumentParser()
    vcm_cli.register(parser.add_subparsers())

    def msp(*argv):
        args = parser.parse_args(["vcm", *argv])
        return args.func(args, settings)

    assert msp("approve", cid, "--by", "Dana Ops", "--reason", "prices checked against the quote") == 0
    with pytest.raises(WorkflowError, match="approved"):
        msp("reject", cid, "--by", "Lee", "--reason", "too late")
    assert msp("sign", cid, "--by", "Lee Finance", "--reason", "countersigned PDF filed") == 0
    cases = current_cases(settings, cid)
    assert [(r["action"], r["actor"], r["state"]) for r in cases[0]["rows"]] == [
        ("open", "vcm", "draft"), ("complete", "vcm", "review"), ("approve", "Dana Ops", "approved"),
        ("sign", "Lee Finance", "signed")]
    decisions = Lake.from_settings(settings).read_pandas(schemas.get("processed.contract_decisions"))
    assert len(decisions) == 2 and set(decisions["reason"]) == {"prices checked against the quote",
                                                                 "countersigned PDF filed"}
    history = Lake.from_settings(settings).history(schemas.get("processed.contract_decisions"))
    assert [h["added_records"] for h in history] == [1, 1]            # one commit per decision, nothing replaced
    assert all(h["deleted_records"] == 0 for h in history)
    assert "signed" in capsys.readouterr().out

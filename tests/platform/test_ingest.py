"""Ingestion: landing files become raw rows with lineage; malformed files are reported, good ones load."""

from __future__ import annotations

import io
from datetime import date

import pytest

from lakehouse.context import RunContext
from lakehouse.ingest import Landing, MalformedFile, ingest, parse_csv, parse_document, parse_jsonl
from schemas import Column, Dataset

TICKETS = Dataset(
    name="tickets", zone="raw", owner="platform", description="test", source="psa", format="csv",
    columns=(Column("ticket_id", "string", nullable=False), Column("priority", "string"),
             Column("hours", "double")),
    primary_key=("ticket_id",),
)
ACTIVITIES = Dataset(name="activities", zone="raw", owner="platform", description="t", source="crm", format="jsonl",
                     columns=(Column("activity_id", "string"), Column("kind", "string"), Column("score", "double")))
DOCS = Dataset(name="contract_documents", zone="raw", owner="platform", description="t", source="vendors",
               format="document",
               columns=tuple(Column(n, "string") for n in ("file_name", "mime_type", "size_bytes", "sha256",
                                                           "page_count", "text", "extraction")))


def land(root, ds, day, body: bytes | str, name=None):
    folder = root / ds.source / ds.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{ds.name}_{day}.csv")
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return path


def ctx_for(settings, *days):
    return RunContext.create(settings, [date.fromisoformat(d) for d in days])


def test_csv_rows_get_lineage_and_land_in_their_day(settings, tmp_path):
    landing = tmp_path / "home" / "landing"
    land(landing, TICKETS, "2024-03-01", "ticket_id,priority,hours\nT1,high,1.5\nT2,,0.25\n")
    ctx = ctx_for(settings, "2024-03-01")
    stats = ingest(ctx, [TICKETS], Landing(str(landing)))["tickets"]
    assert stats == {"files": 1, "skipped": 0, "rejected": 0, "rows": 2}
    rows = ctx.lake.read_arrow(TICKETS).to_pylist()
    assert [(r["ticket_id"], r["priority"], r["hours"], r["dt"]) for r in rows] == [
        ("T1", "high", "1.5", "2024-03-01"), ("T2", "", "0.25", "2024-03-01")]
    assert [r["_row_number"] for r in rows] == [1, 2]
    assert rows[0]["_source_file"] == "psa/tickets/tickets_2024-03-01.csv"
    assert rows[0]["_source_hash"] == __import__("hashlib").sha256(
        (landing / rows[0]["_source_file"]).read_bytes()).hexdigest()
    assert rows[0]["_run_id"] == ctx.run_id and len(rows[0]["_row_hash"]) == 64
    assert rows[0]["_row_hash"] != rows[1]["_row_hash"]


def test_a_day_without_any_export_says_so_and_where_it_looked(settings):
    from lakehouse.runner import run_pipeline

    run = run_pipeline(settings, [date(2024, 6, 30)], stages=["ingest"], refresh_catalog=False)
    assert run.ok
    assert [w for w in run.warnings if "holds no export file for 2024-06-30" in w and settings.landing_root in w]


def test_ingesting_the_same_file_twice_adds_nothing(settings, tmp_path):
    landing = tmp_path / "home" / "landing"
    land(landing, TICKETS, "2024-03-01", "ticket_id,priority,hours\nT1,high,1.5\n")
    first = ctx_for(settings, "2024-03-01")
    ingest(first, [TICKETS], Landing(str(landing)))
    before = first.lake.checksum(TICKETS)
    second = ctx_for(settings, "2024-03-01")
    stats = ingest(second, [TICKETS], Landing(str(landing)))["tickets"]
    assert stats["skipped"] == 1 and stats["rows"] == 0
    assert second.lake.checksum(TICKETS) == before
    assert [h["run_id"] for h in second.lake.history(TICKETS)] == [first.run_id]  # no new commit


def test_a_corrected_export_replaces_its_day(settings, tmp_path):
    landing = tmp_path / "home" / "landing"
    land(landing, TICKETS, "2024-03-01", "ticket_id,priority,hours\nT1,high,1.5\n")
    ingest(ctx_for(settings, "2024-03-01"), [TICKETS], Landing(str(landing)))
    land(landing, TICKETS, "2024-03-01", "ticket_id,priority,hours\nT1,high,2.0\nT9,low,1\n")
    ctx = ctx_for(settings, "2024-03-01")
    ingest(ctx, [TICKETS], Landing(str(landing)))
    assert sorted((r["ticket_id"], r["hours"]) for r in ctx.lake.read_arrow(TICKETS).to_pylist()) == [
        ("T1", "2.0"), ("T9", "1")]


def test_malformed_files_are_reported_with_name_line_and_reason_and_good_files_load(settings, tmp_path):
    landing = tmp_path / "home" / "landing"
    land(landing, TICKETS, "2024-03-02", "ticket_id,priority,hours\nT1,high,1\n")
    land(landing, TICKETS, "2024-03-02", "ticket_id,priority,hours\nT2,low,1\nT3,low\n", name="tickets_2024-03-02b.csv")
    land(landing, TICKETS, "2024-03-02", "ticket_id,priority,hours\nT4,bas,1\n".encode("utf-16"),
         name="tickets_2024-03-02c.csv")
    land(landing, TICKETS, "2024-03-02", "ticket_id,hours\nT5,1\n", name="tickets_2024-03-02d.csv")
    land(landing, TICKETS, "2024-03-02", "", name="tickets_2024-03-02e.csv")
    ctx = ctx_for(settings, "2024-03-02")
    stats = ingest(ctx, [TICKETS], Landing(str(landing)))["tickets"]
    assert stats["rejected"] == 4 and stats["rows"] == 1
    assert [r["ticket_id"] for r in ctx.lake.read_arrow(TICKETS).to_pylist()] == ["T1"]
    import schemas

    rejected = {r["source_file"].rsplit("/", 1)[-1]: r
                for r in ctx.lake.read_arrow(schemas.get("quarantine.rejected_files")).to_pylist()}
    assert rejected["tickets_2024-03-02b.csv"]["line"] == 3
    assert "expected 3 fields, found 2" in rejected["tickets_2024-03-02b.csv"]["reason"]
    assert "UTF-8" in rejected["tickets_2024-03-02c.csv"]["reason"]
    assert rejected["tickets_2024-03-02d.csv"]["column"] == "priority"
    assert "missing" in rejected["tickets_2024-03-02d.csv"]["reason"]
    assert "empty file" in rejected["tickets_2024-03-02e.csv"]["reason"]
    assert all(r["dataset"] == "tickets" and r["dt"] == "2024-03-02" for r in rejected.values())
    assert any("tickets_2024-03-02b.csv line 3" in w for w in ctx.warnings)
    # a rerun knows the day's files, rejected ones included: nothing new is committed
    again = ctx_for(settings, "2024-03-02")
    assert ingest(again, [TICKETS], Landing(str(landing)))["tickets"]["skipped"] == 5


def test_a_lost_rejected_files_record_makes_the_next_run_ingest_the_day_again(settings, tmp_path):
    """The rejected files are committed before the raw rows; if a crash loses them, the next run finds a day
    whose files it does not all know and ingests it again, so the record is never lost for ever."""
    import schemas
    from lakehouse.lake import Lake

    landing = tmp_path / "home" / "landing"
    land(landing, TICKETS, "2024-03-02", "ticket_id,priority,hours\nT1,high,1\n")
    land(landing, TICKETS, "2024-03-02", "ticket_id,priority,hours\nT2,low\n", name="tickets_2024-03-02b.csv")
    ingest(ctx_for(settings, "2024-03-02"), [TICKETS], Landing(str(landing)))
    lake = Lake.from_settings(settings)
    rejected = schemas.get("quarantine.rejected_files")
    lake.replace(rejected, rejected.arrow_schema().empty_table(), run_id="lost", replace=[
        {"dataset": "tickets", "dt": "2024-03-02"}])  # as if the record had never been committed
    stats = ingest(ctx_for(settings, "2024-03-02"), [TICKETS], Landing(str(landing)))["tickets"]
    assert stats["rejected"] == 1 and stats["skipped"] == 0
    assert [r["source_file"] for r in lake.read_arrow(rejected).to_pylist()] == ["psa/tickets/tickets_2024-03-02b.csv"]


def test_added_columns_are_accepted_with_a_drift_warning():
    parsed = parse_csv(TICKETS, b"ticket_id,priority,hours,site\nT1,high,1,HQ\n")
    assert parsed.rows == [["T1", "high", "1"]]
    assert "site" in parsed.warnings[0] and "drift" in parsed.warnings[0]


def test_quoted_fields_with_commas_and_newlines_survive():
    parsed = parse_csv(TICKETS, b'ticket_id,priority,hours\n"T1","high, urgent\nreally",1\n')
    assert parsed.rows == [["T1", "high, urgent\nreally", "1"]]


def test_jsonl_values_become_text_and_broken_lines_are_located():
    parsed = parse_jsonl(ACTIVITIES, b'{"activity_id": "A1", "kind": "email", "score": 0.5}\n'
                                     b'{"activity_id": "A2", "extra": {"x": 1}}\n')
    assert parsed.rows == [["A1", "email", "0.5"], ["A2", None, None]]
    assert "extra" in parsed.warnings[0]
    with pytest.raises(MalformedFile) as info:
        parse_jsonl(ACTIVITIES, b'{"activity_id": "A1"}\n{"activity_id": \n')
    assert info.value.line == 2


def test_documents_text_pdf_and_scanned_pdf():
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(72, 720, "MASTER SERVICES AGREEMENT between Acme IT and Globex, effective 2024-01-01.")
    c.save()
    pdf = parse_document(DOCS, buf.getvalue(), "vendors/contract_documents/2024-01-01/c1.pdf").rows[0]
    assert pdf[1] == "application/pdf" and pdf[6] == "pdf_text" and "Globex" in pdf[5]
    blank = io.BytesIO()
    c = canvas.Canvas(blank)
    c.rect(10, 10, 100, 100)  # an image-only page: no text layer
    c.save()
    scanned = parse_document(DOCS, blank.getvalue(), "x/2024-01-01/c2.pdf").rows[0]
    assert scanned[6] == "needs_ocr" and scanned[5] == ""
    txt = parse_document(DOCS, b"Term: 12 months", "x/2024-01-01/c3.txt").rows[0]
    assert txt[5] == "Term: 12 months" and txt[6] == "text"
    with pytest.raises(MalformedFile, match="unreadable PDF"):
        parse_document(DOCS, b"%PDF-1.4 garbage", "x/2024-01-01/c4.pdf")

"""Ingestion: landing files become raw rows with lineage; malformed files are reported, good ones load."""

from __future__ import annotations

import io
from datetime import date

import pytest

import schemas
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
    assert stats == {"files": 1, "skipped": 0, "rejected": 0, "rows": 2, "lines_rejected": 0, "other_days": 0}
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
    land(landing, TICKETS, "2024-03-02", "ticket_id,priority,hours\nT4,bas,1\n".encode("utf-16"),
         name="tickets_2024-03-02c.csv")
    land(landing, TICKETS, "2024-03-02", "id,hours\nT5,1\n", name="tickets_2024-03-02d.csv")
    land(landing, TICKETS, "2024-03-02", "", name="tickets_2024-03-02e.csv")
    ctx = ctx_for(settings, "2024-03-02")
    stats = ingest(ctx, [TICKETS], Landing(str(landing)))["tickets"]
    assert stats["rejected"] == 3 and stats["rows"] == 1
    assert [r["ticket_id"] for r in ctx.lake.read_arrow(TICKETS).to_pylist()] == ["T1"]
    rejected = {r["source_file"].rsplit("/", 1)[-1]: r
                for r in ctx.lake.read_arrow(schemas.get("quarantine.rejected_files")).to_pylist()}
    assert "UTF-8" in rejected["tickets_2024-03-02c.csv"]["reason"]
    assert "UTF-16" in rejected["tickets_2024-03-02c.csv"]["reason"]
    assert rejected["tickets_2024-03-02d.csv"]["column"] == "ticket_id"  # the key column is named first
    assert "missing" in rejected["tickets_2024-03-02d.csv"]["reason"]
    assert "empty file" in rejected["tickets_2024-03-02e.csv"]["reason"]
    assert all(r["dataset"] == "tickets" and r["dt"] == "2024-03-02" for r in rejected.values())
    assert any("tickets_2024-03-02d.csv line 1" in w for w in ctx.warnings)
    # a rerun knows the day's files, rejected ones included: nothing new is committed
    again = ctx_for(settings, "2024-03-02")
    assert ingest(again, [TICKETS], Landing(str(landing)))["tickets"]["skipped"] == 4


def rejected_lines(lake) -> list[dict]:
    rows = lake.read_arrow(schemas.get("quarantine.rejected_lines")).to_pylist()
    return sorted(rows, key=lambda r: (r["source_file"], r["line"]))


def test_a_truncated_last_line_keeps_the_good_rows_and_the_line_is_recorded(settings, tmp_path):
    landing = tmp_path / "home" / "landing"
    land(landing, TICKETS, "2024-03-02", "ticket_id,priority,hours\nT1,high,1\nT2,low,2\nT3,lo")
    ctx = ctx_for(settings, "2024-03-02")
    stats = ingest(ctx, [TICKETS], Landing(str(landing)))["tickets"]
    assert stats["rows"] == 2 and stats["lines_rejected"] == 1 and stats["rejected"] == 0
    assert [(r["ticket_id"], r["_row_number"]) for r in ctx.lake.read_arrow(TICKETS).to_pylist()] == [
        ("T1", 1), ("T2", 2)]
    [line] = rejected_lines(ctx.lake)
    assert (line["source_file"], line["line"], line["record"], line["text"], line["rows_loaded"], line["dt"]) == (
        "psa/tickets/tickets_2024-03-02.csv", 4, 3, "T3,lo", 2, "2024-03-02")
    assert "expected 3 fields, found 2" in line["reason"]
    assert any("1 line(s) not read as rows" in w for w in ctx.warnings)
    assert "1 line(s) rejected" in "; ".join(ctx.counts["stage:ingest"].notes)


def test_an_unbalanced_quote_loses_only_its_line():
    parsed = parse_csv(TICKETS, b'ticket_id,priority,hours\nT1,"high,1\nT2,low,2\nT3,"a ""b""",3\n')
    assert parsed.rows == [["T2", "low", "2"], ["T3", 'a "b"', "3"]]
    assert parsed.numbers == [2, 3]
    [bad] = parsed.bad
    assert (bad.line, bad.record, bad.text) == (2, 1, 'T1,"high,1') and "unbalanced quote" in bad.reason


def test_a_broken_json_line_keeps_the_other_lines(settings, tmp_path):
    landing = tmp_path / "home" / "landing"
    land(landing, ACTIVITIES, "2024-03-02", b'{"activity_id": "A1"}\n{"activity_id": \n[1]\n{"activity_id": "A4"}\n',
         name="activities_2024-03-02.jsonl")
    ctx = ctx_for(settings, "2024-03-02")
    ingest(ctx, [ACTIVITIES], Landing(str(landing)))
    assert [(r["activity_id"], r["_row_number"]) for r in ctx.lake.read_arrow(ACTIVITIES).to_pylist()] == [
        ("A1", 1), ("A4", 4)]
    assert [(r["line"], r["reason"].split(":")[0]) for r in rejected_lines(ctx.lake)] == [
        (2, "invalid JSON"), (3, "expected a JSON object per line, found list")]


def test_the_rejected_lines_are_committed_before_the_rows_so_a_lost_raw_commit_reads_the_file_again(settings, tmp_path):
    """The audit record is atomic with its data: lines first, then rows; a file with loaded rows is known by its
    rows, so if the raw commit is lost the next run reads the file again; a file none of whose rows loaded is
    known by its rejected lines."""
    from lakehouse.lake import Lake

    landing = tmp_path / "home" / "landing"
    land(landing, TICKETS, "2024-03-02", "ticket_id,priority,hours\nT1,high,1\nT2,low\n")
    land(landing, TICKETS, "2024-03-02", "ticket_id,priority,hours\nT3\n", name="tickets_2024-03-02b.csv")
    ingest(ctx_for(settings, "2024-03-02"), [TICKETS], Landing(str(landing)))
    lake = Lake.from_settings(settings)
    assert [(r["source_file"][-10:], r["rows_loaded"]) for r in rejected_lines(lake)] == [
        ("-03-02.csv", 1), ("03-02b.csv", 0)]
    assert ingest(ctx_for(settings, "2024-03-02"), [TICKETS], Landing(str(landing)))["tickets"]["skipped"] == 2
    lake.replace(TICKETS, TICKETS.arrow_schema().empty_table(), run_id="lost", replace=[{"dt": "2024-03-02"}])
    stats = ingest(ctx_for(settings, "2024-03-02"), [TICKETS], Landing(str(landing)))["tickets"]
    assert stats["skipped"] == 0 and stats["rows"] == 1 and stats["lines_rejected"] == 2
    assert [r["ticket_id"] for r in lake.read_arrow(TICKETS).to_pylist()] == ["T1"]
    assert len(rejected_lines(lake)) == 2  # replaced, not doubled


def test_a_lost_rejected_files_record_makes_the_next_run_ingest_the_day_again(settings, tmp_path):
    """The rejected files are committed before the raw rows; if a crash loses them, the next run finds a day
    whose files it does not all know and ingests it again, so the record is never lost for ever."""
    from lakehouse.lake import Lake

    landing = tmp_path / "home" / "landing"
    land(landing, TICKETS, "2024-03-02", "ticket_id,priority,hours\nT1,high,1\n")
    land(landing, TICKETS, "2024-03-02", "", name="tickets_2024-03-02b.csv")
    ingest(ctx_for(settings, "2024-03-02"), [TICKETS], Landing(str(landing)))
    lake = Lake.from_settings(settings)
    rejected = schemas.get("quarantine.rejected_files")
    lake.replace(rejected, rejected.arrow_schema().empty_table(), run_id="lost", replace=[
        {"dataset": "tickets", "dt": "2024-03-02"}])  # as if the record had never been committed
    stats = ingest(ctx_for(settings, "2024-03-02"), [TICKETS], Landing(str(landing)))["tickets"]
    assert stats["rejected"] == 1 and stats["skipped"] == 0
    assert [r["source_file"] for r in lake.read_arrow(rejected).to_pylist()] == ["psa/tickets/tickets_2024-03-02b.csv"]


def test_files_without_a_valid_export_date_are_rejected_once_with_a_reason(settings, tmp_path):
    landing = tmp_path / "home" / "landing"
    land(landing, TICKETS, "2024-03-02", "ticket_id,priority,hours\nT1,high,1\n")
    land(landing, TICKETS, "", "ticket_id,priority,hours\nT2,high,1\n", name="tickets_latest.csv")
    land(landing, TICKETS, "", "ticket_id,priority,hours\nT3,high,1\n", name="tickets_2024-13-45.csv")
    land(landing, TICKETS, "", "ticket_id,priority,hours\nT4,high,1\n", name="tickets_2024-03-05.csv")
    land(landing, TICKETS, "", "ticket_id,priority,hours\nT5,high,1\n", name=".tickets_2024-03-02.csv.part")
    ctx = ctx_for(settings, "2024-03-02")
    stats = ingest(ctx, [TICKETS], Landing(str(landing)))["tickets"]
    assert (stats["files"], stats["rejected"], stats["other_days"], stats["rows"]) == (3, 2, 1, 1)
    rejected = {r["source_file"].rsplit("/", 1)[-1]: r
                for r in ctx.lake.read_arrow(schemas.get("quarantine.rejected_files")).to_pylist()}
    assert set(rejected) == {"tickets_latest.csv", "tickets_2024-13-45.csv"}
    assert "no export date" in rejected["tickets_latest.csv"]["reason"]
    assert "impossible export date '2024-13-45'" in rejected["tickets_2024-13-45.csv"]["reason"]
    assert {r["dt"] for r in rejected.values()} == {"undated"}
    assert ctx.counts["stage:ingest"].notes == [
        "landing: 4 file(s): 1 loaded, 0 seen before, 2 rejected, 1 for other days; 0 line(s) rejected"]
    again = ctx_for(settings, "2024-03-03")  # any later run knows them
    stats = ingest(again, [TICKETS], Landing(str(landing)))["tickets"]
    assert (stats["rejected"], stats["skipped"]) == (0, 2)
    assert not [w for w in again.warnings if "rejected" in w]


def test_a_future_export_date_is_rejected(settings, tmp_path):
    landing = tmp_path / "home" / "landing"
    land(landing, TICKETS, "2999-01-01", "ticket_id,priority,hours\nT1,high,1\n")
    ctx = ctx_for(settings, "2999-01-01")
    assert ingest(ctx, [TICKETS], Landing(str(landing)))["tickets"]["rejected"] == 1
    [r] = ctx.lake.read_arrow(schemas.get("quarantine.rejected_files")).to_pylist()
    assert "export date 2999-01-01 is in the future" in r["reason"]


def test_a_wrong_delimiter_is_named():
    with pytest.raises(MalformedFile, match="wrong delimiter: the header is separated by ';' \\(semicolon\\)"):
        parse_csv(TICKETS, b"ticket_id;priority;hours\nT1;high;1\n")
    with pytest.raises(MalformedFile, match="'\\\\t' \\(tab\\)"):
        parse_csv(TICKETS, b"ticket_id\tpriority\thours\nT1\thigh\t1\n")


def test_a_gzip_file_named_csv_is_read_and_latin1_bytes_lose_only_their_line():
    import gzip

    parsed = parse_csv(TICKETS, gzip.compress(b"ticket_id,priority,hours\nT1,high,1\n"))
    assert parsed.rows == [["T1", "high", "1"]] and "gzip" in parsed.warnings[0]
    parsed = parse_csv(TICKETS, "ticket_id,priority,hours\nT1,high,1\nT2,tr\u00e8s,1\n".encode("latin-1"))
    assert parsed.rows == [["T1", "high", "1"]]
    [bad] = parsed.bad
    assert bad.text == "T2,tr\\xe8s,1" and "not valid UTF-8 (byte 0xe8)" in bad.reason


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
    broken = parse_jsonl(ACTIVITIES, b'{"activity_id": "A1"}\n{"activity_id": \n')
    assert broken.rows == [["A1", None, None]] and broken.bad[0].line == 2


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


def test_a_large_run_splits_into_one_part_per_source_with_files_for_its_days(settings, monkeypatch):
    """`ingest`'s parts: a run whose landing files are large gets one part per landing source holding a file
    of its days (or an undated file, which it rejects), the largest first; a small run, a run narrowed to
    sources, or a single busy source runs whole."""
    from pathlib import Path

    from lakehouse import ingest

    landing = Path(settings.landing_root)
    tickets, focus = schemas.get("raw.tickets"), schemas.get("raw.focus_costs")
    land(landing, tickets, "2024-03-01", "ticket_id\nT1\nT2\n")
    land(landing, focus, "2024-02-10", "x\n1\n")  # a day outside the run
    two = ctx_for(settings, "2024-03-01", "2024-03-02")
    monkeypatch.setattr(ingest, "SPLIT_FROM_BYTES", 1)
    assert ingest.parts(two) is None  # one source with files for the days
    land(landing, focus, "2024-03-02", "x\n1\n")
    assert [(p.label, p.params, p.after) for p in ingest.parts(two)] == [
        (tickets.source, {"sources": [tickets.source]}, ()), (focus.source, {"sources": [focus.source]}, ())]
    assert ingest.parts(RunContext.create(settings, two.dates, params={"sources": [tickets.source]})) is None
    assert ingest.parts(ctx_for(settings, "2024-03-02")) is None  # one export day: never split
    # a source whose only file has no date in its name still has work: ingestion rejects that file
    activities = schemas.get("raw.activities")
    land(landing, activities, "", "{}", name="activities_latest.jsonl")
    assert [p.label for p in ingest.parts(two)] == [tickets.source, focus.source, activities.source]
    monkeypatch.setattr(ingest, "SPLIT_FROM_BYTES", 10_000)  # these few bytes: one piece
    assert ingest.parts(two) is None

"""Bad landing files, one kind per file: where every row went, and that the counts reconcile.

One small lake for the module: every kind is a file of its own (keys prefixed with the kind's number, so kinds
never collide) landed beside the others for one export day (and one far-future day), ingested and gated once
with the real ingestion, the real gate on DuckDB and the real Great Expectations audit. Each test then checks
one file: the rows published to ``processed``, the rows in ``quarantine`` with the rules they broke, the lines
in ``quarantine.rejected_lines`` and the rejection in ``quarantine.rejected_files``, and

    data records in the file = processed + quarantined + rejected lines + exact duplicates
                               (or all of them in a rejected file).

The table of kinds and results in docs/quality.md ("Bad landing files") is this module's ``KINDS``.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

import schemas
from lakehouse.context import RunContext
from lakehouse.ingest import REJECTED, REJECTED_LINES, Landing, ingest
from lakehouse.lake import Lake
from lakehouse.quality.gate import gate
from lakehouse.quality.suite import load_suite
from schemas import Column, Dataset
from tests.conftest import make_settings

DAY, FUTURE = "2024-03-01", "2999-01-01"
TICKETS = Dataset(
    name="bi_tickets", zone="raw", owner="platform", description="bad-input tickets", source="psa", format="csv",
    columns=(Column("ticket_id", "string", nullable=False), Column("client", "string", nullable=False),
             Column("priority", "string", nullable=False, allowed=("low", "high")),
             Column("amount", "decimal(10,2)", min=0), Column("hours", "double"), Column("opened", "date"),
             Column("note", "string")),
    primary_key=("ticket_id",),
)
EVENTS = Dataset(
    name="bi_events", zone="raw", owner="platform", description="bad-input events", source="crm", format="jsonl",
    columns=(Column("event_id", "string", nullable=False), Column("kind", "string", nullable=False),
             Column("score", "double")),
    primary_key=("event_id",),
)
#: day-to-day checks off: each kind is judged on its own rows, not against another day's counts
CHECKS_OFF = {"row_count_drop": {"compare": "off"}, "null_share_jump": {"compare": "off"}}
HEADER = "ticket_id,client,priority,amount,hours,opened,note"


def row(kind: int, i: int, **values: str) -> str:
    base = {"ticket_id": f"K{kind:02d}-{i}", "client": "Acme", "priority": "low", "amount": "10.00", "hours": "1.5",
            "opened": DAY, "note": "ok"}
    base.update(values)
    return ",".join(base.values())


def csv_file(kind: int, *lines: str, header: str = HEADER, end: str = "\n") -> bytes:
    return (end.join([header, *lines]) + end).encode("utf-8")


def good(kind: int, n: int = 2) -> list[str]:
    return [row(kind, i) for i in range(1, n + 1)]


def event(kind: int, i: int, **values) -> str:
    return json.dumps({"event_id": f"E{kind:02d}-{i}", "kind": "call", "score": 0.5, **values})


@dataclass
class Kind:
    """One kind of bad landing file and where its rows must go."""

    id: str
    what: str
    body: bytes
    records: int  # data records the exporter meant to send
    processed: set[str] = field(default_factory=set)  # keys published
    quarantined: dict[str | None, str] = field(default_factory=dict)  # key (source text) -> rules broken
    lines: list[tuple[int, str]] = field(default_factory=list)  # (line, part of the reason)
    file_reason: str | None = None  # part of the reason the whole file was rejected
    duplicates: int = 0
    quarantined_rows: int | None = None  # when several rows share a key
    name: str | None = None  # file name, default <dataset>_<DAY>_<id>.csv
    ds: Dataset = TICKETS
    dt: str = DAY

    @property
    def file_name(self) -> str:
        ext = "jsonl" if self.ds.format == "jsonl" else "csv"
        return self.name or f"{self.ds.name}_{self.dt}_{self.id}.{ext}"

    @property
    def relative(self) -> str:
        return f"{self.ds.source}/{self.ds.name}/{self.file_name}"

    @property
    def refused(self) -> int:
        return len(self.quarantined) if self.quarantined_rows is None else self.quarantined_rows

    @property
    def result(self) -> str:
        """What happened to the file's rows, for the docs table."""
        if self.file_reason:
            return f"file rejected: {self.file_reason}"
        parts = []
        if self.processed:
            parts.append(f"{len(self.processed)} processed")
        if self.quarantined:
            rules = sorted(set(self.quarantined.values()))
            parts.append(f"{self.refused} quarantined ({', '.join(rules)})")
        if self.lines:
            parts.append(f"{len(self.lines)} line(s) rejected ({'; '.join(sorted({r for _, r in self.lines}))})")
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicate(s) removed")
        return ", ".join(parts) or "no rows"


def k(n: int) -> str:
    return f"K{n:02d}"


KINDS = [
    Kind("truncated_last_line", "CSV whose last line is cut off", csv_file(1, *good(1), "K01-3,Acme,lo", end="\n")[:-1],
         3, {"K01-1", "K01-2"}, lines=[(4, "expected 7 fields, found 3")]),
    Kind("ragged_extra_field", "a line with one field too many",
         csv_file(2, *good(2), row(2, 3) + ",extra"), 3, {"K02-1", "K02-2"}, lines=[(4, "expected 7 fields, found 8")]),
    Kind("broken_json_line", "JSON-lines file with one broken line",
         "\n".join([event(3, 1), '{"event_id": "E03-2", "kind": ', event(3, 3)]).encode() + b"\n", 3,
         {"E03-1", "E03-3"}, lines=[(2, "invalid JSON")], ds=EVENTS),
    Kind("json_line_not_object", "JSON-lines file with a line that is an array",
         "\n".join([event(4, 1), "[1, 2]"]).encode() + b"\n", 2, {"E04-1"},
         lines=[(2, "expected a JSON object per line, found list")], ds=EVENTS),
    Kind("wrong_delimiter_semicolon", "CSV written with ';'",
         csv_file(5, *[r.replace(",", ";") for r in good(5)], header=HEADER.replace(",", ";")), 2,
         file_reason="wrong delimiter: the header is separated by ';' (semicolon)"),
    Kind("wrong_delimiter_tab", "CSV written with tabs",
         csv_file(6, *[r.replace(",", "\t") for r in good(6)], header=HEADER.replace(",", "\t")), 2,
         file_reason="wrong delimiter: the header is separated by '\\t' (tab)"),
    Kind("utf8_bom", "UTF-8 byte-order mark before the header", b"\xef\xbb\xbf" + csv_file(7, *good(7)), 2,
         {"K07-1", "K07-2"}),
    Kind("crlf", "Windows line endings", csv_file(8, *good(8), end="\r\n"), 2, {"K08-1", "K08-2"}),
    Kind("zero_byte_file", "an empty (0-byte) file", b"", 0, file_reason="empty file"),
    Kind("blank_lines_only", "a file of blank lines", b"\n\n  \n", 0, file_reason="empty file"),
    Kind("header_only", "a header and no rows", csv_file(11), 0),
    Kind("duplicate_header_column", "the header names a column twice",
         csv_file(12, row(12, 1) + ",x", header=HEADER + ",client"), 1, file_reason="header repeats column(s) client"),
    Kind("extra_column", "a column the declaration does not know (accepted, warned)",
         csv_file(13, *[r + ",HQ" for r in good(13)], header=HEADER + ",site"), 2, {"K13-1", "K13-2"}),
    Kind("missing_column", "a declared column removed upstream (note)",
         csv_file(14, "K14-1,Acme,low,10.00,1.5,2024-03-01", header=HEADER.removesuffix(",note")), 1,
         file_reason="schema drift: declared column(s) note missing"),
    Kind("renamed_key", "the key column renamed upstream (id); the stage fails naming the file",
         csv_file(15, *good(15), header=HEADER.replace("ticket_id", "id")), 2,
         file_reason="schema drift: declared column(s) ticket_id missing"),
    Kind("dateless_name", "no export date in the file name", csv_file(16, *good(16)), 2,
         file_reason="no export date (YYYY-MM-DD) in the file name", name="bi_tickets_latest.csv"),
    Kind("impossible_date_name", "an impossible date in the name (2024-13-45)", csv_file(17, *good(17)), 2,
         file_reason="impossible export date '2024-13-45'", name="bi_tickets_2024-13-45.csv"),
    Kind("future_date_name", "an export date after today", csv_file(18, *good(18)), 2,
         file_reason="export date 2999-01-01 is in the future", dt=FUTURE),
    Kind("nul_in_key", "a NUL byte inside a key", csv_file(19, row(19, 1, ticket_id="K19-\x001"), row(19, 2)), 2,
         {"K19-2"}, {"K19-\x001": "no_control:ticket_id"}),
    Kind("control_chars_in_text", "an escape character in a required text column (a tab is allowed)",
         csv_file(20, row(20, 1, client="Ac\x1bme"), row(20, 2, client="Ac\tme"), row(20, 3, note="bell\x07")), 3,
         {"K20-2", "K20-3"}, {"K20-1": "no_control:client"}),
    Kind("latin1_bytes", "a row exported as Latin-1 (not UTF-8)",
         csv_file(21, *good(21)) + row(21, 3, note="caf\xe9").encode("latin-1") + b"\n", 3, {"K21-1", "K21-2"},
         lines=[(4, "not valid UTF-8 (byte 0xe9)")]),
    Kind("utf16_file", "a UTF-16 export", csv_file(22, *good(22)).decode().encode("utf-16"), 2,
         file_reason="not valid UTF-8 (a UTF-16 file)"),
    Kind("quoted_newlines", "a quoted field holding a line break and a comma",
         csv_file(23, row(23, 1, note='"first line\nsecond, line"'), row(23, 2)), 2, {"K23-1", "K23-2"}),
    Kind("unbalanced_quote", "a quote that never closes (only its line is lost)",
         csv_file(24, row(24, 1), row(24, 2, note='"oops'), row(24, 3), row(24, 4)), 4, {"K24-1", "K24-3", "K24-4"},
         lines=[(3, "unbalanced quote")]),
    Kind("thousands_separator", "an amount with a thousands separator",
         csv_file(25, row(25, 1, amount='"1,234.00"'), row(25, 2)), 2, {"K25-2"}, {"K25-1": "type:amount"}),
    Kind("currency_symbol", "an amount with a currency symbol", csv_file(26, row(26, 1, amount="$10.00"), row(26, 2)),
         2, {"K26-2"}, {"K26-1": "type:amount"}),
    Kind("blank_key", "an empty key", csv_file(27, row(27, 1, ticket_id=""), row(27, 2)), 2, {"K27-2"},
         {None: "not_null:ticket_id; unique:ticket_id"}),  # the day's two null keys collide too
    Kind("whitespace_key", "a key of spaces only", csv_file(28, row(28, 1, ticket_id="   "), row(28, 2)), 2,
         {"K28-2"}, {None: "not_null:ticket_id; unique:ticket_id"}),
    Kind("duplicate_rows", "the same row twice (exact duplicate)", csv_file(29, row(29, 1), row(29, 1), row(29, 2)),
         3, {"K29-1", "K29-2"}, duplicates=1),
    Kind("duplicate_keys_different_values", "one key, two different rows",
         csv_file(30, row(30, 1, amount="1.00"), row(30, 1, amount="2.00"), row(30, 2)), 3, {"K30-2"},
         {"K30-1": "unique:ticket_id"}, quarantined_rows=2),
    Kind("other_date_format", "a date as MM/DD/YYYY", csv_file(31, row(31, 1, opened="03/01/2024"), row(31, 2)), 2,
         {"K31-2"}, {"K31-1": "type:opened"}),
    Kind("impossible_date_value", "a date that does not exist (2024-02-30)",
         csv_file(32, row(32, 1, opened="2024-02-30"), row(32, 2)), 2, {"K32-2"}, {"K32-1": "type:opened"}),
    Kind("negative_amount", "a negative amount where min is 0", csv_file(33, row(33, 1, amount="-5.00"), row(33, 2)),
         2, {"K33-2"}, {"K33-1": "range:amount"}),
    Kind("value_not_allowed", "a priority outside the allowed set", csv_file(34, row(34, 1, priority="urgent"),
                                                                             row(34, 2)),
         2, {"K34-2"}, {"K34-1": "allowed:priority"}),
    Kind("gzip_named_csv", "a gzip-compressed file named .csv (decompressed, warned)",
         gzip.compress(csv_file(35, *good(35))), 2, {"K35-1", "K35-2"}),
    Kind("very_long_field", "a 200,000-character field (over the CSV field limit)",
         csv_file(36, row(36, 1), row(36, 2, note="x" * 200_000), row(36, 3)), 3, {"K36-1", "K36-3"},
         lines=[(3, "field larger than field limit")]),
    Kind("blank_lines_between_rows", "blank lines between rows (ignored)",
         csv_file(37, row(37, 1), "", "", row(37, 2)), 2, {"K37-1", "K37-2"}),
    Kind("renamed_json_key", "a required JSON key renamed upstream (kind -> type): the file's rows quarantined",
         "\n".join(json.dumps({"event_id": f"E39-{i}", "type": "call", "score": i}) for i in range(1, 4)).encode()
         + b"\n",
         3, quarantined={f"E39-{i}": "not_null:kind" for i in range(1, 4)}, ds=EVENTS),
    Kind("renamed_json_key_column", "the JSON key column renamed (event_id -> eventId); the stage fails naming the "
         "file", "\n".join(json.dumps({"eventId": f"E40-{i}", "kind": "call", "score": i}) for i in range(1, 4)
                          ).encode() + b"\n", 3, quarantined={None: "not_null:event_id; unique:event_id"},
         quarantined_rows=3, ds=EVENTS),
    Kind("number_as_text", "hours as words", csv_file(38, row(38, 1, hours="one"), row(38, 2)), 2, {"K38-2"},
         {"K38-1": "type:hours"}),
]


@dataclass
class Outcome:
    ctx: RunContext
    results: dict
    processed: list[dict]
    quarantined: list[dict]
    lines: list[dict]
    rejected: list[dict]
    raw: list[dict]
    seconds: float


@pytest.fixture(scope="module")
def outcome(tmp_path_factory) -> Outcome:
    import time

    home = tmp_path_factory.mktemp("bad-inputs") / "home"
    settings = make_settings(home, MSP_QUALITY__DATA_DOCS="off")
    landing = Path(settings.landing_root)
    for kind in KINDS:
        path = landing / kind.relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(kind.body)
    suites_dir = home.parent / "expectations"
    suites_dir.mkdir()
    for ds in (TICKETS, EVENTS):
        (suites_dir / f"{ds.name}.json").write_text(json.dumps(
            {"name": ds.name, "meta": {"dataset_checks": CHECKS_OFF}, "expectations": []}))
    ctx = RunContext.create(settings, [date.fromisoformat(DAY), date.fromisoformat(FUTURE)])
    t0 = time.perf_counter()
    try:
        ingest(ctx, [TICKETS, EVENTS], Landing(str(landing)))
        suites = [load_suite(ds, directory=suites_dir) for ds in (TICKETS, EVENTS)]
        results = {r.dataset: r for r in gate(ctx, suites)}
    finally:
        ctx.close()
    seconds = time.perf_counter() - t0
    lake = Lake.from_settings(settings)

    def read(ds) -> list[dict]:
        return lake.read_arrow(ds).to_pylist() if lake.exists(ds) else []

    twins = [(ds.processed_twin(), ds.quarantine_twin()) for ds in (TICKETS, EVENTS)]
    return Outcome(ctx, results, [r for p, _ in twins for r in read(p)], [r for _, q in twins for r in read(q)],
                   read(schemas.get(REJECTED_LINES)), read(schemas.get(REJECTED)),
                   [r for ds in (TICKETS, EVENTS) for r in read(ds)], seconds)


def key_of(kind: Kind, r: dict) -> str:
    return r[kind.ds.primary_key[0]]


@pytest.mark.parametrize("kind", KINDS, ids=[k.id for k in KINDS])
def test_every_row_of_a_bad_file_goes_where_it_should_and_the_counts_reconcile(outcome, kind):
    mine = [r for r in outcome.processed if r["_source_file"] == kind.relative]
    refused = [r for r in outcome.quarantined if r["_source_file"] == kind.relative]
    lines = [r for r in outcome.lines if r["source_file"] == kind.relative]
    files = [r for r in outcome.rejected if r["source_file"] == kind.relative]
    raw = [r for r in outcome.raw if r["_source_file"] == kind.relative]
    assert {key_of(kind, r) for r in mine} == kind.processed
    assert {key_of(kind, r): r["_rules_broken"] for r in refused} == kind.quarantined
    assert len(refused) == kind.refused
    assert sorted((r["line"], r["reason"]) for r in lines) == [
        (n, next(r["reason"] for r in lines if r["line"] == n)) for n, _ in sorted(kind.lines)]
    for (n, reason), r in zip(sorted(kind.lines), sorted(lines, key=lambda x: x["line"]), strict=True):
        assert r["line"] == n and reason in r["reason"], r
        assert r["rows_loaded"] == len(raw) and r["dt"] == kind.dt and r["text"]
    if kind.file_reason:
        [rejected] = files
        assert kind.file_reason in rejected["reason"], rejected["reason"]
        assert not raw and not lines
    else:
        assert not files
    duplicates = len(raw) - len(mine) - len(refused)
    assert duplicates == kind.duplicates
    assert kind.records == (kind.records if files else len(mine) + len(refused) + len(lines) + duplicates)


def test_the_whole_landing_area_is_accounted_for(outcome):
    """Every landing file is loaded, seen before or rejected with a reason; the run says how many of each."""
    notes = outcome.ctx.counts["stage:ingest"].notes
    rejected = sum(1 for k in KINDS if k.file_reason)
    assert notes == [f"landing: {len(KINDS)} file(s): {len(KINDS) - rejected} loaded, 0 seen before, {rejected} "
                     f"rejected, 0 for other days; {sum(len(k.lines) for k in KINDS)} line(s) rejected"]
    for ds in (TICKETS, EVENTS):
        r = outcome.results[ds.name]
        assert r.published and r.counts["reconciled"], (ds.name, r.errors)
        mine = [k for k in KINDS if k.ds is ds and not k.file_reason]
        assert r.counts["raw"] == sum(k.records - len(k.lines) for k in mine)
        assert r.counts["processed"] == sum(len(k.processed) for k in mine)
        assert r.counts["quarantined"] == sum(k.refused for k in mine)
        assert r.counts["duplicates"] == sum(k.duplicates for k in mine)


def test_a_renamed_key_fails_the_stage_naming_the_file_while_the_other_files_publish(outcome):
    r = outcome.results["bi_tickets"]
    assert r.status == "warned" and r.published
    assert [m.split(":")[0] for m in r.stop] == ["schema drift in psa/bi_tickets/bi_tickets_2024-03-01_renamed_key.csv"]
    assert any("missing_column.csv: column note" in w for w in r.warnings)  # a non-key column: a warning
    events = outcome.results["bi_events"]
    assert events.published and [m.split(":")[0] for m in events.stop] == [
        "schema drift in crm/bi_events/bi_events_2024-03-01_renamed_json_key_column.jsonl"]
    assert any("renamed_json_key.jsonl: column kind: required but empty in all 3 rows" in w for w in events.warnings)


def test_warnings_name_the_file_for_decompressed_and_widened_files(outcome):
    warnings = "\n".join(outcome.ctx.warnings)
    assert "gzip_named_csv.csv: the file is gzip-compressed" in warnings
    assert "extra_column.csv: schema drift: column(s) site not declared" in warnings


def test_a_rerun_sees_every_file_as_seen_before(outcome):
    ctx = RunContext.create(outcome.ctx.settings, [date.fromisoformat(DAY), date.fromisoformat(FUTURE)])
    try:
        stats = ingest(ctx, [TICKETS, EVENTS], Landing(outcome.ctx.settings.landing_root))
    finally:
        ctx.close()
    assert sum(s["skipped"] for s in stats.values()) == len(KINDS)
    assert sum(s["rejected"] for s in stats.values()) == 0


def test_the_module_lake_is_fast(outcome):
    assert outcome.seconds < 60, f"ingest + gate of {len(KINDS)} bad files took {outcome.seconds:.1f} s"


def test_the_docs_table_lists_every_kind_with_its_result():
    text = (Path(__file__).resolve().parents[2] / "docs" / "quality.md").read_text()
    for kind in KINDS:
        assert f"| `{kind.id}` | {kind.what} | {kind.result} |" in text, kind.id

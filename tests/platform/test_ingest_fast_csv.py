"""The vectorised CSV reader (``lakehouse.csv_arrow``) against the ``csv`` module: the same raw table, or a fallback.

``parse_csv`` offers a file of ``FAST_CSV_FROM_BYTES`` or more to the vectorised reader, which takes it only
when it can prove that it reads it as the ``csv`` module does. Every test compares both readers on the same
bytes: a file the fast path takes gives the raw table (every column, lineage included) that the ``csv``
module's reading gives, and a file it must not take (any malformed one) gives exactly the ``csv`` module's
result. Hand-made files are padded with ordinary rows past the threshold, so that ``parse_csv`` itself
chooses the path.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest

import schemas
from lakehouse import csv_arrow
from lakehouse.context import RunContext
from lakehouse.ingest import (
    FAST_CSV_FROM_BYTES,
    SEP,
    Landing,
    MalformedFile,
    Parsed,
    _empty_path,
    _unzipped,
    ingest,
    parse_csv,
    parse_csv_arrow,
    parse_csv_rows,
    raw_table,
    row_hash,
)
from schemas import Column, Dataset

TICKETS = Dataset(
    name="fc_tickets", zone="raw", owner="platform", description="fast csv tickets", source="psa", format="csv",
    columns=(Column("ticket_id", "string", nullable=False), Column("priority", "string"), Column("note", "string"),
             Column("hours", "double")),
    primary_key=("ticket_id",), renames={"TicketId": "ticket_id", "Notes": "note"},
)
HEADER = "ticket_id,priority,note,hours"
DAY = "2024-03-01"
AT = datetime(2024, 3, 2, 6, 30, tzinfo=UTC)


def filler(header: str = HEADER, delimiter: str = ","):
    """Ordinary rows for ``header`` (some values quoted, like most exports)."""
    names = [TICKETS.renames.get(h.strip(' "\ufeff'), h.strip(' "\ufeff')) for h in header.split(delimiter)]
    i = 0
    while True:
        values = {"ticket_id": f"F{i}", "priority": "low", "note": f'"plain, quoted ""note"" {i}"',
                  "hours": f"{i % 7}.5"}
        yield delimiter.join(values.get(n, f'"{n} {i}"') for n in names)
        i += 1


def big(*lines: str, header: str = HEADER, end: str = "\n", last: tuple[str, ...] = (), final: bool = True,
        bom: bool = False, delimiter: str = ",") -> bytes:
    """A file of ``header``, ``lines``, ordinary rows for that header past the fast path's threshold, then
    ``last``; ``final``: whether the last line ends with ``end``."""
    out, size = [header, *lines], 0
    rows = filler(header, delimiter)
    while size < FAST_CSV_FROM_BYTES:
        out.append(next(rows))
        size += len(out[-1]) + len(end)
    text = end.join([*out, *last]) + (end if final else "")
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


def reference(ds: Dataset, data: bytes) -> Parsed:
    """The file read by the ``csv`` module only (what ``parse_csv`` gave before the fast path)."""
    out = Parsed()
    return parse_csv_rows(ds, _unzipped(data, out.warnings), out)


def outcome(read, ds: Dataset, data: bytes):
    try:
        p = read(ds, data)
    except MalformedFile as exc:
        return ("rejected", exc.line, exc.reason, exc.column)
    return p if p is None else ("parsed", list(p.rows), list(p.numbers), p.warnings, p.bad)


def raw(ds: Dataset, *files: tuple[str, Parsed]) -> pa.Table:
    return raw_table(ds, [(rel, hashlib.sha256(rel.encode()).hexdigest(), p) for rel, p in files], DAY, AT, "run-1")


def assert_same_tables(got: pa.Table, want: pa.Table) -> None:
    assert got.schema == want.schema
    for name in want.column_names:
        assert got.column(name).equals(want.column(name)), name
    assert got.equals(want)


def assert_fast_and_same(ds: Dataset, data: bytes) -> Parsed:
    """``parse_csv`` takes the fast path and gives the reference's rows, numbers, warnings and raw table."""
    want, got = reference(ds, data), parse_csv(ds, data)
    assert got.table is not None, "the vectorised reader should have taken this file"
    assert want.bad == [] and got.bad == []
    assert got.warnings == want.warnings
    assert got.row_count == len(got.rows) == len(want.rows) and got.rows == want.rows
    assert list(got.numbers) == want.numbers
    assert_same_tables(raw(ds, ("psa/fc_tickets/f.csv", got)), raw(ds, ("psa/fc_tickets/f.csv", want)))
    return got


# ---- well-formed files: the fast path takes them and gives the same raw table ----------------------
WELL_FORMED = {
    "quoted_commas": big('T1,high,"a, b, and c",1', '"T2","low","x,y",",2"'),
    "doubled_quotes": big('T1,high,"he said ""hi""",1', 'T2,"","""""",2', 'T3,"""","""""""",3'),
    "embedded_newlines": big('T1,high,"line one\nline two",1', 'T2,low,"crlf\r\ninside",2',
                             'T3,low,"cr\ronly inside",3', 'T4,low,"\n",4'),
    "crlf": big("T1,high,a,1", 'T2,low,"b\r\nc",2', end="\r\n"),
    "blank_lines": big("", "T1,high,a,1", "", "", "T2,low,b,2", last=("", "")),
    "blank_crlf_lines": big("T1,high,a,1", "", "T2,low,b,2", end="\r\n", last=("",)),
    "no_final_newline": big(last=('T9,low,"last, unterminated",9',), final=False),
    "no_final_newline_unquoted": big(last=("T9,low,last,9",), final=False),
    "bom": big("T1,high,a,1", bom=True),
    "bom_crlf_quoted_header": big(header='"ticket_id","priority","note","hours"', end="\r\n", bom=True),
    "reordered_and_extra_columns": big('1,HQ,"a, b",T1,high,"eu"', header="hours,site,note,ticket_id,priority,region"),
    "renamed_columns": big("T1,high,a,1", header="TicketId,priority,Notes,hours"),
    "header_spaces": big(header=" ticket_id , priority,note ,hours"),
    "empty_values": big("T1,,,", 'T2,"","",""', ",,,", '"",,"",'),
    "unicode": big('T1,très,"日本語 😀 \u2028 sep \x0c ff",1', "T2,a\x00b,\x1f\x1e,2", "T3,\tтаб,\u00a0,3",
                   '\u00e9T4,"\ufeff",x,4'),
    "json_tags": big('T1,high,"{""application"": ""Backup"", ""env"": ""prod""}",1', 'T2,low,"{}",2',
                     'T3,low,"[""a"",""b""]",3'),
}


@pytest.mark.parametrize("case", list(WELL_FORMED), ids=list(WELL_FORMED))
def test_well_formed_files_give_the_same_raw_table_on_the_fast_path(case):
    got = assert_fast_and_same(TICKETS, WELL_FORMED[case])
    if "extra" in case:
        assert got.warnings == ["schema drift: column(s) site, region not declared; accepted and ignored"]


def test_a_large_file_of_blank_lines_after_its_header_has_no_rows_either_way():
    data = (HEADER + "\n" * FAST_CSV_FROM_BYTES).encode()
    got, want = parse_csv(TICKETS, data), reference(TICKETS, data)
    assert got.table is not None and got.row_count == 0 and not got.rows and want.rows == [] and not want.bad
    assert_same_tables(raw(TICKETS, ("a.csv", got)), raw(TICKETS, ("a.csv", want)))


def test_the_values_of_the_edge_cases_are_read_as_the_csv_module_reads_them():
    got = parse_csv(TICKETS, big('T1,high,"he said ""hi"", then\r\nleft",1,x', "", "T2,très,,2,x",
                                 header="ticket_id,priority,Notes,hours,extra"))
    assert got.table is not None
    assert got.rows[:2] == [["T1", "high", 'he said "hi", then\r\nleft', "1"], ["T2", "très", "", "2"]]
    assert list(got.numbers[:3]) == [1, 2, 3]  # the blank line is not a record


def test_a_gzip_file_is_decompressed_once_and_warned_about_once():
    data = gzip.compress(big("T1,high,a,1"))
    got = assert_fast_and_same(TICKETS, data)
    assert len(got.warnings) == 1 and "gzip-compressed" in got.warnings[0]


def test_a_day_mixing_fast_and_slow_files_gives_the_same_table_as_the_csv_module():
    files = {"a.csv": big("T1,high,a,1"), "b.csv": b"ticket_id,priority,note,hours\nB1,low,small,1\n",
             "c.csv": big("C1,low,c,3", header="note,ticket_id,hours,priority"),
             "d.csv": b"ticket_id,priority,note,hours\n", "e.csv": big("E1,low,e,5")}
    got = [(rel, parse_csv(TICKETS, data)) for rel, data in files.items()]
    assert [p.table is not None for _, p in got] == [True, False, True, False, True]
    want = [(rel, reference(TICKETS, data)) for rel, data in files.items()]
    assert_same_tables(raw(TICKETS, *got), raw(TICKETS, *want))
    assert_same_tables(raw(TICKETS), raw(TICKETS, *[(r, p) for r, p in want if r == "d.csv"]))  # no rows at all


def test_row_hashes_are_the_row_hash_of_each_row():
    rows = [["a", "b", "c"], ["", "", ""], ["日本", "😀", "\x00"], [None, "x", None], ["a\x1fb", "", "é"]]
    columns = [pa.array(list(col), pa.string()) for col in zip(*rows, strict=True)]
    assert csv_arrow.row_hashes(columns, SEP).to_pylist() == [row_hash(r) for r in rows]
    chunked = [pa.chunked_array([c.slice(0, 2), c.slice(2)]) for c in columns]
    assert csv_arrow.row_hashes(chunked, SEP).to_pylist() == [row_hash(r) for r in rows]
    assert csv_arrow.row_hashes([columns[0].slice(1)], SEP).to_pylist() == [row_hash([r[0]]) for r in rows[1:]]
    assert csv_arrow.row_hashes([c.slice(0, 0) for c in columns], SEP).to_pylist() == []


# ---- malformed or doubtful files: exactly the csv module's result ----------------------------------
def _long_field() -> str:
    return "x" * (csv.field_size_limit() + 1)


#: (file, whether the fast path itself raises the reference's error: a header problem it reads the same)
MALFORMED = {
    "ragged_extra_field": (big("T1,high,a,1,extra"), False),
    "ragged_missing_field": (big("T1,high,a"), False),
    "truncated_last_line": (big(last=("T9,lo",), final=False), False),
    "text_after_closing_quote": (big('T1,high,"a"b,1'), False),
    "space_after_closing_quote": (big('T1,high,"a" ,1'), False),
    "quote_inside_unquoted_field": (big('T1,high,a"b,1'), False),
    "quote_after_space": (big('T1,high, "a",1'), False),
    "unbalanced_quote": (big('T1,high,"oops,1'), False),
    "unbalanced_quote_last": (big(last=('T9,low,"never closed,9',)), False),
    "undecodable_byte": (big("T1,high,a,1") + "T2,tr\u00e8s,b,2\n".encode("latin-1"), False),
    "utf16_file": (big("T1,high,a,1").decode().encode("utf-16"), False),
    "lone_cr_between_fields": (big("T1,high,a\rb,1"), False),
    "lone_cr_line_ends": (big("T1,high,a,1", "T2,low,b,2", end="\r"), False),
    "bom_on_the_first_data_line": (big("\ufeffT1,high,a,1"), False),
    "two_boms": (big("T1,high,a,1", header="\ufeff" + HEADER, bom=True), True),
    "field_over_the_csv_limit": (big(f"T1,high,{_long_field()},1"), False),
    "blank_first_line": (b"\n" + big(), False),
    "blank_header": (big(header="   "), False),
    "header_only": (HEADER.encode() + b"\n", False),
    "header_without_newline": (HEADER.encode(), False),
    "wrong_delimiter": (big("T1;high;a;1", header=HEADER.replace(",", ";"), delimiter=";"), False),
    "missing_column": (big(header="ticket_id,priority,hours"), True),
    "renamed_key": (big(header="id,priority,note,hours"), True),
    "duplicate_header_column": (big(header=HEADER + ",note"), True),
    "zero_bytes": (b"", False),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_malformed_files_give_exactly_the_csv_modules_result(case):
    data, header_error = MALFORMED[case]
    want = outcome(reference, TICKETS, data)
    assert outcome(parse_csv, TICKETS, data) == want
    fast = outcome(parse_csv_arrow, TICKETS, data)
    if header_error:
        assert want[0] == "rejected" and fast == want
    else:
        assert fast is None, "the vectorised reader must not take this file"
        if want[0] == "parsed":
            assert_same_tables(raw(TICKETS, ("f.csv", parse_csv(TICKETS, data))),
                               raw(TICKETS, ("f.csv", reference(TICKETS, data))))


def test_the_malformed_cases_are_what_they_say_for_the_csv_module():
    """The cases above are real differences: the reference refuses or locates their lines."""
    for case in ("ragged_extra_field", "text_after_closing_quote", "unbalanced_quote", "undecodable_byte",
                 "field_over_the_csv_limit", "truncated_last_line"):
        assert reference(TICKETS, MALFORMED[case][0]).bad, case
    assert "wrong delimiter" in outcome(reference, TICKETS, MALFORMED["wrong_delimiter"][0])[2]


# ---- generated exports ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    from lakehouse.synth.engine import generate

    root = tmp_path_factory.mktemp("fast-csv")
    generate("small", 42, root / "landing", root / "truth", start=date(2024, 1, 1), days=2)
    return root / "landing"


def csv_datasets() -> list[Dataset]:
    return [ds for ds in schemas.datasets("raw") if ds.format == "csv"]


def test_every_generated_csv_file_reads_the_same_on_the_fast_path(generated):
    landing = Landing(str(generated))
    taken = 0
    for ds in csv_datasets():
        by_day: dict[str, list] = {}
        for f in landing.files(ds):
            by_day.setdefault(f.dt, []).append(f)
        for dt, files in by_day.items():
            fast, slow = [], []
            for f in files:
                data = landing.read(f.relative)
                want = reference(ds, data)
                got = parse_csv_arrow(ds, data)
                assert got is not None, f"{f.relative}: a generated file should be well-formed"
                assert got.rows == want.rows and list(got.numbers) == want.numbers and not want.bad, f.relative
                assert got.warnings == want.warnings
                fast.append((f.relative, got))
                slow.append((f.relative, want))
                taken += 1
            assert_same_tables(raw_table(ds, [(r, "h" * 64, p) for r, p in fast], dt, AT, "r"),
                               raw_table(ds, [(r, "h" * 64, p) for r, p in slow], dt, AT, "r"))
    assert taken >= len(csv_datasets())


def test_a_large_generated_cost_export_takes_the_fast_path(generated):
    """The FOCUS cost export (quoted strings, NULL tokens, a JSON Tags column) made large from generated
    rows: ``parse_csv`` takes the fast path and gives the csv module's table."""
    ds = schemas.get("raw.focus_costs")
    files = sorted((generated / ds.source / ds.name).glob("*.csv"))
    header = files[0].read_bytes().split(b"\n", 1)[0]
    body = b"".join(f.read_bytes().split(b"\n", 1)[1] for f in files)
    data = header + b"\n" + body * (FAST_CSV_FROM_BYTES // len(body) + 1)
    got = parse_csv(ds, data)
    assert got.table is not None
    want = reference(ds, data)
    assert got.rows == want.rows and not want.bad
    assert_same_tables(raw(ds, ("cloud/focus_costs/f.csv", got)), raw(ds, ("cloud/focus_costs/f.csv", want)))


# ---- through the ingestion ------------------------------------------------------------------------------
def test_ingesting_a_fast_and_a_slow_file_loads_the_rows_with_their_lineage(settings):
    landing = Path(settings.landing_root)
    folder = landing / TICKETS.source / TICKETS.name
    folder.mkdir(parents=True)
    good = big('T1,high,"a, ""b""\nc",1', "", "T2,low,,2")
    ragged = big("R1,high,a,1,extra", "R2,low,b,2")
    (folder / f"good_{DAY}.csv").write_bytes(good)
    (folder / f"ragged_{DAY}.csv").write_bytes(ragged)
    assert parse_csv(TICKETS, good).table is not None and parse_csv(TICKETS, ragged).table is None
    ctx = RunContext.create(settings, [date.fromisoformat(DAY)])
    stats = ingest(ctx, [TICKETS], Landing(str(landing)))[TICKETS.name]
    n_good, n_ragged = parse_csv(TICKETS, good).row_count, parse_csv(TICKETS, ragged).row_count
    assert stats["rows"] == n_good + n_ragged and stats["lines_rejected"] == 1 and stats["rejected"] == 0
    rows = ctx.lake.read_arrow(TICKETS).to_pylist()
    names = [c.name for c in TICKETS.data_columns]
    for r in rows:
        assert r["_row_hash"] == row_hash([r[n] for n in names])
    by_file = {}
    for r in rows:
        by_file.setdefault(r["_source_file"].rsplit("/", 1)[1], []).append((r["_row_number"], r["ticket_id"]))
    assert sorted(by_file[f"good_{DAY}.csv"])[:3] == [(1, "T1"), (2, "T2"), (3, "F0")]
    assert sorted(by_file[f"ragged_{DAY}.csv"])[:2] == [(2, "R2"), (3, "F0")]
    assert f"good_{DAY}.csv" not in (ctx.lake.read_text(_empty_path(TICKETS)) or "")  # not taken for an empty file

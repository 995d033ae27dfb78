"""How a source text reads as its declared type (lakehouse.quality.compile.typed_frame), on DuckDB."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from lakehouse.quality.compile import CompileError, strptime_format, typed_frame
from schemas import LINEAGE_COLUMNS, Column, Dataset

UTC = dt.UTC


def read(columns: list[Column], rows: list[tuple], null_tokens=()) -> list[dict]:
    """Type raw rows (text values in declared column order) and return them, in input order."""
    import ibis

    ds = Dataset(name="t", zone="raw", owner="platform", description="d", source="s", format="csv",
                 columns=tuple(columns), null_tokens=tuple(null_tokens))
    data = {c.name: pa.array([r[i] for r in rows], pa.string()) for i, c in enumerate(columns)}
    n = len(rows)
    lineage = {"_source_file": ["f.csv"] * n, "_source_hash": ["h"] * n, "_row_number": list(range(1, n + 1)),
               "_row_hash": [f"r{i}" for i in range(n)], "_ingested_at": [dt.datetime(2024, 1, 1, tzinfo=UTC)] * n,
               "_run_id": ["run"] * n}
    assert list(lineage) == [c for c, _, _ in LINEAGE_COLUMNS]
    table = pa.table({**data, **lineage, "dt": ["2024-03-01"] * n})
    con = ibis.duckdb.connect()
    out = con.to_pyarrow(typed_frame(con.create_table("raw", table), ds)).sort_by("_row_number").to_pylist()
    return [{c.name: r[c.name] for c in columns} for r in out]


def col(rows):
    return [next(iter(r.values())) for r in rows]


def test_numbers_read_only_in_plain_notation_and_are_never_rounded():
    texts = ["12", " 12 ", "+7", "-3", "12.0", "1e3", "", "  ", "abc", "2147483648"]
    assert col(read([Column("n", "int")], [(t,) for t in texts])) == [12, 12, 7, -3, None, None, None, None, None,
                                                                       None]
    texts = ["1.50", "1.5", "-0.01", ".5", "7", "1.505", "1,50", "USD 1.00", "1e2", "12345.00"]
    assert col(read([Column("d", "decimal(6,2)")], [(t,) for t in texts])) == [
        Decimal("1.50"), Decimal("1.50"), Decimal("-0.01"), Decimal("0.50"), Decimal("7.00"), None, None, None,
        None, None]
    texts = ["1.5", "-2", "1e3", "2.5E-1", ".5", "NaN", "inf", "1.2.3"]
    assert col(read([Column("x", "double")], [(t,) for t in texts])) == [1.5, -2.0, 1000.0, 0.25, 0.5, None, None,
                                                                         None]


def test_booleans_read_spark_spellings_in_any_case():
    texts = ["true", "FALSE", "t", "F", "yes", "No", "y", "n", "1", "0", "maybe", "2"]
    assert col(read([Column("b", "boolean")], [(t,) for t in texts])) == [
        True, False, True, False, True, False, True, False, True, False, None, None]


def test_dates_and_timestamps_read_iso_8601_and_impossible_days_do_not_read():
    texts = ["2024-03-01", "2024-02-29", "2023-02-29", "2024-02-30", "03/01/2024", "2024-3-1", " 2024-03-01 "]
    assert col(read([Column("d", "date")], [(t,) for t in texts])) == [
        dt.date(2024, 3, 1), dt.date(2024, 2, 29), None, None, None, None, dt.date(2024, 3, 1)]
    texts = ["2024-03-01 09:00:00", "2024-03-01T09:00:00Z", "2024-03-01T09:00:00.5+02:00", "2024-03-01 09:00",
             "2024-03-01", "2024-03-01T09:00:00+0200", "2024-03-01 24:00:00", "03/01/2024 09:00", "2024-03-01 9:00"]
    assert col(read([Column("t", "timestamp")], [(t,) for t in texts])) == [
        dt.datetime(2024, 3, 1, 9, tzinfo=UTC), dt.datetime(2024, 3, 1, 9, tzinfo=UTC),
        dt.datetime(2024, 3, 1, 7, 0, 0, 500000, tzinfo=UTC), dt.datetime(2024, 3, 1, 9, tzinfo=UTC),
        dt.datetime(2024, 3, 1, tzinfo=UTC), dt.datetime(2024, 3, 1, 7, tzinfo=UTC), None, None, None]


def test_blanks_and_null_tokens_are_null_and_other_text_is_kept_as_is():
    rows = read([Column("s", "string"), Column("n", "int")], [(" a ", "NULL"), ("", " 1"), ("NULL", "")],
                null_tokens=("NULL",))
    assert rows == [{"s": " a ", "n": None}, {"s": None, "n": 1}, {"s": None, "n": None}]


FORMATS = ["%Y-%m-%d %H:%M:%S", "%d/%m/%Y", "%m/%d/%y %I:%M %p", "%d %b %Y", "%B %d, %Y", "%Y%m%d",
           "%Y-%m-%dT%H:%M:%S.%f%z", "%d.%m.%Y %H:%M"]
TEXTS = ["2024-03-01 09:05:07", "2024-3-1 9:05:07", "2024-02-30 10:00:00", "01/03/2024", "1/3/2024", "31/04/2024",
         "03/01/24 09:30 PM", "3/1/24 12:00 am", "12/31/99 12:15 pm", "01 Mar 2024", "1 mar 2024", "01 March 2024",
         "March 1, 2024", "MARCH 01, 2024", "20240301", "2024031", "2024-03-01T09:00:00.25+0200",
         "2024-03-01T09:00:00.123456Z", "2024-03-01T09:00:00.1-05:30", "01.03.2024 23:59", "01.03.2024 24:00",
         "2024-03-01 09:05:07 ", "x2024-03-01 09:05:07", "2024-03-01  09:05:07"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_declared_formats_read_as_python_strptime_reads_them(fmt):
    def python(text: str):
        try:
            value = dt.datetime.strptime(text.strip(), fmt)
        except ValueError:
            return None
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)

    got = col(read([Column("t", "timestamp", formats=(fmt,))], [(t,) for t in TEXTS]))
    expected = [python(t) for t in TEXTS]
    assert got == expected
    assert any(expected)  # each format reads some of the texts


def test_the_first_format_that_reads_wins_and_a_date_column_keeps_the_day():
    rows = read([Column("d", "date", formats=("%d/%m/%Y", "%Y-%m-%d"))], [("01/03/2024",), ("2024-03-02",), ("x",)])
    assert col(rows) == [dt.date(2024, 3, 1), dt.date(2024, 3, 2), None]


def test_formats_without_a_portable_reading_are_refused():
    with pytest.raises(CompileError, match="%j"):
        strptime_format("%Y-%j")
    with pytest.raises(CompileError, match="names a field twice"):
        strptime_format("%Y %Y")

"""Ingestion: landing files → raw tables with lineage.

Every raw dataset declared in ``schemas/datasets/raw/`` names its landing folder (``source``) and format.
Files are grouped by export day (the first ``YYYY-MM-DD`` in their path) into the raw rows of that day
(``dt``). A day is ingested again only when its set of files changed (a new file, or new content under the
same name): every raw row carries the SHA-256 of its file (``_source_hash``) and every rejected file is
recorded with its own, so the lake itself says which files it holds; ingesting the same file twice adds
nothing, and a corrected export replaces that day.

Raw rows keep every source value as text plus ``_source_file``, ``_source_hash``, ``_row_number``,
``_row_hash``, ``_ingested_at`` and ``_run_id``.

Every file of a dataset's landing folder is loaded, seen before, or rejected with a reason:

* a line that cannot be read as a row (a truncated or ragged CSV line, an unbalanced quote, a broken JSON
  line, bytes that are not UTF-8, an oversized field) goes to ``quarantine.rejected_lines`` with the file,
  the line, the reason and its text; the file's other rows load;
* a file that cannot be read at all (an empty file, a header that is not UTF-8, a declared column missing
  from the header, a header that repeats a column, the wrong delimiter, an unreadable PDF) and a file whose
  name holds no export date, or an impossible one (``2024-13-45``), or a date after today, go to
  ``quarantine.rejected_files`` with the reason (undated files under ``dt = 'undated'``);
* columns that a file adds beyond the declaration are reported as schema drift warnings; a gzip-compressed
  file named ``.csv`` is decompressed (with a warning).

Each dataset's days are committed in one snapshot; the rejected files and rejected lines of the run in one
snapshot each, first, so that a crash before the raw commit makes the next run see a day whose files it does
not all know and ingest it again (a file is known by its raw rows, its rejection, or, when none of its rows
loaded, its rejected lines).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

import schemas
from lakehouse import csv_arrow, faults
from schemas import LINEAGE_COLUMNS, Dataset

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.context import RunContext

DATE_IN_PATH = re.compile(r"(\d{4}-\d{2}-\d{2})")
REJECTED = "quarantine.rejected_files"
REJECTED_LINES = "quarantine.rejected_lines"
#: ``dt`` of the rejected files whose name holds no (valid) export date.
UNDATED = "undated"
SEP = "\x1f"
#: Characters of a rejected line's text that are kept.
LINE_TEXT_MAX = 4096
#: Delimiters a CSV export may have been written with instead of a comma.
OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}
#: CSV files from this size are first offered to the vectorised reader (:mod:`lakehouse.csv_arrow`); below
#: it the ``csv`` module is as fast (Arrow's fixed costs per file and per day outweigh its speed per row).
FAST_CSV_FROM_BYTES = 256 * 2**10


class MalformedFile(ValueError):
    def __init__(self, line: int | None, reason: str, column: str | None = None):
        super().__init__(reason)
        self.line = line
        self.reason = reason
        self.column = column


@dataclass(frozen=True)
class BadLine:
    """A line of a file that was not read as a row."""

    line: int  # physical line where the record starts (1 = the header of a CSV)
    record: int  # its position among the file's data records (1 = the first)
    reason: str
    text: str


class TableRows(Sequence[list[str | None]]):
    """The rows of an Arrow table as lists, made only when asked for: ``len`` and truth need no rows."""

    def __init__(self, table: pa.Table):
        self.table = table
        self._rows: list[list[str | None]] | None = None

    def _all(self) -> list[list[str | None]]:
        if self._rows is None:
            self._rows = [list(r) for r in zip(*(c.to_pylist() for c in self.table.columns), strict=True)]
        return self._rows

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, i):  # type: ignore[override]
        return self._all()[i]

    def __iter__(self):
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        return list(self) == (list(other) if isinstance(other, Sequence) else other)

    def __repr__(self) -> str:
        return f"TableRows({self.table.num_rows} rows)"


@dataclass
class Parsed:
    """A file's rows. Read by the vectorised CSV reader, its data columns are in ``table`` (declared names and
    order, all text, never null), ``rows`` is a view of it (lists made only when iterated) and ``numbers`` is
    ``range(1, n + 1)``; otherwise ``table`` is None and ``rows`` a list. :attr:`row_count` counts either."""

    rows: Sequence[list[str | None]] = field(default_factory=list)  # data columns in declared order
    warnings: list[str] = field(default_factory=list)
    #: the data record number of each row (1 = the first record of the file, rejected ones counted)
    numbers: Sequence[int] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    table: pa.Table | None = None

    @property
    def row_count(self) -> int:
        return self.table.num_rows if self.table is not None else len(self.rows)

    def add(self, row: list[str | None], number: int) -> None:
        self.rows.append(row)  # type: ignore[attr-defined]
        self.numbers.append(number)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class LandingFile:
    dataset: str
    relative: str  # path relative to the landing root
    dt: str
    size: int = 0  # bytes


# ---- landing area ---------------------------------------------------------------------------------
class Landing:
    """Read access to the landing area (a local folder or an S3 prefix)."""

    def __init__(self, root: str):
        self.root = root.rstrip("/")
        if self.root.startswith("s3://"):
            self.fs, base = pafs.FileSystem.from_uri(self.root)
            self._base = base.rstrip("/")
        else:
            from pathlib import Path

            self.fs = pafs.LocalFileSystem()
            self._base = str(Path(self.root).resolve())

    def files(self, ds: Dataset) -> list[LandingFile]:
        """The files of a dataset's folder whose name holds a valid export date."""
        return self.listing(ds)[0]

    def listing(self, ds: Dataset) -> tuple[list[LandingFile], list[tuple[str, str]]]:
        """(files with a valid export date, (file, reason) of those without one). Hidden files (partial
        uploads, editor files) are not part of the landing area."""
        folder = f"{self._base}/{ds.source}/{ds.name}"
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(folder, recursive=True))
        except FileNotFoundError:
            return [], []
        out, undated = [], []
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            below = info.path[len(folder) + 1:]
            if below.startswith(".") or "/." in below:
                continue  # partial uploads and editor files
            relative = info.path[len(self._base) + 1:]
            m = DATE_IN_PATH.search(below)
            if not m:
                undated.append((relative, f"no export date (YYYY-MM-DD) in the file name {below!r}; the export "
                                          "day of a file is the first date in its name"))
                continue
            try:
                date.fromisoformat(m.group(1))
            except ValueError:
                undated.append((relative, f"impossible export date {m.group(1)!r} in the file name {below!r}"))
                continue
            out.append(LandingFile(ds.name, relative, m.group(1), info.size or 0))
        return sorted(out, key=lambda f: (f.dt, f.relative)), sorted(undated)

    def read(self, relative: str) -> bytes:
        with self.fs.open_input_stream(f"{self._base}/{relative}") as fh:
            return fh.read()


# ---- parsers ---------------------------------------------------------------------------------------
def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MalformedFile(line, _not_utf8(data, exc.start)) from None
    return text.removeprefix("\ufeff")


def _not_utf8(data: bytes, offset: int) -> str:
    what = ("a UTF-16 file" if data[:2] in (b"\xff\xfe", b"\xfe\xff")
            else f"byte 0x{data[offset]:02x} at offset {offset}")
    return f"not valid UTF-8 ({what}); re-export the file as UTF-8"


def _decode_lenient(data: bytes) -> str:
    """The text of a file; bytes that are not UTF-8 kept as lone surrogates (``surrogateescape``), so that
    only the lines holding them are refused. A file that is not UTF-8 from its first bytes (UTF-16) is
    refused whole."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        if data[:2] in (b"\xff\xfe", b"\xfe\xff") or exc.start == 0:
            raise MalformedFile(1, _not_utf8(data, exc.start)) from None
        return data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")


_SURROGATE = re.compile("[\udc80-\udcff]")


def _bad_bytes(text: str) -> str | None:
    """The reason a text holding undecodable bytes is refused, or None."""
    m = _SURROGATE.search(text)
    if not m:
        return None
    return f"not valid UTF-8 (byte 0x{ord(m.group()) - 0xDC00:02x}); re-export the file as UTF-8"


def _shown(text: str) -> str:
    """A line's text as it can be stored: undecodable bytes as ``\\xNN``, at most ``LINE_TEXT_MAX`` chars."""
    text = text.rstrip("\r\n")
    if _SURROGATE.search(text):
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text if len(text) <= LINE_TEXT_MAX else text[:LINE_TEXT_MAX] + f"... ({len(text):,} characters)"


def _unzipped(data: bytes, warnings: list[str]) -> bytes:
    """The bytes of a file; a gzip-compressed export named like a plain one is decompressed."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        out = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise MalformedFile(None, f"gzip-compressed but unreadable ({exc}); re-export the file") from None
    warnings.append("the file is gzip-compressed although its name does not say so; decompressed and loaded")
    return out


def _header_columns(ds: Dataset, header: list[str], warnings: list[str]) -> list[int | None]:
    """Map declared data columns to header positions; reject on missing columns, warn on added ones."""
    names = [ds.renames.get(h.strip(), h.strip()) for h in header]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise MalformedFile(1, f"header repeats column(s) {', '.join(dupes)}", dupes[0])
    declared = [c.name for c in ds.data_columns]
    missing = [c for c in declared if c not in names]
    if missing:
        wrong = _other_delimiter(ds, header)
        if wrong:
            raise MalformedFile(1, wrong)
        keys = [c for c in missing if c in ds.primary_key]
        missing = keys + [c for c in missing if c not in keys]  # the key column first: it decides fail_on_drift
        raise MalformedFile(1, f"schema drift: declared column(s) {', '.join(missing)} missing from the header "
                               f"(removed or renamed upstream)" + (f"; key column {keys[0]}" if keys else ""),
                            missing[0])
    added = [n for n in names if n not in declared]
    if added:
        warnings.append(f"schema drift: column(s) {', '.join(added)} not declared; accepted and ignored")
    return [names.index(c) for c in declared]


def _other_delimiter(ds: Dataset, header: list[str]) -> str | None:
    """Why a header that lacks declared columns looks written with another delimiter than a comma."""
    line = ",".join(header)
    declared = {c.name for c in ds.data_columns}
    best, found = None, 0
    for delimiter in OTHER_DELIMITERS:
        names = {ds.renames.get(h.strip(), h.strip()) for h in line.split(delimiter)}
        hits = len(names & declared)
        if line.count(delimiter) and hits > found:
            best, found = delimiter, hits
    if best is None or found < 2:
        return None
    return (f"wrong delimiter: the header is separated by {best!r} ({OTHER_DELIMITERS[best]}), not ','; "
            f"{found} of {len(declared)} declared columns read with {best!r}; re-export the file comma-separated")


def _physical_lines(text: str) -> list[str]:
    """Lines with their ending (only ``\\n`` ends a line: ``str.splitlines`` would also split at form feeds
    and other control characters that may sit inside a field)."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def parse_csv(ds: Dataset, data: bytes) -> Parsed:
    """A CSV file's rows. A file of :data:`FAST_CSV_FROM_BYTES` or more (after decompression) is offered to
    the vectorised reader first (:func:`parse_csv_arrow`: the largest exports spent most of ingestion's time
    in the ``csv`` module); it takes the file only when it can prove it reads it exactly as the ``csv``
    module does, and every other file (small, not UTF-8, any quoting doubt, a ragged record...) is read by
    :func:`parse_csv_rows`, which also locates and refuses the lines that do not read."""
    out = Parsed()
    data = _unzipped(data, out.warnings)
    if len(data) >= FAST_CSV_FROM_BYTES:
        fast = parse_csv_arrow(ds, data, out.warnings)
        if fast is not None:
            return fast
    return parse_csv_rows(ds, data, out)


def parse_csv_arrow(ds: Dataset, data: bytes, warnings: Sequence[str] = ()) -> Parsed | None:
    """A (decompressed) CSV file read by Arrow (:func:`lakehouse.csv_arrow.read`), or None when it cannot be
    sure to give what :func:`parse_csv_rows` gives: then nothing is reported, the caller reads the file again.
    A header that misses a declared column raises as it does there. ``warnings`` are the file's so far."""
    read = csv_arrow.read(data)
    if read is None:
        return None
    header, records = read
    out = Parsed(warnings=list(warnings))
    positions = _header_columns(ds, header, out.warnings)
    table = pa.table([records.column(i) for i in positions], names=[c.name for c in ds.data_columns])
    out.table, out.rows, out.numbers = table, TableRows(table), range(1, table.num_rows + 1)
    return out


def parse_csv_rows(ds: Dataset, data: bytes, out: Parsed | None = None) -> Parsed:
    """A (decompressed) CSV file read record by record with the ``csv`` module (``out`` holds the warnings
    so far)."""
    out = out if out is not None else Parsed()
    text = _decode_lenient(data)
    if not text.strip():
        raise MalformedFile(1, "empty file: no header row")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise MalformedFile(1, f"CSV syntax error in the header: {exc}") from None
    if _bad_bytes(",".join(header)):
        raise MalformedFile(1, f"header {_bad_bytes(','.join(header))}")
    positions = _header_columns(ds, header, out.warnings)
    width = len(header)
    header_lines = reader.line_num
    clean = _SURROGATE.search(text) is None  # no undecodable byte anywhere: no row to check for one
    same = positions == list(range(width))  # the header is the declared columns, in their order
    rows, numbers = out.rows, out.numbers
    try:  # the fast path: every record reads as a row of the header's width
        for row in reader:
            if not row:
                continue  # a blank line
            if len(row) != width or (not clean and _bad_bytes(SEP.join(row))):
                break
            rows.append(row if same else [row[i] for i in positions])
            numbers.append(len(rows))
        else:
            return out
    except csv.Error:
        pass
    return _parse_csv_lines(text, header_lines, width, positions, out)


def _parse_csv_lines(text: str, header_lines: int, width: int, positions: list[int | None], out: Parsed) -> Parsed:
    """Record by record: a record that does not read as a row of ``width`` fields is refused alone. A record
    whose quote stays open over several lines and does not read is refused as its first line only, and
    reading goes on at the next line (an unbalanced quote would otherwise swallow the rest of the file)."""
    out.rows, out.numbers = [], []
    lines = _physical_lines(text)
    i, record = header_lines, 0
    while i < len(lines):
        if lines[i] in ("\n", "\r\n"):
            i += 1
            continue
        j, buf = i, lines[i]
        while buf.count('"') % 2 and j + 1 < len(lines):
            j += 1
            buf += lines[j]
        record += 1
        reason = None
        try:
            rows = list(csv.reader(io.StringIO(buf, newline=""), strict=True))
        except csv.Error as exc:
            rows, reason = [], f"CSV syntax error: {exc}"
        if reason is None and (len(rows) != 1 or len(rows[0]) != width):
            found = len(rows[0]) if len(rows) == 1 else sum(len(r) for r in rows)
            reason = f"expected {width} fields, found {found}" + (" (truncated line?)" if found < width else "")
        if reason is None:
            reason = _bad_bytes(SEP.join(rows[0]))
        if reason is None:
            out.add([rows[0][k] for k in positions], record)
            i = j + 1
        elif j > i or buf.count('"') % 2:  # an open quote: refuse its line, read on from the next one
            out.bad.append(BadLine(i + 1, record, f"unbalanced quote ({reason})", _shown(lines[i])))
            i += 1
        else:
            out.bad.append(BadLine(i + 1, record, reason, _shown(buf)))
            i = j + 1
    return out


def _jsonl_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, sort_keys=True)


def parse_jsonl(ds: Dataset, data: bytes) -> Parsed:
    out = Parsed()
    text = _decode_lenient(_unzipped(data, out.warnings))
    if not text.strip():
        raise MalformedFile(1, "empty file: no JSON lines")
    declared = [c.name for c in ds.data_columns]
    extra: set[str] = set()
    record = 0
    for n, line in enumerate(_physical_lines(text), start=1):
        if not line.strip():
            continue
        record += 1
        reason = _bad_bytes(line)
        obj: Any = None
        if reason is None:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                reason = f"invalid JSON: {exc.msg} at column {exc.colno}"
        if reason is None and not isinstance(obj, dict):
            reason = f"expected a JSON object per line, found {type(obj).__name__}"
        if reason is not None:
            out.bad.append(BadLine(n, record, reason, _shown(line)))
            continue
        obj = {ds.renames.get(k, k): v for k, v in obj.items()}
        extra.update(k for k in obj if k not in declared)
        out.add([_jsonl_value(obj.get(c)) for c in declared], record)
    if extra:
        out.warnings.append(f"schema drift: key(s) {', '.join(sorted(extra))} not declared; accepted and ignored")
    return out


def parse_document(ds: Dataset, data: bytes, relative: str) -> Parsed:
    """One row per document: its text (from the text layer, or flagged for OCR when there is none)."""
    name = relative.rsplit("/", 1)[-1]
    lower = name.lower()
    if lower.endswith(".pdf"):
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(io.BytesIO(data))
            pages = len(reader.pages)
            text = "\n".join((p.extract_text() or "") for p in reader.pages).strip()
        except (PdfReadError, ValueError, KeyError, OSError) as exc:
            raise MalformedFile(None, f"unreadable PDF: {exc}") from None
        mime, extraction = "application/pdf", ("pdf_text" if len(text) >= 40 else "needs_ocr")
    elif lower.endswith((".txt", ".text", ".md")):
        text, pages, mime, extraction = _decode(data), 1, "text/plain", "text"
    else:
        raise MalformedFile(None, f"unsupported document type {name!r} (expected .pdf or .txt)")
    values = {
        "file_name": name, "mime_type": mime, "size_bytes": str(len(data)),
        "sha256": hashlib.sha256(data).hexdigest(), "page_count": str(pages),
        "text": text if extraction != "needs_ocr" else "", "extraction": extraction,
    }
    declared = [c.name for c in ds.data_columns]
    return Parsed(rows=[[values.get(c) for c in declared]], numbers=[1])


def parse(ds: Dataset, data: bytes, relative: str) -> Parsed:
    if ds.format == "csv":
        return parse_csv(ds, data)
    if ds.format == "jsonl":
        return parse_jsonl(ds, data)
    return parse_document(ds, data, relative)


# ---- building the raw table ------------------------------------------------------------------------
def row_hash(values: Sequence[str | None]) -> str:
    """SHA-256 of a row's values joined by the unit separator, a missing value (a JSON line without the key)
    as NUL."""
    try:
        text = SEP.join(values)  # type: ignore[arg-type]
    except TypeError:  # a None among them
        text = SEP.join("\x00" if v is None else v for v in values)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def raw_table(ds: Dataset, parsed: list[tuple[str, str, Parsed]], dt: str, ingested_at, run_id: str) -> pa.Table:
    """The raw rows of one export day: ``parsed`` holds (file, its SHA-256, its parsed rows), as Python rows or
    as an Arrow table (the vectorised CSV reader's); the table is the same either way. The files with rows are
    turned into columns in runs of the same kind, in order, and the runs concatenated."""
    names = [c.name for c in ds.data_columns]
    pieces: list[dict[str, pa.Array]] = []
    listed: list[tuple[str, str, Parsed]] = []
    for relative, digest, p in parsed:
        if p.table is None:
            listed.append((relative, digest, p))
        elif p.table.num_rows:
            if listed:
                pieces.append(_listed_columns(names, listed))
                listed = []
            pieces.append(_table_columns(names, relative, digest, p))
    if listed or not pieces:
        pieces.append(_listed_columns(names, listed))
    arrays = pieces[0] if len(pieces) == 1 else {k: pa.concat_arrays([p[k] for p in pieces]) for k in pieces[0]}
    n = len(arrays[LINEAGE_COLUMNS[0][0]])
    at, run = (c for c, _, _ in LINEAGE_COLUMNS[4:])
    arrays[at] = pa.array([ingested_at] * n, pa.timestamp("us", tz="UTC"))
    arrays[run] = pa.array([run_id] * n, pa.string())
    arrays["dt"] = pa.array([dt] * n, pa.string())
    return pa.table(arrays)


def _table_columns(names: list[str], relative: str, digest: str, p: Parsed) -> dict[str, pa.Array]:
    """A file read as an Arrow table: its data columns and its rows' file, file hash, number and row hash."""
    assert p.table is not None and p.table.column_names == names, "the table holds the declared data columns"
    n = p.table.num_rows
    arrays = {name: p.table.column(name).combine_chunks() for name in names}
    numbers = (np.arange(p.numbers.start, p.numbers.stop, dtype=np.int64)
               if isinstance(p.numbers, range) and p.numbers.step == 1 else p.numbers)
    lineage = [pa.array([relative] * n, pa.string()), pa.array([digest] * n, pa.string()),
               pa.array(numbers, pa.int64()), csv_arrow.row_hashes(list(arrays.values()), SEP)]
    arrays.update(zip([c for c, _, _ in LINEAGE_COLUMNS[:4]], lineage, strict=True))
    return arrays


def _listed_columns(names: list[str], parsed: list[tuple[str, str, Parsed]]) -> dict[str, pa.Array]:
    """Files read as Python rows: their data columns and their rows' file, file hash, number and row hash."""
    columns: list[list[Any]] = [[] for _ in names]
    sources, file_hashes, numbers, hashes = [], [], [], []
    for relative, digest, p in parsed:
        if not p.rows:
            continue
        for col, values in zip(columns, zip(*p.rows, strict=True), strict=True):  # rows to columns, in C
            col.extend(values)
        sources.extend([relative] * len(p.rows))
        file_hashes.extend([digest] * len(p.rows))
        numbers.extend(p.numbers)
        hashes.extend(map(row_hash, p.rows))
    arrays = {name: pa.array(col, pa.string()) for name, col in zip(names, columns, strict=True)}
    lineage = dict(zip([c for c, _, _ in LINEAGE_COLUMNS[:4]], [
        pa.array(sources, pa.string()), pa.array(file_hashes, pa.string()), pa.array(numbers, pa.int64()),
        pa.array(hashes, pa.string()),
    ], strict=True))
    arrays.update(lineage)
    return arrays


def known_files(ctx: RunContext, ds: Dataset, days: list[str]) -> dict[str, set[tuple[str, str]]]:
    """Per export day, the (file, SHA-256) pairs the lake holds already: loaded rows, rejected files, and the
    rejected lines of files none of whose rows loaded (a file with loaded rows is known by them: its lines
    are committed before its rows, so a crash between the two makes the file unknown, and read again)."""
    out: dict[str, set[tuple[str, str]]] = {d: set() for d in days}
    raw = ctx.read_arrow(ds, {"dt": days}).select(["dt", "_source_file", "_source_hash"])
    for r in raw.group_by(["dt", "_source_file", "_source_hash"]).aggregate([]).to_pylist():
        out[r["dt"]].add((r["_source_file"], r["_source_hash"]))
    rejected = ctx.read_arrow(REJECTED, {"dataset": ds.name, "dt": days}).select(["dt", "source_file", "sha256"])
    for r in rejected.to_pylist():
        out.setdefault(r["dt"], set()).add((r["source_file"], r["sha256"]))
    for dt, pairs in _empty_files(ctx, ds).items():
        if dt in out:
            out[dt].update((f, h) for f, h in pairs)
    lines = ctx.read_arrow(REJECTED_LINES, {"dataset": ds.name, "dt": days})
    for r in lines.filter(pc.equal(lines.column("rows_loaded"), 0)).select(["dt", "source_file", "sha256"]
                                                                        ).to_pylist():
        out[r["dt"]].add((r["source_file"], r["sha256"]))
    return out


def _empty_path(ds: Dataset) -> str:
    return f"_meta/ingest/empty/{ds.name}.json"


def _empty_files(ctx: RunContext, ds: Dataset) -> dict[str, list[list[str]]]:
    """Per export day, the (file, SHA-256) of files that hold a header and no rows: nothing of theirs is in
    a table, so they are remembered here (written after the day's raw commit; if that is lost the day is
    read again, which changes nothing)."""
    text = ctx.lake.read_text(_empty_path(ds))
    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}


@dataclass
class DatasetIngest:
    """What ingesting one dataset for the run's days produced (committed by :func:`ingest`)."""

    table: pa.Table | None
    days: list[str]
    rejected: list[dict[str, Any]]
    stats: dict[str, int]
    lines: list[dict[str, Any]] = field(default_factory=list)
    #: the rejected files without a valid export date, when they changed (replace the ``undated`` partition)
    undated: list[dict[str, Any]] | None = None
    #: per ingested day, the files with a header and no rows
    empty: dict[str, list[list[str]]] = field(default_factory=dict)


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def ingest_dataset(ctx: RunContext, ds: Dataset, landing: Landing, force: bool = False) -> DatasetIngest:
    """Parse the run's export days of one raw dataset that have files the lake does not hold yet, and report
    the files of its folder that hold no valid export date."""
    wanted = {d.isoformat() for d in ctx.dates}
    by_day: dict[str, list[LandingFile]] = {}
    dated, undated_files = landing.listing(ds)
    stats = {"files": 0, "skipped": 0, "rejected": 0, "rows": 0, "lines_rejected": 0, "other_days": 0}
    for f in dated:
        if f.dt in wanted:
            by_day.setdefault(f.dt, []).append(f)
        else:
            stats["other_days"] += 1
    known = known_files(ctx, ds, sorted(by_day)) if by_day and not force else {}
    tables, days, rejected_rows, line_rows = [], [], [], []
    empty: dict[str, list[list[str]]] = {}
    today = _today()

    def reject(rel: str, dt: str, digest: str, line: int | None, reason: str, column: str | None = None) -> None:
        rejected_rows.append({"dataset": ds.name, "source_file": rel, "line": line, "column": column,
                              "reason": reason, "sha256": digest, "run_id": ctx.run_id, "dt": dt})
        ctx.warn(f"{ds.name}: rejected {rel}" + (f" line {line}" if line else "") + f": {reason}")
        stats["rejected"] += 1

    for dt, files in sorted(by_day.items()):
        blobs = {f.relative: landing.read(f.relative) for f in files}
        hashes = {rel: hashlib.sha256(b).hexdigest() for rel, b in blobs.items()}
        stats["files"] += len(files)
        if not force and known.get(dt) == set(hashes.items()):
            stats["skipped"] += len(files)
            continue
        good: list[tuple[str, str, Parsed]] = []
        for rel, data in blobs.items():
            if dt > today:
                reject(rel, dt, hashes[rel], None, f"export date {dt} is in the future (today is {today}, UTC)")
                continue
            try:
                p = parse(ds, data, rel)
            except MalformedFile as exc:
                reject(rel, dt, hashes[rel], exc.line, exc.reason, exc.column)
                continue
            good.append((rel, hashes[rel], p))
            if not p.row_count and not p.bad:
                empty.setdefault(dt, []).append([rel, hashes[rel]])
            for w in p.warnings:
                ctx.warn(f"{ds.name}: {rel}: {w}")
            if p.bad:
                stats["lines_rejected"] += len(p.bad)
                first = p.bad[0]
                ctx.warn(f"{ds.name}: {rel}: {len(p.bad)} line(s) not read as rows, {p.row_count} row(s) loaded "
                         f"(line {first.line}: {first.reason}; all in {REJECTED_LINES})")
                line_rows += [{"dataset": ds.name, "source_file": rel, "line": b.line, "record": b.record,
                               "reason": b.reason, "text": b.text, "rows_loaded": p.row_count, "sha256": hashes[rel],
                               "run_id": ctx.run_id, "dt": dt} for b in p.bad]
        table = raw_table(ds, good, dt, ctx.started_at, ctx.run_id)
        stats["rows"] += table.num_rows
        tables.append(table)
        days.append(dt)
    table = pa.concat_tables(tables) if tables else None
    result = DatasetIngest(table, days, rejected_rows, stats, line_rows,
                           empty={d: sorted(empty.get(d, [])) for d in days})
    _undated(ctx, ds, landing, undated_files, result, force)
    return result


def _undated(ctx: RunContext, ds: Dataset, landing: Landing, files: list[tuple[str, str]], result: DatasetIngest,
             force: bool) -> None:
    """Files of the dataset's folder without a valid export date: rejected under ``dt = 'undated'``, each
    reported once (the partition is rewritten when the set of such files changes)."""
    known = ctx.read_arrow(REJECTED, {"dataset": ds.name, "dt": [UNDATED]}).to_pylist()
    if not files and not known:
        return
    by_file = {(r["source_file"], r["sha256"]): r for r in known}
    rows, new = [], 0
    for rel, reason in files:
        digest = hashlib.sha256(landing.read(rel)).hexdigest()
        row = by_file.get((rel, digest))
        if row is None or force:
            new += 1
            row = {"dataset": ds.name, "source_file": rel, "line": None, "column": None, "reason": reason,
                   "sha256": digest, "run_id": ctx.run_id, "dt": UNDATED}
            ctx.warn(f"{ds.name}: rejected {rel}: {reason}")
        rows.append(row)
    result.stats["files"] += len(files)
    result.stats["rejected"] += new
    result.stats["skipped"] += len(files) - new
    if new or len(rows) != len(known):
        result.undated = rows


def ingest(ctx: RunContext, datasets: list[Dataset], landing: Landing) -> dict[str, dict[str, int]]:
    """Ingest the run's export days of some raw datasets: parse what is new, commit the rejected files (one
    snapshot) and the rejected lines (one snapshot), then each dataset's days (one snapshot each). Returns
    file, row and line statistics per dataset."""
    results: dict[str, DatasetIngest] = {}
    for i, ds in enumerate(datasets):
        ctx.progress(f"ingest {ds.name}", i, len(datasets))
        results[ds.name] = ingest_dataset(ctx, ds, landing)
    ctx.progress("ingest", len(datasets), len(datasets))
    faults.point("ingest.parsed")
    # the audit records first: a crash before the raw commits leaves days the next run ingests again
    rejected = [r for res in results.values() for r in res.rejected]
    replace = [{"dataset": name, "dt": d} for name, res in results.items() for d in res.days]
    for name, res in results.items():
        if res.undated is not None:
            rejected += res.undated
            replace.append({"dataset": name, "dt": UNDATED})
    if replace:
        _write(ctx, REJECTED, pa.Table.from_pylist(rejected, schema=schemas.get(REJECTED).arrow_schema()), replace)
        faults.point("ingest.rejected")
    day_replace = [{"dataset": name, "dt": d} for name, res in results.items() for d in res.days]
    lines = [r for res in results.values() for r in res.lines]
    # a run a month at a time (the stage's window) stages them every month, so that its commits at the end go
    # in the order of the first month's writes: the audit records before the raw days
    if day_replace and (lines or ctx.deferred is not None or _holds_lines(ctx, results)):
        _write(ctx, REJECTED_LINES, pa.Table.from_pylist(lines, schema=schemas.get(REJECTED_LINES).arrow_schema()),
               day_replace)
    totals = dict.fromkeys(("files", "loaded", "skipped", "rejected", "lines_rejected", "other_days"), 0)
    for ds in datasets:
        res = results[ds.name]
        count = ctx.count(ds.qualified_name)
        count.rows_in += res.stats["rows"]
        if res.table is not None:
            _write(ctx, ds, res.table, [{"dt": d} for d in res.days])
            _remember_empty(ctx, ds, res.empty)
        loaded = res.stats["files"] - res.stats["skipped"] - res.stats["rejected"]
        count.notes.append(f"files: {loaded} loaded, {res.stats['skipped']} seen before, "
                           f"{res.stats['rejected']} rejected" +
                           (f"; {res.stats['lines_rejected']} line(s) rejected" if res.stats["lines_rejected"] else ""))
        totals["loaded"] += loaded
        for k in ("files", "skipped", "rejected", "lines_rejected", "other_days"):
            totals[k] += res.stats[k]
    if datasets:
        ctx.count("stage:ingest").notes.append(
            f"landing: {totals['files'] + totals['other_days']} file(s): {totals['loaded']} loaded, "
            f"{totals['skipped']} seen before, {totals['rejected']} rejected, {totals['other_days']} for other "
            f"days; {totals['lines_rejected']} line(s) rejected")
    return {name: res.stats for name, res in results.items()}


def _write(ctx: RunContext, ds: Dataset | str, rows: pa.Table, replace: list[dict[str, str]]) -> None:
    """``ctx.write``; a disk or permission error names the table and what was left behind."""
    try:
        ctx.write(ds, rows, replace=replace)
    except OSError as exc:
        name = ds if isinstance(ds, str) else ds.qualified_name
        raise OSError(exc.errno, f"{exc.strerror or exc} while writing {name}"
                                 + (f" ({exc.filename})" if exc.filename else "")
                                 + f": nothing of {name} was committed (the tables committed before it stand; data "
                                   "files written for it are orphans that `msp lake maintain` removes); free the "
                                   "space and run again") from exc


def _remember_empty(ctx: RunContext, ds: Dataset, days: dict[str, list[list[str]]]) -> None:
    kept = _empty_files(ctx, ds)
    updated = {d: v for d, v in {**kept, **days}.items() if v}
    if updated != kept:
        ctx.lake.write_text(_empty_path(ds), json.dumps(dict(sorted(updated.items())), indent=0))


def _holds_lines(ctx: RunContext, results: dict[str, DatasetIngest]) -> bool:
    """Whether rejected lines are recorded for days ingested again (a corrected file replaces them)."""
    snap = ctx.lake.snapshot_id(schemas.get(REJECTED_LINES))
    if snap is None:
        return False
    for name, res in results.items():
        if res.days and ctx.read_arrow(REJECTED_LINES, {"dataset": name, "dt": res.days}).num_rows:
            return True
    return False


#: Runs whose landing files hold fewer bytes ingest in one piece. Ingestion reads some 6-7 MB/s here, and the
#: run loads GX beside it (4-5 s): a smaller run's later parts would only start after that loading, later
#: than one worker would have finished them all (a day of the small MSP is 0.5 MB; its backfill 100 MB).
SPLIT_FROM_BYTES = 32 * 2**20


def parts(ctx: RunContext):
    """A large run split into one part per landing source that holds a file for its days (or a file without
    a date, which ingestion rejects), so that the workers share the ingestion of a backfill the way
    Airflow's tasks share a day's (one per source). Sources with no such file have nothing to do and get no
    part. None when the run is narrowed to sources already, is one export day (listing the landing area
    costs 0.15 s of the scheduled day's start, and a day is far below the threshold: 0.5 MB at the small
    scale), its files are fewer than :data:`SPLIT_FROM_BYTES`, or fewer than two sources have files."""
    from lakehouse.agents import Part

    if ctx.params.get("sources") or len(ctx.dates) < 2:
        return None
    landing = Landing(ctx.settings.landing_root)
    days = set(ctx.days)
    sizes: dict[str, int] = {}
    for ds in schemas.datasets("raw"):
        dated, undated = landing.listing(ds)
        mine = [f.size for f in dated if f.dt in days]
        if mine or undated:
            sizes[ds.source] = sizes.get(ds.source, 0) + sum(mine)
    if len(sizes) < 2 or sum(sizes.values()) < SPLIT_FROM_BYTES:
        return None
    # the largest first: the workers forked before GX is loaded take them
    return [Part(source, {"sources": [source]}) for source in sorted(sizes, key=lambda s: (-sizes[s], s))]


def run(ctx: RunContext) -> None:
    """Landing files → raw tables with lineage; malformed files reported, good files loaded."""
    landing = Landing(ctx.settings.landing_root)
    sources = ctx.params.get("sources")
    raw = [d for d in schemas.datasets("raw") if not sources or d.source in sources]
    stats = ingest(ctx, raw, landing)
    if raw and not sum(s["files"] for s in stats.values()):
        days = f"{ctx.start}" if ctx.start == ctx.end else f"{ctx.start} → {ctx.end}"
        ctx.warn(f"the landing area {landing.root} holds no export file for {days}"
                 + (f" from {', '.join(sources)}" if sources else "")
                 + "; nothing was ingested (`msp generate` writes a sample MSP there)")

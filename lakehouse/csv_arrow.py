"""Vectorised reading of large, well-formed CSV files: the fast path of :func:`lakehouse.ingest.parse_csv`.

Why it exists: ingestion reads a CSV file with Python's ``csv`` module, turns its rows into columns and
hashes every row in Python, some 15-20 µs per row of the FOCUS cost export (~44 columns, a quoted JSON
``Tags`` column); that source alone (~6,000 rows a day, millions over a backfill) bounded the ingestion.
Here a file is read by Arrow's CSV reader with every column as text, and the row hashes are computed from
Arrow's buffers (:func:`row_hashes`), a few times faster for the same result.

When it falls back: the result must be exactly what ``csv.reader(strict=True)`` gives, and Arrow's reader is
more lenient (it reads ``"a"b`` as ``ab`` where Python refuses the line, and skips a byte-order mark at the
start of its input), while the ingestion's own reading of a file that does not read whole (line by line,
refusing the bad lines) is its own. So :func:`read` only takes a file when cheap vectorised checks prove that
it is in the subset of CSV where both readers agree, and returns None for anything else, the caller then
reading the file with the ``csv`` module as before:

* the bytes are valid UTF-8 (a byte-order mark before the header is allowed, as in the slow path);
* every quote is structural: the quotes, taken in order, alternately open a field (at the start of the file
  or right after a ``,``, a ``\\n`` or a closing quote, i.e. a doubled quote) and close it (right before a
  ``,``, a ``\\n``, a ``\\r\\n``, the end of the file, or an opening quote); so no text after a closing quote
  (``"a"b``), no quote inside an unquoted field (``a"b``: both readers keep it, but the check cannot tell it
  from a broken field), no quote left open;
* every ``\\r`` outside quotes is part of a ``\\r\\n`` (a lone ``\\r`` ends a record for the ``csv`` module, not
  for the ingestion's line-by-line reading);
* the header is one line, not blank, that the ``csv`` module reads as one record;
* the first data line does not start with a byte-order mark (Arrow would drop it);
* every record has the header's width (Arrow refuses the file otherwise: ragged lines are the slow path's to
  locate) and no field is longer than ``csv.field_size_limit()`` (Python refuses it).

Blank lines are skipped by both readers and not counted, so the records read here are the data records
1..n of the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

BOM = b"\xef\xbb\xbf"
_QUOTE, _LF, _CR = 0x22, 0x0A, 0x0D
#: bytes that may precede an opening quote (besides a closing quote: a doubled quote)
_BEFORE_OPEN = np.zeros(256, dtype=bool)
_BEFORE_OPEN[[ord(","), _LF]] = True
#: bytes that may follow a closing quote (besides an opening quote); a ``\r`` outside quotes is checked apart
_AFTER_CLOSE = np.zeros(256, dtype=bool)
_AFTER_CLOSE[[ord(","), _LF, _CR]] = True


def well_formed(buf: np.ndarray, has_cr: bool = True) -> bool:
    """Whether every quote of ``buf`` (a file's bytes after the byte-order mark) is structural and every
    ``\\r`` outside quotes ends a ``\\r\\n`` (see the module docstring); ``has_cr=False`` says that ``buf``
    holds no ``\\r``."""
    n = len(buf)
    q = np.flatnonzero(buf == _QUOTE)
    m = len(q)
    if m % 2:
        return False  # a quote left open
    if m:
        opens, closes = q[0::2], q[1::2]
        # a closing quote right before an opening one: a doubled quote (inside a field) or, when a delimiter
        # should separate them, text after a closing quote; the opening quote's own check tells them apart
        doubled = closes[:-1] + 1 == opens[1:]
        first = opens[0] == 0 or _BEFORE_OPEN[buf[opens[0] - 1]]
        if not (first and np.all(doubled | _BEFORE_OPEN[buf[opens[1:] - 1]])):
            return False
        last = closes[-1] == n - 1 or _AFTER_CLOSE[buf[min(closes[-1] + 1, n - 1)]]
        if not (last and np.all(doubled | _AFTER_CLOSE[buf[closes[:-1] + 1]])):
            return False
    if has_cr:
        r = np.flatnonzero(buf == _CR)
        if len(r):
            outside = np.searchsorted(q, r) % 2 == 0
            lf = np.zeros(len(r), dtype=bool)
            lf[r < n - 1] = buf[r[r < n - 1] + 1] == _LF
            if np.any(outside & ~lf):
                return False
    return True


def read(data: bytes) -> tuple[list[str], pa.Table] | None:
    """The header and the records (columns ``c0``, ``c1``, ... as text, never null) of a CSV file, exactly as
    ``csv.reader(strict=True)`` reads them with blank lines skipped; None when that cannot be proven cheaply
    (see the module docstring) or a record is ragged."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    start = len(BOM) if data.startswith(BOM) else 0
    buf = np.frombuffer(data, dtype=np.uint8)[start:]
    if not len(buf) or not well_formed(buf, b"\r" in data):
        return None
    nl = data.find(b"\n", start)
    if nl < 0:
        return None  # a header without data
    head = data[start:nl + 1].decode("utf-8")
    if head.count('"') % 2 or not head.strip():
        return None  # the header's line end is inside quotes, or the header is blank
    try:
        records = list(csv.reader(io.StringIO(head, newline=""), strict=True))
    except csv.Error:
        return None
    if len(records) != 1 or not records[0]:
        return None
    header = records[0]
    if data.startswith(BOM, nl + 1):
        return None
    names = [f"c{i}" for i in range(len(header))]
    try:
        table = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(data)[nl + 1:]),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=",", quote_char='"', double_quote=True, escape_char=False,
                                             newlines_in_values=True, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), null_values=[],
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False,
                                                 check_utf8=False))
    except pa.ArrowException:  # a ragged record, a record larger than a block, no byte after the header...
        return None
    limit = csv.field_size_limit()
    if len(data) - nl - 1 > limit:  # else no field can be longer
        for column in table.columns:
            if len(column) and pc.max(pc.binary_length(column)).as_py() > limit:
                return None
    return header, table


def row_hashes(columns: list[pa.ChunkedArray | pa.Array], separator: str) -> pa.Array:
    """SHA-256 (hex) of each row's values joined by ``separator``: the bytes hashed are those of
    ``separator.join(values).encode("utf-8")`` (the UTF-8 of a join is the join of the UTF-8s), so the digest
    is the one :func:`lakehouse.ingest.row_hash` gives (a null value as NUL, as there)."""
    columns = [pc.fill_null(c, "\x00") if c.null_count else c for c in columns]
    joined = pc.binary_join_element_wise(*columns, separator) if len(columns) > 1 else columns[0]
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    joined = joined.cast(pa.large_binary()) if pa.types.is_large_string(joined.type) else joined.cast(pa.binary())
    n = len(joined)
    if not n:
        return pa.array([], pa.string())
    _, offsets_buf, values_buf = joined.buffers()
    width = np.int64 if pa.types.is_large_binary(joined.type) else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=width)[joined.offset:joined.offset + n + 1].tolist()
    values = memoryview(values_buf) if values_buf is not None else memoryview(b"")
    sha256 = hashlib.sha256
    return pa.array([sha256(values[a:b]).hexdigest() for a, b in pairwise(offsets)], pa.string())

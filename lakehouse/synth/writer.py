"""Export files: one per dataset and export day, in the landing layout, with dirty rows mixed in.

Simulation code hands rows to a ``Sink`` as soon as it knows them, each with the export day it belongs
to; the sink formats them (text per the dataset's declaration) and keeps them until that day is complete.
``flush(before_day)`` then sorts each complete day, mixes in the dirty copies and writes the file. Because a
day's file is assembled only from that day's rows, in a fixed order, it is byte-identical whatever window
of days a run writes.

Three dialects: ``csv`` (header, commas, quotes only where needed), ``jsonl`` (one JSON object per line)
and ``focus`` (the FOCUS-Sample-Data conventions: quoted header, strings always quoted, numbers bare,
``NULL`` for no value).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.synth import dirty, textfmt
from lakehouse.synth.rng import hash_uniform
from lakehouse.synth.timeline import Timeline
from schemas import Column, Dataset

_NEEDS_QUOTES = r'[,"\r\n]'
#: FOCUS-Sample-Data quotes this numeric column like a string.
FOCUS_QUOTED_NUMBERS = frozenset({"list_unit_price"})


@dataclass
class DirtyRow:
    dataset: str
    file: str
    row_number: int
    kind: str
    column: str
    copy_of_row: int


@dataclass
class Output:
    """Where and what a run writes: the window of export days, the landing root, the dirt to add."""

    landing_root: Path
    timeline: Timeline
    first_day: int  #: first export day written (day number)
    last_day: int  #: last export day written (day number)
    seed: int
    dirty_rate: float
    write: bool = True  #: False: only count rows (``count_only``)
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    files: int = 0
    dirty_rows: list[DirtyRow] = field(default_factory=list)
    _folders: set = field(default_factory=set)

    def relative(self, ds: Dataset, day: int, ext: str) -> str:
        return f"{ds.source}/{ds.name}/{ds.name}_{self.timeline.date_of(day).isoformat()}.{ext}"

    def write_bytes(self, relative: str, data: bytes) -> None:
        path = self.landing_root / relative
        if path.parent not in self._folders:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._folders.add(path.parent)
        with open(path, "wb") as fh:
            fh.write(data)
        self.files += 1


class Sink:
    """Buffers one dataset's formatted rows and writes complete export days."""

    def __init__(self, ds: Dataset, out: Output, dialect: str | None = None):
        self.ds = ds
        self.out = out
        self.dialect = dialect or ("jsonl" if ds.format == "jsonl" else "csv")
        self.columns: tuple[Column, ...] = ds.data_columns
        self.plan = dirty.Plan.of(ds)
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray, list[pa.Array] | None]] = []
        self._seq = 0
        inverse = {v: k for k, v in ds.renames.items()}
        self.header_names = [inverse.get(c.name, c.name) for c in self.columns]

    # ---- adding rows ----------------------------------------------------------------------
    def add(self, day: np.ndarray, order: np.ndarray | None = None, **values) -> None:
        """Rows exporting on ``day``; ``order`` sorts rows inside a day; one keyword per declared column."""
        day = np.asarray(day, dtype=np.int64)
        n = len(day)
        if n == 0:
            return
        keep = (day <= self.out.last_day)
        names = [c.name for c in self.columns]
        missing = [c for c in names if c not in values]
        extra = [k for k in values if k not in names]
        if missing or extra:
            raise ValueError(f"{self.ds.name}: rows miss columns {missing} / have undeclared columns {extra}")
        order = np.zeros(n, dtype=np.int64) if order is None else np.asarray(order, dtype=np.int64)
        seq = np.arange(self._seq, self._seq + n, dtype=np.int64)
        self._seq += n
        if not keep.all():
            idx = np.flatnonzero(keep)
            day, order, seq = day[idx], order[idx], seq[idx]
            values = {k: (v if _is_scalar(v) else _take(v, idx)) for k, v in values.items()}
            n = len(idx)
            if n == 0:
                return
        cols = None
        if self.out.write:
            cols = [self._encode(c, values[c.name], n) for c in self.columns]
        self._chunks.append((day, order, seq, cols))

    def _encode(self, col: Column, value, n: int) -> pa.Array:
        tl = self.out.timeline
        if value is None:
            text = pa.nulls(n, pa.string())
        elif _is_scalar(value):
            text = pa.array(np.full(n, str(value), dtype=object), pa.string())
        elif isinstance(value, pa.Array | pa.ChunkedArray):
            text = textfmt.strings(value)
        else:
            arr = np.asarray(value)
            if arr.dtype == object or arr.dtype.kind == "U":
                text = textfmt.strings(arr)
            elif col.type == "date":
                text = textfmt.dates(tl, arr)
            elif col.type == "timestamp":
                sep = " " if col.formats and " " in col.formats[0] else "T"
                text = textfmt.timestamps(tl, arr, sep)
            elif col.decimal:
                text = textfmt.scaled(arr, col.decimal[1])
            elif col.type in ("int", "long"):
                text = textfmt.integers(arr)
            elif col.type == "boolean":
                text = textfmt.booleans(arr)
            else:
                raise TypeError(f"{self.ds.name}.{col.name}: numeric values for a {col.type} column")
        if len(text) != n:
            raise ValueError(f"{self.ds.name}.{col.name}: {len(text)} values for {n} rows")
        return self._quote(col, text)

    def _quote(self, col: Column, text: pa.Array) -> pa.Array:
        textual = col.type in ("string", "date", "timestamp")
        if self.dialect == "csv":
            if col.type != "string":
                return text
            need = pc.match_substring_regex(text, _NEEDS_QUOTES)
            if not pc.any(need).as_py():
                return text
            quoted = textfmt.join('"', pc.replace_substring(text, '"', '""'), '"')
            return pc.if_else(need, quoted, text)
        if self.dialect == "focus":
            textual = textual or col.name in FOCUS_QUOTED_NUMBERS
            return textfmt.join('"', pc.replace_substring(text, '"', '""'), '"') if textual else text
        # jsonl
        if textual:
            esc = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
            return textfmt.join('"', esc, '"')
        return text

    @property
    def null_text(self) -> str:
        return {"csv": "", "jsonl": "null", "focus": "NULL"}[self.dialect]

    @property
    def blank_text(self) -> str:
        return {"csv": "", "jsonl": '""', "focus": "NULL"}[self.dialect]

    # ---- writing -----------------------------------------------------------------------------
    def flush(self, before_day: int) -> None:
        """Write every buffered export day < before_day (those days can get no more rows)."""
        if not self._chunks:
            return
        ready, later = [], []
        for chunk in self._chunks:
            day = chunk[0]
            now = day < before_day
            if now.all():
                ready.append(chunk)
            elif now.any():
                i, j = np.flatnonzero(now), np.flatnonzero(~now)
                ready.append(_slice(chunk, i))
                later.append(_slice(chunk, j))
            else:
                later.append(chunk)
        self._chunks = later
        if ready:
            self._write(ready)

    def _write(self, chunks) -> None:
        day = np.concatenate([c[0] for c in chunks])
        order = np.concatenate([c[1] for c in chunks])
        seq = np.concatenate([c[2] for c in chunks])
        inside = (day >= self.out.first_day) & (day <= self.out.last_day)
        sort = np.lexsort((seq, order, day))
        sort = sort[inside[sort]]
        if len(sort) == 0:
            return
        day = day[sort]
        days, starts, counts = np.unique(day, return_index=True, return_counts=True)
        pos = np.arange(len(day)) - np.repeat(starts, counts)
        name = self.ds.name
        u = hash_uniform(self.out.seed, f"dirty:{name}", day, pos)
        picked = np.flatnonzero(u < self.out.dirty_rate) if self.out.dirty_rate > 0 else np.array([], int)
        self.out.rows[name] += len(day) + len(picked)
        if not self.out.write:
            return
        cols = [pa.concat_arrays([c[3][k] for c in chunks]).take(pa.array(sort)) for k in range(len(self.columns))]
        filled = [pc.fill_null(c, self.null_text) for c in cols]
        lines = self._lines(filled)
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset:lines.offset + len(lines) + 1]
        data = memoryview(lines.buffers()[2]) if lines.buffers()[2] is not None else memoryview(b"")
        # dirty rows, grouped by file
        extra: dict[int, list[tuple[int, int, bytes, str, str]]] = defaultdict(list)
        if len(picked):
            kinds = dirty.choose_kind(self.plan, hash_uniform(self.out.seed, f"kind:{name}", day[picked], pos[picked]))
            where = hash_uniform(self.out.seed, f"where:{name}", day[picked], pos[picked])
            which = hash_uniform(self.out.seed, f"col:{name}", day[picked], pos[picked])
            taken = [c.take(pa.array(picked)).to_pylist() for c in filled]
            rows = [list(r) for r in zip(*taken, strict=True)]
            for i, kind, w, cu, fields in zip(picked, kinds, where, which, rows, strict=True):
                d = int(day[i])  # the new key depends on the file and the row only, never on the batch
                new, col = dirty.corrupt(fields, kind, self.plan, float(cu), d, int(pos[i]), self.blank_text)
                if not col:
                    kind = "duplicate"
                n_day = int(counts[np.searchsorted(days, d)])
                at = int(w * (n_day + 1))
                extra[d].append((at, int(pos[i]), self._line(new).encode("utf-8"), kind,
                                 self.columns[int(col)].name if col else ""))
        header = self._header()
        for k, d in enumerate(days.tolist()):
            a, b = int(starts[k]), int(starts[k] + counts[k])
            relative = self.out.relative(self.ds, d, "jsonl" if self.dialect == "jsonl" else "csv")
            parts = [header] if header else []
            inserts = sorted(extra.get(d, []), key=lambda t: (t[0], t[1]))
            cursor = 0
            for ins_i, (at, src, blob, kind, col) in enumerate(inserts):
                parts.append(bytes(data[offsets[a + cursor]:offsets[a + at]]) if at > cursor else b"")
                cursor = max(cursor, at)
                parts.append(blob)
                row_number = at + ins_i + 1
                src_number = src + 1 + sum(1 for t in inserts if t[0] <= src)
                self.out.dirty_rows.append(DirtyRow(name, relative, row_number, kind, col, src_number))
            parts.append(bytes(data[offsets[a + cursor]:offsets[b]]))
            self.out.write_bytes(relative, b"".join(parts))

    def _lines(self, filled: list[pa.Array]) -> pa.Array:
        if self.dialect == "jsonl":
            parts = []
            for i, c in enumerate(self.columns):
                parts += [("{" if i == 0 else ", ") + json.dumps(c.name) + ": ", filled[i]]
            parts.append("}\n")
            return textfmt.join(*parts)
        return textfmt.join(textfmt.join(*filled, sep=","), "\n")

    def _line(self, fields: list[str]) -> str:
        if self.dialect == "jsonl":
            return "{" + ", ".join(f"{json.dumps(c.name)}: {v}" for c, v in zip(self.columns, fields, strict=True)) \
                + "}\n"
        return ",".join(fields) + "\n"

    def _header(self) -> bytes:
        if self.dialect == "jsonl":
            return b""
        if self.dialect == "focus":
            return (",".join(f'"{h}"' for h in self.header_names) + "\n").encode()
        return (",".join(self.header_names) + "\n").encode()


def _is_scalar(v) -> bool:
    return isinstance(v, str | int | float | bool) and not isinstance(v, np.ndarray)


def _take(v, idx: np.ndarray):
    if v is None:
        return None
    if isinstance(v, pa.Array | pa.ChunkedArray):
        return v.take(pa.array(idx))
    return np.asarray(v)[idx]


def _slice(chunk, idx: np.ndarray):
    day, order, seq, cols = chunk
    return (day[idx], order[idx], seq[idx],
            None if cols is None else [c.take(pa.array(idx)) for c in cols])

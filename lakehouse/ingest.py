"""Ingestion: landing files → raw tables with lineage.

Every raw dataset declared in ``schemas/datasets/raw/`` names its landing folder (``source``) and format.
Files are grouped by export day (the first ``YYYY-MM-DD`` in their path) into the raw rows of that day
(``dt``). A day is ingested again only when its set of files changed (a new file, or new content under the
same name): every raw row carries the SHA-256 of its file (``_source_hash``) and every rejected file is
recorded with its own, so the lake itself says which files it holds; ingesting the same file twice adds
nothing, and a corrected export replaces that day.

Raw rows keep every source value as text plus ``_source_file``, ``_source_hash``, ``_row_number``,
``_row_hash``, ``_ingested_at`` and ``_run_id``. A malformed file (undecodable bytes, ragged rows, broken
JSON, a declared column missing from the header, an unreadable PDF) is rejected whole, reported with its
name, line and reason in ``quarantine.rejected_files``, and the other files still load. Columns that a file
adds beyond the declaration are reported as schema drift warnings.

Each dataset's days are committed in one snapshot; the rejected files of the run in one more, first, so that
a crash between the two makes the next run see a day whose files it does not all know and ingest it again.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs

import schemas
from lakehouse import faults
from schemas import LINEAGE_COLUMNS, Dataset

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.context import RunContext

DATE_IN_PATH = re.compile(r"(\d{4}-\d{2}-\d{2})")
REJECTED = "quarantine.rejected_files"
SEP = "\x1f"


class MalformedFile(ValueError):
    def __init__(self, line: int | None, reason: str, column: str | None = None):
        super().__init__(reason)
        self.line = line
        self.reason = reason
        self.column = column


@dataclass
class Parsed:
    rows: list[list[str | None]] = field(default_factory=list)  # data columns in declared order
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LandingFile:
    dataset: str
    relative: str  # path relative to the landing root
    dt: str


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
        folder = f"{self._base}/{ds.source}/{ds.name}"
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(folder, recursive=True))
        except FileNotFoundError:
            return []
        out = []
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            below = info.path[len(folder) + 1:]
            if below.startswith(".") or "/." in below:
                continue  # partial uploads and editor files
            m = DATE_IN_PATH.search(below)
            if m:
                out.append(LandingFile(ds.name, info.path[len(self._base) + 1:], m.group(1)))
        return sorted(out, key=lambda f: (f.dt, f.relative))

    def read(self, relative: str) -> bytes:
        with self.fs.open_input_stream(f"{self._base}/{relative}") as fh:
            return fh.read()


# ---- parsers ---------------------------------------------------------------------------------------
def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MalformedFile(line, f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                                  "re-export the file as UTF-8") from None
    return text.removeprefix("\ufeff")


def _header_columns(ds: Dataset, header: list[str], warnings: list[str]) -> list[int | None]:
    """Map declared data columns to header positions; reject on missing columns, warn on added ones."""
    names = [ds.renames.get(h.strip(), h.strip()) for h in header]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise MalformedFile(1, f"header repeats column(s) {', '.join(dupes)}", dupes[0])
    declared = [c.name for c in ds.data_columns]
    missing = [c for c in declared if c not in names]
    if missing:
        raise MalformedFile(1, f"schema drift: declared column(s) {', '.join(missing)} missing from the header "
                               "(removed or renamed upstream)", missing[0])
    added = [n for n in names if n not in declared]
    if added:
        warnings.append(f"schema drift: column(s) {', '.join(added)} not declared; accepted and ignored")
    return [names.index(c) for c in declared]


def parse_csv(ds: Dataset, data: bytes) -> Parsed:
    text = _decode(data)
    if not text.strip():
        raise MalformedFile(1, "empty file: no header row")
    out = Parsed()
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
        positions = _header_columns(ds, header, out.warnings)
        width = len(header)
        for row in reader:
            if len(row) != width:
                if not row:
                    continue  # a blank line
                raise MalformedFile(reader.line_num, f"expected {width} fields, found {len(row)}")
            out.rows.append([row[i] for i in positions])
    except csv.Error as exc:
        raise MalformedFile(reader.line_num, f"CSV syntax error: {exc}") from None
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
    text = _decode(data)
    out = Parsed()
    declared = [c.name for c in ds.data_columns]
    extra: set[str] = set()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MalformedFile(n, f"invalid JSON: {exc.msg} at column {exc.colno}") from None
        if not isinstance(obj, dict):
            raise MalformedFile(n, f"expected a JSON object per line, found {type(obj).__name__}")
        obj = {ds.renames.get(k, k): v for k, v in obj.items()}
        extra.update(k for k in obj if k not in declared)
        out.rows.append([_jsonl_value(obj.get(c)) for c in declared])
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
    return Parsed(rows=[[values.get(c) for c in declared]])


def parse(ds: Dataset, data: bytes, relative: str) -> Parsed:
    if ds.format == "csv":
        return parse_csv(ds, data)
    if ds.format == "jsonl":
        return parse_jsonl(ds, data)
    return parse_document(ds, data, relative)


# ---- building the raw table ------------------------------------------------------------------------
def row_hash(values: Iterable[str | None]) -> str:
    return hashlib.sha256(SEP.join("\x00" if v is None else v for v in values).encode("utf-8")).hexdigest()


def raw_table(ds: Dataset, parsed: list[tuple[str, str, Parsed]], dt: str, ingested_at, run_id: str) -> pa.Table:
    """The raw rows of one export day: ``parsed`` holds (file, its SHA-256, its parsed rows)."""
    names = [c.name for c in ds.data_columns]
    columns: list[list[Any]] = [[] for _ in names]
    sources, file_hashes, numbers, hashes = [], [], [], []
    for relative, digest, p in parsed:
        for i, row in enumerate(p.rows, start=1):
            for col, value in zip(columns, row, strict=True):
                col.append(value)
            sources.append(relative)
            file_hashes.append(digest)
            numbers.append(i)
            hashes.append(row_hash(row))
    n = len(sources)
    arrays = {name: pa.array(col, pa.string()) for name, col in zip(names, columns, strict=True)}
    lineage = dict(zip([c for c, _, _ in LINEAGE_COLUMNS], [
        pa.array(sources, pa.string()), pa.array(file_hashes, pa.string()), pa.array(numbers, pa.int64()),
        pa.array(hashes, pa.string()), pa.array([ingested_at] * n, pa.timestamp("us", tz="UTC")),
        pa.array([run_id] * n, pa.string()),
    ], strict=True))
    arrays.update(lineage)
    arrays["dt"] = pa.array([dt] * n, pa.string())
    return pa.table(arrays)


def known_files(ctx: RunContext, ds: Dataset, days: list[str]) -> dict[str, set[tuple[str, str]]]:
    """Per export day, the (file, SHA-256) pairs the lake holds already: loaded rows and rejected files."""
    out: dict[str, set[tuple[str, str]]] = {d: set() for d in days}
    raw = ctx.read_arrow(ds, {"dt": days}).select(["dt", "_source_file", "_source_hash"])
    for r in raw.group_by(["dt", "_source_file", "_source_hash"]).aggregate([]).to_pylist():
        out[r["dt"]].add((r["_source_file"], r["_source_hash"]))
    rejected = ctx.read_arrow(REJECTED, {"dataset": ds.name, "dt": days}).select(["dt", "source_file", "sha256"])
    for r in rejected.to_pylist():
        out[r["dt"]].add((r["source_file"], r["sha256"]))
    return out


@dataclass
class DatasetIngest:
    """What ingesting one dataset for the run's days produced (committed by :func:`run`)."""

    table: pa.Table | None
    days: list[str]
    rejected: list[dict[str, Any]]
    stats: dict[str, int]


def ingest_dataset(ctx: RunContext, ds: Dataset, landing: Landing, force: bool = False) -> DatasetIngest:
    """Parse the run's export days of one raw dataset that have files the lake does not hold yet."""
    wanted = {d.isoformat() for d in ctx.dates}
    by_day: dict[str, list[LandingFile]] = {}
    for f in landing.files(ds):
        if f.dt in wanted:
            by_day.setdefault(f.dt, []).append(f)
    stats = {"files": 0, "skipped": 0, "rejected": 0, "rows": 0}
    known = known_files(ctx, ds, sorted(by_day)) if by_day and not force else {}
    tables, days, rejected_rows = [], [], []
    for dt, files in sorted(by_day.items()):
        blobs = {f.relative: landing.read(f.relative) for f in files}
        hashes = {rel: hashlib.sha256(b).hexdigest() for rel, b in blobs.items()}
        stats["files"] += len(files)
        if not force and known.get(dt) == set(hashes.items()):
            stats["skipped"] += len(files)
            continue
        good: list[tuple[str, str, Parsed]] = []
        for rel, data in blobs.items():
            try:
                p = parse(ds, data, rel)
            except MalformedFile as exc:
                rejected_rows.append({"dataset": ds.name, "source_file": rel, "line": exc.line, "column": exc.column,
                                      "reason": exc.reason, "sha256": hashes[rel], "run_id": ctx.run_id, "dt": dt})
                ctx.warn(f"{ds.name}: rejected {rel}" + (f" line {exc.line}" if exc.line else "") + f": {exc.reason}")
                stats["rejected"] += 1
                continue
            good.append((rel, hashes[rel], p))
            for w in p.warnings:
                ctx.warn(f"{ds.name}: {rel}: {w}")
        table = raw_table(ds, good, dt, ctx.started_at, ctx.run_id)
        stats["rows"] += table.num_rows
        tables.append(table)
        days.append(dt)
    table = pa.concat_tables(tables) if tables else None
    return DatasetIngest(table, days, rejected_rows, stats)


def ingest(ctx: RunContext, datasets: list[Dataset], landing: Landing) -> dict[str, dict[str, int]]:
    """Ingest the run's export days of some raw datasets: parse what is new, commit the rejected files (one
    snapshot), then each dataset's days (one snapshot each). Returns file and row statistics per dataset."""
    results: dict[str, DatasetIngest] = {}
    for i, ds in enumerate(datasets):
        ctx.progress(f"ingest {ds.name}", i, len(datasets))
        results[ds.name] = ingest_dataset(ctx, ds, landing)
    ctx.progress("ingest", len(datasets), len(datasets))
    faults.point("ingest.parsed")
    # the rejected files first: a crash before the raw commits leaves days the next run ingests again
    rejected = [r for res in results.values() for r in res.rejected]
    replace = [{"dataset": name, "dt": d} for name, res in results.items() for d in res.days]
    if replace:
        ctx.write(REJECTED, pa.Table.from_pylist(rejected, schema=schemas.get(REJECTED).arrow_schema()),
                  replace=replace)
        faults.point("ingest.rejected")
    for ds in datasets:
        res = results[ds.name]
        count = ctx.count(ds.qualified_name)
        count.rows_in += res.stats["rows"]
        if res.table is not None:
            ctx.write(ds, res.table, replace=[{"dt": d} for d in res.days])
        loaded = res.stats["files"] - res.stats["skipped"] - res.stats["rejected"]
        count.notes.append(f"files: {loaded} loaded, {res.stats['skipped']} seen before, "
                           f"{res.stats['rejected']} rejected")
    return {name: res.stats for name, res in results.items()}


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

"""Tiny landing files for the DAG tests, written from the raw dataset declarations.

Two rows per dataset and export day, values shaped by each column's declared type (and its allowed
values, bounds and date formats), so ingestion and the quality gate see well-formed exports. When the
synthetic MSP generator is available (``lakehouse.synth.generate``) the tests use it instead.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path

import schemas
from schemas import Column, Dataset


def _value(c: Column, ds: Dataset, day: date, i: int) -> str:
    if c.allowed:
        return str(c.allowed[i % len(c.allowed)])
    if c.type in ("int", "long") or c.decimal or c.type == "double":
        low = c.min if c.min is not None else 0
        high = c.max if c.max is not None else low + 100
        value = low + (high - low) * (i + 1) / 4
        if c.type in ("int", "long"):
            return str(int(value))
        scale = c.decimal[1] if c.decimal else 2
        return f"{value:.{scale}f}"
    if c.type == "boolean":
        return "true" if i % 2 == 0 else "false"
    if c.type == "date":
        return day.strftime(c.formats[0]) if c.formats else day.isoformat()
    if c.type == "timestamp":
        moment = datetime(day.year, day.month, day.day, 8 + i, 30)
        return moment.strftime(c.formats[0]) if c.formats else moment.isoformat()
    key = "-".join(str(p) for p in (ds.name[:3], day.strftime("%Y%m%d"), i))
    return f"{c.name}-{key}" if c.name in ds.primary_key or c.name.endswith("_id") else f"{c.name} {i}"


def rows(ds: Dataset, day: date, n: int = 2) -> list[dict[str, str]]:
    return [{c.name: _value(c, ds, day, i) for c in ds.data_columns} for i in range(n)]


def write_landing(root: Path, days: Iterable[date], n: int = 2) -> list[Path]:
    """Write ``n`` rows per raw dataset and day under ``root`` (the landing layout of docs/architecture.md)."""
    written = []
    for ds in schemas.datasets("raw"):
        for day in days:
            folder = root / ds.source / ds.name
            if ds.format == "document":
                path = folder / day.isoformat() / f"{ds.name}-{day.isoformat()}.txt"
                text = f"Contract for {ds.name} signed {day.isoformat()}. Term 12 months, renews annually."
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            elif ds.format == "jsonl":
                path = folder / f"{ds.name}_{day.isoformat()}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(json.dumps(r) + "\n" for r in rows(ds, day, n)), encoding="utf-8")
            else:
                path = folder / f"{ds.name}_{day.isoformat()}.csv"
                path.parent.mkdir(parents=True, exist_ok=True)
                buf = io.StringIO()
                writer = csv.DictWriter(buf, fieldnames=[c.name for c in ds.data_columns], lineterminator="\n")
                writer.writeheader()
                writer.writerows(rows(ds, day, n))
                path.write_text(buf.getvalue(), encoding="utf-8")
            written.append(path)
    return written

"""SLI test helpers: processed-shaped Ibis tables from a few hand-written values, settings, a small catalogue."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import schemas
from jobs.sli import catalogue
from jobs.sli.settings import SliSettings
from tests.rows import stored_value

LINEAGE = {"_source_file": "m365/x/x_2024-01-01.csv", "_source_hash": "s", "_row_number": 1, "_row_hash": "h",
           "_ingested_at": datetime(2024, 1, 1, tzinfo=UTC), "_run_id": "run-test"}
DEFAULTS = Path(__file__).resolve().parents[2] / "jobs" / "sli" / "settings.toml"


def settings(**over: Any) -> SliSettings:
    """The SLI defaults with some values replaced."""
    return SliSettings(**{**tomllib.loads(DEFAULTS.read_text()), **over})


@pytest.fixture
def cfg() -> SliSettings:
    return settings()


@pytest.fixture
def cat() -> catalogue.Catalogue:
    return catalogue.load()


def arrow(dataset: str, rows: list[dict[str, Any]], extra: dict[str, Any] | None = None):
    """Rows as an Arrow table with the stored schema of ``dataset`` (unspecified columns null, lineage filled
    in, ``dt`` 2024-01-01 unless given); ``extra`` adds columns the declaration lacks ({name: arrow type})."""
    import pyarrow as pa

    ds = schemas.get(dataset)
    schema = ds.arrow_schema()
    if extra:
        schema = pa.schema([*schema, *[pa.field(n, t) for n, t in extra.items()]])
    cols = {c.name: c for c in ds.stored_columns()}
    data = []
    for r in rows:
        unknown = set(r) - set(cols) - set(extra or {})
        assert not unknown, f"{dataset} has no columns {unknown}"
        full = {**LINEAGE, "dt": "2024-01-01", **r}
        data.append({n: (stored_value(cols[n], full.get(n)) if n in cols else full.get(n)) for n in schema.names})
    given = pa.schema([f.with_nullable(True) for f in schema])
    return pa.Table.from_pylist(data, schema=given)


def table(dataset: str, rows: list[dict[str, Any]], extra: dict[str, Any] | None = None):
    import ibis

    return ibis.memtable(arrow(dataset, rows, extra))


def records(expr, columns: list[str] | None = None, order: list[str] | None = None) -> list[dict[str, Any]]:
    """Execute a table expression; its rows as dicts of ``columns``, sorted by ``order`` (default: them)."""
    rows = expr.to_pyarrow().to_pylist()
    columns = columns or (list(rows[0]) if rows else [])
    out = [{c: r[c] for c in columns} for r in rows]
    keys = order or columns
    return sorted(out, key=lambda r: tuple(str(r[k]) for k in keys))


def D(x) -> Decimal:
    return Decimal(str(x))


def d(text: str) -> date:
    return date.fromisoformat(text)

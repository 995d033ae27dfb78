"""CPI test helpers: processed-shaped Ibis tables from a few hand-written values, and the CPI settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import schemas
from tests.rows import stored_value

LINEAGE = {"_source_file": "psa/x/x_2024-01-01.csv", "_source_hash": "s", "_row_number": 1, "_row_hash": "h",
           "_ingested_at": datetime(2024, 1, 1, tzinfo=UTC), "_run_id": "run-test"}


def arrow(dataset: str, rows: list[dict[str, Any]]):
    """Rows as an Arrow table with the stored schema of ``dataset``; unspecified columns are null, lineage
    is filled in and ``dt`` defaults to 2024-01-01."""
    import pyarrow as pa

    ds = schemas.get(dataset)
    schema = ds.arrow_schema()
    cols = {c.name: c for c in ds.stored_columns()}
    data = []
    for r in rows:
        unknown = set(r) - set(cols)
        assert not unknown, f"{dataset} has no columns {unknown}"
        full = {**LINEAGE, "dt": "2024-01-01", **r}
        data.append({name: stored_value(cols[name], full.get(name)) for name in schema.names})
    # declared nullability, except for a required column a test leaves out
    given = pa.schema([f.with_nullable(f.nullable or any(r[f.name] is None for r in data)) for f in schema])
    return pa.Table.from_pylist(data, schema=given)


def table(dataset: str, rows: list[dict[str, Any]]):
    """:func:`arrow` as an Ibis table expression (runs on DuckDB, or on any backend it is executed by)."""
    import ibis

    return ibis.memtable(arrow(dataset, rows))


def rows_of(expr, columns: list[str] | None = None) -> list[tuple]:
    """Execute a table expression (on DuckDB for memtables); its rows as tuples of ``columns`` (default:
    every column), sorted, so a comparison does not depend on the engine's row order."""
    t = expr.select(*columns) if columns else expr
    return sorted((tuple(r.values()) for r in t.to_pyarrow().to_pylist()), key=lambda r: tuple(map(str, r)))


@pytest.fixture(scope="session")
def cpi_settings(tmp_path_factory):
    """The shipped defaults (jobs/cpi/settings.toml)."""
    from tests.conftest import make_settings

    return make_settings(tmp_path_factory.mktemp("cpi-home"))


@pytest.fixture
def cfg(cpi_settings):
    """The CPI settings model with the shipped defaults (``cfg.model_copy(update=...)`` to vary one)."""
    return cpi_settings.model("cpi")

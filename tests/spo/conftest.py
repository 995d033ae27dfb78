"""SPO test helpers: processed-shaped pandas frames from a few hand-written values, and the SPO settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

import schemas
from tests.conftest import make_settings
from tests.rows import stored_value

LINEAGE = {"_source_hash": "s", "_row_hash": "h", "_ingested_at": datetime(2024, 1, 1, tzinfo=UTC),
           "_run_id": "run-test"}


def arrow(dataset: str, rows: list[dict[str, Any]]):
    """Rows as Arrow with the stored schema of ``dataset``: unspecified columns are null, lineage is filled
    in (``_source_file`` names the export day, ``_row_number`` counts), ``dt`` defaults to 2024-01-01."""
    import pyarrow as pa

    ds = schemas.get(dataset)
    schema = ds.arrow_schema()
    cols = {c.name: c for c in ds.stored_columns()}
    data = []
    for i, r in enumerate(rows):
        unknown = set(r) - set(cols)
        assert not unknown, f"{dataset} has no columns {unknown}"
        dt = r.get("dt", "2024-01-01")
        full = {**LINEAGE, "_source_file": f"x/{ds.name}_{dt}.csv", "_row_number": i + 1, "dt": dt, **r}
        data.append({name: stored_value(cols[name], full.get(name)) for name in schema.names})
    given = pa.schema([f.with_nullable(f.nullable or any(r[f.name] is None for r in data)) for f in schema])
    return pa.Table.from_pylist(data, schema=given)


def frame(dataset: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """:func:`arrow` as pandas (what ``ctx.read_pandas`` and the engine give a stage)."""
    return arrow(dataset, rows).to_pandas()


@pytest.fixture
def cfg(tmp_path):
    """The SPO settings with their defaults."""
    return make_settings(tmp_path / "home").model("spo")

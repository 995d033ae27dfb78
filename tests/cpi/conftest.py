"""CPI test helpers: processed-shaped frames from a few hand-written values, and the CPI settings."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

import schemas
from jobs.cpi.config import CpiConfig

LINEAGE = {"_source_file": "psa/x/x_2024-01-01.csv", "_row_number": 1, "_row_hash": "h",
           "_ingested_at": datetime(2024, 1, 1), "_run_id": "run-test"}


def _value(col, v):
    if v is None:
        return None
    if col.decimal:
        return Decimal(str(v))
    if col.type == "date" and isinstance(v, str):
        return date.fromisoformat(v)
    if col.type == "timestamp" and isinstance(v, str):
        return datetime.fromisoformat(v)
    return v


def frame(spark, dataset: str, rows: list[dict]):
    """A frame with the stored schema of ``dataset``; unspecified columns are null, lineage is filled in
    and ``dt`` defaults to 2024-01-01."""
    ds = schemas.get(dataset)
    schema = ds.spark_schema()
    cols = {c.name: c for c in ds.stored_columns()}
    data = []
    for r in rows:
        unknown = set(r) - set(cols)
        assert not unknown, f"{dataset} has no columns {unknown}"
        full = {**LINEAGE, "dt": "2024-01-01", **r}
        data.append(tuple(_value(cols[f.name], full.get(f.name)) for f in schema.fields))
    return spark.createDataFrame(data, schema, verifySchema=False)


@pytest.fixture
def cfg(tmp_path) -> CpiConfig:
    """The shipped defaults (lakehouse/defaults.toml)."""
    from tests.conftest import make_settings

    return CpiConfig.from_settings(make_settings(tmp_path / "home"))

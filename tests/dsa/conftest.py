"""DSA test helpers: processed-shaped Ibis tables from a few hand-written values, the FOCUS sample as the
quality gate would type it, and the DSA settings."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import schemas
from tests.rows import stored_value

LINEAGE = {"_source_file": "x/x_2024-01-01.csv", "_source_hash": "s", "_row_number": 1, "_row_hash": "h",
           "_ingested_at": datetime(2024, 1, 1, tzinfo=UTC), "_run_id": "run-test"}
FOCUS_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "focus" / "focus_sample.csv"
#: The whole FOCUS 1.0 sample (1,000 rows), when the shared data folder is there.
FOCUS_FULL = Path("/work/shared/data/focus-1.0-sample/focus_sample.csv")


def arrow(dataset: str, rows: list[dict[str, Any]]):
    """Rows as an Arrow table with the stored schema of ``dataset``; unspecified columns are null, lineage is
    filled in and ``dt`` defaults to 2024-01-01."""
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
    given = pa.schema([f.with_nullable(True) for f in schema])
    return pa.Table.from_pylist(data, schema=given)


def table(dataset: str, rows: list[dict[str, Any]]):
    import ibis

    return ibis.memtable(arrow(dataset, rows))


def focus_rows(path: Path = FOCUS_FIXTURE) -> list[dict[str, Any]]:
    """A FOCUS export file as processed.focus_costs rows (the gate's typing: NULL is null, header renamed)."""
    ds = schemas.get("raw.focus_costs")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        out = []
        for r in reader:
            row = {}
            for k, v in r.items():
                name = ds.renames.get(k, k)
                row[name] = None if v in ("NULL", "") else v
            row["dt"] = row["charge_period_start"][:10]
            out.append(row)
    return out


@pytest.fixture(scope="session")
def dsa_settings(tmp_path_factory):
    from tests.conftest import make_settings

    return make_settings(tmp_path_factory.mktemp("dsa-home"))


@pytest.fixture
def cfg(dsa_settings):
    """The DSA settings model with the shipped defaults (``cfg.model_copy(update=...)`` to vary one)."""
    return dsa_settings.model("dsa")

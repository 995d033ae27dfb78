"""Helpers for the quality tests: tiny declarations, landing files written in the test, ingest + gate, all
on the real lake (Iceberg under a tmp folder), the real engine (DuckDB) and the real GX project."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

import schemas
from lakehouse.context import RunContext
from lakehouse.ingest import Landing
from lakehouse.ingest import ingest as ingest_datasets
from lakehouse.lake import Lake
from lakehouse.quality.gate import gate
from lakehouse.quality.suite import load_suite
from schemas import Column, Dataset

CLIENTS = Dataset(
    name="q_clients", zone="raw", owner="platform", description="test clients", source="psa", format="csv",
    columns=(Column("client_id", "string", nullable=False), Column("name", "string", nullable=False),
             Column("tier", "string", allowed=("gold", "silver"))),
    primary_key=("client_id",),
)
TICKETS = Dataset(
    name="q_tickets", zone="raw", owner="platform", description="test tickets", source="psa", format="csv",
    columns=(Column("ticket_id", "string", nullable=False), Column("client_id", "string", nullable=False),
             Column("priority", "string", nullable=False, allowed=("low", "high")),
             Column("hours", "decimal(6,2)", min=0, max=24),
             Column("created_at", "timestamp", nullable=False), Column("resolved_at", "timestamp"),
             Column("due_date", "date")),
    primary_key=("ticket_id",),
)
TICKETS_SUITE = {
    "name": "q_tickets",
    "meta": {"derived_columns": [{"name": "_client_known", "lookup": "processed.q_clients",
                                  "on": {"client_id": "client_id"}}]},
    "expectations": [
        {"type": "expect_column_pair_values_a_to_be_greater_than_b",
         "kwargs": {"column_A": "resolved_at", "column_B": "created_at", "or_equal": True},
         "severity": "critical", "meta": {"rule": "resolved_after_created",
                                          "description": "a ticket is resolved after it is created"}},
        {"type": "expect_column_values_to_not_be_null",
         "kwargs": {"column": "_client_known",
                    "row_condition": {"type": "nullity", "column": {"name": "client_id"}, "is_null": False}},
         "severity": "critical", "meta": {"rule": "fk:client_id", "description": "client_id exists in clients"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "hours", "max_value": 12},
         "severity": "warning", "meta": {"rule": "long_ticket", "description": "more than 12 h is unusual"}},
    ],
}
HEADER = "ticket_id,client_id,priority,hours,created_at,resolved_at,due_date"


def ingest(ctx: RunContext, datasets, landing: Landing) -> None:
    """Ingest test datasets the way ``lakehouse.ingest.run`` ingests the declared ones (rejected files and
    rejected lines first, then each dataset's days in one commit)."""
    ingest_datasets(ctx, list(datasets), landing)


#: The tests of the gate's decisions audit every batch with its Checkpoint but build no Data Docs (2-3 s a
#: run here); tests/quality/test_gx.py builds them.
TEST_ENV = {"MSP_QUALITY__DATA_DOCS": "off"}


class Lakehouse:
    """A landing area, a lake and suites in tmp dirs, with the two stages this package cares about."""

    def __init__(self, home: Path, tmp_path: Path, **env: str):
        self.home = home
        self.configure(**env)
        self.landing = Path(self.settings.landing_root)
        self.suites_dir = tmp_path / "expectations"
        self.suites_dir.mkdir(parents=True, exist_ok=True)
        self.datasets = {d.qualified_name: d for d in (CLIENTS, TICKETS)}
        self.datasets.update({d.processed_twin().qualified_name: d.processed_twin() for d in (CLIENTS, TICKETS)})
        self.write_suite(TICKETS_SUITE)

    def configure(self, **env: str) -> None:
        """Settings of the next runs: the test defaults plus ``env`` (``MSP_...`` variables)."""
        from tests.conftest import make_settings

        self.settings = make_settings(self.home, **{**TEST_ENV, **env})

    @property
    def lake(self) -> Lake:
        return Lake.from_settings(self.settings)

    def resolve(self, name: str) -> Dataset:
        return self.datasets[name] if name in self.datasets else schemas.get(name)

    def add(self, ds: Dataset) -> None:
        self.datasets[ds.qualified_name] = ds
        self.datasets[ds.processed_twin().qualified_name] = ds.processed_twin()

    def write_suite(self, suite: dict) -> None:
        (self.suites_dir / f"{suite['name']}.json").write_text(json.dumps(suite))

    def land(self, ds: Dataset, day: str, body: str | bytes, name: str | None = None) -> Path:
        folder = self.landing / ds.source / ds.name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (name or f"{ds.name}_{day}.csv")
        path.write_bytes(body if isinstance(body, bytes) else body.encode("utf-8"))
        return path

    def context(self, *days: str) -> RunContext:
        return RunContext.create(self.settings, [date.fromisoformat(d) for d in days])

    def run(self, *days: str, datasets=(CLIENTS, TICKETS)):
        """Ingest then gate the given datasets for the days; returns (ctx, {name: result})."""
        ctx = self.context(*days)
        try:
            ingest(ctx, datasets, Landing(str(self.landing)))
            suites = [load_suite(ds, directory=self.suites_dir, resolve=self.resolve) for ds in datasets]
            results = gate(ctx, suites, resolve=self.resolve)
        finally:
            ctx.close()
        return ctx, {r.dataset: r for r in results}

    def processed(self, ds: Dataset) -> list[dict]:
        return self.lake.read_arrow(ds.processed_twin()).to_pylist()

    def quarantined(self, ds: Dataset) -> list[dict]:
        return self.lake.read_arrow(ds.quarantine_twin()).to_pylist()


@pytest.fixture
def lakehouse(tmp_path):
    return Lakehouse(tmp_path / "home", tmp_path)

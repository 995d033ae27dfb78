"""Every landing dataset is declared, and its files carry exactly the declared columns."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import schemas
from lakehouse.synth import DATASETS

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "focus" / "focus_sample.csv"


def header(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        return next(csv.reader(fh))


def test_declarations_load():
    catalog = schemas.catalog()
    raw = {d.name for d in catalog.values() if d.zone == "raw"}
    assert set(DATASETS) | {"contract_documents"} <= raw


def test_every_landing_dataset_is_declared_with_its_header(tiny):
    seen = set()
    for folder in sorted(p for p in tiny.landing.glob("*/*") if p.is_dir()):
        source, name = folder.parent.name, folder.name
        ds = schemas.get(f"raw.{name}")
        assert ds.source == source, f"{name} lands in {source}/ but is declared with source {ds.source}"
        seen.add(name)
        declared = [c.name for c in ds.data_columns]
        files = sorted(folder.rglob("*.*"))
        assert files
        for path in files[:5] + files[-5:]:
            if ds.format == "csv":
                assert [ds.renames.get(h, h) for h in header(path)] == declared, path
            elif ds.format == "jsonl":
                assert list(json.loads(path.read_text().splitlines()[0])) == declared, path
            else:
                assert path.suffix in (".pdf", ".txt") and path.parent.name[:4].isdigit()
    assert seen == set(DATASETS) | {"contract_documents"}


def test_focus_files_have_the_sample_columns_and_conventions(tiny):
    files = sorted((tiny.landing / "cloud" / "focus_costs").glob("*.csv"))
    assert header(files[0]) == header(FIXTURE)
    assert len(header(FIXTURE)) == 44
    # quoting like the sample: a quoted header, strings quoted, numbers bare, NULL bare
    first_line = files[0].read_text().splitlines()[0]
    assert first_line == FIXTURE.read_text().splitlines()[0]
    row = files[0].read_text().splitlines()[1].split(",")
    assert row[0] == "NULL" and row[1][0].isdigit() and row[2].startswith('"')
    ds = schemas.get("raw.focus_costs")
    assert ds.null_tokens == ("NULL",)

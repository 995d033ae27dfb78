"""Dirty rows are extra rows, listed in the truth, of every kind; the real rows stay clean."""

from __future__ import annotations

import csv
import io
import json
import re

import pandas as pd

import schemas
from lakehouse.synth.dirty import KINDS


def _fields(dataset, line: str) -> list[str]:
    if line.startswith("{"):
        obj = json.loads(line)
        return ["" if v is None else str(v) for v in obj.values()]
    return next(csv.reader(io.StringIO(line)))


def test_every_kind_of_dirt_is_planted(tiny):
    d = tiny.dirty()
    assert set(d["kind"]) == set(KINDS)
    assert len(d) == tiny.report.dirty_rows
    share = len(d) / tiny.report.total_rows
    assert 0.004 < share < 0.02, f"dirty share {share:.4f} far from the default rate 0.01"


def test_each_dirty_row_is_a_corrupted_copy_of_a_real_row(tiny):
    d = tiny.dirty()
    sample = d.groupby(["dataset", "kind"]).head(3)
    for r in sample.itertuples():
        ds = schemas.get(f"raw.{r.dataset}")
        path = tiny.landing / r.file
        lines = path.read_text().splitlines()
        data = lines if ds.format == "jsonl" else lines[1:]
        dirty_line, source_line = data[int(r.row_number) - 1], data[int(r.copy_of_row) - 1]
        dirty, source = _fields(r.dataset, dirty_line), _fields(r.dataset, source_line)
        names = [c.name for c in ds.data_columns]
        if r.kind == "duplicate":
            assert dirty_line == source_line
            continue
        col = names.index(r.column)
        value = dirty[col]
        if r.kind == "blank_required":
            assert value in ("", "NULL") and source[col] not in ("", "NULL")
        elif r.kind == "bad_date_format":
            assert re.match(r"^\d{2}/\d{2}/\d{4}( \d{2}:\d{2})?$", value), value
        elif r.kind == "negative_amount":
            assert value.startswith("-") and float(value) < 0
        elif r.kind == "unknown_fk":
            assert set(re.sub(r"\D", "", value)) == {"9"}
        # everything else is the real row, apart from a new key for surrogate-keyed datasets
        pk = list(ds.primary_key)
        others = [i for i, n in enumerate(names) if i != col and not (len(pk) == 1 and n == pk[0])]
        assert [dirty[i] for i in others] == [source[i] for i in others]
        if len(pk) == 1:
            assert dirty[names.index(pk[0])] != source[names.index(pk[0])]


def test_clean_rows_keep_one_row_per_key_per_file(tiny):
    for ds in schemas.datasets("raw"):
        if ds.format == "document" or not (tiny.landing / ds.source / ds.name).exists():
            continue
        rows = tiny.rows(ds.source, ds.name)
        key = list(ds.primary_key)
        dup = rows.duplicated([*key, "_file"])
        assert not dup.any(), f"{ds.name}: {rows[dup].head(3).to_dict('records')}"


def test_dirty_rows_never_reuse_a_real_key(tiny):
    d = tiny.dirty()
    d = d[d["kind"] != "duplicate"]
    for dataset in ("tickets", "invoices", "time_entries"):
        ds = schemas.get(f"raw.{dataset}")
        allrows = tiny.rows(ds.source, dataset, clean=False)
        dirty_keys = set(zip(d.loc[d.dataset == dataset, "file"], d.loc[d.dataset == dataset,
                                                                          "row_number"].astype(int), strict=True))
        is_dirty = pd.Series([(f, r) in dirty_keys for f, r in zip(allrows["_file"], allrows["_row"], strict=True)])
        pk = ds.primary_key[0]
        assert not set(allrows.loc[is_dirty.to_numpy(), pk]) & set(allrows.loc[~is_dirty.to_numpy(), pk])

"""Clean rows keep every rule their declaration states (so a quality gate keeps all of them), dirty copies
break one (or point at a missing key), and the FOCUS sample fixture passes the same declaration."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

import schemas
from schemas import Column

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "focus" / "focus_sample.csv"


def broken(col: Column, values: pd.Series, nulls: tuple[str, ...]) -> pd.Series:
    """True where a text value breaks the column's declared type, nullability, allowed values or range."""
    empty = values.isin(("", *nulls))
    bad = empty & (not col.nullable)
    v = values[~empty]
    if col.type == "date":
        ok = v.str.fullmatch(r"\d{4}-\d{2}-\d{2}") & pd.to_datetime(v, format="%Y-%m-%d", errors="coerce").notna()
    elif col.type == "timestamp":
        fmt = (col.formats or ("%Y-%m-%dT%H:%M:%S",))[0]
        ok = pd.to_datetime(v, format=fmt, errors="coerce").notna() & (v.str.len() == len(datetime(2024, 1, 1)
                                                                                          .strftime(fmt)))
    elif col.decimal:
        p, s = col.decimal
        ok = v.str.fullmatch(rf"-?\d{{1,{p - s}}}(\.\d{{1,{s}}})?") if s else v.str.fullmatch(r"-?\d+")
    elif col.type in ("int", "long"):
        ok = v.str.fullmatch(r"-?\d+")
    elif col.type == "boolean":
        ok = v.isin(("true", "false"))
    else:
        ok = pd.Series(True, index=v.index)
    if col.allowed is not None:
        ok &= v.isin([str(a) for a in col.allowed])
    if (col.min is not None or col.max is not None) and col.is_numeric:
        num = pd.to_numeric(v.where(ok), errors="coerce")
        if col.min is not None:
            ok &= ~(num < col.min)
        if col.max is not None:
            ok &= ~(num > col.max)
    bad.loc[v.index] = ~ok.astype(bool)
    return bad


def violations(ds, rows: pd.DataFrame) -> pd.Series:
    out = pd.Series(False, index=rows.index)
    for col in ds.data_columns:
        out |= broken(col, rows[col.name], ds.null_tokens)
    return out


@pytest.mark.parametrize("name", sorted(d.name for d in schemas.datasets("raw") if d.format != "document"))
def test_clean_rows_pass_and_defective_copies_fail(tiny, name):
    ds = schemas.get(f"raw.{name}")
    rows = tiny.rows(ds.source, name, clean=False)
    d = tiny.dirty()
    d = d[d["dataset"] == name]
    kind = {(f, int(r)): k for f, r, k in zip(d["file"], d["row_number"], d["kind"], strict=True)}
    k = pd.Series([kind.get((f, r), "") for f, r in zip(rows["_file"], rows["_row"], strict=True)], index=rows.index)
    bad = violations(ds, rows)
    clean = k == ""
    assert not bad[clean].any(), rows[clean & bad].head(3).to_dict("records")
    schema_kinds = k.isin(["blank_required", "bad_date_format", "negative_amount"])
    assert bad[schema_kinds].all(), rows[schema_kinds & ~bad].head(3).to_dict("records")


def test_the_focus_sample_passes_the_declaration():
    ds = schemas.get("raw.focus_costs")
    rows = pd.read_csv(FIXTURE, dtype=str, keep_default_na=False).rename(columns=ds.renames)
    bad = violations(ds, rows)
    assert not bad.any(), rows[bad].head(2).to_dict("records")

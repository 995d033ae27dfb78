"""One tiny synthetic MSP per test session, and helpers to read its landing files like the pipeline would."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

import schemas
from lakehouse.synth import GenerateReport, generate

SEED = 42


def _text(value) -> str:
    """A JSON value as the text a raw table keeps (as the ingestion does): null -> ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Run:
    landing: Path
    truth: Path
    report: GenerateReport
    _cache: dict = field(default_factory=dict, repr=False)

    def files(self, source: str, dataset: str) -> list[Path]:
        return sorted((self.landing / source / dataset).glob(f"{dataset}_*.*"))

    def dirty(self) -> pd.DataFrame:
        return pd.read_csv(self.truth / "dirty_rows.csv", dtype=str, keep_default_na=False)

    def rows(self, source: str, dataset: str, clean: bool = True) -> pd.DataFrame:
        """Every row of a dataset as text, with ``_file`` (relative path) and ``_row`` (1-based data row);
        ``clean`` drops the rows the truth lists as dirty. Read once per session; callers get a copy."""
        if (source, dataset, clean) not in self._cache:
            self._cache[(source, dataset, clean)] = self._read(source, dataset, clean)
        return self._cache[(source, dataset, clean)].copy()

    def _read(self, source: str, dataset: str, clean: bool) -> pd.DataFrame:
        frames = []
        for path in self.files(source, dataset):
            rel = path.relative_to(self.landing).as_posix()
            if path.suffix == ".jsonl":
                recs = [json.loads(line) for line in path.read_text().splitlines()]
                df = pd.DataFrame([{k: _text(v) for k, v in r.items()} for r in recs], dtype=str)
            else:
                df = pd.read_csv(path, dtype=str, keep_default_na=False)
                df = df.rename(columns=schemas.get(f"raw.{dataset}").renames)
            df["_file"] = rel
            df["_row"] = range(1, len(df) + 1)
            frames.append(df)
        out = pd.concat(frames, ignore_index=True)
        if clean:
            d = self.dirty()
            d = d[d["dataset"] == dataset]
            bad = set(zip(d["file"], d["row_number"].astype(int), strict=True))
            out = out[[(f, r) not in bad for f, r in zip(out["_file"], out["_row"], strict=True)]]
        return out.reset_index(drop=True)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("synth-tiny")
    report = generate("tiny", SEED, root / "landing", root / "truth")
    return Run(root / "landing", root / "truth", report)

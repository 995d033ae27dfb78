"""The row counts docs/synthetic-data.md documents are the counts the generator produces (seed 42)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from lakehouse.synth import generate
from tests.synth.conftest import SEED

DOC = Path(__file__).resolve().parents[2] / "docs" / "synthetic-data.md"


def documented() -> dict[str, dict[str, int]]:
    """The table under '## Row counts': | dataset | tiny | small | reference |."""
    text = DOC.read_text(encoding="utf-8").split("## Row counts", 1)[1].split("\n## ", 1)[0]
    lines = [x for x in text.splitlines() if x.startswith("|")]
    scales = [h.strip() for h in lines[0].strip("|").split("|")][1:]
    out: dict[str, dict[str, int]] = {s: {} for s in scales}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = re.sub(r"[`*]", "", cells[0])
        if name == "total":
            continue
        for s, v in zip(scales, cells[1:], strict=True):
            out[s][name] = int(v.replace(",", ""))
    return out


def test_tiny_counts_are_documented(tiny):
    assert tiny.report.rows == documented()["tiny"]


def test_counting_equals_writing(tiny, tmp_path):
    counted = generate("tiny", SEED, tmp_path / "l", tmp_path / "t", count_only=True)
    assert counted.rows == tiny.report.rows
    assert not (tmp_path / "l").exists()


def test_small_counts_are_documented(tmp_path):
    counted = generate("small", SEED, tmp_path / "l", tmp_path / "t", count_only=True)
    assert counted.rows == documented()["small"]


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("MSP_SYNTH_REFERENCE") != "1",
                    reason="simulating the reference scale takes about 30 s of CPU; set MSP_SYNTH_REFERENCE=1")
def test_reference_counts_are_documented(tmp_path):
    counted = generate("reference", SEED, tmp_path / "l", tmp_path / "t", count_only=True)
    assert counted.rows == documented()["reference"]

"""Same seed and scale, same bytes; and an export day is the same whatever window it is written in."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest

from lakehouse.synth import HorizonError, generate
from tests.synth.conftest import SEED


def digest(root) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_files(tiny, tmp_path):
    again = generate("tiny", SEED, tmp_path / "landing", tmp_path / "truth")
    assert again.rows == tiny.report.rows
    assert digest(tmp_path / "landing") == digest(tiny.landing)
    assert digest(tmp_path / "truth") == digest(tiny.truth)


def test_a_window_writes_the_same_days_as_the_full_run(tiny, tmp_path):
    generate("tiny", SEED, tmp_path / "landing", tmp_path / "truth", start=date(2024, 2, 26), days=10)
    window = digest(tmp_path / "landing")
    assert window, "the window wrote nothing"
    full = digest(tiny.landing)
    days = {f"2024-{m:02d}-{d:02d}" for m, d in [(2, x) for x in range(26, 30)] + [(3, x) for x in range(1, 7)]}
    expected = {k: v for k, v in full.items() if any(day in k for day in days)}
    assert window == expected
    # the dirty rows of those days are the same too
    import pandas as pd

    part = pd.read_csv(tmp_path / "truth" / "dirty_rows.csv", dtype=str, keep_default_na=False)
    whole = tiny.dirty()
    whole = whole[whole["file"].map(lambda f: any(day in f for day in days))]
    assert sorted(map(tuple, part.to_numpy())) == sorted(map(tuple, whole.to_numpy()))


def test_another_seed_gives_another_msp(tiny, tmp_path):
    generate("tiny", SEED + 1, tmp_path / "landing", tmp_path / "truth", days=3)
    other = digest(tmp_path / "landing")
    assert other["psa/clients/clients_2024-01-01.csv"] != digest(tiny.landing)["psa/clients/clients_2024-01-01.csv"]


def test_beyond_the_horizon_is_a_clear_error(tmp_path):
    with pytest.raises(HorizonError, match=r"scale 'tiny' simulates export days 2024-01-01 to 2024-12-31"):
        generate("tiny", SEED, tmp_path / "l", tmp_path / "t", start=date(2024, 12, 1), days=60)
    with pytest.raises(HorizonError):
        generate("tiny", SEED, tmp_path / "l", tmp_path / "t", start=date(2023, 12, 31), days=2)


def test_truth_must_stay_outside_the_landing_area(tmp_path):
    with pytest.raises(ValueError, match="outside the landing area"):
        generate("tiny", SEED, tmp_path / "landing", tmp_path / "landing" / "truth", days=1)

"""``msp generate``: the sub-command writes a window and reports what it wrote."""

from __future__ import annotations

import argparse

from lakehouse.synth import cli
from tests.conftest import make_settings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="msp")
    cli.register(p.add_subparsers(dest="command", required=True))
    return p


def test_generate_a_window_into_the_settings_folders(tmp_path, capsys):
    settings = make_settings(tmp_path / "home")
    args = parser().parse_args(["generate", "--scale", "tiny", "--seed", "3", "--days", "2"])
    assert args.func(args, settings) == 0
    landing = tmp_path / "home" / "landing"
    assert (landing / "psa" / "clients" / "clients_2024-01-01.csv").exists()
    assert (tmp_path / "home" / "truth" / "manifest.json").exists()
    out = capsys.readouterr().out
    assert "tickets" in out and "total" in out


def test_explicit_folders_and_a_clear_error_outside_the_horizon(tmp_path, capsys):
    settings = make_settings(tmp_path / "home")
    args = parser().parse_args(["generate", "--scale", "tiny", "--start", "2024-03-01", "--days", "1",
                                "--out", str(tmp_path / "l"), "--truth", str(tmp_path / "t"), "--dirty-rate", "0"])
    assert args.func(args, settings) == 0
    assert sorted(p.name for p in (tmp_path / "l" / "psa" / "tickets").iterdir()) == ["tickets_2024-03-01.csv"]
    args = parser().parse_args(["generate", "--scale", "tiny", "--start", "2025-06-01", "--out", str(tmp_path / "l"),
                                "--truth", str(tmp_path / "t")])
    assert args.func(args, settings) == 2
    assert "2024-12-31" in capsys.readouterr().out

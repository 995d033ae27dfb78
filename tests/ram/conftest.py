"""RAM test helpers: the agent's default settings (from its settings.toml), with overrides."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from jobs.ram.settings import RamSettings

DEFAULTS = Path(__file__).resolve().parents[2] / "jobs" / "ram" / "settings.toml"


def ram_settings(**overrides) -> RamSettings:
    values = tomllib.loads(DEFAULTS.read_text(encoding="utf-8"))
    return RamSettings(**{**values, **overrides})


@pytest.fixture
def cfg() -> RamSettings:
    return ram_settings()

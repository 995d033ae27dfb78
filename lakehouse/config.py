"""Profiles and settings: the one place that decides the environment.

Settings are layered, each layer overriding the one before, and every effective value remembers
where it came from (``msp config`` prints both):

1. built-in defaults (``lakehouse/defaults.toml``: platform settings and every agent threshold),
2. an optional TOML config file: ``$MSP_CONFIG`` or ``./msp.toml``,
3. environment variables ``MSP_<SECTION>__<KEY>`` (``MSP_CPI__PROBLEM_MONTHS=3``) and, for the
   platform section, ``MSP_<KEY>`` (``MSP_LAKE_ROOT=s3://bucket/lake``, ``MSP_PROFILE=aws``).

The profile (``local`` by default, or ``aws``) picks the lake root, the catalog, the event bus and
the job runner. Business code asks the settings; it never branches on the environment itself.
AWS credentials are never read here: boto3 takes them from the standard AWS chain.
"""

from __future__ import annotations

import copy
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
PROFILES = ("local", "aws")
ENV_PREFIX = "MSP_"


class ConfigError(ValueError):
    """A setting is missing or invalid; the message says which and where it was set."""


def _coerce(text: str, like: Any) -> Any:
    """Parse an environment string into the type of the default it overrides."""
    if isinstance(like, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"expected a boolean, got {text!r}")
    if isinstance(like, int) and not isinstance(like, bool):
        return int(text)
    if isinstance(like, float):
        return float(text)
    if isinstance(like, list | dict):
        return json.loads(text)
    return text


@dataclass
class Settings:
    """Effective settings. ``values[section][key]``; ``sources[section.key]`` tells where each came from."""

    values: dict[str, dict[str, Any]]
    sources: dict[str, str] = field(default_factory=dict)

    # ---- platform ---------------------------------------------------------------------------
    def _p(self, key: str) -> Any:
        return self.values["platform"][key]

    @property
    def profile(self) -> str:
        return self._p("profile")

    @property
    def home(self) -> Path:
        return Path(self._p("home")).expanduser().resolve()

    @property
    def lake_root(self) -> str:
        return self._p("lake_root")

    @property
    def landing_root(self) -> str:
        return self._p("landing_root")

    @property
    def truth_root(self) -> str:
        return self._p("truth_root")

    @property
    def catalog_kind(self) -> str:
        return self._p("catalog")

    @property
    def duckdb_path(self) -> Path:
        return Path(self._p("duckdb_path")).expanduser()

    @property
    def glue_database_prefix(self) -> str:
        return self._p("glue_database_prefix")

    @property
    def event_bus(self) -> str:
        return self._p("event_bus")

    @property
    def runner(self) -> str:
        return self._p("runner")

    @property
    def aws_region(self) -> str:
        return self._p("aws_region")

    def section(self, name: str) -> dict[str, Any]:
        """A whole section (an agent's thresholds, ``spark``, ``quality``...), as a copy."""
        if name not in self.values:
            raise ConfigError(f"no configuration section [{name}] (known: {', '.join(sorted(self.values))})")
        return copy.deepcopy(self.values[name])

    def get(self, dotted: str) -> Any:
        section, _, key = dotted.partition(".")
        try:
            return self.values[section][key]
        except KeyError:
            raise ConfigError(f"unknown setting {dotted!r}") from None

    def with_overrides(self, **platform: Any) -> Settings:
        """A copy with some platform settings replaced (used by tests and ``msp bench``)."""
        values = copy.deepcopy(self.values)
        sources = dict(self.sources)
        for k, v in platform.items():
            values["platform"][k] = v
            sources[f"platform.{k}"] = "override"
        return _resolve(values, sources)

    def rows(self) -> list[tuple[str, str, str]]:
        """(setting, value, source) for display."""
        out = []
        for section, kv in self.values.items():
            for key, value in kv.items():
                shown = json.dumps(value) if not isinstance(value, str) else value
                out.append((f"{section}.{key}", shown, self.sources.get(f"{section}.{key}", "default")))
        return out


def _resolve(values: dict[str, dict[str, Any]], sources: dict[str, str]) -> Settings:
    """Fill the profile-dependent settings that were not set explicitly, then validate."""
    p = values["platform"]
    if p["profile"] not in PROFILES:
        raise ConfigError(f"profile must be one of {PROFILES}, got {p['profile']!r} "
                          f"(set by {sources.get('platform.profile', 'default')})")
    home = Path(p["home"]).expanduser().resolve()
    p["home"] = str(home)
    derived_local = {
        "lake_root": str(home / "lake"),
        "landing_root": str(home / "landing"),
        "truth_root": str(home / "truth"),
        "duckdb_path": str(home / "catalog.duckdb"),
        "catalog": "duckdb",
        "event_bus": "outbox",
        "runner": "local",
    }
    derived_aws = {
        "catalog": "glue",
        "event_bus": "eventbridge",
        "runner": "glue",
        "truth_root": str(home / "truth"),
        "duckdb_path": str(home / "catalog.duckdb"),
    }
    derived = derived_local if p["profile"] == "local" else derived_aws
    for key, value in derived.items():
        if not p.get(key):
            p[key] = value
            sources[f"platform.{key}"] = f"profile {p['profile']}"
    if p["profile"] == "aws":
        for key in ("lake_root", "landing_root"):
            if not str(p.get(key, "")).startswith("s3://"):
                raise ConfigError(f"the aws profile needs platform.{key} = 's3://bucket/prefix' "
                                  f"(set MSP_{key.upper()} or [platform] {key} in msp.toml)")
    else:
        for key in ("lake_root", "landing_root", "truth_root"):
            if not str(p[key]).startswith("s3://"):
                p[key] = str(Path(p[key]).expanduser().resolve())
    if p["lake_root"].rstrip("/") == p["truth_root"].rstrip("/") or p["truth_root"].startswith(
        p["lake_root"].rstrip("/") + "/"
    ):
        raise ConfigError("platform.truth_root must be outside the lake: agents must not read planted truth")
    return Settings(values, sources)


def load_settings(config_file: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Settings:
    """Load the effective settings from defaults, the config file and the environment."""
    env = dict(os.environ if env is None else env)
    with DEFAULTS_FILE.open("rb") as fh:
        values: dict[str, dict[str, Any]] = tomllib.load(fh)
    sources: dict[str, str] = {}

    path = Path(config_file) if config_file else (Path(env["MSP_CONFIG"]) if env.get("MSP_CONFIG") else None)
    if path is None and Path("msp.toml").is_file():
        path = Path("msp.toml")
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist (set by "
                              f"{'MSP_CONFIG' if env.get('MSP_CONFIG') else 'argument'})")
        try:
            with path.open("rb") as fh:
                overrides = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
        for section, kv in overrides.items():
            if section not in values:
                raise ConfigError(f"{path}: unknown section [{section}] (known: {', '.join(sorted(values))})")
            for key, value in kv.items():
                if key not in values[section]:
                    raise ConfigError(f"{path}: unknown setting {section}.{key}")
                values[section][key] = value
                sources[f"{section}.{key}"] = f"file {path}"

    for name, text in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name == "MSP_CONFIG":
            continue
        rest = name[len(ENV_PREFIX):].lower()
        section, sep, key = rest.partition("__")
        if not sep:
            section, key = "platform", rest
        if section not in values or key not in values[section]:
            continue  # not ours (or a typo we cannot tell from another tool's variable)
        try:
            values[section][key] = _coerce(text, values[section][key])
        except (ValueError, json.JSONDecodeError) as exc:
            raise ConfigError(f"environment variable {name}: {exc}") from exc
        sources[f"{section}.{key}"] = f"env {name}"

    return _resolve(values, sources)

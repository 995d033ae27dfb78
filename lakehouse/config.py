"""Profiles and settings: the one place that decides the environment.

Settings are layered, each layer overriding the one before, and every effective value remembers where it
came from (``msp config`` prints both):

1. built-in defaults: ``lakehouse/defaults.toml`` for the platform's sections, and each agent's own defaults
   file (``jobs/<agent>/settings.toml``) for the section named after the agent;
2. an optional TOML config file: ``$MSP_CONFIG`` or ``./msp.toml``;
3. environment variables ``MSP_<SECTION>__<KEY>`` (``MSP_CPI__PROBLEM_MONTHS=3``) and, for the platform
   section, ``MSP_<KEY>`` (``MSP_LAKE_ROOT=s3://bucket/lake``, ``MSP_PROFILE=aws``).

Every section is then validated by its pydantic model (:class:`Section` subclasses: the platform's below,
each agent's in its declaration): an unknown key, a value of the wrong type or out of range stops with a
message naming the key, where it was set and what is allowed. The layering is ours rather than
pydantic-settings' sources because a user must be told where each value came from, and pydantic-settings
does not keep that.

The profile (``local`` by default, or ``aws``) fills in what was not set explicitly: the lake root, the job
engine, the table catalog, the SQL catalog, the event bus and the job runner (see
:mod:`lakehouse.environment`, which turns those names into implementations). No other code asks which
profile it runs on. AWS credentials are never read here: boto3 takes them from the standard AWS chain.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
PROFILES = ("local", "aws")
ENV_PREFIX = "MSP_"
#: ``MSP_*`` variables that are not settings (the config file's location; tools of ours with their own).
NOT_SETTINGS = ("MSP_CONFIG",)


class ConfigError(ValueError):
    """A setting is missing or invalid; the message says which, where it was set and what is allowed."""


class Section(BaseModel):
    """Base of every settings section: no unknown keys, values fixed once loaded.

    Fields declare types and bounds only; their default values live in the section's defaults file (one
    place), so a model has no defaults of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


# ---- the platform's sections --------------------------------------------------------------------------------
Memory = Annotated[str, Field(pattern=r"^\d+[kKmMgGtT]$", description="JVM memory size such as 2g or 512m")]


class PlatformSettings(Section):
    profile: Literal["local", "aws"]
    home: str
    lake_root: str
    landing_root: str
    truth_root: str
    engine: Literal["duckdb", "spark"]
    table_catalog: Literal["sql", "glue"]
    catalog: Literal["duckdb", "athena"]
    duckdb_path: str
    iceberg_catalog_uri: str
    glue_database_prefix: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    event_bus: Literal["local", "eventbridge"]
    eventbridge_bus_name: Annotated[str, Field(min_length=1)]
    runner: Literal["local", "glue"]
    aws_region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")]
    glue_job_prefix: str
    glue_scripts_location: str
    athena_workgroup: str
    athena_output: str
    skip_unchanged: bool
    run_lock_wait_seconds: Annotated[float, Field(ge=0, le=86_400)]
    workers: Literal["auto"] | Annotated[int, Field(ge=1, le=64)]
    window: Literal["month", "off"]


class SparkSettings(Section):
    master: Annotated[str, Field(pattern=r"^(local(\[(\d+|\*)\])?|yarn|spark://.+|k8s://.+)$")]
    driver_memory: Memory
    shuffle_partitions: Annotated[int, Field(ge=1, le=10_000)]
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"]


class LakeSettings(Section):
    snapshot_keep_days: Annotated[int, Field(ge=0, le=3650)]
    snapshot_keep_min: Annotated[int, Field(ge=1, le=10_000)]
    compact_min_files: Annotated[int, Field(ge=2, le=100_000)]
    compact_target_mb: Annotated[int, Field(ge=1, le=4096)]
    orphan_min_age_hours: Annotated[float, Field(ge=0)]
    commit_retries: Annotated[int, Field(ge=0, le=50)]


class QualitySettings(Section):
    row_count_drop_max: Annotated[float, Field(gt=0, le=1)]
    row_count_min_previous: Annotated[int, Field(ge=0)]
    null_share_jump_max: Annotated[float, Field(gt=0, le=1)]
    null_share_min_rows: Annotated[int, Field(ge=1)]
    null_share_z: Annotated[float, Field(ge=0)]
    retype_share_max: Annotated[float, Field(gt=0, le=1)]
    retype_min_values: Annotated[int, Field(ge=1)]
    fail_on_drift: bool
    sample_failing_rows: Annotated[int, Field(ge=0, le=1000)]
    checkpoint: Literal["on", "off"]
    data_docs: Literal["on", "off"]
    batch_rows: Annotated[int, Field(ge=1000)]


class SynthSettings(Section):
    dirty_rate: Annotated[float, Field(ge=0, le=0.5)]


class AirflowSettings(Section):
    tasks: Literal["dag", "stage"]
    glue_poke_seconds: Annotated[int, Field(ge=5, le=3600)]
    glue_max_hours: Annotated[float, Field(gt=0, le=48)]
    retries: Annotated[int, Field(ge=2, le=10)]


PLATFORM_SECTIONS: dict[str, type[Section]] = {
    "platform": PlatformSettings, "spark": SparkSettings, "lake": LakeSettings, "quality": QualitySettings,
    "synth": SynthSettings, "airflow": AirflowSettings,
}


# ---- effective settings ---------------------------------------------------------------------------------------
@dataclass
class Settings:
    """Effective settings: ``values[section][key]``; ``sources["section.key"]`` tells where each came from;
    ``models[section]`` is the validated model of each section."""

    values: dict[str, dict[str, Any]]
    sources: dict[str, str] = field(default_factory=dict)
    models: dict[str, Section] = field(default_factory=dict, repr=False)

    # ---- platform --------------------------------------------------------------------------------------
    @property
    def platform(self) -> PlatformSettings:
        return self.models["platform"]  # type: ignore[return-value]

    @property
    def profile(self) -> str:
        return self.platform.profile

    @property
    def home(self) -> Path:
        return Path(self.platform.home)

    @property
    def lake_root(self) -> str:
        return self.platform.lake_root

    @property
    def landing_root(self) -> str:
        return self.platform.landing_root

    @property
    def truth_root(self) -> str:
        return self.platform.truth_root

    @property
    def duckdb_path(self) -> Path:
        return Path(self.platform.duckdb_path)

    @property
    def aws_region(self) -> str:
        return self.platform.aws_region

    def model(self, section: str) -> Any:
        """The validated settings model of a section (an agent's name, ``quality``, ``spark``...)."""
        try:
            return self.models[section]
        except KeyError:
            raise ConfigError(f"no settings section [{section}] (known: {', '.join(sorted(self.models))})") from None

    def section(self, name: str) -> dict[str, Any]:
        """A whole section as a plain dict (a copy)."""
        self.model(name)
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
        for k in DERIVED:
            if f"platform.{k}" in sources and sources[f"platform.{k}"].startswith("profile "):
                values["platform"][k] = ""  # derive again from the (possibly new) home and profile
        return _finish(values, sources, self._schemas())

    def _schemas(self) -> dict[str, type[Section]]:
        return {name: type(m) for name, m in self.models.items()}

    def rows(self) -> list[tuple[str, str, str]]:
        """(setting, value, source) for display."""
        out = []
        for section, kv in self.values.items():
            for key, value in kv.items():
                shown = json.dumps(value) if not isinstance(value, str) else value
                out.append((f"{section}.{key}", shown, self.sources.get(f"{section}.{key}", "default")))
        return out


#: Platform settings the profile derives when they are left empty.
DERIVED = ("lake_root", "landing_root", "truth_root", "engine", "table_catalog", "catalog", "duckdb_path",
           "iceberg_catalog_uri", "event_bus", "runner")


def _derive(p: dict[str, Any], sources: dict[str, str]) -> None:
    """Fill the profile-dependent platform settings that were not set explicitly."""
    if p["profile"] not in PROFILES:
        raise ConfigError(f"platform.profile = {p['profile']!r} ({sources.get('platform.profile', 'default')}): "
                          f"must be one of {', '.join(PROFILES)}")
    home = Path(str(p["home"])).expanduser().resolve()
    p["home"] = str(home)
    local = {
        "lake_root": str(home / "lake"), "landing_root": str(home / "landing"), "truth_root": str(home / "truth"),
        "engine": "duckdb", "table_catalog": "sql", "catalog": "duckdb", "duckdb_path": str(home / "catalog.duckdb"),
        "iceberg_catalog_uri": f"sqlite:///{home / 'iceberg.db'}", "event_bus": "local", "runner": "local",
    }
    aws = {
        "truth_root": str(home / "truth"), "engine": "spark", "table_catalog": "glue", "catalog": "athena",
        "duckdb_path": str(home / "catalog.duckdb"), "iceberg_catalog_uri": "glue", "event_bus": "eventbridge",
        "runner": "glue",
    }
    for key, value in (local if p["profile"] == "local" else aws).items():
        if not p.get(key):
            p[key] = value
            sources[f"platform.{key}"] = f"profile {p['profile']}"
    if p["profile"] == "aws":
        for key in ("lake_root", "landing_root"):
            if not str(p.get(key, "")).startswith("s3://"):
                raise ConfigError(f"the aws profile needs platform.{key} = 's3://bucket/prefix' "
                                  f"(set MSP_{key.upper()} or [platform] {key} in msp.toml)")
    else:
        for key in ("lake_root", "landing_root", "truth_root", "duckdb_path"):
            if not str(p[key]).startswith("s3://"):
                p[key] = str(Path(p[key]).expanduser().resolve())
    lake, truth = p["lake_root"].rstrip("/"), p["truth_root"].rstrip("/")
    if lake == truth or truth.startswith(lake + "/"):
        raise ConfigError("platform.truth_root must be outside the lake: agents must not read planted truth")


def _describe_error(err: dict[str, Any], section: str, sources: Mapping[str, str], values: Mapping[str, Any]) -> str:
    if not err["loc"]:  # a rule across several keys of the section
        set_where = sorted({v for k, v in sources.items() if k.startswith(f"{section}.")})
        return f"[{section}]: {err['msg'].removeprefix('Value error, ')}" + (
            f" (set by {', '.join(set_where)})" if set_where else "")
    loc = ".".join(str(p) for p in err["loc"])
    key = f"{section}.{err['loc'][0]}" if err["loc"] else section
    where = sources.get(key, "default")
    if err["type"] == "extra_forbidden":
        known = [k for k in values if k != err["loc"][0]]
        close = difflib.get_close_matches(str(err["loc"][0]), known, n=1)
        hint = f"; did you mean {section}.{close[0]}?" if close else ""
        return f"unknown setting {section}.{loc} ({where}){hint}"
    if err["type"] == "missing":
        return f"setting {section}.{loc} has no value (its defaults file lacks it)"
    got = err.get("input")
    allowed = err["msg"]
    ctx = err.get("ctx") or {}
    if "expected" in ctx:
        allowed = f"must be one of {ctx['expected']}"
    return f"{section}.{loc} = {json.dumps(got, default=str)} ({where}): {allowed}"


def _finish(values: dict[str, dict[str, Any]], sources: dict[str, str],
            schemas_: Mapping[str, type[Section]]) -> Settings:
    _derive(values["platform"], sources)
    problems: list[str] = []
    models: dict[str, Section] = {}
    for section, model in schemas_.items():
        data = values.get(section, {})
        try:
            models[section] = model.model_validate(data)
        except ValidationError as exc:
            problems += [_describe_error(e, section, sources, data) for e in exc.errors()]
    if problems:
        raise ConfigError("; ".join(problems))
    return Settings(values, sources, models)


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path}: invalid TOML: {exc}") from exc


def _coerce(text: str, like: Any) -> Any:
    """An environment string as the kind of value it overrides (lists and tables are JSON)."""
    if isinstance(like, bool):
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return text  # the model refuses it, naming the variable
    if isinstance(like, list | dict):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"expected JSON ({type(like).__name__}), got {text!r}: {exc.msg}") from None
    return text


def section_schemas() -> dict[str, type[Section]]:
    """Every settings section and its model: the platform's, then each agent's (from the registry)."""
    from lakehouse.agents import registry

    out = dict(PLATFORM_SECTIONS)
    for name, agent in registry().settings_sections().items():
        if name in out:
            raise ConfigError(f"agent {name!r} would shadow the platform settings section [{name}]")
        out[name] = agent.settings
    return out


def default_values() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The built-in defaults of every section, and the file each came from."""
    from lakehouse.agents import registry

    values = _read_toml(DEFAULTS_FILE, "defaults file")
    origin = {s: str(DEFAULTS_FILE) for s in values}
    for name, agent in registry().settings_sections().items():
        values[name] = _read_toml(agent.defaults_path, f"agent {name} defaults")
        origin[name] = str(agent.defaults_path)
    return values, origin


def load_settings(config_file: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load the effective settings from the defaults, the config file and the environment."""
    env = dict(os.environ if env is None else env)
    values, _ = default_values()
    schemas_ = section_schemas()
    sources: dict[str, str] = {}

    path = Path(config_file) if config_file else (Path(env["MSP_CONFIG"]) if env.get("MSP_CONFIG") else None)
    if path is None and Path("msp.toml").is_file():
        path = Path("msp.toml")
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist (set by "
                              f"{'MSP_CONFIG' if env.get('MSP_CONFIG') and not config_file else 'argument'})")
        for section, kv in _read_toml(path, "config file").items():
            if section not in schemas_:
                close = difflib.get_close_matches(section, list(schemas_), n=1)
                raise ConfigError(f"{path}: unknown section [{section}]" +
                                  (f"; did you mean [{close[0]}]?" if close else "") +
                                  f" (known: {', '.join(sorted(schemas_))})")
            if not isinstance(kv, dict):
                raise ConfigError(f"{path}: [{section}] must be a table of settings")
            for key, value in kv.items():
                values.setdefault(section, {})[key] = value
                sources[f"{section}.{key}"] = f"file {path}"

    platform_keys = set(values.get("platform", {}))
    for name, text in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name in NOT_SETTINGS:
            continue
        rest = name[len(ENV_PREFIX):].lower()
        section, sep, key = rest.partition("__")
        if not sep:
            section, key = "platform", rest
            if key not in platform_keys:
                close = difflib.get_close_matches(key, sorted(platform_keys), n=1, cutoff=0.8)
                if close:  # a misspelt platform setting; other MSP_ variables belong to our scripts
                    raise ConfigError(f"environment variable {name}: unknown setting platform.{key}; did you mean "
                                      f"MSP_{close[0].upper()}?")
                continue
        elif section not in schemas_:
            close = difflib.get_close_matches(section, list(schemas_), n=1)
            raise ConfigError(f"environment variable {name}: unknown settings section [{section}]" +
                              (f"; did you mean MSP_{close[0].upper()}__{key.upper()}?" if close else "") +
                              f" (known: {', '.join(sorted(schemas_))})")
        current = values.setdefault(section, {})
        if key not in current and section != "platform":
            close = difflib.get_close_matches(key, list(current), n=1)
            raise ConfigError(f"environment variable {name}: unknown setting {section}.{key}" +
                              (f"; did you mean MSP_{section.upper()}__{close[0].upper()}?" if close else ""))
        try:
            current[key] = _coerce(text, current.get(key))
        except ConfigError as exc:
            raise ConfigError(f"environment variable {name}: {exc}") from None
        sources[f"{section}.{key}"] = f"env {name}"
    return _finish(values, sources, schemas_)

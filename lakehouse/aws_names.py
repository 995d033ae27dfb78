"""Every AWS resource name of a deployment, derived in one place: the infra stack creates what these name,
and the runtime (settings, Glue job names, the event bus, Athena) uses the same names.

A deployment is ``<project>-<env>`` (``msp-dev``, ``msp-prod``) in one account and region::

    >>> n = AwsNames("dev", account="123456789012", region="eu-west-1")
    >>> n.lake_bucket, n.glue_database_prefix, n.job("acme"), n.event_bus
    ('msp-dev-lake-123456789012-eu-west-1', 'msp_dev', 'msp-dev-acme', 'msp-dev-agents')

``infra/stack.py`` passes its own account and region (CloudFormation tokens when the stack is
environment-agnostic); ``msp aws names`` prints the names of a deployment; ``msp aws settings --from-stack``
turns a deployed stack's outputs into the settings file the jobs and the DAGs read (:func:`settings_toml`).

**Jobs and roles: one per unit.** A *unit* is what one Glue job runs under one IAM role: an agent (all its
stages), or one of the platform's stages (ingestion, the quality gate, event dispatch, table maintenance),
whose access differs too much to share a role. :func:`units` derives them from the agent registry, and
:func:`access` what each unit may read and write, from the stages' declared reads and writes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.agents import Registry, Stage
    from lakehouse.config import Settings

PROJECT = "msp"
#: Where the lake lives in its bucket, and the landing area in its own.
LAKE_PREFIX = "lake"
LANDING_PREFIX = "landing"
#: Folders of the artifacts bucket: Glue scripts, the job wheel and the jobs' settings; Athena results.
GLUE_PREFIX = "glue"
ATHENA_PREFIX = "athena-results"
#: The settings file the Glue jobs and the DAGs read (``msp aws settings`` writes the same one).
SETTINGS_FILE = "msp.toml"
GLUE_ENTRY_SCRIPT = "glue_entry.py"
#: Platform settings a deployment decides; each is a stack output of this name (``settings_from_outputs``).
SETTING_OUTPUTS: dict[str, tuple[str, str]] = {
    "LakeRoot": ("platform", "lake_root"),
    "LandingRoot": ("platform", "landing_root"),
    "GlueDatabasePrefix": ("platform", "glue_database_prefix"),
    "GlueJobPrefix": ("platform", "glue_job_prefix"),
    "GlueScriptsLocation": ("platform", "glue_scripts_location"),
    "EventBusName": ("platform", "eventbridge_bus_name"),
    "AthenaWorkgroup": ("platform", "athena_workgroup"),
    "AthenaOutput": ("platform", "athena_output"),
    "Region": ("platform", "aws_region"),
}
#: What the aws profile needs besides the names (the GX project of an S3 lake is not wired yet: the audit's
#: Checkpoint and Data Docs are off there; the quality gate's own rules still run, see docs/quality.md).
AWS_PROFILE_SETTINGS: dict[str, dict[str, Any]] = {
    "platform": {"profile": "aws"},
    "quality": {"checkpoint": "off", "data_docs": "off"},
}
_PART = re.compile(r"^[a-z][a-z0-9]{0,11}$")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def _fit(name: str, limit: int) -> str:
    """``name`` cut to ``limit`` characters with a short hash of the whole, so two long names stay distinct."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{name[:limit - 7].rstrip('-')}-{digest}"


@dataclass(frozen=True)
class AwsNames:
    """The names of one deployment (``env``) of the project in one account and region."""

    env: str = "dev"
    project: str = PROJECT
    account: str = "123456789012"
    region: str = "us-east-1"

    def __post_init__(self) -> None:
        for what, value in (("project", self.project), ("env", self.env)):
            if not _PART.match(value):
                raise ValueError(f"{what} {value!r}: 1 to 12 lower-case letters and digits, starting with a letter "
                                 "(it goes into bucket, database and role names)")

    # ---- the deployment ---------------------------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        """``msp-dev``: every name starts with it."""
        return f"{self.project}-{self.env}"

    @property
    def stack(self) -> str:
        return f"{self.project}-lakehouse-{self.env}"

    # ---- S3 ------------------------------------------------------------------------------------------------
    def _bucket(self, what: str) -> str:
        return _fit(f"{self.prefix}-{what}-{self.account}-{self.region}", 63)

    @property
    def lake_bucket(self) -> str:
        return self._bucket("lake")

    @property
    def landing_bucket(self) -> str:
        return self._bucket("landing")

    @property
    def artifacts_bucket(self) -> str:
        """Glue scripts, the job wheel, the jobs' settings file and Athena results."""
        return self._bucket("artifacts")

    @property
    def access_logs_bucket(self) -> str:
        return self._bucket("access-logs")

    @property
    def airflow_bucket(self) -> str:
        """MWAA's source bucket (DAGs, plugins, requirements, startup script): MWAA wants ``airflow-`` first."""
        return _fit(f"airflow-{self.prefix}-{self.account}-{self.region}", 63)

    @property
    def lake_root(self) -> str:
        return f"s3://{self.lake_bucket}/{LAKE_PREFIX}"

    @property
    def landing_root(self) -> str:
        return f"s3://{self.landing_bucket}/{LANDING_PREFIX}"

    @property
    def glue_scripts_location(self) -> str:
        return f"s3://{self.artifacts_bucket}/{GLUE_PREFIX}/"

    def glue_artifact(self, file_name: str) -> str:
        return f"{self.glue_scripts_location}{file_name}"

    @property
    def settings_location(self) -> str:
        """The settings file of the Glue jobs (``--msp_config``)."""
        return self.glue_artifact(SETTINGS_FILE)

    @property
    def athena_output(self) -> str:
        return f"s3://{self.artifacts_bucket}/{ATHENA_PREFIX}/"

    @property
    def kms_alias(self) -> str:
        return f"alias/{self.prefix}-lake"

    # ---- Glue ------------------------------------------------------------------------------------------------
    @property
    def glue_database_prefix(self) -> str:
        """``msp_dev``: databases ``msp_dev_raw``, ``msp_dev_processed``... (Glue and Athena)."""
        return f"{self.project}_{self.env}"

    def glue_database(self, zone_root: str) -> str:
        return f"{self.glue_database_prefix}_{zone_root.replace('-', '_')}"

    @property
    def glue_job_prefix(self) -> str:
        return f"{self.prefix}-"

    def job(self, unit: str) -> str:
        """The Glue job of a unit (an agent, or a platform stage): ``msp-dev-acme``, ``msp-dev-quality``."""
        return job_name(self.glue_job_prefix, unit)

    @property
    def glue_security_configuration(self) -> str:
        return f"{self.prefix}-glue"

    # ---- IAM -----------------------------------------------------------------------------------------------
    def role(self, unit: str) -> str:
        """The IAM role a unit's Glue job runs as."""
        return _fit(f"{self.prefix}-{_slug(unit)}-job", 64)

    @property
    def mwaa_role(self) -> str:
        return f"{self.prefix}-mwaa"

    # ---- events --------------------------------------------------------------------------------------------
    @property
    def event_bus(self) -> str:
        return f"{self.prefix}-agents"

    def inbox_queue(self, agent: str) -> str:
        return _fit(f"{self.prefix}-{_slug(agent)}-inbox", 80)

    def inbox_dlq(self, agent: str) -> str:
        return _fit(f"{self.prefix}-{_slug(agent)}-inbox-dlq", 80)

    def rule(self, event_type: str, agent: str) -> str:
        """The EventBridge rule delivering one event type to one consuming agent."""
        return _fit(f"{self.prefix}-{_slug(event_type)}-to-{_slug(agent)}", 64)

    @property
    def rules_dlq(self) -> str:
        """Where EventBridge puts events it could not deliver to an inbox."""
        return f"{self.prefix}-rules-dlq"

    # ---- Athena, MWAA, monitoring -------------------------------------------------------------------------
    @property
    def athena_workgroup(self) -> str:
        return f"{self.prefix}-analysts"

    @property
    def mwaa_environment(self) -> str:
        return f"{self.prefix}-airflow"

    @property
    def dashboard(self) -> str:
        return f"{self.prefix}-lakehouse"

    def alarm(self, unit: str) -> str:
        return _fit(f"{self.prefix}-{_slug(unit)}-failed", 255)

    def job_failed_rule(self, unit: str) -> str:
        """The rule (default bus) that counts a unit's failed Glue runs for its alarm."""
        return _fit(f"{self.prefix}-{_slug(unit)}-job-failed", 64)

    def dlq_alarm(self, queue: str) -> str:
        """The alarm on a dead-letter queue holding messages (``queue``: the queue's name)."""
        return _fit(f"{queue}-not-empty", 255)

    @property
    def alarms_topic(self) -> str:
        return f"{self.prefix}-alarms"

    # ---- what the runtime reads -----------------------------------------------------------------------------
    def settings(self) -> dict[str, dict[str, Any]]:
        """The settings (by section) a deployment's jobs and DAGs need: its names and the aws profile."""
        values = {
            "LakeRoot": self.lake_root, "LandingRoot": self.landing_root,
            "GlueDatabasePrefix": self.glue_database_prefix, "GlueJobPrefix": self.glue_job_prefix,
            "GlueScriptsLocation": self.glue_scripts_location, "EventBusName": self.event_bus,
            "AthenaWorkgroup": self.athena_workgroup, "AthenaOutput": self.athena_output, "Region": self.region,
        }
        return settings_from_outputs(values)

    def rows(self, reg: Registry | None = None) -> list[tuple[str, str]]:
        """(what, name) of every resource, for ``msp aws names``."""
        out = [("stack", self.stack), ("lake bucket", self.lake_bucket), ("landing bucket", self.landing_bucket),
               ("artifacts bucket", self.artifacts_bucket), ("access-log bucket", self.access_logs_bucket),
               ("airflow bucket", self.airflow_bucket), ("lake root", self.lake_root),
               ("landing root", self.landing_root), ("KMS key", self.kms_alias),
               ("Glue scripts", self.glue_scripts_location), ("jobs' settings", self.settings_location),
               ("Glue security configuration", self.glue_security_configuration)]
        out += [(f"Glue database ({z})", self.glue_database(z)) for z in zone_roots()]
        for u in units(reg):
            out += [(f"Glue job ({u.name})", self.job(u.name)), (f"IAM role ({u.name})", self.role(u.name)),
                    (f"alarm ({u.name})", self.alarm(u.name)),
                    (f"failed-run rule ({u.name})", self.job_failed_rule(u.name))]
        out += [("event bus", self.event_bus), ("rules' dead-letter queue", self.rules_dlq),
                ("alarm (rules' dead-letter queue)", self.dlq_alarm(self.rules_dlq))]
        for event_type, agent, _detail in routes(reg):
            out.append((f"rule {event_type} → {agent}", self.rule(event_type, agent)))
        for agent in consumers(reg):
            out += [(f"inbox ({agent})", self.inbox_queue(agent)), (f"inbox DLQ ({agent})", self.inbox_dlq(agent)),
                    (f"alarm (inbox DLQ {agent})", self.dlq_alarm(self.inbox_dlq(agent)))]
        out += [("Athena workgroup", self.athena_workgroup), ("Athena results", self.athena_output),
                ("MWAA environment", self.mwaa_environment), ("MWAA role", self.mwaa_role),
                ("dashboard", self.dashboard), ("alarm topic", self.alarms_topic)]
        return out


def job_name(prefix: str, unit: str) -> str:
    """``<platform.glue_job_prefix><unit>``: the runtime's and the stack's job name of a unit."""
    return _fit(f"{prefix}{_slug(unit)}", 255)


# ---- settings from a stack's outputs --------------------------------------------------------------------------
def settings_from_outputs(outputs: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The settings (by section) a stack's outputs stand for, plus what the aws profile needs."""
    missing = sorted(set(SETTING_OUTPUTS) - set(outputs))
    if missing:
        raise KeyError(f"the stack has no output {', '.join(missing)} (is it an msp-lakehouse stack, up to date?)")
    values: dict[str, dict[str, Any]] = {s: dict(kv) for s, kv in AWS_PROFILE_SETTINGS.items()}
    for output, (section, key) in SETTING_OUTPUTS.items():
        values.setdefault(section, {})[key] = outputs[output]
    return values


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def settings_toml(values: Mapping[str, Mapping[str, Any]], header: str = "") -> str:
    """A settings file (``msp.toml``) of some sections."""
    lines = [f"# {line}" for line in header.splitlines()] + ([""] if header else [])
    for section, kv in values.items():
        if not kv:
            continue
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in kv.items()]
        lines.append("")
    return "\n".join(lines)


def merge(*layers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, kv in layer.items():
            out.setdefault(section, {}).update(kv)
    return out


# ---- units: what one Glue job and one role run ---------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """What one Glue job runs under one role: an agent's stages, or one platform stage."""

    name: str
    agent: str
    stages: tuple[Stage, ...]

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(s.kind for s in self.stages)


def _registry(reg: Registry | None) -> Registry:
    from lakehouse.agents import registry

    return reg or registry()


def units(reg: Registry | None = None) -> list[Unit]:
    """The platform's stages one unit each (in run order), then one unit per agent."""
    reg = _registry(reg)
    out = [Unit(_slug(s.name), reg.platform.name, (s,)) for s in reg.platform.stages]
    out += [Unit(a.name, a.name, tuple(a.stages)) for a in reg.agents.values() if a.stages]
    names = [u.name for u in out]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ValueError(f"two units would share a Glue job: {clash} (an agent named like a platform stage?)")
    return out


def unit_of(stage: str, reg: Registry | None = None) -> str:
    """The unit (Glue job suffix) that runs a stage."""
    reg = _registry(reg)
    if stage not in reg.stages:
        raise KeyError(f"unknown stage {stage!r}")
    st = reg.stages[stage]
    return _slug(st.name) if st.agent == reg.platform.name else st.agent


def glue_job(settings: Settings, stage: str, reg: Registry | None = None) -> str:
    """The Glue job the runtime starts for a stage: ``<platform.glue_job_prefix><unit>``."""
    return job_name(settings.platform.glue_job_prefix, unit_of(stage, reg))


def zone_roots() -> list[str]:
    import schemas

    return sorted({d.zone_root for d in schemas.catalog().values()})


def routes(reg: Registry | None = None) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(event type, consuming agent, extra event-pattern detail or None) for every declared rule: the rule's
    conditions (:meth:`lakehouse.agents.Rule.event_pattern`) become the EventBridge rule's ``detail`` filter."""
    reg = _registry(reg)
    return sorted(((r.event, r.agent, r.event_pattern()) for r in reg.rules), key=lambda r: (r[0], r[1]))


def consumers(reg: Registry | None = None) -> list[str]:
    return sorted({agent for _t, agent, _d in routes(reg)})


# ---- what a unit may touch -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Access:
    """What a unit's role needs, derived from its stages' declared reads and writes."""

    unit: str
    writes: frozenset[str]              #: datasets it commits (S3 prefix read/write, Glue table create/update)
    reads: frozenset[str]               #: datasets it only reads
    stages: tuple[str, ...]             #: its stages (their state files)
    landing: bool = False               #: reads the landing area (ingestion)
    quality_reports: bool = False       #: writes ``_meta/quality/`` (the gate)
    models: bool = False                #: trains models (writes ``ml-models/``)
    all_tables: bool = False            #: maintenance: every table, including deleting expired files
    event_sources: tuple[str, ...] = ()  #: EventBridge ``Source`` values it may put (the dispatcher only)
    bedrock_models: tuple[str, ...] = ()  #: Bedrock model ids it may invoke
    extra: dict[str, Any] = field(default_factory=dict)


#: The events' inbox table: whoever writes it routes events, and puts them on EventBridge (lakehouse.events).
INBOX = "events.inbox"


def event_source(agent: str) -> str:
    """The EventBridge ``Source`` of an agent's events (see :class:`lakehouse.events.EventBridgeBus`)."""
    return f"{PROJECT}.{agent}"


#: The value of an agent's provider setting that makes it call Amazon Bedrock.
BEDROCK = "bedrock"


def bedrock_models(agent_settings: Any) -> tuple[str, ...]:
    """The Bedrock model ids an agent may call: those its settings name (fields ending in ``bedrock_model_id``)
    when some setting selects Bedrock (a provider or writer set to ``"bedrock"``); none while every such
    setting keeps the local template (the defaults), so a role is granted no model it will not call."""
    if agent_settings is None:
        return ()
    fields = type(agent_settings).model_fields
    if not any(getattr(agent_settings, f) == BEDROCK for f in fields):
        return ()
    return tuple(sorted({str(getattr(agent_settings, f)) for f in fields if f.endswith("bedrock_model_id")
                         and getattr(agent_settings, f)}))


def access(unit: Unit, reg: Registry | None = None, settings: Settings | None = None) -> Access:
    reg = _registry(reg)
    writes = frozenset().union(*(reg.outputs(s) for s in unit.stages))
    reads = frozenset().union(*(reg.inputs(s) for s in unit.stages)) - writes
    kinds = unit.kinds
    emitters = sorted({t.agent for t in reg.events.values()})
    # Stages write their events into the lake's outbox; only the dispatcher, the stage that routes the outbox
    # into the inbox, puts them on EventBridge (every agent's, each under its own Source): no other unit may.
    sources = tuple(event_source(a) for a in emitters) if INBOX in writes else ()
    models: tuple[str, ...] = ()
    if settings is not None and unit.agent in reg.settings_sections():
        models = bedrock_models(settings.model(unit.agent))
    return Access(unit=unit.name, writes=writes, reads=reads, stages=tuple(s.name for s in unit.stages),
                  landing="ingest" in kinds, quality_reports="gate" in kinds, models="train" in kinds,
                  all_tables="maintenance" in kinds, event_sources=sources, bedrock_models=models)


def table_prefix(dataset: str) -> str:
    """The S3 key prefix of a table in the lake bucket (``lake/processed/tickets/``)."""
    import schemas

    ds = schemas.get(dataset)
    return f"{LAKE_PREFIX}/{ds.zone}/{ds.name}/"


def table_glue_name(names: AwsNames, dataset: str) -> tuple[str, str]:
    import schemas

    ds = schemas.get(dataset)
    return names.glue_database(ds.zone_root), ds.name


def folder_markers(prefixes: Iterable[str]) -> list[str]:
    """The folder keys above some prefixes (``lake/``, ``lake/processed/``): pyarrow writes empty marker
    objects for them when it creates a folder, so a role that writes below must be able to put them."""
    out: set[str] = set()
    for prefix in prefixes:
        parts = prefix.strip("/").split("/")
        for i in range(1, len(parts)):
            out.add("/".join(parts[:i]) + "/")
    return sorted(out)

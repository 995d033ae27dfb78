"""Agent declarations, and the registry every list of the platform is derived from.

An agent is one package, ``jobs/<agent>/`` (or any package a third party registers in the ``msp.agents``
entry-point group), whose ``__init__.py`` declares one :class:`Agent`::

    AGENT = Agent(
        name="acme", title="What it decides", package=__name__, summary="one line for lists",
        settings=AcmeSettings,                 # a pydantic model (lakehouse.config.Section)
        defaults="settings.toml",              # its default values, in the package folder
        stages=(Stage("acme.margins", "jobs.acme.margins:run", kind="transform",
                      reads=("processed.invoices", ...), writes=("analytics.acme_margins",)),
                ...),
        emits=("acme.margin.dropped",),        # JSON schema: <package>/events/<type>.json
        consumes={"other.event.type": "acme.on_other"},  # event type -> one of its handler stages
        cli="jobs.acme.cli:register", questions=(Question(...),), panels=(Panel(...),), docs="docs/acme.md")

From these declarations come the stage registry and run order, the settings sections and ``msp config``,
the ``msp <agent>`` commands, one Airflow DAG per agent scheduled on what it reads, the event types and
their routes, the demo's questions, the dashboard's panels and the infra stack's lists. The platform's own
stages (ingestion, the quality gate, event dispatch, table maintenance) are declared the same way in
:mod:`lakehouse.pipeline`; nothing in the platform names an agent.

Importing this module, or a declaration, imports nothing heavy: stage functions and CLI modules are named
``"module:attribute"`` and imported only when they run, so DAG files can build on the registry directly.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import json
import pkgutil
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.context import RunContext

#: Built-in agent packages are the sub-packages of this package; third parties use the entry-point group.
AGENT_PACKAGE = "jobs"
ENTRY_POINT_GROUP = "msp.agents"
PLATFORM = "platform"
NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,4}$")

#: What a stage is, which decides where it runs: never guessed from its name.
STAGE_KINDS: dict[str, str] = {
    "ingest": "landing files into raw tables (platform; the daily ingestion DAG)",
    "gate": "raw into processed through the quality gate (platform; the daily ingestion DAG)",
    "transform": "an agent's daily work (its agent's DAG, scheduled on the tables it reads)",
    "score": "daily scoring with the promoted model (its agent's DAG, after the features it reads)",
    "train": "model training (the weekly training DAG)",
    "handler": "reacts to the events routed to its agent (its agent's DAG, on the agent's inbox)",
    "dispatch": "routes new events to the agents that consume them (the event DAG)",
    "maintenance": "table maintenance: expire snapshots, compact, remove orphans (the weekly maintenance DAG)",
}
#: How a stage's run of many days may be divided (:attr:`Stage.window`).
WINDOWS = ("", "month", "quarter")
#: Kinds a plain ``msp run`` runs; the others run when named or on their own schedule.
DAILY_KINDS = ("ingest", "gate", "transform", "score", "handler", "dispatch")
PANEL_CHARTS = ("line", "bar", "table", "kpi")
PANEL_GROUPS = ("system", "agents", "business")


class DeclarationError(ValueError):
    """An agent declaration is inconsistent; the message names the agent, the field and the problem."""


def _resolve(ref: str, what: str) -> Any:
    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise DeclarationError(f"{what}: {ref!r} must read 'package.module:attribute'")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _next_round(a: Stage, b: Stage) -> bool:
    """Whether ``a`` (a dispatch stage) leaves what ``b`` (a handler) writes to the next dispatch round: handlers
    read what dispatch writes, so dispatch waiting for them too would be a cycle (see lakehouse/runner.py)."""
    return a.kind == "dispatch" and b.kind == "handler"


def _match(pattern: str, name: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(pattern, name)


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: ``call`` is ``"module:function"``, a function ``run(ctx) -> None``.

    ``reads`` and ``writes`` are qualified dataset names (``processed.tickets``; ``*`` wildcards allowed):
    they order the run (a stage runs after those that write what it reads), schedule the Airflow DAGs,
    and bound what the stage may touch (the run context refuses a read or write it did not declare).
    """

    name: str
    call: str
    kind: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    description: str = ""
    agent: str = ""
    #: ``"module:function"``, ``parts(ctx) -> list[Part] | None``: how the stage's work for a run splits into
    #: runs of the stage narrowed by ``ctx.params`` (one per dataset, for the gate) that may run side
    #: by side when the run has workers (``lakehouse/workers.py``); None: it does not split for this run.
    parts: str = ""
    #: ``"month"`` (or ``"quarter"``): a run of more days than one calendar month (quarter) runs the stage once
    #: per month (quarter) of its days, in order (``ctx.dates`` is the window), its writes staged and each
    #: table committed once when the last window is done (:meth:`lakehouse.context.RunContext.
    #: deferred_writes`), so memory holds a window, not the history. Its reads of a table it writes see the
    #: windows staged before, and ``ctx.rebuild`` holds for the first window only (the later ones follow what
    #: the first built, as a next day's run would). Only for a stage whose output for some days is the same
    #: computed all at once or a window at a time (``tests/platform/test_windows.py`` checks every such
    #: stage); ``platform.window = "off"`` turns it off. ``""``: all at once.
    window: str = ""

    @property
    def func(self) -> Callable[[RunContext], None]:
        return _resolve(self.call, f"stage {self.name}")

    def split(self, ctx: RunContext) -> list[Part] | None:
        return _resolve(self.parts, f"stage {self.name} parts")(ctx) if self.parts else None

    @property
    def daily(self) -> bool:
        return self.kind in DAILY_KINDS

    def depends_on(self, other: Stage) -> bool:
        """Whether this stage runs after ``other``: it names it in ``after``, or reads what it writes (a
        dispatch stage never waits for handlers: their events are dispatched in the run's next round)."""
        if other.name in self.after:
            return True
        if _next_round(self, other):
            return False
        reg = registry()
        if self.name in reg.stages and other.name in reg.stages:
            return bool(reg.inputs(self) & reg.outputs(other))
        return any(_match(r, w) for r in self.reads for w in other.writes)


@dataclass(frozen=True)
class Part:
    """One part of a stage's run (:attr:`Stage.parts`): its label, the ``ctx.params`` that narrow the stage to
    it, and the labels of the parts it must run after."""

    label: str
    params: dict[str, Any]
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class Question:
    """A question the demo asks of an agent's tables, with the SQL that answers it (DuckDB and Athena)."""

    title: str
    sql: str


@dataclass(frozen=True)
class Panel:
    """A monitoring-dashboard panel: a SQL query over the catalog and how to draw its rows."""

    id: str
    title: str
    sql: str
    chart: str = "table"
    x: str | None = None
    y: tuple[str, ...] = ()
    group: str = "business"
    description: str = ""


@dataclass(frozen=True)
class EventType:
    """A cross-agent event type: declared by the agent that emits it, with its payload's JSON schema."""

    name: str
    agent: str
    schema_path: Path

    @cached_property
    def schema(self) -> dict[str, Any]:
        return json.loads(self.schema_path.read_text(encoding="utf-8"))

    @property
    def description(self) -> str:
        return str(self.schema.get("description", ""))


@dataclass(frozen=True)
class Model:
    """A tabular model an agent trains, evaluable on a user's own CSV (``msp model evaluate``).

    ``spec`` is ``"module:attribute"`` of a :class:`lakehouse.ml.ModelSpec` (how to fit the model and its
    named baseline on any frame)."""

    name: str
    title: str
    spec: str

    def load(self):
        return _resolve(self.spec, f"model {self.name}")


#: Where an agent's rule may look in an event for a condition besides its type.
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Rule:
    """An event rule: events of ``event`` that meet the conditions go to ``handler`` (a handler stage of the
    agent declaring the rule). From this one declaration come the local router (:func:`lakehouse.events.
    dispatch`), the EventBridge rule and target of the infra stack (:meth:`event_pattern`) and the Airflow
    triggering (the agent's DAG runs on its inbox asset).

    ``severity`` keeps events of those severities; ``when`` keeps events whose payload (``data``) field holds
    one of the listed values (``{"reason": ("tier_down", "problem_client")}``), all fields must match.
    ``trace_column`` is the column of the handler's output tables that holds the id(s) of the events a row
    answers (``msp events trace`` follows it; a comma-separated list of ids is allowed)."""

    event: str
    handler: str
    severity: tuple[str, ...] = ()
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    trace_column: str = "event_id"
    description: str = ""
    agent: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", tuple(self.severity))
        object.__setattr__(self, "when", {k: tuple(v) if isinstance(v, list | tuple | set | frozenset) else (v,)
                                          for k, v in sorted(dict(self.when).items())})

    def matches(self, envelope: Mapping[str, Any]) -> bool:
        """Whether an event (its envelope) meets the rule: the type, then every condition."""
        if envelope.get("type") != self.event:
            return False
        if self.severity and envelope.get("severity") not in self.severity:
            return False
        data = envelope.get("data") or {}
        return all(data.get(k) in values for k, values in self.when.items())

    def event_pattern(self) -> dict[str, Any] | None:
        """The conditions as an EventBridge content filter on the envelope (the rule's ``detail``), or None."""
        detail: dict[str, Any] = {}
        if self.severity:
            detail["severity"] = sorted(self.severity)
        if self.when:
            detail["data"] = {k: list(v) for k, v in self.when.items()}
        return detail or None

    def describe(self) -> str:
        parts = []
        if self.severity:
            parts.append(f"severity in {list(self.severity)}")
        parts += [f"data.{k} in {list(v)}" for k, v in self.when.items()]
        return " and ".join(parts)


@dataclass(frozen=True)
class Vote:
    """How an agent votes on consensus proposals (:mod:`lakehouse.consensus`): ``call`` is
    ``"module:function"``, ``f(proposal, reader, config) -> dict`` (decision approve/veto/abstain, metric, value,
    threshold, source rows). ``veto`` names the veto rule; its mode (enforce, warn, dry_run) is the setting
    ``<agent>.<veto>_mode``."""

    actions: tuple[str, ...]
    call: str
    veto: str
    description: str = ""

    @property
    def func(self) -> Callable[..., dict[str, Any]]:
        return _resolve(self.call, f"vote {self.veto}")


@dataclass(frozen=True)
class Agent:
    name: str
    title: str
    package: str
    summary: str = ""
    settings: type | None = None
    defaults: str | None = None
    stages: tuple[Stage, ...] = ()
    emits: tuple[str, ...] = ()
    consumes: Mapping[str, str] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    votes: tuple[Vote, ...] = ()
    proposes: tuple[str, ...] = ()
    cli: str | None = None
    questions: tuple[Question, ...] = ()
    panels: tuple[Panel, ...] = ()
    models: tuple[Model, ...] = ()
    docs: str | None = None

    def __post_init__(self) -> None:
        # stages carry their agent's name, so everything downstream can group by it
        object.__setattr__(self, "stages", tuple(
            s if s.agent == self.name else Stage(**{**s.__dict__, "agent": self.name}) for s in self.stages))
        object.__setattr__(self, "consumes", dict(self.consumes))
        # ``consumes`` is shorthand for rules without conditions; rules carry their agent's name too
        rules = [*self.rules, *(Rule(t, h) for t, h in sorted(self.consumes.items()))]
        object.__setattr__(self, "rules", tuple(
            r if r.agent == self.name else Rule(**{**r.__dict__, "agent": self.name}) for r in rules))

    @property
    def root(self) -> Path:
        """The package folder (where the defaults file and event schemas live)."""
        module = sys.modules.get(self.package) or importlib.import_module(self.package)
        return Path(module.__file__).resolve().parent

    @property
    def defaults_path(self) -> Path | None:
        return self.root / self.defaults if self.defaults else None

    def event_schema(self, event_type: str) -> Path:
        if self.name == PLATFORM:  # the platform's own event types live beside the envelope
            import schemas

            return schemas.EVENTS_DIR / f"{event_type}.json"
        return self.root / "events" / f"{event_type}.json"

    def register_cli(self, subparsers) -> None:
        if self.cli:
            _resolve(self.cli, f"agent {self.name} cli")(subparsers)


# ---- the registry ----------------------------------------------------------------------------------------
@dataclass
class Registry:
    """Every declared agent (and the platform), with what is derived from them."""

    platform: Agent
    agents: dict[str, Agent]
    _cache: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict, repr=False)

    @cached_property
    def all(self) -> dict[str, Agent]:
        return {PLATFORM: self.platform, **self.agents}

    @cached_property
    def stages(self) -> dict[str, Stage]:
        return {s.name: s for a in self.all.values() for s in a.stages}

    @cached_property
    def events(self) -> dict[str, EventType]:
        """Event type → its declaration (emitting agent, schema)."""
        return {t: EventType(t, a.name, a.event_schema(t)) for a in self.all.values() for t in a.emits}

    @cached_property
    def rules(self) -> list[Rule]:
        """Every declared event rule (an agent's ``rules``, and its ``consumes`` as rules without conditions)."""
        return sorted((r for a in self.agents.values() for r in a.rules), key=lambda r: (r.event, r.agent, r.handler))

    @cached_property
    def routes(self) -> dict[str, list[tuple[str, str]]]:
        """Event type → [(consuming agent, handler stage)], from the agents' rules (conditions aside)."""
        out: dict[str, list[tuple[str, str]]] = {t: [] for t in self.events}
        for r in self.rules:
            if (r.agent, r.handler) not in out.setdefault(r.event, []):
                out[r.event].append((r.agent, r.handler))
        return out

    @cached_property
    def proposals(self) -> dict[str, str]:
        """Event types that are consensus proposals → the proposing agent."""
        return {t: a.name for a in self.agents.values() for t in a.proposes}

    def votes(self) -> list[tuple[Agent, Vote]]:
        return [(a, v) for a in self.agents.values() for v in a.votes]

    def outputs(self, stage: Stage) -> frozenset[str]:
        """The declared datasets a stage writes: those it names, and those its wildcards match that its own
        agent owns (``quality`` writes ``processed.*``, but an agent's own processed tables are the agent's)."""
        return self._resolved("w", stage)

    def inputs(self, stage: Stage) -> frozenset[str]:
        """The declared datasets a stage reads (its ``reads`` patterns, resolved)."""
        return self._resolved("r", stage)

    def _resolved(self, what: str, stage: Stage) -> frozenset[str]:
        key = (what, stage.name)
        if key not in self._cache:
            import schemas

            declared = schemas.catalog()
            out: set[str] = set()
            for pattern in (stage.writes if what == "w" else stage.reads):
                if not any(ch in pattern for ch in "*?["):
                    out.add(pattern)
                    continue
                out |= {n for n, ds in declared.items() if fnmatch.fnmatchcase(n, pattern)
                        and (what == "r" or ds.owner == stage.agent)}
            self._cache[key] = frozenset(out)
        return self._cache[key]

    def may_read(self, stage: Stage, dataset: str) -> bool:
        return dataset in self.inputs(stage) or dataset in self.outputs(stage)

    def may_write(self, stage: Stage, dataset: str) -> bool:
        return dataset in self.outputs(stage)

    def producers(self, dataset: str) -> list[Stage]:
        """The stages that write a dataset."""
        return [s for s in self.stages.values() if dataset in self.outputs(s)]

    def agent_of(self, stage: str) -> Agent:
        return self.all[self.stages[stage].agent]

    def settings_sections(self) -> dict[str, Agent]:
        """Agents with a settings section, by section name (the agent's name)."""
        return {a.name: a for a in self.agents.values() if a.settings is not None}

    def questions(self) -> list[tuple[Agent, Question]]:
        return [(a, q) for a in self.agents.values() for q in a.questions]

    def panels(self) -> list[tuple[Agent, Panel]]:
        return [(a, p) for a in self.all.values() for p in a.panels]

    def models(self) -> dict[str, tuple[Agent, Model]]:
        return {m.name: (a, m) for a in self.agents.values() for m in a.models}

    # ---- run order -------------------------------------------------------------------------------------
    def plan(self, agents: Iterable[str] | None = None, names: Iterable[str] | None = None,
             kinds: Iterable[str] | None = DAILY_KINDS) -> list[Stage]:
        """Stages to run, in dependency order.

        ``names`` selects stages by name (any kind); otherwise ``agents`` selects agents (the platform's
        stages always run with them) and ``kinds`` the kinds (default: the daily ones, so a plain run does
        not train models or compact tables)."""
        names = list(names or ())
        if names:
            unknown = sorted(set(names) - set(self.stages))
            if unknown:
                raise DeclarationError(f"unknown stage(s) {', '.join(unknown)}; "
                                       f"known: {', '.join(sorted(self.stages))}")
        agents = list(agents or ())
        unknown_agents = sorted(set(agents) - set(self.agents))
        if unknown_agents:
            raise DeclarationError(f"unknown agent(s) {', '.join(unknown_agents)}; known: "
                                   f"{', '.join(sorted(self.agents)) or 'none'}")
        kinds = set(kinds or STAGE_KINDS)
        if names:
            chosen = [self.stages[n] for n in sorted(set(names))]
        else:
            chosen = [s for s in self.stages.values()
                      if (not agents or s.agent in agents or s.agent == PLATFORM) and s.kind in kinds]
        return order(chosen, self)


def order(stages: Iterable[Stage], reg: Registry | None = None) -> list[Stage]:
    """Dependency order (a stage after those writing what it reads), ties in name order with the event handlers
    last; refuses cycles. Handlers last: the dispatch stages that do not wait for them (the digest) then come
    before them, not between them, and run in the run's process before the handlers start side by side (a
    dispatch stage between two handlers made the workers wait for it and the second handler wait for the
    first: 28 s of one idle core in the reference backfill)."""
    stages = sorted(stages, key=lambda s: (s.kind == "handler", s.name))

    def depends(a: Stage, b: Stage) -> bool:
        if b.name in a.after:
            return True
        if _next_round(a, b):
            return False
        if reg is not None:
            return bool(reg.inputs(a) & reg.outputs(b))
        return any(_match(r, w) for r in a.reads for w in b.writes)

    ordered: list[Stage] = []
    done: set[str] = set()
    visiting: list[str] = []

    def visit(s: Stage) -> None:
        if s.name in done:
            return
        if s.name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(s.name):], s.name])
            raise DeclarationError(f"stage dependency cycle: {cycle}")
        visiting.append(s.name)
        for other in stages:
            if other.name != s.name and depends(s, other):
                visit(other)
        visiting.pop()
        done.add(s.name)
        ordered.append(s)

    for s in stages:
        visit(s)
    return ordered


def _discover_agents() -> list[Agent]:
    found: list[Agent] = []
    try:
        package = importlib.import_module(AGENT_PACKAGE)
    except ModuleNotFoundError as exc:
        if exc.name != AGENT_PACKAGE:
            raise
        package = None
    if package is not None and hasattr(package, "__path__"):
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if not info.ispkg:
                continue
            module = importlib.import_module(f"{AGENT_PACKAGE}.{info.name}")
            agent = getattr(module, "AGENT", None)
            if agent is not None:
                found.append(_checked_type(agent, module.__name__))
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        agent = ep.load()
        found.append(_checked_type(agent, f"entry point {ep.name} = {ep.value}"))
    return found


def _checked_type(obj: Any, where: str) -> Agent:
    if not isinstance(obj, Agent):
        raise DeclarationError(f"{where}: AGENT must be a lakehouse.agents.Agent, got {type(obj).__name__}")
    return obj


@cache
def registry() -> Registry:
    """The registry of this process (built once; :func:`reset` after adding an agent at run time)."""
    from lakehouse.pipeline import PLATFORM_STAGES

    agents: dict[str, Agent] = {}
    for a in _discover_agents():
        if a.name in agents and agents[a.name] is not a:
            raise DeclarationError(f"agent {a.name!r} is declared twice ({agents[a.name].package} and {a.package})")
        agents[a.name] = a
    reg = Registry(PLATFORM_STAGES, dict(sorted(agents.items())))
    validate(reg)
    return reg


def reset() -> None:
    """Forget the registry and the dataset declarations (tests that add an agent package at run time)."""
    import schemas

    registry.cache_clear()
    schemas.catalog.cache_clear()
    with contextlib.suppress(ImportError):
        from lakehouse import events

        events._validator.cache_clear()


def validate(reg: Registry) -> None:
    """Refuse inconsistent declarations, naming the agent and the field."""
    import schemas

    declared = schemas.catalog()
    seen: dict[str, str] = {}
    for a in reg.all.values():
        where = f"agent {a.name}"
        if a.name != PLATFORM and not NAME.match(a.name):
            raise DeclarationError(f"{where}: name must be lower-case letters, digits and '_' (2-31 characters)")
        if a.settings is not None:
            from lakehouse.config import Section

            if not (isinstance(a.settings, type) and issubclass(a.settings, Section)):
                raise DeclarationError(f"{where}: settings must be a subclass of lakehouse.config.Section")
            if not a.defaults or not a.defaults_path.is_file():
                raise DeclarationError(f"{where}: settings need a defaults file in the package (defaults=...)")
        for s in a.stages:
            sw = f"{where}, stage {s.name}"
            if s.name in seen:
                raise DeclarationError(f"{sw}: the name is already used by agent {seen[s.name]}")
            seen[s.name] = a.name
            if a.name != PLATFORM and not s.name.startswith(f"{a.name}."):
                raise DeclarationError(f"{sw}: an agent's stage names start with '{a.name}.'")
            if s.kind not in STAGE_KINDS:
                raise DeclarationError(f"{sw}: kind {s.kind!r} is not one of {', '.join(STAGE_KINDS)}")
            if s.window not in WINDOWS:
                raise DeclarationError(f"{sw}: window {s.window!r} is not one of {', '.join(map(repr, WINDOWS))}")
            for pattern in (*s.reads, *s.writes):
                if not any(fnmatch.fnmatchcase(n, pattern) for n in declared):
                    raise DeclarationError(f"{sw}: no declared dataset matches {pattern!r} (schemas/datasets/)")
            for name in s.writes:
                for ds in (declared[n] for n in declared if fnmatch.fnmatchcase(n, name)):
                    if "*" not in name and ds.owner not in (a.name, PLATFORM):
                        raise DeclarationError(f"{sw}: writes {ds.qualified_name}, which {ds.owner} owns")
        for t in a.emits:
            if not EVENT_NAME.match(t):
                raise DeclarationError(f"{where}: event type {t!r} must be dotted lower-case words")
            if not a.event_schema(t).is_file():
                raise DeclarationError(f"{where}: emits {t} but has no schema at {a.event_schema(t)}")
        for t, handler in a.consumes.items():
            if handler not in {s.name for s in a.stages if s.kind == "handler"}:
                raise DeclarationError(f"{where}: consumes {t} with {handler!r}, which is not one of its handler "
                                       "stages")
        pairs = [(r.event, r.handler) for r in a.rules]
        for r in a.rules:
            rw = f"{where}, rule {r.event} -> {r.handler}"
            if pairs.count((r.event, r.handler)) > 1:
                raise DeclarationError(f"{rw}: declared twice (in rules and consumes?)")
            if r.handler not in {s.name for s in a.stages if s.kind == "handler"}:
                raise DeclarationError(f"{rw}: {r.handler!r} is not one of its handler stages")
            bad = sorted(set(r.severity) - set(SEVERITIES))
            if bad:
                raise DeclarationError(f"{rw}: severity {bad} is not one of {', '.join(SEVERITIES)}")
        for t in a.proposes:
            if t not in a.emits:
                raise DeclarationError(f"{where}: proposes {t}, which it does not emit")
    emitted = [t for a in reg.all.values() for t in a.emits]
    dupes = sorted({t for t in emitted if emitted.count(t) > 1})
    if dupes:
        raise DeclarationError(f"event type(s) {', '.join(dupes)} are emitted by more than one agent")
    for a in reg.agents.values():
        for t in a.consumes:
            if t not in reg.events:
                raise DeclarationError(f"agent {a.name}: consumes {t}, which no agent emits")
        for r in a.rules:
            if r.event not in reg.events:
                raise DeclarationError(f"agent {a.name}: rule on {r.event}, which no agent emits")
            props = reg.events[r.event].schema.get("properties", {})
            unknown = sorted(set(r.when) - set(props))
            if unknown:
                raise DeclarationError(f"agent {a.name}: rule on {r.event} names data field(s) {unknown} its "
                                       f"schema does not declare")
        if len({r.event for r in a.rules}) != len({(r.event, r.handler) for r in a.rules}):
            raise DeclarationError(f"agent {a.name}: one rule per event type (the EventBridge rule is named by "
                                   "event type and agent)")
    owners = set(reg.all)
    for ds in declared.values():
        if ds.owner not in owners:
            raise DeclarationError(f"{ds.path}: owner {ds.owner!r} is not a declared agent "
                                   f"(known: {', '.join(sorted(owners))})")
    order(reg.stages.values(), reg)  # refuses cycles


def agent_names() -> list[str]:
    return list(registry().agents)

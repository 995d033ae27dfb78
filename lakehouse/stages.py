"""The stage registry: how agent jobs plug into the runner without touching it.

A stage is a function ``run(ctx: RunContext) -> None`` registered with :func:`stage`, naming the
datasets it reads and writes (qualified names, ``*`` wildcards allowed). The runner orders stages by
those names (a stage that reads what another writes runs after it), so adding an agent means adding
a module under ``jobs/`` (or any package listed in the ``msp.stages`` entry-point group); the runner
never changes.

Scheduling convention (read by :mod:`lakehouse.orchestration` for Airflow), by the end of a stage's name:
``…train`` (``cpi.churn_train``) is model training and runs in the weekly training DAG; ``…score``
(``cpi.churn_score``) is model scoring and runs daily in its agent's DAG, right after the features it
reads and before the stages that read its scores; anything else is a transform of its agent's DAG
(platform ingestion stages run in the daily ingestion DAG). See :attr:`Stage.kind`.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.context import RunContext

AGENTS = ("platform", "cpi", "spo", "ram", "sli", "dsa", "vcm")
STAGE_KINDS = ("transform", "train", "score")
BUILTIN_STAGE_PACKAGES = ("lakehouse.ingest", "lakehouse.quality", "lakehouse.events", "jobs")


@dataclass(frozen=True)
class Stage:
    name: str
    agent: str
    func: Callable[[RunContext], None]
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    description: str = ""

    @property
    def kind(self) -> str:
        """``train`` or ``score`` when the name ends so, else ``transform`` (see the module docstring)."""
        return next((k for k in STAGE_KINDS[1:] if self.name.endswith(k)), STAGE_KINDS[0])

    def depends_on(self, other: Stage) -> bool:
        if other.name in self.after:
            return True
        return any(_overlap(r, w) for r in self.reads for w in other.writes)


def _overlap(a: str, b: str) -> bool:
    return fnmatch.fnmatchcase(a, b) or fnmatch.fnmatchcase(b, a)


_REGISTRY: dict[str, Stage] = {}


class StageError(RuntimeError):
    """The stage graph is invalid (unknown stage, duplicate name, cycle)."""


def stage(name: str, *, agent: str, reads: Iterable[str] = (), writes: Iterable[str] = (),
          after: Iterable[str] = ()) -> Callable[[Callable], Callable]:
    """Register ``func`` as a pipeline stage."""
    if agent not in AGENTS:
        raise StageError(f"stage {name}: agent must be one of {AGENTS}")

    def decorate(func: Callable[[RunContext], None]) -> Callable[[RunContext], None]:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.func.__qualname__ != func.__qualname__:
            raise StageError(f"stage {name!r} is registered twice ({existing.func.__module__} and {func.__module__})")
        _REGISTRY[name] = Stage(name, agent, func, tuple(reads), tuple(writes), tuple(after),
                                (func.__doc__ or "").strip().split("\n")[0])
        return func

    return decorate


def discover() -> dict[str, Stage]:
    """Import every stage module (built-in packages, then ``msp.stages`` entry points)."""
    for package in BUILTIN_STAGE_PACKAGES:
        try:
            mod = importlib.import_module(package)
        except ModuleNotFoundError as exc:
            if exc.name == package:
                continue
            raise
        if hasattr(mod, "__path__"):
            for info in pkgutil.walk_packages(mod.__path__, prefix=f"{package}."):
                importlib.import_module(info.name)
    for ep in entry_points(group="msp.stages"):
        ep.load()
    return dict(_REGISTRY)


def plan(agents: Iterable[str] | None = None, names: Iterable[str] | None = None) -> list[Stage]:
    """Stages to run, in dependency order. ``agents``/``names`` select; platform stages always run
    when an agent that needs their outputs is selected."""
    registry = discover()
    if names:
        unknown = sorted(set(names) - set(registry))
        if unknown:
            raise StageError(f"unknown stage(s) {unknown}; known: {sorted(registry)}")
    chosen = {
        s.name for s in registry.values()
        if (not agents or s.agent in agents or s.agent == "platform") and (not names or s.name in names)
    }
    ordered: list[Stage] = []
    done: set[str] = set()
    visiting: set[str] = set()
    stages = [registry[n] for n in sorted(chosen)]

    def visit(s: Stage) -> None:
        if s.name in done:
            return
        if s.name in visiting:
            raise StageError(f"stage dependency cycle through {s.name!r}")
        visiting.add(s.name)
        for other in stages:
            if other.name != s.name and s.depends_on(other):
                visit(other)
        visiting.discard(s.name)
        done.add(s.name)
        ordered.append(s)

    for s in stages:
        visit(s)
    return ordered

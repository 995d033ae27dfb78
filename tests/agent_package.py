"""A throwaway agent package, laid out and installed the way a third party would ship one: the package, its
settings, a stage, a handler, an event schema, a dataset declaration and a dist-info folder whose entry points
(``msp.agents``, ``msp.datasets``) make the platform find it. Used by the registry, runner and DAG tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

DECLARATION = '''
from typing import Annotated
from pydantic import Field
from lakehouse.agents import Agent, Question, Stage
from lakehouse.config import Section

class Settings(Section):
    busy_threshold: Annotated[int, Field(ge=1, le=100)]

AGENT = Agent(
    name="tmpagent", title="Throwaway agent", package=__name__, summary="counts tickets",
    settings=Settings, defaults="settings.toml",
    stages=(
        Stage("tmpagent.count", "tmpagent.jobs:run", kind="transform", reads=("processed.tickets",),
              writes=("analytics.tmpagent_counts", "events.outbox"), description="Tickets per client and day."),
        Stage("tmpagent.on_margin", "tmpagent.jobs:on_margin", kind="handler", reads=("events.inbox",),
              description="Reacts to profitability changes."),
    ),
    emits=("tmpagent.busy.detected",),
    consumes={"client.profitability.changed": "tmpagent.on_margin"},
    cli="tmpagent.cli:register",
    questions=(Question("Busiest clients", "SELECT * FROM analytics.tmpagent_counts ORDER BY tickets DESC LIMIT 5"),),
)
'''
JOBS = '''
def run(ctx):
    if ctx.config.busy_threshold == 99:  # a bug: reads a table its declaration does not name
        ctx.table("processed.clients")
    ctx.lake.read_text("ml-models/tmp-model/CURRENT.json")  # the promoted model, if any
    changed = ctx.changed("processed.tickets")
    ctx.count("analytics.tmpagent_counts").notes.append(
        f"rebuild={ctx.rebuild} changed={None if changed is None else sorted(p['dt'] for p in changed)}")
    t = ctx.table("processed.tickets")
    ctx.write("analytics.tmpagent_counts", t.group_by(["client_id", "dt"]).agg(tickets=t.count()))

def on_margin(ctx):
    pass
'''
CLI = '''
def register(sub):
    p = sub.add_parser("tmpagent", help="the throwaway agent")
    p.set_defaults(func=lambda args, settings: print("threshold", settings.model("tmpagent").busy_threshold) or 0)
'''
DATASET = '''
name: tmpagent_counts
zone: analytics/daily-summaries
owner: tmpagent
description: Tickets per client and day.
primary_key: [client_id, dt]
columns:
  - {name: client_id, type: string, nullable: false}
  - {name: tickets, type: long, nullable: false, min: 0}
'''
EVENT = '{"type": "object", "required": ["client_id"], "properties": {"client_id": {"type": "string"}}}'


def write_package(root: Path, name: str, files: dict[str, str]) -> Path:
    """A third-party agent package ``name`` with its dist-info (entry points ``msp.agents`` and
    ``msp.datasets``), as pip would install it under ``root``; ``files`` maps paths inside the package to
    their text."""
    pkg = root / name
    for relative, text in files.items():
        (pkg / relative).parent.mkdir(parents=True, exist_ok=True)
        (pkg / relative).write_text(textwrap.dedent(text))
    dist = root / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[msp.agents]\n{name} = {name}:AGENT\n\n"
                                           f"[msp.datasets]\n{name} = {name}:datasets\n")
    return root


def write_agent_package(root: Path) -> Path:
    """The throwaway agent ``tmpagent`` (see the module docstring)."""
    return write_package(root, "tmpagent", {
        "__init__.py": DECLARATION, "jobs.py": JOBS, "cli.py": CLI,
        "settings.toml": "busy_threshold = 5  # tickets a day that make a client busy\n",
        "events/tmpagent.busy.detected.json": EVENT, "datasets/analytics/tmpagent_counts.yaml": DATASET})

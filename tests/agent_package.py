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


def write_agent_package(root: Path) -> Path:
    """A third-party agent package with its dist-info (entry points), as pip would install it."""
    pkg = root / "tmpagent"
    (pkg / "events").mkdir(parents=True)
    (pkg / "datasets" / "analytics").mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(DECLARATION))
    (pkg / "jobs.py").write_text(textwrap.dedent(JOBS))
    (pkg / "cli.py").write_text(textwrap.dedent(CLI))
    (pkg / "settings.toml").write_text("busy_threshold = 5  # tickets a day that make a client busy\n")
    (pkg / "events" / "tmpagent.busy.detected.json").write_text(EVENT)
    (pkg / "datasets" / "analytics" / "tmpagent_counts.yaml").write_text(textwrap.dedent(DATASET))
    dist = root / "tmpagent-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tmpagent\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[msp.agents]\ntmpagent = tmpagent:AGENT\n\n"
                                           "[msp.datasets]\ntmpagent = tmpagent:datasets\n")
    return root



"""An agent is one package plus declarations: a throwaway agent package, installed the way a third party
would ship one (an ``msp.agents`` entry point), shows up in the stage registry, the settings and ``msp
config``, the CLI and the event routes without any other file being edited; inconsistent declarations are
refused with a message naming the agent and the field; the platform names no agent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse.agents import Agent, DeclarationError, Registry, Stage, order, registry, validate
from lakehouse.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]

@pytest.fixture
def third_party(throwaway_agent):
    return throwaway_agent


def test_a_new_agent_package_appears_in_the_registry_settings_and_routes(third_party, tmp_path):
    reg = registry()
    assert "tmpagent" in reg.agents
    plan = [s.name for s in reg.plan()]
    assert plan.index("quality") < plan.index("tmpagent.count")  # it reads processed.tickets
    assert reg.stages["tmpagent.count"].kind == "transform"
    assert reg.outputs(reg.stages["tmpagent.count"]) == {"analytics.tmpagent_counts", "events.outbox"}
    assert ("tmpagent", "tmpagent.on_margin") in reg.routes["client.profitability.changed"]
    assert "tmpagent.busy.detected" in reg.events
    settings = load_settings(env={"MSP_HOME": str(tmp_path / "home"), "MSP_TMPAGENT__BUSY_THRESHOLD": "9"})
    assert settings.model("tmpagent").busy_threshold == 9
    assert settings.sources["tmpagent.busy_threshold"] == "env MSP_TMPAGENT__BUSY_THRESHOLD"
    with pytest.raises(ConfigError, match=r"tmpagent\.busy_threshold = \"0\" \(env MSP_TMPAGENT__BUSY_THRESHOLD\)"):
        load_settings(env={"MSP_HOME": str(tmp_path / "home"), "MSP_TMPAGENT__BUSY_THRESHOLD": "0"})


def test_a_new_agent_appears_in_the_command_line(third_party, tmp_path):
    env = {"PYTHONPATH": f"{third_party}:{ROOT}", "MSP_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}

    def msp(*args):
        return subprocess.run([sys.executable, "-m", "lakehouse.cli", *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=120)

    stages = msp("stages")
    assert stages.returncode == 0, stages.stderr
    assert "tmpagent.count" in stages.stdout and "tmpagent.on_margin" in stages.stdout
    config = msp("config", "--json")
    assert '"tmpagent.busy_threshold"' in config.stdout
    assert msp("tmpagent").stdout.strip() == "threshold 5"
    import json

    listed = {a["name"]: a for a in json.loads(msp("agents", "--json").stdout)}
    assert listed["tmpagent"]["title"] == "Throwaway agent"
    assert listed["tmpagent"]["consumes"] == {"client.profitability.changed": "tmpagent.on_margin"}
    assert listed["tmpagent"]["settings"] == ["busy_threshold"]


def _agent(**kw) -> Agent:
    base = {"name": "x1", "title": "x", "package": "jobs.cpi", "stages": ()}
    return Agent(**{**base, **kw})


@pytest.mark.parametrize(("agent", "message"), [
    (_agent(stages=(Stage("x1.a", "m:f", kind="nightly"),)), "kind 'nightly' is not one of"),
    (_agent(stages=(Stage("a", "m:f", kind="transform"),)), "stage names start with 'x1.'"),
    (_agent(stages=(Stage("x1.a", "m:f", kind="transform", reads=("processed.nothing",)),)),
     "no declared dataset matches 'processed.nothing'"),
    (_agent(stages=(Stage("x1.a", "m:f", kind="transform", writes=("analytics.churn",)),)),
     "writes analytics.churn, which cpi owns"),
    (_agent(emits=("x1.thing.happened",)), "emits x1.thing.happened but has no schema"),
    (_agent(consumes={"client.profitability.changed": "x1.h"}), "which is not one of its handler stages"),
    (_agent(stages=(Stage("x1.h", "m:f", kind="handler"),), consumes={"no.such.event": "x1.h"}),
     "consumes no.such.event, which no agent emits"),
])
def test_inconsistent_declarations_are_refused_naming_agent_and_field(agent, message):
    reg = registry()
    with pytest.raises(DeclarationError, match=message):
        validate(Registry(reg.platform, {**reg.agents, agent.name: agent}))


def test_stage_cycles_are_refused():
    a = Stage("x1.a", "m:f", kind="transform", after=("x1.b",), agent="x1")
    b = Stage("x1.b", "m:f", kind="transform", after=("x1.a",), agent="x1")
    with pytest.raises(DeclarationError, match=r"cycle: x1\.a -> x1\.b -> x1\.a"):
        order([a, b])


def test_a_plain_run_runs_the_daily_kinds_and_named_stages_run_whatever_their_kind():
    reg = registry()
    daily = {s.kind for s in reg.plan()}
    assert "train" not in daily and "maintenance" not in daily
    assert [s.name for s in reg.plan(names=["lake.maintain"])] == ["lake.maintain"]
    with pytest.raises(DeclarationError, match="unknown stage"):
        reg.plan(names=["nosuchstage"])
    with pytest.raises(DeclarationError, match="unknown agent"):
        reg.plan(agents=["nosuchagent"])


def test_a_wildcard_write_covers_only_what_its_agent_owns():
    reg = registry()
    quality = reg.stages["quality"]
    assert "processed.tickets" in reg.outputs(quality)
    assert "processed.client_profitability_monthly" not in reg.outputs(quality)


def test_the_platform_names_no_agent():
    """Every list of agents, stages, events and routes is derived: the platform, the DAGs and the infra stack
    name no agent (generic words in prose are fine)."""
    names = sorted(registry().agents)
    pattern = r"\b(" + "|".join(names) + r")\b|churn|profitab"
    found = subprocess.run(["git", "grep", "-n", "-i", "-E", pattern, "--", "lakehouse", "dags", "infra",
                            ":!lakehouse/synth"], capture_output=True, text=True, cwd=ROOT)
    assert found.stdout == "", found.stdout

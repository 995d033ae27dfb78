"""
### Agent DAG: one per agent, data-aware

Derived from the agent's declaration (`jobs/<agent>/__init__.py`): its stages of kind `transform`,
`score` and `handler`, ordered by the tables they read and write. With `airflow.tasks = "dag"` (the
default) `run_stages` runs them all as `msp run --agents <agent>` does, side by side where they can, and
`check_stages` fails the run if one failed; with `"stage"` each stage is a task. Scoring runs here, daily,
with the promoted model: after the features it reads, before the stages that read the scores (the order
`msp run` uses). Training (kind `train`) runs weekly in `msp_train`.

**When it runs.** Not on a clock: when every table its stages read that another DAG publishes has a new
asset event (the `processed` tables of the sources it reads, from `msp_ingest`, or another agent's
tables), or, if it has handler stages, when the dispatcher routed new events to it (its inbox asset). The
run processes the days those asset events carry; a manual trigger takes the `start`/`end` parameters.

The tables committed emit their assets with their row counts and days, and, when it writes the
event outbox, one asset event per event type that got new events, which starts `msp_events`.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable

from lakehouse import airflow_dags as msp
from lakehouse import orchestration as orch

pipeline = msp.pipeline()


def agent_dag(agent: str, stages: list):
    dag_id = orch.agent_dag_id(agent)
    title = pipeline.reg.agents[agent].title

    # Daily only if nothing it reads comes from another DAG (no asset could ever start it).
    @msp.dag(dag_id, msp.data_schedule(pipeline, dag_id, agent, fallback=CronDataIntervalTimetable("@daily",
                                                                                                   timezone="UTC")),
             ["msp", "agent", agent], f"## {title}\n" + __doc__ + msp.describe(stages, pipeline, dag_id))
    def build():
        msp.tasks(pipeline, dag_id, stages, lambda: msp.finish(msp.stage_chain(stages, pipeline)))

    return build()


for _agent, _stages in pipeline.agent_dags().items():
    globals()[orch.agent_dag_id(_agent)] = agent_dag(_agent, _stages)

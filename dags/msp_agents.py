"""
### Agent DAG: one per agent, data-aware

Derived from the agent's declaration (`jobs/<agent>/__init__.py`): every stage of kind `transform`,
`score` or `handler` is a task, wired by the tables the stages read and write. Scoring runs here, daily,
with the promoted model: after the features it reads, before the stages that read the scores (the order
`msp run` uses). Training (kind `train`) runs weekly in `msp_train`.

**When it runs.** Not on a clock: when every table its stages read that another DAG publishes has a new
asset event (the `processed` tables of the sources it reads, from `msp_ingest`, or another agent's
tables), or, if it has handler stages, when the dispatcher routed new events to it (its inbox asset). The
run processes the days those asset events carry; a manual trigger takes the `start`/`end` parameters.

Each task emits the assets of the tables it wrote with their row counts and days, and, when it writes the
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
        msp.finish(msp.stage_chain(stages, pipeline))

    return build()


for _agent, _stages in pipeline.agent_dags().items():
    globals()[orch.agent_dag_id(_agent)] = agent_dag(_agent, _stages)

"""
### Agent DAG: data-aware, one per agent

Generated from the stage registry (through `dags/stage_manifest.json`): every stage of the agent but
training becomes a task, wired by the datasets the stages read and write. Scoring stages (named `…score`)
run here, daily, with the promoted model: after the features they read, before the stages that read the
scores (the order `msp run` uses). Training (`…train`) runs weekly in `msp_train`.

**When it runs.** Not on a clock: when every upstream table it reads has a new asset event (the
`processed` tables from `msp_ingest`, or another agent's analytics tables), or when the event dispatcher
routed new events to this agent (if one of its stages reads `events.inbox`). The run processes the days
carried by those asset events; a manual trigger takes the `start`/`end` parameters.

Each task emits the assets of the tables it wrote with their row counts, and, when it writes to the
event outbox, one asset event per event type that got new events (`msp://events/<type>`), which starts
`msp_events`.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable

from lakehouse import airflow_dags as msp
from lakehouse import orchestration as orch

pipeline = msp.pipeline()
daily = CronDataIntervalTimetable("@daily", timezone="UTC")

for agent, stages in pipeline.agent_dags().items():
    dag_id = orch.agent_dag_id(agent)
    with msp.dag(
        dag_id=dag_id,
        # Daily only if nothing upstream is produced by another DAG (no asset could ever trigger it).
        schedule=msp.data_schedule(pipeline, dag_id, agent, fallback=daily),
        tags=["msp", "agent", agent],
        doc_md=__doc__ + msp.describe(stages, pipeline, dag_id),
    ) as dag:
        msp.stage_chain(stages, pipeline)
    globals()[dag_id] = dag

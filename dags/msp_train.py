"""
### Weekly model training

By the stage naming convention (`lakehouse.stages`, `Stage.kind`): stages whose name ends in `train`
(`cpi.churn_train`) run here every Monday for the week before, one task group per agent. Each trains on a
time-based split, compares with its named baseline and promotes a new version only if it beats the current
one (the model registry). Scoring stages (`…score`) are not here: they run daily in their agent's DAG with
the promoted model, right after the features they read.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, TaskGroup

from lakehouse import airflow_dags as msp
from lakehouse import orchestration as orch

pipeline = msp.pipeline()

if pipeline.training:
    with msp.dag(
        dag_id=orch.TRAIN_DAG,
        schedule=CronDataIntervalTimetable("@weekly", timezone="UTC"),
        tags=["msp", "models", "training"],
        doc_md=__doc__ + msp.describe([s for v in pipeline.training.values() for s in v], pipeline, orch.TRAIN_DAG),
    ) as dag:
        for agent, stages in pipeline.training.items():
            with TaskGroup(group_id=agent, tooltip=f"{agent}: weekly training"):
                msp.stage_chain(stages, pipeline)

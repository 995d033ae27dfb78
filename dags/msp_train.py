"""
### Weekly model training

Every stage of kind `train` (from the agents' declarations) runs here every week for the week before (one
task for all; with `airflow.tasks = "stage"` a task group per agent). Each trains on a time-based split,
compares with its named baseline and promotes a new version only if it beats the current one (the model
registry). Scoring (kind `score`) is not here: it runs daily in its agent's DAG with the promoted model,
right after the features it reads.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, TaskGroup

from lakehouse import airflow_dags as msp
from lakehouse import orchestration as orch

pipeline = msp.pipeline()


def by_agent():
    chains = []
    for agent, stages in pipeline.training.items():
        with TaskGroup(group_id=agent, tooltip=f"{agent}: weekly training"):
            chains.append(msp.stage_chain(stages, pipeline))
    return msp.finish(*chains)


if pipeline.training:
    training = [s for v in pipeline.training.values() for s in v]

    @msp.dag(
        orch.TRAIN_DAG,
        CronDataIntervalTimetable("@weekly", timezone="UTC"),
        ["msp", "models", "training"],
        __doc__ + msp.describe(training, pipeline, orch.TRAIN_DAG),
    )
    def msp_train():
        msp.tasks(pipeline, orch.TRAIN_DAG, training, by_agent)

    msp_train()

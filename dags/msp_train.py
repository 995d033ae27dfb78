"""
### Weekly model training

Every stage of kind `train` (from the agents' declarations) runs here every week for the week before, one
task group per agent. Each trains on a time-based split, compares with its named baseline and promotes a
new version only if it beats the current one (the model registry). Scoring (kind `score`) is not here: it
runs daily in its agent's DAG with the promoted model, right after the features it reads.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, TaskGroup

from lakehouse import airflow_dags as msp
from lakehouse import orchestration as orch

pipeline = msp.pipeline()

if pipeline.training:

    @msp.dag(orch.TRAIN_DAG, CronDataIntervalTimetable("@weekly", timezone="UTC"), ["msp", "models", "training"],
             __doc__ + msp.describe([s for v in pipeline.training.values() for s in v], pipeline, orch.TRAIN_DAG))
    def msp_train():
        chains = []
        for agent, stages in pipeline.training.items():
            with TaskGroup(group_id=agent, tooltip=f"{agent}: weekly training"):
                chains.append(msp.stage_chain(stages, pipeline))
        msp.finish(*chains)

    msp_train()

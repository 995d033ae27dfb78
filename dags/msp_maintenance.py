"""
### Weekly table maintenance

Every stage of kind `maintenance` (the platform's `lake.maintain`): expire old snapshots (keeping the last
`lake.snapshot_keep_days` days and at least `lake.snapshot_keep_min` per table), compact small files and
remove orphan files of every table. Runs every week (Sunday 00:00 UTC), never inside a daily run.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable

from lakehouse import airflow_dags as msp
from lakehouse import orchestration as orch

pipeline = msp.pipeline()

if pipeline.maintenance:

    @msp.dag(orch.MAINTENANCE_DAG, CronDataIntervalTimetable("@weekly", timezone="UTC"),
             ["msp", "platform", "maintenance"],
             __doc__ + msp.describe(pipeline.maintenance, pipeline, orch.MAINTENANCE_DAG))
    def msp_maintenance():
        msp.tasks(pipeline, orch.MAINTENANCE_DAG, pipeline.maintenance,
                  lambda: msp.finish(msp.stage_chain(pipeline.maintenance, pipeline)))

    msp_maintenance()

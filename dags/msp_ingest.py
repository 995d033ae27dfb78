"""
### Daily ingestion: landing → raw → quality gate → processed

The platform's stages of kind `ingest` and `gate`: `ingest` loads the day's export files into `raw.*`
(malformed files go to `quarantine.rejected_files`), then the quality gate validates them into
`processed.*`, refused rows into `quarantine.*`. A dataset the gate refuses does not hold the others back:
only what reads it waits.

**Tasks** (setting `airflow.tasks`). `dag`, the default: `run_stages` runs both stages for every landing
source as `msp run` does (a large run's ingestion in one part per source, side by side), then
`check_stages` fails the run if a stage failed. `stage`: one task group per landing source (`psa`, `crm`,
`rmm`, ... from the raw dataset declarations), `ingest` then `quality` for that source only; a source whose
quality rules look rows up in another source's tables runs its gate after that source's gate.

The tables committed emit their assets (URI: the table's location in the lake) with the rows written and the
days processed attached; each agent DAG is scheduled on the assets of the tables it reads and processes the
days those events carry.

**Which day.** A scheduled or backfilled run processes the export day of its data interval (its logical
date). A manual trigger takes the `start`/`end` parameters, else the previous day.

**Backfill** (same partitions as `msp run --from … --to …`):
`airflow backfill create --dag-id msp_ingest --from-date 2024-01-01 --to-date 2024-01-31`
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, TaskGroup

import schemas
from lakehouse import airflow_dags as msp
from lakehouse import orchestration as orch

pipeline = msp.pipeline()


def by_source():
    sources = sorted(s for s in schemas.raw_sources() if s)
    groups = {}
    for source in sources:
        with TaskGroup(group_id=source, tooltip=f"landing/{source} → raw → processed"):
            groups[source] = msp.stage_chain(pipeline.ingestion, pipeline, params={"sources": [source]},
                                             keep=msp.of_source(source))
    # A gate that looks rows up in another source's processed tables runs after that source's gate.
    gates = [s.name for s in pipeline.ingestion if s.kind == "gate"]
    for child, parents in orch.source_order().items():
        for parent in parents:
            if child in groups and parent in groups:
                for name in gates:
                    groups[parent][name][1] >> groups[child][name][0]
    if not sources:  # no landing source declared: one chain over everything
        groups[""] = msp.stage_chain(pipeline.ingestion, pipeline)
    return msp.finish(*groups.values())


@msp.dag(orch.INGEST_DAG, CronDataIntervalTimetable("@daily", timezone="UTC"), ["msp", "platform", "ingestion"],
         __doc__ + msp.describe(pipeline.ingestion, pipeline, orch.INGEST_DAG))
def msp_ingest():
    msp.tasks(pipeline, orch.INGEST_DAG, pipeline.ingestion, by_source)


msp_ingest()

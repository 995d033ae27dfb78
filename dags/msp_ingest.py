"""
### Daily ingestion: landing → raw → quality gate → processed

One task group per landing source (`psa`, `crm`, `rmm`, ... from the raw dataset declarations). In each
group the platform's ingestion stages run for that source only: `ingest` loads the day's export files
into `raw.*` (malformed files go to `quarantine.rejected_files`), then the quality gate casts and
validates them into `processed.*`, refused rows into `quarantine`. A source that fails does not hold the
others back, except the sources whose quality rules look rows up in its tables (their gate waits for its
gate, parents first, as in `msp run`).

Every task emits the Airflow assets of the tables it wrote (`msp://raw/<name>`, `msp://processed/<name>`,
URIs from the declarations) with the rows written attached; the agent DAGs are scheduled on the
`processed` assets and process the days these events carry.

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


def of_source(source: str):
    """A source's tasks emit the assets of that source's tables and of the shared ones."""
    return lambda ds: orch.source_of(ds) in (source, None)


with msp.dag(
    dag_id=orch.INGEST_DAG,
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    tags=["msp", "platform", "ingestion"],
    doc_md=__doc__ + msp.describe(pipeline.ingestion, pipeline, orch.INGEST_DAG),
) as dag:
    sources = sorted(schemas.raw_sources())
    groups = {}
    for source in sources:
        with TaskGroup(group_id=source, tooltip=f"landing/{source} → raw → processed"):
            groups[source] = msp.stage_chain(pipeline.ingestion, pipeline, params={"sources": [source]},
                                             keep=of_source(source))
    # A gate that looks rows up in another source's processed tables runs after that source's gate.
    gates = [s.name for s in pipeline.ingestion if any(w.startswith("processed.") for w in s.writes)]
    for child, parents in orch.source_lookups().items():
        for parent in parents:
            for name in gates:
                groups[parent][name][1] >> groups[child][name][0]
    if not sources:  # nothing declared yet: one group over everything
        msp.stage_chain(pipeline.ingestion, pipeline)

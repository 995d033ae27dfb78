"""
### Event dispatch: outbox → routes → other agents

Starts whenever a task reported new events of any type (asset `msp://events/<type>`, emitted through the
alias `msp.new-events` by the stages that write `events.outbox`). The dispatch stage routes the new
events of those days to the agents that consume them (the routes in configuration; on AWS also onto
EventBridge), recording them in `events.inbox`. For every agent that received new events the task emits
`msp://events/inbox/<agent>`, which starts that agent's DAG when one of its stages reads the inbox.
Event ids are deterministic and the inbox is the dispatch log, so re-running a day routes nothing twice
and never loops.
"""

from __future__ import annotations

from airflow.sdk import AssetAny

from lakehouse import airflow_dags as msp
from lakehouse import orchestration as orch

pipeline = msp.pipeline()

if pipeline.dispatch:
    with msp.dag(
        dag_id=orch.EVENTS_DAG,
        schedule=AssetAny(*[msp.event_asset(t) for t in orch.event_types()]),
        tags=["msp", "platform", "events"],
        doc_md=__doc__ + msp.describe(pipeline.dispatch, pipeline, orch.EVENTS_DAG),
    ) as dag:
        msp.stage_chain(pipeline.dispatch, pipeline)

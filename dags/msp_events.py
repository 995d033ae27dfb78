"""
### Event dispatch: outbox → routes → the consuming agents

Starts whenever a task reported *new* events of any declared type (the asset of that type's outbox
partition, emitted through the alias `msp.new-events` by the stages that write `events.outbox`). The
dispatch stage (kind `dispatch`) routes the new events of those days to the agents whose declarations
consume them (on AWS also onto EventBridge), recording them in `events.inbox`. For every agent that
received new events the task emits that agent's inbox asset, which starts its DAG when it has handler
stages. Event ids are deterministic and the inbox is the dispatch log, so re-running a day routes nothing
twice and never loops.
"""

from __future__ import annotations

from airflow.sdk import AssetAny

from lakehouse import airflow_dags as msp
from lakehouse import orchestration as orch

pipeline = msp.pipeline()
event_types = pipeline.event_types()

if pipeline.dispatch:

    @msp.dag(orch.EVENTS_DAG, AssetAny(*[msp.event_asset(t) for t in event_types]) if event_types else None,
             ["msp", "platform", "events"], __doc__ + msp.describe(pipeline.dispatch, pipeline, orch.EVENTS_DAG))
    def msp_events():
        msp.tasks(pipeline, orch.EVENTS_DAG, pipeline.dispatch,
                  lambda: msp.finish(msp.stage_chain(pipeline.dispatch, pipeline)))

    msp_events()

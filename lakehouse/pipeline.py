"""The platform's own stages, declared like an agent's (see :mod:`lakehouse.agents`).

=====================  ===========  =========================================================================
stage                  kind         what it does
=====================  ===========  =========================================================================
``ingest``             ingest       landing files → ``raw.*`` with lineage; malformed files to
                                    ``quarantine.rejected_files``, unreadable lines to
                                    ``quarantine.rejected_lines``
``quality``            gate         ``raw.*`` → ``processed.*`` through the quality gate; refused rows to
                                    ``quarantine.*`` with the rules they broke
``events.dispatch``    dispatch     new ``events.outbox`` rows → ``events.inbox``, one row per rule they meet
                                    (and EventBridge on AWS)
``consensus.decide``   dispatch     proposals (types agents declare in ``proposes``) → every agent's votes →
                                    ``events.consensus_decisions`` and ``consensus.decided`` events
``events.digest``      dispatch     the day's top items across agents, ranked by impact → ``events.digest``
``lake.maintain``      maintenance  expire old snapshots, compact small files, remove orphan files (weekly)
=====================  ===========  =========================================================================
"""

from __future__ import annotations

from lakehouse.agents import Agent, Stage

#: The platform's own event type (schema beside the envelope, schemas/events/consensus.decided.json).
DECIDED = "consensus.decided"

PLATFORM_STAGES = Agent(
    name="platform",
    title="Platform",
    package=__name__,
    summary="ingestion, the quality gate, event dispatch, consensus and table maintenance",
    stages=(
        Stage("ingest", "lakehouse.ingest:run", kind="ingest", parts="lakehouse.ingest:parts", window="month",
              writes=("raw.*", "quarantine.rejected_files", "quarantine.rejected_lines"),
              description="Landing files → raw tables with lineage; malformed files and lines reported, good rows "
                          "loaded."),
        Stage("quality", "lakehouse.quality.gate:run", kind="gate", reads=("raw.*",),
              writes=("processed.*", "quarantine.*"), parts="lakehouse.quality.gate:parts",
              description="Raw → processed through the quality gate; refused rows to quarantine with the rules "
                          "they broke."),
        Stage("events.dispatch", "lakehouse.events:dispatch", kind="dispatch", reads=("events.outbox",),
              writes=("events.inbox",),
              description="Route new outbox events to the agents whose rules they meet (EventBridge on AWS)."),
        Stage("consensus.decide", "lakehouse.consensus:run", kind="dispatch",
              reads=("events.outbox", "processed.*", "analytics.*"),
              writes=("events.consensus_decisions", "events.outbox"),
              description="Rule 4: proposals touching price or headcount need two agents' approval; vetoes by "
                          "their declared rules (enforce, warn, dry_run)."),
        Stage("events.digest", "lakehouse.events:write_digest", kind="dispatch", reads=("events.outbox",),
              writes=("events.digest",),
              description="The day's top items across agents (one per episode), ranked by impact."),
        Stage("lake.maintain", "lakehouse.maintenance:run", kind="maintenance",
              description="Expire old snapshots, compact small files and remove orphan files of every table."),
    ),
    emits=(DECIDED,),
)

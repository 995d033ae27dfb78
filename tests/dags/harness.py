"""Runs DAGs with ``dag.test()`` in a process of its own (started by the tests).

Airflow reads its configuration when it is first imported and a Spark JVM lives as long as its process,
so each scenario runs in a fresh interpreter with its own ``AIRFLOW_HOME``, lake and Spark session, and
the test process stays clean. Usage: ``python -m tests.dags.harness SPEC.json OUT.json`` where SPEC is
``{"runs": [{"dag_id": ..., "logical_date": ISO or null, "conf": {...}, "mark_success": regex}],
"play_glue": false}`` (``mark_success``: task ids marked successful instead of run).

``play_glue``: moto accepts Glue job runs but does not execute scripts, so the harness plays the Glue
worker: after the operator's real ``start_job_run`` call (to moto), it runs ``lakehouse.glue_entry`` with
the very arguments that were submitted.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path


def play_glue() -> None:
    from airflow.providers.amazon.aws.hooks.glue import GlueJobHook

    from lakehouse import glue_entry

    original = GlueJobHook.initialize_job

    def initialize_and_run(self, script_arguments=None, run_kwargs=None):
        response = original(self, script_arguments, run_kwargs)
        argv = [x for k, v in (script_arguments or {}).items() for x in (k, v)]
        glue_entry.run_job(glue_entry.parse_arguments(argv))
        return response

    GlueJobHook.initialize_job = initialize_and_run


def asset_events(session) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    rows = session.execute(select(AssetEvent, AssetModel).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                           .order_by(AssetEvent.id)).all()
    return [{"asset": m.name, "uri": m.uri, "extra": e.extra, "source_dag_id": e.source_dag_id,
             "source_task_id": e.source_task_id} for e, m in rows]


def main(spec_path: str, out_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    if spec.get("play_glue"):
        play_glue()
    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=spec.get("dags_folder") or None)
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    for dag in bag.dags.values():  # dag.test() honours retry delays: fail at once instead
        for task in dag.tasks:
            task.retries = 0
    results = []
    for run in spec["runs"]:
        dag = bag.get_dag(run["dag_id"])
        if dag is None:
            raise SystemExit(f"no DAG {run['dag_id']!r}; have {sorted(bag.dags)}")
        logical = run.get("logical_date")
        t0 = time.perf_counter()
        dr = dag.test(logical_date=datetime.fromisoformat(logical) if logical else None, run_conf=run.get("conf"),
                      mark_success_pattern=run.get("mark_success"))
        seconds = time.perf_counter() - t0
        session = settings.Session()
        tis = {ti.task_id: str(ti.state) for ti in dr.get_task_instances(session=session)}
        results.append({"dag_id": run["dag_id"], "run_id": dr.run_id, "state": str(dr.state), "tasks": tis,
                        "seconds": round(seconds, 1)})
    session = settings.Session()
    Path(out_path).write_text(json.dumps({"runs": results, "asset_events": asset_events(session)}, indent=1,
                                         default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

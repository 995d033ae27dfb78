"""Test helpers for the DAGs: a throwaway agent package, a DagBag that sees it, and ``dag.test()`` runs in a
process of their own.

**A throwaway agent.** :func:`write_agent_package` writes a complete third-party agent into a folder: a package
with its ``Agent`` declaration (one settings key with its defaults file, one event type with its schema, a
transform stage and optionally a handler stage) and a ``.dist-info`` folder registering it in the
``msp.agents`` entry-point group, exactly as ``pip install`` of a package declaring
``[project.entry-points."msp.agents"]`` would. :func:`agent_on_path` puts that folder on ``sys.path`` (and
forgets the cached registry and DAG settings, before and after), so every list derived from the declarations
sees the agent; :func:`dagbag` parses ``dags/`` then. For a child process, put the folder on ``PYTHONPATH``
(``DagRunner.start(..., extra_path=...)``).

**Runs.** ``python -m tests.dags.harness SPEC.json OUT.json`` where SPEC is ``{"runs": [{"dag_id": ...,
"logical_date": ISO or null, "conf": {...}, "tasks": regex, "mark_success": regex}], "play_glue": false,
"extra_path": [...]}`` (``tasks``: run only the tasks matching it; ``mark_success``: task ids marked successful
instead of run). Airflow reads its configuration when first
imported, so each scenario runs in a fresh interpreter with its own ``AIRFLOW_HOME`` and lake. ``play_glue``:
moto accepts Glue job runs but never executes their script, so the harness plays the Glue worker: right after
the operator's real ``start_job_run`` call (to moto) it runs ``lakehouse.glue_entry`` with the very arguments
that were submitted.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


# ---- a throwaway agent -----------------------------------------------------------------------------------
def write_agent_package(root: Path, name: str = "zz", reads: Sequence[str] = ("processed.tickets",),
                        fail: str | None = None, handler: bool = False, noop: bool = False,
                        table: bool = False, bad_rows: bool = False) -> dict[str, str]:
    """Write agent ``name`` as an installed third-party package under ``root``; returns what it declares.

    Its stage ``<name>.count`` (kind transform) reads ``reads`` and emits ``<name>.tickets.counted`` for every
    run day with at least ``min_tickets`` rows in the first table it reads (deterministic ids: a rerun emits
    nothing new). ``fail``: the stage raises ``RuntimeError(fail)`` instead; ``noop``: it only notes that it
ran (no table I/O at all, e.g. on a lake moto's S3 holds). ``table``: the agent also declares its own table
``analytics.<name>_counts`` (through the ``msp.datasets`` entry point; ``rows`` is ``long``, ``min: 0``) and
writes one row per run day into it, audited by its Checkpoint like every write; ``bad_rows``: those rows are
negative, so the audit's blocking expectation fails the stage. ``handler``: the agent also
    consumes its own event type with a handler stage ``<name>.on_counted`` reading its inbox."""
    package = f"msp_agent_{name}"
    event_type = f"{name}.tickets.counted"
    folder = root / package
    (folder / "events").mkdir(parents=True, exist_ok=True)
    counts = f"analytics.{name}_counts"
    writes = ("events.outbox", counts) if table else ("events.outbox",)
    if table:
        (folder / "datasets" / "analytics").mkdir(parents=True, exist_ok=True)
        (folder / "datasets" / "analytics" / f"{name}_counts.yaml").write_text(textwrap.dedent(f"""\
            name: {name}_counts
            zone: analytics/daily-summaries
            owner: {name}
            description: Rows of the table the throwaway agent reads, per run day.
            primary_key: [source_table]
            columns:
              - {{name: source_table, type: string, nullable: false}}
              - {{name: rows, type: long, nullable: false, min: 0}}
            """))
    handler_stage = (f'Stage("{name}.on_counted", "{package}.stages:on_counted", kind="handler", '
                     f'reads=("events.inbox",), description="Reads the events routed to {name}."),'
                     if handler else "")
    (folder / "__init__.py").write_text(textwrap.dedent(f'''\
        """A throwaway agent written by tests/dags/harness.py."""
        from lakehouse.agents import Agent, Stage
        from {package}.settings import Settings

        AGENT = Agent(
            name="{name}", title="Throwaway agent {name}", package=__name__, summary="counts tickets",
            settings=Settings, defaults="settings.toml",
            stages=(
                Stage("{name}.count", "{package}.stages:count", kind="transform", reads={tuple(reads)!r},
                      writes={writes!r}, description="Counts the run days' rows; emits an event per busy day."),
                {handler_stage}
            ),
            emits=("{event_type}",),
            consumes={{"{event_type}": "{name}.on_counted"}} if {handler!r} else {{}},
        )
        '''))
    (folder / "settings.py").write_text(textwrap.dedent('''\
        from typing import Annotated
        from pydantic import Field
        from lakehouse.config import Section

        class Settings(Section):
            min_tickets: Annotated[int, Field(ge=0)]
        '''))
    (folder / "settings.toml").write_text("min_tickets = 1\n")
    (folder / "events" / f"{event_type}.json").write_text(json.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema", "title": f"{event_type} (data)",
        "description": "A day with at least min_tickets rows.", "type": "object", "required": ["rows"],
        "properties": {"rows": {"type": "integer", "minimum": 0}}}, indent=1))
    first = reads[0] if reads else "processed.tickets"
    if noop:
        body = f"    ctx.count('stage:{name}.count').notes.append('ran for ' + ', '.join(ctx.days))\n"
    elif fail is not None:
        body = f"    raise RuntimeError({fail!r})\n"
    else:
        body = textwrap.indent(textwrap.dedent(f'''\
        from datetime import date
        from lakehouse import events
        table = ctx.read_arrow("{first}", {{"dt": ctx.days}})
        per_day = {{}}
        for dt in table.column("dt").to_pylist():
            per_day[str(dt)] = per_day.get(str(dt), 0) + 1
        found = [events.make_event("{event_type}", "{name}.count", "msp:tickets", date.fromisoformat(d), d,
                                   "busy_day", {{"rows": n}},
                                   {{"metric": "rows", "value": n, "threshold": ctx.config.min_tickets,
                                    "comparison": ">=", "source_rows": [{{"dataset": "{first}"}}]}})
                 for d, n in sorted(per_day.items()) if n >= ctx.config.min_tickets]
        ctx.emit("{event_type}", found)
        '''), "    ")
        if table:
            value = "-1 - per_day.get(d, 0)" if bad_rows else "per_day.get(d, 0)"
            body += textwrap.indent(textwrap.dedent(f'''\
                import pyarrow as pa
                rows = [{{"source_table": "{first}", "rows": {value}, "dt": d}} for d in ctx.days]
                ctx.write("{counts}", pa.Table.from_pylist(rows), replace=ctx.date_partitions())
                '''), "    ")
    (folder / "stages.py").write_text(
        "def count(ctx):\n" + body + "\n\n"
        "def on_counted(ctx):\n"
        f"    rows = ctx.read_arrow('events.inbox', {{'agent': '{name}', 'dt': ctx.days}})\n"
        "    ctx.count('events.inbox').rows_in += rows.num_rows\n")
    dist = root / f"{package}-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[msp.agents]\n{name} = {package}:AGENT\n" + (
        f"\n[msp.datasets]\n{name} = {package}:datasets\n" if table else ""))
    return {"name": name, "package": package, "event_type": event_type, "stage": f"{name}.count",
            "dag_id": f"msp_{name}", "root": str(root)}


def _forget(prefix: str) -> None:
    for module in [m for m in sys.modules if m == prefix or m.startswith(prefix + ".")]:
        del sys.modules[module]


def _reset() -> None:
    from lakehouse import agents

    agents.reset()
    if "lakehouse.airflow_dags" in sys.modules:
        sys.modules["lakehouse.airflow_dags"].reset()


@contextlib.contextmanager
def agent_on_path(root: Path, package: str | None = None) -> Iterator[None]:
    """The agent packages under ``root`` are installed for the duration (sys.path, entry points)."""
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    _reset()
    try:
        yield
    finally:
        sys.path.remove(str(root))
        for pkg in ([package] if package else [p.name for p in root.iterdir() if (p / "__init__.py").exists()]):
            _forget(pkg)
        importlib.invalidate_caches()
        _reset()


def dagbag(dags_folder: Path | None = None):
    """A DagBag of ``dags/`` built now (after :func:`agent_on_path`, it sees the throwaway agent)."""
    from airflow.dag_processing.dagbag import DagBag

    _reset()
    return DagBag(dag_folder=str(dags_folder or REPO / "dags"))


# ---- dag.test() in a process of its own ------------------------------------------------------------------
def play_glue() -> None:
    from airflow.providers.amazon.aws.hooks.glue import GlueJobHook

    from lakehouse import glue_entry

    original = GlueJobHook.initialize_job

    def initialize_and_run(self, script_arguments=None, run_kwargs=None):
        response = original(self, script_arguments, run_kwargs)
        argv = [x for k, v in (script_arguments or {}).items() for x in (k, v)]
        try:
            glue_entry.run_job(glue_entry.parse_arguments(argv))
        except Exception as exc:  # a failed Glue job: the record step finds the failed result
            print(f"played Glue job failed: {exc}", file=sys.stderr)
        return response

    GlueJobHook.initialize_job = initialize_and_run


def asset_events(session) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    rows = session.execute(select(AssetEvent, AssetModel).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                           .order_by(AssetEvent.id)).all()
    return [{"asset": m.name, "uri": m.uri, "extra": e.extra, "source_dag_id": e.source_dag_id,
             "source_task_id": e.source_task_id, "source_run_id": e.source_run_id} for e, m in rows]


def main(spec_path: str, out_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    for path in spec.get("extra_path") or ():
        sys.path.insert(0, path)
    if spec.get("play_glue"):
        play_glue()
    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag

    t0 = time.perf_counter()
    bag = DagBag(dag_folder=spec.get("dags_folder") or str(REPO / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    parse_seconds = time.perf_counter() - t0
    for dag in bag.dags.values():  # dag.test() honours retry delays: fail at once instead
        for t in dag.tasks:
            t.retries = 0
    results = []
    for run in spec["runs"]:
        dag = bag.get_dag(run["dag_id"])
        if dag is None:
            raise SystemExit(f"no DAG {run['dag_id']!r}; have {sorted(bag.dags)}")
        if run.get("tasks"):  # only the tasks matching this regex (and no upstream): a real run of fewer tasks
            wanted = [t.task_id for t in dag.tasks if re.search(run["tasks"], t.task_id)]
            dag = dag.partial_subset(task_ids=wanted, include_upstream=False)
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
    Path(out_path).write_text(json.dumps({"runs": results, "asset_events": asset_events(session),
                                          "parse_seconds": round(parse_seconds, 2)}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

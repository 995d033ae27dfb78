"""One run at a time per lake: a lock that a killed run can never leave behind.

A whole-pipeline run (``msp run``, ``msp demo``) takes the lake's lock *exclusively*; a single stage run by an
Airflow task takes it *shared*, so tasks of one DAG run in parallel with each other but never beside a
manual run of the whole pipeline (their commits would be safe with Iceberg's optimistic concurrency, but
both would do all the work). A second exclusive run waits ``platform.run_lock_wait_seconds`` and then refuses
with the holder's run id, process and start time.

The lock is ``flock`` on ``<home>/run.lock``: the kernel releases it when the holding process dies, however it
dies, so a stale lock cannot exist; the holder's description beside it (``run.lock.json``) may be stale, and a
new run that finds one from a process that no longer runs says it took over. On the ``aws`` profile runs are
serialised by Airflow (one active DAG run at a time) and Glue, and there is no local lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.config import Settings


class LakeBusy(RuntimeError):
    """Another run holds the lake; the message says which, since when, and what to do."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe(holder: dict[str, Any]) -> str:
    return (f"run {holder.get('run_id', '?')} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"started {holder.get('started_at', '?')})")


@contextlib.contextmanager
def run_lock(settings: Settings, run_id: str, *, exclusive: bool = True, wait: float | None = None,
             notify=None) -> Iterator[str | None]:
    """Hold the lake's run lock for the duration of a run. Yields a note about a stale holder, if any."""
    if settings.profile != "local":
        yield None
        return
    home = Path(settings.home)
    home.mkdir(parents=True, exist_ok=True)
    lock_path = home / "run.lock"
    info_path = home / "run.lock.json"
    wait = float(settings.get("platform.run_lock_wait_seconds")) if wait is None else wait
    with open(lock_path, "a+") as fh:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fh, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _read(info_path)
                if time.monotonic() >= deadline:
                    raise LakeBusy(f"the lake at {settings.lake_root} is in use by {describe(holder)}; wait for it to "
                                   "finish (or set MSP_RUN_LOCK_WAIT_SECONDS to wait) and run again") from None
                if notify and not told:
                    notify(f"waiting for {describe(holder)} to finish (up to {wait:.0f} s)")
                    told = True
                time.sleep(0.5)
        note = None
        if exclusive:
            previous = _read(info_path)
            if previous and not previous.get("finished_at") and not _alive(int(previous.get("pid", 0) or 0)):
                note = f"took over the lake from {describe(previous)}, which did not finish (killed?)"
            _write(info_path, {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
                               "started_at": datetime.now(UTC).isoformat(timespec="seconds")})
        try:
            yield note
        finally:
            if exclusive:
                info = _read(info_path)
                if info.get("run_id") == run_id:
                    _write(info_path, {**info, "finished_at": datetime.now(UTC).isoformat(timespec="seconds")})
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)

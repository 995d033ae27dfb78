"""Named crash points, for the crash-safety tests.

``MSP_CRASH_AT=<point>`` (or ``<point>:<n>``, the n-th time it is reached) kills the process with SIGKILL
when the code reaches that point: no ``finally``, no atexit, exactly as a power cut or the OOM killer would.
The tests run a pipeline in a subprocess with each point set, then check that every reader sees a whole
snapshot and that a rerun converges to the tables of an uninterrupted run (``tests/platform/test_crash.py``).
Points are cheap no-ops when the variable is not set. ``MSP_FAIL_AT=<point>`` (or ``<point>:<n>``) raises
``OSError(ENOSPC)`` there instead, as a full disk would (``tests/platform/test_cli.py``).

=========================  =================================================================================
point                      where
=========================  =================================================================================
``ingest.parsed``          ingestion parsed the day's files, nothing committed yet
``ingest.rejected``        the rejected files are committed, the raw rows are not
``lake.files_written``     a commit's data files are written, the catalog does not point at them yet
``lake.committed``         the catalog points at the new snapshot, the run ledger does not know yet
``runner.stage_done``      a stage finished, its state (signature) is not written yet
``runner.catalog``         every stage finished, the SQL catalog is not refreshed yet
``catalog.building``       the new catalog file is half built, not swapped in
``events.dispatching``     the dispatcher read the outbox, the inbox is not written
``maintenance.compacted``  compacted files are written, not committed
=========================  =================================================================================
"""

from __future__ import annotations

import errno
import os
import signal
from typing import Any

ENV = "MSP_CRASH_AT"
FAIL_ENV = "MSP_FAIL_AT"
_seen: dict[str, Any] = {}
#: Set in a run's stage worker (lakehouse/workers.py): a crash point there kills the run, not only the worker.
in_worker = False


def share_counters() -> None:
    """Count the times each point is reached in shared memory, so that ``<point>:<n>`` means the n-th time in
    the whole run when its stages run in forked workers (call before forking)."""
    import multiprocessing

    for env in (ENV, FAIL_ENV):
        wanted = os.environ.get(env)
        if wanted:
            key = f"{env}:{wanted.partition(':')[0]}"
            if not hasattr(_seen.get(key), "get_lock"):
                shared = multiprocessing.get_context("fork").Value("i", int(_seen.get(key) or 0))
                _seen[key] = shared


def point(name: str) -> None:
    """Die here if ``MSP_CRASH_AT`` names this point (and this is the n-th time it is reached); raise a full
    disk's ``OSError`` if ``MSP_FAIL_AT`` does."""
    for env in (ENV, FAIL_ENV):
        wanted = os.environ.get(env)
        if not wanted:
            continue
        target, _, nth = wanted.partition(":")
        if target != name:
            continue
        key = f"{env}:{name}"
        counter = _seen.get(key)
        if hasattr(counter, "get_lock"):
            with counter.get_lock():
                counter.value += 1
                reached = counter.value
        else:
            reached = _seen[key] = (counter or 0) + 1
        if reached >= int(nth or 1):
            if env == ENV:
                if in_worker:  # the whole run dies, as it would in one process
                    os.kill(os.getppid(), signal.SIGKILL)
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

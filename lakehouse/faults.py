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

ENV = "MSP_CRASH_AT"
FAIL_ENV = "MSP_FAIL_AT"
_seen: dict[str, int] = {}


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
        _seen[key] = _seen.get(key, 0) + 1
        if _seen[key] >= int(nth or 1):
            if env == ENV:
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

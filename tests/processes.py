"""``msp`` as a separate process, the way a user or a scheduler runs it (the crash and reader tests kill it,
or read the lake while it runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def msp(home: Path, *args: str, crash: str | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    """Run ``msp ARGS`` on the lake at ``home``; ``crash`` names a crash point (lakehouse/faults.py), ``env``
    adds settings (``MSP_SECTION__KEY``)."""
    env = {**os.environ, "MSP_HOME": str(home), "PYTHONPATH": str(ROOT), **(env or {})}
    env.pop("MSP_CRASH_AT", None)
    if crash:
        env["MSP_CRASH_AT"] = crash
    return subprocess.run([sys.executable, "-m", "lakehouse.cli", *args], env=env, capture_output=True, text=True,
                          cwd=ROOT, timeout=600)

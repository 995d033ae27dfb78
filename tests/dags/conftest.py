"""DAG tests: Airflow points at a throw-away AIRFLOW_HOME, and whole DAG runs happen in subprocesses.

Airflow reads its configuration (and opens its metadata DB) when first imported, so this module sets
the environment before any test here imports it. ``dag.test()`` scenarios run through
``tests/dags/harness.py`` in a fresh interpreter each: its own AIRFLOW_HOME (a copy of a DB migrated
once per session) and its own lake, all gone when the process ends.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
_HOME = Path(tempfile.mkdtemp(prefix="msp-airflow-tests-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__PARALLELISM": "4",
    "SPARK_LOCAL_IP": "127.0.0.1",
}
if "airflow" not in sys.modules:  # another test module already configured Airflow otherwise
    os.environ.update(AIRFLOW_ENV)


def subprocess_env(home: Path, airflow_home: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment of a child process: no MSP_* of the developer's shell, the lake under ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MSP_", "AIRFLOW"))}
    env.update(AIRFLOW_ENV)
    if airflow_home is not None:
        env["AIRFLOW_HOME"] = str(airflow_home)
    env.update({"MSP_HOME": str(home), "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "0"})
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def airflow_db(tmp_path_factory) -> Path:
    """An AIRFLOW_HOME whose SQLite DB is migrated (once per session; ~4 s)."""
    home = tmp_path_factory.mktemp("airflow-db")
    env = subprocess_env(home / "msp", airflow_home=home)
    proc = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, cwd=home,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return home


class DagRunner:
    """Runs ``dag.test()`` scenarios in a subprocess with its own AIRFLOW_HOME and lake."""

    def __init__(self, template: Path, workdir: Path):
        self.template = template
        self.workdir = workdir

    def start(self, name: str, runs: list[dict], home: Path, play_glue: bool = False,
              extra_path: list[str] | None = None, **env: str):
        """Start a scenario; returns a handle for :meth:`wait`. ``extra_path``: folders put on ``sys.path``
        first (a throwaway agent package of ``harness.write_agent_package``)."""
        airflow_home = self.workdir / f"airflow-{name}"
        airflow_home.mkdir(parents=True)
        shutil.copy(self.template / "airflow.db", airflow_home / "airflow.db")
        spec = self.workdir / f"{name}.spec.json"
        out = self.workdir / f"{name}.out.json"
        spec.write_text(json.dumps({"runs": runs, "play_glue": play_glue, "extra_path": extra_path or []}))
        log = open(self.workdir / f"{name}.log", "w")  # noqa: SIM115 - closed in wait()
        proc = subprocess.Popen([sys.executable, "-m", "tests.dags.harness", str(spec), str(out)],
                                env=subprocess_env(home, airflow_home, **env), cwd=self.workdir,
                                stdout=log, stderr=subprocess.STDOUT)
        return proc, out, log

    def wait(self, handle, timeout: float = 600) -> dict:
        proc, out, log = handle
        try:
            proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
        text = Path(log.name).read_text(errors="replace")
        assert proc.returncode == 0 and out.exists(), (
            f"dag.test harness failed (exit {proc.returncode}):\n{text[-6000:]}")
        result = json.loads(out.read_text())
        result["log"] = text
        return result

    def run(self, name: str, runs: list[dict], home: Path, **kwargs) -> dict:
        return self.wait(self.start(name, runs, home, **kwargs))


@pytest.fixture
def dag_runner(airflow_db, tmp_path) -> DagRunner:
    return DagRunner(airflow_db, tmp_path)

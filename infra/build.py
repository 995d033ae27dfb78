"""Build what the stack uploads: the Glue job wheel and entry script, and MWAA's DAG bundle.

``python -m infra.build [--out build/aws]`` writes::

    build/aws/glue/glue_entry.py                          the Glue jobs' script (lakehouse/glue_entry.py)
    build/aws/glue/msp_lakehouse-<version>-py3-none-any.whl   the job wheel (--additional-python-modules)
    build/aws/airflow/dags/                               the DAG files, and the project's packages as source
    build/aws/airflow/requirements.txt                    what the DAGs and their tasks import beyond Airflow
    build/aws/airflow/startup.sh                          points the platform at the deployment's settings

**The job wheel** is the project's own wheel (``pip wheel --no-deps``, so it carries the version of
``pyproject.toml`` and a file name pip accepts) whose metadata no longer requires pyspark: Glue 6.0 brings its
own Spark 4.1.1, and ``--additional-python-modules`` would otherwise install the project's pinned pyspark over
it. Everything else the jobs import stays a requirement, installed by Glue's pip at job start.

**MWAA** gets no wheel: the DAG folder carries the project's packages as source (MWAA puts the DAG folder on
``sys.path``; ``.airflowignore`` keeps the scheduler from parsing them as DAG files), and ``requirements.txt``
only what the DAG files and the Glue runner's tasks import that Airflow and its Amazon provider do not
already bring (pyiceberg for the table catalog, pyarrow, sqlglot): no Spark, no job libraries on the
scheduler and the workers, which only start Glue jobs and read their results.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "build" / "aws"
DIST = "msp_lakehouse"
#: Requirements the job wheel must not carry (Glue 6.0 provides Spark).
GLUE_PROVIDED = ("pyspark",)
#: The project's packages (pyproject.toml's ``packages.find``): the job wheel is built from them, MWAA's DAG folder
#: carries them as source.
PACKAGES = ("lakehouse", "schemas", "jobs", "models", "expectations")
#: MWAA requirements: what the DAGs and the Glue runner's tasks import beyond Airflow and its Amazon provider
#: (tests/infra/test_build.py checks the list against what they really import).
MWAA_REQUIREMENTS = ("pyiceberg[glue,pyarrow]==0.12.0", "pyarrow>=16,<26", "sqlglot>=23.4,<29")
STARTUP = """#!/bin/sh
# MWAA runs this before Airflow starts: the platform reads the deployment's settings (written by the stack).
export MSP_CONFIG=/usr/local/airflow/dags/msp.toml
export PYTHONPATH="/usr/local/airflow/dags:${PYTHONPATH}"
"""
AIRFLOWIGNORE = "\n".join(f"{p}/" for p in PACKAGES) + "\n"


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)["project"]["version"]


def wheel_file_name(version: str | None = None) -> str:
    return f"{DIST}-{version or project_version()}-py3-none-any.whl"


def _requirement_name(line: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", line.split(":", 1)[1].strip(), maxsplit=1)[0].lower().replace("_", "-")


def strip_requirements(wheel: Path, drop: tuple[str, ...] = GLUE_PROVIDED) -> list[str]:
    """Rewrite a wheel in place without the ``Requires-Dist`` lines of ``drop``; returns the lines removed.
    The RECORD entry of the METADATA file gets its new hash and size, so pip installs it as any wheel."""
    with zipfile.ZipFile(wheel) as zf:
        items = [(info, zf.read(info.filename)) for info in zf.infolist()]
    meta_name = next(i.filename for i, _ in items if i.filename.endswith(".dist-info/METADATA"))
    record_name = next(i.filename for i, _ in items if i.filename.endswith(".dist-info/RECORD"))
    by_name = {info.filename: data for info, data in items}
    removed: list[str] = []
    lines = []
    for line in by_name[meta_name].decode("utf-8").splitlines(keepends=True):
        if line.startswith("Requires-Dist:") and _requirement_name(line) in drop:
            removed.append(line.strip())
            continue
        lines.append(line)
    metadata = "".join(lines).encode("utf-8")
    digest = base64.urlsafe_b64encode(hashlib.sha256(metadata).digest()).rstrip(b"=").decode()
    rows = []
    for row in csv.reader(io.StringIO(by_name[record_name].decode("utf-8"))):
        if row:
            rows.append([meta_name, f"sha256={digest}", str(len(metadata))] if row[0] == meta_name else row)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in items:
            if info.filename == meta_name:
                data = metadata
            elif info.filename == record_name:
                data = out.getvalue().encode("utf-8")
            zf.writestr(info, data)
    tmp.replace(wheel)
    return removed


def copy_sources(dest: Path) -> Path:
    """What the wheel is built from: ``pyproject.toml``, the README it names and the packages, without caches.
    Building from a copy leaves the checkout alone (setuptools builds in the source tree: ``build/``, the
    egg-info), so two builds at once, or a build during a test run, do not share a ``build/lib``."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=ignore)
    return dest


def build_wheel(out: Path) -> Path:
    """The job wheel in ``out`` (built from the project, pyspark dropped from its requirements).

    ``pip wheel`` builds in an isolated environment with the build backend ``pyproject.toml`` names (it needs
    an index or ``--find-links`` holding setuptools 77 or later: ``license`` is an SPDX expression, which older
    setuptools refuse, so ``--no-build-isolation`` works only where the environment has such a setuptools)."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.whl"):
        old.unlink()
    work = out / ".wheel-build"
    shutil.rmtree(work, ignore_errors=True)
    source = copy_sources(work / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                    "-w", str(work), str(source)], check=True)
    (built,) = work.glob(f"{DIST}-*.whl")
    if built.name != wheel_file_name():
        raise RuntimeError(f"built {built.name}, expected {wheel_file_name()}")
    removed = strip_requirements(built)
    if not removed:
        raise RuntimeError(f"{built.name} does not require pyspark: nothing to strip (did pyproject.toml change?)")
    target = out / built.name
    built.replace(target)
    shutil.rmtree(work, ignore_errors=True)
    return target


def build_airflow(out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    dags = out / "dags"
    dags.mkdir(parents=True)
    for f in sorted((ROOT / "dags").glob("*.py")):
        shutil.copy2(f, dags / f.name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dags / pkg, ignore=ignore)
    (dags / ".airflowignore").write_text(AIRFLOWIGNORE)
    (out / "requirements.txt").write_text("\n".join(MWAA_REQUIREMENTS) + "\n")
    (out / "startup.sh").write_text(STARTUP)
    return out


def build(out: Path = DEFAULT_OUT) -> Path:
    glue = out / "glue"
    build_wheel(glue)
    shutil.copy2(ROOT / "lakehouse" / "glue_entry.py", glue / "glue_entry.py")
    build_airflow(out / "airflow")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    out = build(args.out)
    for f in sorted(p for p in out.rglob("*") if p.is_file() and "/dags/" not in str(p)):
        print(f.relative_to(out))


if __name__ == "__main__":
    main()

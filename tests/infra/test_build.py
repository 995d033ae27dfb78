"""The Glue job wheel, built as ``python -m infra.build`` (and so ``cdk synth``/``cdk deploy``) builds it:
``pip wheel --no-deps`` of the project, its pyspark requirement stripped (:func:`infra.build.build_wheel`).

Glue installs the wheel with ``--additional-python-modules``: pip refuses a wheel whose file name has no
version (PEP 427), and a ``pyspark`` requirement would install the project's pinned pyspark over Glue 6.0's
own Spark 4.1.1. The wheel must carry every package the entry script (``lakehouse/glue_entry.py``) reaches and
every file they read at run time: the dataset declarations (``schemas/datasets/**.yaml``), the expectation
suites (``expectations/*.json``), the settings defaults (``lakehouse/defaults.toml``, ``jobs/*/settings.toml``),
Spark's ``log4j2.properties``. A test installs it into a folder of its own and loads the platform from there, as
a Glue worker does.

MWAA gets no wheel but the packages as source and ``requirements.txt`` (``infra.build.MWAA_REQUIREMENTS``): the
last test checks that list against what the DAG files and the Glue runner's tasks really import.

One build per module (8-20 s: pip sets up the build backend in an isolated environment, from the index or
``--find-links``; no network needed where those are local).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from email.parser import BytesParser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from infra.build import MWAA_REQUIREMENTS, PACKAGES, build_wheel

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
GLUE_PYTHONS = ("3.11", "3.12", "3.13")  # the project's own, and Glue 6.0's 3.13
#: Files of the packages the wheel may leave out (none: the proposal templates, ``*.j2``, were missing until
#: pyproject.toml's package-data named them).
KNOWN_MISSING: set[str] = set()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("glue"))


def _metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return BytesParser().parsebytes(zf.read(name))


def _source_files() -> set[str]:
    """Every file of the packages in the checkout, caches aside (what the build copies)."""
    return {p.relative_to(REPO).as_posix() for pkg in PACKAGES for p in (REPO / pkg).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def test_the_wheel_has_a_versioned_file_name_pip_accepts(wheel):
    version = PYPROJECT["project"]["version"]
    assert wheel.name == f"msp_lakehouse-{version}-py3-none-any.whl"
    name, parsed, build, tags = parse_wheel_filename(wheel.name)  # PEP 427; raises on a name pip refuses
    assert (name, parsed, build) == (canonicalize_name(PYPROJECT["project"]["name"]), Version(version), ())
    assert {str(t) for t in tags} == {"py3-none-any"}  # pure Python: any Glue worker's interpreter
    assert re.fullmatch(r"[A-Za-z0-9_.]+-[0-9][A-Za-z0-9_.!+]*-py3-none-any\.whl", wheel.name)


def test_its_metadata_names_the_project_and_pythons_3_11_to_3_13_and_no_pyspark(wheel):
    meta = _metadata(wheel)
    assert canonicalize_name(meta["Name"]) == canonicalize_name(PYPROJECT["project"]["name"])
    assert meta["Version"] == PYPROJECT["project"]["version"]
    python = SpecifierSet(meta["Requires-Python"])
    assert all(python.contains(v) for v in GLUE_PYTHONS), meta["Requires-Python"]
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    assert "pyspark" not in {canonicalize_name(r.name) for r in requires}, "Glue 6.0 brings its own Spark"
    # everything else the jobs import stays a requirement (Glue's pip installs it at job start)
    runtime = {canonicalize_name(r.name) for r in requires if r.marker is None}
    declared = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}
    assert runtime == declared - {"pyspark"}


def test_its_record_matches_the_rewritten_metadata(wheel):
    """The METADATA file was rewritten without pyspark: RECORD has its new hash and size, like every file's."""
    with zipfile.ZipFile(wheel) as zf:
        (record,) = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
        rows = [r for r in csv.reader(io.StringIO(zf.read(record).decode())) if r]
        assert {r[0] for r in rows} == set(zf.namelist())
        for path, digest, size in rows:
            if path == record:
                continue
            data = zf.read(path)
            assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert size == str(len(data)), path


def test_it_carries_the_packages_of_the_glue_entry_point_and_their_data_files(wheel):
    with zipfile.ZipFile(wheel) as zf:
        files = set(zf.namelist())
    assert {f.split("/")[0] for f in files} == {*PACKAGES, next(f for f in files if ".dist-info/" in f).split("/")[0]}
    assert PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"] == [f"{p}*" for p in PACKAGES]
    assert "lakehouse/glue_entry.py" in files
    for pattern in ("schemas/datasets/*/*.yaml", "expectations/*.json", "jobs/*/settings.toml"):
        assert {f.relative_to(REPO).as_posix() for f in REPO.glob(pattern)} <= files, pattern
    assert {"lakehouse/defaults.toml", "lakehouse/log4j2.properties"} <= files
    missing = _source_files() - files - KNOWN_MISSING
    assert not missing, sorted(missing)


def test_it_carries_the_jinja_templates_a_stage_renders(wheel):
    templates = {str(p.relative_to(REPO)) for p in (REPO / "jobs").rglob("*.j2")}
    assert templates, "no template found under jobs/"
    with zipfile.ZipFile(wheel) as zf:
        assert set(zf.namelist()) >= templates


PROBE = """
import importlib, json, sys
import lakehouse.glue_entry, schemas
from lakehouse.agents import registry
from lakehouse.config import load_settings
from lakehouse.quality.suite import EXPECTATIONS_DIR, load_all
reg = registry()
for stage in reg.stages.values():
    stage.func  # imports every stage's module
settings = load_settings(None, env={"MSP_HOME": sys.argv[1]})
print(json.dumps({
    "files": {m: importlib.import_module(m).__file__ for m in ("lakehouse", "lakehouse.glue_entry", "schemas", "jobs",
                                                               "models")},
    "expectations": str(EXPECTATIONS_DIR), "agents": sorted(reg.agents), "stages": sorted(reg.stages),
    "datasets": sorted(schemas.catalog()), "suites": sorted(s.dataset.name for s in load_all()),
    "sections": sorted(settings.values)}))
"""


def test_installed_on_its_own_it_loads_every_stage_dataset_suite_and_setting(wheel, tmp_path):
    """``pip install --no-deps --target`` the wheel, then load the platform from there (not from the checkout):
    the registry with every stage's function, the dataset declarations, the expectation suites, the settings
    sections, the same as the checkout's."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "--quiet", "--target",
                    str(target), str(wheel)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSP_")}
    env["PYTHONPATH"] = str(target)  # ahead of the checkout's editable install (a finder appended to sys.meta_path)
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "home")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    for module, file in probe["files"].items():
        assert Path(file).is_relative_to(target), (module, file)
    assert Path(probe["expectations"]) == target / "expectations"

    import schemas
    from lakehouse.agents import registry
    from lakehouse.config import load_settings
    from lakehouse.quality.suite import load_all

    reg = registry()
    assert probe["agents"] == sorted(reg.agents) and probe["stages"] == sorted(reg.stages)
    assert probe["datasets"] == sorted(schemas.catalog())
    assert probe["suites"] == sorted(s.dataset.name for s in load_all())
    assert probe["sections"] == sorted(load_settings(None, env={"MSP_HOME": str(tmp_path / "home")}).values)


MWAA_PROBE = """
import ast, importlib.util, json, sys
from datetime import date
from pathlib import Path
repo = Path(sys.argv[1])
for f in sorted((repo / "dags").glob("*.py")):  # parse every DAG file, as the scheduler does
    spec = importlib.util.spec_from_file_location(f"msp_dag_{f.stem}", f)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
from lakehouse import orchestration as orch
from lakehouse.agents import registry
from lakehouse.config import load_settings
settings = load_settings()
assert settings.platform.runner == "glue", settings.platform.runner
stage = next(iter(registry().stages))
orch.glue_arguments(settings, stage, [date(2024, 1, 1)], {}, "run-probe")  # the prepare task
from lakehouse.lake import Lake
Lake.read_bytes = lambda self, relative: None  # no S3 here (pyarrow's client would retry for seconds)
try:  # the record task: the lake on S3 opened, the result read (missing here)
    orch.read_stage_result(settings, "run-probe")
except orch.StageFailed:
    pass
ours = [Path(m.__file__) for m in list(sys.modules.values()) if getattr(m, "__file__", None)
        and any(Path(m.__file__).is_relative_to(repo / p) for p in ("lakehouse", "schemas", "jobs", "models", "dags"))]
imported = set()
for path in ours:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
loaded = {m.split(".")[0] for m in sys.modules}
print(json.dumps(sorted(m for m in imported & loaded if m not in sys.stdlib_module_names)))
"""


def _closure(requirements: list[str]) -> set[str]:
    """The installed distributions these requirements pull in (with their extras), transitively."""
    from importlib import metadata

    seen: dict[str, set[str]] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen and set(req.extras) <= seen[name]:
            continue
        seen[name] = seen.get(name, set()) | set(req.extras)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in seen[name] | {""}):
                todo.append(sub)
    return set(seen)


@pytest.mark.airflow
def test_the_mwaa_requirements_are_what_the_dags_and_the_glue_runners_tasks_import_beyond_airflow(tmp_path):
    """Parse the DAG files on the aws profile (the Glue runner), run the Glue tasks' own steps (prepare's
    arguments, record's read of the stage result), then take the third-party modules that the project's loaded
    modules import and that are loaded: those Airflow and its Amazon provider do not bring (their installed
    requirements, transitively) are exactly ``MWAA_REQUIREMENTS``. No Spark, no job library among them."""
    pytest.importorskip("airflow.providers.amazon")
    from importlib import metadata

    from lakehouse import aws_names

    config = tmp_path / "msp.toml"
    config.write_text(aws_names.settings_toml(aws_names.AwsNames("dev", account="123456789012",
                                                                 region="us-east-1").settings()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MSP_", "AWS_", "AIRFLOW"))}
    env.update({"MSP_CONFIG": str(config), "MSP_HOME": str(tmp_path / "home"), "AIRFLOW_HOME": str(tmp_path / "af"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "PYTHONPATH": str(REPO)})
    out = subprocess.run([sys.executable, "-c", MWAA_PROBE, str(REPO)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    modules = json.loads(out.stdout.strip().splitlines()[-1])
    by_module = metadata.packages_distributions()
    project = set(PACKAGES) | {"dags"}
    imported = {canonicalize_name(d) for m in modules if m not in project for d in by_module.get(m, [m])}
    assert {"pyspark", "ibis-framework", "duckdb", "pandas"}.isdisjoint(imported), imported
    airflow = _closure(["apache-airflow", "apache-airflow-providers-amazon"])
    listed = {canonicalize_name(Requirement(r).name) for r in MWAA_REQUIREMENTS}
    assert imported - airflow == listed, {"imported beyond Airflow": sorted(imported - airflow)}

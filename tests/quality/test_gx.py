"""Great Expectations the way its users expect: a file Data Context in the lake with a suite, a validation
definition and a Checkpoint per dataset, Data Docs built by the run, and the audit of write-audit-publish as
the Checkpoint run on the staged batch, whose failed blocking expectation fails the stage and its task."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

import schemas
from lakehouse.context import RunContext
from lakehouse.lake import Lake
from lakehouse.orchestration import StageFailed, check, run_stage
from lakehouse.quality.audit import AuditFailed
from schemas import Column, Dataset
from tests.conftest import make_settings

DAY = "2024-03-01"
HEADER = ("vendor_id,vendor_name,category,account_number,sla,contact_name,contact_email,phone,website,"
          "payment_terms,status,created_at,updated_at")
VENDORS = [
    "VN-0001,Atlas Remote Inc.,software,ACCT-1,8-hour response,Rebecca Bailey,rb@atlas.example,(720) 555-3768,"
    "https://atlas.example,Due on receipt,active,2021-05-13T22:06:41,2021-05-13T22:06:41",
    "VN-0002,HaloDesk Software,software,ACCT-2,99.9 %,Dennis Black,db@halo.example,(720) 555-1658,"
    "https://halo.example,Net 30,inactive,2021-02-07T19:58:13,2024-02-07T19:58:13",
    "VN-0003,Gone Vendor,hardware,,,,,,,Net 30,bankrupt,2021-02-07T19:58:13,2024-02-07T19:58:13",
]
PARAMS = {"sources": ["vendors"], "datasets": ["vendors"]}


def land_vendors(settings, rows=VENDORS, day=DAY) -> None:
    folder = Path(settings.landing_root) / "vendors" / "vendors"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"vendors_{day}.csv").write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")


def gate_vendors(settings):
    days = [date.fromisoformat(DAY)]
    check(run_stage(settings, "ingest", days, params=PARAMS, refresh_catalog=False))
    return run_stage(settings, "quality", days, params=PARAMS, refresh_catalog=False)


def test_the_lake_holds_a_gx_project_with_checkpoints_and_data_docs_a_gx_user_can_open(tmp_path):
    import great_expectations as gx

    from lakehouse.quality.gate import staged_batch
    from lakehouse.quality.report import data_docs_index

    settings = make_settings(tmp_path / "home")
    land_vendors(settings)
    result = gate_vendors(settings)
    check(result)  # the bankrupt vendor is quarantined (allowed:status); the two others are published
    lake = Lake.from_settings(settings)
    assert lake.read_arrow(schemas.get("processed.vendors")).num_rows == 2
    assert [r["_rules_broken"] for r in lake.read_arrow(schemas.get("quarantine.vendors")).to_pylist()] == [
        "allowed:status"]

    # a GX user opens the project like any other file Data Context
    root = Path(settings.lake_root) / "_meta" / "quality"
    context = gx.get_context(mode="file", project_root_dir=str(root))
    assert "processed.vendors" in {s.name for s in context.suites.all()}
    suite = context.suites.get("processed.vendors")
    rules = {e.meta["rule"]: e for e in suite.expectations}
    assert rules["allowed:status"].severity.value == "critical"
    assert rules["allowed:status"].description == "allowed:status: status is one of active, inactive"
    definition = context.validation_definitions.get("processed.vendors")
    assert (definition.data.data_asset.name, definition.data.name, definition.suite.name) == (
        "processed.vendors", "staged", "processed.vendors")
    checkpoint = context.checkpoints.get("processed.vendors")
    assert [a.type for a in checkpoint.actions] == ["update_data_docs"]
    assert [v.name for v in checkpoint.validation_definitions] == ["processed.vendors"]

    # the run's Checkpoint result is in the store and in Data Docs, built once at the end of the stage
    index = Path(data_docs_index(lake))
    assert index == root / "data_docs" / "index.html" and index.is_file()
    pages = list((root / "data_docs" / "validations" / "processed" / "vendors" / result["run_id"]).rglob("*.html"))
    assert len(pages) == 1 and "allowed:status" in pages[0].read_text()
    assert "processed.vendors" in index.read_text()
    saved = json.loads(lake.read_text("_meta/quality/latest/vendors.json"))
    assert saved["audit"]["checkpoint"] == "processed.vendors" and saved["audit"]["success"] is True

    # ... and can run the Checkpoint again on the batch the gate staged
    frame = staged_batch(settings, "vendors", [DAY])
    assert sorted(frame["vendor_id"]) == ["VN-0001", "VN-0002"]
    again = checkpoint.run(batch_parameters={"dataframe": frame})
    assert again.success


def test_a_failed_blocking_expectation_in_the_audit_fails_the_stage_and_its_task(tmp_path, monkeypatch):
    """A gate that lets a bad row through (here: its allowed-values predicate broken on purpose) is caught by
    the Checkpoint on the staged batch: nothing is published, the stage fails, the Airflow task raises."""
    import ibis

    from lakehouse.quality import compile as compiler

    real = compiler.failure

    def broken(t, rule, eligible):
        return ibis.literal(False) & eligible if rule.id == "allowed:status" else real(t, rule, eligible)

    monkeypatch.setattr(compiler, "failure", broken)
    settings = make_settings(tmp_path / "home", MSP_QUALITY__DATA_DOCS="off")
    land_vendors(settings)
    result = gate_vendors(settings)
    assert result["ok"] is False and result["status"] == "failed"
    (error,) = result["errors"]
    assert error.startswith("quality: QualityGateError: 1 dataset(s) failed the quality gate and were not published: "
                            "vendors: the Great Expectations audit of the batch to publish failed")
    assert "Checkpoint processed.vendors" in error and "allowed:status: 1 unexpected (e.g. ['bankrupt'])" in error
    with pytest.raises(StageFailed, match="allowed:status"):
        check(result)
    lake = Lake.from_settings(settings)
    assert lake.snapshot_id(schemas.get("processed.vendors")) is None
    assert lake.snapshot_id(schemas.get("quarantine.vendors")) is None


OUTPUT = Dataset(name="q_output", zone="analytics/kpi-metrics", owner="platform", description="t",
                 columns=(Column("client_id", "string", nullable=False),
                          Column("band", "string", nullable=False, allowed=("low", "high")),
                          Column("score", "double", min=0, max=1)),
                 primary_key=("client_id",), partition_by=())


def test_ctx_write_audits_an_agent_output_with_its_checkpoint_before_committing(tmp_path):
    settings = make_settings(tmp_path / "home", MSP_QUALITY__DATA_DOCS="off")
    ctx = RunContext.create(settings, [date.fromisoformat(DAY)])
    bad = pa.table({"client_id": ["C1", "C2", "C2"], "band": ["low", "medium", "high"], "score": [0.1, 0.5, 1.5]})
    with pytest.raises(AuditFailed) as failed:
        ctx.write(OUTPUT, bad)
    assert str(failed.value).startswith("analytics.q_output: 3 critical expectation(s) failed in the Checkpoint "
                                        "analytics.q_output, nothing was committed: ")
    for rule in ("allowed:band", "range:score", "unique:client_id"):
        assert rule in str(failed.value)
    assert ctx.lake.snapshot_id(OUTPUT) is None
    good = pa.table({"client_id": ["C1", "C2"], "band": ["low", "high"], "score": [0.1, 0.9]})
    assert ctx.write(OUTPUT, good).rows == 2
    assert ctx.counts["analytics.q_output"].notes == [
        "audited 2 rows: Checkpoint analytics.q_output (0 warning(s))"]
    ctx.close()


def test_old_validation_results_are_pruned_so_data_docs_stay_quick(tmp_path):
    from lakehouse.quality.gx import GxProject

    project = GxProject(tmp_path / "q", tmp_path / "q" / "docs")
    config = {"name": "processed.x", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}, "severity": "critical",
         "meta": {"rule": "not_null:a", "description": "a is required"}}]}
    import pandas as pd

    with project.deferred_docs():
        for i in range(4):
            project.run("processed.x", config, pd.DataFrame({"a": [i]}), f"run-{i}")
    assert project.prune(keep=2) == 2
    results = sorted(p.parent.parent.name for p in (project.gx_dir / "uncommitted" / "validations").rglob("*.json"))
    assert results == ["run-2", "run-3"]
    pages = sorted(p.parent.parent.name for p in (project.docs / "validations").rglob("*.html"))
    assert pages == ["run-2", "run-3"]


def test_a_checkpoint_gives_the_same_results_with_configurations_built_once(tmp_path, monkeypatch):
    """The Checkpoint's expectations keep one configuration per run (lakehouse.quality.gx.memoized_configurations),
    and GX takes the Checkpoint it was just given as fresh (trusted_freshness): every rule reports exactly what
    GX reports without either, failures included."""
    import contextlib

    import pandas as pd

    from lakehouse.quality import gx as gx_module
    from lakehouse.quality.gx import GxProject

    def rule(kind, kwargs, name, severity="critical"):
        return {"type": kind, "kwargs": kwargs, "severity": severity, "meta": {"rule": name, "description": name}}

    config = {"name": "analytics.memo_check", "expectations": [
        rule("expect_column_values_to_not_be_null", {"column": "client_id"}, "not_null:client_id"),
        rule("expect_column_values_to_be_in_set", {"column": "band", "value_set": ["low", "high"]}, "allowed:band"),
        rule("expect_column_values_to_be_between", {"column": "score", "min_value": 0, "max_value": 1},
             "range:score"),
        rule("expect_column_values_to_be_unique", {"column": "client_id"}, "unique:client_id"),
        rule("expect_compound_columns_to_be_unique", {"column_list": ["client_id", "band"]}, "unique:pair"),
        rule("expect_column_values_to_be_between", {"column": "score", "min_value": 0.5,
                                                     "row_condition": 'band=="high"', "condition_parser": "pandas"},
             "high:score", "warning"),
        rule("expect_column_pair_values_a_to_be_greater_than_b", {"column_A": "score", "column_B": "floor",
                                                                  "or_equal": True}, "floor:score"),
        rule("expect_table_row_count_to_be_between", {"min_value": 1}, "rows"),
    ]}
    frame = pd.DataFrame({"client_id": ["C1", "C2", "C2", None], "band": ["low", "high", "mid", "high"],
                          "score": [0.1, 0.4, 1.5, 0.9], "floor": [0.0, 0.5, 0.2, 0.1]})

    def outcome(project, run):
        validation = project.run(config["name"], config, frame, run)
        return {r.expectation_config.meta["rule"]: (r.success, dict(r.result or {}))
                for r in validation.results}

    from great_expectations.checkpoint.checkpoint import Checkpoint
    from great_expectations.core.validation_definition import ValidationDefinition
    from great_expectations.expectations.expectation import Expectation

    originals = [Expectation.__dict__["configuration"], Checkpoint.__dict__["is_fresh"],
                 ValidationDefinition.__dict__["is_fresh"]]
    memoized = outcome(GxProject(tmp_path / "a", tmp_path / "a" / "docs", data_docs=False), "run-memo")
    # the classes are as GX made them after the block
    assert [Expectation.__dict__["configuration"], Checkpoint.__dict__["is_fresh"],
            ValidationDefinition.__dict__["is_fresh"]] == originals
    monkeypatch.setattr(gx_module, "memoized_configurations", contextlib.nullcontext)
    monkeypatch.setattr(gx_module, "trusted_freshness", lambda _checkpoint: contextlib.nullcontext())
    plain = outcome(GxProject(tmp_path / "b", tmp_path / "b" / "docs", data_docs=False), "run-plain")
    assert memoized == plain
    failed = sorted(name for name, (ok, _result) in plain.items() if not ok)
    assert failed == ["allowed:band", "floor:score", "high:score", "not_null:client_id", "range:score",
                      "unique:client_id"]  # the pairs are unique, and there are rows


def test_only_the_checkpoint_given_is_taken_as_fresh_any_other_is_checked_as_gx_does(tmp_path):
    from lakehouse.quality.gx import GxProject, import_gx, trusted_freshness

    gx = import_gx()
    config = {"name": "analytics.fresh_check", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "k"}, "severity": "critical",
         "meta": {"rule": "not_null:k", "description": "k"}}]}
    project = GxProject(tmp_path / "p", tmp_path / "p" / "docs", data_docs=False)
    given = project.checkpoint(config["name"], config)
    unsaved = gx.Checkpoint(name="never_added", validation_definitions=given.validation_definitions)
    with trusted_freshness(given):
        assert given.is_fresh().success
        assert not unsaved.is_fresh().success  # never added to the project: GX's own check says so
    assert given.is_fresh().success  # and GX's check agrees outside the block


def test_data_docs_render_a_suite_page_again_only_when_the_suite_changed(tmp_path):
    import os

    import pandas as pd

    from lakehouse.quality.gx import GxProject

    project = GxProject(tmp_path / "q", tmp_path / "q" / "docs")

    def config(max_value):
        return {"name": "processed.y", "expectations": [
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "a", "max_value": max_value},
             "severity": "critical", "meta": {"rule": "range:a", "description": "a is small"}}]}

    suite_page = project.docs / "expectations" / "processed" / "y.html"
    with project.deferred_docs():
        project.run("processed.y", config(10), pd.DataFrame({"a": [1]}), "run-1")
    assert suite_page.is_file()
    os.utime(suite_page, (1, 1))  # an old page, still newer than nothing: make the suite newer than it
    suite = project.gx_dir / "expectations" / "processed" / "y.json"
    os.utime(suite, (0, 0))
    index_before = project.index.stat().st_mtime_ns
    with project.deferred_docs():
        project.run("processed.y", config(10), pd.DataFrame({"a": [2]}), "run-2")
    assert suite_page.stat().st_mtime == 1  # the suite did not change: its page was not rendered again
    pages = sorted(p.parent.parent.name for p in (project.docs / "validations").rglob("*.html"))
    assert pages == ["run-1", "run-2"] and project.index.stat().st_mtime_ns > index_before
    assert "run-2" in project.index.read_text(encoding="utf-8")
    with project.deferred_docs():  # a changed rule rewrites the suite, and its page follows
        project.run("processed.y", config(20), pd.DataFrame({"a": [3]}), "run-3")
    assert suite_page.stat().st_mtime > 1 and "20" in suite_page.read_text(encoding="utf-8")


def test_metric_ids_in_the_block_are_gx_own_and_gx_method_is_back_after_it():
    """Within memoized_configurations GX names its metrics without its generic conversion (plain values
    only); every id equals the one GX's own method gives, plain or not."""
    import math
    from enum import Enum

    import numpy as np

    from lakehouse.quality.gx import import_gx, memoized_configurations

    import_gx()
    from great_expectations.core.id_dict import IDDict

    class Mode(Enum):
        A = "a"

    dicts = [
        {"column": "client_id", "batch_id": "lake-analytics.churn"},
        {"column": "score", "min_value": 0, "max_value": 1.5, "strict_min": False, "parse_strings_as_datetimes": None},
        {"value_set": ["low", "high"], "column": "band", "row_condition": 'band=="high"'},
        {"column_list": ("client_id", "band"), "nested": {"a": [1, 2.5, None], "b": True}},
        {"column": "x", "min_value": math.nan, "max_value": 3},          # NaN: converted by GX to None
        {"column": "x", "value_set": {"b", "a"}, "mode": Mode.A},         # a set and an Enum: GX's path
        {"column": "x", "max_value": np.int64(4), "other": IDDict({"k": 1, "j": 2})},
        {"only": "one"}, {},
    ]
    original = IDDict.__dict__["to_id"]
    expected = [IDDict(d).to_id() for d in dicts] + [IDDict(dicts[1]).to_id(id_ignore_keys={"strict_min"})]
    with memoized_configurations():
        assert IDDict.__dict__["to_id"] is not original
        got = [IDDict(d).to_id() for d in dicts] + [IDDict(dicts[1]).to_id(id_ignore_keys={"strict_min"})]
    assert got == expected
    assert IDDict.__dict__["to_id"] is original

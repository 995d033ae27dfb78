"""Contracts: every shape derives from the one declaration, and every suite is valid and enforceable."""

from __future__ import annotations

import json
import re

import pytest

import schemas
from lakehouse.quality.compile import strptime_format
from lakehouse.quality.suite import EXPECTATIONS_DIR, SuiteError, load_all, load_suite
from schemas import LINEAGE_COLUMNS, QUARANTINE_COLUMNS, Column, Dataset, SchemaError, athena_type, duckdb_type

DDL_COLUMN = re.compile(r"^  `([^`]+)` (\S+?),?$")


def test_every_declared_dataset_derives_ddl_spark_arrow_pandas_and_duckdb_from_its_declaration():
    from pyspark.sql import types as T

    spark_names = {"string": T.StringType(), "int": T.IntegerType(), "long": T.LongType(), "double": T.DoubleType(),
                   "boolean": T.BooleanType(), "date": T.DateType(), "timestamp": T.TimestampType()}
    catalog = schemas.catalog()
    assert len(catalog) > 50  # raw declarations with their processed and quarantine twins, events, ...
    for name, ds in catalog.items():
        stored = ds.stored_columns()
        names = [c.name for c in stored]
        assert len(names) == len(set(names)), name
        if ds.zone_root == "raw":  # every source value as text, then lineage, then the partition
            assert [c.type for c in stored if c.name in {d.name for d in ds.data_columns}] == \
                   ["string"] * len(ds.data_columns), name
            assert names[-len(LINEAGE_COLUMNS) - 1:-1] == [n for n, _, _ in LINEAGE_COLUMNS], name
        else:
            declared = {c.name: c.type for c in ds.columns}
            assert all(declared.get(c.name, c.type) == c.type for c in stored), name
        # Glue / Athena DDL: every stored column once, with its Athena type, partitions apart
        ddl = ds.glue_ddl(ds.glue_database("msp"), f"s3://bucket/lake/{ds.zone}/{ds.name}")
        assert ddl.startswith(f"CREATE EXTERNAL TABLE IF NOT EXISTS `msp_{ds.zone_root.replace('-', '_')}`."
                              f"`{ds.name}`"), name
        body = [DDL_COLUMN.match(line) for line in ddl.split("(\n", 1)[1].split("\n)", 1)[0].splitlines()]
        assert all(body), f"{name}: unparsable DDL line"
        expected = [(c.name, athena_type(c.type)) for c in stored if c.name not in ds.partition_by]
        assert [(m.group(1), m.group(2)) for m in body] == expected, name
        if ds.partition_by:
            assert "PARTITIONED BY (" + ", ".join(f"`{p}` string" for p in ds.partition_by) + ")" in ddl, name
        assert ddl.endswith(f"LOCATION 's3://bucket/lake/{ds.zone}/{ds.name}/'"), name
        # Spark, Arrow, pandas, DuckDB: same names, same order, types from the one mapping
        spark = ds.spark_schema()
        assert [f.name for f in spark.fields] == names, name
        for f, c in zip(spark.fields, stored, strict=True):
            want = T.DecimalType(*c.decimal) if c.decimal else spark_names[c.type]
            assert f.dataType == want and f.nullable == c.nullable, f"{name}.{c.name}"
        assert ds.arrow_schema().names == names, name
        assert list(ds.pandas_dtypes()) == names, name
        assert ds.duckdb_columns() == {c.name: duckdb_type(c.type) for c in stored}, name


def test_each_raw_dataset_implies_a_typed_processed_twin_and_a_text_quarantine_twin():
    catalog = schemas.catalog()
    raw = [d for d in catalog.values() if d.zone_root == "raw"]
    assert raw
    for ds in raw:
        processed, quarantine = catalog[f"processed.{ds.name}"], catalog[f"quarantine.{ds.name}"]
        assert [c.name for c in processed.data_columns] == [c.name for c in ds.data_columns]
        assert [c.type for c in processed.data_columns] == [c.type for c in ds.data_columns]
        stored = [c.name for c in quarantine.stored_columns()]
        assert stored == ([c.name for c in ds.data_columns] + [n for n, _, _ in QUARANTINE_COLUMNS] +
                          [n for n, _, _ in LINEAGE_COLUMNS] + ["dt"]), ds.name
        assert {c.type for c in quarantine.data_columns if c.name in {d.name for d in ds.data_columns}} == {"string"}
        assert quarantine.primary_key == ("_source_file", "_row_number")


def test_baseline_expectations_say_what_the_declaration_says():
    ds = Dataset(name="b", zone="raw", owner="platform", description="d", source="s", format="csv",
                 columns=(Column("id", "string", nullable=False), Column("n", "int", nullable=False, min=0, max=9),
                          Column("kind", "string", allowed=("a", "b")), Column("on", "date", formats=("%d.%m.%Y",))),
                 primary_key=("id",))
    got = {e["meta"]["rule"]: (e["type"], e["kwargs"], e["severity"]) for e in ds.baseline_expectations()}
    raw_n = {"type": "nullity", "column": {"name": "_raw_n"}, "is_null": False}
    raw_on = {"type": "nullity", "column": {"name": "_raw_on"}, "is_null": False}
    assert got == {
        "not_null:id": ("expect_column_values_to_not_be_null", {"column": "id"}, "critical"),
        "type:n": ("expect_column_values_to_not_be_null", {"column": "n", "row_condition": raw_n}, "critical"),
        "not_null:n": ("expect_column_values_to_not_be_null", {"column": "_raw_n"}, "critical"),
        "range:n": ("expect_column_values_to_be_between", {"column": "n", "min_value": 0, "max_value": 9}, "critical"),
        "allowed:kind": ("expect_column_values_to_be_in_set", {"column": "kind", "value_set": ["a", "b"]}, "critical"),
        "type:on": ("expect_column_values_to_not_be_null", {"column": "on", "row_condition": raw_on}, "critical"),
        "unique:id": ("expect_compound_columns_to_be_unique", {"column_list": ["id", "dt"]}, "critical"),
    }


def test_declarations_refuse_contracts_the_gate_could_not_enforce(tmp_path):
    def parse(column):
        path = tmp_path / "x.yaml"
        path.write_text(json.dumps({"name": "x", "zone": "raw", "owner": "platform", "description": "d",
                                    "source": "s", "format": "csv", "columns": [column]}))
        return schemas._parse(path)

    assert parse({"name": "d", "type": "date", "formats": ["%m/%d/%Y"]}).columns[0].formats == ("%m/%d/%Y",)
    with pytest.raises(SchemaError, match="formats apply to date and timestamp"):
        parse({"name": "a", "type": "string", "formats": ["%Y"]})
    with pytest.raises(SchemaError, match="min applies to numeric"):
        parse({"name": "a", "type": "date", "min": 0})
    with pytest.raises(SchemaError, match="max must be a number"):
        parse({"name": "a", "type": "int", "max": "ten"})


def test_strptime_formats_become_portable_whole_text_patterns():
    fmt = strptime_format("%d/%m/%Y %H:%M")
    assert fmt.regex == ("(?i)^(3[01]|[12][0-9]|0[1-9]|[1-9]| [1-9])/(1[0-2]|0[1-9]|[1-9])/([0-9]{4})"
                         "[ \\t\\n\\r\\f\\x0B]+(2[0-3]|[01][0-9]|[0-9]):([0-5][0-9]|[0-9])$")
    assert fmt.fields == ("day", "month", "year", "hour", "minute")
    assert strptime_format("%Y-%m-%dT%H:%M:%S.%fZ").fields == ("year", "month", "day", "hour", "minute", "second",
                                                              "fraction")


def test_every_raw_dataset_has_a_suite_and_great_expectations_accepts_all_of_them():
    from lakehouse.quality.gx import expectation_suite

    raw = {d.name for d in schemas.datasets("raw")}
    declared = {d.name for d in schemas.catalog().values()}
    files = {p.stem for p in EXPECTATIONS_DIR.glob("*.json")}
    assert raw <= files, f"raw datasets without a suite: {sorted(raw - files)}"
    assert files <= declared, f"suites that name no declared dataset: {sorted(files - declared)}"
    for suite in load_all():
        assert suite.path is not None
        gx_suite = expectation_suite(suite.gx_config())  # raises if GX drops any expectation
        assert len(gx_suite.expectations) == len(suite.rules)
        assert {e.severity.value for e in gx_suite.expectations} <= {"critical", "warning", "info"}
        for lookup in suite.lookups:
            assert schemas.get(lookup).zone_root == "processed"
    focus = load_suite(schemas.get("raw.focus_costs"))
    assert {"type:billed_cost", "charge_period_ordered"} <= {r.id for r in focus.rules}
    tickets = load_suite(schemas.get("raw.tickets"))
    assert tickets.rule("resolved_after_created").blocking and tickets.rule("fk:client_id").blocking


@pytest.mark.parametrize(("change", "message"), [
    ({"type": "expect_column_mean_to_be_between"}, "not supported by the gate"),
    ({"meta": {}}, "meta.rule"),
    ({"severity": "fatal"}, "severity must be one of"),
    ({"kwargs": {"column": "n", "min_value": 0, "mostly": 0.9}}, "cannot use mostly"),
    ({"kwargs": {"column": "n", "min_value": 0, "row_condition": {"type": "comparison", "column": {"name": "id"},
                                                                  "operator": "!=", "parameter": "x"}}},
     "treat nulls differently"),
    ({"kwargs": {"column": "nope", "min_value": 0}}, "unknown column"),
    ({"kwargs": {"column": "id", "regex": "(?P<x>a)"}, "type": "expect_column_values_to_match_regex"},
     "named groups"),
])
def test_suite_files_are_checked_when_loaded(tmp_path, change, message):
    ds = Dataset(name="s", zone="raw", owner="platform", description="d", source="x", format="csv",
                 columns=(Column("id", "string"), Column("n", "int")))
    expectation = {"type": "expect_column_values_to_be_between", "kwargs": {"column": "n", "min_value": 0},
                   "severity": "critical", "meta": {"rule": "n_positive"}}
    expectation.update(change)
    (tmp_path / "s.json").write_text(json.dumps({"name": "s", "expectations": [expectation]}))
    with pytest.raises(SuiteError, match=message):
        load_suite(ds, directory=tmp_path)


def test_sources_can_be_gated_one_at_a_time_in_dependency_order():
    from lakehouse.quality.suite import source_dependencies

    deps = source_dependencies()
    assert set(deps) == {d.source for d in schemas.datasets("raw")}
    done: set[str] = set()
    while len(done) < len(deps):  # a topological order exists: no cycle between sources
        ready = {s for s, parents in deps.items() if s not in done and set(parents) <= done}
        assert ready, f"cycle between sources: { {s: p for s, p in deps.items() if s not in done} }"
        done |= ready


def test_a_whole_run_of_the_gate_splits_into_one_part_per_dataset_after_the_parents_it_looks_up(settings):
    """The local run gates datasets side by side: each part after the parts of the processed tables its suite
    looks rows up in, and never after a later part (the parts can always be run in their order)."""
    from lakehouse.context import RunContext
    from lakehouse.quality.gate import parts

    ctx = RunContext.create(settings, [])
    split = parts(ctx)
    assert sorted(p.label for p in split) == sorted(d.name for d in schemas.datasets("raw"))
    assert all(p.params == {"datasets": [p.label]} for p in split)
    suites = {s.dataset.name: s for s in load_all()}
    placed: set[str] = set()
    for part in split:
        assert set(part.after) <= placed, f"{part.label} waits for a later part"
        lookups = {q.split(".", 1)[1] for q in suites[part.label].lookups if q.startswith("processed.")}
        assert set(part.after) == lookups & placed
        placed.add(part.label)
    assert any(p.after for p in split)  # time entries look their tickets up, for one
    ctx.params = {"sources": ["psa"]}  # an Airflow task, already narrowed to one source
    assert parts(ctx) is None


@pytest.mark.parametrize(("derived", "message"), [
    ({"name": "_span", "expr": "(unix_timestamp(b) - unix_timestamp(a)) / 3600"}, "write unix_seconds"),
    ({"name": "_span", "expr": "sum(a"}, "not a Spark SQL expression"),
])
def test_derived_sql_that_engines_would_read_differently_is_refused_when_loaded(tmp_path, derived, message):
    ds = Dataset(name="s", zone="raw", owner="platform", description="d", source="x", format="csv",
                 columns=(Column("a", "timestamp"), Column("b", "timestamp")))
    (tmp_path / "s.json").write_text(json.dumps({"name": "s", "meta": {"derived_columns": [derived]},
                                                 "expectations": []}))
    with pytest.raises(SuiteError, match=message):
        load_suite(ds, directory=tmp_path)


def test_a_declared_format_the_gate_cannot_read_portably_is_refused_when_loaded():
    ds = Dataset(name="f", zone="raw", owner="platform", description="d", source="x", format="csv",
                 columns=(Column("on", "date", formats=("%Y-%j",)),))
    with pytest.raises(SuiteError, match="column on: strptime directive %j"):
        load_suite(ds)


def test_every_quality_setting_reaches_the_gate(settings):
    """Each [quality] setting is read by the gate or its audit (no dead settings)."""
    from pathlib import Path

    import lakehouse.quality as package
    from lakehouse.config import QualitySettings

    source = "".join(p.read_text() for p in Path(package.__file__).parent.glob("*.py"))
    for name in QualitySettings.model_fields:
        assert f".{name}" in source, name
    cfg = settings.model("quality")
    assert (cfg.row_count_drop_max, cfg.null_share_jump_max, cfg.checkpoint, cfg.data_docs) == (0.5, 0.2, "on", "on")

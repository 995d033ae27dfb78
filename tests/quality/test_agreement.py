"""The compiled predicates and Great Expectations agree row by row, for every rule type the gate supports.

The gate decides each row with Ibis predicates (lakehouse.quality.compile); Great Expectations, which audits
the published batch, must read the same rules the same way. This test builds one small frame with nulls,
ties and edge values, flags it with the compiled predicates on DuckDB, validates the same frame (as pandas,
the way the audit hands it to GX) with COMPLETE results, and compares the unexpected rows of every rule.
"""

from __future__ import annotations

import datetime as dt
import warnings
from decimal import Decimal

import pyarrow as pa

from lakehouse.quality.audit import comparable
from lakehouse.quality.compile import failure
from lakehouse.quality.gx import expectation_suite, gx_context
from lakehouse.quality.suite import ROW_TYPES, _rule

N = None
UTC = dt.UTC
FRAME = pa.table({
    "s": pa.array(["x", "xy", None, "z", "x", "abc", "y", None, "Z", ""], pa.string()),
    "n": pa.array([1.0, 10.0, None, -1.0, 0.0, 10.5, 5.0, 7.0, None, 3.0], pa.float64()),
    "m": pa.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], pa.int64()),
    "d": pa.array([Decimal("1.50"), Decimal("0.00"), None, Decimal("24.01"), Decimal("24.00"), Decimal("-0.01"),
                   Decimal("3.33"), Decimal("12.00"), Decimal("7.77"), None], pa.decimal128(6, 2)),
    "a": pa.array([2.0, 1.0, None, 3.0, None, 5.0, 5.0, 1.0, 0.0, 4.0], pa.float64()),
    "b": pa.array([1.0, 1.0, 1.0, None, None, 5.0, 6.0, 2.0, 0.0, 4.0], pa.float64()),
    "t1": pa.array([dt.datetime(2024, 3, 1, 9, tzinfo=UTC), dt.datetime(2024, 3, 1, 9, tzinfo=UTC), None,
                    dt.datetime(2024, 3, 2, tzinfo=UTC), dt.datetime(2024, 2, 29, 23, tzinfo=UTC), None,
                    dt.datetime(2024, 3, 1, tzinfo=UTC), dt.datetime(2024, 3, 1, tzinfo=UTC),
                    dt.datetime(2024, 3, 5, tzinfo=UTC), dt.datetime(2024, 3, 1, 8, tzinfo=UTC)],
                   pa.timestamp("us", tz="UTC")),
    "t0": pa.array([dt.datetime(2024, 3, 1, 8, tzinfo=UTC), dt.datetime(2024, 3, 1, 9, tzinfo=UTC),
                    dt.datetime(2024, 3, 1, tzinfo=UTC), None, dt.datetime(2024, 3, 1, tzinfo=UTC), None,
                    dt.datetime(2024, 3, 1, tzinfo=UTC), dt.datetime(2024, 3, 2, tzinfo=UTC),
                    dt.datetime(2024, 3, 4, tzinfo=UTC), dt.datetime(2024, 3, 1, 9, tzinfo=UTC)],
                   pa.timestamp("us", tz="UTC")),
    "day": pa.array([dt.date(2024, 3, 1), dt.date(2024, 3, 1), None, dt.date(2023, 12, 31), dt.date(2024, 3, 2),
                     dt.date(2024, 1, 1), None, dt.date(2024, 6, 30), dt.date(2024, 3, 1), dt.date(2025, 1, 1)],
                    pa.date32()),
    "c1": pa.array(["k1", "k1", "k2", None, None, "k3", "k3", "k4", None, "k5"], pa.string()),
    "c2": pa.array(["v1", "v1", "v1", None, None, None, None, "v1", "v9", "v1"], pa.string()),
    "ok": pa.array([True, False, None, True, True, False, True, None, False, True], pa.bool_()),
})

NN = {"type": "nullity", "column": {"name": "n"}, "is_null": False}
RULES = [
    ("expect_column_values_to_not_be_null", {"column": "s"}),
    ("expect_column_values_to_not_be_null", {"column": "n", "row_condition": {
        "type": "comparison", "column": {"name": "m"}, "operator": ">", "parameter": 4}}),
    ("expect_column_values_to_be_null", {"column": "s", "row_condition": {
        "type": "comparison", "column": {"name": "n"}, "operator": ">=", "parameter": 5}}),
    ("expect_column_values_to_be_in_set", {"column": "s", "value_set": ["x", "y", "xy"]}),
    ("expect_column_values_to_be_in_set", {"column": "m", "value_set": [1, 2, 3]}),
    ("expect_column_values_to_not_be_in_set", {"column": "s", "value_set": ["z", "Z"]}),
    ("expect_column_values_to_be_between", {"column": "n", "min_value": 0, "max_value": 10}),
    ("expect_column_values_to_be_between", {"column": "n", "min_value": 0, "max_value": 10,
                                            "strict_min": True, "strict_max": True}),
    ("expect_column_values_to_be_between", {"column": "n", "min_value": 1}),
    ("expect_column_values_to_be_between", {"column": "d", "min_value": 0, "max_value": 24}),
    ("expect_column_values_to_be_between", {"column": "n", "max_value": 5, "mostly": 0.5}),
    ("expect_column_values_to_match_regex", {"column": "s", "regex": "^x"}),
    ("expect_column_values_to_match_regex", {"column": "s", "regex": "[a-c]"}),
    ("expect_column_values_to_not_match_regex", {"column": "s", "regex": "[A-Z]$"}),
    ("expect_column_value_lengths_to_be_between", {"column": "s", "min_value": 1, "max_value": 2}),
    ("expect_column_values_to_be_unique", {"column": "s"}),
    ("expect_column_values_to_be_unique", {"column": "c1", "row_condition": NN}),
    ("expect_compound_columns_to_be_unique", {"column_list": ["c1", "c2"]}),
    ("expect_compound_columns_to_be_unique", {"column_list": ["c1", "c2"], "ignore_row_if": "any_value_is_missing"}),
    ("expect_compound_columns_to_be_unique", {"column_list": ["c1", "c2"], "ignore_row_if": "never"}),
    ("expect_column_pair_values_a_to_be_greater_than_b", {"column_A": "a", "column_B": "b"}),
    ("expect_column_pair_values_a_to_be_greater_than_b", {"column_A": "a", "column_B": "b", "or_equal": True}),
    ("expect_column_pair_values_a_to_be_greater_than_b", {"column_A": "a", "column_B": "b", "or_equal": True,
                                                          "ignore_row_if": "both_values_are_missing"}),
    ("expect_column_pair_values_a_to_be_greater_than_b", {"column_A": "a", "column_B": "b",
                                                          "ignore_row_if": "neither"}),
    ("expect_column_pair_values_a_to_be_greater_than_b", {"column_A": "t1", "column_B": "t0", "or_equal": True}),
    ("expect_column_pair_values_to_be_equal", {"column_A": "a", "column_B": "b"}),
    ("expect_column_pair_values_to_be_equal", {"column_A": "a", "column_B": "b",
                                               "ignore_row_if": "both_values_are_missing"}),
    ("expect_column_values_to_be_between", {"column": "n", "max_value": 5, "row_condition": {
        "type": "and", "conditions": [NN, {"type": "comparison", "column": {"name": "s"}, "operator": "IN",
                                           "parameter": ["x", "xy", "abc"]}]}}),
    ("expect_column_values_to_not_be_null", {"column": "a", "row_condition": {"type": "or", "conditions": [
        {"type": "comparison", "column": {"name": "m"}, "operator": "<", "parameter": 3},
        {"type": "comparison", "column": {"name": "m"}, "operator": "<=", "parameter": 6}]}}),
    ("expect_column_values_to_not_be_null", {"column": "n", "row_condition": {
        "type": "comparison", "column": {"name": "ok"}, "operator": "==", "parameter": True}}),
    ("expect_column_values_to_not_be_null", {"column": "c2", "row_condition": {
        "type": "nullity", "column": {"name": "c1"}, "is_null": True}}),
]


def rules():
    out = []
    for i, (kind, kwargs) in enumerate(RULES):
        severity = "warning" if "mostly" in kwargs else "critical"
        out.append(_rule({"type": kind, "kwargs": kwargs, "severity": severity, "meta": {"rule": f"r{i}"}},
                         "suite", "agreement test"))
    return out


def test_every_supported_rule_type_is_exercised():
    assert {kind for kind, _ in RULES} == set(ROW_TYPES)


def test_compiled_predicates_and_great_expectations_flag_the_same_rows():
    import ibis

    con = ibis.duckdb.connect()
    t = con.create_table("frame", FRAME)
    compiled = rules()
    eligible = t.m.notnull()  # every row (the gate passes "not an exact duplicate", a column too)
    flags = con.to_pyarrow(t.select(t.m, **{r.id: failure(t, r, eligible) for r in compiled}))
    # rows come back in any order (windows reorder them): m is the row's position + 1
    ours = {r.id: {m - 1 for m, v in zip(flags["m"].to_pylist(), flags[r.id].to_pylist(), strict=True) if v}
            for r in compiled}

    suite = expectation_suite({"name": "agreement", "expectations": [r.config() for r in compiled]})
    ctx = gx_context()
    source = ctx.data_sources.add_or_update_pandas("agreement")
    batch = source.add_dataframe_asset("frame").add_batch_definition_whole_dataframe("all").get_batch(
        batch_parameters={"dataframe": comparable(FRAME)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    theirs = {}
    for r in res.results:
        assert not (r.exception_info or {}).get("raised_exception"), (r.expectation_config.meta, r.exception_info)
        theirs[r.expectation_config.meta["rule"]] = set(r.result.get("unexpected_index_list") or [])
    disagree = {i: (RULES[int(i[1:])], sorted(ours[i]), sorted(theirs[i])) for i in ours if ours[i] != theirs[i]}
    assert not disagree
    # and the frame is not trivially clean: most rules flag something
    assert sum(1 for v in ours.values() if v) >= len(RULES) - 3
    assert ours["r0"] == {2, 7} and ours["r20"] == {1, 5, 6, 7, 8, 9} and ours["r17"] == {0, 1, 5, 6}

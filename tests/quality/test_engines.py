"""The gate's Ibis code is backend-neutral: on Spark (AWS Glue's engine) it publishes exactly the rows it
publishes on DuckDB, for a small dataset that exercises every kind of typing, derived column and rule."""

from __future__ import annotations

import pytest

from schemas import Column, Dataset
from tests.quality.conftest import CLIENTS, Lakehouse

pytestmark = pytest.mark.slow
DAYS = ("2024-03-01", "2024-03-02")
LINES = Dataset(
    name="q_lines", zone="raw", owner="platform", description="test invoice lines", source="psa", format="csv",
    columns=(Column("line_id", "string", nullable=False), Column("client_id", "string", nullable=False),
             Column("invoice_id", "string", nullable=False), Column("qty", "int", nullable=False, min=1),
             Column("price", "decimal(8,2)", nullable=False, min=0), Column("amount", "decimal(10,2)"),
             Column("taxable", "boolean"), Column("ratio", "double", max=1),
             Column("billed_at", "timestamp", formats=("%d/%m/%Y %H:%M", "%Y-%m-%d")),
             Column("paid_at", "timestamp"), Column("due", "date"), Column("kind", "string", allowed=("a", "b"))),
    primary_key=("line_id",), null_tokens=("NULL",),
)
LINES_SUITE = {
    "name": "q_lines",
    "meta": {"derived_columns": [
        {"name": "_client_known", "lookup": "processed.q_clients", "on": {"client_id": "client_id"}},
        {"name": "_client_name", "lookup": "processed.q_clients", "on": {"client_id": "client_id"},
         "value": "min(name)"},
        {"name": "_qty_x_price", "expr": "round(qty * price, 2)"},
        {"name": "_days_to_pay", "expr": "(unix_seconds(paid_at) - unix_seconds(billed_at)) / 86400.0"},
        {"name": "_invoice_total", "expr": "sum(CASE WHEN _passes_blocking THEN amount END) "
                                           "OVER (PARTITION BY invoice_id, dt)"}]},
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {
            "column": "_client_known",
            "row_condition": {"type": "nullity", "column": {"name": "client_id"}, "is_null": False}},
         "severity": "critical", "meta": {"rule": "fk:client_id"}},
        {"type": "expect_column_pair_values_to_be_equal", "kwargs": {"column_A": "amount", "column_B": "_qty_x_price"},
         "severity": "critical", "meta": {"rule": "amount_is_qty_x_price"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "_days_to_pay", "min_value": 0},
         "severity": "critical", "meta": {"rule": "paid_after_billed"}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "line_id", "regex": "^L[0-9]+$"},
         "severity": "critical", "meta": {"rule": "line_id_format"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "_invoice_total", "max_value": 100},
         "severity": "warning", "meta": {"rule": "invoice_total_small"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "_client_name"},
         "severity": "warning", "meta": {"rule": "client_named"}},
    ],
}
HEADER = "line_id,client_id,invoice_id,qty,price,amount,taxable,ratio,billed_at,paid_at,due,kind"
DAY1 = [
    "L1,C1,I1,2,10.50,21.00,true,0.5,01/03/2024 09:30,2024-03-02T10:00:00Z,2024-03-31,a",
    "L1,C1,I1,2,10.50,21.00,true,0.5,01/03/2024 09:30,2024-03-02T10:00:00Z,2024-03-31,a",   # exact duplicate
    "L2,C1,I1,3,33.33,99.99,NO,1e-1,2024-03-01,2024-03-01 12:00,2024-03-31,b",
    "L3,C2,I2,1,5.00,5.01,t,0.25,1/3/2024 8:05,,NULL,a",                                      # amount != qty x price
    "L4,C9,I2,1,5.00,5.00,maybe,2,01/03/2024 09:30,2024-02-01 00:00:00+02:00,2024-02-30,c",  # fk, types, range
    "X5,C1,I3,12.0,1.005,,1,,31/02/2024 10:00,,2024-04-01,",                                 # types, regex
    "L6,C2,I3,4,25.00,100.00,0,-0.5,02/03/2024 23:59,2024-03-01T00:00:00Z,,b",                # paid before billed
]
DAY2 = [
    "L1,C1,I4,1,60.00,60.00,y,0.9,02/03/2024 10:00,2024-03-03T10:00:00-05:00,2024-04-02,a",
    "L7,C2,I4,1,50.00,50.00,f,0.1,2024-03-02,2024-03-04,2024-04-02,b",
    "L7,C2,I4,1,50.00,50.00,f,0.2,2024-03-02,2024-03-04,2024-04-02,b",                          # same key, other values
    "L\x009,C2,I5,1,5.00,5.00,f,0.1,2024-03-02,2024-03-04,2024-04-02,b",                       # a NUL byte in the key
    "L10,C\x1b2,I5,1,5.00,5.00,f,0.1,2024-03-02,2024-03-04,2024-04-02,b",                      # ESC in a required text
    "L11,C2,I5\t,1,5.00,5.00,f,0.1,2024-03-02,2024-03-04,2024-04-02,b",                        # a tab: allowed there
]


def _gate(tmp_path, **env):
    lh = Lakehouse(tmp_path / "home", tmp_path, **env)
    lh.add(LINES)
    lh.write_suite(LINES_SUITE)
    lh.land(CLIENTS, DAYS[0], "client_id,name,tier\nC1,Acme,gold\nC2,Globex,silver\n")
    lh.land(LINES, DAYS[0], HEADER + "\n" + "\n".join(DAY1) + "\n")
    lh.land(LINES, DAYS[1], HEADER + "\n" + "\n".join(DAY2) + "\n")
    _, results = lh.run(*DAYS, datasets=(CLIENTS, LINES))

    def rows(ds):
        table = ds.arrow_schema()
        data = lh.lake.read_arrow(ds).select([n for n in table.names if n not in ("_ingested_at", "_run_id")])
        return sorted(data.to_pylist(), key=lambda r: (r["dt"], r["_source_file"], r["_row_number"]))

    return results, rows(LINES.processed_twin()), rows(LINES.quarantine_twin())


def test_the_gate_publishes_the_same_rows_on_duckdb_and_on_spark(tmp_path, spark):
    duck_results, duck_processed, duck_refused = _gate(tmp_path / "duckdb")
    spark_results, spark_processed, spark_refused = _gate(tmp_path / "spark", MSP_ENGINE="spark")
    assert spark_results["q_lines"].engine == "spark" and duck_results["q_lines"].engine == "duckdb"
    assert spark_processed == duck_processed
    assert spark_refused == duck_refused
    assert spark_results["q_lines"].counts == duck_results["q_lines"].counts == {
        "raw": 13, "processed": 4, "quarantined": 8, "duplicates": 1, "reconciled": True}
    assert [(r["line_id"], r["dt"], r["_rules_broken"]) for r in duck_refused] == [
        ("L3", "2024-03-01", "amount_is_qty_x_price"),
        ("L4", "2024-03-01", "type:taxable; range:ratio; type:due; allowed:kind; fk:client_id; paid_after_billed"),
        ("X5", "2024-03-01", "type:qty; type:price; type:billed_at; line_id_format"),
        ("L6", "2024-03-01", "paid_after_billed"),
        ("L7", "2024-03-02", "unique:line_id"), ("L7", "2024-03-02", "unique:line_id"),
        ("L\x009", "2024-03-02", "no_control:line_id; line_id_format"),
        ("L10", "2024-03-02", "no_control:client_id; fk:client_id")]
    assert [(r["line_id"], r["dt"], r["billed_at"].isoformat(), r["paid_at"].isoformat()) for r in duck_processed] == [
        ("L1", "2024-03-01", "2024-03-01T09:30:00+00:00", "2024-03-02T10:00:00+00:00"),
        ("L2", "2024-03-01", "2024-03-01T00:00:00+00:00", "2024-03-01T12:00:00+00:00"),
        ("L1", "2024-03-02", "2024-03-02T10:00:00+00:00", "2024-03-03T15:00:00+00:00"),
        ("L11", "2024-03-02", "2024-03-02T00:00:00+00:00", "2024-03-04T00:00:00+00:00")]
    warned = {r["id"]: r["failed_rows"] for r in duck_results["q_lines"].rules if r["severity"] == "warning"}
    assert warned == {r["id"]: r["failed_rows"] for r in spark_results["q_lines"].rules if r["severity"] == "warning"}

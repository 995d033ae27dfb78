"""The same profitability expression on the PySpark engine gives the same rows as on DuckDB, to the cent and
the last decimal (the AWS Glue jobs run it on Spark; the local runs on DuckDB)."""

from __future__ import annotations

import pytest

from jobs.cpi import profitability as P
from tests.cpi.conftest import arrow
from tests.cpi.test_profitability import AS_OF, raw_inputs

pytestmark = pytest.mark.slow

MONTHS = ["2024-02", "2024-03", "2024-04", "2024-05"]


def _rows(table) -> list[tuple]:
    return sorted((tuple(r.values()) for r in table.to_pylist()), key=lambda r: tuple(map(str, r)))


def test_profitability_on_spark_equals_duckdb(spark, cfg):
    import ibis

    con = ibis.pyspark.connect(spark)

    def spark_table(dataset: str, rows: list[dict]):
        """The rows as a Spark DataFrame (a temp view the expression reads, as the Glue engine's tables are)."""
        name = f"parity_{dataset.replace('.', '_')}"
        spark.createDataFrame(arrow(dataset, rows)).createOrReplaceTempView(name)
        return con.table(name)

    duck = P.transform(P.prepare(raw_inputs()), MONTHS, cfg, AS_OF)
    sp = P.transform(P.prepare(raw_inputs(spark_table)), MONTHS, cfg, AS_OF)
    on_duckdb = [e.to_pyarrow() for e in duck]
    on_spark = [con.to_pyarrow(e) for e in sp]
    for duck, sp in zip(on_duckdb, on_spark, strict=True):
        assert sp.num_rows == duck.num_rows > 0
        assert sp.schema.names == duck.schema.names
        assert [f.type for f in sp.schema] == [f.type for f in duck.schema]
        assert _rows(sp) == _rows(duck)
    # and both are the hand-computed March of tests/cpi/test_profitability.py
    march = {r["client_id"]: r for r in on_spark[0].to_pylist() if r["month"] == "2024-03"}
    assert (str(march["C1"]["billed"]), str(march["C1"]["margin_pct"]), march["C1"]["rhem"]) == ("1983.34", "81.28",
                                                                                                0.2738)

"""The job engine: where a stage's table expressions run.

Jobs are written once as `Ibis <https://ibis-project.org>`_ table expressions (the portable dataframe
library: the same expression compiles to DuckDB, Spark SQL, Athena and others). The profile picks the
engine that runs them (``platform.engine``):

* ``duckdb`` (local default): an in-process DuckDB. A daily run moves a few thousand rows; on this machine
  class a Spark job costs 0.35-0.6 s of fixed overhead per action and 8 s to start, DuckDB a few
  milliseconds, so a day's run across six agents fits in seconds.
* ``spark``: PySpark through Ibis's pyspark backend: AWS Glue 6.0 jobs, or a local Spark session to check
  that a job runs the same there (the parity tests do).

Both read the lake's Iceberg tables through the data files of a snapshot (so no Iceberg runtime jar is
needed) and hand results back as Arrow, which :mod:`lakehouse.lake` commits. A run builds one engine
(:func:`make_engine`) and closes it at its end; the Spark engine wraps the process's one Spark session.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import ibis
    import pyarrow as pa

    from lakehouse.config import Settings
    from schemas import Dataset

class CompiledCache(Protocol):
    """Where compiled queries are kept between runs (:meth:`Engine.to_arrow_compiled`)."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...


class EngineError(RuntimeError):
    """The engine could not read or compute something; the message names the table."""


class Engine:
    """An Ibis backend plus the few operations the platform needs of it."""

    name = "engine"

    def __init__(self, con: ibis.BaseBackend):
        self.con = con
        self._n = 0

    def _name(self, hint: str) -> str:
        self._n += 1
        return f"_{hint.replace('.', '_').replace('-', '_')}_{self._n}"

    def files(self, ds: Dataset, paths: Sequence[str]) -> ibis.Table:
        """The rows of some data files of a table, with the declared schema (columns the files lack, from
        an older schema, read as null)."""
        import ibis

        schema = ds.ibis_schema()
        if not paths:
            return self.empty(ds)
        raw = self._read_parquet(list(paths), ds)
        have = set(raw.columns)
        return raw.select(**{name: (raw[name].cast(dtype) if name in have else ibis.null().cast(dtype))
                             for name, dtype in schema.items()})

    def _read_parquet(self, paths: list[str], ds: Dataset) -> ibis.Table:
        raise NotImplementedError

    def empty(self, ds: Dataset) -> ibis.Table:
        return self.arrow(ds.arrow_schema().empty_table(), ds.qualified_name)

    def arrow(self, table: pa.Table, hint: str = "arrow") -> ibis.Table:
        """An Arrow table (or pandas frame) as a table expression of this engine."""
        import ibis

        return ibis.memtable(table)  # ibis 12: memtable() takes no name

    def to_arrow(self, expr: ibis.Table) -> pa.Table:
        return self.con.to_pyarrow(expr)

    def to_pandas(self, expr: ibis.Table):
        return self.con.execute(expr)

    def to_arrow_compiled(self, build: Callable[[dict[str, ibis.Table]], ibis.Table], inputs: dict[str, ibis.Table],
                          key: str, cache: CompiledCache | None = None) -> pa.Table:
        """``build(inputs)`` as Arrow. On an engine that runs SQL text, the query is compiled once per ``key``
        over placeholder tables with the inputs' schemas and kept in ``cache``; later calls bind the inputs
        to the placeholders' names and run the kept SQL, skipping Ibis's compilation (a quality-gate
        expression of some fifty rules takes 0.1-1.5 s to compile and milliseconds to run on a day).
        ``key`` must change whenever ``build`` would build another expression from inputs of the same schema."""
        return self.to_arrow(build(inputs))

    def sql(self, query: str, tables: dict[str, ibis.Table], dialect: str = "duckdb") -> ibis.Table:
        """A SQL query (in ``dialect``, transpiled to this engine's by sqlglot) over named expressions."""
        for name, t in tables.items():
            self.con.create_view(name, t, overwrite=True)
        return self.con.sql(query, dialect=dialect)

    def close(self) -> None:  # pragma: no cover - per backend
        pass


class DuckDBEngine(Engine):
    name = "duckdb"

    def __init__(self, threads: int | None = None, memory_limit: str | None = None):
        import ibis

        kwargs: dict[str, Any] = {}
        if threads:
            kwargs["threads"] = threads
        if memory_limit:
            kwargs["memory_limit"] = memory_limit
        super().__init__(ibis.duckdb.connect(**kwargs))
        self._empties: dict[str, ibis.Table] = {}

    def empty(self, ds: Dataset) -> ibis.Table:
        """An empty table of ``ds`` bound to this engine's connection, made once per dataset (11 ms each: a
        vote that finds no rows runs once per proposal). A memtable belongs to no backend, so an expression
        over it alone (a lookup of a parent table never published) would be cached by ``.cache()`` in ibis's
        default backend, another DuckDB connection, where this engine's queries do not find it."""
        empty = self._empties.get(ds.qualified_name)
        if empty is None or empty.schema() != ds.ibis_schema():
            empty = self._empties[ds.qualified_name] = self.con.create_table(
                self._name(ds.qualified_name), ds.arrow_schema().empty_table(), temp=True)
        return empty

    def _read_parquet(self, paths: list[str], ds: Dataset) -> ibis.Table:
        local = [p.removeprefix("file://") for p in paths]
        try:
            return self.con.read_parquet(local, table_name=self._name(ds.qualified_name), union_by_name=True)
        except Exception as exc:  # a missing or corrupt data file: say which table
            raise EngineError(f"{ds.qualified_name}: cannot read its data files ({exc})") from exc

    def to_arrow_compiled(self, build, inputs, key, cache=None):
        import ibis
        from ibis.backends.duckdb.converter import DuckDBPyArrowData

        names = {name: f"__compiled_{name}" for name in inputs}
        schemas_ = {name: t.schema() for name, t in inputs.items()}
        full_key = hashlib.sha256(json.dumps([key, ibis.__version__, {n: {c: str(d) for c, d in s.items()}
                                                                     for n, s in schemas_.items()}],
                                             sort_keys=True).encode()).hexdigest()[:24]
        kept = cache.get(full_key) if cache is not None else None
        for name, t in inputs.items():
            self.con.create_view(names[name], t, overwrite=True)
        try:
            if kept is None:  # placeholders are views of the inputs: a suite's SQL expressions need bound tables
                expr = build({name: self.con.table(names[name]) for name in inputs})
                kept = {"sql": self.con.compile(expr), "schema": {c: str(d) for c, d in expr.schema().items()}}
                if cache is not None:
                    cache.put(full_key, kept)
            table = self.con.con.sql(kept["sql"]).to_arrow_table()
        finally:
            for name in inputs:
                with contextlib.suppress(Exception):
                    self.con.drop_view(names[name], force=True)
        schema = ibis.schema({c: ibis.dtype(d) for c, d in kept["schema"].items()})
        return DuckDBPyArrowData.convert_table(table, schema)

    def close(self) -> None:
        self.con.disconnect()


class SparkEngine(Engine):
    name = "spark"

    def __init__(self, settings: Settings):
        import ibis

        from lakehouse.spark import get_spark

        self.spark = get_spark(settings)
        super().__init__(ibis.pyspark.connect(self.spark))

    def _read_parquet(self, paths: list[str], ds: Dataset) -> ibis.Table:
        df = self.spark.read.option("mergeSchema", "true").parquet(*paths)
        name = self._name(ds.qualified_name)
        df.createOrReplaceTempView(name)
        return self.con.table(name)

    def to_arrow(self, expr: ibis.Table) -> pa.Table:
        return self.con.to_pyarrow(expr)


def make_engine(settings: Settings) -> Engine:
    """A new engine for ``platform.engine``."""
    kind = settings.platform.engine
    if kind == "duckdb":
        return DuckDBEngine(threads=2)
    return SparkEngine(settings)

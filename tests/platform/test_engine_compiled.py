"""Compiled queries kept between runs (Engine.to_arrow_compiled): the kept SQL gives the rows the expression
gives, is reused for other rows of the same schema, and is compiled again when the key or a schema changes."""

from __future__ import annotations

import pyarrow as pa

from lakehouse.engine import DuckDBEngine


class Cache(dict):
    def put(self, key, value):
        self[key] = value


def build_counting(calls):
    def build(t):
        calls.append(1)
        a = t["a"]
        joined = a.join(t["names"], a.k == t["names"].k).select(a.k, a.x, t["names"].name)
        return joined.filter(joined.x > 1).mutate(y=joined.x * 2).order_by("k")
    return build


def test_a_kept_query_gives_the_expressions_rows_and_is_reused_until_its_key_or_a_schema_changes():
    cache, calls = Cache(), []
    build = build_counting(calls)
    engine = DuckDBEngine()
    names = engine.arrow(pa.table({"k": [1, 2, 3], "name": ["one", "two", "three"]}))
    first = {"a": engine.arrow(pa.table({"k": [1, 2, 3], "x": [1, 5, 7]})), "names": names}
    got = engine.to_arrow_compiled(build, first, "v1", cache)
    assert got.equals(engine.to_arrow(build(first)))
    assert got.to_pylist() == [{"k": 2, "x": 5, "name": "two", "y": 10}, {"k": 3, "x": 7, "name": "three", "y": 14}]
    assert len(calls) == 2 and len(cache) == 1

    # another process (a new engine), other rows of the same schema: the kept SQL runs, nothing is compiled
    other = DuckDBEngine()
    rows = {"a": other.arrow(pa.table({"k": [3, 1], "x": [2, 9]})),
            "names": other.arrow(pa.table({"k": [1, 3], "name": ["one", "three"]}))}
    again = other.to_arrow_compiled(build, rows, "v1", cache)
    assert len(calls) == 2
    assert again.to_pylist() == [{"k": 1, "x": 9, "name": "one", "y": 18}, {"k": 3, "x": 2, "name": "three", "y": 4}]
    assert again.schema == got.schema

    # a new key (the suite or the code changed), or an input of another schema, compiles again
    other.to_arrow_compiled(build, rows, "v2", cache)
    assert len(calls) == 3
    wider = {**rows, "a": other.arrow(pa.table({"k": [1], "x": [4], "extra": ["e"]}))}
    assert other.to_arrow_compiled(build, wider, "v2", cache).column("y").to_pylist() == [8]
    assert len(calls) == 4 and len(cache) == 3


def test_a_cached_lookup_of_a_table_never_published_is_bound_to_the_engine_that_queries_it():
    """A parent the gate looks rows up in may have no snapshot yet (a first export without clients): its
    empty table must live in the engine's own connection, or ``.cache()`` puts the lookup in ibis's default
    backend and the gate's query cannot find it."""
    import schemas
    from lakehouse.quality.compile import lookup_table
    from lakehouse.quality.suite import load_all

    suite = next(s for s in load_all() if any(d.lookup == "processed.clients" for d in s.derived))
    derived = next(d for d in suite.derived if d.lookup == "processed.clients")
    engine = DuckDBEngine()
    cached = lookup_table(engine.empty(schemas.get("processed.clients")), derived).cache()
    found = engine.to_arrow_compiled(lambda t: t["lookup"], {"lookup": cached}, "lookup-of-empty", Cache())
    assert found.num_rows == 0 and set(derived.on.values()) <= set(found.column_names)

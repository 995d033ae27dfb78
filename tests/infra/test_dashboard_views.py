"""The dashboard's panels on AWS: every declared panel as an Athena view (lakehouse/dashboard/athena.py), and
the stack's saved query of each view in the analysts' workgroup.

The SQL is checked with sqlglot (Athena runs nowhere here): each view parses as Trino's and reads only tables the
dataset declarations define, in the Glue databases the stack creates.
"""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

import schemas
from lakehouse import aws_names
from lakehouse.agents import Panel
from lakehouse.dashboard import athena as views_mod
from lakehouse.dashboard.athena import panel_views, transpile
from lakehouse.dashboard.build import all_panels
from lakehouse.dashboard.sources import COLUMNS as PLATFORM_TABLES
from tests.infra.conftest import ACCOUNT, REGION, needs_node, resources

NAMES = aws_names.AwsNames("dev", account=ACCOUNT, region=REGION)
PREFIX = NAMES.glue_database_prefix


def _tables(tree) -> set[tuple[str, str]]:
    """(database or zone, table) of every table a statement reads: not its CTEs, not the view it creates."""
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    created = tree.this if isinstance(tree, exp.Create) else None
    return {(t.db, t.name) for t in tree.find_all(exp.Table)
            if t is not created and (t.db or t.name not in ctes)}


def _declared_tables() -> set[tuple[str, str]]:
    return {(ds.glue_database(PREFIX), ds.name) for ds in schemas.catalog().values()}


@pytest.fixture(scope="module")
def views():
    return panel_views(PREFIX)


def test_every_declared_panel_is_a_trino_view_over_declared_tables_or_reads_the_lakes_json_files(views):
    declared = all_panels()
    assert len(declared) > 20
    assert [p.id for _o, p in declared] == sorted([v.panel_id for v in views.views] +
                                                  [n.panel_id for n in views.not_views],
                                                  key=[p.id for _o, p in declared].index)
    # the panels that cannot be views are exactly those over the platform's JSON tables, each named with why
    over_json = {p.id: sorted({name for db, name in _tables(sqlglot.parse_one(p.sql, read="duckdb"))
                               if not db and name in PLATFORM_TABLES}) for _o, p in declared}
    assert {n.panel_id for n in views.not_views} == {pid for pid, tables in over_json.items() if tables}
    for n in views.not_views:
        assert n.platform_table and over_json[n.panel_id][0] in n.reason and "JSON" in n.reason, n
    analytics = NAMES.glue_database("analytics")
    databases = {NAMES.glue_database(z) for z in aws_names.zone_roots()}
    by_id = {p.id: p for _o, p in declared}
    for v in views.views:
        tree = sqlglot.parse_one(v.sql, read="trino", error_level=ErrorLevel.RAISE)
        assert isinstance(tree, exp.Create) and tree.kind == "VIEW" and tree.args.get("replace"), v.sql[:80]
        assert (tree.this.db, tree.this.name) == (analytics, v.name) == (v.database, f"dash_{v.panel_id}")
        assert v.sql.startswith(f'CREATE OR REPLACE VIEW "{analytics}"."dash_{v.panel_id}" AS')
        read = _tables(tree)
        assert read and {db for db, _t in read} <= databases, (v.panel_id, read)
        assert read <= _declared_tables(), (v.panel_id, read - _declared_tables())
        assert {f"{db}.{t}" for db, t in read} == set(v.tables)
        # the same tables as the panel's DuckDB SQL, zone by zone
        source = _tables(sqlglot.parse_one(by_id[v.panel_id].sql, read="duckdb"))
        assert {(schemas.get(f"{z}.{t}").glue_database(PREFIX), t) for z, t in source} == read
        # nothing sqlglot wrote through from DuckDB unchanged
        anonymous = {str(f.this).upper() for f in tree.find_all(exp.Anonymous)}
        assert anonymous <= views_mod.TRINO_FUNCTIONS, (v.panel_id, anonymous)
        assert not any(isinstance(g, exp.Group) and g.args.get("all") for g in tree.find_all(exp.Group))


def _dataset(zone_root: str = "analytics") -> schemas.Dataset:
    return next(ds for ds in schemas.catalog().values() if ds.zone_root == zone_root)


def test_duckdb_only_sql_is_rewritten_to_the_same_meaning_or_refused_with_its_reason():
    ds = _dataset()
    table, col = ds.qualified_name, ds.columns[0].name
    glue = f'"{ds.glue_database(PREFIX)}"."{ds.name}"'

    def sql(query: str) -> str:
        return transpile(Panel("x", "x", query), PREFIX)[0]

    # GROUP BY ALL: the positions of the expressions without an aggregate; only aggregates: no GROUP BY
    out = sqlglot.parse_one(sql(f"SELECT {col}, count(*) AS n, 'k' AS k FROM {table} GROUP BY ALL"), read="trino")
    assert [g.sql() for g in out.expression.args["group"].expressions] == ["1", "3"]
    out = sqlglot.parse_one(sql(f"SELECT count(*) AS n, max({col}) AS m FROM {table} GROUP BY ALL"), read="trino")
    assert out.expression.args.get("group") is None
    # list_position (NULL when absent) is array_position (0 when absent) with 0 made NULL
    assert "NULLIF(ARRAY_POSITION(ARRAY['a', 'b'], \"x\"), 0)" in sql(
        f"SELECT list_position(['a', 'b'], x) AS p FROM {table}").replace("\n", "").replace("  ", "")
    assert glue in sql(f"SELECT * FROM {table}")
    refused = {
        f"SELECT list_sum([1, 2]) AS s FROM {table}": "function LIST_SUM",
        f"SELECT * EXCLUDE ({col}) FROM {table}": "EXCLUDE",
        f"SELECT 1 AS one FROM {table} a ASOF JOIN {table} b USING ({col})": "ASOF JOIN",
        f"SELECT * FROM {table} PIVOT (count(*) FOR {col} IN ('x'))": "sqlglot cannot write it for Athena",
        f"SELECT median({col}) AS m FROM {table}": "not an Athena (Trino) function",
        "SELECT seconds FROM run_reports": "run_reports, a table the local dashboard builds from the lake's JSON",
        f"SELECT * FROM {ds.zone_root}.no_such_dataset": f"{ds.zone_root}.no_such_dataset, which no dataset",
        f"SELECT * FROM {ds.name}": "without a zone",
        "SELECT * FROM read_parquet('/etc/passwd')": "table function",
        f"SELECT * FROM other.{table}": "names a catalog",
        "SELEC 1": "does not parse as DuckDB SQL",
        f"DELETE FROM {table}": "is not one SELECT query",
        f"SELECT 1 AS a; SELECT * FROM {table}": "is not one SELECT query",
    }
    for query, why in refused.items():
        with pytest.raises(views_mod.NotTranspilable) as caught:
            sql(query)
        assert why in str(caught.value), (query, str(caught.value))
    with pytest.raises(views_mod.NotTranspilable, match="not an Athena view name"):
        transpile(Panel("Bad-Id", "x", f"SELECT * FROM {table}"), PREFIX)
    # reported by name, the rest still views
    out = panel_views(PREFIX, [("Acme", Panel("good", "g", f"SELECT * FROM {table}")),
                               ("Acme", Panel("bad", "b", f"SELECT list_sum([1]) AS s FROM {table}")),
                               ("Acme", Panel("twice", "t", f"SELECT 1 AS a FROM {table}")),
                               ("Other", Panel("twice", "t", f"SELECT 2 AS a FROM {table}"))])
    assert [v.name for v in out.views] == ["dash_good"]
    assert [(n.panel_id, n.owner, n.platform_table) for n in out.not_views] == [
        ("bad", "Acme", False), ("twice", "Acme", False), ("twice", "Other", False)]
    assert "LIST_SUM" in out.not_views[0].reason and "declared twice" in out.not_views[1].reason


@needs_node
@pytest.mark.xdist_group("infra-template")
def test_the_stack_saves_each_panels_view_statement_in_the_analysts_workgroup(dev_stack, template, views):
    import aws_cdk as cdk
    from aws_cdk.assertions import Annotations

    saved = resources(template, "AWS::Athena::NamedQuery")
    assert len(saved) == len(views.views)
    by_name = {p["Name"]: (logical, p) for logical, p in saved.items()}
    (wg_logical, wg), = resources(template, "AWS::Athena::WorkGroup").items()
    dbs = {p["DatabaseInput"]["Name"]: logical for logical, p in resources(template, "AWS::Glue::Database").items()}
    analytics = NAMES.glue_database("analytics")
    for v in views.views:
        logical, q = by_name[v.name]
        assert q["WorkGroup"] == {"Ref": wg_logical} and wg["Name"] == NAMES.athena_workgroup
        assert q["Database"] == analytics and analytics in dbs
        assert q["QueryString"] == v.sql and len(q["QueryString"]) < 262_144
        assert v.panel_id in q["Description"] and len(q["Description"]) <= 1024
        assert dbs[analytics] in template["Resources"][logical]["DependsOn"]
        # every table it reads is in a database the stack creates
        assert {t.split(".")[0] for t in v.tables} <= set(dbs), v.tables
    # the panels that are not views are in the synth output, by name and with the reason
    found = Annotations.from_stack(dev_stack[0]).find_info("*", cdk.assertions.Match.any_value())
    infos = [m.entry.data for m in found]
    for n in views.not_views:
        assert any(f"panel {n.panel_id} " in str(m) and n.reason in str(m) for m in infos), n

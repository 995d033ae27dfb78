"""The dashboard's panels on AWS: every declared panel (the platform's own and every agent's) as an Athena view.

A panel's SQL is DuckDB's over the catalog's views (``<zone root>.<dataset>``). :func:`panel_views` turns each
into ``CREATE OR REPLACE VIEW <analytics database>.dash_<panel id> AS <the query in Athena's SQL>``: the query
is transpiled from DuckDB to Athena (engine version 3, Trino) with sqlglot, and every table is named by its
Glue database (``processed.tickets`` → ``msp_dev_processed.tickets``, the database the stack creates for the
zone and the jobs' commits write the table into). ``msp aws views`` runs the statements in the stack's
workgroup; the infra stack holds the same statements as saved queries (``AWS::Athena::NamedQuery``), one per
view, so analysts find them in the Athena console.

Two gaps of sqlglot's DuckDB → Trino translation are rewritten first, each to the same meaning: ``GROUP BY
ALL`` becomes the positions of the non-aggregate select expressions, and DuckDB's ``list_position(list, x)``
(NULL when absent) becomes ``NULLIF(array_position(list, x), 0)`` (Trino returns 0 when absent).

A panel that cannot become a view is reported by name with the reason (:class:`NotAView`), never left out
silently: one that reads a table the local dashboard builds from the lake's JSON files
(:mod:`lakehouse.dashboard.sources`: run reports, the model registry), which has no Glue table; one that reads a
table that is not declared, or names no zone; one whose SQL does not parse as DuckDB's, uses what sqlglot
cannot write for Athena (it raises), or, once written, still holds DuckDB-only syntax (``* EXCLUDE``, ``ASOF``
joins, table functions) or a function sqlglot does not know in Trino. The checks are sqlglot's: a view can
still fail on Athena for a reason only the engine sees (a type mismatch), and ``msp aws views`` reports it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from lakehouse.agents import Panel

#: Every view's name is ``dash_<panel id>``; they live in the analytics zone's database.
VIEW_PREFIX = "dash_"
VIEWS_ZONE = "analytics"
#: What sqlglot reads and writes.
SOURCE_DIALECT, TARGET_DIALECT, CHECK_DIALECT = "duckdb", "athena", "trino"
#: Trino functions sqlglot 28 does not model (they come back as anonymous functions): known to be Athena's. Any
#: other anonymous function is one sqlglot wrote through unchanged from DuckDB, and refused.
TRINO_FUNCTIONS = frozenset({"ARRAY_POSITION", "BIT_COUNT", "HISTOGRAM", "MAP_AGG"})
#: Functions sqlglot writes for Trino under their generic name, which Trino does not have (``median``,
#: ``quantile_cont``, ``mode``).
NOT_IN_TRINO = ("PercentileCont", "PercentileDisc", "Mode")
#: DuckDB's names of ``list_position`` (1-based position of an element in a list, NULL when absent).
LIST_POSITION = frozenset({"list_position", "list_indexof", "array_position", "array_indexof"})
#: Joins DuckDB has and Trino does not (sqlglot writes them through unchanged).
DUCKDB_JOINS = frozenset({"ASOF", "POSITIONAL", "SEMI", "ANTI"})
_VIEW_NAME = re.compile(r"^[a-z0-9_]{1,255}$")


class NotTranspilable(ValueError):
    """A panel's SQL cannot become an Athena view; the message says why."""


class PlatformTable(NotTranspilable):
    """The panel reads a table the lake keeps as JSON files: by design, it has no Glue table."""


@dataclass(frozen=True)
class PanelView:
    """One panel as an Athena view: ``sql`` creates (or replaces) it."""

    panel_id: str
    owner: str
    title: str
    database: str               #: the Glue database of the analytics zone
    name: str                   #: ``dash_<panel id>``
    sql: str                    #: ``CREATE OR REPLACE VIEW "<database>"."<name>" AS <select>`` (Athena's SQL)
    tables: tuple[str, ...]     #: ``<Glue database>.<table>`` the view reads

    @property
    def qualified_name(self) -> str:
        return f"{self.database}.{self.name}"


@dataclass(frozen=True)
class NotAView:
    """A panel that is not an Athena view, and why."""

    panel_id: str
    owner: str
    reason: str
    platform_table: bool = False  #: it reads a table the lake keeps as JSON files (expected: no Glue table)


@dataclass
class PanelViews:
    database: str
    views: list[PanelView] = field(default_factory=list)
    not_views: list[NotAView] = field(default_factory=list)


def glue_database(prefix: str, zone_root: str) -> str:
    """The Glue database of a zone: a declared dataset's own (:meth:`schemas.Dataset.glue_database`), which is
    the stack's (:meth:`lakehouse.aws_names.AwsNames.glue_database`)."""
    import schemas

    for ds in schemas.catalog().values():
        if ds.zone_root == zone_root:
            return ds.glue_database(prefix)
    raise NotTranspilable(f"no dataset is declared in the zone {zone_root!r}")


def view_name(panel_id: str) -> str:
    name = f"{VIEW_PREFIX}{panel_id}"
    if not _VIEW_NAME.match(name):
        raise NotTranspilable(f"{name!r} is not an Athena view name (lower-case letters, digits and underscores): "
                              "rename the panel")
    return name


# ---- rewrites: sqlglot's DuckDB → Trino gaps, each to the same meaning ----------------------------------------
def _has_aggregate(node) -> bool:
    from sqlglot import exp

    for sub in node.walk(bfs=True, prune=lambda n: isinstance(n, exp.Subquery | exp.Select | exp.Window)
                         and n is not node):
        if isinstance(sub, exp.AggFunc) and not isinstance(sub.parent, exp.Window):
            return True
    return False


def _group_by_all(tree) -> None:
    """``GROUP BY ALL`` (DuckDB: every select expression without an aggregate) → ``GROUP BY 1, 2``."""
    from sqlglot import exp

    for select in list(tree.find_all(exp.Select)):
        group = select.args.get("group")
        if group is None or not group.args.get("all"):
            continue
        if group.expressions:
            raise NotTranspilable("GROUP BY ALL with expressions has no Athena equivalent")
        positions = [i for i, e in enumerate(select.expressions, 1) if not _has_aggregate(e)]
        if positions:
            select.set("group", exp.Group(expressions=[exp.Literal.number(i) for i in positions]))
        else:  # only aggregates: one global group
            select.set("group", None)


def _list_position(tree):
    from sqlglot import exp

    def swap(node):
        if isinstance(node, exp.Anonymous) and str(node.this).lower() in LIST_POSITION and len(node.expressions) == 2:
            return exp.Nullif(this=exp.Anonymous(this="ARRAY_POSITION", expressions=node.expressions),
                              expression=exp.Literal.number(0))
        return node

    return tree.transform(swap)


# ---- tables -----------------------------------------------------------------------------------------------------
def _qualify_tables(tree, prefix: str) -> tuple[str, ...]:
    """Name every table by its Glue database; returns them. Raises for a table that is not a declared one."""
    from sqlglot import exp

    import schemas
    from lakehouse.dashboard.sources import COLUMNS as PLATFORM_TABLES

    declared = schemas.catalog()
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    read: set[str] = set()
    for table in list(tree.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            raise NotTranspilable(f"reads a table function ({table.this.sql(SOURCE_DIALECT)}), not a catalog table")
        name, zone = table.name, table.db
        if table.catalog:
            raise NotTranspilable(f"names a catalog ({table.sql(SOURCE_DIALECT)}): write <zone>.<dataset>")
        if not zone:
            if name in ctes:
                continue
            if name in PLATFORM_TABLES:
                raise PlatformTable(f"reads {name}, a table the local dashboard builds from the lake's JSON files "
                                      "(lakehouse/dashboard/sources.py); Athena has no table of it")
            raise NotTranspilable(f"reads {name} without a zone: write <zone>.<dataset>")
        ds = declared.get(f"{zone}.{name}")
        if ds is None:
            raise NotTranspilable(f"reads {zone}.{name}, which no dataset declaration defines")
        database = ds.glue_database(prefix)
        table.set("db", exp.to_identifier(database))
        table.set("this", exp.to_identifier(ds.name))
        read.add(f"{database}.{ds.name}")
    return tuple(sorted(read))


# ---- what must not be left once written for Athena ----------------------------------------------------------------
def _check_trino(sql: str) -> None:
    """The statement parses as Trino's, and holds nothing sqlglot parses there but Trino does not run."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ErrorLevel, ParseError

    try:
        tree = sqlglot.parse_one(sql, read=CHECK_DIALECT, error_level=ErrorLevel.RAISE)
    except ParseError as exc:
        raise NotTranspilable(f"the Athena SQL does not parse as Trino's: {_first_line(exc)}") from None
    for node in tree.walk():
        if isinstance(node, exp.Anonymous) and str(node.this).upper() not in TRINO_FUNCTIONS:
            raise NotTranspilable(f"function {str(node.this).upper()} has no Athena (Trino) equivalent in sqlglot")
        if type(node).__name__ in NOT_IN_TRINO:
            raise NotTranspilable(f"{node.sql(CHECK_DIALECT).split('(')[0]} is not an Athena (Trino) function (for a "
                                  "median or a quantile, approx_percentile is)")
        if isinstance(node, exp.Star) and any(node.args.get(k) for k in ("except", "except_", "replace", "rename")):
            raise NotTranspilable("SELECT * EXCLUDE / REPLACE / RENAME is DuckDB's only")
        if isinstance(node, exp.Join):
            how = {str(node.args.get(k) or "").upper() for k in ("kind", "method")} & DUCKDB_JOINS
            if how:
                raise NotTranspilable(f"{how.pop()} JOIN is DuckDB's only")
        if isinstance(node, exp.Group) and node.args.get("all"):
            raise NotTranspilable("GROUP BY ALL is DuckDB's only")


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return re.sub(r"\x1b\[[0-9;]*m", "", lines[0]) if lines else type(exc).__name__


def transpile(panel: Panel, prefix: str, database: str | None = None) -> tuple[str, tuple[str, ...]]:
    """``(CREATE OR REPLACE VIEW statement, Glue tables read)`` of one panel; raises :class:`NotTranspilable`.

    ``prefix`` is the deployment's Glue database prefix (``msp_dev``: ``platform.glue_database_prefix``, the
    stack's ``GlueDatabasePrefix`` output); ``database`` where the view goes (default: the analytics zone's)."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError

    name = view_name(panel.id)
    database = database or glue_database(prefix, VIEWS_ZONE)
    try:
        statements = [s for s in sqlglot.parse(panel.sql, read=SOURCE_DIALECT, error_level=ErrorLevel.RAISE) if s]
    except ParseError as exc:
        raise NotTranspilable(f"does not parse as DuckDB SQL: {_first_line(exc)}") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise NotTranspilable("is not one SELECT query")
    tree = _list_position(statements[0])
    _group_by_all(tree)
    tables = _qualify_tables(tree, prefix)
    create = exp.Create(this=exp.Table(this=exp.to_identifier(name), db=exp.to_identifier(database)),
                        kind="VIEW", replace=True, expression=tree)
    try:
        sql = create.sql(TARGET_DIALECT, identify=True, pretty=True, unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        raise NotTranspilable(f"sqlglot cannot write it for Athena: {_first_line(exc)}") from None
    _check_trino(sql)
    return sql, tables


def all_panels() -> list[tuple[str, Panel]]:
    """(owner, panel) of every declared panel: the platform's and every agent's, as the dashboard shows them."""
    from lakehouse.dashboard.build import all_panels as declared

    return declared()


def panel_views(prefix: str, panels: Iterable[tuple[str, Panel]] | None = None) -> PanelViews:
    """Every panel (default: every declared one) as an Athena view, or the reason it is not one."""
    from lakehouse.dashboard.build import check_declarations

    panels = list(all_panels() if panels is None else panels)
    out = PanelViews(database=glue_database(prefix, VIEWS_ZONE))
    duplicates = {p.id for _o, p in panels if sum(q.id == p.id for _x, q in panels) > 1}
    for owner, panel in panels:
        if panel.id in duplicates:
            problems = [p for p in check_declarations(panels) if repr(panel.id) in p]
            out.not_views.append(NotAView(panel.id, owner, problems[0] if problems else "declared twice"))
            continue
        try:
            sql, tables = transpile(panel, prefix, out.database)
        except NotTranspilable as exc:
            out.not_views.append(NotAView(panel.id, owner, str(exc), platform_table=isinstance(exc, PlatformTable)))
            continue
        out.views.append(PanelView(panel.id, owner, panel.title, out.database, view_name(panel.id), sql, tables))
    return out

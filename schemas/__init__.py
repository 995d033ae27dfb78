"""Dataset declarations: the single source of truth for every table in the lake.

Each dataset is declared once, as a YAML file under ``schemas/datasets/<zone root>/<name>.yaml``.
Everything else is derived from that declaration: the Spark ``StructType``, the Arrow schema and
pandas dtypes, the Glue/Athena DDL, the DuckDB view and the baseline expectations (types, not-null,
unique key, allowed values and ranges).

A declaration looks like this::

    name: tickets
    zone: raw                      # raw | processed | analytics/<kind> | quarantine
    owner: platform                # platform, or the name of the agent that writes it
    source: psa                    # raw only: the landing folder the files arrive in
    format: csv                    # raw only: csv | jsonl | document
    description: Service-desk tickets as exported by the PSA.
    primary_key: [ticket_id]
    partition_by: [dt]             # default [dt]; [] for an unpartitioned table
    columns:
      - {name: ticket_id, type: string, nullable: false, description: PSA ticket id}
      - {name: priority, type: string, allowed: [low, medium, high, critical]}
      - {name: hours, type: "decimal(9,2)", min: 0, max: 24}
    # optional, raw only: null_tokens: ["NULL"]   renames: {SourceHeader: column_name}

Raw tables store every source column as text, exactly as it arrived, plus the lineage columns
(``LINEAGE_COLUMNS``); the declared types are the *contract* the quality gate enforces when it
turns a raw row into a processed row. A raw declaration therefore also defines its processed twin
(same name, typed columns, lineage kept) unless a processed declaration of that name exists.

This package imports nothing else of the project, so that every layer (jobs, DAGs, infra) can
read it. Spark and Arrow are imported lazily, only by the functions that need them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SCHEMAS_DIR = Path(__file__).resolve().parent
DATASETS_DIR = SCHEMAS_DIR / "datasets"
EVENTS_DIR = SCHEMAS_DIR / "events"

ZONE_ROOTS = ("raw", "processed", "analytics", "quarantine", "ml-models", "events")
ANALYTICS_KINDS = ("daily-summaries", "monthly-reports", "kpi-metrics", "predictions")
#: An owner is ``platform`` or an agent's name; the agent registry checks that the agent exists.
OWNER_NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
RAW_FORMATS = ("csv", "jsonl", "document")

#: Columns added to every raw row at ingestion, kept through processed for lineage.
LINEAGE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("_source_file", "string", "Landing file the row came from, relative to the landing root"),
    ("_source_hash", "string", "SHA-256 of that landing file (ingestion knows from it which files it has loaded)"),
    ("_row_number", "long", "1-based data row number inside the source file (header excluded)"),
    ("_row_hash", "string", "SHA-256 of the row's source values, used for de-duplication"),
    ("_ingested_at", "timestamp", "UTC time the row was ingested"),
    ("_run_id", "string", "Id of the pipeline run that ingested the row"),
)
PARTITION_COLUMN = "dt"

#: Columns a quarantine twin adds after the source text: what the quality gate found wrong with the row.
QUARANTINE_COLUMNS: tuple[tuple[str, bool, str], ...] = (
    ("_rules_broken", False, "Blocking rules the row broke, '; '-separated rule ids (see expectations/)"),
    ("_severity", False, "Highest severity among the broken rules (critical: blocking)"),
    ("_rules_warned", True, "Warning rules the row also broke, '; '-separated, or null"),
)
#: Prefix of the source-text copy of a typed column in the quality gate's validation frame.
RAW_TEXT_PREFIX = "_raw_"


def raw_text_column(name: str) -> str:
    """Name of the source text of column ``name`` in the gate's validation frame (``_raw_<name>``)."""
    return f"{RAW_TEXT_PREFIX}{name}"

_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
SIMPLE_TYPES = ("string", "int", "long", "double", "boolean", "date", "timestamp")


class SchemaError(ValueError):
    """A dataset declaration is invalid; the message names the file and the field."""


def _check_type(type_: str, where: str) -> str:
    type_ = type_.strip().lower().replace(" ", "")
    if type_ in SIMPLE_TYPES or _DECIMAL.match(type_):
        return type_
    raise SchemaError(f"{where}: unknown type {type_!r} (use one of {', '.join(SIMPLE_TYPES)} or decimal(p,s))")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    description: str = ""
    allowed: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    #: Accepted source spellings for dates/timestamps (strptime formats); first is canonical.
    formats: tuple[str, ...] | None = None

    @property
    def decimal(self) -> tuple[int, int] | None:
        m = _DECIMAL.match(self.type)
        return (int(m.group(1)), int(m.group(2))) if m else None

    @property
    def is_numeric(self) -> bool:
        return self.type in ("int", "long", "double") or self.decimal is not None


@dataclass(frozen=True)
class Dataset:
    name: str
    zone: str
    owner: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = (PARTITION_COLUMN,)
    source: str | None = None
    format: str | None = None
    #: Raw only: a file header may spell a column differently (e.g. FOCUS exports); source -> name.
    renames: dict[str, str] = field(default_factory=dict)
    #: Raw only: source spellings of "no value" besides the empty string (FOCUS exports write NULL).
    null_tokens: tuple[str, ...] = ()
    path: Path | None = None

    # ---- identity -------------------------------------------------------------------------
    @property
    def zone_root(self) -> str:
        return self.zone.split("/", 1)[0]

    @property
    def qualified_name(self) -> str:
        """``<zone root>.<name>``: the catalog name (DuckDB schema.view, Glue database suffix.table)."""
        return f"{self.zone_root}.{self.name}"

    def glue_database(self, prefix: str = "msp") -> str:
        """Glue database of this dataset: one per zone root (``msp_raw``, ``msp_processed``, ...)."""
        return f"{prefix}_{self.zone_root.replace('-', '_')}"

    def location(self, lake_root: str) -> str:
        """Where the table lives in a lake (``<root>/<zone>/<name>``): its Iceberg table location, and the
        URI of its Airflow asset (``file://...`` locally, ``s3://...`` on AWS) that lineage tools follow."""
        root = lake_root.rstrip("/")
        if "://" not in root:
            root = "file://" + (root if root.startswith("/") else "/" + root)
        return f"{root}/{self.zone}/{self.name}"

    @property
    def table_identifier(self) -> tuple[str, str]:
        """(namespace, table) in the lake's Iceberg catalog: one namespace per zone root."""
        return (self.zone_root.replace("-", "_"), self.name)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.qualified_name} has no column {name!r}")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def data_columns(self) -> tuple[Column, ...]:
        """Declared columns without lineage and partition columns."""
        skip = {n for n, _, _ in LINEAGE_COLUMNS} | set(self.partition_by)
        return tuple(c for c in self.columns if c.name not in skip)

    # ---- physical shapes -------------------------------------------------------------------
    def stored_columns(self) -> tuple[Column, ...]:
        """Columns as physically stored (raw: all text + lineage; others: as declared + partitions)."""
        if self.zone_root == "raw":
            cols = [replace(c, type="string", nullable=True, allowed=None, min=None, max=None)
                    for c in self.data_columns]
            cols += [Column(n, t, nullable=False, description=d) for n, t, d in LINEAGE_COLUMNS]
        else:
            cols = list(self.data_columns)
            cols += [c for c in self.columns if c.name in {n for n, _, _ in LINEAGE_COLUMNS}]
        cols += [Column(p, "string", nullable=False, description="Partition") for p in self.partition_by]
        return tuple(cols)

    def spark_schema(self):
        """The Spark ``StructType`` of the stored table."""
        from pyspark.sql import types as T

        return T.StructType([T.StructField(c.name, _spark_type(c), c.nullable) for c in self.stored_columns()])

    def arrow_schema(self):
        """The Arrow schema of the stored table."""
        import pyarrow as pa

        return pa.schema([pa.field(c.name, _arrow_type(c), c.nullable) for c in self.stored_columns()])

    def iceberg_schema(self):
        """The Iceberg schema of the stored table (field ids in declaration order, from 1)."""
        from pyiceberg.schema import Schema
        from pyiceberg.types import NestedField

        return Schema(*[NestedField(i, c.name, _iceberg_type(c), required=not c.nullable)
                        for i, c in enumerate(self.stored_columns(), start=1)])

    def partition_spec(self):
        """The Iceberg partition spec: an identity partition per ``partition_by`` column, except the export
        day ``dt`` (``YYYY-MM-DD``), whose files are grouped by month (``truncate(7)``) so that a daily table
        holds a few files per month, not one per day; file statistics still prune reads to single days."""
        from pyiceberg.partitioning import PartitionField, PartitionSpec
        from pyiceberg.transforms import IdentityTransform, TruncateTransform

        ids = {c.name: i for i, c in enumerate(self.stored_columns(), start=1)}
        fields = []
        for j, p in enumerate(self.partition_by):
            if p == PARTITION_COLUMN:
                fields.append(PartitionField(source_id=ids[p], field_id=1000 + j, transform=TruncateTransform(7),
                                             name=f"{p}_month"))
            else:
                fields.append(PartitionField(source_id=ids[p], field_id=1000 + j, transform=IdentityTransform(),
                                             name=p))
        return PartitionSpec(*fields)

    def ibis_schema(self):
        """The Ibis schema of the stored table (what jobs see when they read it)."""
        import ibis

        return ibis.schema({c.name: _ibis_type(c) for c in self.stored_columns()})

    def pandas_dtypes(self) -> dict[str, str]:
        """pandas dtypes (nullable extension types) of the stored table."""
        return {c.name: _pandas_dtype(c) for c in self.stored_columns()}

    def glue_columns(self) -> tuple[dict[str, str], dict[str, str]]:
        """(columns, partition columns) as awswrangler/Glue ``{name: athena type}`` mappings."""
        cols = {c.name: athena_type(c.type) for c in self.stored_columns() if c.name not in self.partition_by}
        parts = dict.fromkeys(self.partition_by, "string")
        return cols, parts

    def glue_ddl(self, database: str, location: str) -> str:
        """Athena ``CREATE EXTERNAL TABLE`` statement for the stored table."""
        cols, parts = self.glue_columns()
        body = ",\n".join(f"  `{n}` {t}" for n, t in cols.items())
        ddl = f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{self.name}` (\n{body}\n)\n"
        comment = self.description.replace("'", "''")
        ddl += f"COMMENT '{comment}'\n"
        if parts:
            ddl += "PARTITIONED BY (" + ", ".join(f"`{p}` {t}" for p, t in parts.items()) + ")\n"
        ddl += f"STORED AS PARQUET\nLOCATION '{location.rstrip('/')}/'"
        return ddl

    def duckdb_columns(self) -> dict[str, str]:
        return {c.name: duckdb_type(c.type) for c in self.stored_columns()}

    # ---- derived twins -----------------------------------------------------------------------
    def processed_twin(self) -> Dataset:
        """The processed dataset a raw declaration implies: same columns, declared types, lineage kept."""
        if self.zone_root != "raw":
            raise SchemaError(f"{self.qualified_name}: only raw datasets have a processed twin")
        lineage = tuple(Column(n, t, nullable=False, description=d) for n, t, d in LINEAGE_COLUMNS)
        return replace(self, zone="processed", source=None, format=None, renames={}, null_tokens=(),
                       columns=self.data_columns + lineage, path=self.path)

    def quarantine_twin(self) -> Dataset:
        """The quarantine dataset a raw declaration implies: rows the quality gate refused, as text.

        Every data column keeps the source text (blanks and null tokens stored as null), followed by the
        rules the row broke (``_rules_broken``, ``; ``-separated rule ids), the highest severity among
        them, the warning rules it also broke, and the lineage that finds the row in its landing file.
        """
        if self.zone_root != "raw":
            raise SchemaError(f"{self.qualified_name}: only raw datasets have a quarantine twin")
        text = tuple(replace(c, type="string", nullable=True, allowed=None, min=None, max=None, formats=None)
                     for c in self.data_columns)
        verdict = tuple(Column(n, "string", nullable=nullable, description=d) for n, nullable, d in QUARANTINE_COLUMNS)
        lineage = tuple(Column(n, t, nullable=False, description=d) for n, t, d in LINEAGE_COLUMNS)
        return replace(self, zone="quarantine", source=None, format=None, renames={}, null_tokens=(),
                       columns=text + verdict + lineage, primary_key=("_source_file", "_row_number"),
                       description=f"Rows of {self.qualified_name} the quality gate refused, with the rules "
                                   f"they broke. {self.description}", path=self.path)

    # ---- baseline expectations -----------------------------------------------------------------
    def baseline_expectations(self) -> list[dict[str, Any]]:
        """The expectations the declaration itself implies, as Great Expectations 1.x configurations.

        Types (raw datasets: a source text that does not parse as the declared type), not-null, allowed
        values, min/max and a unique primary key within each partition. All are ``critical`` (blocking).
        For a raw dataset they apply to the gate's validation frame, which holds each typed column under
        its own name and the source text of each non-string column as ``_raw_<name>``
        (:func:`raw_text_column`); ``meta.rule`` is the rule id reported with every refused row.
        """
        out: list[dict[str, Any]] = []
        typed_source = self.zone_root == "raw"

        def add(type_: str, kwargs: dict[str, Any], rule: str, description: str) -> None:
            out.append({"type": type_, "kwargs": kwargs, "severity": "critical",
                        "meta": {"rule": rule, "source": "schema", "description": description}})

        for c in self.data_columns:
            text = raw_text_column(c.name) if typed_source and c.type != "string" else c.name
            if typed_source and c.type != "string":
                how = f" ({' or '.join(c.formats)})" if c.formats else ""
                add("expect_column_values_to_not_be_null",
                    {"column": c.name, "row_condition": {"type": "nullity", "column": {"name": text},
                                                         "is_null": False}},
                    f"type:{c.name}", f"{c.name} must read as {c.type}{how}")
            if not c.nullable:
                add("expect_column_values_to_not_be_null", {"column": text}, f"not_null:{c.name}",
                    f"{c.name} is required")
            if c.allowed is not None:
                add("expect_column_values_to_be_in_set", {"column": c.name, "value_set": list(c.allowed)},
                    f"allowed:{c.name}", f"{c.name} is one of {', '.join(map(str, c.allowed))}")
            if c.min is not None or c.max is not None:
                kwargs: dict[str, Any] = {"column": c.name}
                if c.min is not None:
                    kwargs["min_value"] = c.min
                if c.max is not None:
                    kwargs["max_value"] = c.max
                bounds = (f">= {c.min}" if c.max is None else f"<= {c.max}" if c.min is None
                          else f"between {c.min} and {c.max}")
                add("expect_column_values_to_be_between", kwargs, f"range:{c.name}", f"{c.name} {bounds}")
        if self.primary_key:
            key = list(self.primary_key) + [p for p in self.partition_by if p not in self.primary_key]
            add("expect_compound_columns_to_be_unique", {"column_list": key},
                f"unique:{'+'.join(self.primary_key)}",
                f"one row per {', '.join(self.primary_key)}" + (
                    f" in each {', '.join(self.partition_by)} partition" if self.partition_by else ""))
        return out


# ---- type mappings ---------------------------------------------------------------------------
def athena_type(type_: str) -> str:
    m = _DECIMAL.match(type_)
    if m:
        return f"decimal({m.group(1)},{m.group(2)})"
    return {"string": "string", "int": "int", "long": "bigint", "double": "double", "boolean": "boolean",
            "date": "date", "timestamp": "timestamp"}[type_]


def duckdb_type(type_: str) -> str:
    m = _DECIMAL.match(type_)
    if m:
        return f"DECIMAL({m.group(1)},{m.group(2)})"
    return {"string": "VARCHAR", "int": "INTEGER", "long": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN",
            "date": "DATE", "timestamp": "TIMESTAMP"}[type_]


def _spark_type(c: Column):
    from pyspark.sql import types as T

    if c.decimal:
        return T.DecimalType(*c.decimal)
    return {"string": T.StringType(), "int": T.IntegerType(), "long": T.LongType(), "double": T.DoubleType(),
            "boolean": T.BooleanType(), "date": T.DateType(), "timestamp": T.TimestampType()}[c.type]


def _arrow_type(c: Column):
    import pyarrow as pa

    if c.decimal:
        return pa.decimal128(*c.decimal)
    return {"string": pa.string(), "int": pa.int32(), "long": pa.int64(), "double": pa.float64(),
            "boolean": pa.bool_(), "date": pa.date32(), "timestamp": pa.timestamp("us", tz="UTC")}[c.type]


def _iceberg_type(c: Column):
    from pyiceberg import types as I

    if c.decimal:
        return I.DecimalType(*c.decimal)
    return {"string": I.StringType(), "int": I.IntegerType(), "long": I.LongType(), "double": I.DoubleType(),
            "boolean": I.BooleanType(), "date": I.DateType(), "timestamp": I.TimestamptzType()}[c.type]


def _ibis_type(c: Column):
    import ibis.expr.datatypes as dt

    nullable = c.nullable
    if c.decimal:
        return dt.Decimal(*c.decimal, nullable=nullable)
    return {"string": dt.String, "int": dt.Int32, "long": dt.Int64, "double": dt.Float64, "boolean": dt.Boolean,
            "date": dt.Date}.get(c.type, lambda nullable: dt.Timestamp(timezone="UTC", nullable=nullable))(
        nullable=nullable)


def _pandas_dtype(c: Column) -> str:
    if c.decimal:
        return "object"
    return {"string": "string", "int": "Int32", "long": "Int64", "double": "Float64", "boolean": "boolean",
            "date": "datetime64[s]", "timestamp": "datetime64[us, UTC]"}[c.type]


# ---- loading ------------------------------------------------------------------------------------
def _check_column_contract(raw_col: dict[str, Any], where: str) -> None:
    """Refuse column options that the quality gate could not enforce as declared."""
    type_ = str(raw_col["type"]).strip().lower().replace(" ", "")
    numeric = type_ in ("int", "long", "double") or bool(_DECIMAL.match(type_))
    if raw_col.get("formats") and type_ not in ("date", "timestamp"):
        raise SchemaError(f"{where}: column {raw_col['name']}: formats apply to date and timestamp columns only")
    for bound in ("min", "max"):
        value = raw_col.get(bound)
        if value is None:
            continue
        if not numeric:
            raise SchemaError(f"{where}: column {raw_col['name']}: {bound} applies to numeric columns only")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemaError(f"{where}: column {raw_col['name']}: {bound} must be a number, got {value!r}")


#: libyaml's loader where PyYAML was built with it: the same documents, about ten times faster to parse (the
#: pure-Python one took 1.7 s of every command's start for the declarations)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(path: Path) -> Dataset:
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)  # a safe loader either way
    except yaml.YAMLError as exc:
        raise SchemaError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise SchemaError(f"{path}: expected a mapping at the top level")
    where = str(path)
    for key in ("name", "zone", "owner", "description", "columns"):
        if key not in doc:
            raise SchemaError(f"{where}: missing required field {key!r}")
    zone = doc["zone"]
    root = zone.split("/", 1)[0]
    if root not in ZONE_ROOTS:
        raise SchemaError(f"{where}: zone {zone!r} is not one of {ZONE_ROOTS}")
    if root == "analytics" and zone.split("/", 1)[-1] not in ANALYTICS_KINDS:
        raise SchemaError(f"{where}: analytics zone must be analytics/<{'|'.join(ANALYTICS_KINDS)}>")
    if not isinstance(doc["owner"], str) or not OWNER_NAME.match(doc["owner"]):
        raise SchemaError(f"{where}: owner {doc['owner']!r} must be 'platform' or an agent's name")
    if root == "raw":
        if doc.get("format") not in RAW_FORMATS:
            raise SchemaError(f"{where}: raw datasets need format: one of {RAW_FORMATS}")
        if not doc.get("source"):
            raise SchemaError(f"{where}: raw datasets need source: <landing folder>")
    columns = []
    seen = set()
    for i, raw_col in enumerate(doc["columns"]):
        if "name" not in raw_col or "type" not in raw_col:
            raise SchemaError(f"{where}: column #{i + 1} needs name and type")
        if raw_col["name"] in seen:
            raise SchemaError(f"{where}: column {raw_col['name']!r} declared twice")
        seen.add(raw_col["name"])
        _check_column_contract(raw_col, where)
        columns.append(Column(
            name=raw_col["name"],
            type=_check_type(str(raw_col["type"]), f"{where}: column {raw_col['name']}"),
            nullable=bool(raw_col.get("nullable", True)),
            description=raw_col.get("description", ""),
            allowed=tuple(raw_col["allowed"]) if raw_col.get("allowed") is not None else None,
            min=raw_col.get("min"),
            max=raw_col.get("max"),
            formats=tuple(raw_col["formats"]) if raw_col.get("formats") else None,
        ))
    pk = tuple(doc.get("primary_key") or ())
    partition_by = tuple(doc.get("partition_by", [PARTITION_COLUMN]) or ())
    for k in pk:
        if k not in seen and k not in partition_by:
            raise SchemaError(f"{where}: primary key column {k!r} is not declared")
    if path.stem != doc["name"]:
        raise SchemaError(f"{where}: file name must match the dataset name {doc['name']!r}")
    return Dataset(
        name=doc["name"], zone=zone, owner=doc["owner"], description=doc["description"].strip(),
        columns=tuple(columns), primary_key=pk,
        partition_by=partition_by,
        source=doc.get("source"), format=doc.get("format"), renames=dict(doc.get("renames") or {}),
        null_tokens=tuple(doc.get("null_tokens") or ()), path=path,
    )


#: Entry-point group through which a package outside this repository (a third-party agent) adds a folder of
#: dataset declarations: ``myagent = "myagent:datasets"`` names the folder ``datasets`` inside package
#: ``myagent``, laid out like ``schemas/datasets/`` (``<zone root>/<name>.yaml``).
DATASETS_ENTRY_POINTS = "msp.datasets"


def declaration_dirs() -> list[Path]:
    """``schemas/datasets/`` and every folder registered in the ``msp.datasets`` entry-point group."""
    import importlib.util
    from importlib.metadata import entry_points

    dirs = [DATASETS_DIR]
    for ep in sorted(entry_points(group=DATASETS_ENTRY_POINTS), key=lambda e: e.name):
        package, _, sub = ep.value.partition(":")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise SchemaError(f"entry point {ep.name} = {ep.value}: package {package!r} not found")
        dirs.append(Path(next(iter(spec.submodule_search_locations))) / (sub or "datasets"))
    return dirs


@cache
def catalog() -> dict[str, Dataset]:
    """Every declared dataset by qualified name, processed and quarantine twins of raw datasets included."""
    found: dict[str, Dataset] = {}
    for path in sorted(p for d in declaration_dirs() for p in d.rglob("*.yaml")):
        ds = _parse(path)
        if ds.qualified_name in found:
            raise SchemaError(f"{path}: {ds.qualified_name} is already declared in {found[ds.qualified_name].path}")
        found[ds.qualified_name] = ds
    for ds in [d for d in found.values() if d.zone_root == "raw"]:
        for twin in (ds.processed_twin(), ds.quarantine_twin()):
            found.setdefault(twin.qualified_name, twin)
    return dict(sorted(found.items()))


def get(qualified_name: str) -> Dataset:
    """Look a dataset up by ``zone.name`` (e.g. ``processed.tickets``)."""
    try:
        return catalog()[qualified_name]
    except KeyError:
        close = [n for n in catalog() if qualified_name.split(".")[-1] in n]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise KeyError(f"no dataset {qualified_name!r} is declared{hint}") from None


def datasets(zone_root: str | None = None, owner: str | None = None) -> list[Dataset]:
    return [d for d in catalog().values()
            if (zone_root is None or d.zone_root == zone_root) and (owner is None or d.owner == owner)]


def raw_sources() -> dict[str, list[Dataset]]:
    """Raw datasets grouped by their landing source folder."""
    out: dict[str, list[Dataset]] = {}
    for d in datasets("raw"):
        out.setdefault(d.source or "", []).append(d)
    return out


def names(items: Iterable[Dataset]) -> list[str]:
    return [d.qualified_name for d in items]

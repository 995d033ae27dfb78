"""The rules of one dataset: baseline expectations from its declaration plus its suite in ``expectations/``.

A suite file is a Great Expectations 1.x expectation suite stored as JSON (``expectations/<dataset>.json``).
Each expectation's ``severity`` says what a failure does: ``critical`` rows are blocked (quarantined),
``warning`` and ``info`` rows are published and reported. ``meta.rule`` is the short rule id written into
``_rules_broken`` of every quarantined row; ``meta.description`` is what people read in the report.

Rules a plain column cannot express (a foreign key, a total against the sum of lines, a duration) use
*derived columns* declared in the suite's ``meta.derived_columns``: the gate adds them to the frame before
anything is checked, so the compiled predicates that decide each row and the Great Expectations Checkpoint
that audits the published batch look at exactly the same columns::

    {"name": "_client_known", "lookup": "processed.clients", "on": {"client_id": "client_id"}}
    {"name": "_invoice_date", "lookup": "processed.invoices", "on": {"invoice_id": "invoice_id"},
     "value": "min(invoice_date)"}
    {"name": "_hours_span", "expr": "(unix_seconds(end_time) - unix_seconds(start_time)) / 3600.0"}

A ``lookup`` left-joins the published rows of another dataset (grouped by the join keys, so a row never
multiplies): without ``value`` the column is ``true`` when a match exists and null otherwise. An ``expr``
is a Spark SQL expression over the frame (window functions allowed), transpiled by sqlglot to the engine's
dialect; an expression that mentions ``_passes_blocking`` is computed after the other rules, over the rows
that passed them.

``meta.dataset_checks`` tunes the dataset-level checks for this dataset (see ``lakehouse/defaults.toml``
[quality]): ``{"row_count_drop": {"compare": "previous_day" | "same_weekday" | "off"},
"null_share_jump": {"ignore": ["column", ...]}}``.

Nothing here imports an engine or Great Expectations; :mod:`lakehouse.quality.compile` turns rules into
Ibis predicates and :mod:`lakehouse.quality.gx` hands the same configurations to Great Expectations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemas
from schemas import LINEAGE_COLUMNS, Dataset, raw_text_column

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"
SEVERITIES = ("critical", "warning", "info")
PASSES_BLOCKING = "_passes_blocking"
#: Control characters refused in a key (any, tab and line breaks included) and in a required text column
#: (any but tab, line feed and carriage return), spelt so that RE2 (DuckDB), Java (Spark) and Python read it alike.
KEY_CONTROL = r"[\x00-\x1F\x7F]"
TEXT_CONTROL = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F]"

#: Expectation types the gate compiles into row predicates (kwargs the compiler understands).
ROW_TYPES: dict[str, tuple[str, ...]] = {
    "expect_column_values_to_not_be_null": ("column",),
    "expect_column_values_to_be_null": ("column",),
    "expect_column_values_to_be_in_set": ("column", "value_set"),
    "expect_column_values_to_not_be_in_set": ("column", "value_set"),
    "expect_column_values_to_be_between": ("column", "min_value", "max_value", "strict_min", "strict_max"),
    "expect_column_values_to_match_regex": ("column", "regex"),
    "expect_column_values_to_not_match_regex": ("column", "regex"),
    "expect_column_value_lengths_to_be_between": ("column", "min_value", "max_value"),
    "expect_column_values_to_be_unique": ("column",),
    "expect_compound_columns_to_be_unique": ("column_list", "ignore_row_if"),
    "expect_column_pair_values_a_to_be_greater_than_b": ("column_A", "column_B", "or_equal", "ignore_row_if"),
    "expect_column_pair_values_to_be_equal": ("column_A", "column_B", "ignore_row_if"),
}
#: Types whose verdict for a row depends on other rows (a sample must keep whole groups together).
GROUP_TYPES = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")
PAIR_TYPES = ("expect_column_pair_values_a_to_be_greater_than_b", "expect_column_pair_values_to_be_equal")
COMMON_KWARGS = ("row_condition", "mostly")
#: Row conditions the gate and both GX engines read the same way (no !=/NOT_IN: pandas keeps nulls there).
CONDITION_OPERATORS = ("==", "<", "<=", ">", ">=", "IN")


class SuiteError(ValueError):
    """A suite file is invalid; the message names the file, the expectation and the problem."""


@dataclass(frozen=True)
class Rule:
    """One expectation, with the id and severity the gate reports."""

    id: str
    type: str
    kwargs: dict[str, Any]
    severity: str
    source: str  # schema | suite
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def blocking(self) -> bool:
        return self.severity == "critical"

    @property
    def columns(self) -> list[str]:
        """Frame columns the rule reads (its condition included)."""
        k = self.kwargs
        cols = list(k.get("column_list") or [])
        cols += [k[n] for n in ("column", "column_A", "column_B") if k.get(n)]
        cols += condition_columns(k.get("row_condition"))
        return list(dict.fromkeys(cols))

    @property
    def target_columns(self) -> list[str]:
        k = self.kwargs
        return list(k.get("column_list") or []) + [k[n] for n in ("column", "column_A", "column_B") if k.get(n)]

    def config(self) -> dict[str, Any]:
        """The Great Expectations expectation configuration (what the suite file holds)."""
        return {"type": self.type, "kwargs": dict(self.kwargs), "severity": self.severity,
                "meta": {**self.meta, "rule": self.id, "source": self.source, "description": self.description}}


@dataclass(frozen=True)
class Derived:
    name: str
    expr: str | None = None
    lookup: str | None = None
    on: dict[str, str] = field(default_factory=dict)
    value: str | None = None

    @property
    def late(self) -> bool:
        """Computed after the other rules (it reads ``_passes_blocking``)."""
        return bool(self.expr and PASSES_BLOCKING in self.expr)

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.expr:
            out["expr"] = self.expr
        if self.lookup:
            out.update({"lookup": self.lookup, "on": dict(self.on)})
            if self.value:
                out["value"] = self.value
        return out


@dataclass(frozen=True)
class Suite:
    """Everything the gate checks for one raw dataset."""

    dataset: Dataset
    rules: tuple[Rule, ...]
    derived: tuple[Derived, ...] = ()
    checks: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    notes: str = ""

    @property
    def name(self) -> str:
        return self.dataset.name

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(f"{self.name}: no rule {rule_id!r}")

    @property
    def lookups(self) -> list[str]:
        """Qualified names of the datasets this suite looks rows up in."""
        return sorted({d.lookup for d in self.derived if d.lookup})

    def late_columns(self) -> set[str]:
        return {d.name for d in self.derived if d.late} | {PASSES_BLOCKING}

    def is_late(self, rule: Rule) -> bool:
        return bool(set(rule.columns) & self.late_columns())

    def gx_config(self) -> dict[str, Any]:
        """The combined suite (baseline + business rules) as Great Expectations reads it."""
        return {"name": self.name, "expectations": [r.config() for r in self.rules],
                "meta": {"dataset": self.dataset.qualified_name,
                         "derived_columns": [d.spec() for d in self.derived],
                         "dataset_checks": self.checks, "notes": self.notes}}


# ---- conditions ------------------------------------------------------------------------------------
def condition_columns(cond: Any) -> list[str]:
    if not cond:
        return []
    if cond.get("type") in ("and", "or"):
        return [c for sub in cond.get("conditions", []) for c in condition_columns(sub)]
    return [cond["column"]["name"]]


def _check_condition(cond: Any, where: str) -> None:
    if not isinstance(cond, dict):
        raise SuiteError(f"{where}: row_condition must be a condition object "
                         "({'type': 'nullity'|'comparison'|'and'|'or', ...}), not {cond!r}")
    kind = cond.get("type")
    if kind in ("and", "or"):
        subs = cond.get("conditions")
        if not subs:
            raise SuiteError(f"{where}: {kind} condition needs conditions")
        for sub in subs:
            _check_condition(sub, where)
    elif kind == "nullity":
        if "is_null" not in cond or not isinstance(cond.get("column"), dict):
            raise SuiteError(f"{where}: nullity condition needs column {{name}} and is_null")
    elif kind == "comparison":
        if cond.get("operator") not in CONDITION_OPERATORS:
            raise SuiteError(f"{where}: condition operator {cond.get('operator')!r} is not one of "
                             f"{CONDITION_OPERATORS} (!= and NOT_IN treat nulls differently in pandas and Spark)")
        if not isinstance(cond.get("column"), dict) or "parameter" not in cond:
            raise SuiteError(f"{where}: comparison condition needs column {{name}}, operator and parameter")
    else:
        raise SuiteError(f"{where}: unknown condition type {kind!r}")


# ---- loading ----------------------------------------------------------------------------------------
def frame_columns(ds: Dataset) -> set[str]:
    """Columns of the gate's validation frame before derived columns are added."""
    cols = {c.name for c in ds.data_columns} | set(ds.partition_by) | {n for n, _, _ in LINEAGE_COLUMNS}
    cols |= {raw_text_column(c.name) for c in ds.data_columns if c.type != "string"}
    return cols


def baseline_rules(ds: Dataset) -> list[Rule]:
    from lakehouse.quality.compile import CompileError, strptime_format

    for c in ds.data_columns:
        for f in c.formats or ():
            try:
                strptime_format(f)
            except CompileError as exc:
                raise SuiteError(f"{ds.path or ds.name}: column {c.name}: {exc}") from None
    configs = ds.baseline_expectations()
    configs += control_character_expectations(ds)
    return [_rule(cfg, "schema", f"{ds.name} (declaration)") for cfg in configs]


def control_character_expectations(ds: Dataset) -> list[dict[str, Any]]:
    """``no_control:<col>``: a key column or a required text column holds no control character (a NUL byte
    in a key would be published as is and match nothing downstream). Critical, so such rows are quarantined."""
    out = []
    for c in ds.data_columns:
        if c.type != "string" or (c.nullable and c.name not in ds.primary_key):
            continue
        key = c.name in ds.primary_key
        out.append({"type": "expect_column_values_to_not_match_regex",
                    "kwargs": {"column": c.name, "regex": KEY_CONTROL if key else TEXT_CONTROL},
                    "severity": "critical",
                    "meta": {"rule": f"no_control:{c.name}", "source": "schema",
                             "description": f"{c.name} holds no control character (NUL, ESC, ..." +
                                            (", tab or line break)" if key else "; tab and line breaks allowed)")}})
    return out


def _rule(cfg: dict[str, Any], source: str, where: str) -> Rule:
    type_ = cfg.get("type")
    if type_ not in ROW_TYPES:
        raise SuiteError(f"{where}: expectation type {type_!r} is not supported by the gate; "
                         f"supported: {', '.join(ROW_TYPES)}")
    kwargs = dict(cfg.get("kwargs") or {})
    meta = dict(cfg.get("meta") or {})
    rule_id = meta.pop("rule", None)
    where = f"{where}: {rule_id or type_}"
    unknown = set(kwargs) - set(ROW_TYPES[type_]) - set(COMMON_KWARGS)
    if unknown:
        raise SuiteError(f"{where}: unsupported argument(s) {sorted(unknown)}")
    if not rule_id:
        raise SuiteError(f"{where}: meta.rule (a short rule id, e.g. 'resolved_after_created') is required")
    if not re.fullmatch(r"[A-Za-z0-9_:+.>-]+", rule_id):
        raise SuiteError(f"{where}: rule id {rule_id!r} may only use letters, digits and _ : + . > -")
    severity = cfg.get("severity", meta.pop("severity", None))
    if severity not in SEVERITIES:
        raise SuiteError(f"{where}: severity must be one of {SEVERITIES} (critical blocks the row)")
    if severity == "critical" and kwargs.get("mostly", 1) != 1:
        raise SuiteError(f"{where}: a critical (row-blocking) rule cannot use mostly; make it a warning")
    if "row_condition" in kwargs:
        _check_condition(kwargs["row_condition"], where)
    if type_ in PAIR_TYPES:
        kwargs.setdefault("ignore_row_if", "either_value_is_missing")
    if type_ == "expect_compound_columns_to_be_unique":
        kwargs.setdefault("ignore_row_if", "all_values_are_missing")
    if type_ in ("expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex"):
        try:
            re.compile(kwargs.get("regex", ""))
        except re.error as exc:
            raise SuiteError(f"{where}: invalid regex: {exc}") from None
        if "(?P<" in kwargs.get("regex", "") or "\\p{" in kwargs.get("regex", ""):
            raise SuiteError(f"{where}: named groups and unicode classes read differently in pandas, DuckDB and "
                             "Spark; use plain groups and character ranges")
    description = meta.pop("description", "")
    meta.pop("source", None)
    return Rule(rule_id, type_, kwargs, severity, source, description, meta)


def _derived(spec: Any, where: str) -> Derived:
    if not isinstance(spec, dict) or not spec.get("name"):
        raise SuiteError(f"{where}: each derived column needs a name")
    name = spec["name"]
    if bool(spec.get("expr")) == bool(spec.get("lookup")):
        raise SuiteError(f"{where}: derived column {name!r} needs exactly one of expr or lookup")
    if spec.get("lookup"):
        on = spec.get("on")
        if not isinstance(on, dict) or not on:
            raise SuiteError(f"{where}: lookup {name!r} needs on: {{frame column: {spec['lookup']} column}}")
        if spec.get("value"):
            check_sql(spec["value"], f"{where}: lookup {name!r} value")
        return Derived(name, lookup=spec["lookup"], on=dict(on), value=spec.get("value"))
    check_sql(spec["expr"], f"{where}: derived column {name!r}")
    return Derived(name, expr=spec["expr"])


def check_sql(expr: str, where: str) -> None:
    """Refuse a derived-column expression that does not parse as Spark SQL, or that sqlglot would transpile
    to something else than it means (``unix_timestamp(ts)`` reads its argument as text in other dialects)."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(expr, read="spark")
    except sqlglot.errors.ParseError as exc:
        raise SuiteError(f"{where}: not a Spark SQL expression ({exc})") from None
    for node in tree.walk():
        if isinstance(node, exp.StrToUnix):
            raise SuiteError(f"{where}: unix_timestamp() parses text; for a timestamp column write "
                             "unix_seconds(column), which every engine reads alike")


def load_suite(ds: Dataset, path: Path | None = None, directory: Path | None = None,
               resolve=schemas.get) -> Suite:
    """Baseline rules of a raw dataset plus its suite file (``expectations/<name>.json``) if any."""
    if ds.zone_root != "raw":
        raise SuiteError(f"{ds.qualified_name}: the quality gate validates raw datasets")
    path = path or (directory or EXPECTATIONS_DIR) / f"{ds.name}.json"
    rules = baseline_rules(ds)
    derived: list[Derived] = []
    checks: dict[str, Any] = {}
    notes = ""
    if path.is_file():
        where = str(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SuiteError(f"{where}: not valid JSON: {exc}") from exc
        if doc.get("name") != ds.name:
            raise SuiteError(f"{where}: suite name {doc.get('name')!r} must be the dataset name {ds.name!r}")
        meta = doc.get("meta") or {}
        notes = meta.get("notes", "")
        checks = dict(meta.get("dataset_checks") or {})
        derived = [_derived(spec, where) for spec in meta.get("derived_columns") or []]
        rules += [_rule(cfg, "suite", where) for cfg in doc.get("expectations") or []]
        _check_references(ds, rules, derived, where, resolve)
    else:
        path = None
    ids = [r.id for r in rules]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise SuiteError(f"{path or ds.name}: rule id(s) used twice: {dupes}")
    return Suite(ds, tuple(rules), tuple(derived), checks, path, notes)


def _check_references(ds: Dataset, rules: list[Rule], derived: list[Derived], where: str, resolve) -> None:
    known = frame_columns(ds)
    for d in derived:
        if d.name in known:
            raise SuiteError(f"{where}: derived column {d.name!r} clashes with a column of the frame")
        if d.lookup:
            try:
                parent = resolve(d.lookup)
            except KeyError as exc:
                raise SuiteError(f"{where}: derived column {d.name!r}: {exc.args[0]}") from None
            parent_cols = {c.name for c in parent.stored_columns()}
            for mine, theirs in d.on.items():
                if mine not in known:
                    raise SuiteError(f"{where}: lookup {d.name!r}: no column {mine!r} in {ds.name}")
                if theirs not in parent_cols:
                    raise SuiteError(f"{where}: lookup {d.name!r}: {d.lookup} has no column {theirs!r}")
        known.add(d.name)
    known.add(PASSES_BLOCKING)
    for r in rules:
        missing = [c for c in r.columns if c not in known]
        if missing:
            raise SuiteError(f"{where}: rule {r.id}: unknown column(s) {missing} "
                             f"(declared columns, _raw_<column> texts, lineage, dt or derived columns)")


def raw_datasets(names: Iterable[str] | None = None, sources: Iterable[str] | None = None) -> list[Dataset]:
    wanted = set(names or ())
    srcs = set(sources or ())
    return [d for d in schemas.datasets("raw")
            if (not wanted or d.name in wanted or d.qualified_name in wanted) and (not srcs or d.source in srcs)]


def load_all(names: Iterable[str] | None = None, sources: Iterable[str] | None = None) -> list[Suite]:
    return [load_suite(d) for d in raw_datasets(names, sources)]


def gate_order(suites: list[Suite]) -> list[Suite]:
    """Parents first: a suite that looks rows up in another gated dataset runs after it.

    Cycles are broken in name order (the later one then sees what was published before this run).
    """
    by_name = {s.dataset.name: s for s in suites}
    ordered: list[Suite] = []
    state: dict[str, int] = {}

    def visit(s: Suite) -> None:
        if state.get(s.name) == 2:
            return
        if state.get(s.name) == 1:
            return  # a cycle: keep going, the parent is already being placed
        state[s.name] = 1
        for q in s.lookups:
            zone, _, name = q.partition(".")
            parent = by_name.get(name)
            if zone == "processed" and parent is not None and parent is not s:
                visit(parent)
        state[s.name] = 2
        ordered.append(s)

    for s in sorted(suites, key=lambda x: x.name):
        visit(s)
    return ordered


def source_dependencies() -> dict[str, list[str]]:
    """For each landing source, the other sources whose processed tables its suites look rows up in.

    When the gate runs one source at a time (one Airflow task per source), a source must run after the
    sources listed here, or its foreign keys are checked against yesterday's parents.
    """
    out: dict[str, set[str]] = {}
    for suite in load_all():
        mine = suite.dataset.source or ""
        out.setdefault(mine, set())
        for q in suite.lookups:
            parent = schemas.catalog().get(f"raw.{q.split('.', 1)[1]}")
            if parent is not None and parent.source != mine:
                out[mine].add(parent.source or "")
    return {k: sorted(v) for k, v in sorted(out.items())}

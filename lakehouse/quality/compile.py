"""From raw text to a tagged frame: typed columns, derived columns and one flag per rule, in Spark.

Each rule of a :class:`~lakehouse.quality.suite.Suite` becomes a boolean column ``_f<i>`` that is true where
the row is *unexpected* under that expectation, with the semantics Great Expectations gives it (nulls are
ignored by value rules, a ``row_condition`` narrows the rows a rule looks at, pair rules skip rows with a
missing value, uniqueness counts the whole frame). :mod:`lakehouse.quality.gx` checks, row by row, that
Great Expectations flags the same rows: the rules have one definition and two readers that agree.

Spark 4 runs with ANSI mode on, so every conversion is a ``try_`` form: a text that does not read as the
declared type becomes null and is caught by the ``type:<column>`` rule (its source text is kept as
``_raw_<column>`` in the frame). Dates and timestamps read ISO 8601 unless the column declares ``formats``
(strptime spellings); decimals refuse a value with more fractional digits than the declared scale rather
than silently round it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING

from lakehouse.quality.suite import GROUP_TYPES, PASSES_BLOCKING, Derived, Rule, Suite
from schemas import LINEAGE_COLUMNS, Column, Dataset, raw_text_column

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame

DUP = "_dup"
QUARANTINED = "_quarantined"
ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
ISO_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
_STRPTIME = {"Y": "yyyy", "y": "yy", "m": "MM", "d": "dd", "H": "HH", "I": "hh", "M": "mm", "S": "ss",
             "f": "SSSSSS", "p": "a", "b": "MMM", "B": "MMMM", "a": "EEE", "A": "EEEE", "j": "DDD",
             "z": "XX", "Z": "zzz", "%": "%"}


class CompileError(ValueError):
    """A rule cannot be turned into a Spark predicate."""


def strptime_to_spark(fmt: str) -> str:
    """``%Y-%m-%d %H:%M:%S`` → ``yyyy-MM-dd HH:mm:ss`` (letters outside directives are quoted)."""
    out, literal, i = [], [], 0

    def flush():
        if literal:
            text = "".join(literal).replace("'", "''")
            out.append(f"'{text}'" if any(ch.isalpha() for ch in text) else text)
            literal.clear()

    while i < len(fmt):
        ch = fmt[i]
        if ch == "%" and i + 1 < len(fmt):
            d = fmt[i + 1]
            if d not in _STRPTIME:
                raise CompileError(f"strptime directive %{d} in {fmt!r} has no Spark equivalent")
            if d == "%":
                literal.append("%")
            else:
                flush()
                out.append(_STRPTIME[d])
            i += 2
        else:
            literal.append(ch)
            i += 1
    flush()
    return "".join(out)


# ---- typing ---------------------------------------------------------------------------------------
def normalized(name: str, null_tokens: tuple[str, ...]) -> SparkColumn:
    """Source text with blanks and the declaration's null tokens turned into null."""
    from pyspark.sql import functions as F

    col = F.col(name)
    blank = F.trim(col) == ""
    if null_tokens:
        blank = blank | F.trim(col).isin([t.strip() for t in null_tokens])
    return F.when(blank, F.lit(None).cast("string")).otherwise(col)


def typed(c: Column, text: SparkColumn) -> SparkColumn:
    """The declared-type value of a source text, or null when it does not read as that type."""
    from pyspark.sql import functions as F

    if c.type == "string":
        return text
    if c.type in ("date", "timestamp"):
        if c.formats:
            if c.type == "date":
                values = [F.try_to_date(text, strptime_to_spark(f)) for f in c.formats]
            else:
                values = [F.try_to_timestamp(text, F.lit(strptime_to_spark(f))) for f in c.formats]
            return F.coalesce(*values) if len(values) > 1 else values[0]
        pattern = ISO_DATE if c.type == "date" else ISO_TIMESTAMP
        return F.when(F.trim(text).rlike(pattern), F.trim(text).try_cast(c.type))
    if c.decimal:
        # plain notation with at most <scale> fractional digits: a value is never silently rounded
        s = c.decimal[1]
        plain = r"^\s*[+-]?\d+\.?\s*$" if s == 0 else rf"^\s*[+-]?(\d+(\.\d{{0,{s}}})?|\.\d{{1,{s}}})\s*$"
        return F.when(text.rlike(plain), text.try_cast(c.type))
    return text.try_cast(c.type)


# ---- rule predicates --------------------------------------------------------------------------------
def condition(cond: dict | None) -> SparkColumn:
    """A row condition (GX ``Condition`` as JSON) as a Spark boolean that is never null."""
    from pyspark.sql import functions as F

    if not cond:
        return F.lit(True)
    kind = cond["type"]
    if kind in ("and", "or"):
        parts = [condition(c) for c in cond["conditions"]]
        return reduce(operator.and_ if kind == "and" else operator.or_, parts)
    col = F.col(cond["column"]["name"])
    if kind == "nullity":
        return col.isNull() if cond["is_null"] else col.isNotNull()
    op, p = cond["operator"], cond["parameter"]
    expr = {"==": lambda: col == p, "<": lambda: col < p, "<=": lambda: col <= p, ">": lambda: col > p,
            ">=": lambda: col >= p, "IN": lambda: col.isin(list(p))}[op]()
    return F.coalesce(expr, F.lit(False))


def _ignored(rule: Rule, cols: list[str]) -> SparkColumn:
    from pyspark.sql import functions as F

    how = rule.kwargs.get("ignore_row_if", "neither")
    nulls = [F.col(c).isNull() for c in cols]
    if how in ("both_values_are_missing", "all_values_are_missing"):
        return reduce(operator.and_, nulls)
    if how in ("either_value_is_missing", "any_value_is_missing"):
        return reduce(operator.or_, nulls)
    return F.lit(False)


def failure(rule: Rule, eligible: SparkColumn) -> SparkColumn:
    """True where ``rule`` finds the row unexpected (``eligible``: rows the frame validates)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    k = rule.kwargs
    applies = eligible & condition(k.get("row_condition"))
    t = rule.type
    if t in GROUP_TYPES:
        cols = list(k["column_list"]) if t == "expect_compound_columns_to_be_unique" else [k["column"]]
        counted = applies & ~(_ignored(rule, cols) if t == "expect_compound_columns_to_be_unique"
                              else F.col(cols[0]).isNull())
        n = F.sum(F.when(counted, 1).otherwise(0)).over(Window.partitionBy(*[F.col(c) for c in cols]))
        return counted & (n > 1)
    if t in ("expect_column_pair_values_a_to_be_greater_than_b", "expect_column_pair_values_to_be_equal"):
        a, b = F.col(k["column_A"]), F.col(k["column_B"])
        if t == "expect_column_pair_values_to_be_equal":
            ok = a == b
        elif k.get("or_equal"):
            ok = a >= b
        else:
            ok = a > b
        return applies & ~_ignored(rule, [k["column_A"], k["column_B"]]) & ~F.coalesce(ok, F.lit(False))
    col = F.col(k["column"])
    if t == "expect_column_values_to_not_be_null":
        return applies & col.isNull()
    if t == "expect_column_values_to_be_null":
        return applies & col.isNotNull()
    present = applies & col.isNotNull()
    if t == "expect_column_values_to_be_in_set":
        return present & ~col.isin(list(k["value_set"]))
    if t == "expect_column_values_to_not_be_in_set":
        return present & col.isin(list(k["value_set"]))
    if t in ("expect_column_values_to_be_between", "expect_column_value_lengths_to_be_between"):
        value = F.length(col) if t == "expect_column_value_lengths_to_be_between" else col
        ok = F.lit(True)
        if k.get("min_value") is not None:
            ok = ok & (value > k["min_value"] if k.get("strict_min") else value >= k["min_value"])
        if k.get("max_value") is not None:
            ok = ok & (value < k["max_value"] if k.get("strict_max") else value <= k["max_value"])
        return present & ~F.coalesce(ok, F.lit(False))
    if t == "expect_column_values_to_match_regex":
        return present & ~col.rlike(k["regex"])
    if t == "expect_column_values_to_not_match_regex":
        return present & col.rlike(k["regex"])
    raise CompileError(f"rule {rule.id}: no Spark predicate for {t}")


# ---- the tagged frame ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Where things are in the tagged frame of one suite."""

    suite: Suite

    def flag(self, i: int) -> str:
        return f"_f{i}"

    @property
    def flags(self) -> dict[str, str]:
        """rule id → flag column."""
        return {r.id: self.flag(i) for i, r in enumerate(self.suite.rules)}

    def text_columns(self) -> list[tuple[str, str]]:
        """(quarantine column, frame column holding its source text)."""
        return [(c.name, c.name if c.type == "string" else raw_text_column(c.name))
                for c in self.suite.dataset.data_columns]

    def dedup_key(self) -> list[str]:
        ds = self.suite.dataset
        return list(ds.primary_key) + [p for p in ds.partition_by if p not in ds.primary_key]


def tagged_frame(raw: DataFrame, suite: Suite, table_of: Callable[[Derived], DataFrame]) -> DataFrame:
    """Typed columns, source texts, derived columns, duplicate flag, one flag per rule and the verdict.

    ``table_of(derived)`` gives the rows a lookup joins (:func:`lookup_table` over the published parent).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ds: Dataset = suite.dataset
    layout = Layout(suite)
    cols = []
    for c in ds.data_columns:
        text = normalized(c.name, ds.null_tokens)
        cols.append(typed(c, text).alias(c.name))
        if c.type != "string":
            cols.append(text.alias(raw_text_column(c.name)))
    cols += [F.col(n) for n, _, _ in LINEAGE_COLUMNS] + [F.col(p) for p in ds.partition_by]
    frame = raw.select(*cols)

    if ds.primary_key:
        w = Window.partitionBy(*[F.col(c) for c in layout.dedup_key()]).orderBy("_row_hash", "_source_file",
                                                                                "_row_number")
        frame = frame.withColumn(DUP, F.coalesce(F.lag("_row_hash").over(w) == F.col("_row_hash"), F.lit(False)))
    else:
        frame = frame.withColumn(DUP, F.lit(False))
    eligible = ~F.col(DUP)

    for d in suite.derived:
        if d.late:
            continue
        frame = _lookup(frame, d, table_of) if d.lookup else frame.withColumn(d.name, F.expr(d.expr))

    early = [(i, r) for i, r in enumerate(suite.rules) if not suite.is_late(r)]
    late = [(i, r) for i, r in enumerate(suite.rules) if suite.is_late(r)]
    frame = frame.select("*", *[failure(r, eligible).alias(layout.flag(i)) for i, r in early])
    blocked_early = [F.col(layout.flag(i)) for i, r in early if r.blocking]
    frame = frame.withColumn(PASSES_BLOCKING, eligible & ~_any(blocked_early))
    if late:
        for d in suite.derived:
            if d.late:
                frame = frame.withColumn(d.name, F.expr(d.expr))
        frame = frame.select("*", *[failure(r, eligible).alias(layout.flag(i)) for i, r in late])

    blocking = [(r.id, F.col(layout.flag(i))) for i, r in enumerate(suite.rules) if r.blocking]
    warning = [(r.id, F.col(layout.flag(i))) for i, r in enumerate(suite.rules) if not r.blocking]
    quarantined = eligible & _any([f for _, f in blocking])
    return frame.select(
        "*",
        quarantined.alias(QUARANTINED),
        _joined(blocking).alias("_rules_broken"),
        F.when(quarantined, F.lit("critical")).alias("_severity"),
        _joined(warning).alias("_rules_warned"),
    )


def _any(flags: list) -> SparkColumn:
    from pyspark.sql import functions as F

    return reduce(operator.or_, flags) if flags else F.lit(False)


def _joined(flags: list[tuple[str, SparkColumn]]) -> SparkColumn:
    """'; '-joined ids of the flags that are set, or null when none is."""
    from pyspark.sql import functions as F

    if not flags:
        return F.lit(None).cast("string")
    text = F.concat_ws("; ", *[F.when(f, F.lit(rule_id)) for rule_id, f in flags])
    return F.when(text != "", text)


FIRST_SEEN = "__first_dt"


def lookup_table(source: DataFrame, d: Derived) -> DataFrame:
    """The rows a lookup joins: one per key of ``source``.

    Without ``value`` the table holds the first export day of each key (``__first_dt``) so that a key counts
    as known only from that day on: a row is checked against the parents published up to its own day, as a
    daily run sees them, whatever window a run covers. With ``value``, the aggregate over all its rows.
    """
    from pyspark.sql import functions as F

    theirs = list(d.on.values())
    if d.value:
        return source.groupBy(*theirs).agg(F.expr(d.value).alias(d.name))
    present = reduce(operator.and_, [F.col(t).isNotNull() for t in theirs])
    first = F.min("dt") if "dt" in source.columns else F.lit("")  # "" sorts before every day
    return source.where(present).groupBy(*theirs).agg(first.alias(FIRST_SEEN))


def _lookup(frame: DataFrame, d: Derived, table_of: Callable[[Derived], DataFrame]) -> DataFrame:
    from pyspark.sql import functions as F

    theirs = list(d.on.values())
    mine = list(d.on.keys())
    keys = [f"__{d.name}_k{i}" for i in range(len(theirs))]
    source = table_of(d)
    carried = d.name if d.value else FIRST_SEEN
    table = source.select(*[F.col(t).alias(k) for t, k in zip(theirs, keys, strict=True)],
                          F.col(carried).alias(f"__{d.name}_v"))
    cond = reduce(operator.and_, [frame[m] == table[k] for m, k in zip(mine, keys, strict=True)])
    joined = frame.join(table, cond, "left").drop(*keys)
    value = F.col(f"__{d.name}_v")
    if not d.value:  # known when the parent was exported on or before the row's own day
        value = F.when(value.isNotNull() & (value <= F.col("dt")), F.lit(True))
    return joined.withColumn(d.name, value).drop(f"__{d.name}_v")


# ---- outputs of the gate ----------------------------------------------------------------------------
def processed_rows(frame: DataFrame, suite: Suite) -> DataFrame:
    from pyspark.sql import functions as F

    ds = suite.dataset
    keep = [c.name for c in ds.data_columns] + [n for n, _, _ in LINEAGE_COLUMNS] + list(ds.partition_by)
    return frame.where(~F.col(DUP) & ~F.col(QUARANTINED)).select(*keep)


def quarantine_rows(frame: DataFrame, suite: Suite) -> DataFrame:
    from pyspark.sql import functions as F

    ds = suite.dataset
    texts = [F.col(src).alias(name) for name, src in Layout(suite).text_columns()]
    rest = ["_rules_broken", "_severity", "_rules_warned"] + [n for n, _, _ in LINEAGE_COLUMNS] + list(ds.partition_by)
    return frame.where(F.col(QUARANTINED)).select(*texts, *rest)

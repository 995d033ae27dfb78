"""From raw text to a tagged frame: typed columns, derived columns and one flag per rule, as Ibis expressions.

Each rule of a :class:`~lakehouse.quality.suite.Suite` becomes a boolean column ``_f<i>`` that is true where
the row is *unexpected* under that expectation, with the semantics Great Expectations gives it: value rules
ignore nulls, a ``row_condition`` narrows the rows a rule looks at, pair rules skip rows with a missing value
(``ignore_row_if``), uniqueness counts over the whole frame. ``tests/quality/test_agreement.py`` shows, row by
row on a frame that exercises every supported rule type, that Great Expectations flags the same rows.

The expressions are backend-neutral Ibis: the same code runs on DuckDB (local) and on Spark (AWS Glue), and
``tests/quality/test_engines.py`` checks that both publish identical rows. Where the two engines' own casts
differ (``TRY_CAST('12.0' AS INT)`` is 12 in DuckDB and null in Spark; ``'1.505'`` rounds to ``1.51`` as a
``decimal(6,2)``), a text is first matched against a pattern, so that a cast only ever sees spellings both
engines read the same way:

* ``int``/``long``: optional sign and digits only (``12.0`` and ``1e3`` do not read);
* ``double``: plain or scientific notation (no ``NaN``/``Infinity``);
* ``decimal(p,s)``: plain notation with at most ``s`` fractional digits, so a value is never silently rounded;
* ``boolean``: ``true/t/yes/y/1`` and ``false/f/no/n/0``, any case (Spark's own spellings);
* ``date``: ``YYYY-MM-DD``; ``timestamp``: ISO 8601 (``2024-03-01 09:00``, ``2024-03-01T09:00:00.5Z``,
  ``+02:00``/``+0200``/``+02`` offsets; a date alone is midnight UTC), unless the column declares ``formats``:
  strptime spellings, read as Python's ``datetime.strptime`` reads them (``%m`` takes ``3`` or ``03``, the
  whole text must match, case does not matter). A format's fields are taken apart by a regex and put back
  together as ISO text before the cast; the directives ``%Y %y %m %d %H %I %M %S %f %p %b %B %z %%`` are
  supported, others are refused when the suite loads. An impossible day (``2024-02-30``) does not read.

A text that does not read becomes null and is caught by the ``type:<column>`` rule; its source text stays in
the frame as ``_raw_<column>``. Blanks (after trimming) and the declaration's ``null_tokens`` are null.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Any

from lakehouse.quality.suite import GROUP_TYPES, PASSES_BLOCKING, Derived, Rule, Suite
from schemas import LINEAGE_COLUMNS, Dataset, raw_text_column

if TYPE_CHECKING:  # pragma: no cover
    import ibis
    import ibis.expr.types as ir

DUP = "_dup"
QUARANTINED = "_quarantined"
FIRST_SEEN = "__first_dt"
LINEAGE = [n for n, _, _ in LINEAGE_COLUMNS]
TRUE_WORDS = ("true", "t", "yes", "y", "1")
FALSE_WORDS = ("false", "f", "no", "n", "0")
INT_TEXT = r"^[+-]?[0-9]+$"
DOUBLE_TEXT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
#: ISO 8601 timestamps: a date, optionally a time (seconds and a fraction of up to 9 digits optional; more
#: than 6 are truncated) and an offset (Z, +HH, +HHMM, +HH:MM). DuckDB's and Spark's casts read every
#: spelling this admits to the same instant (tests/quality/test_engines.py); what it refuses does not read.
ISO_TIMESTAMP = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
                 r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?)?"
                 r"(Z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)?$")
#: ASCII whitespace, spelt so that RE2 (DuckDB) and Java (Spark) read it alike (``\s`` and ``\v`` differ).
WHITESPACE = r"[ \t\n\r\f\x0B]"
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")


class CompileError(ValueError):
    """A rule or a declared format cannot be turned into a portable predicate."""


# ---- strptime formats ------------------------------------------------------------------------------
#: strptime directive -> (regex, field); the regexes are Python's own (``_strptime.TimeRE``), restricted
#: where Python's regex admits a value that ``datetime`` then refuses (second 60 and 61).
_DIRECTIVES: dict[str, tuple[str, str | None]] = {
    "Y": (r"([0-9]{4})", "year"),
    "y": (r"([0-9]{2})", "year2"),
    "m": (r"(1[0-2]|0[1-9]|[1-9])", "month"),
    "d": (r"(3[01]|[12][0-9]|0[1-9]|[1-9]| [1-9])", "day"),
    "H": (r"(2[0-3]|[01][0-9]|[0-9])", "hour"),
    "I": (r"(1[0-2]|0[1-9]|[1-9])", "hour12"),
    "M": (r"([0-5][0-9]|[0-9])", "minute"),
    "S": (r"([0-5][0-9]|[0-9])", "second"),
    "f": (r"([0-9]{1,6})", "fraction"),
    "p": (r"(am|pm)", "ampm"),
    "b": (r"(" + "|".join(m[:3] for m in MONTHS) + ")", "month_name"),
    "B": (r"(" + "|".join(MONTHS) + ")", "month_name"),
    "z": (r"(z|[+-][0-9]{2}:?[0-5][0-9])", "offset"),
}


@dataclass(frozen=True)
class Format:
    """A strptime format as a whole-text regex (case-insensitive) and the field each group holds."""

    spelling: str
    regex: str
    fields: tuple[str, ...]


def strptime_format(fmt: str) -> Format:
    """Translate a strptime spelling into a portable regex (RE2 and Java read it alike).

    Like Python: a run of whitespace in the format matches any run of whitespace, other characters match
    themselves, case is ignored, and the whole text must match."""
    out, fields, i = ["(?i)^"], [], 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%":
            if i + 1 >= len(fmt):
                raise CompileError(f"format {fmt!r} ends with a lone %")
            d = fmt[i + 1]
            if d == "%":
                out.append("%")
            elif d in _DIRECTIVES:
                regex, name = _DIRECTIVES[d]
                out.append(regex)
                fields.append(name)
            else:
                raise CompileError(f"strptime directive %{d} in {fmt!r} is not supported by the gate (supported: "
                                   f"%{' %'.join(_DIRECTIVES)} %%)")
            i += 2
        elif ch.isspace():
            while i < len(fmt) and fmt[i].isspace():
                i += 1
            out.append(WHITESPACE + "+")
        else:
            out.append(re.escape(ch) if not ch.isalnum() else ch)
            i += 1
    out.append("$")
    if len(set(fields) - {"ampm"}) != len([f for f in fields if f != "ampm"]):
        raise CompileError(f"format {fmt!r} names a field twice")
    return Format(fmt, "".join(out), tuple(fields))


# ---- typing ---------------------------------------------------------------------------------------
def strip(text: ir.StringValue) -> ir.StringValue:
    """Text without leading and trailing whitespace. Not Ibis's ``strip()``: on Spark it compiles to
    ``TRIM(' \\t\\n\\r\\v\\f' FROM x)``, whose ``\\v`` and ``\\f`` Spark reads as the letters v and f."""
    return text.re_replace(f"^{WHITESPACE}+|{WHITESPACE}+$", "")


def normalized(text: ir.StringValue, null_tokens: tuple[str, ...]) -> ir.StringValue:
    """Source text with blanks and the declaration's null tokens turned into null (the text kept as is)."""
    import ibis

    stripped = strip(text)
    blank = stripped == ""
    if null_tokens:
        blank = blank | stripped.isin([t.strip() for t in null_tokens])
    return ibis.ifelse(blank, ibis.null("string"), text)


def _pad(value: ir.StringValue, width: int) -> ir.StringValue:
    return value.lpad(width, "0")


def _canonical_timestamp(y, mo, d, h, mi, s, frac, offset) -> ir.StringValue:
    """``YYYY-MM-DD HH:MM:SS.ffffff+HH:MM`` from text parts (empty parts are zero; the offset defaults to UTC)."""
    import ibis

    def part(v, default="00"):
        return ibis.ifelse(v.isnull() | (v == ""), default, _pad(v, 2))

    fraction = ibis.ifelse(frac.isnull() | (frac == ""), "000000", (frac + "000000").substr(0, 6))
    off = offset.upper()
    sign = off.substr(0, 1)
    digits = off.replace(":", "")
    off_text = ibis.ifelse(
        offset.isnull() | (offset == "") | (off == "Z"), "+00:00",
        sign + digits.substr(1, 2) + ":" + ibis.ifelse(digits.length() >= 5, digits.substr(3, 2), "00"))
    return (y + "-" + part(mo) + "-" + part(d) + " " + part(h) + ":" + part(mi) + ":" + part(s) + "." + fraction
            + off_text)


def _from_format(groups: dict[str, ir.StringValue], matches: ir.BooleanValue, kind: str) -> ir.Value:
    """The value of a text whose strptime groups are ``groups`` (``kind``: date or timestamp), or null."""
    import ibis
    import ibis.expr.datatypes as dt

    if "year" in groups:
        year = groups["year"]
    elif "year2" in groups:  # Python: 69-99 are 1969-1999, 00-68 are 2000-2068
        y2 = groups["year2"]
        year = ibis.ifelse(y2 >= "69", "19" + y2, "20" + y2)
    else:
        year = ibis.literal("1900")
    if "month" in groups:
        month = groups["month"]
    elif "month_name" in groups:
        name = groups["month_name"]
        month = ibis.cases(*[(name.startswith(m[:3]), str(i + 1)) for i, m in enumerate(MONTHS)], else_="")
    else:
        month = ibis.literal("1")
    day = strip(groups["day"]) if "day" in groups else ibis.literal("1")
    if "hour" in groups:
        hour = groups["hour"]
    elif "hour12" in groups:  # Python: no %p reads as AM; 12 AM is midnight, 12 PM noon
        h12 = groups["hour12"].try_cast(dt.int32) % 12
        pm = groups["ampm"] == "pm" if "ampm" in groups else ibis.literal(False)
        hour = (h12 + ibis.ifelse(pm, 12, 0)).cast(dt.string)
    else:
        hour = ibis.literal("0")
    minute = groups.get("minute", ibis.literal("0"))
    second = groups.get("second", ibis.literal("0"))
    fraction = groups.get("fraction", ibis.literal(""))
    offset = groups.get("offset", ibis.literal(""))
    if kind == "date":
        canonical = year + "-" + _pad(month, 2) + "-" + _pad(day, 2)
        return ibis.ifelse(matches, canonical, ibis.null("string")).try_cast(dt.date)
    canonical = _canonical_timestamp(year, month, day, hour, minute, second, fraction, offset)
    return ibis.ifelse(matches, canonical, ibis.null("string")).try_cast(dt.Timestamp(timezone="UTC"))


_BARRIERS = iter(range(1, 1 << 62))


def barrier(t: ibis.Table) -> ibis.Table:
    """Name a step of the frame (a CTE), so that the next step refers to its columns instead of inlining
    their expressions: without it a typed timestamp's expression is repeated in every rule that reads it,
    and the SQL of a wide dataset grows to hundreds of kB (seconds to compile, seconds to plan)."""
    return t.alias(f"_step{next(_BARRIERS)}")


def typed_frame(raw: ibis.Table, ds: Dataset) -> ibis.Table:
    """Typed columns, the source text of each typed column (``_raw_<name>``), lineage, partition, and the
    exact-duplicate flag ``_dup`` (same key and same ``_row_hash`` in a day; the first by file and row is
    kept). Computed in steps: normalized texts, their parts (regex groups), typed values."""
    import ibis
    import ibis.expr.datatypes as dt

    cols = ds.data_columns
    keep = [*LINEAGE, *ds.partition_by]
    step = barrier(raw.select(*keep, **{f"_n{j}": normalized(raw[c.name], ds.null_tokens)
                                       for j, c in enumerate(cols)}))
    step = barrier(step.mutate(**{f"_s{j}": strip(step[f"_n{j}"]) for j, c in enumerate(cols)
                                  if c.type != "string"}))
    parts: dict[str, Any] = {}
    formats: dict[int, list[tuple[Format, list[str]]]] = {}
    for j, c in enumerate(cols):
        text = step[f"_s{j}"] if c.type != "string" else None
        if c.type in ("date", "timestamp") and c.formats:
            formats[j] = []
            for k, spelling in enumerate(c.formats):
                fmt = strptime_format(spelling)
                names = [f"_g{j}_{k}_{i}" for i in range(len(fmt.fields))]
                parts[f"_m{j}_{k}"] = text.re_search(fmt.regex)
                parts.update({n: text.re_extract(fmt.regex, i + 1).lower() for i, n in enumerate(names)})
                formats[j].append((fmt, names))
    if parts:
        step = barrier(step.mutate(**parts))

    out: dict[str, Any] = {}
    for j, c in enumerate(cols):
        text = step[f"_n{j}"]
        if c.type == "string":
            out[c.name] = text
            continue
        t = step[f"_s{j}"]
        if j in formats:
            values = [_from_format({f: step[n] for f, n in zip(fmt.fields, names, strict=True)},
                                   step[f"_m{j}_{k}"], c.type) for k, (fmt, names) in enumerate(formats[j])]
            value = ibis.coalesce(*values) if len(values) > 1 else values[0]
        elif c.type == "timestamp":  # DuckDB and Spark read every spelling the pattern admits alike
            value = ibis.ifelse(t.re_search(ISO_TIMESTAMP), t, ibis.null("string")).try_cast(
                dt.Timestamp(timezone="UTC"))
        elif c.type == "date":
            value = ibis.ifelse(t.re_search(ISO_DATE), t, ibis.null("string")).try_cast(dt.date)
        elif c.type == "boolean":
            word = t.lower()
            value = ibis.cases((word.isin(TRUE_WORDS), True), (word.isin(FALSE_WORDS), False),
                               else_=ibis.null("boolean"))
        elif c.decimal:
            s = c.decimal[1]
            plain = r"^[+-]?[0-9]+\.?$" if s == 0 else rf"^[+-]?([0-9]+(\.[0-9]{{0,{s}}})?|\.[0-9]{{1,{s}}})$"
            value = ibis.ifelse(t.re_search(plain), t, ibis.null("string")).try_cast(dt.Decimal(*c.decimal))
        else:
            target = {"int": dt.int32, "long": dt.int64, "double": dt.float64}[c.type]
            pattern = DOUBLE_TEXT if c.type == "double" else INT_TEXT
            value = ibis.ifelse(t.re_search(pattern), t, ibis.null("string")).try_cast(target)
        out[c.name] = value
        out[raw_text_column(c.name)] = text
    frame = barrier(step.select(**out, **{n: step[n] for n in keep}))
    if ds.primary_key:
        key = list(ds.primary_key) + [p for p in ds.partition_by if p not in ds.primary_key]
        w = ibis.window(group_by=[frame[c] for c in key],
                        order_by=[frame._row_hash, frame._source_file, frame._row_number])
        return barrier(frame.mutate(**{DUP: (frame._row_hash.lag().over(w) == frame._row_hash).fill_null(False)}))
    return barrier(frame.mutate(**{DUP: ibis.literal(False)}))


# ---- rule predicates --------------------------------------------------------------------------------
def condition(t: ibis.Table, cond: dict | None) -> ir.BooleanValue:
    """A row condition (GX ``Condition`` as JSON) as a boolean that is never null."""
    import ibis

    if not cond:
        return ibis.literal(True)
    kind = cond["type"]
    if kind in ("and", "or"):
        parts = [condition(t, c) for c in cond["conditions"]]
        return reduce(operator.and_ if kind == "and" else operator.or_, parts)
    col = t[cond["column"]["name"]]
    if kind == "nullity":
        return col.isnull() if cond["is_null"] else col.notnull()
    op, p = cond["operator"], cond["parameter"]
    expr = {"==": lambda: col == p, "<": lambda: col < p, "<=": lambda: col <= p, ">": lambda: col > p,
            ">=": lambda: col >= p, "IN": lambda: col.isin(list(p))}[op]()
    return expr.fill_null(False)


def _ignored(t: ibis.Table, rule: Rule, cols: list[str]) -> ir.BooleanValue:
    import ibis

    how = rule.kwargs.get("ignore_row_if", "neither")
    nulls = [t[c].isnull() for c in cols]
    if how in ("both_values_are_missing", "all_values_are_missing"):
        return reduce(operator.and_, nulls)
    if how in ("either_value_is_missing", "any_value_is_missing"):
        return reduce(operator.or_, nulls)
    return ibis.literal(False)


def failure(t: ibis.Table, rule: Rule, eligible: ir.BooleanValue) -> ir.BooleanValue:
    """True where ``rule`` finds the row unexpected (``eligible``: rows the frame validates); never null."""
    import ibis

    k = rule.kwargs
    applies = eligible & condition(t, k.get("row_condition"))
    kind = rule.type
    if kind in GROUP_TYPES:
        cols = list(k["column_list"]) if kind == "expect_compound_columns_to_be_unique" else [k["column"]]
        counted = applies & ~(_ignored(t, rule, cols) if kind == "expect_compound_columns_to_be_unique"
                              else t[cols[0]].isnull())
        n = ibis.ifelse(counted, 1, 0).sum().over(ibis.window(group_by=[t[c] for c in cols]))
        return counted & (n > 1)
    if kind in ("expect_column_pair_values_a_to_be_greater_than_b", "expect_column_pair_values_to_be_equal"):
        a, b = t[k["column_A"]], t[k["column_B"]]
        if kind == "expect_column_pair_values_to_be_equal":
            ok = a == b
        elif k.get("or_equal"):
            ok = a >= b
        else:
            ok = a > b
        return applies & ~_ignored(t, rule, [k["column_A"], k["column_B"]]) & ~ok.fill_null(False)
    col = t[k["column"]]
    if kind == "expect_column_values_to_not_be_null":
        return applies & col.isnull()
    if kind == "expect_column_values_to_be_null":
        return applies & col.notnull()
    present = applies & col.notnull()
    if kind == "expect_column_values_to_be_in_set":
        return present & ~col.isin(list(k["value_set"])).fill_null(False)
    if kind == "expect_column_values_to_not_be_in_set":
        return present & col.isin(list(k["value_set"])).fill_null(False)
    if kind in ("expect_column_values_to_be_between", "expect_column_value_lengths_to_be_between"):
        value = col.length() if kind == "expect_column_value_lengths_to_be_between" else col
        ok = ibis.literal(True)
        if k.get("min_value") is not None:
            ok = ok & (value > k["min_value"] if k.get("strict_min") else value >= k["min_value"])
        if k.get("max_value") is not None:
            ok = ok & (value < k["max_value"] if k.get("strict_max") else value <= k["max_value"])
        return present & ~ok.fill_null(False)
    if kind == "expect_column_values_to_match_regex":
        return present & ~col.re_search(k["regex"]).fill_null(False)
    if kind == "expect_column_values_to_not_match_regex":
        return present & col.re_search(k["regex"]).fill_null(False)
    raise CompileError(f"rule {rule.id}: no predicate for {kind}")


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


def with_expr(frame: ibis.Table, name: str, expr: str, dialect: str = "spark") -> ibis.Table:
    """Add a column computed by a SQL expression written in ``dialect`` (the suites use Spark SQL; the
    engine transpiles it with sqlglot)."""
    alias = f"_frame_{abs(hash((name, expr))) % 10**8}"
    return frame.alias(alias).sql(f"SELECT *, ({expr}) AS `{name}` FROM `{alias}`", dialect=dialect)


def tagged_frame(raw: ibis.Table, suite: Suite, table_of: Callable[[Derived], ibis.Table]) -> ibis.Table:
    """Typed columns, source texts, derived columns, duplicate flag, one flag per rule and the verdict.

    ``table_of(derived)`` gives the rows a lookup joins (:func:`lookup_table` over the published parent)."""
    import ibis

    layout = Layout(suite)
    frame = typed_frame(raw, suite.dataset)
    for d in suite.derived:
        if d.late:
            continue
        frame = _lookup(frame, d, table_of(d)) if d.lookup else with_expr(frame, d.name, d.expr)
    frame = barrier(frame)

    early = [(i, r) for i, r in enumerate(suite.rules) if not suite.is_late(r)]
    late = [(i, r) for i, r in enumerate(suite.rules) if suite.is_late(r)]
    frame = barrier(frame.mutate(**{layout.flag(i): failure(frame, r, ~frame[DUP]) for i, r in early}))
    blocked_early = [frame[layout.flag(i)] for i, r in early if r.blocking]
    frame = barrier(frame.mutate(**{PASSES_BLOCKING: ~frame[DUP] & ~_any(blocked_early)}))
    if late:
        for d in suite.derived:
            if d.late:
                frame = with_expr(frame, d.name, d.expr)
        frame = barrier(frame)
        frame = barrier(frame.mutate(**{layout.flag(i): failure(frame, r, ~frame[DUP]) for i, r in late}))

    blocking = [(r.id, frame[layout.flag(i)]) for i, r in enumerate(suite.rules) if r.blocking]
    warning = [(r.id, frame[layout.flag(i)]) for i, r in enumerate(suite.rules) if not r.blocking]
    quarantined = ~frame[DUP] & _any([f for _, f in blocking])
    return frame.mutate(**{
        QUARANTINED: quarantined,
        "_rules_broken": _joined(blocking),
        "_severity": ibis.ifelse(quarantined, "critical", ibis.null("string")),
        "_rules_warned": _joined(warning),
    })


def _any(flags: list) -> ir.BooleanValue:
    import ibis

    return reduce(operator.or_, flags) if flags else ibis.literal(False)


def _joined(flags: list[tuple[str, ir.BooleanValue]]) -> ir.StringValue:
    """'; '-joined ids of the flags that are set, or null when none is."""
    import ibis

    if not flags:
        return ibis.null("string")
    text = ibis.literal("; ").join([ibis.ifelse(f, rule_id, ibis.null("string")) for rule_id, f in flags])
    return text.nullif("")


def lookup_table(source: ibis.Table, d: Derived) -> ibis.Table:
    """The rows a lookup joins: one per key of ``source``.

    Without ``value`` the table holds the first export day of each key (``__first_dt``) so that a key counts
    as known only from that day on: a row is checked against the parents published up to its own day, as a
    daily run sees them, whatever window a run covers. With ``value``, the aggregate (a SQL aggregate in
    Spark SQL, e.g. ``min(invoice_date)``) over all its rows."""
    import ibis

    theirs = list(d.on.values())
    if d.value:
        alias = f"_lookup_{abs(hash((d.name, d.value))) % 10**8}"
        keys = ", ".join(f"`{k}`" for k in theirs)
        return source.alias(alias).sql(f"SELECT {keys}, {d.value} AS `{d.name}` FROM `{alias}` GROUP BY {keys}",
                                       dialect="spark")
    present = reduce(operator.and_, [source[t].notnull() for t in theirs])
    known = source.filter(present).group_by(theirs)
    if "dt" in source.columns:
        return known.aggregate(**{FIRST_SEEN: source.dt.min()})
    return known.aggregate(_n=source.count()).mutate(**{FIRST_SEEN: ibis.literal("")}).drop("_n")


def _lookup(frame: ibis.Table, d: Derived, table: ibis.Table) -> ibis.Table:
    import ibis

    theirs, mine = list(d.on.values()), list(d.on.keys())
    keys = [f"__{d.name}_k{i}" for i in range(len(theirs))]
    carried = d.name if d.value else FIRST_SEEN
    value_col = f"__{d.name}_v"
    right = table.select(**{k: table[t] for t, k in zip(theirs, keys, strict=True)}, **{value_col: table[carried]})
    joined = frame.left_join(right, [frame[m] == right[k] for m, k in zip(mine, keys, strict=True)])
    joined = joined.select(*frame.columns, value_col)
    value = joined[value_col]
    if not d.value:  # known when the parent was exported on or before the row's own day
        value = ibis.ifelse(value.notnull() & (value <= joined.dt), True, ibis.null("boolean"))
    return joined.mutate(**{d.name: value}).drop(value_col)


# ---- outputs of the gate ----------------------------------------------------------------------------
def processed_columns(suite: Suite) -> list[str]:
    ds = suite.dataset
    return [c.name for c in ds.data_columns] + LINEAGE + list(ds.partition_by)


def quarantine_selection(frame: ibis.Table, suite: Suite) -> dict[str, Any]:
    """Quarantine columns (source texts, verdict, lineage, partition) as frame expressions."""
    ds = suite.dataset
    out: dict[str, Any] = {name: frame[src] for name, src in Layout(suite).text_columns()}
    for n in ["_rules_broken", "_severity", "_rules_warned", *LINEAGE, *ds.partition_by]:
        out[n] = frame[n]
    return out

"""The SQL subset models may use, and the transpiler that carries it from DuckDB to Spark.

sqlglot translates some DuckDB SQL into *different* Spark SQL without any warning. Measured here
(sqlglot 30, Spark 4): ``dayname``/``monthname`` give ``Thursday`` on DuckDB and ``Thu`` on Spark;
``dayofweek`` counts from 0 on DuckDB and from 1 on Spark, and ``isodow`` came out as ``dow % 7 + 1``;
``regexp_replace`` without the ``'g'`` flag replaces the first match on DuckDB and every match on Spark
(the flag is dropped); POSIX classes such as ``[[:space:]]`` match nothing on Spark; ``strptime``
formats turn into patterns Spark refuses; ``GROUP BY ALL`` and ``ORDER BY`` inside list aggregates are
known to come out wrong. So a model may use only the constructs below, each of which
``tests/transform/test_subset_golden.py`` runs on both engines and compares row by row. Anything else
is refused when the model is loaded, with the reason, before any engine sees it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, UnsupportedError

from headwater.errors import SchemaError

#: sqlglot function classes proven on DuckDB and Spark by the golden tests
ALLOWED_FUNCTIONS = frozenset(
    {
        # text
        "Trim",
        "Lower",
        "Upper",
        "Length",
        "Substring",
        "Replace",
        "RegexpReplace",
        "RegexpExtract",
        "Contains",
        "StartsWith",
        "EndsWith",
        "Chr",
        # logic, conditionals and casts
        "And",
        "Or",
        "Case",
        "If",
        "Coalesce",
        "Nullif",
        "Greatest",
        "Least",
        "Cast",
        "TryCast",
        # numbers
        "Round",
        "Abs",
        # dates
        "Year",
        "Month",
        "Day",
        "Quarter",
        "DateDiff",
        # aggregates and windows
        "Count",
        "Sum",
        "Avg",
        "Min",
        "Max",
        "RowNumber",
        # subqueries
        "Exists",
        # a delimited list column turned into rows: only unnest(string_split(col, 'x'))
        "Explode",
        "Split",
    }
)

#: types a model may cast to (DuckDB names); each maps 1:1 onto a Spark and a Parquet type
ALLOWED_CASTS = frozenset(
    {
        exp.DataType.Type.BIGINT,
        exp.DataType.Type.INT,
        exp.DataType.Type.DOUBLE,
        exp.DataType.Type.VARCHAR,
        exp.DataType.Type.TEXT,
        exp.DataType.Type.BOOLEAN,
        exp.DataType.Type.DATE,
        exp.DataType.Type.TIMESTAMP,
        exp.DataType.Type.TIMESTAMPNTZ,
    }
)

#: functions whose integer result type differs between the engines (DuckDB: BIGINT or HUGEINT, which its
#: Parquet writer turns into DOUBLE; Spark: INT or BIGINT): a projected value must pass through a CAST
NEEDS_CAST = frozenset({"Sum", "Length", "Year", "Month", "Day", "Quarter", "DateDiff"})

ALLOWED_INTERVAL_UNITS = frozenset({"SECOND", "MINUTE", "HOUR", "DAY"})
ALLOWED_DATE_DIFF_UNITS = frozenset({"DAY"})

_HINTS = {
    "DayOfWeek": "dayofweek counts from 0 on DuckDB and 1 on Spark; use date_diff('day', DATE '1970-01-05', d)",
    "DayOfWeekIso": "isodow is mistranslated; use date_diff('day', DATE '1970-01-05', d) % 7 + 1",
    "Dayname": "dayname differs (Thursday vs Thu); map the day number with CASE",
    "Monthname": "monthname differs (January vs Jan); map month() with CASE",
    "StrToTime": "strptime formats do not carry over to Spark; cut the text with substr and CAST it",
    "TimeToStr": "strftime formats are fragile across engines; use year()/month()/day() arithmetic",
    "ArrayAgg": "list aggregates are mistranslated (ORDER BY dropped)",
    "GroupConcat": "string_agg order is not kept on Spark",
}


def _fail(where: str, node: Any, why: str) -> SchemaError:
    text = node.sql(dialect="duckdb")
    if len(text) > 80:
        text = text[:77] + "..."
    return SchemaError(f"{where}: {text!r} is outside the tested SQL subset: {why}")


def _literal(node: Any) -> str | None:
    return str(node.this) if isinstance(node, exp.Literal) and node.is_string else None


def check_subset(sql: str, where: str = "<sql>") -> None:
    """Refuse SQL outside the subset that gives identical rows on DuckDB and Spark (see module doc)."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except ParseError as exc:
        raise SchemaError(f"{where}: not valid DuckDB SQL: {str(exc).splitlines()[0]}") from exc
    if not isinstance(tree, exp.Query):
        raise SchemaError(f"{where}: a model is one SELECT query, got {type(tree).__name__.upper()}")
    for node in tree.walk():
        if isinstance(node, exp.Anonymous):
            raise _fail(where, node, f"function {node.name}() is unknown to the transpiler")
        if isinstance(node, exp.Func):
            name = type(node).__name__
            if name not in ALLOWED_FUNCTIONS:
                raise _fail(where, node, _HINTS.get(name, f"{name} is not proven on both engines"))
        if isinstance(node, exp.Group) and node.args.get("all"):
            raise _fail(where, node, "GROUP BY ALL is mistranslated; list the columns")
        if isinstance(node, exp.Order) and node.find_ancestor(exp.AggFunc) is not None:
            raise _fail(where, node, "ORDER BY inside an aggregate is dropped on Spark")
        if isinstance(node, exp.Star) and any(
            node.args.get(k) for k in ("except_", "except", "replace", "rename")
        ):
            raise _fail(where, node, "SELECT * EXCLUDE/REPLACE has no Spark form; list the columns")
        if isinstance(node, exp.Window) and not isinstance(node.this, exp.RowNumber):
            raise _fail(where, node, "only row_number() is proven as a window function")
        _check_node(where, node)
        if type(node).__name__ in NEEDS_CAST and not _cast_before_output(node):
            raise _fail(
                where,
                node,
                f"{type(node).__name__.lower()}() returns BIGINT/HUGEINT on DuckDB and INT/BIGINT on Spark; "
                "CAST the column to INTEGER, BIGINT or DOUBLE",
            )


def _cast_before_output(node: Any) -> bool:
    """True unless ``node`` flows into a SELECT column without passing a CAST (values used only in
    WHERE, JOIN, GROUP BY or ORDER BY never reach an output, so their width does not matter)."""
    parent = node.parent
    while parent is not None:
        if isinstance(parent, exp.Cast | exp.TryCast):
            return True
        if isinstance(parent, exp.Select):
            return node_in_projection(parent, node) is False
        if isinstance(parent, exp.Where | exp.Join | exp.Group | exp.Order | exp.Having | exp.Window):
            return True
        parent = parent.parent
    return True


def node_in_projection(select: Any, node: Any) -> bool:
    """True when ``node`` sits inside one of ``select``'s output columns."""
    return any(node is e or any(node is d for d in e.walk()) for e in select.expressions)


def _check_node(where: str, node: Any) -> None:
    if isinstance(node, exp.RegexpReplace):
        if _literal(node.args.get("modifiers")) != "g":
            raise _fail(
                where,
                node,
                "regexp_replace needs the 'g' flag (DuckDB replaces only the first match without it)",
            )
        _check_pattern(where, node, node.args.get("expression"))
    elif isinstance(node, exp.RegexpExtract):
        _check_pattern(where, node, node.args.get("expression"))
    elif isinstance(node, exp.Cast | exp.TryCast):
        to = node.args.get("to")
        if not isinstance(to, exp.DataType) or to.this not in ALLOWED_CASTS or to.expressions:
            raise _fail(where, node, "cast to BIGINT, INTEGER, DOUBLE, VARCHAR, BOOLEAN, DATE or TIMESTAMP")
    elif isinstance(node, exp.Interval):
        unit = node.args.get("unit")
        unit_name = unit.name.upper() if unit is not None else ""
        one = isinstance(node.this, exp.Literal) and str(node.this.this).strip() == "1"
        if unit_name not in ALLOWED_INTERVAL_UNITS or not one:
            raise _fail(where, node, "write intervals as n * INTERVAL 1 MINUTE (or SECOND, HOUR, DAY)")
    elif isinstance(node, exp.DateDiff):
        unit = node.args.get("unit")
        if unit is None or unit.name.upper() not in ALLOWED_DATE_DIFF_UNITS:
            raise _fail(where, node, "date_diff is proven for 'day' only")
    elif isinstance(node, exp.Explode):
        split = node.this
        if not isinstance(split, exp.Split) or _literal(split.expression) is None:
            raise _fail(where, node, "only unnest(string_split(column, 'delimiter')) is proven")
        if not isinstance(node.parent, exp.Alias) or not isinstance(node.parent.parent, exp.Select):
            raise _fail(where, node, "unnest(...) must be a named column of a SELECT list")
    elif isinstance(node, exp.Split) and not isinstance(node.parent, exp.Explode):
        raise _fail(where, node, "string_split is proven only inside unnest(...)")
    elif isinstance(node, exp.Round) and node.args.get("decimals") is None:
        raise _fail(where, node, "give round() its number of decimals")


def _check_pattern(where: str, node: Any, pattern: Any) -> None:
    text = _literal(pattern)
    if text is None:
        raise _fail(where, node, "the regular expression must be a string literal")
    if "[[:" in text or re.search(r"\\[pP]\{", text):
        raise _fail(where, node, "POSIX and Unicode classes differ between RE2 and Java; use \\s, \\d, [a-z]")


def transpile(sql: str, to: Literal["spark", "duckdb"] = "spark", where: str = "<sql>") -> str:
    """``sql`` (DuckDB dialect, inside the subset) as ``to``'s dialect; raises instead of guessing."""
    check_subset(sql, where)
    if to == "duckdb":
        return sql
    try:
        out = sqlglot.transpile(
            sql, read="duckdb", write=to, unsupported_level=ErrorLevel.RAISE, error_level=ErrorLevel.RAISE
        )
    except (UnsupportedError, SqlglotError) as exc:
        raise SchemaError(f"{where}: cannot transpile to {to}: {str(exc).splitlines()[0]}") from exc
    if len(out) != 1:
        raise SchemaError(f"{where}: expected one statement, transpiled into {len(out)}")
    return out[0]

"""Turn a parsed filter into a WHERE clause with ``?`` parameters, checked against the catalog's fields.

Field names become quoted identifiers only after they were found among the catalog's own columns; JSON keys
and every value travel as bound parameters. Types are checked here, so ``fatigue_level = 'high'`` is an error
at its position, not an empty result.
"""

from __future__ import annotations

import datetime as dt
import difflib
from typing import Any

from headwater.sessions.backends import Backend
from headwater.sessions.filter import And, Compare, Expr, FilterError, InList, IsNull, Literal, Not, Or
from headwater.sessions.model import SessionStatus

NUMERIC = ("int", "float")


def compile_filter(expr: Expr, fields: dict[str, str], backend: Backend, text: str) -> tuple[str, list[Any]]:
    """(SQL condition, parameters) for ``expr``; FilterError naming the position of the first problem."""
    return _Compiler(fields, backend, text).node(expr)


class _Compiler:
    def __init__(self, fields: dict[str, str], backend: Backend, text: str) -> None:
        self.fields = fields
        self.backend = backend
        self.text = text

    def fail(self, pos: int, message: str) -> FilterError:
        return FilterError(self.text, pos, message)

    def node(self, expr: Expr) -> tuple[str, list[Any]]:
        if isinstance(expr, And | Or):
            left, lp = self.node(expr.left)
            right, rp = self.node(expr.right)
            word = "AND" if isinstance(expr, And) else "OR"
            return f"({left} {word} {right})", lp + rp
        if isinstance(expr, Not):
            inner, params = self.node(expr.inner)
            return f"(NOT {inner})", params
        kind = self.kind(expr.field, expr.pos)
        if isinstance(expr, IsNull):
            return self.is_null(expr, kind)
        if isinstance(expr, InList):
            return self.in_list(expr, kind)
        return self.compare(expr, kind)

    def kind(self, field: str, pos: int) -> str:
        if field in self.fields:
            return self.fields[field]
        close = difflib.get_close_matches(field, list(self.fields), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        known = ", ".join(sorted(self.fields))
        raise self.fail(pos, f"unknown field {field!r}{hint} (known: {known})")

    def column(self, field: str) -> str:
        return f'"{field}"'  # a name taken from the catalog's own columns, never from the user alone

    def json_column(self, field: str, group: str) -> tuple[str, list[Any]]:
        sql, n = self.backend.json_expr(group)
        return sql, [self.backend.json_path(field)] * n

    def is_null(self, expr: IsNull, kind: str) -> tuple[str, list[Any]]:
        if kind == "json":
            sql, n = self.backend.json_missing_expr()
            params = [self.backend.json_path(expr.field)] * n
            return (f"(NOT {sql})" if expr.negated else sql), params
        return f"({self.column(expr.field)} IS {'NOT ' if expr.negated else ''}NULL)", []

    def compare(self, expr: Compare, kind: str) -> tuple[str, list[Any]]:
        op = "<>" if expr.op == "!=" else expr.op
        if kind == "json":
            group, value = self.json_value(expr.field, expr.value)
            if group == "bool" and op not in ("=", "<>"):
                raise self.fail(
                    expr.value.pos, f"true/false can only be compared with = or !=, not {expr.op}"
                )
            sql, params = self.json_column(expr.field, group)
            return f"({sql} {op} ?)", [*params, value]
        if kind == "bool" and op not in ("=", "<>"):
            raise self.fail(expr.pos, f"{expr.field} is true/false: compare it with = or !=, not {expr.op}")
        value = self.typed_value(expr.field, kind, expr.value)
        return f"({self.column(expr.field)} {op} ?)", [value]

    def in_list(self, expr: InList, kind: str) -> tuple[str, list[Any]]:
        word = "NOT IN" if expr.negated else "IN"
        marks = ", ".join("?" for _ in expr.values)
        if kind == "json":
            pairs = [self.json_value(expr.field, v) for v in expr.values]
            groups = {g for g, _ in pairs}
            if len(groups) > 1:
                raise self.fail(expr.values[0].pos, f"mix of value types in 'in (...)' for {expr.field}")
            sql, params = self.json_column(expr.field, groups.pop())
            return f"({sql} {word} ({marks}))", [*params, *(v for _, v in pairs)]
        values = [self.typed_value(expr.field, kind, v) for v in expr.values]
        return f"({self.column(expr.field)} {word} ({marks}))", values

    def json_value(self, field: str, lit: Literal) -> tuple[str, Any]:
        """(JSON type group, bound value) for a literal compared with a JSON field."""
        if lit.kind == "number":
            return "number", lit.value
        if lit.kind == "bool":
            return "bool", self.backend.to_db(lit.value, "bool")
        if lit.kind in ("date", "timestamp"):
            assert isinstance(lit.value, dt.date)
            return "string", lit.value.isoformat()
        return "string", lit.value

    def typed_value(self, field: str, kind: str, lit: Literal) -> Any:
        value = lit.value
        if kind in NUMERIC:
            if lit.kind != "number":
                raise self.fail(lit.pos, f"{field} is a number ({kind}); got {self.describe(lit)}")
            return value
        if kind == "str":
            if lit.kind != "string":
                raise self.fail(lit.pos, f"{field} is text: quote the value, e.g. '{value}'")
            if field == "status" and value not in {s.value for s in SessionStatus}:
                states = ", ".join(s.value for s in SessionStatus)
                raise self.fail(lit.pos, f"status {value!r} does not exist; one of {states}")
            return value
        if kind == "bool":
            if lit.kind != "bool":
                raise self.fail(lit.pos, f"{field} is true/false; got {self.describe(lit)}")
            return self.backend.to_db(value, "bool")
        if kind in ("timestamp", "date"):
            when = self.when(field, kind, lit)
            return self.backend.to_db(when, kind)
        raise self.fail(lit.pos, f"{field}: unsupported column type {kind}")  # pragma: no cover

    def when(self, field: str, kind: str, lit: Literal) -> dt.date:
        value = lit.value
        if lit.kind == "string":
            try:
                value = dt.datetime.fromisoformat(str(value))
            except ValueError:
                raise self.fail(
                    lit.pos, f"{field} is a {kind}; {value!r} is not YYYY-MM-DD[THH:MM:SS]"
                ) from None
            if kind == "date":
                if value.time() != dt.time():
                    raise self.fail(lit.pos, f"{field} is a date; drop the time of day")
                return value.date()
            return value
        if lit.kind == "date":
            assert isinstance(value, dt.date)
            return value
        if lit.kind == "timestamp":
            assert isinstance(value, dt.datetime)
            if kind == "date":
                raise self.fail(lit.pos, f"{field} is a date; compare it with a date such as 2021-02-01")
            return value
        raise self.fail(lit.pos, f"{field} is a {kind}; got {self.describe(lit)}, expected e.g. 2021-02-01")

    @staticmethod
    def describe(lit: Literal) -> str:
        return {
            "number": f"the number {lit.value}",
            "string": f"the text {lit.value!r}",
            "bool": "true" if lit.value else "false",
            "date": f"the date {lit.value}",
            "timestamp": f"the time {lit.value}",
        }[lit.kind]

"""The session filter language: a tiny, safe grammar parsed here, never SQL text from the user.

    fatigue_level >= 3 and hardware_model = 'X200' and recorded_at >= 2021-02-01
    site in ('lab-1', 'lab-2') and not (operator = 'a.khan' or room_temperature_c is null)

Grammar (keywords are case-insensitive; positions in errors are 1-based characters)::

    expr       := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "not" factor | "(" expr ")" | comparison
    comparison := FIELD op literal | FIELD ["not"] "in" "(" literal ("," literal)* ")"
                | FIELD "is" ["not"] "null"
    op         := "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    literal    := NUMBER | 'text' | "text" | DATE (2021-02-01) | TIMESTAMP (2021-02-01T08:30[:00])
                | true | false

The parser only builds a tree; the catalog checks field names and value types against what it holds and
binds every value as a parameter (:mod:`headwater.sessions.catalog`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal as TypingLiteral

from headwater.errors import UsageError
from headwater.sqltext import sql_string

MAX_QUERY_CHARS = 4000
MAX_DEPTH = 64

Op = TypingLiteral["=", "!=", "<", "<=", ">", ">="]
LiteralKind = TypingLiteral["number", "string", "date", "timestamp", "bool"]
KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "true", "false"})


@dataclass(frozen=True)
class Literal:
    kind: LiteralKind
    value: int | float | str | bool | dt.date | dt.datetime
    pos: int


@dataclass(frozen=True)
class Compare:
    field: str
    op: Op
    value: Literal
    pos: int


@dataclass(frozen=True)
class InList:
    field: str
    values: tuple[Literal, ...]
    negated: bool
    pos: int


@dataclass(frozen=True)
class IsNull:
    field: str
    negated: bool
    pos: int


@dataclass(frozen=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Or:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not:
    inner: Expr


Expr = Compare | InList | IsNull | And | Or | Not


@dataclass(frozen=True)
class Token:
    kind: str  # ident, keyword, op, lparen, rparen, comma, number, string, date, timestamp, end
    text: str
    pos: int  # 0-based
    value: object = None


class FilterError(UsageError):
    """A filter that does not parse or does not fit the catalog: one line with the position."""

    def __init__(self, query: str, pos: int, message: str) -> None:
        self.query = query
        self.pos = pos
        self.message = message
        shown = query if len(query) <= 120 else query[:117] + "..."
        super().__init__(f'query "{shown}": position {pos + 1}: {message}')


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
    | (?P<timestamp>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)
    | (?P<date>\d{4}-\d{2}-\d{2})
    | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<lparen>\()
    | (?P<rparen>\))
    | (?P<comma>,)
    | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
    """,
    re.VERBOSE,
)


def tokenize(query: str) -> list[Token]:
    """The tokens of ``query``; FilterError at the first character that starts none."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if m is None:
            char = query[pos]
            if char in "'\"":
                raise FilterError(query, pos, f"unterminated string starting with {char}")
            raise FilterError(query, pos, f"unexpected character {char!r}")
        kind = m.lastgroup or ""
        text = m.group()
        if kind == "ident" and text.lower() in KEYWORDS:
            tokens.append(Token("keyword", text.lower(), pos))
        elif kind == "number":
            number: int | float = float(text) if any(c in text for c in ".eE") else int(text)
            if isinstance(number, float) and number in (float("inf"), float("-inf")):
                raise FilterError(query, pos, f"number {text} is out of range")
            tokens.append(Token(kind, text, pos, number))
        elif kind == "string":
            quote = text[0]
            tokens.append(Token(kind, text, pos, text[1:-1].replace(quote * 2, quote)))
        elif kind == "date":
            try:
                tokens.append(Token(kind, text, pos, dt.date.fromisoformat(text)))
            except ValueError:
                raise FilterError(query, pos, f"{text} is not a real date") from None
        elif kind == "timestamp":
            try:
                tokens.append(Token(kind, text, pos, dt.datetime.fromisoformat(text.replace(" ", "T"))))
            except ValueError:
                raise FilterError(query, pos, f"{text} is not a real date and time") from None
        elif kind != "ws":
            tokens.append(Token(kind, text, pos))
        pos = m.end()
    tokens.append(Token("end", "", len(query)))
    return tokens


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = tokenize(query)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def fail(self, message: str, tok: Token | None = None) -> FilterError:
        return FilterError(self.query, (tok or self.tok).pos, message)

    def describe(self, tok: Token) -> str:
        return "the end of the query" if tok.kind == "end" else repr(tok.text)

    def take(self, kind: str, text: str | None = None) -> Token | None:
        tok = self.tok
        if tok.kind == kind and (text is None or tok.text == text):
            self.i += 1
            return tok
        return None

    def parse(self) -> Expr:
        if not self.query.strip():
            raise self.fail("empty query; write e.g. fatigue_level >= 3")
        expr = self.expr()
        if self.tok.kind != "end":
            raise self.fail(f"expected 'and', 'or' or the end of the query, found {self.describe(self.tok)}")
        return expr

    def expr(self) -> Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} levels deep")
        node = self.term()
        while self.take("keyword", "or"):
            node = Or(node, self.term())
        self.depth -= 1
        return node

    def term(self) -> Expr:
        node = self.factor()
        while self.take("keyword", "and"):
            node = And(node, self.factor())
        return node

    def factor(self) -> Expr:
        if self.take("keyword", "not"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.fail(f"nested more than {MAX_DEPTH} levels deep")
            inner = self.factor()
            self.depth -= 1
            return Not(inner)
        if self.take("lparen"):
            inner = self.expr()
            if not self.take("rparen"):
                raise self.fail(f"expected ')', found {self.describe(self.tok)}")
            return inner
        return self.comparison()

    def comparison(self) -> Expr:
        field_tok = self.tok
        if field_tok.kind != "ident":
            what = "a field name" if field_tok.kind != "keyword" else "a field name, not the keyword"
            raise self.fail(f"expected {what}, found {self.describe(field_tok)}")
        self.i += 1
        name = field_tok.text.lower()
        if op := self.take("op"):
            text = "!=" if op.text == "<>" else op.text
            return Compare(name, text, self.literal(), field_tok.pos)  # type: ignore[arg-type]
        if self.take("keyword", "is"):
            negated = self.take("keyword", "not") is not None
            if not self.take("keyword", "null"):
                raise self.fail(f"expected 'null' after 'is', found {self.describe(self.tok)}")
            return IsNull(name, negated, field_tok.pos)
        negated = self.take("keyword", "not") is not None
        if self.take("keyword", "in"):
            if not self.take("lparen"):
                raise self.fail(f"expected '(' after 'in', found {self.describe(self.tok)}")
            values = [self.literal()]
            while self.take("comma"):
                values.append(self.literal())
            if not self.take("rparen"):
                raise self.fail(f"expected ',' or ')', found {self.describe(self.tok)}")
            return InList(name, tuple(values), negated, field_tok.pos)
        expected = "'in'" if negated else "a comparison (= != < <= > >=), 'in' or 'is null'"
        raise self.fail(f"expected {expected} after {field_tok.text}, found {self.describe(self.tok)}")

    def literal(self) -> Literal:
        tok = self.tok
        self.i += 1
        if tok.kind == "number":
            return Literal("number", tok.value, tok.pos)  # type: ignore[arg-type]
        if tok.kind in ("string", "date", "timestamp"):
            return Literal(tok.kind, tok.value, tok.pos)  # type: ignore[arg-type]
        if tok.kind == "keyword" and tok.text in ("true", "false"):
            return Literal("bool", tok.text == "true", tok.pos)
        hint = "; quote text values: 'X200'" if tok.kind == "ident" else ""
        if tok.kind == "keyword" and tok.text == "null":
            hint = "; use 'is null' / 'is not null'"
        raise FilterError(self.query, tok.pos, f"expected a value, found {self.describe(tok)}{hint}")


def parse_filter(query: str) -> Expr:
    """The tree of a filter; :class:`FilterError` (a UsageError, exit 2) naming the position otherwise."""
    if len(query) > MAX_QUERY_CHARS:
        raise FilterError(query, MAX_QUERY_CHARS, f"longer than {MAX_QUERY_CHARS} characters")
    return _Parser(query).parse()


def fields_of(expr: Expr) -> list[tuple[str, int]]:
    """Every (field, position) the filter names, left to right."""
    if isinstance(expr, And | Or):
        return fields_of(expr.left) + fields_of(expr.right)
    if isinstance(expr, Not):
        return fields_of(expr.inner)
    return [(expr.field, expr.pos)]


def render(expr: Expr) -> str:
    """The filter as text again (parses back to the same tree); used by tests and logs."""
    if isinstance(expr, And):
        return f"({render(expr.left)} and {render(expr.right)})"
    if isinstance(expr, Or):
        return f"({render(expr.left)} or {render(expr.right)})"
    if isinstance(expr, Not):
        return f"not {render(expr.inner)}"
    if isinstance(expr, IsNull):
        return f"{expr.field} is {'not ' if expr.negated else ''}null"
    if isinstance(expr, InList):
        inner = ", ".join(render_literal(v) for v in expr.values)
        return f"{expr.field} {'not ' if expr.negated else ''}in ({inner})"
    return f"{expr.field} {expr.op} {render_literal(expr.value)}"


def render_literal(lit: Literal) -> str:
    value = lit.value
    if lit.kind == "bool":
        return "true" if value else "false"
    if lit.kind == "string":
        return sql_string(value)
    if lit.kind == "timestamp":
        assert isinstance(value, dt.datetime)
        return value.isoformat()
    if lit.kind == "date":
        assert isinstance(value, dt.date)
        return value.isoformat()
    return repr(value)

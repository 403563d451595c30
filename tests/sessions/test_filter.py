"""The filter language: parsing, positions in errors, rendering, and a hypothesis round trip."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.errors import UsageError
from headwater.sessions.filter import (
    And,
    Compare,
    Expr,
    FilterError,
    InList,
    IsNull,
    Literal,
    Not,
    Or,
    fields_of,
    parse_filter,
    render,
)


def test_the_issue_example_parses_into_a_tree() -> None:
    expr = parse_filter("fatigue_level >= 3 and hardware_model = 'X200' and recorded_at >= 2021-02-01")
    assert isinstance(expr, And)
    assert expr.right == Compare("recorded_at", ">=", Literal("date", dt.date(2021, 2, 1), 66), 51)
    assert [f for f, _ in fields_of(expr)] == ["fatigue_level", "hardware_model", "recorded_at"]


def test_precedence_not_binds_tighter_than_and_than_or() -> None:
    expr = parse_filter("a = 1 or not b = 2 and c = 3")
    assert isinstance(expr, Or)
    assert isinstance(expr.right, And)
    assert isinstance(expr.right.left, Not)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("x = 3", 3),
        ("x = -2.5", -2.5),
        ("x = 1e3", 1000.0),
        ("x = 'it''s'", "it's"),
        ('x = "say ""hi"""', 'say "hi"'),
        ("x = true", True),
        ("x = FALSE", False),
        ("x = 2021-02-01T08:30", dt.datetime(2021, 2, 1, 8, 30)),
        ("x = 2021-02-01 08:30:15", dt.datetime(2021, 2, 1, 8, 30, 15)),
        ("x = 2020-02-29", dt.date(2020, 2, 29)),
    ],
)
def test_literals(text: str, value: object) -> None:
    expr = parse_filter(text)
    assert isinstance(expr, Compare)
    assert expr.value.value == value


def test_in_lists_and_null_tests() -> None:
    expr = parse_filter("site not in ('lab-1', 'lab-2') AND operator IS NOT NULL")
    assert isinstance(expr, And)
    assert expr.left == InList(
        "site", (Literal("string", "lab-1", 13), Literal("string", "lab-2", 22)), True, 0
    )
    assert expr.right == IsNull("operator", True, 35)
    assert parse_filter("x <> 1") == Compare("x", "!=", Literal("number", 1, 5), 0)


@pytest.mark.parametrize(
    ("text", "pos", "fragment"),
    [
        ("", 1, "empty query"),
        ("fatigue_level >= ", 18, "expected a value, found the end"),
        ("hardware_model = X200", 18, "quote text values"),
        ("fatigue_level >= 3 and", 23, "expected a field name"),
        ("(a = 1", 7, "expected ')'"),
        ("a = 1)", 6, "expected 'and', 'or' or the end"),
        ("a = 'open", 5, "unterminated string"),
        ("a = 1; DROP TABLE sessions", 6, "unexpected character ';'"),
        ("recorded_at >= 2021-02-29", 16, "not a real date"),
        ("recorded_at >= 2021-13-01T00:00", 16, "not a real date and time"),
        ("a in 1", 6, "expected '(' after 'in'"),
        ("a in (1 2)", 9, "expected ',' or ')'"),
        ("a is 3", 6, "expected 'null'"),
        ("a = null", 5, "use 'is null'"),
        ("a 3", 3, "expected a comparison"),
        ("a not = 3", 7, "expected 'in'"),
        ("and = 3", 1, "not the keyword"),
        ("a = 1 -- comment", 7, "unexpected character '-'"),
        ("a = 1 /* x */", 7, "unexpected character '/'"),
    ],
)
def test_errors_name_the_position_on_one_line(text: str, pos: int, fragment: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(text)
    message = str(info.value)
    assert f"position {pos}:" in message, message
    assert fragment in message
    assert "\n" not in message
    assert isinstance(info.value, UsageError)
    assert info.value.exit_code == 2


def test_depth_and_length_are_bounded() -> None:
    with pytest.raises(FilterError, match="nested more than"):
        parse_filter("(" * 200 + "a = 1" + ")" * 200)
    with pytest.raises(FilterError, match="nested more than"):
        parse_filter("not " * 200 + "a = 1")
    with pytest.raises(FilterError, match="longer than"):
        parse_filter("a = 1 and " * 500 + "a = 1")


# --- hypothesis: render(parse(x)) round trips, and any text either parses or raises FilterError ---------

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s not in {"and", "or", "not", "in", "is", "null", "true", "false"}
)
literals = st.one_of(
    st.integers(-(10**12), 10**12).map(lambda v: Literal("number", v, 0)),
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(lambda v: Literal("number", v, 0)),
    st.text(st.characters(codec="utf-8"), max_size=12).map(lambda v: Literal("string", v, 0)),
    st.booleans().map(lambda v: Literal("bool", v, 0)),
    st.dates(dt.date(1900, 1, 1), dt.date(2200, 1, 1)).map(lambda v: Literal("date", v, 0)),
    st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1)).map(lambda v: Literal("timestamp", v, 0)),
)
leaves = st.one_of(
    st.builds(
        lambda f, o, v: Compare(f, o, v, 0),
        names,
        st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
        literals,
    ),
    st.builds(
        lambda f, v, n: InList(f, tuple(v), n, 0),
        names,
        st.lists(literals, min_size=1, max_size=3),
        st.booleans(),
    ),
    st.builds(lambda f, n: IsNull(f, n, 0), names, st.booleans()),
)
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(st.builds(And, inner, inner), st.builds(Or, inner, inner), st.builds(Not, inner)),
    max_leaves=8,
)


def strip_positions(expr: Expr) -> Expr:
    if isinstance(expr, And | Or):
        return type(expr)(strip_positions(expr.left), strip_positions(expr.right))
    if isinstance(expr, Not):
        return Not(strip_positions(expr.inner))
    if isinstance(expr, Compare):
        return Compare(expr.field, expr.op, Literal(expr.value.kind, expr.value.value, 0), 0)
    if isinstance(expr, InList):
        return InList(expr.field, tuple(Literal(v.kind, v.value, 0) for v in expr.values), expr.negated, 0)
    return IsNull(expr.field, expr.negated, 0)


def normalise(expr: Expr) -> Expr:
    """Floats that are whole numbers render like ints; compare them as floats."""
    expr = strip_positions(expr)
    if isinstance(expr, And | Or):
        return type(expr)(normalise(expr.left), normalise(expr.right))
    if isinstance(expr, Not):
        return Not(normalise(expr.inner))
    if isinstance(expr, Compare) and expr.value.kind == "number":
        return Compare(expr.field, expr.op, Literal("number", float(expr.value.value), 0), 0)  # type: ignore[arg-type]
    if isinstance(expr, InList):
        vals = tuple(
            Literal("number", float(v.value), 0) if v.kind == "number" else v  # type: ignore[arg-type]
            for v in expr.values
        )
        return InList(expr.field, vals, expr.negated, 0)
    return expr


@settings(max_examples=150, deadline=None)
@given(trees)
def test_render_then_parse_round_trips(expr: Expr) -> None:
    assert normalise(parse_filter(render(expr))) == normalise(expr)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abz_019 .-'\"()=<>!,;TtrueandorisnotinNUL\\\n")), max_size=40))
def test_any_text_parses_or_raises_a_one_line_filter_error(text: str) -> None:
    error: FilterError | None = None
    try:
        parse_filter(text)
    except FilterError as exc:
        error = exc
    if error is not None:
        assert "\n" not in str(error).replace(text, "")
        assert 1 <= error.pos + 1 <= len(text) + 1

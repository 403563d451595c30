"""The compiled reader of plain lines must read exactly what PyArrow's CSV reader reads, or refuse.

``read_plain`` is only an accelerator: for every range it accepts, the table must equal the one the
PyArrow reader of the parse pass returns for the same bytes; whatever it is unsure of it must refuse
(``None``), so that PyArrow's reader, and after it the careful reader, keep the rules. Random lines near
the plain form (signs, spaces, impossible dates, zones, quotes, line breaks, bytes that are not UTF-8,
missing and extra fields) check both halves of that.
"""

from __future__ import annotations

import os
from datetime import datetime

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from headwater.config import Settings
from headwater.events import parse
from headwater.events.plain import read_plain

SCHEMA = parse.SOURCE_SCHEMA


def pyarrow_read(data: bytes) -> pa.Table | None:
    """What the parse pass's PyArrow reader makes of ``data`` (None: it refuses the range)."""
    try:
        return pacsv.read_csv(
            pa.py_buffer(data),
            read_options=parse._read_options(len(data)),
            parse_options=parse._KEEP_EMPTY_LINES,
            convert_options=parse._CONVERT,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def agrees(data: bytes) -> pa.Table | None:
    """``read_plain`` on ``data``, checked against PyArrow's reader when it accepts."""
    table = read_plain(data, SCHEMA)
    if table is not None:
        table.validate(full=True)
        expected = pyarrow_read(data)
        assert expected is not None, f"read_plain accepted what PyArrow refuses: {data!r}"
        assert table.schema == expected.schema
        assert table.equals(expected), f"{data!r}:\n{table.to_pylist()}\n!=\n{expected.to_pylist()}"
    return table


# --- plain fields -----------------------------------------------------------------------------------

plain_int = st.one_of(
    st.integers(-(10**18) + 1, 10**18 - 1).map(str),
    st.integers(0, 999).map(lambda n: f"{n:05d}"),  # leading zeros
    st.just(""),
)
plain_time = st.one_of(
    st.builds(
        "{:04d}-{:02d}-{:02d}{}{:02d}:{:02d}:{:02d}{}".format,
        st.integers(0, 9999),
        st.integers(1, 12),
        st.integers(1, 28),
        st.sampled_from([" ", "T"]),
        st.integers(0, 23),
        st.integers(0, 59),
        st.integers(0, 59),
        st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,6}", fullmatch=True)),  # fractional seconds
    ),
    st.sampled_from(
        ["2020-02-29 12:00:00", "2000-02-29 00:00:00", "2021-12-31 23:59:59", "1969-12-31 23:59:59"]
    ),
    st.just(""),
)
plain_text_chars = st.characters(
    exclude_characters=',"\r\n', exclude_categories=["Cs"], max_codepoint=0x1F600
)
plain_text = st.one_of(
    st.text(plain_text_chars, max_size=12),  # unquoted
    st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), max_size=12).map(
        lambda s: '"' + s.replace('"', '""') + '"'
    ),  # quoted, commas and doubled quotes inside
)


@st.composite
def plain_lines(draw: st.DrawFn) -> bytes:
    rows = draw(st.integers(1, 12))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    lines = []
    for _ in range(rows):
        fields = [draw(plain_int), draw(plain_time), draw(plain_int), draw(plain_int)]
        fields += [draw(plain_text), draw(plain_text)]
        lines.append(",".join(fields) + ending)
    text = "".join(lines)
    if draw(st.booleans()):
        text = text.removesuffix(ending)  # the month's last line may have no line break
    return text.encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain_lines())
def test_plain_lines_are_read_exactly_as_pyarrow_reads_them(data: bytes) -> None:
    assert agrees(data) is not None, f"refused a plain range: {data!r}"


# --- near-plain fields: anything goes; accepted means equal -----------------------------------------


def mostly(plain: st.SearchStrategy[str], odd: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``plain`` nine times in ten, else ``odd``: most ranges hold one odd field or none, so that both
    the refusals and the equality of what is read are tried."""
    return st.integers(0, 9).flatmap(lambda k: odd if k == 0 else plain)


near_int = mostly(
    plain_int,
    st.sampled_from(
        ["+1", " 1", "1 ", "1.0", "0x1F", "-", "--1", "1e3", '"5"', "1,2", "9" * 19, "-" + "9" * 19]
    )
    | st.integers(10**18, 10**19).map(str),
)
near_time = mostly(
    plain_time,
    st.builds(
        "{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}".format,
        st.integers(1999, 2001),
        st.integers(0, 13),
        st.integers(0, 32),
        st.integers(0, 25),
        st.integers(0, 61),
        st.integers(0, 61),
    )
    | st.sampled_from(
        [
            "2021-01-01 00:00:00.5",
            "2021-01-01 00:00:00.",
            "2021-01-01 00:00:00.1234567",
            "2021-01-01 00:00:00.123456789",
            "2021-01-01 00:00:00.12a",
            "2021-01-01 00:00:00.-1",
            "2021-01-01 00:00:00Z",
            "2021-01-01 00:00:00+01:00",
            "2021-01-01T00:00",
            "2021-01-01",
            "2021-01-01t00:00:00",
            "2021-1-01 00:00:00",
            "2021-01-01  00:00:0",
            '"2021-01-01 00:00:00"',
            "20210101 000000",
            "2021-01-01 00:00:00 ",
        ]
    ),
)
near_text = mostly(
    plain_text,
    st.text(st.sampled_from(list('ab ,"\r\n\té\x00')), max_size=8)
    | st.text(st.sampled_from(list('ab ,"\r\n\té')), max_size=8).map(lambda s: '"' + s + '"'),
)


@st.composite
def near_plain_lines(draw: st.DrawFn) -> bytes:
    rows = draw(st.integers(1, 4))
    out = []
    for _ in range(rows):
        if draw(st.integers(0, 20)) == 0:
            out.append(draw(st.sampled_from([b"\n", b"\r\n", b" \n"])))  # empty or blank line
            continue
        fields = [draw(near_int), draw(near_time), draw(near_int), draw(near_int)]
        fields += [draw(near_text), draw(near_text)]
        drop_or_add = draw(st.integers(0, 15))
        if drop_or_add == 0:
            fields.pop()
        elif drop_or_add == 1:
            fields.append("extra")
        line = ",".join(fields).encode()
        if draw(st.integers(0, 30)) == 0:
            line += b"\xff\xfe"  # not UTF-8
        out.append(line + draw(mostly(st.sampled_from(["\n", "\r\n"]), st.just("\r")).map(str.encode)))
    return b"".join(out)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_plain_lines())
@example(b'1,2021-01-01 00:00:00,1,1,"a\nb",c\n')
@example(b'1,2021-01-01 00:00:00,1,1,a"b,c\n')
@example(b"1,2021-02-29 00:00:00,1,1,a,b\n")
@example(b"1,2021-01-01 24:00:00,1,1,a,b\n")
@example(b"1,2021-01-01 00:00:60,1,1,a,b\n")
@example(b"1,2021-01-01 00:00:00,1,1,a,b\r")
@example(b"1,2021-01-01 00:00:00,1,1,a,\xc3\n")
@example(b"1,2021-01-01 00:00:00,1,1,a,b\n\n2,2021-01-01 00:00:00,1,1,a,b\n")
@example(b'1,2021-01-01 00:00:00,1,1,"a",b"\n')
@example(b'1,2021-01-01 00:00:00,1,1,"unclosed,b\n')
def test_near_plain_lines_are_read_as_pyarrow_reads_them_or_refused(data: bytes) -> None:
    agrees(data)


# --- what must be refused, and what must be read -----------------------------------------------------

LINE = "1,2021-01-01 00:00:00,2,3,click,p"


@pytest.mark.parametrize(
    "line",
    [
        "",  # an empty line
        "1,2021-01-01 00:00:00,2,3,click",  # a field missing
        LINE + ",extra",
        "+1,2021-01-01 00:00:00,2,3,click,p",
        " 1,2021-01-01 00:00:00,2,3,click,p",
        "1.5,2021-01-01 00:00:00,2,3,click,p",
        "1234567890123456789,2021-01-01 00:00:00,2,3,click,p",  # 19 digits: PyArrow checks the range
        "1,2021-01-01 00:00:00.1234567,2,3,click,p",  # more than microseconds
        "1,2021-01-01 00:00:00.,2,3,click,p",
        "1,2021-01-01 00:00:00Z,2,3,click,p",
        "1,2021-01-01T00:00:00+01:00,2,3,click,p",
        "1,2021-02-29 00:00:00,2,3,click,p",
        "1,2021-01-01 24:00:00,2,3,click,p",
        '1,2021-01-01 00:00:00,2,3,click,"two\nlines"',
        '1,2021-01-01 00:00:00,2,3,cl"ick,p',
        "1,2021-01-01 00:00:00,2,3,click,p\r2,2021-01-01 00:00:00,2,3,click,p",  # CR alone ends a line
    ],
)
def test_refused(line: str) -> None:
    assert read_plain((line + "\n").encode(), SCHEMA) is None


def test_text_that_is_not_utf8_is_refused() -> None:
    assert read_plain(b"1,2021-01-01 00:00:00,2,3,click,caf\xe9\n", SCHEMA) is None
    assert read_plain(b'1,2021-01-01 00:00:00,2,3,click,"caf\xe9"\n', SCHEMA) is None


def test_values_read() -> None:
    data = (
        '7,2020-02-29T23:59:59,-5,007,"say ""hi"", then go",caf\u00e9\r\n'
        ',,,,"",\r\n'
        '9,1970-01-01 00:00:00.05,0,1,click,""""'
    ).encode()
    table = agrees(data)
    assert table is not None
    assert table.to_pylist() == [
        {
            "event_id": 7,
            "event_time": datetime(2020, 2, 29, 23, 59, 59),
            "user_id": -5,
            "company_id": 7,
            "event_type": 'say "hi", then go',
            "properties": "caf\u00e9",
        },
        dict.fromkeys(SCHEMA.names),
        {
            "event_id": 9,
            "event_time": datetime(1970, 1, 1, 0, 0, 0, 50_000),
            "user_id": 0,
            "company_id": 1,
            "event_type": "click",
            "properties": '"',
        },
    ]


def test_a_generated_month_is_plain_in_every_range(clean_project: Settings) -> None:
    """The generator's months (quoted text, NULL properties) are plain: every range is read by the
    compiled reader, and equals PyArrow's reading of it."""
    fd = os.open(clean_project.resolve("data/incoming/events/2021/01/events.csv"), os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        start = os.pread(fd, 1 << 16, 0).index(b"\n") + 1
        ranges = list(parse._ranges(fd, start, size, 64 << 10))
        assert len(ranges) > 3
        for lo, hi in ranges:
            assert agrees(os.pread(fd, hi - lo, lo)) is not None
    finally:
        os.close(fd)

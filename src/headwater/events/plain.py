"""The events CSV in its plain form, read in one compiled pass: about twice as fast as PyArrow's reader.

A month of events is nearly always *plain*: every line one record of the six declared fields, the
numbers plain decimal digits, the time ``YYYY-MM-DD HH:MM:SS`` (or with a ``T``, and up to six digits of
fractional seconds), the text quoted or not, with no line break in it. :func:`read_plain` reads a range
of such lines straight into Arrow arrays in one pass over its bytes, compiled by Numba, where PyArrow's
generic reader tokenizes the range first and converts each column after (per 2 GB month, one thread:
3.3 CPU-s against 5.8).

It reads nothing it is not sure of. Whatever is not plain (an empty line, a missing or extra field, a
sign or space in a number, finer than microseconds, a zone, a line break inside a quoted value, a quote
inside an unquoted one, text that is not UTF-8) makes it return ``None``, and the caller reads the range
with PyArrow's reader as before, which keeps the rules for everything else (and hands what it cannot
read to the careful reader). So for every range it accepts it returns exactly the table PyArrow's reader
returns under :data:`headwater.events.parse.ARROW_TYPES` (an empty field, quoted or not, is NULL in any
column); ``tests/events/test_plain.py`` checks that on generated months and on thousands of random
near-plain lines.

Numba compiles the pass when this module is first imported and caches the machine code beside it
(``__pycache__``, or the user's cache folder where that is read-only): about 2.5 s, once. Later imports
load it: ~0.5 s with Numba itself, and ~100 MB of RSS, once per process. So only processes that parse a
month large enough to win that back import it (:func:`headwater.events.parse.parse_month_csv`).
"""

from __future__ import annotations

import threading
from typing import Any

import numba
import numpy as np
import pyarrow as pa

NL, CR, QUOTE, COMMA, MINUS, DOT, ZERO, COLON = 10, 13, 34, 44, 45, 46, 48, 58
MAX_DIGITS = 18
"""Longer numbers are left to PyArrow's reader (which checks for int64 overflow)."""
FIELDS = 6


@numba.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@numba.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _digit(buf: np.ndarray, i: int) -> int:
    """The digit at ``buf[i]``, or -1."""
    c = int(buf[i]) - ZERO
    return c if 0 <= c <= 9 else -1


@numba.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _number(buf: np.ndarray, i: int, n: int) -> tuple[int, int, int]:
    """The decimal integer at ``buf[i]`` (``i < n``): (value, end, digits). No digits is an empty field
    (NULL); -1 digits: not plain (a sign alone, more than ``MAX_DIGITS``)."""
    negative = buf[i] == MINUS
    i += negative
    start = i
    value = 0
    while i < n:
        c = _digit(buf, i)
        if c < 0:
            break
        value = value * 10 + c
        i += 1
    digits = i - start
    if digits > MAX_DIGITS or (digits == 0 and negative):
        return 0, i, -1
    return (-value if negative else value), i, digits


@numba.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _time(buf: np.ndarray, i: int, n: int) -> tuple[int, int, bool]:
    """The time ``YYYY-MM-DD HH:MM:SS`` (or ``T`` between), with up to six digits of fractional seconds,
    at ``buf[i]``: (microseconds since 1970-01-01, end, whether it is one and a valid date and time)."""
    if i + 19 >= n:
        return 0, i, False
    year = 0
    bad = False
    for p in (0, 1, 2, 3):
        c = _digit(buf, i + p)
        bad |= c < 0
        year = year * 10 + c
    for p in (5, 6, 8, 9, 11, 12, 14, 15, 17, 18):
        bad |= _digit(buf, i + p) < 0
    month = _digit(buf, i + 5) * 10 + _digit(buf, i + 6)
    day = _digit(buf, i + 8) * 10 + _digit(buf, i + 9)
    hour = _digit(buf, i + 11) * 10 + _digit(buf, i + 12)
    minute = _digit(buf, i + 14) * 10 + _digit(buf, i + 15)
    second = _digit(buf, i + 17) * 10 + _digit(buf, i + 18)
    sep = buf[i + 10]
    bad |= (buf[i + 4] != MINUS) | (buf[i + 7] != MINUS) | ((sep != 32) & (sep != 84))
    bad |= (buf[i + 13] != COLON) | (buf[i + 16] != COLON)
    bad |= (month < 1) | (month > 12) | (day < 1) | (hour > 23) | (minute > 59) | (second > 59)
    if bad:
        return 0, i, False
    if day > 28:
        if month == 2:
            last = 29 if (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 else 28
        elif month == 4 or month == 6 or month == 9 or month == 11:
            last = 30
        else:
            last = 31
        if day > last:
            return 0, i, False
    i += 19
    micros = 0
    if i < n and buf[i] == DOT:  # fractional seconds: 1 to 6 digits
        i += 1
        start = i
        while i < n and i - start < 7 and _digit(buf, i) >= 0:
            micros = micros * 10 + _digit(buf, i)
            i += 1
        digits = i - start
        if digits == 0 or digits > 6:
            return 0, i, False
        for _ in range(6 - digits):
            micros *= 10
    days = _days_from_civil(year, month, day)
    return ((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + micros, i, True


@numba.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _text(buf: np.ndarray, i: int, n: int, data: np.ndarray, pos: int) -> tuple[int, int, bool]:
    """The text value at ``buf[i]``, quoted or not, copied to ``data[pos:]``: (end, end in data,
    whether it is plain). A line break in a quoted value is copied: the caller checks the copied text
    for them once, after the pass."""
    if i < n and buf[i] == QUOTE:
        i += 1
        while True:
            if i >= n:  # never closed
                return i, pos, False
            c = buf[i]
            if c == QUOTE:
                if i + 1 < n and buf[i + 1] == QUOTE:  # a doubled quote is one quote
                    i += 1
                else:
                    return i + 1, pos, True
            data[pos] = c
            pos += 1
            i += 1
    while i < n:
        c = buf[i]
        if c == COMMA or c == NL or c == CR:  # noqa: SIM109 (as Numba compiles it best)
            break
        if c == QUOTE:
            return i, pos, False
        data[pos] = c
        pos += 1
        i += 1
    return i, pos, True


@numba.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _text_column(
    buf: np.ndarray,
    i: int,
    n: int,
    data: np.ndarray,
    used: int,
    offsets: np.ndarray,
    valid: np.ndarray,
    column: int,
    row: int,
) -> tuple[int, int, bool]:
    """Text column ``column`` (0: event_type, 1: properties) of ``row``: its value read by :func:`_text`
    into ``data[used:]``, its offset and validity set (empty is NULL). (end, bytes of ``data`` used,
    whether the value is plain)."""
    offsets[column, row] = used
    i, end, plain = _text(buf, i, n, data, used)
    if end == used:
        valid[4 + column, row] = False
    return i, end, plain


_BYTES = numba.types.Array(numba.types.uint8, 1, "C", readonly=True)
_TEXT = numba.types.Array(numba.types.uint8, 1, "C")


@numba.njit((_BYTES, _TEXT, _TEXT), nogil=True, cache=True, boundscheck=False)
def _parse(buf: np.ndarray, data0: np.ndarray, data1: np.ndarray) -> tuple[Any, ...]:
    """Rows of ``buf``: (plain, rows, numbers[3, n], times[n], valid[6, n], offsets[2, n+1],
    used bytes of data0 and data1, whether the text holds a byte >= 0x80). When every line is plain,
    rows ``[0, rows)`` of the arrays hold the range. The text of the two string columns goes to
    ``data0`` and ``data1`` (each as long as ``buf``)."""
    n = buf.size
    lines = 0
    for k in range(n):
        lines += buf[k] == NL
    cap = lines + 1
    numbers = np.empty((3, cap), np.int64)  # event_id, user_id, company_id
    times = np.empty(cap, np.int64)
    valid = np.ones((FIELDS, cap), np.bool_)
    offsets = np.empty((2, cap + 1), np.int32)
    used0 = 0
    used1 = 0
    i = 0
    row = 0
    plain = True
    while i < n and plain:
        # event_id, event_time, user_id, company_id: each followed by a comma
        for f in range(4):
            if i >= n:
                plain = False
            elif f == 1:
                if buf[i] == COMMA:
                    valid[1, row] = False
                    times[row] = 0
                else:
                    times[row], i, plain = _time(buf, i, n)
            else:
                value, i, digits = _number(buf, i, n)
                plain = digits >= 0
                if digits == 0:
                    valid[f, row] = False
                numbers[0 if f == 0 else f - 1, row] = value
            if not plain or i >= n or buf[i] != COMMA:
                plain = False
                break
            i += 1
        # event_type, then a comma, then properties: text, quoted or not
        if plain:
            i, used0, plain = _text_column(buf, i, n, data0, used0, offsets, valid, 0, row)
            plain = plain and i < n and buf[i] == COMMA
            i += 1
        if plain:
            i, used1, plain = _text_column(buf, i, n, data1, used1, offsets, valid, 1, row)
        if not plain:
            break
        if i < n:  # the line ends: LF or CR LF
            if buf[i] == CR and i + 1 < n and buf[i + 1] == NL:
                i += 1
            elif buf[i] != NL:
                plain = False
                break
            i += 1
        row += 1
    offsets[0, row] = used0
    offsets[1, row] = used1
    high = 0  # every byte of the text OR-ed: >= 0x80 when any is beyond ASCII
    if plain:  # a line break or carriage return copied from a quoted value: not plain
        breaks = 0
        for data, length in ((data0, used0), (data1, used1)):
            for k in range(length):
                c = data[k]
                breaks |= (c == NL) | (c == CR)
                high |= c
        plain = breaks == 0
    return plain, row, numbers, times, valid, offsets, used0, used1, (high & 0x80) != 0


_LOCAL = threading.local()


def _scratch(size: int) -> tuple[np.ndarray, np.ndarray]:
    """This thread's two buffers for the text of a range, at least ``size`` bytes each (the text cannot
    be longer than the range). The text is copied out at its exact length once the range is read:
    allocating a range's length for each column and shrinking it after left the C library's heap
    fragmented, and the pass's RSS at 0.9-1.0 GB instead of 0.55-0.6 (10 GB month). The copies cost less
    than the fresh pages did: 0.41 CPU-s per 256 MB read, against 0.42-0.45."""
    got: tuple[np.ndarray, np.ndarray] | None = getattr(_LOCAL, "text", None)
    if got is None or got[0].size < size:
        got = _LOCAL.text = (np.empty(size, np.uint8), np.empty(size, np.uint8))
    return got


def read_plain(data: memoryview | bytes, schema: pa.Schema) -> pa.Table | None:
    """The rows of ``data`` (whole lines of the events CSV, no header) as PyArrow's CSV reader would
    read them under ``schema`` (the six declared columns), or ``None`` when a line is not plain."""
    buf = np.frombuffer(data, np.uint8)
    buf.flags.writeable = False  # one compiled signature, whether the caller's bytes are mutable or not
    scratch = _scratch(buf.size)
    plain, rows, numbers, times, valid, offsets, used0, used1, high = _parse(buf, *scratch)
    if not plain:
        return None
    nulls = rows - np.count_nonzero(valid[:, :rows], axis=1)
    text = [pa.py_buffer(scratch[0][:used0].copy()), pa.py_buffer(scratch[1][:used1].copy())]
    columns: list[pa.Array] = []
    for k, field in enumerate(schema):
        validity = None
        if nulls[k]:
            validity = pa.py_buffer(np.packbits(valid[k, :rows], bitorder="little"))
        if k >= 4:
            buffers = [validity, pa.py_buffer(offsets[k - 4, : rows + 1]), text[k - 4]]
        else:
            values = times if k == 1 else numbers[0 if k == 0 else k - 1]
            buffers = [validity, pa.py_buffer(values[:rows])]
        columns.append(pa.Array.from_buffers(field.type, rows, buffers, null_count=int(nulls[k])))
    if high:  # text beyond ASCII: it must be UTF-8, as PyArrow's reader checks
        try:
            for arr in columns[4:]:
                arr.validate(full=True)
        except pa.ArrowInvalid:
            return None
    return pa.Table.from_arrays(columns, schema=schema)

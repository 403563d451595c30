"""The events CSV in its plain form, read in one compiled pass: about twice as fast as PyArrow's reader.

A month of events is nearly always *plain*: every line one record of the six declared fields, the
numbers plain decimal digits, the time ``YYYY-MM-DD HH:MM:SS`` (or with a ``T``, and up to six
digits of fractional seconds), the text quoted or
not, with no line break in it. :func:`read_plain` reads a range of such lines straight into Arrow
arrays in one pass over its bytes, compiled by Numba, where PyArrow's generic reader tokenizes the range
first and converts each column after (per 2 GB month, one thread: 3.3 CPU-s against 5.8).

It reads nothing it is not sure of. Whatever is not plain (an empty line, a missing or extra field, a
sign or space in a number, more than six digits of fractional seconds, a zone, a line break inside a quoted value, a quote
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

NL, CR, COMMA, QUOTE, MINUS, DOT, ZERO = 10, 13, 44, 34, 45, 46, 48
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


_BYTES = numba.types.Array(numba.types.uint8, 1, "C", readonly=True)
_TEXT = numba.types.Array(numba.types.uint8, 1, "C")


@numba.njit((_BYTES, _TEXT, _TEXT), nogil=True, cache=True, boundscheck=False)
def _parse(buf: np.ndarray, data0: np.ndarray, data1: np.ndarray) -> tuple[Any, ...]:
    """Rows of ``buf``: (status, rows, numbers[3, n], times[n], valid[6, n], nulls[6], offsets[2, n+1],
    used bytes of data0 and data1, whether the text holds a byte >= 0x80). ``status`` is 0 when every
    line was plain; then rows ``[0, rows)`` of the arrays hold the range. The text of the two string
    columns goes to ``data0`` and ``data1`` (each as long as ``buf``)."""
    n = buf.size
    lines = 0
    for k in range(n):
        lines += buf[k] == NL
    cap = lines + 1
    numbers = np.empty((3, cap), np.int64)  # event_id, user_id, company_id
    times = np.empty(cap, np.int64)
    valid = np.ones((FIELDS, cap), np.bool_)
    nulls = np.zeros(FIELDS, np.int64)
    offsets = np.empty((2, cap + 1), np.int32)
    used0 = 0
    used1 = 0
    i = 0
    row = 0
    status = 0
    while i < n:
        # event_id, event_time, user_id, company_id: each followed by a comma
        for f in range(4):
            if i >= n:
                status = 1
                break
            if f == 1:
                if buf[i] == COMMA:
                    valid[1, row] = False
                    nulls[1] += 1
                    times[row] = 0
                else:
                    if i + 19 >= n:
                        status = 2
                        break
                    y = 0
                    bad = False
                    for p in (0, 1, 2, 3):
                        c = _digit(buf, i + p)
                        bad |= c < 0
                        y = y * 10 + c
                    mo = _digit(buf, i + 5) * 10 + _digit(buf, i + 6)
                    d = _digit(buf, i + 8) * 10 + _digit(buf, i + 9)
                    hh = _digit(buf, i + 11) * 10 + _digit(buf, i + 12)
                    mi = _digit(buf, i + 14) * 10 + _digit(buf, i + 15)
                    ss = _digit(buf, i + 17) * 10 + _digit(buf, i + 18)
                    for p in (5, 6, 8, 9, 11, 12, 14, 15, 17, 18):
                        bad |= _digit(buf, i + p) < 0
                    sep = buf[i + 10]
                    bad |= (buf[i + 4] != MINUS) | (buf[i + 7] != MINUS) | ((sep != 32) & (sep != 84))
                    bad |= (buf[i + 13] != 58) | (buf[i + 16] != 58)
                    bad |= (mo < 1) | (mo > 12) | (d < 1) | (hh > 23) | (mi > 59) | (ss > 59)
                    if bad:
                        status = 3
                        break
                    if d > 28:
                        if mo == 2:
                            leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
                            last = 29 if leap else 28
                        elif mo == 4 or mo == 6 or mo == 9 or mo == 11:
                            last = 30
                        else:
                            last = 31
                        if d > last:
                            status = 3
                            break
                    days = _days_from_civil(y, mo, d)
                    micros = 0
                    i += 19
                    if i < n and buf[i] == DOT:  # fractional seconds: 1 to 6 digits
                        i += 1
                        start = i
                        while i < n and _digit(buf, i) >= 0 and i - start < 7:
                            micros = micros * 10 + _digit(buf, i)
                            i += 1
                        digits = i - start
                        if digits == 0 or digits > 6:
                            status = 3
                            break
                        for _ in range(6 - digits):
                            micros *= 10
                    times[row] = ((days * 24 + hh) * 60 + mi) * 60_000_000 + ss * 1_000_000 + micros
            else:
                negative = buf[i] == MINUS
                i += negative
                start = i
                v = 0
                while i < n:
                    c = _digit(buf, i)
                    if c < 0:
                        break
                    v = v * 10 + c
                    i += 1
                digits = i - start
                if digits > MAX_DIGITS or (digits == 0 and negative):
                    status = 4
                    break
                column = 0 if f == 0 else f - 1
                if digits == 0:
                    valid[f, row] = False
                    nulls[f] += 1
                numbers[column, row] = -v if negative else v
            if i >= n or buf[i] != COMMA:
                status = 5
                break
            i += 1
        if status:
            break
        # event_type, properties: text, quoted or not; the second ends the line
        for s in (0, 1):
            data = data0 if s == 0 else data1
            pos = used0 if s == 0 else used1
            offsets[s, row] = pos
            first = pos
            if i < n and buf[i] == QUOTE:
                i += 1
                while True:
                    if i >= n:  # never closed
                        status = 6
                        break
                    c = buf[i]
                    if c == QUOTE:
                        if i + 1 < n and buf[i + 1] == QUOTE:  # a doubled quote is one quote
                            i += 1
                        else:
                            i += 1
                            break
                    data[pos] = c  # a line break is caught after the pass, from the copied text
                    pos += 1
                    i += 1
                if status:
                    break
            else:
                while i < n:
                    c = buf[i]
                    if c == COMMA or c == NL or c == CR:  # noqa: SIM109 (as Numba compiles it best)
                        break
                    if c == QUOTE:
                        status = 7
                        break
                    data[pos] = c
                    pos += 1
                    i += 1
                if status:
                    break
            if pos == first:
                valid[4 + s, row] = False
                nulls[4 + s] += 1
            if s == 0:
                used0 = pos
                if i >= n or buf[i] != COMMA:
                    status = 5
                    break
                i += 1
            else:
                used1 = pos
        if status:
            break
        if i < n:  # the line ends: LF or CR LF
            if buf[i] == CR and i + 1 < n and buf[i + 1] == NL:
                i += 1
            elif buf[i] != NL:
                status = 8
                break
            i += 1
        row += 1
    offsets[0, row] = used0
    offsets[1, row] = used1
    high = 0  # every byte of the text OR-ed: >= 0x80 when any is beyond ASCII
    if status == 0:  # a line break or carriage return copied from a quoted value: not plain
        breaks = 0
        for data, used in ((data0, used0), (data1, used1)):
            for k in range(used):
                c = data[k]
                breaks |= (c == NL) | (c == CR)
                high |= c
        if breaks:
            status = 9
    return status, row, numbers, times, valid, nulls, offsets, used0, used1, (high & 0x80) != 0


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
    status, rows, numbers, times, valid, nulls, offsets, used0, used1, high = _parse(buf, *scratch)
    if status:
        return None
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

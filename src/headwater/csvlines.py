"""The file line on which each item of a CSV text starts, for messages that point at a line.

CSV readers number what they read by record: DuckDB's rejects count a record that spans lines (a quoted
value with a line break) once, and a position among the parsed rows skips empty lines and rejected
records. Someone opening the file in an editor needs its own lines. :func:`items` scans the bytes once
(NumPy, no Python loop per line) and gives, for every item — each record and each empty line, in order —
the line it starts on, so those numbers can be turned into lines.

A line break ends an item when the quotes before it are even: RFC 4180 quoting, where a quote inside a
quoted value is doubled. A stray quote inside an unquoted value breaks that rule; callers check the
count of items against what the reader returned and keep their record numbers when it does not match.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BLOCK = 16 << 20
_LF, _CR, _QUOTE = 10, 13, 34


@dataclass
class Items:
    """Items of a CSV text in order: ``lines[i]`` is the line (0-based from the start of the text) that
    item ``i`` starts on; ``empty[i]`` whether it is an empty line (``\\n`` or ``\\r\\n`` alone)."""

    lines: np.ndarray
    empty: np.ndarray

    def record_lines(self, skip: np.ndarray | None = None) -> np.ndarray:
        """Lines of the records, leaving out empty lines and the items numbered ``skip`` (0-based)."""
        keep = ~self.empty
        if skip is not None and skip.size:
            keep = keep.copy()
            keep[skip] = False
        lines: np.ndarray = self.lines[keep]
        return lines

    def locate(
        self, rejected: np.ndarray, rows: int, *, header: bool = False
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Where a reader's output lies in the text: given the items it rejected (numbered from 0, as a
        reader that counts empty lines but a record spanning lines once numbers them, e.g. DuckDB's
        rejects) and how many rows it returned, the lines of the rejected items and of the rows, in order.
        ``header``: item 0 is the header, not a row. None when they do not add up (a stray quote: the
        reader split the text otherwise)."""
        if rejected.size and (rejected.max() >= self.lines.size or self.empty[rejected].any()):
            return None
        kept = self.record_lines(skip=np.concatenate(([0], rejected)) if header else rejected)
        if kept.size != rows:
            return None
        return self.lines[rejected], kept


def items(blocks: Iterable[bytes | memoryview]) -> Items:
    """The items of the text made of ``blocks`` laid end to end."""
    end_at: list[np.ndarray] = []  # byte offset of each line break that ends an item
    end_line: list[np.ndarray] = []  # its line (0-based)
    after_cr: list[np.ndarray] = []  # whether the byte before it is a carriage return
    quotes = lines = offset = 0
    last = -1  # the previous block's last byte
    for block in blocks:
        b = np.frombuffer(block, np.uint8)
        if b.size == 0:
            continue
        breaks = np.flatnonzero(b == _LF)
        quote_at = np.flatnonzero(b == _QUOTE)
        # the quotes before each line break, from the start of the text
        quotes_before = np.searchsorted(quote_at, breaks) + quotes
        ending = np.flatnonzero(quotes_before % 2 == 0)
        at = breaks[ending]
        end_at.append(at + offset)
        end_line.append(ending + lines)
        before = np.where(at > 0, b[np.maximum(at - 1, 0)], last)
        after_cr.append(before == _CR)
        quotes += quote_at.size
        lines += breaks.size
        offset += b.size
        last = int(b[-1])
    ends = np.concatenate(end_at) if end_at else np.zeros(0, np.int64)
    cr = np.concatenate(after_cr) if after_cr else np.zeros(0, bool)
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [offset]))
    first = np.concatenate(([0], (np.concatenate(end_line) if end_line else ends) + 1))
    # an item of one byte before its line break is empty when that byte is a carriage return
    cr_before_stop = np.concatenate((cr, [False]))
    if starts[-1] == offset:  # the text ends with a line break: no item after it
        starts, stops, first, cr_before_stop = starts[:-1], stops[:-1], first[:-1], cr_before_stop[:-1]
    length = stops - starts
    empty = (length == 0) | ((length == 1) & cr_before_stop)
    return Items(first.astype(np.int64), empty)


def file_blocks(path: Path, block: int = BLOCK) -> Iterator[bytes]:
    """``path`` read in blocks of ``block`` bytes."""
    with path.open("rb") as fh:
        while chunk := fh.read(block):
            yield chunk

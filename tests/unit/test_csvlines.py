"""Line numbers of CSV items against Python's csv module, whatever the blocks the text arrives in."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from headwater.csvlines import file_blocks, items


def truth(text: str) -> tuple[list[int], list[bool]]:
    """(0-based start line, is empty) of each item, by Python's csv module."""
    reader = csv.reader(io.StringIO(text, newline=""))
    starts, empty, line = [], [], 0
    for record in reader:
        starts.append(line)
        empty.append(record == [])
        line = reader.line_num
    return starts, empty


def random_text(rng: np.random.Generator, newline: str, final_newline: bool) -> str:
    values = ["a", "", '"quoted"', '"with ""quotes"""', '"two\nlines"', '"three\n""x""\nlines"', '"a,b"']
    lines = []
    for _ in range(300):
        if rng.random() < 0.1:
            lines.append("")
        else:
            lines.append(",".join(rng.choice(values, size=3).tolist()))
    text = newline.join(line.replace("\n", newline) for line in lines)
    return text + newline if final_newline else text


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("final_newline", [True, False])
def test_items_match_the_csv_module_in_any_blocks(newline: str, final_newline: bool) -> None:
    rng = np.random.default_rng(3)
    text = random_text(rng, newline, final_newline)
    data = text.encode()
    starts, empty = truth(text)
    for size in (1, 2, 7, 64, len(data)):
        got = items([data[i : i + size] for i in range(0, len(data), size)])
        assert got.lines.tolist() == starts
        assert got.empty.tolist() == empty


def test_record_lines_leave_out_empty_lines_and_skipped_items() -> None:
    text = 'h\n1\n\n"2\nx"\n3\r\n\r\n4'
    got = items([text.encode()])
    assert got.lines.tolist() == [0, 1, 2, 3, 5, 6, 7]
    assert got.empty.tolist() == [False, False, True, False, False, True, False]
    assert got.record_lines().tolist() == [0, 1, 3, 5, 7]
    assert got.record_lines(skip=np.array([3])).tolist() == [0, 1, 5, 7]


def test_empty_text_has_no_items(tmp_path: Path) -> None:
    assert items([]).lines.size == 0
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert items(file_blocks(path)).lines.size == 0
    path.write_bytes(b"a\n")
    assert items(file_blocks(path, block=1)).lines.tolist() == [0]


def test_locate_puts_a_readers_rejects_and_rows_on_their_lines() -> None:
    text = 'h\n1\n\n"2\nx"\nbad\n3\r\n\r\n4'
    got = items([text.encode()])
    # items: 0 h, 1 "1", 2 empty, 3 "2\nx", 4 bad, 5 "3", 6 empty, 7 "4"
    located = got.locate(np.array([4]), rows=4, header=True)
    assert located is not None
    assert located[0].tolist() == [5]
    assert located[1].tolist() == [1, 3, 6, 8]
    assert got.locate(np.array([4]), rows=3, header=True) is None  # the counts do not add up
    assert got.locate(np.array([2]), rows=4, header=True) is None  # an empty line is never rejected
    assert got.locate(np.array([9]), rows=4, header=True) is None  # past the end
    no_header = got.locate(np.zeros(0, np.int64), rows=6)
    assert no_header is not None
    assert no_header[1].tolist() == [0, 1, 3, 5, 6, 8]

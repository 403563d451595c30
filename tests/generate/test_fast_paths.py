"""The engine's fast paths give exactly what the plain PyArrow/NumPy operations they replace give."""

from __future__ import annotations

import decimal
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from headwater.errors import SchemaError
from headwater.generate import GenerateOptions, engine, generate
from headwater.generate.columns import (
    BLOCK_ROWS,
    BlockContext,
    _email_local,
    _email_parts,
    _uuid_text_bytewise,
    categorical,
    generate_column,
    to_decimal,
    uuid_text,
)
from headwater.generate.encode import (
    ChunkResult,
    Piece,
    Slot,
    csv_bytes,
    csv_lines,
    encode_csv,
    forget_mappings,
    release,
    spill,
    unspill,
)
from headwater.generate.engine import MIB, _Slots
from headwater.generate.strings import concat_rows
from headwater.generate.vocab import vocabulary
from headwater.schema import load_schema_text


def writer_csv(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    return bytes(sink.getvalue().to_pybytes())


def tricky_table(n: int = 3000, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)

    def mask() -> np.ndarray:
        return rng.random(n) < 0.2

    texts = np.array(["a", 'b"c', "", "x,y", "O'Neil", "é ü", '""', " sp ", "tab\there"], dtype=object)
    floats = np.concatenate([[np.nan, np.inf, -np.inf, 1e20, 1e-7, 0.1, -0.0], rng.normal(0, 1e6, n - 7)])
    return pa.table(
        {
            "i": pa.array(rng.integers(-(10**12), 10**12, n), mask=mask()),
            "f": pa.array(floats, mask=mask()),
            "d": pa.array([decimal.Decimal(f"{x:.2f}") for x in rng.normal(0, 1e4, n)], pa.decimal128(12, 2)),
            "b": pa.array(rng.random(n) < 0.5, mask=mask()),
            "day": pa.array(rng.integers(-1000, 30000, n).astype(np.int32), pa.date32()),
            "ts": pa.array(rng.integers(-(10**9), 4 * 10**9, n), pa.timestamp("s"), mask=mask()),
            "s": pa.array(texts[rng.integers(0, len(texts), n)].tolist(), mask=mask()),
            "t": pa.array(texts[rng.integers(0, len(texts), n)].tolist()),
        }
    )


def test_csv_lines_are_the_pyarrow_writer_bytes() -> None:
    table = tricky_table()
    names = table.column_names
    for k in range(1, len(names) + 1):
        for cols in (names[:k], names[-k:]):
            sub = table.select(cols)
            lines = csv_lines(sub.combine_chunks().to_batches()[0])
            assert lines is not None
            assert "".join(lines.to_pylist()).encode() == writer_csv(sub)
            data, ends = encode_csv(sub, np.zeros(0, dtype=np.int64), np.random.default_rng(0))
            assert data == writer_csv(sub)
            assert ends.tolist() == [i + 1 for i, c in enumerate(data) if c == 10]


def test_csv_lines_from_text_tables_are_the_pyarrow_writer_bytes() -> None:
    # booleans, narrow integers and timestamps within a span of days go through small text tables
    rng = np.random.default_rng(4)
    n = 5000
    for low_second in (1_577_836_800, -300_000, 0):  # 2020, late 1969, the epoch
        table = pa.table(
            {
                "flag": pa.array(rng.random(n) < 0.5),
                "qty": pa.array(rng.integers(-20, 21, n)),
                "big": pa.array(rng.integers(0, 10**6, n)),
                "at": pa.array(low_second + rng.integers(0, 3 * 10**7, n), pa.timestamp("s")),
                "s": pa.array(["x"] * n),
            }
        )
        lines = csv_lines(table.to_batches()[0])
        assert lines is not None
        assert "".join(lines.to_pylist()).encode() == writer_csv(table)


def test_csv_lines_refuse_line_breaks() -> None:
    with pytest.raises(SchemaError, match="line breaks"):
        csv_lines(pa.record_batch({"s": pa.array(["ok", "two\nlines"])}))


def test_categorical_is_searchsorted() -> None:
    rng = np.random.default_rng(5)
    for n in (1, 2, 8, 24, 690, 5000):
        weights = rng.random(n) ** 3
        weights[rng.random(n) < 0.3] = 0
        weights[0] = 1
        cdf = np.cumsum(weights / weights.sum())
        u = np.concatenate([rng.random(100_000), cdf[cdf < 1], np.nextafter(cdf[cdf < 1], 0), [0.0]])
        expected = np.searchsorted(cdf, u, side="right").clip(0, n - 1)
        assert (categorical(cdf, u) == expected).all()


def test_uuid_text_is_the_canonical_form() -> None:
    raw = np.frombuffer(np.random.default_rng(3).bytes(16 * 5000), dtype=np.uint8).reshape(5000, 16)
    text = uuid_text(raw)
    assert [bytes(row).decode() for row in text] == [str(uuid.UUID(bytes=r.tobytes())) for r in raw]
    assert (text == _uuid_text_bytewise(raw)).all()


def test_concat_rows_is_binary_join_element_wise() -> None:
    rng = np.random.default_rng(2)
    vocab = pa.array(["", "a", "bb", "ccc", "dé"])
    other = pa.array([f"x{i}" for i in range(50)])
    rows = rng.integers(0, len(vocab), 1000)
    expected = pc.binary_join_element_wise(
        vocab.take(pa.array(rows)), "-", other.take(pa.array(rows * 7 % 50)), "!", ""
    )
    got = concat_rows([(vocab, rows), "-", other.take(pa.array(rows * 7 % 50)), "!"], 1000)
    assert got.equals(expected)
    assert concat_rows([other, ","], 50).to_pylist() == [f"x{i}," for i in range(50)]


EMAILS = """
tables:
  t:
    rows: 20000
    columns:
      name: {type: string, generator: full_name}
      email: {type: string, generator: email, from: name}
      again: {type: string, generator: email, from: copy}
      copy: {type: string, generator: template, template: "{name}", hidden: true}
"""


def test_email_from_a_full_name_matches_the_general_path() -> None:
    schema = load_schema_text(EMAILS, "emails.yaml")
    spec = schema.tables["t"]
    ctx = BlockContext(seed=3, table="t", spec=spec, block=0, start=0, n=20000, parents={})
    for name in ("name", "copy", "email"):
        ctx.columns[name] = generate_column(name, spec.columns[name], ctx)
    fast = ctx.columns["email"]
    del ctx.name_rows["name"]  # no vocabulary rows: the regex path over the name text
    slow = generate_column("email", spec.columns["email"], ctx)
    assert fast.equals(slow)
    # every pair of the vocabularies, not just those sampled: parts cleaned apart = whole name cleaned
    parts = _email_parts()
    assert parts is not None
    first, last = vocabulary("first_name")[0], vocabulary("last_name")[0]
    fi, li = np.divmod(np.arange(len(first) * len(last)), len(last))
    whole = _email_local(
        pc.utf8_lower(pc.binary_join_element_wise(first.take(pa.array(fi)), last.take(pa.array(li)), " "))
    )
    assert concat_rows([(parts[0], fi), (parts[1], li)], len(fi)).equals(whole)


def test_spilled_pieces_round_trip(tmp_path: Path) -> None:
    data = b"1,a\n2,b\n"
    gathered = [pa.py_buffer(b"3,c\n"), pa.py_buffer(b""), pa.py_buffer(b"4,dd\n")]
    result = ChunkResult(
        "t",
        0,
        4,
        [
            Piece(None, np.arange(2), data, np.array([4, 8])),
            Piece(None, np.arange(2), None, np.array([4, 9]), parts=gathered),
        ],
        [],
        {},
    )
    spill(result, str(tmp_path))
    assert all(p.csv is None and p.parts is None and p.spill is not None for p in result.pieces)
    buffers: list[bytearray] = [bytearray(b"x" * 100)]  # longer than needed: only the piece's bytes count
    for slot, piece in enumerate(result.pieces):
        unspill(piece, buffers, slot)
    assert [bytes(p.csv or b"") for p in result.pieces] == [data, b"3,c\n4,dd\n"]
    assert not list(tmp_path.iterdir())  # the files are gone once read
    for piece in result.pieces:
        release(piece)
        assert piece.csv is None
    # the buffers are kept for the next chunk, and a bigger piece grows its buffer
    big = ChunkResult("t", 1, 1, [Piece(None, np.arange(1), b"z" * 1000, np.array([1000]))], [], {})
    spill(big, str(tmp_path))
    unspill(big.pieces[0], buffers, 1)
    assert bytes(big.pieces[0].csv or b"") == b"z" * 1000
    release(big.pieces[0])


def test_pieces_travel_in_a_slot_when_they_fit_and_as_files_when_not(tmp_path: Path) -> None:
    path = tmp_path / "slot-0.bin"
    path.write_bytes(b"")
    os.truncate(path, 64)
    slot = Slot(str(path), 64)

    def chunk(index: int, text: bytes) -> ChunkResult:
        parts = [pa.py_buffer(text[:3]), pa.py_buffer(b""), pa.py_buffer(text[3:])]
        ends = np.array([len(text)])
        pieces = [Piece(None, np.arange(1), text, ends), Piece(1, np.arange(1), None, ends, parts=parts)]
        return ChunkResult("t", index, 2, pieces, [], {})

    small = spill(chunk(0, b"1,abc\n"), str(tmp_path), slot)
    assert [p.slot for p in small.pieces] == [(str(path), 0, 6), (str(path), 6, 6)]
    assert all(p.csv is None and p.parts is None and p.spill is None for p in small.pieces)
    assert csv_bytes(small) == 12
    buffers: list[bytearray] = []
    for i, piece in enumerate(small.pieces):
        unspill(piece, buffers, i)
    assert [bytes(p.csv or b"") for p in small.pieces] == [b"1,abc\n", b"1,abc\n"]
    assert not buffers  # read in place from the mapping, no copy
    for piece in small.pieces:
        release(piece)
        assert piece.csv is None
    # the slot is used again for the next chunk; one too large for it travels as files
    again = spill(chunk(1, b"2,de\n"), str(tmp_path), slot)
    unspill(again.pieces[1], buffers, 0)
    assert bytes(again.pieces[1].csv or b"") == b"2,de\n"
    release(again.pieces[1])
    big = spill(chunk(2, b"3," + b"x" * 40 + b"\n"), str(tmp_path), slot)
    assert all(p.slot is None and p.spill is not None for p in big.pieces)
    for i, piece in enumerate(big.pieces):
        unspill(piece, buffers, i)
        assert bytes(piece.csv or b"") == b"3," + b"x" * 40 + b"\n"
        release(piece)
    forget_mappings(str(tmp_path))


def test_two_workers_carry_chunks_in_slots_and_grow_them_for_larger_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = load_schema_text(
        "tables: {narrow: {rows: 200000, columns: {id: {type: int, generator: sequence}}}, "
        "wide: {rows: 3000000, main: true, columns: {id: {type: int, generator: sequence}, "
        "note: {type: string, generator: words, min_words: 5, max_words: 9}}}}",
        "s.yaml",
    )
    one = generate(schema, tmp_path / "one", GenerateOptions(chunk_rows=65_536))
    travelled: list[str] = []

    def counting(piece: Piece, buffers: list[bytearray], slot: int) -> None:
        travelled.append("slot" if piece.slot else "file" if piece.spill else "bytes")
        unspill(piece, buffers, slot)

    # the fork server outlives a run: once it is up, workers start in milliseconds and this process makes
    # few chunks itself while they do
    generate(schema, tmp_path / "warm", GenerateOptions(rows=10, workers=2))
    monkeypatch.setattr(engine, "unspill", counting)
    two = generate(schema, tmp_path / "two", GenerateOptions(chunk_rows=65_536, workers=2))
    assert [(f.path, f.sha256) for f in one.manifest.files] == [
        (f.path, f.sha256) for f in two.manifest.files
    ]
    assert travelled.count("slot") >= 25  # of 50 chunks: the first ones are made here, or travel as files
    slots = _Slots(str(tmp_path), 2, 1_000_000)
    assert slots.capacity == 2 * MIB  # the largest chunk seen plus an eighth, in whole MiB
    taken = slots.take()
    assert taken is not None
    assert os.path.getsize(taken.path) == 2 * MIB
    wide = ChunkResult("t", 0, 1, [Piece(None, np.arange(1), b"", np.array([3_000_000]))], [], {})
    slots.observe(wide)
    assert slots.capacity == 4 * MIB
    assert slots.take() is not None
    assert slots.take() is None  # every slot in use: the next chunk travels as a file
    slots.give(taken)
    grown = slots.take()
    assert grown is not None
    assert grown.capacity == os.path.getsize(grown.path) == 4 * MIB


def test_slots_give_way_to_files_when_the_folder_has_no_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)  # the engine calls os.posix_fallocate
    slots = _Slots(str(tmp_path), 3, 1_000_000)
    assert slots.take() is None  # never a sparse slot that could kill a worker with SIGBUS when written
    slots.observe(ChunkResult("t", 0, 1, [Piece(None, np.arange(1), b"", np.array([3_000_000]))], [], {}))
    assert slots.take() is None  # and not tried again for every chunk
    assert all(os.path.getsize(tmp_path / f"slot-{i}.bin") == 0 for i in range(3))
    schema = load_schema_text(
        "tables: {t: {rows: 400000, main: true, columns: {id: {type: int, generator: sequence}, "
        "note: {type: string, generator: words, min_words: 5, max_words: 5}}}}",
        "s.yaml",
    )
    one = generate(schema, tmp_path / "one", GenerateOptions(chunk_rows=65_536))
    two = generate(schema, tmp_path / "two", GenerateOptions(chunk_rows=65_536, workers=2))
    assert [f.sha256 for f in one.manifest.files] == [f.sha256 for f in two.manifest.files]


def _spill_parent() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def test_two_workers_with_a_size_target_leave_no_spill_files(tmp_path: Path) -> None:
    schema = load_schema_text(
        "tables: {t: {rows: 10, main: true, columns: {id: {type: int, generator: sequence}, "
        "note: {type: string, generator: words, min_words: 5, max_words: 5}}}}",
        "s.yaml",
    )
    parent = _spill_parent()
    before = set(parent.glob("headwater-chunks-*"))
    one = generate(schema, tmp_path / "one", GenerateOptions(size=3_000_000, chunk_rows=65_536))
    two = generate(schema, tmp_path / "two", GenerateOptions(size=3_000_000, chunk_rows=65_536, workers=2))
    assert [(f.path, f.sha256) for f in one.manifest.files] == [
        (f.path, f.sha256) for f in two.manifest.files
    ]
    assert not set(parent.glob("headwater-chunks-*")) - before


def test_chunk_folders_of_a_killed_generator_are_removed_by_the_next(tmp_path: Path) -> None:
    parent = _spill_parent()
    child = subprocess.Popen(["sleep", "0"])  # its process id is free once it has exited
    child.wait()
    stale = parent / f"headwater-chunks-{child.pid}-test"
    stale.mkdir()
    (stale / "1-0.csv").write_bytes(b"x" * 100)
    alive = parent / f"headwater-chunks-{os.getppid()}-test"  # a running process: kept
    alive.mkdir()
    try:
        schema = load_schema_text(
            "tables: {t: {rows: 10, main: true, columns: {id: {type: int, generator: sequence}}}}", "s.yaml"
        )
        generate(schema, tmp_path / "out", GenerateOptions(rows=200_000, chunk_rows=65_536, workers=2))
        assert not stale.exists()
        assert alive.is_dir()
    finally:
        shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(alive, ignore_errors=True)


def test_to_decimal_is_the_cast_of_the_rounded_floats() -> None:
    rng = np.random.default_rng(1)
    for scale in range(7):
        for magnitude in (1e-3, 1.0, 1e3, 1e6, 1e9):
            values = np.concatenate(
                [
                    rng.normal(0, magnitude, 20_000),
                    rng.lognormal(0, 3, 20_000) * magnitude,
                    (np.arange(-500, 500) + 0.5) / 10**scale,  # ties
                ]
            )
            kind = pa.decimal128(38, scale)
            assert to_decimal(values, kind).equals(pa.array(np.round(values, scale)).cast(kind, safe=False))


def test_a_worker_drops_its_chunk_once_the_writer_has_enough(tmp_path: Path) -> None:
    """With a size target the writing process stops the chunks still in the workers (a stop file they
    look for before each block) instead of waiting for rows it will not write."""
    schema = load_schema_text(
        "tables: {t: {rows: 10, main: true, columns: {id: {type: int, generator: sequence}}}}", "s.yaml"
    )
    plan = engine._Plan(schema, 1, 0.0, "csv", {}, {}, 4)
    stop = tmp_path / "stop-t"
    assert engine._run_chunk("t", 0, None, plan, stop=str(stop)).rows == 4 * BLOCK_ROWS
    stop.touch()
    with pytest.raises(engine._Stopped):
        engine._run_chunk("t", 1, None, plan, stop=str(stop))

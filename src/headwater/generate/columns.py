"""Column generators: each turns a block of row positions into one Arrow array, vectorised.

A generator reads its parameters from the schema, its random numbers from the block's own stream
(``ctx.rng(column)``) and, for derived columns, the arrays already made for the same block
(``ctx.columns``). No generator loops over rows in Python.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.generate.strings import concat_rows
from headwater.generate.vocab import vocabulary
from headwater.schema import model as m
from headwater.schema.model import ColumnSpec, ColumnType, TableSpec

BLOCK_ROWS = 65_536
"""Rows per random-number block. Part of the determinism contract: every block's streams derive from
(seed, table, column, block index), so output is identical whatever the chunk size or worker count."""

EPOCH = dt.datetime(1970, 1, 1)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_PAIR = np.arange(1 << 16)
_HEX_QUADS = (
    np.stack([_HEX[_PAIR >> 4 & 15], _HEX[_PAIR & 15], _HEX[_PAIR >> 12], _HEX[_PAIR >> 8 & 15]], axis=1)
    .astype(np.uint8)
    .view(np.uint32)
    .ravel()
)
"""Two bytes read as a little-endian uint16 -> their four hex digits, as the uint32 of those ASCII bytes."""
_DASH, _LOW32 = np.uint64(ord("-")), np.uint64(0xFFFFFFFF)
_U8, _U16, _U24, _U32, _U40, _U48, _U56 = (np.uint64(k) for k in (8, 16, 24, 32, 40, 48, 56))
_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)
_UPPER = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
_ALNUM = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)


def arrow_type(col: ColumnSpec) -> pa.DataType:
    """The Arrow type a column is generated as."""
    t = col.type
    if t is ColumnType.INT:
        return pa.int64()
    if t is ColumnType.FLOAT:
        return pa.float64()
    if t is ColumnType.DECIMAL:
        return pa.decimal128(col.precision, col.scale)
    if t is ColumnType.BOOL:
        return pa.bool_()
    if t is ColumnType.DATE:
        return pa.date32()
    if t is ColumnType.TIMESTAMP:
        return pa.timestamp("s")
    return pa.string()


def stable_id(name: str) -> int:
    """A stable 32-bit number for a name (Python's hash() is salted per process)."""
    return zlib.crc32(name.encode())


@dataclass
class ParentTable:
    """A generated table that others reference: its clean columns, kept whole in memory."""

    rows: int
    columns: dict[str, pa.Array]


@dataclass
class BlockContext:
    """What a generator may read while making one block of a table."""

    seed: int
    table: str
    spec: TableSpec
    block: int
    start: int
    n: int
    parents: dict[str, ParentTable]
    columns: dict[str, pa.Array] = field(default_factory=dict)
    fk_rows: dict[str, np.ndarray] = field(default_factory=dict)
    name_rows: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """For ``full_name`` columns: the first- and last-name vocabulary rows of each value (``email``
    builds its local part from pre-cleaned vocabularies instead of re-parsing the names)."""

    def rng(self, column: str, salt: str = "") -> np.random.Generator:
        entropy = [self.seed & 0xFFFFFFFF, stable_id(self.table), stable_id(column + salt), self.block]
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))

    @property
    def positions(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.n, dtype=np.int64)


# ------------------------------------------------------------------------------------------ helpers
def fixed_width_strings(chars: np.ndarray) -> pa.Array:
    """An (n, w) uint8 matrix of ASCII bytes as a string array, without a Python loop."""
    n, w = chars.shape
    offsets = np.arange(0, (n + 1) * w, w, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars)))


def affine_permutation(index: np.ndarray, space: int, salt: int) -> np.ndarray:
    """A bijection of 0..space-1 (distinct inputs give distinct outputs), scrambled by ``salt``:
    ``(a * i + b) mod space`` with ``a`` near the golden section of ``space`` and coprime to it."""
    a = max(1, int(space * 0.6180339887498949)) % space or 1
    while math.gcd(a, space) != 1:
        a += 1
    b = salt % space
    if space < (1 << 31):
        return np.asarray((index * a + b) % space, dtype=np.int64)
    # the product would overflow int64: Python integers, only for very large spaces (unique patterns)
    return np.array([(int(i) * a + b) % space for i in index.tolist()], dtype=np.int64)


@cache
def _zipf_cdf(a: float, n: int) -> np.ndarray:
    weights = np.arange(1, n + 1, dtype=np.float64) ** -a
    cdf = np.cumsum(weights)
    return np.asarray(cdf / cdf[-1])


def zipf_ranks(rng: np.random.Generator, a: float, n_values: int, size: int) -> np.ndarray:
    """0-based ranks over ``n_values`` with P(rank k) proportional to (k+1)**-a."""
    if n_values <= 5_000_000:
        ranks = np.searchsorted(_zipf_cdf(a, n_values), rng.random(size), side="right")
        return np.asarray(ranks.clip(0, n_values - 1), dtype=np.int64)
    # continuous bounded power law, inverse CDF, for very large domains
    u = rng.random(size)
    if abs(a - 1.0) < 1e-9:
        x = np.exp(u * np.log(n_values + 1.0))
    else:
        lo, hi = 1.0, (n_values + 1.0) ** (1.0 - a)
        x = (lo + u * (hi - lo)) ** (1.0 / (1.0 - a))
    return np.asarray(np.floor(x - 1.0).astype(np.int64).clip(0, n_values - 1), dtype=np.int64)


def to_decimal(values: np.ndarray, kind: pa.Decimal128Type) -> pa.Array:
    """Floats as decimals rounded to the type's scale: the same values as casting
    ``np.round(values, scale)``, built from the scaled integers directly (a cast costs ~8x more)."""
    scaled = np.rint(np.asarray(values, dtype=np.float64) * 10.0**kind.scale)
    if len(scaled) == 0 or not np.isfinite(scaled).all() or np.abs(scaled).max() >= 2.0**50:
        return pa.array(np.round(values, kind.scale)).cast(kind, safe=False)
    words = np.empty((len(scaled), 2), dtype=np.int64)  # little-endian 128-bit: low word, sign word
    words[:, 0] = scaled.astype(np.int64)
    words[:, 1] = words[:, 0] >> 63
    if sys.byteorder != "little":  # pragma: no cover
        return pa.array(np.round(values, kind.scale)).cast(kind, safe=False)
    return pa.Array.from_buffers(kind, len(scaled), [None, pa.py_buffer(words)])


def numbers_to_arrow(values: np.ndarray, col: ColumnSpec, decimals: int | None = None) -> pa.Array:
    """Float or int NumPy values as the column's Arrow type (rounded for ints and decimals)."""
    t = col.type
    if t is ColumnType.INT:
        return pa.array(np.rint(values).astype(np.int64))
    if t is ColumnType.DECIMAL:
        return to_decimal(values, arrow_type(col))
    if decimals is not None:
        values = np.round(values, decimals)
    return pa.array(values.astype(np.float64))


def _clip(values: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    if lo is None and hi is None:
        return values
    return np.asarray(np.clip(values, -np.inf if lo is None else lo, np.inf if hi is None else hi))


def _strings(col_values: pa.Array) -> pa.Array:
    return col_values if pa.types.is_string(col_values.type) else pc.cast(col_values, pa.string())


def _slug(values: pa.Array) -> pa.Array:
    lowered = pc.utf8_lower(_strings(values))
    dashed = pc.replace_substring_regex(lowered, r"[^a-z0-9]+", "-")
    return pc.utf8_trim(dashed, "-")


_GUIDE_BITS = 16


@lru_cache(maxsize=256)
def _guide(cdf_bytes: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A bucket table for :func:`categorical`: for each of 2**16 equal slices of [0, 1), the
    answer when the whole slice falls between two cdf steps, and whether it does."""
    cdf = np.frombuffer(cdf_bytes, dtype=np.float64)
    edges = np.arange((1 << _GUIDE_BITS) + 1, dtype=np.float64) / (1 << _GUIDE_BITS)
    lo = np.searchsorted(cdf, edges[:-1], side="right")  # steps <= the slice's start
    hi = np.searchsorted(cdf, edges[1:], side="left")  # steps < the slice's end
    return cdf, lo.astype(np.int32), lo != hi


def categorical(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``np.searchsorted(cdf, u, side="right").clip(0, len(cdf) - 1)`` for ``u`` in [0, 1), exactly,
    but through a cached bucket table (binary search only where a cdf step falls inside a bucket):
    several times faster for the random, unsorted ``u`` of a block."""
    table, first, ambiguous = _guide(np.ascontiguousarray(cdf, dtype=np.float64).tobytes())
    bucket = (u * (1 << _GUIDE_BITS)).astype(np.intp)
    idx = first[bucket].astype(np.int64)
    odd = np.flatnonzero(ambiguous[bucket])
    if len(odd):
        idx[odd] = np.searchsorted(table, u[odd], side="right")
    return np.asarray(idx.clip(0, len(cdf) - 1))


@cache
def _vocab_cdf(kind: str) -> np.ndarray | None:
    weights = vocabulary(kind)[1]
    return None if weights is None else np.cumsum(weights)


def _vocab_index(rng: np.random.Generator, kind: str, n: int, zipf_a: float | None = None) -> np.ndarray:
    """Rows of vocabulary ``kind`` for ``n`` values: zipf-skewed, weighted or uniform."""
    values = vocabulary(kind)[0]
    cdf = _vocab_cdf(kind)
    if zipf_a is not None:
        return affine_permutation(zipf_ranks(rng, zipf_a, len(values), n), len(values), stable_id(kind))
    if cdf is not None:
        return categorical(cdf, rng.random(n))
    return rng.integers(0, len(values), n)


def _sample_vocab(rng: np.random.Generator, kind: str, n: int, zipf_a: float | None = None) -> pa.Array:
    return vocabulary(kind)[0].take(pa.array(_vocab_index(rng, kind, n, zipf_a)))


# ------------------------------------------------------------------------------------------ generators
def gen_sequence(g: m.SequenceGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    ints = pa.array(g.start + g.step * ctx.positions)
    if col.type is ColumnType.INT:
        return ints
    text = pc.cast(ints, pa.string())
    if g.width:
        text = pc.utf8_lpad(text, g.width, "0")
    return pc.binary_join_element_wise(g.prefix or "", text, "") if g.prefix else text


def gen_uniform(g: m.UniformGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    rng = ctx.rng(name)
    if col.type is ColumnType.INT:
        lo, hi = math.ceil(g.min), math.floor(g.max)
        if col.unique:
            space = hi - lo + 1
            return pa.array(lo + affine_permutation(ctx.positions, space, stable_id(name)))
        return pa.array(rng.integers(lo, hi + 1, ctx.n, dtype=np.int64))
    return numbers_to_arrow(rng.uniform(g.min, g.max, ctx.n), col, g.decimals)


def gen_normal(g: m.NormalGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    values = _clip(ctx.rng(name).normal(g.mean, g.std, ctx.n), g.min, g.max)
    return numbers_to_arrow(values, col, g.decimals)


def gen_lognormal(g: m.LognormalGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    values = _clip(ctx.rng(name).lognormal(g.mu, g.sigma, ctx.n), g.min, g.max)
    return numbers_to_arrow(values, col, g.decimals)


def gen_zipf(g: m.ZipfGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    return pa.array(g.min + zipf_ranks(ctx.rng(name), g.a, g.max - g.min + 1, ctx.n))


def gen_boolean(g: m.BooleanGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    return pa.array(ctx.rng(name).random(ctx.n) < g.p)


def gen_choice(g: m.ChoiceGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    rng = ctx.rng(name)
    values = pa.array(g.values).cast(arrow_type(col))
    if g.weights is None:
        idx = rng.integers(0, len(values), ctx.n)
    else:
        w = np.asarray(g.weights, dtype=np.float64)
        idx = categorical(np.cumsum(w / w.sum()), rng.random(ctx.n))
    return values.take(pa.array(idx))


def parse_pattern(pattern: str) -> list[bytes | np.ndarray]:
    """The pattern as a list of literal bytes and alphabets (one per placeholder)."""
    parts: list[bytes | np.ndarray] = []
    escaped = False
    for ch in pattern:
        if escaped:
            parts.append(ch.encode())
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "#":
            parts.append(_DIGITS)
        elif ch == "?":
            parts.append(_UPPER)
        elif ch == "*":
            parts.append(_ALNUM)
        else:
            parts.append(ch.encode())
    return parts


def pattern_space(pattern: str) -> int:
    """How many distinct strings a pattern can make."""
    return math.prod(len(p) for p in parse_pattern(pattern) if isinstance(p, np.ndarray))


def gen_pattern(g: m.PatternGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    parts = parse_pattern(g.pattern)
    width = sum(len(p) if isinstance(p, bytes) else 1 for p in parts)
    chars = np.empty((ctx.n, width), dtype=np.uint8)
    alphabets = [(i, p) for i, p in enumerate(parts) if isinstance(p, np.ndarray)]
    choice: dict[int, np.ndarray] = {}
    if col.unique:
        # mixed-radix digits of a permuted row number: distinct rows give distinct strings
        unique_part: list[tuple[int, np.ndarray]] = []
        space = 1
        for i, alpha in reversed(alphabets):
            if space * len(alpha) >= (1 << 62):
                break
            unique_part.append((i, alpha))
            space *= len(alpha)
        code = affine_permutation(ctx.positions, space, stable_id(name))
        for i, alpha in unique_part:
            choice[i] = alpha[code % len(alpha)]
            code = code // len(alpha)
    rng = ctx.rng(name)
    pos = 0
    for i, part in enumerate(parts):
        if isinstance(part, bytes):
            chars[:, pos : pos + len(part)] = np.frombuffer(part, dtype=np.uint8)
            pos += len(part)
            continue
        chars[:, pos] = choice[i] if i in choice else part[rng.integers(0, len(part), ctx.n)]
        pos += 1
    return fixed_width_strings(chars)


def uuid_text(raw: np.ndarray) -> np.ndarray:
    """(n, 16) uint8 UUID bytes as an (n, 36) uint8 matrix of their canonical text (lower-case
    hex, dashes after characters 8, 12, 16 and 20)."""
    n = len(raw)
    if sys.byteorder != "little":  # pragma: no cover - the arithmetic below assumes little-endian
        return _uuid_text_bytewise(raw)
    # each pair of bytes as its four hex digits: (n, 4) words of 8 digits (bytes 0-3, 4-7, 8-11, 12-15)
    h = _HEX_QUADS[np.ascontiguousarray(raw).view(np.uint16)].view(np.uint64)
    out = np.empty(n * 36 + 4, dtype=np.uint8)  # 4 spare bytes: the last 8-byte store ends there

    def field(offset: int, dtype: type[np.unsignedinteger]) -> np.ndarray:
        return np.ndarray((n,), dtype=dtype, buffer=out, offset=offset, strides=(36,))

    a, c = h[:, 1], h[:, 2]
    field(0, np.uint64)[:] = h[:, 0]
    # characters 8-15 are "-" a0 a1 a2 a3 "-" a4 a5; 16-23 are a6 a7 "-" c0 c1 c2 c3 "-"
    field(8, np.uint64)[:] = _DASH | (a & _LOW32) << _U8 | _DASH << _U40 | (a >> _U32) << _U48
    field(16, np.uint64)[:] = a >> _U48 | _DASH << _U16 | (c & _LOW32) << _U24 | _DASH << _U56
    field(24, np.uint32)[:] = (c >> _U32).astype(np.uint32)
    field(28, np.uint64)[:] = h[:, 3]
    return out[: n * 36].reshape(n, 36)


def _uuid_text_bytewise(raw: np.ndarray) -> np.ndarray:
    n = len(raw)
    hexed = np.empty((n, 32), dtype=np.uint8)
    hexed[:, 0::2] = _HEX[raw >> 4]
    hexed[:, 1::2] = _HEX[raw & 0x0F]
    chars = np.full((n, 36), ord("-"), dtype=np.uint8)
    for dst, src, width in ((0, 0, 8), (9, 8, 4), (14, 12, 4), (19, 16, 4), (24, 20, 12)):
        chars[:, dst : dst + width] = hexed[:, src : src + width]
    return chars


def gen_uuid(g: m.UuidGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    raw = np.frombuffer(ctx.rng(name).bytes(16 * ctx.n), dtype=np.uint8).reshape(ctx.n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    return fixed_width_strings(uuid_text(raw))


def gen_vocab(g: m.VocabGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    rng = ctx.rng(name)
    if g.generator == "full_name":
        first = _vocab_index(rng, "first_name", ctx.n)
        last = _vocab_index(rng, "last_name", ctx.n, g.zipf_a)
        ctx.name_rows[name] = (first, last)
        return concat_rows(
            [(vocabulary("first_name")[0], first), " ", (vocabulary("last_name")[0], last)], ctx.n
        )
    if g.generator == "company":
        a = _sample_vocab(rng, "last_name", ctx.n, g.zipf_a)
        b = _sample_vocab(rng, "last_name", ctx.n)
        suffix = _sample_vocab(rng, "company_suffix", ctx.n)
        two_names = pc.binary_join_element_wise(a, "-", b, "")
        return pc.if_else(
            pa.array(rng.random(ctx.n) < 0.6), pc.binary_join_element_wise(a, suffix, " "), two_names
        )
    return _sample_vocab(rng, g.generator, ctx.n, g.zipf_a)


def _email_local(base: pa.Array) -> pa.Array:
    """An e-mail local part from lower-case text: whitespace runs to dots, other characters dropped."""
    return pc.replace_substring_regex(pc.replace_substring_regex(base, r"\s+", "."), r"[^a-z0-9.]", "")


@cache
def _email_parts() -> tuple[pa.Array, pa.Array, pa.Array, pa.Array] | None:
    """Pre-cleaned vocabularies for e-mails of ``full_name`` values: first names with their dot,
    last names, the optional number (``""``, ``"1"`` .. ``"999"``) and ``@domain``. None when a
    name starts or ends with whitespace, where cleaning the parts apart would differ from
    cleaning the whole name."""
    first, last = vocabulary("first_name")[0], vocabulary("last_name")[0]
    for values in (first, last):
        if pc.any(pc.match_substring_regex(values, r"^\s|\s$")).as_py():
            return None
    return (
        pc.binary_join_element_wise(_email_local(pc.utf8_lower(first)), ".", ""),
        _email_local(pc.utf8_lower(last)),
        pa.array([""] + [str(i) for i in range(1, 1000)], pa.string()),
        pc.binary_join_element_wise("@", vocabulary("domain")[0], ""),
    )


def warm_caches() -> None:
    """Load the vocabularies and the tables derived from them (done once, before workers fork)."""
    for kind in ("first_name", "last_name", "country", "word", "company_suffix", "city", "domain"):
        cdf = _vocab_cdf(kind)
        if cdf is not None:
            categorical(cdf, np.zeros(1))
    _email_parts()


def gen_email(g: m.EmailGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    rng = ctx.rng(name)
    parts = _email_parts() if g.from_ in ctx.name_rows else None
    if parts is not None and g.from_ is not None and ctx.columns[g.from_].null_count == 0:
        # the same text as the general path below, assembled from cleaned vocabulary parts
        first, last = ctx.name_rows[g.from_]
        number = rng.integers(1, 1000, ctx.n)
        number = np.where(rng.random(ctx.n) < 0.5, number, 0)
        domain = _vocab_index(rng, "domain", ctx.n)
        firsts, lasts, numbers, domains = parts
        return concat_rows([(firsts, first), (lasts, last), (numbers, number), (domains, domain)], ctx.n)
    if g.from_:
        base = pc.utf8_lower(_strings(ctx.columns[g.from_]))
    else:
        first = _sample_vocab(rng, "first_name", ctx.n)
        base = pc.utf8_lower(pc.binary_join_element_wise(first, _sample_vocab(rng, "last_name", ctx.n), " "))
    local = _email_local(base)
    number = rng.integers(1, 1000, ctx.n)
    suffix = pc.if_else(pa.array(rng.random(ctx.n) < 0.5), pc.cast(pa.array(number), pa.string()), "")
    return pc.binary_join_element_wise(local, suffix, "@", _sample_vocab(rng, "domain", ctx.n), "")


def gen_text(g: m.TextGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    rng = ctx.rng(name)
    counts = rng.integers(g.min_words, g.max_words + 1, ctx.n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    words = _sample_vocab(rng, "word", int(offsets[-1]))
    text = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), words), " ")
    if g.generator == "sentence":
        text = pc.utf8_capitalize(text)
    if g.max_chars is not None:
        room = g.max_chars - (1 if g.generator == "sentence" else 0)
        text = pc.utf8_rtrim_whitespace(pc.utf8_slice_codeunits(text, 0, max(room, 1)))
    if g.generator == "sentence":
        text = pc.binary_join_element_wise(text, ".", "")
    return text


def gen_url(g: m.UrlGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    rng = ctx.rng(name)
    if g.from_:
        slug = _slug(ctx.columns[g.from_])
    else:
        slug = pc.binary_join_element_wise(
            _sample_vocab(rng, "word", ctx.n),
            pc.cast(pa.array(rng.integers(1, 100_000, ctx.n)), pa.string()),
            "-",
        )
        slug = pc.utf8_lower(slug)
    domain: pa.Array | str = g.domain or _sample_vocab(rng, "domain", ctx.n)
    path = g.path.strip("/")
    prefix = f"/{path}/" if path else "/"
    return pc.binary_join_element_wise("https://", domain, prefix, slug, "")


def gen_template(g: m.TemplateGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    import re

    pieces: list[pa.Array | str] = []
    last = 0
    for match in re.finditer(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", g.template):
        pieces.append(g.template[last : match.start()])
        pieces.append(_strings(ctx.columns[match.group(1)]))
        last = match.end()
    pieces.append(g.template[last:])
    arrays = [p for p in pieces if not isinstance(p, str) or p]
    if len(arrays) == 1 and isinstance(arrays[0], pa.Array):
        return arrays[0]
    if not any(isinstance(p, pa.Array) for p in arrays):
        return pa.array([g.template] * ctx.n, pa.string())
    return pc.binary_join_element_wise(*arrays, "")


def gen_regex_replace(g: m.RegexReplaceGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    return pc.replace_substring_regex(_strings(ctx.columns[g.from_]), g.pattern, g.replacement)


def _epoch_seconds(value: dt.datetime) -> int:
    return int((value - EPOCH).total_seconds())


def gen_timestamp(g: m.TimestampGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    rng = ctx.rng(name)
    lo, hi = _epoch_seconds(g.start), _epoch_seconds(g.end)
    season = g.seasonality
    if season is None:
        secs = rng.integers(lo, hi, ctx.n, dtype=np.int64)
    else:
        first_day, last_day = lo // 86400, (hi - 1) // 86400
        days = np.arange(first_day, last_day + 1, dtype=np.int64)
        day_w = np.ones(len(days))
        if season.weekly:
            day_w = np.asarray(season.weekly, dtype=np.float64)[(days + 3) % 7]  # 1970-01-01 was a Thursday
        day = days[categorical(np.cumsum(day_w / day_w.sum()), rng.random(ctx.n))]
        if season.daily:
            hw = np.asarray(season.daily, dtype=np.float64)
            hour = categorical(np.cumsum(hw / hw.sum()), rng.random(ctx.n))
        else:
            hour = rng.integers(0, 24, ctx.n)
        secs = (day * 86400 + hour * 3600 + rng.integers(0, 3600, ctx.n)).clip(lo, hi - 1)
    return _temporal(secs, col)


def _temporal(secs: np.ndarray, col: ColumnSpec) -> pa.Array:
    if col.type is ColumnType.DATE:
        return pa.array((secs // 86400).astype(np.int32), pa.date32())
    return pa.array(secs.astype(np.int64), pa.timestamp("s"))


def _as_seconds(values: pa.Array) -> pa.Array:
    if pa.types.is_date32(values.type):
        return pc.multiply(pc.cast(pc.cast(values, pa.int32()), pa.int64()), 86400)
    return pc.cast(pc.cast(values, pa.timestamp("s")), pa.int64())


def gen_after(g: m.AfterGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    lo, hi = m.parse_duration(g.min), m.parse_duration(g.max)
    offsets = ctx.rng(name).integers(int(lo), int(hi) + 1, ctx.n, dtype=np.int64)
    secs = pc.add(_as_seconds(ctx.columns[g.from_]), pa.array(offsets))
    if col.type is ColumnType.DATE:
        return pc.cast(pc.cast(pc.divide(secs, 86400), pa.int32()), pa.date32())
    return pc.cast(secs, pa.timestamp("s"))


def gen_foreign_key(g: m.ForeignKeyGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    parent = ctx.parents[g.table]
    rng = ctx.rng(name)
    if g.distribution == "zipf":
        rows = affine_permutation(zipf_ranks(rng, g.a, parent.rows, ctx.n), parent.rows, stable_id(name))
    else:
        rows = rng.integers(0, parent.rows, ctx.n, dtype=np.int64)
    ctx.fk_rows[name] = rows
    return parent.columns[g.column].take(pa.array(rows))


def gen_lookup(g: m.LookupGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    via = ctx.spec.columns[g.via].gen
    assert isinstance(via, m.ForeignKeyGen)  # checked by the schema loader
    parent_table = via.table
    return ctx.parents[parent_table].columns[g.column].take(pa.array(ctx.fk_rows[g.via]))


def gen_aggregate(g: m.AggregateGen, col: ColumnSpec, ctx: BlockContext, name: str) -> pa.Array:
    # filled in by the engine once the child table is generated; a placeholder keeps the column order
    return pa.nulls(ctx.n, arrow_type(col))


GENERATORS: dict[type, Callable[..., pa.Array]] = {
    m.SequenceGen: gen_sequence,
    m.UniformGen: gen_uniform,
    m.NormalGen: gen_normal,
    m.LognormalGen: gen_lognormal,
    m.ZipfGen: gen_zipf,
    m.BooleanGen: gen_boolean,
    m.ChoiceGen: gen_choice,
    m.PatternGen: gen_pattern,
    m.UuidGen: gen_uuid,
    m.VocabGen: gen_vocab,
    m.EmailGen: gen_email,
    m.TextGen: gen_text,
    m.UrlGen: gen_url,
    m.TemplateGen: gen_template,
    m.RegexReplaceGen: gen_regex_replace,
    m.TimestampGen: gen_timestamp,
    m.AfterGen: gen_after,
    m.ForeignKeyGen: gen_foreign_key,
    m.LookupGen: gen_lookup,
    m.AggregateGen: gen_aggregate,
}


def with_nulls(values: pa.Array, mask: np.ndarray) -> pa.Array:
    """``values`` with the rows where ``mask`` is True set to null."""
    if not mask.any():
        return values
    return pc.if_else(pa.array(mask), pa.nulls(len(values), values.type), values)


def generate_column(name: str, col: ColumnSpec, ctx: BlockContext) -> pa.Array:
    """One column of one block: the generator's values, cast to the column type, nulls applied."""
    values = GENERATORS[type(col.gen)](col.gen, col, ctx, name)
    want = arrow_type(col)
    if values.type != want:
        values = values.cast(want)
    if col.null_rate > 0:
        values = with_nulls(values, ctx.rng(name, "#nulls").random(ctx.n) < col.null_rate)
    return values

"""SQL models: one ``SELECT`` per ``.sql`` file, in the DuckDB dialect, ordered by what they read.

A model's name is its file name without ``.sql``. Its dependencies are the tables its query reads
(found by parsing it, so they cannot drift from the SQL): other models, or *sources* (the input tables
an engine is given, such as ``src_reviews``). Header comments at the top of the file say more::

    -- Reviews, one row per review_id: the latest revision.     (free text: the description)
    -- materialize: output        output = written as Parquet; view (default) = only read by other models;
                                  table = computed once for several readers, not written
    -- unique: review_id          key columns that must be unique and not null in the result
    -- depends: reviews_latest    optional; when given it must list exactly the tables the query reads

The set is checked when loaded: every model parses, fits the tested SQL subset
(:mod:`headwater.transform.subset`), no two models share a name, and there is no cycle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.abc import Traversable
from importlib.resources import files
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from headwater.errors import SchemaError

_HEADER = re.compile(r"^--\s*([a-z_]+)\s*:\s*(.*?)\s*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Materialize(StrEnum):
    """What an engine does with a model: ``view`` is computed only as part of its readers (again for
    each reader); ``table`` is computed once and kept for its readers (DuckDB: a temp table, spilling to
    disk past the memory limit; Spark: a cached DataFrame), not written; ``output`` is written to
    ``<out>/<model>/*.parquet`` and read back from there by later models."""

    VIEW = "view"
    TABLE = "table"
    OUTPUT = "output"


@dataclass(frozen=True)
class Model:
    """One SQL model."""

    name: str
    sql: str
    depends: tuple[str, ...]
    materialize: Materialize = Materialize.VIEW
    unique: tuple[str, ...] = ()
    description: str = ""
    path: str = ""

    @property
    def is_output(self) -> bool:
        return self.materialize is Materialize.OUTPUT


@dataclass(frozen=True)
class ModelSet:
    """Models in dependency order (every model after the models it reads)."""

    models: tuple[Model, ...]
    sources: tuple[str, ...] = field(default=())

    def __iter__(self) -> Iterator[Model]:
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def get(self, name: str) -> Model:
        for m in self.models:
            if m.name == name:
                return m
        raise SchemaError(f"model {name!r}: not in this set ({', '.join(m.name for m in self.models)})")

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models if m.is_output)

    def select(self, outputs: Iterable[str]) -> ModelSet:
        """The models needed to compute ``outputs`` (and nothing else), still in order."""
        wanted = set(outputs)
        for name in wanted:
            self.get(name)
        needed: set[str] = set()
        stack = list(wanted)
        names = {m.name for m in self.models}
        while stack:
            name = stack.pop()
            if name in needed or name not in names:
                continue
            needed.add(name)
            stack.extend(self.get(name).depends)
        kept = tuple(m for m in self.models if m.name in needed)
        srcs = tuple(s for s in self.sources if any(s in m.depends for m in kept))
        return ModelSet(kept, srcs)


def table_references(sql: str, where: str = "<sql>") -> tuple[str, ...]:
    """The tables a query reads (CTE names excluded), sorted."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except ParseError as exc:
        raise SchemaError(f"{where}: not valid DuckDB SQL: {str(exc).splitlines()[0]}") from exc
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    return tuple(sorted({t.name for t in tree.find_all(exp.Table) if t.name and t.name not in ctes}))


def parse_model(name: str, text: str, where: str = "") -> Model:
    """A model from its file text: header comments, then one query."""
    where = where or f"{name}.sql"
    if not _NAME.match(name):
        raise SchemaError(f"{where}: model names use lower-case letters, digits and '_' (got {name!r})")
    headers: dict[str, str] = {}
    description: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        m = _HEADER.match(stripped)
        if m and m.group(1) in ("materialize", "unique", "depends"):
            headers[m.group(1)] = m.group(2)
        else:
            description.append(stripped.lstrip("-").strip())
    sql = text.strip().rstrip(";").strip()
    if ";" in _strip_comments(sql):
        raise SchemaError(f"{where}: one statement per model; found a ';' inside")
    from headwater.transform.subset import check_subset

    check_subset(sql, where)
    refs = table_references(sql, where)
    if name in refs:
        raise SchemaError(f"{where}: model {name} reads itself")
    if "depends" in headers:
        declared = tuple(d.strip() for d in headers["depends"].split(",") if d.strip())
        if set(declared) != set(refs):
            raise SchemaError(
                f"{where}: '-- depends: {', '.join(declared)}' but the query reads {', '.join(refs) or 'nothing'}"
            )
    try:
        materialize = Materialize(headers.get("materialize", "view").strip().lower())
    except ValueError as exc:
        raise SchemaError(
            f"{where}: materialize {headers['materialize']!r}: expected 'view', 'table' or 'output'"
        ) from exc
    unique = tuple(u.strip() for u in headers.get("unique", "").split(",") if u.strip())
    return Model(name, sql, refs, materialize, unique, " ".join(description), where)


def _strip_comments(sql: str) -> str:
    without_lines = re.sub(r"--[^\n]*", "", sql)
    return re.sub(r"'(?:[^']|'')*'", "''", without_lines)


def order_models(models: Iterable[Model]) -> ModelSet:
    """Models sorted so each comes after what it reads (ties by name); refuses duplicates and cycles."""
    by_name: dict[str, Model] = {}
    for m in models:
        if m.name in by_name:
            raise SchemaError(f"{m.path}: model {m.name} is defined twice (also {by_name[m.name].path})")
        by_name[m.name] = m
    sources = sorted({d for m in by_name.values() for d in m.depends if d not in by_name})
    done: list[Model] = []
    placed: set[str] = set()
    pending = dict(sorted(by_name.items()))
    while pending:
        ready = [m for m in pending.values() if all(d in placed or d not in by_name for d in m.depends)]
        if not ready:
            cycle = ", ".join(sorted(pending))
            raise SchemaError(f"models {cycle}: they read each other in a cycle; break it")
        for m in ready:
            done.append(m)
            placed.add(m.name)
            del pending[m.name]
    return ModelSet(tuple(done), tuple(sources))


def load_models(source: Path | Traversable | str) -> ModelSet:
    """Every ``*.sql`` model in a folder, or in a package (``"headwater.goodreads.models"``)."""
    if isinstance(source, str) and ("/" in source or Path(source).is_dir()):
        source = Path(source)
    root: Path | Traversable = files(source) if isinstance(source, str) else source
    if not root.is_dir():
        raise SchemaError(f"{source}: not a folder of .sql models")
    models = [
        parse_model(
            entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8"), f"{source}/{entry.name}"
        )
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".sql") and entry.is_file()
    ]
    if not models:
        raise SchemaError(f"{source}: holds no .sql models")
    return order_models(models)


def models_from_mapping(texts: Mapping[str, str]) -> ModelSet:
    """A model set from ``{name: sql text}`` (tests, and models built in code)."""
    return order_models(parse_model(name, text) for name, text in texts.items())

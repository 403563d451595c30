"""Load a YAML schema, check it as a whole, and order its tables parents first.

Every problem is reported as one line naming the file and the YAML path:
``schema.yaml: tables.users.columns.age: min must be below max``.
"""

from __future__ import annotations

import hashlib
import json
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from headwater.errors import SchemaError
from headwater.schema import model as m
from headwater.schema.model import NUMERIC, TEMPORAL, ColumnType, Schema, TableSpec

T = ColumnType
STRINGY = frozenset({T.STRING})
# Which column types each generator can fill.
ALLOWED_TYPES: dict[type[m._Spec], frozenset[ColumnType]] = {
    m.SequenceGen: frozenset({T.INT, T.STRING}),
    m.UniformGen: NUMERIC,
    m.NormalGen: NUMERIC,
    m.LognormalGen: NUMERIC,
    m.ZipfGen: frozenset({T.INT}),
    m.BooleanGen: frozenset({T.BOOL}),
    m.ChoiceGen: frozenset(ColumnType) - {T.UUID},
    m.PatternGen: STRINGY,
    m.UuidGen: frozenset({T.UUID, T.STRING}),
    m.VocabGen: STRINGY,
    m.EmailGen: STRINGY,
    m.TextGen: STRINGY,
    m.UrlGen: STRINGY,
    m.TemplateGen: STRINGY,
    m.RegexReplaceGen: STRINGY,
    m.TimestampGen: TEMPORAL,
    m.AfterGen: TEMPORAL,
    m.ForeignKeyGen: frozenset(ColumnType) - {T.BOOL},
    m.LookupGen: frozenset(ColumnType),
    m.AggregateGen: frozenset({T.INT, T.FLOAT, T.DECIMAL}),
}
UNIQUE_CAPABLE = (m.SequenceGen, m.UuidGen, m.PatternGen, m.UniformGen)


def _fail(source: str, path: str, msg: str) -> SchemaError:
    return SchemaError(f"{source}: {path}: {msg}")


def _format_validation(source: str, exc: ValidationError) -> SchemaError:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    # drop the internal 'gen' hop and the union tag Pydantic adds, so paths match the YAML
    cleaned: list[str] = []
    for i, part in enumerate(loc):
        if part == "gen":
            continue
        if i > 0 and loc[i - 1] == "gen" and part in m.GENERATOR_NAMES:
            continue
        cleaned.append(part)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = f"unknown key {cleaned[-1]!r}"
        cleaned = cleaned[:-1]
    elif err["type"] == "missing":
        msg = f"{cleaned[-1]} is required"
        cleaned = cleaned[:-1]
    return _fail(source, ".".join(cleaned) or "(top level)", msg)


def column_dependencies(spec: m.ColumnSpec) -> list[str]:
    """Columns of the same row this column's generator reads."""
    g = spec.gen
    if isinstance(g, m.EmailGen | m.UrlGen):
        return [g.from_] if g.from_ else []
    if isinstance(g, m.RegexReplaceGen | m.AfterGen):
        return [g.from_]
    if isinstance(g, m.TemplateGen):
        return g.fields()
    if isinstance(g, m.LookupGen):
        return [g.via]
    return []


def _check_table(source: str, schema: Schema, name: str, table: TableSpec) -> None:
    base = f"tables.{name}"
    cols = table.columns
    for cname, col in cols.items():
        path = f"{base}.columns.{cname}"
        g = col.gen
        allowed = ALLOWED_TYPES[type(g)]
        if col.type not in allowed:
            raise _fail(
                source,
                path,
                f"generator {g.generator!r} cannot fill type {col.type.value}; "
                f"it fills {', '.join(sorted(t.value for t in allowed))}",
            )
        for dep in column_dependencies(col):
            if dep not in cols:
                raise _fail(source, path, f"refers to column {dep!r}, which table {name!r} does not have")
            if dep == cname:
                raise _fail(source, path, "refers to itself")
        if isinstance(g, m.AfterGen) and cols[g.from_].type not in TEMPORAL:
            raise _fail(source, path, f"'from' column {g.from_!r} must be a date or timestamp")
        if isinstance(g, m.TimestampGen | m.AfterGen) and col.null_rate and col.unique:
            raise _fail(source, path, "a unique column cannot have a null_rate")
        if col.unique and not isinstance(g, UNIQUE_CAPABLE):
            raise _fail(
                source,
                path,
                f"unique is not supported for generator {g.generator!r}; "
                "use sequence, uuid4, pattern or uniform (int)",
            )
        if col.unique and isinstance(g, m.UniformGen) and col.type is not T.INT:
            raise _fail(source, path, "unique uniform values are supported for int columns only")
        if isinstance(g, m.ForeignKeyGen):
            parent = schema.tables.get(g.table)
            if parent is None:
                raise _fail(source, path, f"references table {g.table!r}, which the schema does not have")
            target = parent.columns.get(g.column)
            if target is None:
                raise _fail(source, path, f"references column {g.references!r}, which does not exist")
            pk = parent.primary_key or []
            if not (target.unique or pk == [g.column]):
                raise _fail(source, path, f"references {g.references!r}, which is neither unique nor the key")
            if target.type is not col.type:
                raise _fail(
                    source, path, f"type {col.type.value} differs from {g.references} ({target.type.value})"
                )
        if isinstance(g, m.LookupGen):
            via = cols[g.via].gen
            if not isinstance(via, m.ForeignKeyGen):
                raise _fail(source, path, f"'via' column {g.via!r} must be a foreign_key column")
            target = schema.tables[via.table].columns.get(g.column)
            if target is None:
                raise _fail(source, path, f"table {via.table!r} has no column {g.column!r}")
            if isinstance(target.gen, m.AggregateGen):
                raise _fail(source, path, f"cannot look up the aggregate column {via.table}.{g.column}")
            if target.type is not col.type:
                raise _fail(source, path, f"type {col.type.value} differs from {via.table}.{g.column}")
        if isinstance(g, m.AggregateGen):
            child = schema.tables.get(g.table)
            if child is None:
                raise _fail(source, path, f"aggregates table {g.table!r}, which the schema does not have")
            via_col = child.columns.get(g.via)
            if via_col is None or not isinstance(via_col.gen, m.ForeignKeyGen) or via_col.gen.table != name:
                raise _fail(source, path, f"{g.table}.{g.via} must be a foreign_key referencing {name!r}")
            if g.fn != "count":
                if g.column is None or g.column not in child.columns:
                    raise _fail(source, path, f"fn {g.fn!r} needs 'column', a numeric column of {g.table!r}")
                if child.columns[g.column].type not in NUMERIC:
                    raise _fail(source, path, f"{g.table}.{g.column} is not numeric")
    for key in table.primary_key or []:
        if key not in cols:
            raise _fail(source, f"{base}.primary_key", f"names column {key!r}, which the table does not have")
    if table.partition_by is not None:
        pcol = table.partition_by.column
        if pcol not in cols or cols[pcol].type not in TEMPORAL:
            raise _fail(source, f"{base}.partition_by.column", f"{pcol!r} must be a date or timestamp column")
        if cols[pcol].null_rate:
            raise _fail(source, f"{base}.partition_by.column", f"{pcol!r} must not be nullable")
    if table.revisions is not None:
        rcol = table.revisions.column
        if rcol not in cols or cols[rcol].type not in TEMPORAL:
            raise _fail(source, f"{base}.revisions.column", f"{rcol!r} must be a date or timestamp column")
        try:
            m.parse_duration(table.revisions.max_delay)
        except ValueError as exc:
            raise _fail(source, f"{base}.revisions.max_delay", str(exc)) from exc
    try:
        column_order(table)
    except CycleError as exc:
        raise _fail(
            source, f"{base}.columns", f"columns depend on each other in a cycle: {exc.args[1]}"
        ) from exc


def column_order(table: TableSpec) -> list[str]:
    """Columns in an order where each comes after the columns it reads."""
    graph = {c: set(column_dependencies(spec)) for c, spec in table.columns.items()}
    return list(TopologicalSorter(graph).static_order())


def table_order(schema: Schema) -> list[str]:
    """Tables parents first (a table after every table its foreign keys reference)."""
    graph: dict[str, set[str]] = {}
    for name, table in schema.tables.items():
        graph[name] = {c.gen.table for c in table.columns.values() if isinstance(c.gen, m.ForeignKeyGen)} - {
            name
        }
    return list(TopologicalSorter(graph).static_order())


def load_schema_text(text: str, source: str = "<schema>") -> Schema:
    """Parse and check a schema given as YAML text; ``source`` names it in error messages."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SchemaError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict):
        raise SchemaError(f"{source}: expected a mapping with a 'tables' key at the top level")
    try:
        schema = Schema.model_validate(data)
    except ValidationError as exc:
        raise _format_validation(source, exc) from exc
    for name, table in schema.tables.items():
        _check_table(source, schema, name, table)
    try:
        table_order(schema)
    except CycleError as exc:
        raise SchemaError(f"{source}: tables: foreign keys form a cycle: {exc.args[1]}") from exc
    mains = [n for n, t in schema.tables.items() if t.main]
    if len(mains) > 1:
        raise SchemaError(f"{source}: tables: only one table may be 'main', got {', '.join(mains)}")
    return schema


def load_schema(path: Path) -> Schema:
    """Read a schema file; errors name the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read the schema: {exc.strerror}") from exc
    return load_schema_text(text, source=str(path))


def schema_hash(schema: Schema) -> str:
    """A stable sha256 of the schema's content (for manifests)."""
    canonical = json.dumps(schema.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def main_table(schema: Schema) -> str:
    """The table that ``--rows``/``--size`` apply to: the one marked ``main``, else the last in FK order."""
    for name, table in schema.tables.items():
        if table.main:
            return name
    return table_order(schema)[-1]

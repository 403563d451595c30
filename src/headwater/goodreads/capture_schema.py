"""The four Goodreads entities as the API serves them and the spool stores them.

The contract between the API, the capture client and the ETL: each entity's records carry exactly the
dataset's visible columns (``src/headwater/generate/datasets/goodreads.yaml``) in schema order. On the wire
(JSON) timestamps and the review dates are text, verbatim; in the spool they are written back as CSV with
the generator's own encoding (strings quoted, numbers and timestamps bare, null = empty field, the empty
string = ``""``), so a spooled row is byte for byte the row the generator wrote.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from headwater.errors import DataError, UsageError

DATASET = "goodreads"


class Entity(StrEnum):
    """An entity of the dataset; the value is the table (and spool file prefix), ``endpoint`` the API path."""

    AUTHOR = "author"
    BOOK = "book"
    USER = "user"
    REVIEWS = "reviews"

    @property
    def endpoint(self) -> str:
        return _ENDPOINTS[self]


_ENDPOINTS = {Entity.AUTHOR: "authors", Entity.BOOK: "books", Entity.USER: "users", Entity.REVIEWS: "reviews"}
_CSV_WRITE = pacsv.WriteOptions(include_header=False)


def parse_entities(names: Iterable[str] | None) -> list[Entity]:
    """Entities from names such as ``author``, ``authors`` or ``reviews,books``; all of them when empty."""
    wanted: list[Entity] = []
    for name in (part.strip().lower() for text in names or () for part in text.split(",")):
        if not name:
            continue
        found = next((e for e in Entity if name in (e.value, e.endpoint)), None)
        if found is None:
            valid = ", ".join(e.endpoint for e in Entity)
            raise UsageError(f"entity {name!r}: expected one of {valid}")
        if found not in wanted:
            wanted.append(found)
    return wanted or list(Entity)


@functools.cache
def csv_schema(entity: Entity) -> pa.Schema:
    """The Arrow schema the generator writes ``entity`` with: visible columns, schema order."""
    from headwater.generate import load_dataset
    from headwater.generate.block import output_schema

    return output_schema(load_dataset(DATASET).tables[entity.value], False)


@functools.cache
def wire_schema(entity: Entity) -> pa.Schema:
    """``csv_schema`` with timestamps as text: what the JSON records carry."""
    return pa.schema(
        pa.field(f.name, pa.string() if pa.types.is_timestamp(f.type) else f.type) for f in csv_schema(entity)
    )


def csv_header(entity: Entity) -> bytes:
    """The header line of a spool file."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(csv_schema(entity).empty_table(), sink)
    return bytes(sink.getvalue().to_pybytes())


def encode_rows(table: pa.Table) -> bytes:
    """CSV rows (no header) in the generator's encoding."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, _CSV_WRITE)
    return bytes(sink.getvalue().to_pybytes())


def read_csv_table(path: Path, entity: Entity) -> pa.Table:
    """A generated or spooled CSV file as the wire schema: an unquoted empty field is null, ``""`` is the
    empty string, timestamps stay text."""
    try:
        return pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types=wire_schema(entity), strings_can_be_null=True, quoted_strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a {entity} CSV file: {str(exc).splitlines()[0]}") from exc


def count_csv_rows(path: Path, entity: Entity) -> int:
    """Rows of a spool file (quoted line breaks counted right), reading its first column only, as text."""
    first = csv_schema(entity).names[0]
    options = pacsv.ConvertOptions(include_columns=[first], column_types={first: pa.string()})
    try:
        reader = pacsv.open_csv(path, convert_options=options)
        return sum(batch.num_rows for batch in reader)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable CSV file: {str(exc).splitlines()[0]}") from exc


def records_to_table(entity: Entity, records: Sequence[dict[str, Any]], where: str) -> pa.Table:
    """JSON records of ``entity`` as a table in ``csv_schema`` order and types. A record may leave a field
    out (null); a field the schema does not know, a field no record carries or a value of the wrong type is a
    :class:`DataError` naming ``where``, the field and, for a bad value, the record."""
    schema = csv_schema(entity)
    if not records:
        return schema.empty_table()
    try:
        inferred = pa.array(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        _diagnose(entity, records, where)
        raise DataError(f"{where}: records do not form a table: {str(exc).splitlines()[0]}") from exc
    if not pa.types.is_struct(inferred.type):
        raise DataError(f"{where}: expected a list of JSON objects, got {inferred.type}")
    names = {f.name for f in inferred.type}
    unknown = sorted(names - set(schema.names))
    if unknown:
        raise DataError(
            f"{where}: field {unknown[0]!r} is not a column of {entity} ({', '.join(schema.names)})"
        )
    absent = [n for n in schema.names if n not in names]
    if absent:
        raise DataError(f"{where}: field {absent[0]!r} missing from every record")
    table = pa.Table.from_struct_array(inferred).select(schema.names)
    columns = []
    for field in schema:
        try:
            columns.append(
                table[field.name].cast(wire_schema(entity).field(field.name).type).cast(field.type)
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            _diagnose(entity, records, where)
            raise DataError(f"{where}: field {field.name!r}: values do not convert to {field.type}") from None
    return pa.Table.from_arrays(columns, schema=schema)


def _diagnose(entity: Entity, records: Sequence[dict[str, Any]], where: str) -> None:
    """On the error path only: find the first record and field whose value does not fit, and raise."""
    for field in csv_schema(entity):
        wire = wire_schema(entity).field(field.name).type
        for row, record in enumerate(records):
            if not isinstance(record, dict):
                raise DataError(f"{where}: record {row}: expected a JSON object, got {type(record).__name__}")
            value = record.get(field.name)
            try:
                pa.array([value], type=wire).cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
                raise DataError(
                    f"{where}: record {row}, field {field.name!r}: {value!r} is not a {field.type}"
                ) from None

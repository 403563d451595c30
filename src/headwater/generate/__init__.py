"""Synthetic data from a declared schema: vectorised (NumPy + Arrow), chunked, parallel, deterministic.

from headwater.generate import generate, load_dataset, GenerateOptions
result = generate(load_dataset("events"), Path("out"), GenerateOptions(rows=1_000_000, workers=2))

The engine's names are imported on first use, so ``from headwater.generate import BUILT_IN`` (the CLI's
help text) does not pay for NumPy and PyArrow.
"""

from __future__ import annotations

import importlib
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.errors import SchemaError

if TYPE_CHECKING:
    from headwater.generate.engine import GenerateOptions, GenerateResult, TableStats, generate
    from headwater.schema import Schema

_ENGINE = ("GenerateOptions", "GenerateResult", "TableStats", "generate")

BUILT_IN = ("events", "goodreads", "sessions")


def builtin_schema_text(name: str) -> str:
    """The YAML of a built-in tabular dataset."""
    return files("headwater.generate.datasets").joinpath(f"{name}.yaml").read_text(encoding="utf-8")


def load_dataset(name_or_path: str | Path) -> Schema:
    """A built-in dataset by name (``events``, ``goodreads``), or a schema file by path."""
    from headwater.schema import load_schema, load_schema_text

    name = str(name_or_path)
    if name in BUILT_IN and name != "sessions":
        return load_schema_text(builtin_schema_text(name), source=f"<built-in {name}>")
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_schema(path)
    raise SchemaError(f"{name}: neither a built-in dataset ({', '.join(BUILT_IN)}) nor a schema file")


__all__ = ["BUILT_IN", "GenerateOptions", "GenerateResult", "TableStats", "generate", "load_dataset"]


def __getattr__(name: str) -> Any:
    if name not in _ENGINE:
        raise AttributeError(f"module 'headwater.generate' has no attribute {name!r}")
    value = getattr(importlib.import_module("headwater.generate.engine"), name)
    globals()[name] = value
    return value

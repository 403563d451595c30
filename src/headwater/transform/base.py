"""The engine interface and the values a run returns. Engines read Parquet sources, run a
:class:`~headwater.transform.model.ModelSet` and write each output model to ``<out>/<model>/*.parquet``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import pyarrow.parquet as pq

from headwater.progress import Progress, no_progress
from headwater.transform.model import ModelSet


class EngineKind(StrEnum):
    DUCKDB = "duckdb"
    SPARK = "spark"


@dataclass(frozen=True)
class ModelRun:
    """One output model as written: its files, rows, bytes and the seconds it took."""

    model: str
    files: tuple[Path, ...]
    rows: int
    bytes: int
    seconds: float


@dataclass
class TransformResult:
    """What a run wrote, per output model."""

    engine: EngineKind
    outputs: dict[str, ModelRun] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.outputs.values())

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.outputs.values())


class TransformEngine(Protocol):
    """Runs a model set over Parquet sources and writes the output models as Parquet."""

    @property
    def kind(self) -> EngineKind:
        """Which engine this is."""
        ...

    def run(
        self,
        models: ModelSet,
        sources: Mapping[str, Sequence[Path]],
        out: Path,
        progress: Progress = no_progress,
    ) -> TransformResult:
        """Run every model of ``models`` in order; each output goes to ``out/<model>/*.parquet``
        (replacing what was there). ``sources`` maps each source name to its Parquet files."""
        ...


def describe_output(model: str, folder: Path, seconds: float) -> ModelRun:
    """Rows and bytes of the Parquet files an engine wrote for ``model``."""
    files = tuple(sorted(folder.glob("*.parquet")))
    rows = sum(pq.read_metadata(f).num_rows for f in files)
    return ModelRun(model, files, rows, sum(f.stat().st_size for f in files), seconds)


def check_sources(models: ModelSet, sources: Mapping[str, Sequence[Path]]) -> None:
    """Every source the models read must be given (an empty list of files is not enough: the engine
    could not know its columns)."""
    from headwater.errors import UsageError

    missing = [s for s in models.sources if not sources.get(s)]
    if missing:
        raise UsageError(
            f"models read {', '.join(missing)} but no Parquet files were given for "
            f"{'it' if len(missing) == 1 else 'them'}"
        )

"""The load test: generate the ``goodreads`` dataset at a given size as bulk landing files (no API, no
capture), run one ETL cycle over it in a scratch project, and report rows, MB/s and time per stage.

The scratch project lives in ``<goodreads.state_dir>/loadtest/project`` (emptied first) with its own zones
and DuckDB warehouse, so a load test never touches the project's own warehouse. Generated data is kept in
``<goodreads.state_dir>/loadtest/gen-<size>-<seed>`` and reused by the next run of the same size; the
landing batch is hard-linked from it (copied where links cannot be made).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from headwater.config import DuckDBWarehouseSettings, Settings, StorageSettings
from headwater.errors import UsageError
from headwater.generate import GenerateOptions, generate, load_dataset
from headwater.goodreads.etl import CycleReport, EngineName, run_cycle, state_dir
from headwater.goodreads.etl_schema import DATASET
from headwater.manifest import MANIFEST_NAME, Manifest
from headwater.progress import Progress, no_progress
from headwater.storage import Zone, build_batch_prefix

MIN_SIZE = 100_000


@dataclass
class LoadTestReport:
    """What the load test measured. ``cycle`` is the ETL cycle's own report (stages, MB/s)."""

    size: int
    engine: str
    generated_bytes: int
    generated_rows: int
    generate_seconds: float
    reused: bool
    project: Path
    cycle: CycleReport
    load_review_text: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "engine": self.engine,
            "generated_bytes": self.generated_bytes,
            "generated_rows": self.generated_rows,
            "generate_seconds": round(self.generate_seconds, 2),
            "reused_generated_data": self.reused,
            "project": str(self.project),
            "load_review_text": self.load_review_text,
            "cycle": self.cycle.to_json(),
        }


def scratch_settings(settings: Settings, project: Path, load_review_text: bool | None = None) -> Settings:
    """The project's settings, pointed at a scratch folder: local zones, its own DuckDB warehouse and
    ETL state, no alert channels (a load test pages nobody)."""
    goodreads: dict[str, Any] = {"state_dir": "state"}
    if load_review_text is not None:
        goodreads["load_review_text"] = load_review_text
    return settings.model_copy(
        update={
            "project_dir": project,
            "storage": StorageSettings(root="data"),
            "warehouse": DuckDBWarehouseSettings(path="warehouse.duckdb"),
            "goodreads": settings.goodreads.model_copy(update=goodreads),
            "alerts": type(settings.alerts)(),
        }
    )


def _generated(
    folder: Path, size: int, seed: int, workers: int, progress: Progress
) -> tuple[Manifest, float, bool]:
    manifest_path = folder / MANIFEST_NAME
    if manifest_path.is_file():
        manifest = Manifest.read(manifest_path)
        if manifest.meta.get("loadtest_size") == size:
            return manifest, 0.0, True
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    result = generate(
        load_dataset(DATASET),
        folder,
        GenerateOptions(seed=seed, size=size, workers=workers, fmt="csv"),
        progress=progress,
    )
    manifest = result.manifest
    manifest.meta["loadtest_size"] = size
    manifest.write(manifest_path)
    return manifest, time.perf_counter() - t0, False


def _link_batch(source: Path, manifest: Manifest, target: Path) -> None:
    """The generated files as a landing batch: hard links (or copies), read-only, manifest last."""
    target.mkdir(parents=True, exist_ok=False)
    for record in manifest.files:
        src, dst = source / record.path, target / record.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        os.chmod(dst, 0o444)
    manifest.write(target / MANIFEST_NAME)


def run_loadtest(
    settings: Settings,
    *,
    size: int,
    engine: EngineName = "duckdb",
    seed: int = 42,
    workdir: Path | None = None,
    progress: Progress = no_progress,
    spark: Any = None,
    load_review_text: bool | None = None,
) -> LoadTestReport:
    """Generate ``size`` bytes of goodreads CSV (the reviews table grows; authors, books and users keep
    their sizes), land it as one batch of a scratch project, run one ETL cycle and report it.
    ``load_review_text`` overrides ``goodreads.load_review_text`` for the run."""
    if size < MIN_SIZE:
        raise UsageError(f"--size {size}: use at least {MIN_SIZE:,} bytes")
    base = workdir or state_dir(settings) / "loadtest"
    gen = base / f"gen-{size}-{seed}"
    workers = settings.generate.workers or os.cpu_count() or 1
    manifest, gen_seconds, reused = _generated(gen, size, seed, workers, progress)
    project = base / "project"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    scratch = scratch_settings(settings, project, load_review_text)
    batch_id = f"loadtest-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    prefix = build_batch_prefix(Zone.LANDING, DATASET, datetime.now(UTC).date(), batch_id)
    _link_batch(gen, manifest, Path(scratch.storage_root) / str(prefix))
    cycle = run_cycle(scratch, engine=engine, progress=progress, spark=spark)
    cycle.raise_for_failures()
    return LoadTestReport(
        size=size,
        engine=engine,
        generated_bytes=manifest.total_bytes,
        generated_rows=manifest.total_rows,
        generate_seconds=gen_seconds,
        reused=reused,
        project=project,
        cycle=cycle,
        load_review_text=scratch.goodreads.load_review_text,
    )

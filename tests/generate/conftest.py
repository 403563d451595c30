from __future__ import annotations

from pathlib import Path

import pytest

from headwater.generate import GenerateOptions, GenerateResult, generate, load_dataset


@pytest.fixture(scope="session")
def events_small(tmp_path_factory: pytest.TempPathFactory) -> GenerateResult:
    out = tmp_path_factory.mktemp("events")
    return generate(
        load_dataset("events"), out, GenerateOptions(rows=150_000, seed=7, table_rows={"users": 5000})
    )


@pytest.fixture(scope="session")
def goodreads_small(tmp_path_factory: pytest.TempPathFactory) -> GenerateResult:
    out = tmp_path_factory.mktemp("goodreads")
    rows = {"author": 300, "book": 1500, "user": 2000}
    return generate(load_dataset("goodreads"), out, GenerateOptions(rows=40_000, seed=3, table_rows=rows))


def csv_files(root: Path, pattern: str) -> list[Path]:
    return sorted(root.glob(pattern))

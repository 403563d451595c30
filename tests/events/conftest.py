"""Fixtures for the events pipeline: a project folder with generated months, clean or dirty."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.config import Settings, init_project, load_settings
from headwater.generate import GenerateOptions, generate, load_dataset
from tests.storage.conftest import CREDENTIALS, MotoServer, start_moto


def make_project(folder: Path, rows: int, dirty: float = 0.0, seed: int = 7) -> Settings:
    init_project(folder, "events-test")
    generate(
        load_dataset("events"),
        folder / "data" / "incoming" / "events",
        GenerateOptions(rows=rows, seed=seed, workers=1, dirty=dirty),
    )
    return load_settings(folder, env={})


@pytest.fixture(scope="module")
def clean_project(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_project(tmp_path_factory.mktemp("events-clean"), rows=60_000)


@pytest.fixture(scope="module")
def dirty_project(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_project(tmp_path_factory.mktemp("events-dirty"), rows=40_000, dirty=0.03, seed=11)


@pytest.fixture(scope="module")
def moto_events() -> Iterator[MotoServer]:
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        yield from start_moto([], "http")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

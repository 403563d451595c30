"""Project settings: file, defaults and HEADWATER_* overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.config import PostgresWarehouseSettings, init_project, load_settings
from headwater.errors import ConfigError
from headwater.units import parse_size


def test_defaults_file_and_env_override(tmp_path: Path) -> None:
    init_project(tmp_path, "p")
    settings = load_settings(tmp_path, env={})
    assert settings.name == "p"
    assert settings.warehouse.kind == "duckdb"
    assert settings.storage_root == str(tmp_path.resolve() / "data")
    over = load_settings(
        tmp_path, env={"HEADWATER_GENERATE__SEED": "7", "HEADWATER_WAREHOUSE__PATH": "x.duckdb"}
    )
    assert over.generate.seed == 7
    assert over.warehouse.kind == "duckdb"
    assert over.warehouse.path == "x.duckdb"
    (tmp_path / "headwater.yaml").write_text("warehouse: {kind: postgres}\n")
    pg = load_settings(tmp_path, env={"HEADWATER_WAREHOUSE__URL": "postgresql://u:secret@h/db"})
    assert isinstance(pg.warehouse, PostgresWarehouseSettings)
    assert pg.warehouse.url.get_secret_value().endswith("@h/db")
    assert "secret" not in repr(pg)


def test_process_variables_are_not_settings(tmp_path: Path) -> None:
    """HEADWATER_DEBUG, HEADWATER_DIRECT_IO, ... steer the process: they must not be read as settings
    overrides (the settings model forbids unknown keys, so that would refuse to start)."""
    init_project(tmp_path, "p")
    env = {"HEADWATER_DIRECT_IO": "0", "HEADWATER_DEBUG": "1", "HEADWATER_GENERATE__SEED": "3"}
    assert load_settings(tmp_path, env=env).generate.seed == 3


def test_invalid_settings_name_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "headwater.yaml").write_text("generate: {workers: -1}\n")
    with pytest.raises(ConfigError, match=r"headwater.yaml: generate.workers: Input should be greater than"):
        load_settings(tmp_path, env={})
    (tmp_path / "headwater.yaml").write_text("storage: {rooot: x}\n")
    with pytest.raises(ConfigError, match=r"storage.rooot"):
        load_settings(tmp_path, env={})


@pytest.mark.parametrize(
    ("text", "value"),
    [("1GB", 10**9), ("2GiB", 2 * 2**30), ("500mb", 5 * 10**8), ("10k", 10**4), ("12345", 12345)],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value

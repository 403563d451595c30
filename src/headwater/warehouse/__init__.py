"""The warehouse: DuckDB (embedded default) or PostgreSQL behind one interface.

    wh = open_warehouse("warehouse.duckdb")          # or "postgresql://host/db"
    wh.load(arrow_or_parquet, LoadRequest("orders", batch_id="2024-01", primary_key=("id",)))

Every load stages the batch, applies it (merge, replace_partition or append) and writes its audit
row in one transaction; a batch already loaded is skipped. See docs/warehouse.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from headwater.errors import ConfigError
from headwater.warehouse.base import (
    ChangeKind,
    Dimension,
    LoadMode,
    LoadRequest,
    LoadResult,
    Reference,
    ScdType,
    SchemaChange,
    SchemaChangePolicy,
    TableData,
    TableInfo,
    Warehouse,
)
from headwater.warehouse.types import SqlType, TypeName

if TYPE_CHECKING:
    from headwater.config import Settings

__all__ = [
    "ChangeKind",
    "Dimension",
    "LoadMode",
    "LoadRequest",
    "LoadResult",
    "Reference",
    "ScdType",
    "SchemaChange",
    "SchemaChangePolicy",
    "SqlType",
    "TableData",
    "TableInfo",
    "TypeName",
    "Warehouse",
    "open_warehouse",
    "warehouse_from_settings",
]


def open_warehouse(
    url: str | Path,
    schema: str = "public",
    lock_timeout: float = 30.0,
    merge_fillfactor: int | None = None,
    key_index: bool = False,
) -> Warehouse:
    """A warehouse from a URL: ``postgresql://...`` (in ``schema``), ``duckdb:///path`` or a file path.
    ``merge_fillfactor`` (PostgreSQL): how full tables made by a merge fill their pages (default 80).
    ``key_index`` (DuckDB): declare primary keys to DuckDB (an ART index per table) instead of
    recording them and enforcing them in every load (PostgreSQL always declares them)."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        from headwater.warehouse.postgres import MERGE_FILLFACTOR, PostgresWarehouse

        return PostgresWarehouse(text, schema, merge_fillfactor or MERGE_FILLFACTOR)
    if "://" in text and not text.startswith("duckdb://"):
        raise ConfigError(
            f"warehouse URL {text.split('://')[0]}://...: use postgresql://... or a DuckDB file path"
        )
    from headwater.warehouse.duckdb import DuckDBWarehouse

    return DuckDBWarehouse(
        Path(text.removeprefix("duckdb://")), lock_timeout=lock_timeout, key_index=key_index
    )


def warehouse_from_settings(settings: Settings) -> Warehouse:
    """The warehouse the project file configures (DuckDB paths are relative to the project)."""
    from headwater.config import DuckDBWarehouseSettings, PostgresWarehouseSettings

    wh = settings.warehouse
    if isinstance(wh, PostgresWarehouseSettings):
        return open_warehouse(
            wh.url.get_secret_value(), schema=wh.schema_name, merge_fillfactor=wh.merge_fillfactor
        )
    assert isinstance(wh, DuckDBWarehouseSettings)
    return open_warehouse(settings.resolve(wh.path), lock_timeout=wh.lock_timeout, key_index=wh.key_index)

"""The few exception types users see. Each carries a one-line message that names the thing,
the actual values and, where there is one, the next step.

    HeadwaterError                 root; the CLI prints str(exc) on one red line and exits non-zero
    ├── ConfigError                project file or environment is invalid            (exit 2)
    ├── SchemaError                a table schema is invalid                         (exit 2)
    ├── UsageError                 arguments that cannot work together               (exit 2)
    ├── DataError                  input data is malformed (names file, row, field)  (exit 3)
    │   └── PreprocessError        a recording session's preprocessing failed       (exit 3)
    ├── SourceError                a source (HTTP API) failed or refused, after retries (exit 6)
    ├── QualityGateError           an error-severity check failed: the batch was held back (exit 3)
    ├── StorageError               a read, write or transfer failed                  (exit 4)
    │   ├── IntegrityError         bytes stored differ from bytes sent (checksum)    (exit 4)
    │   ├── WriteOnceError         refused to overwrite a write-once object          (exit 4)
    │   └── TransientStorageError  a network or server hiccup, worth retrying        (exit 4)
    └── WarehouseError             a load or query in the warehouse failed           (exit 5)
        ├── SchemaChangeError      a load would break a table's schema; nothing written (exit 5)
        ├── KeyConflictError       an append would repeat a key the table holds; nothing written (exit 5)
        └── WarehouseBusyError     another process holds the DuckDB file for writing (exit 5)

Library errors are translated where they enter headwater (``raise StorageError(...) from exc``).
"""

from __future__ import annotations


class HeadwaterError(Exception):
    """Root of every error headwater raises on purpose."""

    exit_code: int = 1


class ConfigError(HeadwaterError):
    """The project file or a HEADWATER_* variable is invalid."""

    exit_code = 2


class SchemaError(HeadwaterError):
    """A table schema is invalid: the message names the file and the YAML path."""

    exit_code = 2


class UsageError(HeadwaterError):
    """Arguments or options that cannot work together."""

    exit_code = 2


class DataError(HeadwaterError):
    """Input data is malformed: the message names the file, row and field."""

    exit_code = 3


class PreprocessError(DataError):
    """A recording session's preprocessing function failed; the session is marked failed with the reason."""


class SourceError(HeadwaterError):
    """A source system (the HTTP API being captured) failed after retries or refused the request."""

    exit_code = 6


class QualityGateError(HeadwaterError):
    """An ``error`` data quality check failed: the batch was not published, its failing rows were
    quarantined and one alert was sent. The message names the table, batch and failed checks."""

    exit_code = 3


class StorageError(HeadwaterError):
    """A read, write or transfer against a store failed."""

    exit_code = 4


class IntegrityError(StorageError):
    """The bytes stored differ from the bytes sent (size or checksum mismatch)."""


class WriteOnceError(StorageError):
    """An attempt to overwrite an object in a write-once zone was refused; nothing changed."""


class TransientStorageError(StorageError):
    """A network or server failure that may pass (reset connection, timeout, 5xx): retried with backoff."""


class WarehouseError(HeadwaterError):
    """A load or query in the warehouse failed."""

    exit_code = 5


class SchemaChangeError(WarehouseError):
    """A load would change a table in a way its policy refuses (breaking type, changed key);
    the message names table and column. Nothing was written."""


class KeyConflictError(WarehouseError):
    """An append or a partition swap would give a table a second row with a key it already holds;
    the message names table, key and value. Nothing was written."""


class WarehouseBusyError(WarehouseError):
    """Another process held the warehouse file for writing longer than the lock timeout."""

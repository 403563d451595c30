"""headwater: local-first data pipelines.

Generate, move, land, transform, check, load and query data, from a laptop up to a cluster.
The library is the product; the CLI (`headwater`), the orchestrator code location and the
HTTP service are thin layers over it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    __version__: str

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # ``__version__`` is looked up on first use: importlib.metadata is slow to import, and importing
    # headwater (``headwater --help``, a child process) should not pay for it.
    if name != "__version__":
        raise AttributeError(f"module 'headwater' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("headwater")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        value = "0.0.0"
    globals()["__version__"] = value
    return value

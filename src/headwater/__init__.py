"""headwater: local-first data pipelines.

Generate, move, land, transform, check, load and query data, from a laptop up to a cluster.
The library is the product; the CLI (`headwater`), the orchestrator code location and the
HTTP service are thin layers over it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("headwater")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]

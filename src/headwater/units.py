"""Human sizes and counts: ``1GB``, ``500MiB``, ``10k`` rows."""

from __future__ import annotations

import re

from headwater.errors import UsageError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_FACTORS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(text: str, what: str = "size") -> int:
    """``1GB`` = 10**9 bytes, ``1GiB`` = 2**30, ``250MB``, ``10k``, plain ``12345``."""
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"{what}: {text!r} is not a size; use e.g. 1GB, 500MB, 2GiB or a number")
    number, unit = float(m.group(1)), m.group(2).lower()
    prefix = unit[:1] if unit[:1] in "kmgt" else ""
    binary = 1024 ** ("kmgt".index(prefix) + 1) if prefix else 1
    factor = binary if "i" in unit else _FACTORS[prefix]
    value = int(number * factor)
    if value <= 0:
        raise UsageError(f"{what}: {text!r} must be positive")
    return value


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def format_rate(nbytes: float, seconds: float) -> str:
    """``nbytes`` moved in ``seconds`` as a rate in the unit that suits it: ``19.4 KB/s``, ``348.0 MB/s``
    (a small job is not "0 MB/s")."""
    return f"{format_bytes(nbytes / max(seconds, 1e-9))}/s"

"""Start-up: ``headwater --help`` (and every command, before it does its work) must not import the heavy
libraries. Each command imports what it needs inside its function; only Typer, Rich and light headwater
modules are imported at the top of ``headwater.cli``. These tests fail when a heavy top-level import
comes back (they check sys.modules in a fresh interpreter, not the wall time)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "dagster",
    "pyspark",
    "duckdb",
    "pandas",
    "matplotlib",
    "fastapi",
    "uvicorn",
    "pyarrow",
    "numpy",
    "polars",
    "sqlglot",
    "httpx",
    "boto3",
    "botocore",
    "psycopg",
    "faker",
)

# Print, as the last line of stdout, the heavy top-level packages the interpreter has imported.
REPORT = f"""
import json, sys
heavy = {HEAVY!r}
print(json.dumps(sorted({{m.partition(".")[0] for m in sys.modules}} & set(heavy))))
"""

# What every ``headwater`` invocation does before running a command: build the whole click tree, which
# evaluates every command's parameter annotations (option types such as LoadMode and VerifyMode).
BUILD = """
import sys
from headwater.cli import app
argv = sys.argv[1:]
try:
    app(argv, prog_name="headwater")
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
"""


def heavy_after(code: str, *argv: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", code + REPORT, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize("module", ["headwater", "headwater.config", "headwater.cli", "headwater.cli.app"])
def test_importing_is_light(module: str) -> None:
    assert heavy_after(f"import {module}") == [], f"import {module} pulls in heavy libraries"


@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("--version",),
        ("warehouse", "load", "--help"),
        ("sessions", "list", "--help"),
        ("goodreads", "serve", "--help"),
    ],
)
def test_help_is_light(argv: tuple[str, ...]) -> None:
    assert heavy_after(BUILD, *argv) == [], f"headwater {' '.join(argv)} pulls in heavy libraries"

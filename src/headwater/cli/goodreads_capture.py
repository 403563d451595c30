"""Goodreads capture commands, added to the ``headwater goodreads`` group."""

from __future__ import annotations

import typer


def add_commands(group: typer.Typer) -> None:
    """Add this module's commands to ``group`` (none yet)."""

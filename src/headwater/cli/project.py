"""``headwater init``: create a project folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from headwater.cli.console import console


def init(
    folder: Annotated[
        Path, typer.Argument(help="Folder to create the project in (created if missing).")
    ] = Path(),
    name: Annotated[str | None, typer.Option(help="Project name (default: the folder's name).")] = None,
) -> None:
    """Write a commented default [bold]headwater.yaml[/] into FOLDER.

    Every key in it can later be overridden with HEADWATER_<SECTION>__<KEY> environment variables.
    Refuses to overwrite an existing project file.
    """
    from headwater.config import init_project

    target = init_project(folder, name)
    console.print(f"created [bold]{target}[/]; next: [bold]headwater generate events --out {folder}/data[/]")


def register(app: typer.Typer) -> None:
    app.command()(init)

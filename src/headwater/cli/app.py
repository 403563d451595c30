"""The root Typer app, shared options and the one error handler."""

from __future__ import annotations

import errno
import inspect
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.markup import escape

import headwater
from headwater.cli.console import console, err_console
from headwater.errors import HeadwaterError

if TYPE_CHECKING:
    from headwater.config import Settings

# Start-up: ``headwater --help`` builds every command, so this package imports only Typer, Rich and light
# headwater modules at the top; anything heavy (DuckDB, pandas, PyArrow, Dagster, ...) is imported inside
# the command that needs it. tests/cli/test_startup.py fails when a heavy import comes back.

EXIT_CODES = (
    "Exit codes: 0 success; 1 unexpected error; 2 bad usage, schema or configuration; 3 bad input data; "
    "4 storage or integrity failure; 5 warehouse failure; 6 source (API) failure. "
    "Set HEADWATER_DEBUG=1 for tracebacks.\n"
)

app = typer.Typer(
    name="headwater",
    help="Local-first data pipelines: generate, move, land, transform, check, load and query data.\n\n"
    + EXIT_CODES,
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class State:
    """Options every command can read: the project folder and its settings, built once."""

    project: Path | None = None
    _settings: Settings | None = None

    @classmethod
    def settings(cls) -> Settings:
        if cls._settings is None:
            from headwater.config import load_settings

            cls._settings = load_settings(cls.project)
        return cls._settings

    @classmethod
    def reset(cls, project: Path | None) -> None:
        cls.project = project
        cls._settings = None


def _version(value: bool) -> None:
    if value:
        console.print(f"headwater {headwater.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    project: Annotated[
        Path | None,
        typer.Option(
            "--project",
            "-p",
            help="Project folder holding headwater.yaml (default: the nearest one above the current folder).",
            envvar="HEADWATER_PROJECT",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    State.reset(project)


def _register() -> None:
    from headwater.cli import demo, generate, goodreads, project, storage
    from headwater.cli import events as events_cli
    from headwater.cli import orchestrate as orchestrate_cli
    from headwater.cli import quality as quality_cli
    from headwater.cli import sessions as sessions_cli
    from headwater.cli import warehouse as warehouse_cli

    project.register(app)
    generate.register(app)
    demo.register(app)
    storage.register(app)
    warehouse_cli.register(app)
    goodreads.register(app)
    events_cli.register(app)
    orchestrate_cli.register(app)
    sessions_cli.register(app)
    quality_cli.register(app)


def _one_line_summaries(group: typer.Typer) -> None:
    """Give every command a one-line summary: the first paragraph of its docstring, its line breaks
    dropped. Typer's rich help keeps a docstring's line breaks in a group's list of commands (though not
    on the command's own page), so a summary wrapped in the source came out ragged in ``--help``."""
    for info in group.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback else None)
        if info.short_help is None and doc:
            info.short_help = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _one_line_summaries(sub.typer_instance)


_register()
_one_line_summaries(app)


def main() -> None:
    """Console entry point. Usage errors are Typer's (exit 2); a HeadwaterError becomes one red line
    and its exit code; a path the system refused one line naming it (a file given for a folder, a
    missing folder: exit 2; anything else, e.g. a full disk: exit 4); anything unexpected one line and
    exit 1. HEADWATER_DEBUG=1 shows tracebacks."""
    try:
        app()
    except Exception as exc:
        if os.environ.get("HEADWATER_DEBUG"):
            raise
        if isinstance(exc, HeadwaterError):
            _error(str(exc), exc.exit_code)
        if isinstance(exc, OSError) and exc.filename is not None:
            usage = exc.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENOENT)
            _error(f"{exc.filename}: {exc.strerror or exc}", 2 if usage else 4)
        err_console.print(
            f"[bold red]unexpected error:[/] {type(exc).__name__}: {escape(str(exc))}", highlight=False
        )
        err_console.print("run again with HEADWATER_DEBUG=1 for the traceback", style="dim")
        sys.exit(1)


def _error(message: str, code: int) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)

"""``headwater goodreads ...``: the Goodreads-style ETL. Capture commands (serve, capture, push) live in
:mod:`headwater.cli.goodreads_capture`, ETL commands (etl, report, loadtest) in
:mod:`headwater.cli.goodreads_etl`; both add themselves to this one group."""

from __future__ import annotations

import typer

goodreads_app = typer.Typer(
    help="Goodreads-style ETL: capture from a rate-limited API, land, transform, load, report.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    from headwater.cli import goodreads_capture, goodreads_etl

    goodreads_capture.add_commands(goodreads_app)
    goodreads_etl.add_commands(goodreads_app)
    app.add_typer(goodreads_app, name="goodreads")

"""``headwater ui`` and ``headwater run``: the Dagster code location, started or run in-process."""

from __future__ import annotations

from typing import Annotated

import typer

from headwater.cli.app import State
from headwater.cli.console import console, print_json


def ui(
    host: Annotated[str, typer.Option(help="Interface for the web UI.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for the web UI.")] = 3000,
) -> None:
    """Start the Dagster web UI and daemon for this project (schedules, sensors, backfills, alerts).

    Runs and sensor state live in the project's DAGSTER_HOME (orchestrate.dagster_home, SQLite, no
    telemetry). Stop with Ctrl-C. Sensors start on; the monthly schedule starts off (turn it on in the UI).

    Example:

      headwater ui --port 3000        # then open http://127.0.0.1:3000
    """
    from headwater.orchestrate.runner import dagster_home, start_ui

    settings = State.settings()
    console.print(
        f"Dagster UI on http://{host}:{port} (DAGSTER_HOME={dagster_home(settings)}); Ctrl-C stops it"
    )
    raise typer.Exit(start_ui(settings, host, port))


def run(
    pipeline: Annotated[
        str, typer.Argument(help="Pipeline to run: events, sessions, goodreads, goodreads-push.")
    ],
    partition: Annotated[
        str | None, typer.Option(help="Partition: a month (events, 2021-01) or a session id (sessions).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Run a pipeline's Dagster job now, in this process, against the project's Dagster instance: the
    same assets, retries and checks as scheduled runs, and the run shows up in `headwater ui`.

    Examples:

      headwater run events --partition 2021-01
      headwater run sessions --partition 20210228_161221
      headwater run goodreads                      # one ETL cycle over new landing batches
    """
    from headwater.orchestrate.runner import run_pipeline

    outcome = run_pipeline(State.settings(), pipeline, partition)
    if as_json:
        print_json(outcome.__dict__)
    else:
        console.print(
            f"[green]{pipeline}[/] run {outcome.run_id} succeeded"
            + (f" for {partition}" if partition else "")
        )


def register(app: typer.Typer) -> None:
    app.command()(ui)
    app.command()(run)

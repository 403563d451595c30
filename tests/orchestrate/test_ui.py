"""`headwater ui` starts the Dagster webserver and daemon for the project; the UI's GraphQL API shows the
partitioned events assets, the sensors and the schedules."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.events.conftest import make_project
from tests.storage.conftest import free_port

QUERY = """
{
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        name
        sensors { name sensorState { status } }
        schedules { name cronSchedule }
        assetNodes { assetKey { path } isPartitioned partitionDefinition { name type } }
      }
    }
  }
}
"""


@pytest.mark.slow
def test_headwater_ui_serves_the_code_location(tmp_path: Path) -> None:
    settings = make_project(tmp_path / "proj", rows=2_000)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from headwater.cli import main; main()", "--project", str(settings.project_dir),
         "ui", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 150
        data = None
        while time.monotonic() < deadline:
            try:
                resp = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=5)
                nodes = resp.json()["data"]["repositoriesOrError"].get("nodes")
                if nodes:
                    data = nodes
                    break
            except (httpx.HTTPError, KeyError, ValueError, TypeError):
                pass
            assert proc.poll() is None, "headwater ui exited"
            time.sleep(1)
        assert data, "the UI did not come up within 150 s"
        (repo,) = data
        assets = {"/".join(a["assetKey"]["path"]): a for a in repo["assetNodes"]}
        assert assets["events_month"]["isPartitioned"]
        assert assets["events_month"]["partitionDefinition"]["name"] == "events_months"
        assert {"events_report", "session_features", "goodreads_warehouse"} <= set(assets)
        sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
        assert sensors["events_new_month_sensor"] == "RUNNING"
        assert sensors["alert_on_run_failure"] == "RUNNING"
        schedules = {s["name"]: s["cronSchedule"] for s in repo["schedules"]}
        assert schedules["events_monthly_schedule"] == "0 3 2 * *"
        assert (settings.project_dir / ".dagster" / "dagster.yaml").read_text().count("enabled: false") == 1
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

"""The README's main job, end to end on the embedded default: `headwater demo`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from headwater.config import load_settings
from headwater.sessions import SessionStatus, open_catalog
from headwater.warehouse import warehouse_from_settings


@pytest.mark.slow
def test_demo_runs_every_pipeline(tmp_path: Path) -> None:
    project = tmp_path / "demo"
    out = subprocess.run(
        [sys.executable, "-c", "from headwater.cli import main; main()", "demo", "--project", str(project),
         "--rows", "30000"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    text = " ".join(out.stdout.split())
    assert "30,000 events" in text
    assert "sessions: 3 checked and uploaded" in text
    assert "most reviewed authors:" in text
    settings = load_settings(project, env={})
    wh = warehouse_from_settings(settings)
    assert wh.query("SELECT count(*) FROM fact_events").column(0)[0].as_py() == 30_000
    assert wh.query("SELECT count(*) FROM fact_reviews").column(0)[0].as_py() > 0
    assert {r.status for r in open_catalog(settings).query("fatigue_level >= 0")} == {SessionStatus.READY}
    assert (project / "reports/events/report.html").is_file()
    assert any((project / "reports/goodreads").glob("*.png"))

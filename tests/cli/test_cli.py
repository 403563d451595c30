"""The CLI: help everywhere, exit codes, one-line errors, nothing written on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from headwater.cli import app

RUNNER = CliRunner()


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    code = "from headwater.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=300, check=False
    )


def _commands(group: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [
        (*prefix, c.name or (c.callback.__name__ if c.callback else "")) for c in group.registered_commands
    ]
    for sub in group.registered_groups:
        assert sub.typer_instance is not None
        found += _commands(sub.typer_instance, (*prefix, sub.name or ""))
    return found


def test_every_command_has_help_text() -> None:
    commands = _commands(app)
    assert ("generate",) in commands
    assert ("init",) in commands
    assert ("demo",) in commands
    for cmd in commands:
        result = RUNNER.invoke(app, [*cmd, "--help"])
        assert result.exit_code == 0, cmd
        assert len(result.output.strip().splitlines()) > 3, cmd
    root = RUNNER.invoke(app, ["--help"])
    assert "Exit codes" in root.output


def test_init_writes_a_commented_project_and_refuses_to_overwrite(tmp_path: Path) -> None:
    first = run("init", str(tmp_path / "p"))
    assert first.returncode == 0
    text = (tmp_path / "p" / "headwater.yaml").read_text()
    assert "HEADWATER_" in text
    assert "kind: duckdb" in text
    again = run("init", str(tmp_path / "p"))
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0
    assert "already exists" in again.stderr


def test_generate_json_summary_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    result = run("generate", "events", "--out", str(out), "--rows", "20k", "--workers", "1", "--json",
                 "--table-rows", "users=500", "--table-rows", "companies=50")  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["tables"][-1] == {"name": "events", "rows": 20_000, "bytes": summary["tables"][-1]["bytes"],
                                     "files": 6, "defects": 0}  # fmt: skip
    assert (out / "manifest.json").exists()
    assert (out / "2021" / "06" / "events.csv").exists()


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ("tables: {t: {columns: {age: {type: int, generator: uniform, min: 9, max: 1}}}}",
         "tables.t.columns.age: min must be below max"),
        ("tables: {t: {columns: {age: {type: int, generator: gauss}}}}", "unknown generator 'gauss'; valid generators:"),
    ],
)  # fmt: skip
def test_invalid_schema_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, schema: str, expected: str
) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(schema)
    result = run("generate", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line
    assert expected in line
    assert str(path) in line
    assert not (tmp_path / "out").exists()


def test_bad_options_exit_2(tmp_path: Path) -> None:
    result = run("generate", "events", "--out", str(tmp_path / "o"), "--size", "lots")
    assert result.returncode == 2
    assert "--size: 'lots' is not a size" in result.stderr
    result = run("generate", "nope", "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "neither a built-in dataset" in result.stderr
    assert not (tmp_path / "o").exists()


def test_sessions_dataset(tmp_path: Path) -> None:
    result = run(
        "generate", "sessions", "--out", str(tmp_path / "lab"), "--sessions", "2", "--size", "2MB", "--json"
    )
    assert result.returncode == 0, result.stderr
    folders = sorted(p.name for p in (tmp_path / "lab").iterdir() if p.is_dir())
    assert len(folders) == 2
    assert all(len(f) == 15 and f[8] == "_" for f in folders)
    meta = (tmp_path / "lab" / folders[0] / "metadata.txt").read_text()
    fields = dict(line.split(": ", 1) for line in meta.splitlines())
    assert int(fields["fatigue_level"]) in range(1, 6)
    assert fields["hardware_model"]
    bins = sorted((tmp_path / "lab" / folders[0]).glob("*.bin"))
    assert len(bins) == 4
    assert all(p.stat().st_size > 0 for p in bins)


def test_every_list_of_commands_gives_each_command_one_line_when_the_terminal_is_wide() -> None:
    """A summary wrapped in its docstring must not come out ragged in a group's ``--help``: on a terminal
    wide enough, each command's row in the Commands panel is one line."""
    groups: list[tuple[str, ...]] = [(), *sorted({cmd[:-1] for cmd in _commands(app) if len(cmd) > 1})]
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from headwater.cli import app\n"
        "for group in sys.argv[1:]:\n"
        "    print(CliRunner().invoke(app, [*group.split(), '--help']).output)\n"
        "    print('@@')\n"
    )
    env = {**os.environ, "TERMINAL_WIDTH": "1000"}
    proc = subprocess.run(
        [sys.executable, "-c", code, *(" ".join(g) for g in groups)],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )  # fmt: skip
    pages = proc.stdout.split("@@")[: len(groups)]
    assert len(groups) > 5
    for group, page in zip(groups, pages, strict=True):
        lines = page.splitlines()
        top = next(i for i, line in enumerate(lines) if "─ Commands ─" in line)
        rows = [line for line in lines[top + 1 :] if line.startswith("│")]
        names = {cmd[-1] for cmd in _commands(app) if cmd[:-1] == group}
        names |= {sub.name or "" for sub in app.registered_groups} if not group else set()
        assert len(rows) == len(names), (group, rows)  # a summary on two lines adds a row
        assert {row.split()[1] for row in rows} == names, group


def test_a_file_given_for_a_folder_is_one_line_naming_it_and_exit_2(tmp_path: Path) -> None:
    """An output folder that is a file used to end in 'unexpected error: FileExistsError' (exit 1)."""
    taken = tmp_path / "taken.csv"
    taken.write_text("mine")
    for args in (
        ("generate", "events", "--rows", "10", "--out", str(taken)),
        ("--project", str(tmp_path / "p"), "warehouse", "backup", str(taken)),
    ):
        if "--project" in args:
            run("init", str(tmp_path / "p"))
        out = run(*args, cwd=tmp_path)
        assert out.returncode == 2, (args, out.stderr)
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith(f"error: {taken}"), line
        assert taken.read_text() == "mine"

#!/usr/bin/env bash
# One entry point for people and CI. Creates .venv on first use and installs the project from its own files.
#   ./dev.sh demo [ARGS]   run the main job end to end on the embedded default (local folders + DuckDB file)
#   ./dev.sh test [ARGS]   ruff, mypy and the test suite (ARGS go to pytest)
#   ./dev.sh bench NAME    run bench/NAME.py (installs the benchmark peers first)
#   ./dev.sh hw ARGS       run the headwater CLI inside the venv
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=${HEADWATER_VENV:-.venv}

ensure_venv() {
  local extras=$1 stamp
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV" || { echo "error: '$PY -m venv' failed; install Python 3.11+ with venv (Debian: apt-get install python3-venv)" >&2; exit 2; }
  fi
  stamp="$VENV/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-$extras"
  if [ ! -f "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[$extras]"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
  fi
}

cmd=${1:-help}; shift || true
case "$cmd" in
  demo)
    ensure_venv dev
    exec "$VENV/bin/headwater" demo "$@" ;;
  test)
    ensure_venv dev
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    "$VENV/bin/mypy"
    exec "$VENV/bin/python" -m pytest "$@" ;;
  bench)
    ensure_venv "dev,bench"
    name=${1:?usage: ./dev.sh bench NAME}; shift
    exec "$VENV/bin/python" "bench/$name.py" "$@" ;;
  hw)
    ensure_venv dev
    exec "$VENV/bin/headwater" "$@" ;;
  *)
    sed -n '2,7p' "$0"; exit 0 ;;
esac

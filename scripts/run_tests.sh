#!/usr/bin/env bash
# Runs the whole test suite in the project's venv, with the RTL simulator's binaries on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TINYCOMPILE_VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
exec python -m pytest -q --timeout=1200 "$@"

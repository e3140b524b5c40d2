#!/usr/bin/env bash
# Runs the whole test suite in the project's venv, with the RTL simulator's binaries on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TINYCOMPILE_VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
# The tests run their own makes (Verilator models); the flags of `make test` itself must not leak into them.
unset MAKEFLAGS MFLAGS MAKELEVEL
exec python -m pytest -q --timeout=1200 "$@"

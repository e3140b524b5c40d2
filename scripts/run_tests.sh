#!/usr/bin/env bash
# Runs the whole test suite in the project's venv, with the RTL simulator's binaries on PATH.
#
# The tests run in parallel (pytest-xdist), one worker per core up to 4 (TC_TEST_WORKERS overrides; 0 runs them in
# this process). A test file stays on one worker (--dist loadfile): its module fixtures are made once, and the
# files that share one RTL model or build folder take the cross-process locks of tinycompile.accel.simulate.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TINYCOMPILE_VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
# The tests run their own makes (Verilator models); the flags of `make test` itself must not leak into them.
unset MAKEFLAGS MFLAGS MAKELEVEL
WORKERS=${TC_TEST_WORKERS:-$(n=$(nproc); echo $((n < 4 ? n : 4)))}
if ! [[ "$WORKERS" =~ ^[0-9]+$ ]]; then
  echo "run_tests.sh: TC_TEST_WORKERS must be a whole number of workers (0 or 1: one process), not '$WORKERS'" >&2
  exit 2
fi
PARALLEL=()
if [ "$WORKERS" -gt 1 ]; then
  PARALLEL=(-n "$WORKERS" --dist loadfile)
  # One torch thread per worker: the workers fill the cores, and threads of tiny tensors only contend.
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
fi
exec python -m pytest -q --timeout=1200 "${PARALLEL[@]}" "$@"

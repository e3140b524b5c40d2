#!/usr/bin/env bash
# Installs everything tinycompile needs on a fresh Debian 12 machine (as root), idempotently:
# the Debian toolchains (cross compilers, QEMU, synthesis, PostgreSQL; espeak-ng renders the kws-espeak task; the
# host compiler builds Verilator models and the QEMU plugin that records data addresses) and a
# venv with the pinned Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="gcc-arm-none-eabi picolibc-arm-none-eabi libnewlib-arm-none-eabi gcc-riscv64-unknown-elf
picolibc-riscv64-unknown-elf qemu-system-arm qemu-system-misc yosys nextpnr-ice40 iverilog postgresql espeak-ng
build-essential"
VENV=${TINYCOMPILE_VENV:-.venv}

missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
stamp="$VENV/.tinycompile-installed"
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # torch first and exactly pinned: a CPU wheel of this version is on the machine; a range would pull a CUDA build.
  "$VENV/bin/pip" install -q torch==2.13.0
  "$VENV/bin/pip" install -q -r requirements.txt
  "$VENV/bin/pip" install -q --no-deps -e .
  echo "$want" > "$stamp"
fi

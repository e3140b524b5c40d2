"""The synthesizable RTL is lint clean: ``verilator --lint-only -Wall`` at N = 4, 8 and 16, no warning at all."""

from __future__ import annotations

import subprocess

import pytest

from tinycompile.accel.simulate import RTL_DIR, rtl_sources, setup_env


@pytest.mark.parametrize("n", [4, 8, 16])
def test_rtl_lints_clean(n: int) -> None:
    """The whole accelerator (every module under rtl_sim/rtl, top tc_accel) elaborates with -Wall and no warning."""
    setup_env()
    res = subprocess.run(["verilator", "--lint-only", "-Wall", f"-GN={n}", "--top-module", "tc_accel",
                          *map(str, rtl_sources())], capture_output=True, text=True, cwd=RTL_DIR)
    assert res.returncode == 0 and "%Warning" not in res.stderr and "%Error" not in res.stderr, res.stderr[-3000:]

"""The synthesizable RTL is lint clean: ``verilator --lint-only -Wall`` at N = 4, 8 and 16, no warning at all."""

from __future__ import annotations

import subprocess

import pytest

from tinycompile.accel.config import AccelConfig
from tinycompile.accel.simulate import rtl_sources, setup_env


@pytest.mark.parametrize("n", [4, 8, 16])
def test_rtl_lints_clean(n: int) -> None:
    """The whole accelerator (tc_pkg and every module under rtl_sim/rtl, top tc_accel) elaborates with -Wall and no
    warning, with the sizes the fpga target gives that array (the RTL has no defaults)."""
    setup_env()
    params = [f"-G{k}={v}" for k, v in AccelConfig.for_array(n).rtl_parameters().items()]
    sources = rtl_sources()
    res = subprocess.run(["verilator", "--lint-only", "-Wall", *params, "--top-module", "tc_accel", *map(str, sources)],
                         capture_output=True, text=True, cwd=sources[0].parent)
    assert res.returncode == 0 and "%Warning" not in res.stderr and "%Error" not in res.stderr, res.stderr[-3000:]

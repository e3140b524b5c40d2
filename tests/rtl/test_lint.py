"""The synthesizable RTL is lint clean: ``verilator --lint-only -Wall`` at N = 4, 8 and 16, no warning at all; and
yosys, whose SystemVerilog reader is narrower than Verilator's, reads and elaborates it."""

from __future__ import annotations

import shutil
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


def test_yosys_reads_the_rtl(tmp_path) -> None:
    """yosys (the synthesis flow's reader: rtl_sim/synth/estimate.py, bench/bench_soc_synth.py) parses every module and
    elaborates tc_accel at N = 8 without an error: constructs Verilator accepts but yosys 0.23 does not (a cast to a
    parameter's width, ``int'(...)``) fail here instead of in a half-hour synthesis run."""
    yosys = shutil.which("yosys")
    assert yosys, "yosys is missing: scripts/setup.sh installs Debian's"
    params = " ".join(f"-set {k} {v}" for k, v in AccelConfig.for_array(8).rtl_parameters().items())
    script = (f"read_verilog -sv {' '.join(map(str, rtl_sources()))}; chparam {params} tc_accel; "
              "hierarchy -check -top tc_accel; proc")
    res = subprocess.run([yosys, "-q", "-p", script], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert res.returncode == 0 and "ERROR" not in res.stdout + res.stderr, (res.stdout + res.stderr)[-3000:]

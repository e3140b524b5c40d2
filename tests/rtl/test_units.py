"""Unit benches: requantization lane, MAC array (N = 4, 8, 16 elaborate), memory port with stalls."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinycompile.accel.simulate import build, run_cocotb, unit_sources

HERE = Path(__file__).parent


def _run(top: str, sources: list[str], params: dict[str, int], test: str, name: str, tmp_path: Path,
         env: dict[str, str] | None = None) -> None:
    """Build ``top`` from ``sources`` (and tc_pkg) and run the cocotb test ``test`` of cb_units on it (exactly that
    test: an anchored filter, and run_cocotb fails if it selects nothing)."""
    bdir = build(top, unit_sources(*sources), params, name)
    run_cocotb(top, bdir, "cb_units", tmp_path, env, test_filter=f"^cb_units\\.{test}$")


def test_requant_lane(tmp_path: Path) -> None:
    """Bit-exact with intmath, including ties and the saturating corners."""
    _run("tc_requant", ["tc_requant.sv"], {}, "requant_lane", "unit_requant", tmp_path)


@pytest.mark.parametrize("n", [4, 8, 16])
def test_mac_array(n: int, tmp_path: Path) -> None:
    """Every column's dot product sum_r x[r][c] W[r][c] equals numpy's, for N = 4, 8 and 16."""
    _run("tc_mac_array", ["tc_mac_array.sv"], {"N": n}, "mac_array", f"unit_mac{n}", tmp_path,
         {"TC_N": str(n)})


def test_memory_port_random_stalls(tmp_path: Path) -> None:
    """Reads return in order to the right requester and writes land, under random back-pressure."""
    _run("tc_mem_arb", ["tc_mem_arb.sv", "tc_fifo.sv"], {"DataW": 64}, "mem_port_stalls", "unit_arb",
         tmp_path, {"TC_DATAW": "64"})

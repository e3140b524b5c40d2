"""Unit benches: requantization lane, MAC array (N = 4, 8, 16 elaborate), memory port with stalls."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinycompile.accel.simulate import RTL_DIR, build, check_results, run_cocotb

HERE = Path(__file__).parent


def _run(top: str, sources: list[str], params: dict[str, int], test: str, name: str, tmp_path: Path,
         env: dict[str, str] | None = None) -> None:
    bdir = build(top, [RTL_DIR / s for s in sources], params, name)
    xml = run_cocotb(top, bdir, "cb_units", tmp_path, {"COCOTB_TEST_FILTER": test, **(env or {})})
    check_results(xml)


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

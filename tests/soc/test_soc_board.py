"""The SoC's board top for the ULX3S (tinycompile.soc.board): it and the serial transmitter lint clean, its pin
constraints name exactly its ports, and the PLL dividers give the clock asked for within the ECP5's limits. The
synthesis itself (minutes) is bench/bench_soc_synth.py's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tinycompile.errors import UserError
from tinycompile.soc import board


def _lint(top: str, files: list[str], params: dict[str, object]) -> subprocess.CompletedProcess[str]:
    from tinycompile.accel.simulate import setup_env

    setup_env()
    gflags = [f'-G{k}="{v}"' if isinstance(v, str) else f"-G{k}={v}" for k, v in params.items()]
    return subprocess.run(["verilator", "--lint-only", "-Wall", *gflags, "--top-module", top, *files],
                          capture_output=True, text=True)


@pytest.mark.parametrize(("n", "pll", "init"), [(8, board.Pll(2, 3, 11), "fw.hex"), (8, None, ""),
                                                 (4, board.Pll(5, 8, 10), ""), (0, board.Pll(1, 2, 8), "")])
def test_board_top_lints_clean(n: int, pll: board.Pll | None, init: str) -> None:
    """The board top with the whole SoC elaborates with -Wall and no warning: with the PLL and without, with a
    firmware image, at N = 8 and 4, and without the accelerator (the core alone, as the benchmark builds it)."""
    from tinycompile.resources import rtl_dir

    # tc_soc.vlt waives the third-party core's own style, as for the simulated SoC
    files = [str(rtl_dir() / "soc" / "tc_soc.vlt"), *map(str, board.sources()), str(board.lint_stubs())]
    res = _lint(board.TOP, files, board.parameters(n, pll, init))
    assert res.returncode == 0 and "%Warning" not in res.stderr and "%Error" not in res.stderr, res.stderr[-3000:]


def test_uart_tx_lints_clean() -> None:
    """The serial transmitter alone elaborates with -Wall and no warning."""
    from tinycompile.resources import rtl_dir

    res = _lint("tc_soc_uart_tx", [str(rtl_dir() / "soc" / "tc_soc_uart_tx.sv")], {"ClksPerBit": 326})
    assert res.returncode == 0 and "%Warning" not in res.stderr and "%Error" not in res.stderr, res.stderr[-3000:]


@pytest.mark.slow
def test_uart_sends_every_byte_in_8n1_frames(tmp_path: Path) -> None:
    """Forty bytes into a 16-byte FIFO, written as fast as the SoC's TX register can: all come out of the serial
    line in order as 8N1 frames of 7 cycles per bit, the writes held off while the FIFO is full (cb_soc_uart.py)."""
    from tinycompile.accel.simulate import build, run_cocotb
    from tinycompile.resources import rtl_dir

    bdir = build("tc_soc_uart_tx", [rtl_dir() / "soc" / "tc_soc_uart_tx.sv"], {"ClksPerBit": 7, "FifoDepth": 16},
                 "soc_uart_tx")
    run_cocotb("tc_soc_uart_tx", bdir, "cb_soc_uart", tmp_path, {"TC_CLKS_PER_BIT": "7"},
               test_filter=r"^cb_soc_uart\.uart_frames$")


@pytest.mark.slow
def test_boot_firmware_runs_in_the_board_memory(tmp_path: Path) -> None:
    """The firmware the bitstream carries, on the simulated SoC with the board's 128 KiB: it prints its line (the
    SoC's cycle counter read back) and exits with 0, without touching an unmapped address."""
    import re

    from tinycompile.soc.simulate import run_elf

    board.boot_firmware(tmp_path, 8)
    run = run_elf(tmp_path / "boot.elf", board.MEM_BYTES // 4, timeout_cycles=5_000_000)
    assert run.exited and run.exit_code == 0 and not run.fault, run.text
    m = re.fullmatch(r"tinycompile SoC on ULX3S: VexRiscv \+ 8x8 accelerator, (\d+) cycles since reset\n", run.text)
    assert m is not None, run.text
    assert 0 < int(m.group(1)) < run.cycles


def test_constraints_name_exactly_the_top_ports() -> None:
    """Every name in the shipped .lpf is a port bit of the top, and every port bit has a pin."""
    ports = board.top_ports()
    assert {"clk_25mhz", "btn_pwr_n", "ftdi_rxd", "led[0]", "led[7]"} <= ports and "led[8]" not in ports
    assert board.constraint_problems(board.constraints().read_text()) == []


def test_constraint_mismatches_are_named() -> None:
    """A pin for a port the top does not have, and a port left without a pin, are both reported by name."""
    text = board.constraints().read_text()
    problems = board.constraint_problems(text.replace('"ftdi_rxd"', '"uart_tx"'))
    assert problems == ["uart_tx is not a port of tc_soc_ulx3s", "ftdi_rxd has no pin (LOCATE COMP)"]


@pytest.mark.parametrize(("mhz", "expected", "dividers"), [(37.5, 37.5, (2, 3)), (40.0, 40.0, (5, 8)),
                                                           (39.75, 25 * 11 / 7, (7, 11)), (50.0, 50.0, (1, 2))])
def test_pll_gives_the_fastest_clock_not_above_the_request(mhz: float, expected: float,
                                                           dividers: tuple[int, int]) -> None:
    """The PLL's clock is the fastest 25 MHz x CLKFB / CLKI at or below the request (39.75 MHz: 25 x 11 / 7, as no
    input divider of 8 or less gives more), with the phase detector and the VCO inside the ECP5's ranges."""
    pll = board.pll_for(mhz)
    assert pll.mhz == pytest.approx(expected) and (pll.clki, pll.clkfb) == dividers
    assert board.PFD_MHZ[0] <= board.OSC_MHZ / pll.clki <= board.PFD_MHZ[1]
    assert board.VCO_MHZ[0] <= pll.vco_mhz <= board.VCO_MHZ[1]


def test_pll_out_of_range_is_a_user_error() -> None:
    """A clock below what the PLL can make is refused in one line naming it."""
    with pytest.raises(UserError, match="at or below 2 MHz"):
        board.pll_for(2.0)

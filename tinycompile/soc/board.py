"""The SoC on an FPGA board, the ULX3S (Lattice LFE5U-85F-6BG381C): the synthesis top's sources and parameters, the
memory sizes that fit the ECP5's block RAM, the PLL's dividers for a clock, and a small boot firmware image.

The simulated SoC's memories (512 KiB for code and data, 256 KiB for the accelerator) do not fit the 85F's 208
DP16KD blocks (3.7 Mbit, 416 KiB at 32 of every 36 bits); the board has 128 KiB and 64 KiB, and the accelerator's
scratchpads are the synthesis sizes of hw_targets/fpga.yaml (accelerator: synthesis:)."""

from __future__ import annotations

import math
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tinycompile.accel.config import synthesis_parameters
from tinycompile.errors import UserError
from tinycompile.resources import rtl_dir
from tinycompile.soc import rtl
from tinycompile.soc.image import write_hex
from tinycompile.soc.runtime import write_runtime

TOP = "tc_soc_ulx3s"
DEVICE = ("--85k", "CABGA381", 6)  # nextpnr-ecp5's device flag, package and speed grade: LFE5U-85F-6BG381C
OSC_MHZ = 25.0  # the board's oscillator (pin G2)
MEM_BYTES = 128 * 1024  # code and data: 64 DP16KD
ACCEL_MEM_BYTES = 64 * 1024  # the accelerator's memory: 32 DP16KD at N = 8
BAUD = 115_200
# ECP5 PLL limits (Lattice TN1263): phase detector input 3.125-400 MHz, VCO 400-800 MHz, dividers 1-128.
PFD_MHZ = (3.125, 400.0)
VCO_MHZ = (400.0, 800.0)
DIV_MAX = 128


@dataclass(frozen=True)
class Pll:
    """EHXPLLL dividers with CLKOP fed back: CLKOP = OSC_MHZ * clkfb / clki, the VCO at CLKOP * clkop."""

    clki: int
    clkfb: int
    clkop: int

    @property
    def mhz(self) -> float:
        """The output clock in MHz."""
        return OSC_MHZ * self.clkfb / self.clki

    @property
    def vco_mhz(self) -> float:
        """The VCO's frequency in MHz."""
        return self.mhz * self.clkop


def pll_for(mhz: float) -> Pll:
    """The fastest PLL clock at or below ``mhz`` the ECP5's limits allow (ties: the lowest dividers); UserError when
    none does (below ~3.2 MHz or above the VCO's range)."""
    best: Pll | None = None
    for clki in range(1, DIV_MAX + 1):
        if not PFD_MHZ[0] <= OSC_MHZ / clki <= PFD_MHZ[1]:
            continue
        for clkfb in range(1, DIV_MAX + 1):
            out = OSC_MHZ * clkfb / clki
            if out > mhz + 1e-9:
                break
            # the smallest output divider that lifts the VCO into its range, if any does
            clkop = max(1, math.ceil(VCO_MHZ[0] / out - 1e-9))
            if clkop > DIV_MAX or out * clkop > VCO_MHZ[1]:
                continue
            if best is None or out > best.mhz + 1e-9:
                best = Pll(clki, clkfb, clkop)
    if best is None:
        raise UserError(f"no ECP5 PLL setting from {OSC_MHZ:g} MHz gives a clock at or below {mhz:g} MHz")
    return best


def sources(variant: str = rtl.DEFAULT_CORE) -> list[Path]:
    """The synthesis top's Verilog: the core (VexRiscv ``variant``), the accelerator, our SoC glue, the serial
    transmitter and the board top (the simulation top and Verilator's control files left out)."""
    soc = rtl_dir() / "soc"
    return [p for p in rtl.sources(variant, accel=True) if p.suffix != ".vlt" and not p.stem.endswith("_sim")] + [
        soc / "tc_soc_uart_tx.sv", soc / f"{TOP}.sv"]


def lint_stubs() -> Path:
    """Port-only models of the ECP5 primitives the top instantiates, for Verilator's lint (yosys has its own)."""
    return rtl_dir() / "synth" / "ecp5_lint_stubs.sv"


def constraints() -> Path:
    """The board's pin constraints (.lpf) for the top's ports."""
    return rtl_dir() / "synth" / "ulx3s.lpf"


def parameters(n: int, pll: Pll | None, init_file: str = "") -> dict[str, int | str]:
    """The top's parameters: an ``n`` x ``n`` accelerator with the synthesis scratchpads, the board's memories, the
    clock (a PLL, or the oscillator with ``pll`` None) and the firmware image ``init_file``."""
    clock_mhz = pll.mhz if pll else OSC_MHZ
    p: dict[str, int | str] = {"MemWords": MEM_BYTES // 4, "AccelN": n, "AccelMemWords": ACCEL_MEM_BYTES // max(n, 1),
                               **synthesis_parameters(n), "UsePll": int(pll is not None),
                               "ClockHz": int(round(clock_mhz * 1e6)), "Baud": BAUD}
    if pll:
        p.update(ClkiDiv=pll.clki, ClkfbDiv=pll.clkfb, ClkopDiv=pll.clkop)
    if init_file:
        p["InitFile"] = init_file
    return p


_HELLO = """\
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  uint32_t lo = *(volatile uint32_t *)0xF0000008u;  /* the SoC's cycle counter */
  printf("tinycompile SoC on ULX3S: VexRiscv + %dx%d accelerator, %u cycles since reset\\n", @N@, @N@,
         (unsigned)lo);
  exit(0); /* the EXIT register (LED 0): this crt0 does not call exit when main returns */
}
"""


def boot_firmware(folder: Path, n: int, variant: str = rtl.DEFAULT_CORE, cc: str = "riscv64-unknown-elf-gcc") -> Path:
    """Build the board's boot firmware (a line on the serial port, then exit: LED 0) for the core ``variant`` into
    ``folder``; the path of its ``$readmemh`` image. The SoC runtime gives printf and exit, as in simulation."""
    folder.mkdir(parents=True, exist_ok=True)
    main = folder / "main.c"
    main.write_text(_HELLO.replace("@N@", str(n)))
    runtime = write_runtime(folder)
    elf = folder / "boot.elf"
    half = MEM_BYTES // 2  # code and constants below, data and stack above
    cmd = [cc, f"-march={rtl.CORE_VARIANTS[variant].march}", "-mabi=ilp32", "-O2", "--specs=picolibc.specs", "-o",
           str(elf), str(main), str(runtime), "-Wl,--gc-sections", "-Wl,--defsym=__flash=0x0",
           f"-Wl,--defsym=__flash_size={half:#x}", f"-Wl,--defsym=__ram={half:#x}",
           f"-Wl,--defsym=__ram_size={half:#x}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        raise UserError(f"{cc} not found: the board's firmware needs the RISC-V GCC and picolibc "
                        "(sudo apt-get install gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf)") from None
    if proc.returncode != 0:
        raise RuntimeError(f"boot firmware build failed:\n{proc.stderr[-2000:]}")
    hex_path = folder / "boot.hex"
    write_hex(elf, MEM_BYTES, hex_path)
    return hex_path


def top_ports() -> set[str]:
    """Every bit of the board top's ports as the constraints name it (``led[0]``, ..., ``clk_25mhz``), read from its
    port list."""
    text = (rtl_dir() / "soc" / f"{TOP}.sv").read_text()
    header = text[text.index(f"module {TOP}"):text.index(");", text.index(") ("))]
    ports: set[str] = set()
    for m in re.finditer(r"\b(?:input|output|inout)\s+logic\s*(?:\[(\d+):(\d+)\])?\s*(\w+)", header):
        if m.group(1) is None:
            ports.add(m.group(3))
        else:
            hi, lo = int(m.group(1)), int(m.group(2))
            ports.update(f"{m.group(3)}[{i}]" for i in range(min(hi, lo), max(hi, lo) + 1))
    return ports


def constraint_problems(lpf: str) -> list[str]:
    """What is wrong between the constraints text ``lpf`` and the top: names that are not a port bit, and port bits
    without a pin (LOCATE COMP); empty when they agree."""
    named = set(re.findall(r'\b(?:COMP|PORT)\s+"([^"]+)"', lpf))
    located = set(re.findall(r'\bLOCATE\s+COMP\s+"([^"]+)"', lpf))
    ports = top_ports()
    return ([f"{name} is not a port of {TOP}" for name in sorted(named - ports)]
            + [f"{port} has no pin (LOCATE COMP)" for port in sorted(ports - located)])

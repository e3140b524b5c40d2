"""The SoC's RTL: the core's Verilog (from the ``pythondata-cpu-vexriscv`` package), our glue (``rtl_sim/soc/``)
and the cached Verilator model of the whole (built once per core variant and memory size, like the accelerator's)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinycompile.accel.config import AccelConfig
from tinycompile.errors import UserError
from tinycompile.resources import rtl_dir

TOP = "tc_soc_sim"  # the simulation top: the SoC (tc_soc) and its own clock


@dataclass(frozen=True)
class Core:
    """A VexRiscv variant as pythondata-cpu-vexriscv ships it: its Verilog file and the ISA its code is built for."""

    verilog: str
    march: str


# Both are SpinalHDL's GenCoreDefault with --csrPluginConfig all: 4 KiB instruction and data caches, single-cycle
# multiply, mcycle/minstret. "imac" adds --atomics true --compressedGen true: it runs the rv32imc target's code
# unchanged, but its RVC decompressor sits on the instruction cache -> decode -> register file path (on the ULX3S's
# ECP5, the board SoC without the accelerator routes to 50.1 MHz with it, 74.9 MHz without; bench/RESULTS.md), so
# the SoC's default is "im".
CORE_VARIANTS = {"im": Core("VexRiscv_Full.v", "rv32im"), "imac": Core("VexRiscv_IMAC.v", "rv32imc")}
DEFAULT_CORE = "im"
# Speed (the SoC runs millions of cycles per inference): the simulation top makes its own clock (--timing, a 10 ns
# period under --timescale 1ns/1ps; the wheel's verilated.mk leaves out the coroutine flag that needs), only the top's ports are visible to cocotb (the
# runner's --public-flat-rw keeps every signal and slows the model about threefold), and the model's hot code is
# compiled -O2 instead of verilated.mk's -Os.
VERILATOR_ARGS = ("--timing", "--timescale", "1ns/1ps", "-CFLAGS", "-fcoroutines", "--no-public-flat-rw")
MAKE_VARS = ("OPT_FAST=-O2",)


def core_source(variant: str = DEFAULT_CORE) -> Path:
    """The VexRiscv Verilog of ``variant``; UserError naming the PyPI package when it is not installed."""
    try:
        import pythondata_cpu_vexriscv as pd
    except ImportError:
        raise UserError("the SoC needs the VexRiscv core's Verilog; install it with: "
                        "pip install pythondata-cpu-vexriscv==1.0.1.post407") from None
    if variant not in CORE_VARIANTS:
        raise UserError(f"unknown VexRiscv variant {variant!r}; choose one of {', '.join(CORE_VARIANTS)}")
    return Path(pd.data_location) / CORE_VARIANTS[variant].verilog


def glue_sources() -> list[Path]:
    """Our SoC modules (the memory, the peripheral registers, the accelerator's memory and registers, the top, the
    simulation top) and the Verilator control files (lint waived in the third-party core; the simulation top's
    ports visible to cocotb)."""
    folder = rtl_dir() / "soc"
    return [folder / "tc_soc.vlt", folder / "tc_soc_ram.sv", folder / "tc_soc_io.sv", folder / "tc_soc_accel_mem.sv",
            folder / "tc_soc_accel_regs.sv", folder / "tc_soc.sv", folder / "tc_soc_sim.sv",
            folder / "tc_soc_sim.vlt"]


def sources(variant: str = DEFAULT_CORE, accel: bool = False) -> list[Path]:
    """Every file of the SoC, the core first; ``accel``: with the accelerator's RTL (its package before its users)."""
    from tinycompile.accel.simulate import rtl_sources

    return [core_source(variant), *(rtl_sources() if accel else []), *glue_sources()]


@dataclass(frozen=True)
class AccelPart:
    """The accelerator in the SoC: its configuration (array and scratchpads) and its memory's size in bytes."""

    cfg: AccelConfig
    mem_bytes: int = 1 << 16

    def parameters(self) -> dict[str, int]:
        """tc_soc's parameters for this accelerator."""
        p = {k: v for k, v in self.cfg.rtl_parameters().items() if k != "N"}
        return {"AccelN": self.cfg.n, "AccelMemWords": self.mem_bytes // self.cfg.n, **p}


def build_model(mem_words: int, variant: str = DEFAULT_CORE, accel: AccelPart | None = None) -> Path:
    """Build (or reuse) the Verilator model of the SoC with ``mem_words`` words of memory (and ``accel``); its build
    folder."""
    from tinycompile.accel.simulate import build, tb_name

    params: dict[str, int] = {"MemWords": mem_words, **(accel.parameters() if accel else {})}
    name = f"soc_vexriscv_{variant}_m{mem_words}"
    if accel is not None:
        name += "_" + tb_name(accel.cfg, accel.mem_bytes // accel.cfg.n).removeprefix("tb_")
    return build(TOP, sources(variant, accel is not None), params, name, VERILATOR_ARGS, MAKE_VARS)

"""A network on the SoC: the MCU back end's C library and test harness (:mod:`tinycompile.mcu`), linked for the
SoC's memory map with its runtime, run on the RTL; outputs checked against the integer reference and the cycles of
every kernel read from the core's ``mcycle`` (or ``minstret``) counter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinycompile.arch import ArchSpec
from tinycompile.errors import UserError
from tinycompile.mcu import firmware
from tinycompile.mcu.library import Compiled, Library, compile_graph, write_library
from tinycompile.mcu.naming import Naming
from tinycompile.quant import reference
from tinycompile.quant.graph import QuantGraph
from tinycompile.soc.rtl import DEFAULT_CORE
from tinycompile.soc.runtime import write_runtime
from tinycompile.soc.simulate import DEFAULT_TIMEOUT_CYCLES, SocRun, run_elf
from tinycompile.targets import Target


@dataclass(frozen=True)
class SocConfig:
    """The target's SoC: memory words (from its ``build:`` memory map), core variant, time-out."""

    mem_words: int
    variant: str
    timeout_cycles: int


@dataclass
class SocResult:
    """One network on the SoC: outputs, per-kernel counts, the run itself and what was built."""

    outputs: np.ndarray  # (N, output size) int8, as the SoC produced them
    expected: np.ndarray  # (N, output size) int8, the integer reference
    mismatches: int  # inputs whose output differs
    counts: firmware.RunResult  # per-vector, per-kernel counter deltas (cycles, or instructions with minstret)
    run: SocRun
    library: Library
    elf: Path


def soc_config(target: Target) -> SocConfig:
    """The SoC of ``target``: its memory map must start at 0 (the core's reset vector) and fit one memory below the
    uncached I/O space (0x8000_0000)."""
    b = firmware.build_config(target, emulator=False)
    soc = target.raw.get("soc") or {}
    if int(b["flash_origin"]) != 0:
        raise UserError(f"{target.path}: build.flash_origin must be 0 on the SoC (the core starts there)")
    top = max(int(b["flash_origin"]) + int(b["flash_size"]), int(b["ram_origin"]) + int(b["ram_size"]))
    if top > 0x8000_0000 or top < 4 or top & (top - 1):
        # one memory of a power-of-two size: the SoC decodes it by its upper address bits
        raise UserError(f"{target.path}: the memory map must end at a power of two at or below 0x80000000, not at "
                        f"{top:#x}")
    return SocConfig(top // 4, str(soc.get("core", DEFAULT_CORE)), int(soc.get("timeout_cycles", DEFAULT_TIMEOUT_CYCLES)))


def build_firmware(graph: QuantGraph, spec: ArchSpec, target: Target, out: Path, vectors: np.ndarray,
                   compiled: Compiled | None = None, naming: Naming = Naming(), counter: str | None = None,
                   ) -> tuple[Library, Path]:
    """The library (TVM's C codegen) in ``out/lib`` and the harness + SoC runtime in ``out/firmware``, linked into
    ``out/firmware/firmware.elf``; ``counter``: ``mcycle`` (the target's, by default) or ``minstret``."""
    b = firmware.build_config(target, emulator=False)
    compiled = compiled or compile_graph(graph)
    lib = write_library(out / "lib", graph, spec, compiled, "c", b.get("llvm_target"), naming, b["cc"])
    fw = out / "firmware"
    fw.mkdir(parents=True, exist_ok=True)
    firmware.write_harness(fw, vectors, counter or b["counter"], naming)
    runtime = write_runtime(fw)
    elf = firmware.compile_firmware(fw, lib.folder, target, list(lib.kernels), profile=naming, oslib=None,
                                    extra_sources=[runtime])
    return lib, elf


def run_network(graph: QuantGraph, spec: ArchSpec, target: Target, out: Path, vectors: np.ndarray,
                compiled: Compiled | None = None, naming: Naming = Naming(), counter: str | None = None) -> SocResult:
    """Build the firmware for ``vectors`` (int8, one row per input), run it on the SoC's RTL and compare every output
    with the integer reference; RuntimeError with the SoC's own account if the firmware did not finish."""
    cfg = soc_config(target)
    lib, elf = build_firmware(graph, spec, target, out, vectors, compiled, naming, counter)
    run = run_elf(elf, cfg.mem_words, cfg.timeout_cycles, cfg.variant, log=elf.with_name("soc.log"))
    failure = run.failure(cfg.timeout_cycles)
    if failure is not None:
        raise RuntimeError(f"firmware failed on the SoC: {failure}")
    expected = reference.run(graph, vectors).reshape(len(vectors), -1)
    counts = firmware.parse_output(run.text, len(vectors), len(lib.info.kernels), expected.shape[1], 1.0, "the SoC")
    mismatches = int((counts.outputs != expected).any(axis=1).sum())
    return SocResult(counts.outputs, expected, mismatches, counts, run, lib, elf)


def per_layer(kernel_ops: Sequence[int], counts: Sequence[float], n_layers: int) -> list[float | None]:
    """Per-kernel counts summed per op of the graph (None for ops with no kernel: views)."""
    rows: list[float | None] = [None] * n_layers
    for op, c in zip(kernel_ops, counts):
        rows[op] = (rows[op] or 0.0) + c
    return rows

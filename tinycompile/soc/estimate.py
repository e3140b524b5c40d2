"""The SoC core's cycles estimated without the RTL: the same library linked for QEMU (the ``soc.instructions``
target), its executed instruction stream and data addresses traced there, moved to the SoC link's addresses
(:mod:`tinycompile.mcu.relocate`) and priced with the SoC target's ``timing:`` table, a model of its VexRiscv core
and caches (:mod:`tinycompile.mcu.timing`)."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from tinycompile.mcu import firmware, memtrace, timing
from tinycompile.mcu import trace as tracing
from tinycompile.mcu.naming import Naming
from tinycompile.mcu.relocate import Relocation
from tinycompile.targets import Target, load_target


def qemu_twin(soc_target: Target) -> Target:
    """The SoC's ``soc.instructions`` target (a QEMU machine) building the SoC's own code: its machine and memory
    map with the SoC's ISA (``llvm_target``, ``cflags``), so that both links hold the same instructions."""
    qemu = load_target(soc_target.raw["soc"]["instructions"])
    build = {**qemu.build, **{k: soc_target.build[k] for k in ("llvm_target", "cflags")}}
    return dataclasses.replace(qemu, build=build, raw={**qemu.raw, "build": build})


def estimate_kernels(qemu_elf: Path, qemu_target: Target, soc_elf: Path, soc_target: Target, kernels: int,
                     naming: Naming = Naming()) -> list[timing.KernelCycles]:
    """Each kernel's estimated cycles on the SoC's core for the first input (``qemu_elf``: the library and harness
    linked for ``qemu_target``; ``soc_elf``: the same linked for the SoC); RuntimeError if the trace fails."""
    model = timing.TimingModel.from_section(soc_target.raw["timing"], soc_target.path)
    with tempfile.TemporaryDirectory(prefix="tc_soc_est_") as tmp:
        records = Path(tmp) / "accesses.bin"
        extra = memtrace.plugin_args(records) if model.data_cache is not None else []
        cmd = firmware.qemu_command(qemu_elf, qemu_target, Path(tmp) / "semihosting.out")
        traced = tracing.trace_firmware(qemu_elf, cmd, model.isa, naming.ident("profile_hook"), kernels,
                                        firmware.QEMU_TIMEOUT_S, extra)
        accesses = memtrace.read_records(records) if extra else None
    move = Relocation.between(qemu_elf, soc_elf)
    if accesses is not None:
        pcs, addresses = accesses
        store = pcs & np.uint32(1)
        accesses = (move.array(pcs & ~np.uint32(1)) | store, move.array(addresses))
    return timing.estimate(move.trace(traced), model, accesses)

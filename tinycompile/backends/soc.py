"""The RISC-V SoC back end (``kind: soc``): the MCU back end's firmware for the core, run on the SoC's RTL in
Verilator under cocotb, with cycles measured by the core's own counter (:mod:`tinycompile.soc`). QEMU's instruction
counts of the same library (the target's ``soc.instructions`` target) are reported beside them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinycompile.arch import Layer, Shape
from tinycompile.backends.base import Backend, BuildResult, Workload
from tinycompile.backends.mcu import CYCLE_KEYS, McuBackend
from tinycompile.cost.arena import VIEW_OPS
from tinycompile.errors import UserError
from tinycompile.quant.graph import QuantGraph
from tinycompile.targets import Target, require


class SocBackend(Backend):
    """A RISC-V core (VexRiscv) in a simulated SoC: the MCU firmware, cycle-exact."""

    kind = "soc"
    title = "RISC-V SoC in RTL (VexRiscv core, Verilator + cocotb): MCU firmware, cycles measured"

    def check_target(self, target: Target) -> None:
        """The cost model's coefficients, the ``build:`` section (no emulator) and the ``soc:`` section."""
        from tinycompile.mcu.firmware import build_config
        from tinycompile.soc.rtl import CORE_VARIANTS
        from tinycompile.soc.run import soc_config

        cycles = require(target.raw, "cycles", dict, target.path)
        for key in CYCLE_KEYS:
            require(cycles, key, (int, float), target.path, "cycles.")
        build_config(target, emulator=False)
        soc = require(target.raw, "soc", dict, target.path)
        if soc.get("core", "imac") not in CORE_VARIANTS:
            raise UserError(f"{target.path}: soc.core must be one of {', '.join(CORE_VARIANTS)}, not {soc['core']!r}")
        if "timeout_cycles" in soc:
            require(soc, "timeout_cycles", int, target.path, "soc.")
        if "instructions" in soc:
            require(soc, "instructions", str, target.path, "soc.")
        soc_config(target)

    def layer_cycles(self, layer: Layer, in_shape: Shape, out_shape: Shape, macs: int, target: Target) -> float:
        """The MCU cost model: the core runs the MCU back end's code."""
        return McuBackend().layer_cycles(layer, in_shape, out_shape, macs, target)

    def constant_bytes(self, layer: Layer, in_shape: Shape, out_shape: Shape, target: Target) -> int:
        """As the MCU library stores them (no DSP packing on RISC-V)."""
        return McuBackend().constant_bytes(layer, in_shape, out_shape, target)

    def placements(self, graph: QuantGraph, target: Target, options: dict[str, Any]) -> list[str]:
        """Every op with a kernel runs on the core."""
        return McuBackend().placements(graph, target, options)

    def build(self, work: Workload, target: Target, options: dict[str, Any], out: Path) -> BuildResult:
        """Library + firmware on the SoC's RTL (cycles per layer from mcycle), and the same library on QEMU
        (instructions per layer) when the target names an instruction-counting target."""
        from tinycompile.console import console
        from tinycompile.cost.model import estimate
        from tinycompile.mcu import backend as mcu
        from tinycompile.mcu.library import compile_graph
        from tinycompile.soc.run import per_layer, run_network, summary

        budget = mcu.check_budget(work.spec, target)  # refuses before anything is built
        console(stderr=True).print(f"[bold]build[/] {work.label} for {target.name} (RTL simulation)")
        work.graph.save(out / "quant")
        compiled = compile_graph(work.graph)
        res = run_network(work.graph, work.spec, target, out, work.inputs, compiled)
        cycles = per_layer(res.library, res.counts.kernel_instructions[0], len(work.spec.layers))
        instructions = self._instructions(work, target, out, compiled)
        cost = estimate(work.spec, target)
        layers = []
        for i, layer in enumerate(work.spec.layers):
            measured = 0.0 if layer.op in VIEW_OPS else cycles[i]
            instr = None if instructions is None else instructions[i]
            layers.append({"index": i, "op": layer.op, "ran_on": "view (no data moved)" if layer.op in VIEW_OPS
                           else "core", "macs": work.spec.macs()[i], "predicted": cost.layers[i].cycles,
                           "measured": measured, "qemu_instructions": instr,
                           "cycles_per_instruction": measured / instr if instr and measured else None})
        total = float(res.counts.total_instructions[0])
        total_instr = None if instructions is None else sum(v or 0.0 for v in instructions)
        info = res.library.info
        section = {"core": "VexRiscv RV32IMAC, 4 KiB I$ + 4 KiB D$", "counter": "mcycle", **summary(res),
                   "qemu_instructions": total_instr,
                   "cycles_per_instruction": total / total_instr if total_instr else None,
                   "elf": str(res.elf.relative_to(out)), "kernels": list(info.kernels), "budget": budget}
        return BuildResult(
            outputs=res.outputs.reshape(len(work.inputs), *work.graph.output_shape), unit="cycles", layers=layers,
            predicted=cost.cycles, measured=total,
            memory={"arena_bytes": info.arena_bytes, "scratch_bytes": info.workspace_bytes,
                    "flash_bytes": None},
            section=section,
        )

    def _instructions(self, work: Workload, target: Target, out: Path, compiled: Any) -> list[float | None] | None:
        """Per layer, QEMU's instruction count of the same library on the ``soc.instructions`` target (None if the
        target names none)."""
        from tinycompile.mcu import backend as mcu
        from tinycompile.targets import load_target

        name = (target.raw.get("soc") or {}).get("instructions")
        if not name:
            return None
        qemu = load_target(name)
        mcu.check_tools(qemu)
        run = mcu.build_and_run(work.graph, work.spec, qemu, out / "qemu", work.inputs, "c", compiled=compiled)
        return [row["measured_instructions"] for row in run.report["layers"]]

    def summary_lines(self, report: dict[str, Any]) -> list[str]:
        """Cycles per instruction against QEMU's count and the simulation's speed."""
        b = report["backend"]
        lines = [f"{b['core']}: cycles from mcycle on RTL | simulated {b['sim_cycles']:,} cycles in "
                 f"{b['sim_seconds']:.1f} s ({b['sim_cycles_per_second']:,} cycles/s)"]
        if b.get("cycles_per_instruction"):
            lines.append(f"QEMU counts {b['qemu_instructions']:,.0f} instructions for the same library: "
                         f"{b['cycles_per_instruction']:.2f} cycles per instruction")
        return lines

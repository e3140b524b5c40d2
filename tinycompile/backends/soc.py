"""The RISC-V SoC back end (``kind: soc``): the MCU back end's firmware for the core, run on the SoC's RTL in
Verilator under cocotb, with cycles measured by the core's own counter (:mod:`tinycompile.soc`). QEMU's instruction
counts of the same library (the target's ``soc.instructions`` target) are reported beside them, and the cycles the
target's ``timing:`` model estimates from QEMU's trace of that library (:mod:`tinycompile.soc.estimate`)."""

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
        core = soc.get("core", "imac")
        if not isinstance(core, str) or core not in CORE_VARIANTS:
            raise UserError(f"{target.path}: soc.core must be one of {', '.join(CORE_VARIANTS)}, but got {core!r}")
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
        from tinycompile.fileio import write_io, write_json
        from tinycompile.mcu import backend as mcu
        from tinycompile.mcu.library import compile_graph
        from tinycompile.soc.run import run_network

        budget = mcu.check_budget(work.spec, target)  # refuses before anything is built
        console(stderr=True).print(f"[bold]build[/] {work.label} for {target.name} (RTL simulation)")
        work.graph.save(out / "quant")
        compiled = compile_graph(work.graph)
        res = run_network(work.graph, work.spec, target, out, work.inputs, compiled)
        instructions = self._instructions(work, target, out, compiled)
        estimate = self._estimate(target, out, res.elf, list(res.library.info.kernel_ops), len(work.spec.layers)) \
            if instructions is not None else {"estimated_cycles": None, "cycles_are": "not estimated: the target names "
                                              "no soc.instructions target to trace"}
        outputs = res.outputs.reshape(len(work.inputs), *work.graph.output_shape)
        write_io(out, work.inputs, outputs)
        info = res.library.info
        write_json(out / MANIFEST, {"target": target.name, "target_file": str(target.path.resolve()),
                                    "kernel_ops": list(info.kernel_ops), "arena_bytes": info.arena_bytes,
                                    "workspace_bytes": info.workspace_bytes, "kernels": list(info.kernels),
                                    "qemu_instructions": instructions, "estimate": estimate, "budget": budget})
        return _result(work, target, res.counts, res.run, instructions, _load_manifest(out))

    def owns(self, folder: Path) -> bool:
        """A SoC build folder holds its manifest, soc.json."""
        return (Path(folder) / MANIFEST).is_file()

    def simulate(self, folder: Path) -> int:
        """Run the folder's firmware on the SoC's RTL again (its old report goes first, a new one replaces it)."""
        import numpy as np

        from tinycompile.backends.flow import finish
        from tinycompile.backends.report import print_report
        from tinycompile.console import console
        from tinycompile.fileio import IO_NPZ, folder_lock, read_npz
        from tinycompile.mcu.firmware import parse_output
        from tinycompile.quant.graph import QuantGraph, spec_of
        from tinycompile.soc.run import soc_config
        from tinycompile.soc.simulate import run_elf
        from tinycompile.targets import load_target

        folder = Path(folder)
        with folder_lock(folder):
            (folder / "report.json").unlink(missing_ok=True)  # the verdict goes first: nothing below may leave it
            doc = _load_manifest(folder)
            path = doc["target_file"]
            target = load_target(path if Path(path).is_file() else doc["target"])
            graph = QuantGraph.load(folder / "quant")
            inputs = np.asarray(read_npz(folder / IO_NPZ)["inputs"])
            elf = folder / "firmware" / "firmware.elf"
            if not elf.is_file():
                raise UserError(f"{folder}: damaged build folder: firmware/firmware.elf is missing; rebuild it")
            cfg = soc_config(target)
            console(stderr=True).print(f"[bold]simulate[/] {folder}: {len(inputs)} inputs on the SoC's RTL")
            run = run_elf(elf, cfg.mem_words, cfg.timeout_cycles, cfg.variant, log=elf.with_name("soc.log"))
            failure = run.failure(cfg.timeout_cycles)
            if failure is not None:
                raise UserError(f"{folder}: the firmware failed on the SoC: {failure}")
            out_size = int(np.prod(graph.output_shape))
            counts = parse_output(run.text, len(inputs), len(doc["kernel_ops"]), out_size, 1.0, "the SoC")
            work = Workload(graph, spec_of(graph), inputs, str(folder))
            source = {k: graph.meta[k] for k in ("trial", "task", "model", "format") if k in graph.meta}
            result = _result(work, target, counts, run, doc.get("qemu_instructions"), doc)
            report = finish(work, source, target, result, folder)
        print_report(report, self, console())
        return 0 if report["bit_exact"] else 1

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

    def _estimate(self, target: Target, out: Path, soc_elf: Path, kernel_ops: list[int], n_layers: int) -> dict[str, Any]:
        """The cycles the target's ``timing:`` model estimates per layer and in total from QEMU's trace of the
        ``soc.instructions`` build in ``out/qemu`` (what the RTL measures, without the RTL)."""
        from tinycompile.mcu.naming import Naming
        from tinycompile.soc.estimate import estimate_kernels
        from tinycompile.soc.run import per_layer
        from tinycompile.targets import load_target

        table = f"hw_targets/{target.path.name}" if target.path.parent.name == "hw_targets" else str(target.path)
        if "timing" not in target.raw:
            return {"estimated_cycles": None, "cycles_are": f"not estimated: {table} has no timing: section"}
        qemu = load_target(target.raw["soc"]["instructions"])
        try:
            kernels = estimate_kernels(out / "qemu" / "firmware" / "firmware.elf", qemu, soc_elf, target,
                                       len(kernel_ops), Naming())
        except (RuntimeError, OSError, ValueError) as exc:  # the RTL's verdict stands without its estimate
            return {"estimated_cycles": None, "cycles_are": f"not estimated: {exc}"[:500]}
        return {"estimated_cycles": sum(k.cycles for k in kernels),
                "cycles_are": f"estimated from QEMU's executed instruction stream and data addresses with {table} timing:",
                "layers": per_layer(kernel_ops, [k.cycles for k in kernels], n_layers),
                "parts": {"issue": sum(k.issue for k in kernels), "branches": sum(k.branches for k in kernels),
                          "instruction_cache": sum(k.fetch for k in kernels),
                          "data_cache": sum(k.data for k in kernels)}}

    def summary_lines(self, report: dict[str, Any]) -> list[str]:
        """Cycles per instruction against QEMU's count and the simulation's speed."""
        b = report["backend"]
        lines = [f"{b['core']}: cycles from mcycle on RTL | simulated {b['sim_cycles']:,} cycles in "
                 f"{b['sim_seconds']:.1f} s ({b['sim_cycles_per_second']:,} cycles/s)"]
        if b.get("cycles_per_instruction"):
            lines.append(f"QEMU counts {b['qemu_instructions']:,.0f} instructions for the same library: "
                         f"{b['cycles_per_instruction']:.2f} cycles per instruction")
        if b.get("estimated_cycles"):
            lines.append(f"estimated cycles: {b['estimated_cycles']:,.0f} ({100 * b['estimate_error']:+.1f}% against "
                         f"the RTL's), {b['cycles_are']}")
        elif b.get("cycles_are"):
            lines.append(f"cycles {b['cycles_are']}")
        return lines


MANIFEST = "soc.json"  # what simulate needs besides the firmware: the target, the kernels' ops, QEMU's counts


def _load_manifest(folder: Path) -> dict[str, Any]:
    """The build folder's soc.json; a one-line UserError if it is not what a build wrote."""
    import json

    try:
        doc = json.loads((Path(folder) / MANIFEST).read_text())
        if not (isinstance(doc["target"], str) and isinstance(doc["target_file"], str)
                and all(isinstance(k, int) for k in doc["kernel_ops"])):
            raise TypeError("wrong types")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{folder}: damaged build folder: {MANIFEST} is not a SoC build's ({exc}); rebuild it") from None
    return doc


def _result(work: Workload, target: Target, counts: Any, run: Any, instructions: list[float | None] | None,
            doc: dict[str, Any]) -> BuildResult:
    """The common result of one SoC run: per-layer cycles (first input) beside QEMU's instructions."""
    from tinycompile.cost.model import estimate
    from tinycompile.soc.run import per_layer

    cycles = per_layer(doc["kernel_ops"], counts.kernel_instructions[0], len(work.spec.layers))
    est = doc.get("estimate") or {}
    estimated = est.get("layers") or [None] * len(work.spec.layers)
    cost = estimate(work.spec, target)
    macs = work.spec.macs()
    layers = []
    for i, layer in enumerate(work.spec.layers):
        measured = 0.0 if layer.op in VIEW_OPS else cycles[i]
        instr = None if instructions is None else instructions[i]
        layers.append({"index": i, "op": layer.op, "ran_on": "view (no data moved)" if layer.op in VIEW_OPS else "core",
                       "macs": macs[i], "predicted": cost.layers[i].cycles, "measured": measured,
                       "qemu_instructions": instr,
                       "cycles_per_instruction": measured / instr if instr and measured else None,
                       "estimated_cycles": 0.0 if layer.op in VIEW_OPS else estimated[i]})
    totals = counts.total_instructions  # the harness's T lines: counter deltas, here cycles
    total_instr = None if instructions is None else sum(v or 0.0 for v in instructions)
    section = {"core": "VexRiscv RV32IMAC, 4 KiB I$ + 4 KiB D$", "counter": "mcycle",
               "cycles_first_input": totals[0], "cycles_spread": [min(totals), max(totals)],
               "qemu_instructions": total_instr,
               "cycles_per_instruction": totals[0] / total_instr if total_instr else None,
               "estimated_cycles": est.get("estimated_cycles"), "cycles_are": est.get("cycles_are"),
               "estimate_error": (est["estimated_cycles"] - totals[0]) / totals[0]
               if est.get("estimated_cycles") and totals[0] else None,
               "estimate_parts": est.get("parts"),
               "sim_cycles": run.cycles, "sim_seconds": round(run.wall_s, 2),
               "sim_cycles_per_second": round(run.cycles_per_second), "image_bytes": run.image_bytes,
               "elf": "firmware/firmware.elf", "kernels": doc.get("kernels"), "budget": doc.get("budget")}
    outputs = counts.outputs.reshape(len(work.inputs), *work.graph.output_shape)
    return BuildResult(outputs=outputs, unit="cycles", layers=layers, predicted=cost.cycles, measured=float(totals[0]),
                       memory={"arena_bytes": doc.get("arena_bytes"), "scratch_bytes": doc.get("workspace_bytes"),
                               "flash_bytes": None},
                       section=section)

"""The RISC-V SoC back end (``kind: soc``): the MCU back end's firmware for the core, run on the SoC's RTL in
Verilator under cocotb, with cycles measured by the core's own counter (:mod:`tinycompile.soc`). QEMU's instruction
counts of the same library (the target's ``soc.instructions`` target) are reported beside them, and the cycles the
target's ``timing:`` model estimates from QEMU's trace of that library (:mod:`tinycompile.soc.estimate`)."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Any

from tinycompile.accel.config import ARRAYS
from tinycompile.arch import Layer, Shape
from tinycompile.backends.base import Backend, BuildResult, Workload
from tinycompile.backends.mcu import CYCLE_KEYS, McuBackend
from tinycompile.cost.arena import VIEW_OPS
from tinycompile.errors import UserError
from tinycompile.quant.graph import QuantGraph
from tinycompile.targets import Target, require


def _reads_input(graph: QuantGraph, placement: dict[int, str], i: int) -> bool:
    """Whether op ``i`` reads the network input, directly or through views (a flatten moves no bytes)."""
    return any(j == -1 or (placement.get(j) == "view" and _reads_input(graph, placement, j))
               for j in graph.ops[i].inputs)


class SocBackend(Backend):
    """A RISC-V core (VexRiscv) and the accelerator in a simulated SoC: one firmware, cycle-exact."""

    kind = "soc"
    title = "RISC-V SoC in RTL (VexRiscv core + the accelerator, Verilator + cocotb): cycles measured"
    defaults = {"array": None, "core_only": None}

    def add_options(self, group: argparse._ArgumentGroup) -> None:
        """``--array`` (shared with the fpga kind) and ``--core-only``."""
        group.add_argument("--array", type=int, choices=ARRAYS, help="the accelerator's N x N array size "
                           "(default: the target's)")
        group.add_argument("--core-only", action="store_true", default=None,
                           help="soc targets: run every layer on the core, without the accelerator")

    def options(self, given: dict[str, Any], target: Target) -> dict[str, Any]:
        """The accelerator's array size (``--array`` or the target's ``soc.accelerator.array``), or 0 for the core
        alone (``--core-only``, or a target without an accelerator)."""
        section = (target.raw.get("soc") or {}).get("accelerator")
        if given.get("core_only"):
            if given.get("array") is not None:
                raise UserError("--array and --core-only contradict each other: give one")
            return {"array": 0}
        if section is None:
            if given.get("array") is not None:
                raise UserError(f"--array: {target.name} has no accelerator (no soc.accelerator section in {target.path})")
            return {"array": 0}
        return {"array": int(given["array"] if given.get("array") is not None else section["array"])}

    def check_target(self, target: Target) -> None:
        """The cost model's coefficients, the ``build:`` section (no emulator) and the ``soc:`` section."""
        from tinycompile.mcu.firmware import build_config
        from tinycompile.soc.rtl import CORE_VARIANTS, DEFAULT_CORE
        from tinycompile.soc.run import soc_config

        cycles = require(target.raw, "cycles", dict, target.path)
        for key in CYCLE_KEYS:
            require(cycles, key, (int, float), target.path, "cycles.")
        build_config(target, emulator=False)
        soc = require(target.raw, "soc", dict, target.path)
        core = soc.get("core", DEFAULT_CORE)
        if not isinstance(core, str) or core not in CORE_VARIANTS:
            raise UserError(f"{target.path}: soc.core must be one of {', '.join(CORE_VARIANTS)}, but got {core!r}")
        march = CORE_VARIANTS[core].march
        if f"-march={march}" not in target.raw["build"].get("cflags", []):
            raise UserError(f"{target.path}: the {core} core runs {march} code: build.cflags must hold -march={march} "
                            "(and build.llvm_target the same extensions)")
        if "timeout_cycles" in soc:
            require(soc, "timeout_cycles", int, target.path, "soc.")
        if "instructions" in soc:
            require(soc, "instructions", str, target.path, "soc.")
        if "accelerator" in soc:
            accel = require(soc, "accelerator", dict, target.path, "soc.")
            for key in ("array", "memory_kb"):
                require(accel, key, int, target.path, "soc.accelerator.")
            for key in ("start_cycles", "input_cycles_per_write"):
                require(accel, key, (int, float), target.path, "soc.accelerator.")
            if accel["array"] not in ARRAYS:
                raise UserError(f"{target.path}: soc.accelerator.array must be one of {', '.join(map(str, ARRAYS))}, "
                                f"but got {accel['array']}")
            if accel["memory_kb"] < 4 or accel["memory_kb"] & (accel["memory_kb"] - 1):
                raise UserError(f"{target.path}: soc.accelerator.memory_kb must be a power of two >= 4, but got "
                                f"{accel['memory_kb']}")
        soc_config(target)

    def layer_cycles(self, layer: Layer, in_shape: Shape, out_shape: Shape, macs: int, target: Target) -> float:
        """A layer the target's accelerator can run: its schedule replayed through the accelerator's timing model,
        plus the core's start and poll, plus writing the network input for the first layer (the ``soc.accelerator``
        coefficients); any other layer: the MCU cost model (the core runs the MCU back end's code)."""
        g = _accelerator_geom(layer, in_shape, out_shape, target)
        if g is None:
            return McuBackend().layer_cycles(layer, in_shape, out_shape, macs, target)
        from tinycompile.accel.layout import cpad
        from tinycompile.fpga.schedule import layer_timing

        accel = target.raw["soc"]["accelerator"]
        cfg, _ = accelerator_of(target, int(accel["array"]))
        cycles = layer_timing(g, cfg).cycles + float(accel["start_cycles"])
        if layer.inputs == (-1,):  # the firmware writes only the packed words the layer reads (soc/feed.py)
            from tinycompile.soc.feed import write_ops

            ystep = math.gcd(g.sh if g.oh > 1 else 0, g.dy if g.kh > 1 else 0) or 1
            xstep = math.gcd(g.sw if g.ow > 1 else 0, g.dx if g.kw > 1 else 0) or 1
            c, h, w = in_shape
            ops = write_ops(-(-g.h // ystep) * -(-g.w // xstep), g.dy, g.c // g.dy, cpad(g.c, cfg.n), (h, w, c))
            cycles += float(accel["input_cycles_per_write"]) * ops
        return float(cycles)

    def constant_bytes(self, layer: Layer, in_shape: Shape, out_shape: Shape, target: Target) -> int:
        """As the accelerator's image stores them for its layers (the fpga back end's layout), else as the MCU
        library does (no DSP packing on RISC-V)."""
        if _accelerator_geom(layer, in_shape, out_shape, target) is not None:
            from tinycompile.backends.fpga import FpgaBackend

            view = dataclasses.replace(target, accelerator={"array": target.raw["soc"]["accelerator"]["array"]})
            return FpgaBackend().constant_bytes(layer, in_shape, out_shape, view)
        return McuBackend().constant_bytes(layer, in_shape, out_shape, target)

    def placements(self, graph: QuantGraph, target: Target, options: dict[str, Any]) -> list[str]:
        """With the accelerator, what its patterns accept runs there and the rest on the core; else all on the core."""
        if not options.get("array"):
            return McuBackend().placements(graph, target, options)
        from tinycompile.backends.fpga import FpgaBackend
        from tinycompile.soc.system import feed_core_parts

        place = dict(enumerate("core" if p == "host" else p for p in FpgaBackend().placements(graph, target, options)))
        feed_core_parts(graph, place)  # as the build plans it: the layers a core part's second input moves
        return [place[i] for i in range(len(graph.ops))]

    def build(self, work: Workload, target: Target, options: dict[str, Any], out: Path) -> BuildResult:
        """Library + firmware on the SoC's RTL (cycles per layer from mcycle), and the same library on QEMU
        (instructions per layer) when the target names an instruction-counting target."""
        from tinycompile.console import console
        from tinycompile.fileio import write_io, write_json
        from tinycompile.mcu import backend as mcu
        from tinycompile.mcu.library import compile_graph
        from tinycompile.soc.run import run_network

        budget = mcu.check_budget(work.spec, target)  # refuses before anything is built
        if options["array"]:
            return self._build_system(work, target, options["array"], out)
        console(stderr=True).print(f"[bold]build[/] {work.label} for {target.name}'s core (RTL simulation)")
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

    def _build_system(self, work: Workload, target: Target, n: int, out: Path) -> BuildResult:
        """The accelerator's layers on the accelerator, the others on the core, one firmware (:mod:`tinycompile.soc.system`)."""
        from tinycompile.console import console
        from tinycompile.fileio import write_io, write_json
        from tinycompile.fpga.schedule import network_timing
        from tinycompile.soc.feed import input_writes
        from tinycompile.soc.system import plan_system, run_system

        cfg, mem = accelerator_of(target, n)
        log = console(stderr=True)
        log.print(f"[bold]build[/] {work.label} for {target.name}: VexRiscv + a {n}x{n} accelerator (RTL simulation)")
        work.graph.save(out / "quant")
        plan = plan_system(work.graph, cfg, mem)
        on_core = [i for i, w in plan.placement.items() if w == "core"]
        log.print(f"{sum(1 for k, _ in plan.steps if k == 'accelerator')} layers on the accelerator, "
                  f"{len(on_core)} on the core{f' ({on_core})' if on_core else ''}; running {len(work.inputs)} inputs")
        run, fw = run_system(plan, work.graph, work.inputs, target, out / "firmware", mem)
        predicted = estimate_core(work, target)
        input_layer = None  # the accelerator layer that reads the network input: the core writes it first
        if plan.program is not None:
            prog = plan.program
            codes = [c for c in prog.layers if c.count]
            timed = network_timing([prog.instrs_of(c.index) for c in codes], n)
            accel = target.raw["soc"]["accelerator"]  # the core's share, as the cost model prices it
            predicted.update({c.index: float(t) + float(accel["start_cycles"]) for c, t in zip(codes, timed)})
            if prog.input is not None:
                input_layer = next(c.index for c in codes if _reads_input(work.graph, plan.placement, c.index))
                predicted[input_layer] += float(accel["input_cycles_per_write"]) * input_writes(work.graph, prog)
        doc = {"target": target.name, "target_file": str(target.path.resolve()), "array": n, "accel_mem_bytes": mem,
               "steps": [list(s) for s in plan.steps], "kernel_ops": [list(k) for k in fw.kernel_ops],
               "placement": {str(i): w for i, w in plan.placement.items()}, "predicted": predicted,
               "input_layer": input_layer, "image_bytes": fw.image_bytes}
        write_json(out / MANIFEST, doc)
        result = _system_result(work, target, run, doc)
        if result.outputs is not None:
            write_io(out, work.inputs, result.outputs)
        return result

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
            work = Workload(graph, spec_of(graph), inputs, str(folder))
            source = {k: graph.meta[k] for k in ("trial", "task", "model", "format") if k in graph.meta}
            if doc.get("array"):
                from tinycompile.soc.rtl import AccelPart
                from tinycompile.soc.system import parse_run

                accel, mem = accelerator_of(target, int(doc["array"]))
                run = run_elf(elf, cfg.mem_words, cfg.timeout_cycles, cfg.variant, log=elf.with_name("soc.log"),
                              accel=AccelPart(accel, int(doc["accel_mem_bytes"])))
                try:
                    sys_run = parse_run(run, len(inputs), len(doc["steps"]), target)
                except RuntimeError as exc:
                    raise UserError(f"{folder}: {exc}") from None
                result = _system_result(work, target, sys_run, doc)
            else:
                run = run_elf(elf, cfg.mem_words, cfg.timeout_cycles, cfg.variant, log=elf.with_name("soc.log"))
                failure = run.failure(cfg.timeout_cycles)
                if failure is not None:
                    raise UserError(f"{folder}: the firmware failed on the SoC: {failure}")
                out_size = int(np.prod(graph.output_shape))
                counts = parse_output(run.text, len(inputs), len(doc["kernel_ops"]), out_size, 1.0, "the SoC")
                result = _result(work, target, counts, run, doc.get("qemu_instructions"), doc)
            report = finish(work, source, target, result, folder)
        print_report(report, self, console())
        return 0 if report["bit_exact"] else 1

    def _instructions(self, work: Workload, target: Target, out: Path, compiled: Any) -> list[float | None] | None:
        """Per layer, QEMU's instruction count of the same library on the ``soc.instructions`` target (None if the
        target names none)."""
        from tinycompile.mcu import backend as mcu
        from tinycompile.soc.estimate import qemu_twin

        if not (target.raw.get("soc") or {}).get("instructions"):
            return None
        qemu = qemu_twin(target)
        mcu.check_tools(qemu)
        run = mcu.build_and_run(work.graph, work.spec, qemu, out / "qemu", work.inputs, "c", compiled=compiled)
        return [row["measured_instructions"] for row in run.report["layers"]]

    def _estimate(self, target: Target, out: Path, soc_elf: Path, kernel_ops: list[int], n_layers: int) -> dict[str, Any]:
        """The cycles the target's ``timing:`` model estimates per layer and in total from QEMU's trace of the
        ``soc.instructions`` build in ``out/qemu`` (what the RTL measures, without the RTL)."""
        from tinycompile.mcu.naming import Naming
        from tinycompile.soc.estimate import estimate_kernels, qemu_twin
        from tinycompile.soc.run import per_layer

        table = f"hw_targets/{target.path.name}" if target.path.parent.name == "hw_targets" else str(target.path)
        if "timing" not in target.raw:
            return {"estimated_cycles": None, "cycles_are": f"not estimated: {table} has no timing: section"}
        qemu = qemu_twin(target)
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
        """Cycles per instruction against QEMU's count (or the accelerator's share) and the simulation's speed."""
        b = report["backend"]
        if "accelerator" in b:
            a = b["accelerator"]
            if "vs_accelerator_alone" not in a:
                return []
            ratio = ("" if a["vs_accelerator_alone"] is None else  # None: every layer ran on the core
                     f": {a['vs_accelerator_alone']:.2f}x the accelerator alone "
                     f"({a['inference_vs_accelerator_alone']:.2f}x with the input in place)")
            return [f"core + {a['array']}x{a['array']} accelerator, cycles from mcycle on RTL: accelerator "
                    f"{a['accelerator_cycles']:,}, core layers {a['core_layer_cycles']:,}, writing the input "
                    f"{a['input_cycles']:,}, starting and polling {a['driver_cycles']:,}{ratio} | "
                    f"simulated {b['sim_cycles']:,} cycles in {b['sim_seconds']:.1f} s ({b['sim_cycles_per_second']:,} "
                    "cycles/s)"]
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


def _accelerator_geom(layer: Layer, in_shape: Shape, out_shape: Shape, target: Target) -> Any:
    """The accelerator's geometry for ``layer`` when ``target``'s SoC has an accelerator that can run it, else None."""
    accel = (target.raw.get("soc") or {}).get("accelerator")
    if accel is None:
        return None
    from tinycompile.fpga.geometry import unsupported_reason
    from tinycompile.fpga.schedule import layer_geom

    n = int(accel["array"])
    g = layer_geom(layer, in_shape, out_shape, n)
    return None if g is None or unsupported_reason(g, n) else g


def accelerator_of(target: Target, n: int) -> tuple[Any, int]:
    """The accelerator of ``target``'s SoC at array size ``n``: its configuration (the scratchpads of the fpga
    target, the one place their sizes are set) and its memory's bytes."""
    from tinycompile.accel.config import AccelConfig

    section = target.raw["soc"]["accelerator"]
    return AccelConfig.for_array(n), int(section["memory_kb"]) * 1024


def core_only(target: Target) -> Target:
    """``target`` without its accelerator: the cost model then prices every layer as the core runs it."""
    soc = {k: v for k, v in (target.raw.get("soc") or {}).items() if k != "accelerator"}
    return dataclasses.replace(target, raw={**target.raw, "soc": soc})


def estimate_core(work: Workload, target: Target) -> dict[int, float]:
    """The cost model's cycles of every layer on the core (the MCU coefficients of ``target``)."""
    from tinycompile.cost.model import estimate

    return {i: float(layer.cycles) for i, layer in enumerate(estimate(work.spec, core_only(target)).layers)}


def _system_result(work: Workload, target: Target, run: Any, doc: dict[str, Any]) -> BuildResult:
    """The result of one run of a core + accelerator firmware: per layer where it ran and its cycles (the last input,
    the steady state: the first pays for cold caches and for writing the input's constant padding)."""
    from tinycompile.soc.system import layer_cycles

    n = int(doc["array"])
    predicted = {int(k): v for k, v in doc["predicted"].items()}
    macs = work.spec.macs()
    section: dict[str, Any] = {
        "core": "VexRiscv RV32IMAC, 4 KiB I$ + 4 KiB D$", "counter": "mcycle",
        "accelerator": {"array": n, "memory_bytes": doc["accel_mem_bytes"], "image_bytes": doc["image_bytes"]},
        "steps": doc["steps"], "sim_cycles": run.soc.cycles, "sim_seconds": round(run.soc.wall_s, 2),
        "sim_cycles_per_second": round(run.soc.cycles_per_second), "elf": "firmware/firmware.elf"}
    total_predicted = sum(predicted.get(i, 0.0) for i in range(len(work.spec.layers)))
    if run.fault is not None:
        f = run.fault
        layers = [{"index": i, "op": layer.op, "ran_on": doc["placement"].get(str(i), "core"), "macs": macs[i],
                   "predicted": predicted.get(i), "measured": None} for i, layer in enumerate(work.spec.layers)]
        error = {"message": f.message(), "layer": f.layer, "input": f.vector, "rc": f.rc, "code": f.code, "pc": f.pc,
                 "fault_addr": f.fault_addr}
        return BuildResult(None, "cycles", layers, total_predicted, None, {"arena_bytes": None, "scratch_bytes": None,
                           "flash_bytes": None}, section, error=error)
    rows = layer_cycles([tuple(s) for s in doc["steps"]], run, doc["kernel_ops"], len(work.spec.layers))
    layers = []
    for i, layer in enumerate(work.spec.layers):
        row = rows.get(i)
        if row is None:
            layers.append({"index": i, "op": layer.op, "ran_on": "view (no data moved)", "macs": macs[i],
                           "predicted": 0.0, "measured": 0.0})
            continue
        entry = {"index": i, "op": layer.op, "ran_on": row["ran_on"], "macs": macs[i], "predicted": predicted.get(i),
                 "measured": float(row["cycles"])}
        if i == doc.get("input_layer"):  # as predicted: the layer's share includes writing its input
            entry.update(measured=entry["measured"] + run.input_cycles[-1], input_cycles=run.input_cycles[-1])
        if row["ran_on"] == "accelerator":
            entry.update(accelerator_cycles=row["accelerator_cycles"], mac_cycles=row["mac_cycles"],
                         mac_efficiency=macs[i] / (n * n * row["accelerator_cycles"]) if row["accelerator_cycles"] else None)
        layers.append(entry)
    accel = sum(r["accelerator_cycles"] for r in rows.values() if r["ran_on"] == "accelerator")
    on_accel = sum(r["cycles"] for r in rows.values() if r["ran_on"] == "accelerator")
    core_layers = sum(r["cycles"] for r in rows.values() if r["ran_on"] == "core")
    total = run.totals[-1]
    section["accelerator"].update(
        accelerator_cycles=accel, core_layer_cycles=core_layers, input_cycles=run.input_cycles[-1],
        output_cycles=run.output_cycles[-1], driver_cycles=on_accel - accel,
        copy_cycles=total - run.input_cycles[-1] - run.output_cycles[-1] - on_accel - core_layers,
        vs_accelerator_alone=total / accel if accel else None, boot_copy_cycles=run.boot_cycles,
        # as MLPerf Tiny times an inference: the input already in place (its th_load_tensor is not timed)
        inference_cycles=total - run.input_cycles[-1],
        inference_vs_accelerator_alone=(total - run.input_cycles[-1]) / accel if accel else None,
        mac_efficiency=sum(macs) / (n * n * accel) if accel else None)
    section.update(cycles_last_input=total, cycles_first_input=run.totals[0],
                   cycles_spread=[min(run.totals), max(run.totals)])
    return BuildResult(run.outputs.reshape(len(work.inputs), *work.graph.output_shape), "cycles", layers,
                       total_predicted, float(total), {"arena_bytes": None, "scratch_bytes": None, "flash_bytes": None},
                       section)


def _load_manifest(folder: Path) -> dict[str, Any]:
    """The build folder's soc.json; a one-line UserError if it is not what a build wrote."""
    import json

    try:
        doc = json.loads((Path(folder) / MANIFEST).read_text())
        if doc.get("array"):  # core + accelerator: kernels per core part, the steps, the predictions per layer
            ok = (isinstance(doc["array"], int) and isinstance(doc["accel_mem_bytes"], int)
                  and all(isinstance(k, list) and all(isinstance(i, int) for i in k) for k in doc["kernel_ops"])
                  and all(s[0] in ("accelerator", "core") and isinstance(s[1], int) for s in doc["steps"])
                  and isinstance(doc["predicted"], dict) and isinstance(doc["placement"], dict))
        else:
            ok = all(isinstance(k, int) for k in doc["kernel_ops"])
        if not (ok and isinstance(doc["target"], str) and isinstance(doc["target_file"], str)):
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
    cost = estimate(work.spec, core_only(target))  # this firmware runs every layer on the core
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

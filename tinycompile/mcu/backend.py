"""The MCU back end of ``tinycompile build``: quantize, compile with TVM, build the firmware, run it on QEMU, check it.

Steps (each a short function): check the budget and the tools -> quantize -> integer reference -> TVM lowering ->
library -> firmware -> QEMU -> compare every output with the reference -> (``trace``: QEMU's executed instruction
stream of the first input, priced with the target's ``timing:`` table) -> report (measured vs the cost model,
estimated cycles beside the instructions).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from elftools.elf.elffile import ELFFile

from tinycompile.arch import ArchSpec
from tinycompile.cost.arena import VIEW_OPS
from tinycompile.cost.memory import baseline, choose, sum_of_tensors
from tinycompile.errors import UserError
from tinycompile.fileio import write_io
from tinycompile.mcu import firmware, timing, tuning
from tinycompile.mcu import trace as tracing
from tinycompile.mcu.library import Compiled, Library, compile_graph, write_library
from tinycompile.mcu.naming import Naming
from tinycompile.quant import reference
from tinycompile.quant.graph import QuantGraph
from tinycompile.targets import Target


@dataclass
class McuBuild:
    """Everything one build produced: the report dict and the artefacts' paths."""

    ok: bool
    report: dict[str, Any]
    library: Library
    elf: Path
    outputs: np.ndarray  # (N, H, W, C) int8, as the target produced them
    mismatches: int = 0
    notes: list[str] = field(default_factory=list)


def check_budget(spec: ArchSpec, target: Target) -> dict[str, int]:
    """Refuse (UserError) a network whose arena or flash exceeds the target, before anything is built."""
    from tinycompile.cost.model import estimate

    plan = choose(spec)
    cost = estimate(spec, target)
    sram = int(target.sram_kb * 1024)
    flash = int(target.flash_kb * 1024)
    need_sram = plan.size + int(target.runtime.get("sram_bytes", 0))
    if need_sram > sram:
        raise UserError(
            f"the activation arena ({plan.size} B) plus runtime ({need_sram - plan.size} B) = {need_sram} B exceeds "
            f"{target.name}'s SRAM ({sram} B); pick a smaller trial or a bigger target"
        )
    if cost.flash > flash:
        raise UserError(f"the model needs ~{cost.flash} B of flash, more than {target.name}'s {flash} B; pick a smaller trial")
    return {"arena_bytes": plan.size, "predicted_flash": cost.flash, "target_sram": sram, "target_flash": flash}


def check_tools(target: Target) -> None:
    """UserError naming the apt package if the cross compiler or QEMU is missing."""
    b = firmware.build_config(target)
    firmware.require_tool(b["cc"])
    firmware.require_tool(str(b["qemu"][0]))


def build_and_run(
    graph: QuantGraph,
    spec: ArchSpec,
    target: Target,
    out: Path,
    vectors: np.ndarray,
    codegen: str = "c",
    compiled: Compiled | None = None,
    check_layers: bool = False,
    naming: Naming = Naming(),
    trace: bool = False,
) -> McuBuild:
    """Compile ``graph`` for ``target``, run ``vectors`` (int8 NHWC) on QEMU and compare with the reference;
    ``naming``: the library's exported names (``tinycompile build --name``); ``trace``: also run the first vector
    once more with QEMU's instruction trace and estimate its cycles per layer (the target's ``timing:``)."""
    b = firmware.build_config(target)
    _check_double(graph, target, codegen, b)
    compiled = compiled or compile_graph(graph)
    choices = tuning.choices_from(b.get("schedule"), str(target.path))
    lib = write_library(out / "lib", graph, spec, compiled, codegen, b.get("llvm_target"), naming, b["cc"],
                        b.get("simd"), choices)
    fw = out / "firmware"
    fw.mkdir(parents=True, exist_ok=True)
    firmware.write_harness(fw, vectors, b["counter"], naming)
    start = time.perf_counter()
    elf = firmware.compile_firmware(fw, lib.folder, target, list(lib.kernels), dump_layers=check_layers, profile=naming)
    cc_seconds = time.perf_counter() - start
    expected = reference.run(graph, vectors).reshape(len(vectors), -1)
    result = firmware.run_qemu(elf, target, len(vectors), len(lib.info.kernels), expected.shape[1])
    mismatches = int((result.outputs != expected).any(axis=1).sum())
    if check_layers:  # every kernel's output, not only the logits
        per_layer = reference.run_layers(graph, vectors)
        for (v, k), got in result.layer_outputs.items():
            want = per_layer[lib.info.kernel_ops[k]][v].reshape(-1)
            if not np.array_equal(got, want):
                mismatches += 1
    outputs = result.outputs.reshape(len(vectors), *graph.output_shape)
    write_io(out, vectors, outputs)
    report = _report(graph, spec, target, lib, elf, result, expected, mismatches, cc_seconds, codegen)
    report.update(_cycles(target, lib, elf, result, naming, report["layers"], trace))
    return McuBuild(mismatches == 0, report, lib, elf, outputs, mismatches)


def _cycles(target: Target, lib: Library, elf: Path, result: firmware.RunResult, naming: Naming,
            layers: list[dict[str, Any]], trace: bool) -> dict[str, Any]:
    """The report's cycle estimate (``estimated_cycles``, total and in each layer row, and what it rests on): the first
    vector's executed instruction stream priced with the target's ``timing:`` table; None where not traced."""
    table = f"hw_targets/{target.path.name}" if target.path.parent.name == "hw_targets" else str(target.path)
    for row in layers:
        row["estimated_cycles"] = row["cycles_relative_error"] = None
    if "timing" not in target.raw:
        return {"estimated_cycles": None, "cycles_relative_error": None,
                "cycles_are": f"not estimated: {table} has no timing: section"}
    if not trace:
        return {"estimated_cycles": None, "cycles_relative_error": None,
                "cycles_are": "not estimated: the build ran without the instruction trace"}
    model = timing.TimingModel.from_section(target.raw["timing"], target.path)
    cmd = firmware.qemu_command(elf, target, elf.with_name("firmware.trace.out"))
    n_kernels = len(lib.info.kernels)
    try:
        traced = tracing.trace_firmware(elf, cmd, model.isa, naming.ident("profile_hook"), n_kernels,
                                        firmware.QEMU_TIMEOUT_S)
    except (RuntimeError, OSError) as exc:  # the build's verdict stands without its estimate
        return {"estimated_cycles": None, "cycles_relative_error": None,
                "cycles_are": f"not estimated: the instruction trace failed: {exc}"[:500]}
    start = time.perf_counter()
    kernels = timing.estimate(traced, model)
    model_seconds = time.perf_counter() - start
    elf.with_name("firmware.trace.out").unlink(missing_ok=True)
    per_op: dict[int, float] = {}
    for op, k in zip(lib.info.kernel_ops, kernels):
        per_op[op] = per_op.get(op, 0.0) + k.cycles
    for row in layers:
        if row["index"] in per_op:
            row["estimated_cycles"] = round(per_op[row["index"]], 1)
        elif row["measured_instructions"] == 0.0:
            row["estimated_cycles"] = 0.0  # a view: no code
        if row["estimated_cycles"]:
            row["cycles_relative_error"] = (row["predicted_cycles"] - row["estimated_cycles"]) / row["estimated_cycles"]
    # The traced run is the measured run without -icount: the same instructions (to the counter's resolution).
    tick = float(firmware.build_config(target)["instructions_per_tick"])
    counted = result.kernel_instructions[0]
    matches = all(abs(t - c) < max(tick, 1.0) for t, c in zip(traced.kernel_instructions(), counted))
    total = sum(k.cycles for k in kernels)
    instructions = sum(k.instructions for k in kernels)
    mix: dict[str, int] = {}
    for k in kernels:
        for cls, n in k.mix.items():
            mix[cls] = mix.get(cls, 0) + n
    predicted = sum(row["predicted_cycles"] for row in layers)
    return {
        "estimated_cycles": round(total, 1),
        "cycles_relative_error": (predicted - total) / total if total else None,
        "cycles_are": f"estimated from QEMU's executed instruction stream with {table} timing:",
        "cycle_estimate": {
            "traced_input": 0,
            "traced_instructions": instructions,
            "trace_matches_counter": matches,
            "cycles_per_instruction": total / instructions if instructions else None,
            "issue_cycles": round(sum(k.issue for k in kernels), 1),
            "branch_refill_cycles": round(sum(k.branches for k in kernels), 1),
            "fetch_stall_cycles": round(sum(k.fetch for k in kernels), 1),
            "instruction_mix": dict(sorted(mix.items(), key=lambda kv: -kv[1])),
            "estimated_ms": total / (target.clock_mhz * 1e3),
            "trace_seconds": round(traced.seconds, 2),
            "model_seconds": round(model_seconds, 2),
        },
    }


def _check_double(graph: QuantGraph, target: Target, codegen: str, build: dict[str, Any]) -> None:
    """UserError when a kernel needs double precision that this target's LLVM build cannot give correctly."""
    if codegen != "llvm" or build.get("llvm_double", True):
        return
    for i, op in enumerate(graph.ops):
        if op.params.get("float_scale") and not op.params.get("single_rounding"):
            raise UserError(f"layer {i} ({op.op}) requantizes in double precision (TFLite's fully connected, with no "
                            f"exact fixed-point form), which TVM's LLVM code for {target.name} gets wrong; use --codegen c")


def _report(
    graph: QuantGraph,
    spec: ArchSpec,
    target: Target,
    lib: Library,
    elf: Path,
    result: firmware.RunResult,
    expected: np.ndarray,
    mismatches: int,
    cc_seconds: float,
    codegen: str,
) -> dict[str, Any]:
    from tinycompile.cost.model import estimate, estimate_instructions

    cost = estimate(spec, target)
    instr = estimate_instructions(spec, target)
    macs = spec.macs()
    measured = dict(zip(lib.info.kernel_ops, result.kernel_instructions[0]))
    layers = []
    for i, layer in enumerate(spec.layers):
        pred = instr.layers[i].cycles
        meas = 0.0 if layer.op in VIEW_OPS else measured.get(i)
        rel = None if meas is None or meas == 0 else (pred - meas) / meas
        layers.append({"index": i, "op": layer.op, "ran_on": "view (no data moved)" if layer.op in VIEW_OPS else target.name,
                       "macs": macs[i], "predicted_cycles": cost.layers[i].cycles, "predicted_instructions": pred,
                       "measured_instructions": meas, "relative_error": rel})
    total_meas = float(result.total_instructions[0])
    table = f"hw_targets/{target.path.name}" if target.path.parent.name == "hw_targets" else str(target.path)
    source = "instructions:" if target.instructions else "cycles: (the file has no instructions: section)"
    all_tensors = sum_of_tensors(spec)
    memory = choose(spec)
    elf_arena = _symbol_size(elf, "tc_arena")
    lib_flash, lib_ram = _library_memory(lib, target)
    fw_flash, fw_ram = firmware.memory_use(firmware.section_sizes(elf))
    return {
        "target": target.name,
        "codegen": codegen,
        "vectors": int(len(expected)),
        "mismatched_vectors": mismatches,
        "bit_exact": mismatches == 0,
        "layers": layers,
        "predicted_cycles": cost.cycles,
        "predicted_instructions": instr.cycles,
        "measured_instructions": total_meas,
        "total_relative_error": (instr.cycles - total_meas) / total_meas if total_meas else None,
        "compared": {
            "relative_error": f"predicted_instructions (the cost model with {table} {source}) against "
                              "measured_instructions (QEMU)",
            "cycles_relative_error": f"predicted_cycles (the cost model with {table} cycles:, the search's latency "
                                     "and energy) against estimated_cycles (QEMU's trace priced with its timing:)",
        },
        "macs": int(sum(macs)),
        "instructions_per_mac": total_meas / max(sum(macs), 1),
        "measured_spread": [min(result.total_instructions), max(result.total_instructions)],
        "arena_bytes": lib.info.arena_bytes,
        "arena_bytes_in_elf": elf_arena,
        "arena_planned_bytes": memory.size,
        "arena_per_layer_bytes": baseline(spec).size,
        "activation_bytes_total": all_tensors,
        "arena_plan": _plan_summary(memory),
        "arena_ratio": lib.info.arena_bytes / max(all_tensors, 1),
        "workspace_bytes": lib.info.workspace_bytes,
        "workspace_peak_bytes": result.workspace_peak,
        "weight_bytes": lib.info.weight_bytes,
        "library_flash_bytes": lib_flash,
        "library_ram_bytes": lib_ram,
        "firmware_flash_bytes": fw_flash,
        "firmware_ram_bytes": fw_ram,
        "predicted_flash_bytes": cost.flash,
        "predicted_peak_sram": cost.peak_sram,
        "compile_seconds": round(lib.compile_seconds, 2),
        "firmware_build_seconds": round(cc_seconds, 2),
        "kernels": list(lib.info.kernels),
    }


def _plan_summary(memory: Any) -> dict[str, Any]:
    """How the arena was planned: the in-place layers and the patch stage (report.json)."""
    patch = memory.patch
    return {
        "inplace_layers": [o.layer for o in memory.inplace],
        "patch_stage": None if patch is None else {"last_layer": patch.end, "grid": list(patch.grid),
                                                   "patch": list(patch.patch)},
        "input_in_arena": memory.input_in_arena,
    }


def _symbol_size(elf: Path, name: str) -> int | None:
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        if symtab is None:
            return None
        syms = symtab.get_symbol_by_name(name) or []
        return int(syms[0]["st_size"]) if syms else None


def _library_memory(lib: Library, target: Target) -> tuple[int, int]:
    """Flash and RAM of the library alone: its objects compiled with the target's flags (-O2, as the firmware)."""
    b = firmware.build_config(target)
    objs = []
    for src in [lib.folder / "model.c", *lib.kernels]:
        if src.suffix == ".o":
            objs.append(src)
            continue
        obj = lib.folder.parent / "firmware" / (src.stem + ".o")
        subprocess.run([b["cc"], *b["cflags"], "-O2", "-std=gnu11", "--specs=picolibc.specs", "-c", f"-I{lib.folder}", "-o", str(obj), str(src)], check=True, capture_output=True)
        objs.append(obj)
    flash = ram = 0
    for obj in objs:
        f, r = firmware.memory_use(firmware.section_sizes(obj))
        flash, ram = flash + f, ram + r
    return flash, ram

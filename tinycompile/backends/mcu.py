"""The microcontroller back end (``kind: mcu``): TVM compiles the graph to a C library, the target's cross compiler
links it into firmware, QEMU runs it and counts instructions (:mod:`tinycompile.mcu`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tinycompile.arch import WEIGHTED_OPS, Layer, Shape, numel
from tinycompile.backends.base import Backend, BuildResult, Workload
from tinycompile.cost.arena import VIEW_OPS
from tinycompile.mcu.layout import constant_bytes, kernel_path, simd_kind
from tinycompile.mcu.naming import DEFAULT_NAME, Naming
from tinycompile.quant.graph import QuantGraph
from tinycompile.targets import Target, require

CYCLE_KEYS = ("conv", "dwconv", "dense", "pool", "gap", "add", "lut", "mul", "per_output", "layer_overhead")
LOOKUP_OPS = ("lut", "sigmoid", "tanh", "unary")  # one table lookup per element in int8
# The coefficients of the SIMD cores' other loops (tinycompile.mcu.layout.kernel_path), needed where the core has them
SIMD_KEYS = {"dsp": ("conv_portable", "conv_pairs", "dwconv_rowpairs"),
             "mve": ("conv_portable", "conv_pairs", "dwconv_rowpairs", "conv_mve", "dwconv_mve", "per_output_mve")}
# report keys of the MCU build that the common core already carries (tinycompile.backends.report)
_CORE_KEYS = ("target", "vectors", "mismatched_vectors", "bit_exact", "layers", "predicted_instructions", "macs",
              "measured_instructions", "total_relative_error", "arena_bytes", "workspace_bytes", "library_flash_bytes",
              "predicted_flash_bytes", "predicted_peak_sram")


class McuBackend(Backend):
    """Arm Cortex-M and 32-bit RISC-V cores."""

    kind = "mcu"
    title = "MCU targets (Cortex-M, RISC-V)"
    defaults = {"codegen": "c", "name": DEFAULT_NAME, "cycle_estimate": True}

    def add_options(self, group: argparse._ArgumentGroup) -> None:
        """``--codegen`` and ``--name``."""
        group.add_argument("--codegen", choices=("c", "llvm"), help="TVM's C target (default) or its LLVM target")
        group.add_argument("--name", help=f"the C library's name, the prefix of every symbol it exports (default "
                           f"{DEFAULT_NAME}: {DEFAULT_NAME}_run); libraries of different names link into one firmware")
        group.add_argument("--no-cycle-estimate", dest="cycle_estimate", action="store_const", const=False,
                           help="skip the estimated cycles (by default the first input runs once more with QEMU's "
                           "instruction trace, priced with the target's timing: table; about a second per million "
                           "instructions)")

    def options(self, given: dict[str, Any], target: Target) -> dict[str, Any]:
        """The options, the library name checked to be a C identifier."""
        opts = super().options(given, target)
        Naming(opts["name"])  # refuses a name that is no C identifier before anything is built
        return opts

    def check_target(self, target: Target) -> None:
        """The cost model's coefficients (``cycles:``; ``instructions:`` where given), the ``build:`` section and the
        ``timing:`` table where the file has them."""
        from tinycompile.errors import UserError
        from tinycompile.mcu.firmware import build_config
        from tinycompile.mcu.tuning import choices_from
        from tinycompile.mcu.timing import TimingModel

        cycles = require(target.raw, "cycles", dict, target.path)
        for key in cost_keys(target):
            require(cycles, key, (int, float), target.path, "cycles.")
        if target.raw.get("instructions") is not None:  # optional: without it, cycles: predicts instructions too
            instructions = require(target.raw, "instructions", dict, target.path)
            for key in cost_keys(target):
                require(instructions, key, (int, float), target.path, "instructions.")
        if target.build:
            build_config(target)
            choices_from(target.build.get("schedule"), str(target.path))
        if target.raw.get("timing") is not None:
            model = TimingModel.from_section(target.raw["timing"], target.path)
            counter = target.build.get("counter")
            if counter is not None and model.isa != {"systick": "thumb", "minstret": "riscv", "mcycle": "riscv"}.get(counter):
                raise UserError(f"{target.path}: timing.isa {model.isa} does not match build.counter {counter} "
                                f"(systick: thumb, minstret and mcycle: riscv)")

    def layer_cycles(self, layer: Layer, in_shape: Shape, out_shape: Shape, macs: int, target: Target) -> float:
        """A per-MAC (or per-element) rate, requantization per output, a fixed overhead: ``target.cycles`` (fitted to
        the cycles estimated from QEMU's trace; with the ``instructions:`` coefficients, to QEMU's instructions)."""
        c = target.cycles
        if layer.op in VIEW_OPS:
            return 0.0
        if layer.op in WEIGHTED_OPS:
            kernel = (layer.kernel[0], layer.kernel[1])
            path = kernel_path(layer.op, in_shape[0], out_shape[0], kernel, _simd(target), tuple(layer.stride),
                               tuple(layer.padding), (out_shape[1], out_shape[2]))
            rate = c[f"{layer.op}_{path}"] if path in ("mve", "portable", "pairs", "rowpairs") else c[layer.op]
            # Helium requantizes four channels at once
            work = macs * rate + numel(out_shape) * c["per_output_mve" if path == "mve" else "per_output"]
        elif layer.op in ("maxpool", "avgpool"):
            work = macs * c["pool"]
            if any(layer.padding):  # the kernel first copies the windows' padded input, priced as a copy
                rows = (out_shape[1] - 1) * layer.stride[0] + layer.kernel[0]
                cols = (out_shape[2] - 1) * layer.stride[1] + layer.kernel[1]
                work += rows * cols * in_shape[0] * c["lut"]
        elif layer.op in ("gap", "mean"):
            work = numel(in_shape) * c["gap"]
        elif layer.op in LOOKUP_OPS or layer.op in ("mul", "upsample", "spread", "slice", "concat"):
            # a copy costs about a lookup (concat, measured: 6.3 instructions a byte on cortex-m4, lookups 5.7)
            work = numel(out_shape) * c["mul" if layer.op == "mul" else "lut"]
        else:  # add, and the other element-wise ops of imported models (softmax, pad) at the same rate
            work = numel(out_shape) * c["add"]
        return work + c["layer_overhead"]

    def constant_bytes(self, layer: Layer, in_shape: Shape, out_shape: Shape, target: Target) -> int:
        """Weights (packed as int16 where an Arm core's DSP schedules read them so) and per-channel int32 tables."""
        if layer.op not in WEIGHTED_OPS:
            return 0
        cin = numel(in_shape) if layer.op == "dense" else in_shape[0]
        return constant_bytes(layer.op, cin, out_shape[0], tuple(layer.kernel), _simd(target),  # type: ignore[arg-type]
                              tuple(layer.stride), (out_shape[1], out_shape[2]))  # type: ignore[arg-type]

    def placements(self, graph: QuantGraph, target: Target, options: dict[str, Any]) -> list[str]:
        """Every op with a kernel runs on the core."""
        from tinycompile.lowering import LOWERED_OPS

        return ["view" if op.op == "flatten" else "core" if op.op in LOWERED_OPS else "missing" for op in graph.ops]

    def summary_lines(self, report: dict[str, Any]) -> list[str]:
        """Instructions per MAC, the arena against the sum of all activations, and the estimated cycles."""
        b = report["backend"]
        lines = [f"{b['codegen']} codegen: {b['instructions_per_mac']:.2f} instr/MAC | arena planned "
                 f"{b['arena_planned_bytes']:,} B, {100 * b['arena_ratio']:.0f}% of all activations | library RAM "
                 f"{b['library_ram_bytes']:,} B | firmware flash {b['firmware_flash_bytes']:,} B"]
        cycles = b.get("estimated_cycles")
        if cycles is not None:
            e = b["cycle_estimate"]
            lines.append(f"estimated cycles: {cycles:,.0f} = {e['estimated_ms']:.3f} ms at {report['target']['clock_mhz']:g} "
                         f"MHz, {e['cycles_per_instruction']:.2f} per instruction (an estimate, not a measurement); "
                         f"cost model {b['predicted_cycles']:,} ({100 * b['cycles_relative_error']:+.1f}%)")
            lines.append(f"  {b['cycles_are']}")
        elif "cycles_are" in b:
            lines.append(f"cycles {b['cycles_are']}")
        return lines

    def build(self, work: Workload, target: Target, options: dict[str, Any], out: Path) -> BuildResult:
        """Library + firmware, run on QEMU (instructions counted per layer; cycles estimated from the first input's
        instruction trace unless ``--no-cycle-estimate``)."""
        from tinycompile.console import console
        from tinycompile.mcu import backend

        backend.check_tools(target)
        budget = backend.check_budget(work.spec, target)  # refuses before anything is built
        console(stderr=True).print(f"[bold]build[/] {work.label} for {target.name} ({options['codegen']})")
        work.graph.save(out / "quant")
        run = backend.build_and_run(work.graph, work.spec, target, out, work.inputs, options["codegen"],
                                    naming=Naming(options["name"]), trace=options["cycle_estimate"])
        r = run.report
        # predicted vs measured instructions (the core's unit); the cost model's cycles beside the estimated ones
        layers = [{"index": row["index"], "op": row["op"], "ran_on": row["ran_on"], "macs": row["macs"],
                   "predicted": row["predicted_instructions"], "measured": row["measured_instructions"],
                   "predicted_cycles": row["predicted_cycles"], "estimated_cycles": row["estimated_cycles"],
                   "cycles_relative_error": row["cycles_relative_error"]}
                  for row in r["layers"]]
        section = {k: v for k, v in r.items() if k not in _CORE_KEYS}
        return BuildResult(
            outputs=run.outputs, unit="instructions", layers=layers, predicted=r["predicted_instructions"],
            measured=r["measured_instructions"],
            memory={"arena_bytes": r["arena_bytes"], "scratch_bytes": r["workspace_bytes"],
                    "flash_bytes": r["library_flash_bytes"],
                    # the arena beside the planner's per-layer one and all tensors at once (TFLite Micro's arena is
                    # added by the oracle check where the model was imported)
                    "arena_per_layer_bytes": r["arena_per_layer_bytes"],
                    "activation_bytes_total": r["activation_bytes_total"], "arena_plan": r["arena_plan"]},
            section={**section, "budget": budget},
        )


def _simd(target: Target) -> str | None:
    """The SIMD schedules a build for ``target`` uses (None: the portable ones only)."""
    return simd_kind(target.build.get("llvm_target"), target.build.get("simd"))


def cost_keys(target: Target) -> tuple[str, ...]:
    """The coefficients ``layer_cycles`` reads for ``target``: every core's, and its SIMD loops' where it has them."""
    return CYCLE_KEYS + SIMD_KEYS.get(_simd(target) or "", ())

"""``tinycompile inspect``: what a model file holds and where each op would run, before anything is built."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from tinycompile.accel.config import ARRAYS, default_array
from tinycompile.console import console
from tinycompile.errors import UserError
from tinycompile.frontends import ImportedModel, is_model_file, load_model
from tinycompile.quant.graph import QOp
from tinycompile.targets import load_target


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``inspect`` subcommand."""
    p = sub.add_parser("inspect", help="list a model file's ops, shapes, quantization, MACs and where each target runs them")
    p.add_argument("model", type=Path, help="a model file (.tflite; .onnx, .pt, .pt2 with --calib)")
    p.add_argument("--target", help="also predict latency, energy, arena and flash on this target (cost model)")
    p.add_argument("--array", type=int, choices=ARRAYS,
                   help="the accelerator's array size for placement (default: the fpga target's)")
    p.add_argument("--calib", type=Path, help="float models: calibration inputs (.npz, array x)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the op table (and the cost model's prediction with --target)."""
    if not is_model_file(args.model):
        raise UserError(f"{args.model}: not a model file; inspect takes .tflite, .onnx, .pt or .pt2")
    target = load_target(args.target) if args.target else None
    model = load_model(args.model, args.calib)
    out = console()
    fpga = target.accelerator if target is not None and target.kind == "fpga" else {"array": default_array()}
    out.print(op_table(model, args.array or int(fpga["array"])))
    out.print(f"{model.format} model: input {list(model.graph.input_shape)} (H, W, C) int8 scale {model.graph.input_q.scale:.6g} "
              f"zero point {model.graph.input_q.zero_point} | output {list(model.graph.output_shape)} | "
              f"{sum(model.spec.macs()):,} MACs | {model.spec.params():,} parameters")
    if target is not None:
        out.print(cost_line(model, target))
    return 0


def placements(model: ImportedModel, array: int) -> dict[str, list[str]]:
    """Per target kind, where each op runs: MCU cores run every op with a kernel; the accelerator what it maps."""
    from tinycompile.fpga.partition import accelerator_reason
    from tinycompile.lowering import LOWERED_OPS

    mcu = ["core" if op.op in LOWERED_OPS else "missing" for op in model.graph.ops]
    fpga = []
    for i, op in enumerate(model.graph.ops):
        if op.op == "flatten":
            fpga.append("view")
        else:
            fpga.append("host" if accelerator_reason(model.graph, i, array) else "accelerator")
    return {"mcu": mcu, "fpga": fpga}


def op_table(model: ImportedModel, array: int) -> Table:
    """One row per QuantGraph op: its source, shapes, quantization, MACs, parameters and placements."""
    where = placements(model, array)
    macs = model.spec.macs()
    table = Table(title=f"{model.path.name}: {len(model.graph.ops)} ops")
    for col in ("#", "source", "op", "input -> output (H, W, C)", "quantization (out; weights)", "MACs", "params",
                "MCU", f"fpga N={array}"):
        table.add_column(col, justify="right" if col in ("#", "MACs", "params") else "left")
    for i, op in enumerate(model.graph.ops):
        shapes = " + ".join("x".join(map(str, s)) for s in op.in_shapes) + " -> " + "x".join(map(str, op.out_shape))
        table.add_row(str(i), model.sources[i], _op_text(op), shapes, _quant_text(op), f"{macs[i]:,}",
                      f"{_params(op):,}", where["mcu"][i], where["fpga"][i])
    return table


def cost_line(model: ImportedModel, target: Any) -> str:
    """The cost model's prediction for the whole model on ``target`` (the search uses the same numbers)."""
    from tinycompile.cost.model import estimate

    cost = estimate(model.spec, target)
    fits = cost.peak_sram <= target.sram_kb * 1024 and cost.flash <= target.flash_kb * 1024
    return (f"{target.name} (cost model, an estimate): {cost.cycles:,} cycles = {cost.latency_ms:.3f} ms at "
            f"{target.clock_mhz:g} MHz | {cost.energy_uj:.1f} uJ | arena {cost.arena_bytes:,} B (peak SRAM "
            f"{cost.peak_sram:,} of {int(target.sram_kb * 1024):,} B) | flash {cost.flash:,} of "
            f"{int(target.flash_kb * 1024):,} B | {'fits' if fits else 'DOES NOT FIT'}")


def _op_text(op: QOp) -> str:
    extra = []
    if op.op in ("conv", "dwconv", "maxpool", "avgpool"):
        extra.append(f"{op.kernel[0]}x{op.kernel[1]}/{op.stride[0]}")
    if any(op.padding):
        extra.append("pad " + ",".join(map(str, op.padding)))
    if (op.lo, op.hi) != (-128, 127):
        extra.append(f"clamp {op.lo}..{op.hi}")
    extra += [k for k in ("single_rounding", "divide") if op.params.get(k)]
    return op.op + (f" ({'; '.join(extra)})" if extra else "")


def _quant_text(op: QOp) -> str:
    text = f"{op.out_q.scale:.4g} @ {op.out_q.zero_point}"
    if "multiplier" in op.tensors and "weight" in op.tensors:
        m = op.tensors["multiplier"].astype(np.float64) * 2.0 ** (-31.0 - op.tensors["shift"].astype(np.float64))
        text += f"; {len(m)} ch, eff. scale {m.min():.2g}..{m.max():.2g}"
    return text


def _params(op: QOp) -> int:
    return int(sum(op.tensors[k].size for k in ("weight", "bias") if k in op.tensors))



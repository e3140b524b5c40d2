"""QuantGraph -> Relax -> (Relax passes) -> scheduled TIR PrimFuncs, plus the call sequence the AOT runner replays.

Stages, top to bottom:
  1. ``tinycompile.lowering.to_relax`` (shared with the FPGA back end): one ``call_tir`` per op, each PrimFunc
     attributed with its op; on cores with the DSP extension the weights in ``packing``'s layouts.
  2. ``RELAX_PIPELINE``: the Relax passes (legalize, fold constants, fuse, rewrite reshapes to views, DCE, symbols).
  3. ``extract_calls``: walk the Relax ``main`` to list, in order, each kernel with its arguments (graph input,
     earlier outputs, constants) and the op it computes (its PrimFunc's attribute) for the AOT runner.
  4. ``share_kernels``: identical ops call one kernel (the repeated blocks of a DS-CNN), for code size.
  5. ``schedule``: per kernel (``schedules``): int32 index arithmetic, register tiles of outputs with the
     reduction unrolled inside, the requantization epilogue fused into the tile loop, the padded-input stage placed;
     for Arm cores with the DSP extension (LLVM codegen) a 4-way int8 dot product on SMLAD (tensorize).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import tvm
import tvm_ffi
from tvm import relax, s_tir, tirx

from tinycompile.errors import UserError
from tinycompile.lowering import OP_ATTR, OP_INDEX_ATTR, op_of, to_relax
from tinycompile.mcu import packing, schedules, schedules_mve
from tinycompile.mcu.tuning import DEFAULT, ScheduleChoices
from tinycompile.quant.graph import QOp, QuantGraph

# Fusion across ops is off (level 0): a fused kernel would read one planned buffer while writing another that the
# arena plan may place at the same offset (their lifetimes do not overlap op by op). One kernel per op keeps the
# plan exact; each kernel already fuses its own requantization epilogue.
RELAX_PIPELINE: tuple[tuple[str, dict[str, Any]], ...] = (
    ("LegalizeOps", {}),
    ("AnnotateTIROpPattern", {}),
    ("FoldConstant", {}),
    ("FuseOps", {"fuse_opt_level": 0}),
    ("FuseTIR", {}),
    ("RewriteDataflowReshape", {}),
    ("DeadCodeElimination", {}),
    ("AttachGlobalSymbol", {}),
)


@dataclass(frozen=True)
class Arg:
    """One kernel argument: the graph input (``tensor=-1``), an op output (``tensor=i``) or a constant."""

    tensor: int | None
    const: np.ndarray | None = None


@dataclass(frozen=True)
class Call:
    """One kernel call: the PrimFunc's name, its arguments (the output last) and the op it computes."""

    kernel: str
    op_index: int
    args: tuple[Arg, ...]


@dataclass
class Lowered:
    """Scheduled PrimFuncs (an IRModule of TIR only) and the ordered calls over graph tensors."""

    tir: tvm.IRModule
    calls: list[Call]
    relax_text: str
    stage_calls: int = 0  # the first calls are the patch stage's kernels (``patches``), run once per patch


def lower(graph: QuantGraph, codegen: str = "c", dsp: bool | str | None = False,
          choices: ScheduleChoices = DEFAULT) -> Lowered:
    """Run all stages on ``graph`` for TVM's ``codegen`` ("c" or "llvm"); ``dsp``: schedule for Arm's DSP extension
    with that codegen's flavour of the intrinsics (see ``schedules``), ``"mve"``: Helium where ``schedules_mve``
    takes a kernel, the DSP extension elsewhere; ``choices``: the core's schedule knobs."""
    dead = dead_ops(graph)
    if dead:
        # Relax's dead-code elimination would drop their kernels: the arena would plan outputs no kernel writes.
        raise UserError(f"op(s) {', '.join(map(str, dead))} do not contribute to the graph's output (the last op); remove them before compiling")
    mod = run_relax_pipeline(to_relax(graph, packing.mve_weight if dsp == "mve" else packing.dsp_weight if dsp else None))
    calls = extract_calls(mod)
    tir_mod, calls = share_kernels(mod, calls)
    tir_mod = schedule(tir_mod, {c.kernel: graph.ops[c.op_index] for c in calls}, codegen, dsp, choices)
    return Lowered(tir_mod, calls, mod["main"].script(show_meta=False))


def dead_ops(graph: QuantGraph) -> list[int]:
    """Indices of the ops the last op does not (transitively) read."""
    live = {len(graph.ops) - 1}
    for i in range(len(graph.ops) - 1, -1, -1):
        if i in live:
            live.update(j for j in graph.ops[i].inputs if j >= 0)
    return [i for i in range(len(graph.ops)) if i not in live]


def run_relax_pipeline(mod: tvm.IRModule) -> tvm.IRModule:
    """Apply ``RELAX_PIPELINE`` in order."""
    passes = [getattr(relax.transform, name)(**kwargs) for name, kwargs in RELAX_PIPELINE]
    return tvm.transform.Sequential(passes)(mod)


def schedule(mod: tvm.IRModule, ops: dict[str, QOp], codegen: str = "c", dsp: bool | str | None = False,
             choices: ScheduleChoices = DEFAULT) -> tvm.IRModule:
    """Schedule each kernel (see ``schedules``): int32 indices, tiles, the fused epilogue, the padded-input stage."""
    out = {}
    for gv, func in mod.functions.items():
        func = tirx.transform.ForceNarrowIndexToInt32()(tvm.IRModule({"main": func}))["main"]
        sch = s_tir.Schedule(func)
        op = ops.get(gv.name_hint)
        if dsp == "mve" and schedules_mve.takes(op):
            schedules_mve.schedule_kernel(sch, op, codegen)
        else:
            schedules.schedule_kernel(sch, op, codegen, bool(dsp), choices)
        out[gv] = sch.mod["main"].with_attr("global_symbol", gv.name_hint)
    return tvm.IRModule(out)


def extract_calls(mod: tvm.IRModule) -> list[Call]:
    """The ordered kernel calls of Relax ``main``, each with the op its PrimFunc's attributes name; a reshape is a
    view, so its value is its source's tensor (the flatten ops and the flat input a dense reads)."""
    main = mod["main"]
    var_tensor: dict[Any, int] = {main.params[0]: -1}
    calls: list[Call] = []
    for block in main.body.blocks:
        for binding in block.bindings:
            value = binding.value
            if isinstance(value, relax.Call) and value.op == tvm.ir.Op.get("relax.call_tir"):
                gv = value.args[0]
                found = op_of(mod[gv])
                if found is None:
                    raise UserError(f"kernel {gv.name_hint} names no QuantGraph op after lowering; please report it")
                args = []
                for a in value.args[1].fields:
                    if isinstance(a, tvm.ir.expr.Constant):
                        args.append(Arg(None, a.value.numpy()))
                    else:
                        args.append(Arg(var_tensor[a]))
                calls.append(Call(gv.name_hint, found[0], tuple(args)))
                var_tensor[binding.var] = found[0]
            elif isinstance(value, relax.Call) and value.op == tvm.ir.Op.get("relax.reshape"):
                var_tensor[binding.var] = var_tensor[value.args[0]]
            elif isinstance(value, relax.Var):
                var_tensor[binding.var] = var_tensor[value]
            else:
                raise UserError(f"unexpected Relax binding after lowering: {type(value).__name__}; please report it")
    return calls


def share_kernels(mod: tvm.IRModule, calls: list[Call]) -> tuple[tvm.IRModule, list[Call]]:
    """The TIR module with one kernel per distinct PrimFunc, and ``calls`` calling those.

    Identical ops (same shapes and parameters; weights are arguments) call the first one's kernel, as one C
    function serves them all (flash). Equality ignores what tells the copies apart: the op attributes and the
    symbol. A kernel then computes several ops, so the op attributes are dropped.
    """
    first: dict[tvm_ffi.StructuralKey, str] = {}  # a kernel without its op attributes and symbol -> the first name
    kept: dict[str, tirx.PrimFunc] = {}  # in call order: the order the builder added kernels in before the attributes
    alias: dict[str, str] = {}
    for call in calls:
        func = mod[call.kernel].without_attr(OP_INDEX_ATTR).without_attr(OP_ATTR)
        alias[call.kernel] = first.setdefault(tvm_ffi.StructuralKey(func.without_attr("global_symbol")), call.kernel)
        kept.setdefault(alias[call.kernel], func)
    tir = tvm.IRModule({mod.get_global_var(k): f for k, f in kept.items()})
    return tir, [Call(alias[c.kernel], c.op_index, c.args) for c in calls]

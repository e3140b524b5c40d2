"""QuantGraph -> Relax -> (Relax passes) -> scheduled TIR PrimFuncs, plus the call sequence the AOT runner replays.

Stages, top to bottom:
  1. ``to_relax``: one ``call_tir`` per op (kernels written in TE, see ``te_ops``); weights are Relax constants;
     ``flatten`` is ``R.reshape`` (a view).
  2. ``RELAX_PIPELINE``: the Relax passes (legalize, fold constants, fuse, rewrite reshapes to views, DCE, symbols).
  3. ``schedule``: per kernel (``schedules``): int32 index arithmetic, register tiles of outputs with the
     reduction unrolled inside, the requantization epilogue fused into the tile loop, the padded-input stage placed;
     for Arm cores with the DSP extension (LLVM codegen) a 4-way int8 dot product on SMLAD (tensorize).
  4. ``extract_calls``: walk the Relax ``main`` to list, in order, each kernel with its arguments (graph input,
     earlier outputs, constants) for the AOT runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import tvm
from tvm import relax, s_tir, tirx

from tinycompile.errors import UserError
from tinycompile.mcu import schedules, te_ops
from tinycompile.quant import semantics
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
LOWERED_OPS = ("conv", "dwconv", "dense", "maxpool", "avgpool", "gap", "flatten", "add", "softmax", "lut", "pad", "concat")


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
    views: dict[int, int]  # op index of a view -> the tensor whose storage it shares
    relax_text: str


def lower(graph: QuantGraph, codegen: str = "c", dsp: bool = False) -> Lowered:
    """Run all stages on ``graph`` for TVM's ``codegen`` ("c" or "llvm"); ``dsp``: schedule for Arm's DSP extension
    with that codegen's flavour of the intrinsics (see ``schedules``)."""
    dead = dead_ops(graph)
    if dead:
        # Relax's dead-code elimination would drop their kernels and ``extract_calls`` would pair the remaining
        # calls with the wrong ops (and their output buffers).
        raise UserError(f"op(s) {', '.join(map(str, dead))} do not contribute to the graph's output (the last op); remove them before compiling")
    mod, names = to_relax(graph, packed=dsp)
    mod = run_relax_pipeline(mod)
    tir_mod = tvm.IRModule({gv: f for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)})
    kernel_ops = [i for i, op in enumerate(graph.ops) if op.op != "flatten"]
    calls, views = extract_calls(mod, kernel_ops)
    tir_mod = schedule(tir_mod, {c.kernel: graph.ops[c.op_index] for c in calls}, codegen, dsp)
    return Lowered(tir_mod, calls, views, mod["main"].script(show_meta=False))


def dead_ops(graph: QuantGraph) -> list[int]:
    """Indices of the ops the last op does not (transitively) read."""
    live = {len(graph.ops) - 1}
    for i in range(len(graph.ops) - 1, -1, -1):
        if i in live:
            live.update(j for j in graph.ops[i].inputs if j >= 0)
    return [i for i in range(len(graph.ops)) if i not in live]


def to_relax(graph: QuantGraph, packed: bool = False) -> tuple[tvm.IRModule, dict[str, int]]:
    """The Relax module of ``graph`` and a map from each Relax var name to the op index it holds.

    ``packed``: conv and depthwise weights in the int16 layouts of the DSP schedules (``te_ops.conv_weight``,
    ``te_ops.dwconv_weight``) where they apply.
    """
    bb = relax.BlockBuilder()
    h, w, c = graph.input_shape
    x = relax.Var("input", relax.TensorType((h, w, c), "int8"))
    names: dict[str, int] = {"input": -1}
    with bb.function("main", [x]):
        with bb.dataflow():
            values: dict[int, relax.Expr] = {-1: x}
            for i, op in enumerate(graph.ops):
                if op.op not in LOWERED_OPS:
                    raise UserError(f"op {i}: {op.op!r} has no MCU kernel; supported ops: {', '.join(LOWERED_OPS)}")
                args = [values[j] for j in op.inputs]
                name = f"l{i}_{op.op}"
                if op.op == "flatten":
                    var = bb.emit(relax.op.reshape(args[0], tuple(op.out_shape)), name_hint=name)
                elif op.op in ("conv", "dwconv", "dense"):
                    src = args[0]
                    if op.op == "dense":  # dense reads its input flat: a reshape, which stays a view
                        src = bb.emit(relax.op.reshape(src, (int(np.prod(op.in_shapes[0])),)))
                    weight = {"conv": te_ops.conv_weight, "dwconv": te_ops.dwconv_weight}.get(op.op, lambda o, _p: o.tensors["weight"])(op, packed)
                    consts = [relax.const(c, str(np.asarray(c).dtype)) for c in (weight, *te_ops.requant_consts(op))]
                    fn = getattr(te_ops, op.op)
                    var = bb.emit_te(lambda *a, _op=op, _fn=fn: _fn(_op, *a), src, *consts, primfunc_name_hint=name)
                else:
                    # Tables are constants after the activations: softmax's exp table (built from its params by the
                    # same function the reference uses), lut's int8 table. concat takes all its inputs.
                    consts = [relax.const(t) for t in _op_tables(op)]
                    fn = te_ops.avgpool if op.op == "gap" else getattr(te_ops, op.op)
                    var = bb.emit_te(lambda *a, _op=op, _fn=fn: _fn(_op, *a), *args, *consts, primfunc_name_hint=name)
                values[i] = var
            out = bb.emit_output(values[len(graph.ops) - 1])
        bb.emit_func_output(out)
    mod = bb.get()
    return mod, names


def _op_tables(op: QOp) -> list[np.ndarray]:
    """The constant tables an unweighted kernel takes after its inputs."""
    if op.op == "softmax":
        return [semantics.softmax_table(op.params)]
    if op.op == "lut":
        return [np.ascontiguousarray(op.tensors["table"], dtype=np.int8)]
    return []


def run_relax_pipeline(mod: tvm.IRModule) -> tvm.IRModule:
    """Apply ``RELAX_PIPELINE`` in order."""
    passes = [getattr(relax.transform, name)(**kwargs) for name, kwargs in RELAX_PIPELINE]
    return tvm.transform.Sequential(passes)(mod)


def schedule(mod: tvm.IRModule, ops: dict[str, QOp], codegen: str = "c", dsp: bool = False) -> tvm.IRModule:
    """Schedule each kernel (see ``schedules``): int32 indices, tiles, the fused epilogue, the padded-input stage."""
    out = {}
    for gv, func in mod.functions.items():
        func = tirx.transform.ForceNarrowIndexToInt32()(tvm.IRModule({"main": func}))["main"]
        sch = s_tir.Schedule(func)
        schedules.schedule_kernel(sch, ops.get(gv.name_hint), codegen, dsp)
        out[gv] = sch.mod["main"].with_attr("global_symbol", gv.name_hint)
    return tvm.IRModule(out)


def extract_calls(mod: tvm.IRModule, kernel_ops: list[int]) -> tuple[list[Call], dict[int, int]]:
    """The ordered kernel calls of Relax ``main``; reshapes become views of their source tensor.

    The k-th ``call_tir`` computes op ``kernel_ops[k]`` (no pass reorders or fuses them). The kernel's name cannot
    tell: the BlockBuilder shares one PrimFunc between structurally equal layers (weights are arguments).
    """
    main = mod["main"]
    var_tensor: dict[Any, int] = {main.params[0]: -1}
    views: dict[int, int] = {}
    calls: list[Call] = []
    for block in main.body.blocks:
        for binding in block.bindings:
            value = binding.value
            if isinstance(value, relax.Call) and value.op == tvm.ir.Op.get("relax.call_tir"):
                gv = value.args[0]
                args = []
                for a in value.args[1].fields:
                    if isinstance(a, tvm.ir.expr.Constant):
                        args.append(Arg(None, a.value.numpy()))
                    else:
                        args.append(Arg(var_tensor[a]))
                op_index = kernel_ops[len(calls)]
                calls.append(Call(gv.name_hint, op_index, tuple(args)))
                var_tensor[binding.var] = op_index
            elif isinstance(value, relax.Call) and value.op == tvm.ir.Op.get("relax.reshape"):
                src = var_tensor[value.args[0]]
                hint = binding.var.name
                if hint.startswith("l") and hint.endswith("_flatten"):
                    idx = int(hint.split("_")[0][1:])
                    views[idx] = src
                    var_tensor[binding.var] = idx
                else:
                    var_tensor[binding.var] = src  # the reshapes around dense are the same tensor
            elif isinstance(value, relax.Var):
                var_tensor[binding.var] = var_tensor[value]
            else:
                raise UserError(f"unexpected Relax binding after lowering: {type(value).__name__}; please report it")
    return calls, views

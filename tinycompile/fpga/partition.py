"""Partitioning through TVM's Relax BYOC: which ops of a QuantGraph the accelerator runs, and its code generator.

The Relax module is the shared lowering's (:func:`tinycompile.lowering.to_relax`): one ``call_tir`` per op whose
PrimFunc already fuses the op with its requantization and clamp and names the op by attribute
(:func:`tinycompile.lowering.op_of`), and ``R.reshape`` for views.
Patterns (registered with ``tvm.relax.backend.pattern_registry``, prefix ``tinyaccel``):

  tinyaccel.view                 R.reshape (flatten, and the flat view a dense reads)
  tinyaccel.avgpool_requant      call_tir of an avgpool / gap kernel (sum, requantize, clamp)
  tinyaccel.maxpool              call_tir of a maxpool kernel (max, clamp)
  tinyaccel.add_requant          call_tir of a residual add (two rescales, add, requantize, clamp)
  tinyaccel.dense_requant        call_tir of a dense kernel (GEMM, bias, requantize, clamp)
  tinyaccel.dwconv_requant_clamp call_tir of a depthwise kernel
  tinyaccel.conv_requant_clamp   call_tir of a convolution kernel

Each pattern's check asks :func:`tinycompile.fpga.geometry.unsupported_reason` whether the accelerator can run that op
(and at which array size); a refused op stays in Relax for the host. ``FuseOpsByPattern`` ->
``MergeCompositeFunctions`` -> ``RunCodegen`` then hands each merged region to ``relax.ext.tinyaccel``, which
compiles it into an accelerator program and memory image (:mod:`tinycompile.fpga.codegen`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import tvm
from tvm import relax
from tvm.relax.backend.pattern_registry import (
    get_patterns_with_prefix,
    register_patterns,
)
from tvm.relax.dpl.pattern import is_gv, is_op, wildcard

from tinycompile.accel.config import AccelConfig
from tinycompile.errors import UserError
from tinycompile.fpga.codegen import AccelProgram, compile_graph, op_geom
from tinycompile.fpga.geometry import unsupported_reason
from tinycompile.lowering import op_of, to_relax
from tinycompile.quant.graph import QOp, QuantGraph

CODEGEN = "tinyaccel"
# Pattern name suffix -> QuantGraph ops it matches. Registered in this order: later entries win (the fused
# compute patterns last, as the registry gives later entries priority).
PATTERN_OPS: dict[str, tuple[str, ...]] = {
    "avgpool_requant": ("avgpool", "gap"),
    "maxpool": ("maxpool",),
    "add_requant": ("add",),
    "dense_requant": ("dense",),
    "dwconv_requant_clamp": ("dwconv",),
    "conv_requant_clamp": ("conv",),
}


@dataclass
class _Context:
    """The graph being partitioned (pattern checks and the codegen are called back from TVM)."""

    graph: QuantGraph
    params: AccelConfig
    mem_bytes: int
    module: tvm.IRModule  # the lowered module: its PrimFuncs name their ops
    refused: dict[int, str] = field(default_factory=dict)
    programs: dict[str, AccelProgram] = field(default_factory=dict)
    regions: dict[str, list[int]] = field(default_factory=dict)
    outputs: dict[str, list[int]] = field(default_factory=dict)
    error: UserError | None = None  # raised after RunCodegen: TVM's FFI would turn it into a RuntimeError


_local = threading.local()
_registered = False


def _ctx() -> _Context:
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        raise RuntimeError("tinyaccel patterns are only valid inside tinycompile.fpga.partition.partition()")
    return ctx


def _kernel_of(call: relax.Call) -> tuple[int, str] | None:
    """(op index, op name) of a ``call_tir`` to one of the lowering's kernels."""
    gv = call.args[0]
    return op_of(_ctx().module[gv]) if isinstance(gv, tvm.ir.GlobalVar) else None


def _check(ops: tuple[str, ...]):
    def check(context: relax.transform.PatternCheckContext) -> bool:
        found = _kernel_of(context.annotated_expr["root"])
        if found is None or found[1] not in ops:
            return False
        ctx = _ctx()
        index = found[0]
        reason = accelerator_reason(ctx.graph, index, ctx.params.n)
        if reason:
            ctx.refused[index] = reason
            return False
        return True

    return check


def accelerator_reason(graph: QuantGraph, index: int, n: int) -> str | None:
    """Why the accelerator cannot run op ``index`` of ``graph`` at array size ``n`` (None if it can)."""
    op = graph.ops[index]
    if not any(op.op in ops for ops in PATTERN_OPS.values()):
        return f"op {op.op!r} has no accelerator mapping"
    geom = op_geom(graph, index, n)
    return rounding_reason(op) or ("no accelerator mapping" if geom is None else unsupported_reason(geom, n))


def rounding_reason(op: QOp) -> str | None:
    """Why the accelerator's requantization lane cannot reproduce an op's rounding (None if it can).

    The lane rounds twice (TFLite's convolutions) or, with POSTPROC ``single``, once (TFLite's fully connected,
    ``params["single_rounding"]``), so both requantizations run there; an integer division, a double-precision
    scale with no proven fixed-point equal, and per-channel left shifts (the lane's shift is a right shift) do not.
    """
    if op.params.get("divide"):
        return "it divides by the window size (TFLite's average), which no multiplier reproduces exactly here"
    if op.op == "avgpool" and op.tensors["multiplier"].size > 1:
        return "its windows leave the input, so its multiplier varies by position (the lane holds one per layer)"
    if op.params.get("float_scale") and not op.params.get("single_rounding"):
        return "it requantizes in double precision with no exact fixed-point form"
    if "shift" in op.tensors and int(op.tensors["shift"].min()) < 0:
        return "it needs a left shift (a requantization scale of one or more)"
    return None


def patterns() -> list[tuple]:
    """The ``tinyaccel`` pattern table (name, pattern, annotations, check)."""
    table: list[tuple] = [(f"{CODEGEN}.view", is_op("relax.reshape")(wildcard(), wildcard()))]
    for suffix, ops in PATTERN_OPS.items():
        root = is_op("relax.call_tir")(is_gv(""), wildcard())
        table.append((f"{CODEGEN}.{suffix}", root, {"root": root}, _check(ops)))
    return table


def _codegen(functions: list, options: dict, constant_names: dict) -> list:
    """``relax.ext.tinyaccel``: compile each merged region into an accelerator program (kept in the context)."""
    ctx = _ctx()
    compute = {i for i, op in enumerate(ctx.graph.ops) if op.op != "flatten"}
    for func in functions:
        ops = sorted({found[0] for gv in relax.analysis.all_global_vars(func)
                      if (found := op_of(ctx.module[gv])) is not None})
        symbol = str(func.attrs["global_symbol"])
        ctx.regions[symbol] = ops
        ctx.outputs[symbol] = _region_outputs(func)
        try:  # a region short of the whole network reads the tensors the host produced as inputs
            ctx.programs[symbol] = compile_graph(ctx.graph, ctx.params, ctx.mem_bytes,
                                                 None if set(ops) == compute else set(ops))
        except UserError as exc:
            ctx.error = exc
    return []  # the programs run on the RTL simulator, not inside a TVM runtime module


def _region_outputs(func: relax.Function) -> list[int]:
    """The op computing each output of a merged region, in the order its function returns them (a region read by
    several later ops returns a tuple)."""
    bound = {b.var: b.value for block in func.body.blocks for b in block.bindings}
    result = func.body.body
    outputs = []
    for var in result.fields if isinstance(result, relax.Tuple) else [result]:
        call = bound[var]
        while isinstance(call, relax.Var):  # an alias of another binding
            call = bound[call]
        composite = bound.get(call.op, call.op)  # the composite function, bound to a local var or inline
        ops = [found[0] for gv in relax.analysis.all_global_vars(composite)
               if (found := op_of(_ctx().module[gv])) is not None]
        if not ops:
            raise UserError("an accelerator region returns a view; please report it")
        outputs.append(max(ops))
    return outputs


def _register() -> None:
    global _registered
    if not _registered:
        register_patterns(patterns())
        tvm.register_global_func(f"relax.ext.{CODEGEN}", _codegen, override=True)
        _registered = True


@dataclass
class Partition:
    """Where each op runs, the accelerator program of the (single) accelerator region, and the Relax after BYOC."""

    placement: dict[int, str]  # op index -> "accelerator" | "host" | "view"
    refused: dict[int, str]  # op index -> why the accelerator cannot run it
    program: AccelProgram | None  # the whole network's program, when one region covers every op
    relax_text: str
    module: tvm.IRModule | None = None  # after RunCodegen: main calls the regions and the host kernels
    programs: dict[str, AccelProgram] = field(default_factory=dict)  # region symbol -> its program
    regions: dict[str, list[int]] = field(default_factory=dict)  # region symbol -> op indices
    outputs: dict[str, list[int]] = field(default_factory=dict)  # region symbol -> the ops it returns, in order


def partition(graph: QuantGraph, params: AccelConfig, mem_bytes: int) -> Partition:
    """Partition ``graph`` for the accelerator and generate its program through ``RunCodegen``."""
    _register()
    mod = to_relax(graph)
    ctx = _Context(graph, params, mem_bytes, mod)
    _local.ctx = ctx
    try:
        mod = relax.transform.FuseOpsByPattern(get_patterns_with_prefix(CODEGEN), bind_constants=False,
                                               annotate_codegen=False)(mod)
        mod = relax.transform.MergeCompositeFunctions()(mod)
        mod = relax.transform.RunCodegen()(mod)
    finally:
        _local.ctx = None
    if ctx.error is not None:
        raise ctx.error
    on_accel = {i for ops in ctx.regions.values() for i in ops}
    placement = {}
    for i, op in enumerate(graph.ops):
        if op.op == "flatten":
            placement[i] = "view"
        else:
            placement[i] = "accelerator" if i in on_accel else "host"
    whole = [prog for sym, prog in ctx.programs.items() if len(ctx.regions[sym]) == len(
        [op for op in graph.ops if op.op != "flatten"])]
    return Partition(placement, dict(ctx.refused), whole[0] if whole else None, mod.script(show_meta=False), mod,
                     dict(ctx.programs), dict(ctx.regions), dict(ctx.outputs))

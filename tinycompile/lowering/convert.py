"""QuantGraph -> Relax: one ``call_tir`` per op (kernels written in TE, see ``te_ops``), weights and tables as Relax
constants, ``flatten`` as ``R.reshape`` (a view).

Every op's PrimFunc is its own and carries the op's index and name as function attributes (``OP_INDEX_ATTR``,
``OP_ATTR``; read them with ``op_of``), so a consumer tells which op a call computes without parsing names. The
attributes also keep the BlockBuilder from sharing one PrimFunc between identical ops; a back end that wants them
shared (the MCU, for code size) merges them itself after reading the attributes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tvm
from tvm import relax

from tinycompile.errors import UserError
from tinycompile.lowering import requant, te_ops
from tinycompile.quant import semantics
from tinycompile.quant.graph import QOp, QuantGraph

LOWERED_OPS = ("conv", "dwconv", "dense", "maxpool", "avgpool", "gap", "flatten", "add", "mul", "softmax", "lut", "pad",
               "concat", "upsample", "spread", "slice")
OP_INDEX_ATTR = "tinycompile.op_index"  # the QuantGraph index of the op a PrimFunc computes
OP_ATTR = "tinycompile.op"  # that op's name (``QOp.op``)


def to_relax(graph: QuantGraph, weight: Callable[[QOp], np.ndarray] | None = None) -> tvm.IRModule:
    """The Relax module of ``graph``: ``main`` calls one attributed PrimFunc per op (``flatten``: a reshape).

    ``weight``: the weight constant of a weighted op in the layout the back end's schedules read (``te_ops`` takes
    the packed int16 forms too); by default the QuantGraph's own.
    """
    weight = weight or (lambda op: op.tensors["weight"])
    bb = relax.BlockBuilder()
    h, w, c = graph.input_shape
    x = relax.Var("input", relax.TensorType((h, w, c), "int8"))
    with bb.function("main", [x]):
        with bb.dataflow():
            values: dict[int, relax.Expr] = {-1: x}
            for i, op in enumerate(graph.ops):
                if op.op not in LOWERED_OPS:
                    raise UserError(f"op {i}: {op.op!r} has no kernel; supported ops: {', '.join(LOWERED_OPS)}")
                args = [values[j] for j in op.inputs]
                name = f"l{i}_{op.op}"
                attrs = {OP_INDEX_ATTR: i, OP_ATTR: op.op}
                if op.op == "flatten":
                    values[i] = bb.emit(relax.op.reshape(args[0], tuple(op.out_shape)), name_hint=name)
                    continue
                if op.op in ("conv", "dwconv", "dense"):
                    if op.op == "dense":  # dense reads its input flat: a reshape, which stays a view
                        args = [bb.emit(relax.op.reshape(args[0], (int(np.prod(op.in_shapes[0])),)))]
                    tables = [weight(op), *requant.requant_consts(op)]
                    consts = [relax.const(t, str(np.asarray(t).dtype)) for t in tables]
                else:
                    # Tables are constants after the activations: softmax's exp table (built from its params by the
                    # same function the reference uses), lut's int8 table, slice's channel index, a padded average's
                    # counts or multipliers. concat takes all its inputs.
                    consts = [relax.const(t) for t in _op_tables(op)]
                fn = te_ops.avgpool if op.op == "gap" else getattr(te_ops, op.op)
                values[i] = bb.emit_te(lambda *a, _op=op, _fn=fn: _fn(_op, *a), *args, *consts,
                                       primfunc_name_hint=name, primfunc_attrs=attrs)
            out = bb.emit_output(values[len(graph.ops) - 1])
        bb.emit_func_output(out)
    return bb.get()


def op_of(func: tvm.ir.BaseFunc) -> tuple[int, str] | None:
    """(op index, op name) of a PrimFunc ``to_relax`` made for an op; None for any other function."""
    attrs = func.attrs
    if attrs is None or OP_INDEX_ATTR not in attrs:
        return None
    return int(attrs[OP_INDEX_ATTR]), str(attrs[OP_ATTR])


def _op_tables(op: QOp) -> list[np.ndarray]:
    """The constant tables an unweighted kernel takes after its inputs."""
    if op.op == "softmax":
        return [semantics.softmax_table(op.params)]
    if op.op == "lut":
        return [np.ascontiguousarray(op.tensors["table"], dtype=np.int8)]
    if op.op == "slice":
        return [np.ascontiguousarray(op.tensors["index"], dtype=np.int32)]
    if op.op == "avgpool" and any(op.padding):  # by output position: the divisor, or the multiplier and shift
        ho, wo, _ = op.out_shape
        if op.params.get("divide"):
            return [semantics.window_counts(op.in_shapes[0][:2], (ho, wo), op.kernel, op.stride, op.padding)]
        return [np.ascontiguousarray(op.tensors[k].reshape(ho, wo), dtype=np.int32) for k in ("multiplier", "shift")]
    return []

"""Run a partitioned network: accelerator regions on the RTL, the ops left in Relax on the host (TVM-compiled).

The Relax ``main`` after ``RunCodegen`` is the schedule: each ``call_dps_packed`` to a ``tinyaccel`` region runs
that region's program on the RTL (all test inputs in one simulator process), each remaining ``call_tir`` runs its
PrimFunc compiled by TVM for the host CPU (LLVM), each ``R.reshape`` is a view. Values flow as numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tvm
from tvm import relax

from tinycompile.errors import UserError
from tinycompile.fpga.codegen import AccelProgram
from tinycompile.fpga.partition import Partition
from tinycompile.fpga.rtl import RtlRun, run_network
from tinycompile.lowering import op_of
from tinycompile.quant.graph import QuantGraph

HOST_TARGET = {"kind": "llvm"}  # the machine running the build: host ops are checked here, not on a board


def _shape(expr: relax.Expr) -> tuple[int, ...]:
    return tuple(int(d) for d in expr.ty.shape)


@dataclass
class HybridRun:
    """Every op's output per input (op index -> (B, H, W, C)), and one RTL run per accelerator region."""

    values: dict[int, np.ndarray]
    regions: list[tuple[AccelProgram, RtlRun]]
    host_ops: list[int]


def run_hybrid(graph: QuantGraph, part: Partition, x: np.ndarray, log: Path | None = None) -> HybridRun:
    """Execute ``part.module``'s main over the inputs ``x`` (int8 ``(B, H, W, C)``)."""
    mod = part.module
    main = mod["main"]
    tensor_of: dict[Any, int] = {main.params[0]: -1}
    tuples: dict[Any, list[int]] = {}  # a region returning several tensors -> the op of each
    values: dict[int, np.ndarray] = {-1: x}
    call_tir, dps, reshape = (tvm.ir.Op.get(f"relax.{n}") for n in ("call_tir", "call_dps_packed", "reshape"))
    host = [b for block in main.body.blocks for b in block.bindings
            if isinstance(b.value, relax.Call) and b.value.op.same_as(call_tir)]
    # Each host kernel exported under its function's name (the lowering leaves the symbols to the back ends).
    kernels = tvm.IRModule({gv: mod[gv].with_attr("global_symbol", gv.name_hint)
                            for gv in (b.value.args[0] for b in host)}) if host else None
    with tvm.transform.PassContext(opt_level=3):
        lib = tvm.tirx.build(kernels, target=HOST_TARGET) if kernels is not None else None
    regions, host_ops = [], []
    for block in main.body.blocks:
        for b in block.bindings:
            v = b.value
            if isinstance(v, relax.Var):
                tensor_of[b.var] = tensor_of[v]
            elif isinstance(v, relax.Call) and v.op.same_as(reshape):
                tensor_of[b.var] = tensor_of[v.args[0]]  # a view: the same values, read in another shape
            elif isinstance(v, relax.Call) and v.op.same_as(call_tir):
                found = op_of(mod[v.args[0]])
                if found is None:
                    raise UserError(f"host kernel {v.args[0].name_hint} names no QuantGraph op; please report it")
                index = found[0]
                args = []
                for a in v.args[1].fields:
                    if isinstance(a, tvm.ir.expr.Constant):
                        args.append(np.broadcast_to(a.value.numpy(), (len(x), *a.value.numpy().shape)))
                    else:
                        args.append(values[tensor_of[a]].reshape(len(x), *_shape(a)))
                out = np.zeros((len(x), *_shape(b.var)), np.int8)
                f = lib[v.args[0].name_hint]
                for k in range(len(x)):
                    res = tvm.runtime.tensor(out[k])
                    f(*[tvm.runtime.tensor(np.ascontiguousarray(arr[k])) for arr in args], res)
                    out[k] = res.numpy()
                values[index] = out.reshape(len(x), *graph.ops[index].out_shape)
                tensor_of[b.var] = index
                host_ops.append(index)
            elif isinstance(v, relax.Call) and v.op.same_as(dps):
                symbol = str(v.args[0].global_symbol)
                prog = part.programs[symbol]
                feeds = [{key: values[key][k] for key in prog.inputs} for k in range(len(x))]
                run = run_network(prog, feeds, log=log)
                for i in part.regions[symbol]:
                    values[i] = np.stack([run.outputs[k][i] for k in range(len(x))])
                regions.append((prog, run))
                outputs = part.outputs[symbol]
                if isinstance(b.var.ty, relax.TupleType):
                    tuples[b.var] = outputs
                else:
                    tensor_of[b.var] = outputs[0]
            elif isinstance(v, relax.TupleGetItem) and v.tuple_value in tuples:
                tensor_of[b.var] = tuples[v.tuple_value][v.index]
            else:
                raise UserError(f"unexpected Relax binding {type(v).__name__} after partitioning; please report it")
    return HybridRun(values, regions, host_ops)

"""Helium (MVE) schedules of the MCU back end, for Armv8.1-M cores with the M-profile vector extension (cortex-m55).

The target YAML chooses them (``build.simd: mve``); every kernel they do not take keeps the DSP schedules of
``schedules``. What they take:

* conv whose input channels are a multiple of 16 (the pointwise layers): the reduction along the input channels
  in runs of 16, each the tensor intrinsic ``MVE_DOT16``: one VLDRB of 16 input bytes, one of 16 weight bytes (the
  weights stay int8 ``(O, KH, KW, I)``), one VMLADAVA.S8 (16 multiply-accumulates into a scalar).
"""

from __future__ import annotations

from tvm import s_tir
from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

from tinycompile.quant.graph import QOp

LANES = 16  # int8 lanes of a 128-bit vector
MVE_DOT16 = "tinycompile_mve_vmladava_i8x16"


@T.prim_func(s_tir=True)
def _dot16_desc(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (16,), "int8", offset_factor=1)
    B = T.match_buffer(b, (16,), "int8", offset_factor=1)
    C = T.match_buffer(c, (1,), "int32", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:1], A[0:16], B[0:16])
        T.writes(C[0:1])
        for i in T.serial(16):
            with T.sblock("update"):
                vi = T.axis.remap("R", [i])
                C[0] = C[0] + T.Cast("int32", A[vi]) * T.Cast("int32", B[vi])


@T.prim_func(s_tir=True)
def _dot16_impl(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (16,), "int8", offset_factor=1)
    B = T.match_buffer(b, (16,), "int8", offset_factor=1)
    C = T.match_buffer(c, (1,), "int32", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:1], A[0:16], B[0:16])
        T.writes(C[0:1])
        # llvm.arm.mve.vmldava(unsigned, subtract, exchange, accumulator, a, b): VMLADAVA.S8
        C[0] = T.call_llvm_pure_intrin(
            "int32", "llvm.arm.mve.vmldava.v16i8",
            T.int32(0), T.int32(0), T.int32(0), C[0], A.vload([0], "int8x16"), B.vload([0], "int8x16"))


@T.prim_func(s_tir=True)
def _dot16_impl_c(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (16,), "int8", offset_factor=1)
    B = T.match_buffer(b, (16,), "int8", offset_factor=1)
    C = T.match_buffer(c, (1,), "int32", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:1], A[0:16], B[0:16])
        T.writes(C[0:1])
        C[0] = T.call_pure_extern("int32", "tc_mve_dot16", C[0], T.address_of(A[0]), T.address_of(B[0]))


TensorIntrin.register(MVE_DOT16, _dot16_desc, _dot16_impl, override=True)
# TVM's C target: calls of the tc_mve_* functions of ``codegen.MVE_HEADER_TEXT`` (arm_mve.h on a Helium core)
TensorIntrin.register(MVE_DOT16 + "_c", _dot16_desc, _dot16_impl_c, override=True)
FLAVOURS = {"llvm": "", "c": "_c"}  # codegen -> suffix of the intrinsics' names


def mve_conv(op: QOp) -> bool:
    """Whether the MVE schedule takes this conv: input channels in whole vectors."""
    return op.op == "conv" and op.in_shapes[0][2] % LANES == 0


def takes(op: QOp | None) -> bool:
    """Whether ``schedule_kernel`` schedules ``op`` (else the DSP schedules do, with their weight layouts)."""
    return op is not None and mve_conv(op)


def schedule_kernel(sch: s_tir.Schedule, op: QOp, codegen: str) -> None:
    """Schedule one kernel that ``takes`` in place for TVM's ``codegen``."""
    from tinycompile.mcu import schedules

    if "pad" in schedules._blocks(sch):
        schedules._place_pad(sch, op, codegen)
    _conv(sch, op, FLAVOURS[codegen])


def _conv(sch: s_tir.Schedule, op: QOp, flavour: str) -> None:
    from tinycompile.mcu import schedules

    acc = sch.get_sblock("acc")
    h, w, o, kh, kw, ci = sch.get_loops(acc)
    ho, wo, co = op.out_shape
    pointwise = op.kernel == (1, 1) and op.stride == (1, 1) and not any(op.padding)
    pix = [sch.fuse(h, w)] if pointwise else [h, w]
    to = schedules._divisor(co, (4, 2))
    o_o, o_i = sch.split(o, [None, to])
    ci_o, ci_i = sch.split(ci, [None, LANES])
    sch.reorder(o_o, kh, kw, ci_o, o_i, ci_i)
    schedules._epilogue_at(sch, o_o)
    init = sch.decompose_reduction(acc, kh)
    for loop in sch.get_loops(init)[len(pix) + 1 :]:
        sch.unroll(loop)
    sch.tensorize(ci_i, MVE_DOT16 + flavour)
    sch.unroll(o_i)
    sch.unroll(ci_o)
    schedules._unroll_epilogue(sch, len(pix) + 1)

"""Per-kernel TIR schedules of the MCU back end (``s_tir.Schedule`` on the PrimFuncs of ``tinycompile.lowering.te_ops``).

Every weighted kernel is a reduction block ``acc`` and an epilogue block ``out`` (requantize, clamp, store); padded
convolutions have a ``pad`` block in front. The schedules:

* conv: outputs in register tiles of ``TP`` pixels x ``TO`` channels; the reduction loops run outside the tile and
  the innermost reduction loop (input channels, or kernel columns for one input channel) is unrolled, so each input
  value is loaded once per tile and each weight once per tile; the epilogue runs on the tile right after it.
  1x1 stride-1 convolutions are GEMMs over the fused pixel axis.
* conv with ``dsp`` (Arm Cortex-M with the DSP extension; LLVM intrinsics, or ACLE calls in TVM's C): the reduction is cut in groups of four int8
  taps and each group of each output is the tensor intrinsic ``SMLAD_DOT4``: one 32-bit load of four input bytes,
  two SXTB16 (shared by the tile's channels after LLVM's CSE), two 32-bit loads of pre-packed int16 weights and two
  SMLAD: two multiply-accumulates per instruction.
* conv on DSP cores (``layout.pixel_pairs``: a packed dot axis, output channels in fours): ``te_ops._conv_pairs``'
  GEMM over pixel pairs, tiles of 2 pixels x 4 channels reduced by the hand-scheduled register tile of
  ``microkernels`` (inline assembly: 14 registers, which LLVM's allocator does not find for an unrolled body), each
  pair's taps expanded once (from a padded copy of the input where the layer pads or rounds channels up).
* dwconv over row pairs on DSP cores (``layout.row_pairs``): ``te_ops._dwconv_row_pairs``, one SMLAD per two kernel
  rows and column (``SMLAD_PAIR``).
* dwconv: one output pixel, ``TC`` channels in registers, the KHxKW taps unrolled; with ``dsp`` four channels per
  tensor intrinsic ``SMLA_MUL4`` (one 32-bit input load, two SXTB16, int16 weight pairs, SMLABB/SMLATB/SMLABT/SMLATT).
* the ``pad`` stage: materialised whole when small, else one band of rows per output row (bounded scratch). With
  LLVM its channels are copied four at a time (a 32-bit load and store) in a loop over the columns: channels
  innermost, LLVM's loop idioms turned each column into a call of the C library's memcpy / memset, byte loops in
  picolibc (4 and 3 instructions per byte: a quarter of each DS-CNN depthwise layer's instructions on the M4).
* avgpool with LLVM on DSP cores, windows of at most 256 elements and more than one column: four channels' window
  sums in 16-bit lanes (the tensor intrinsic ``sxtab16_window``: one word load and two SXTAB16 per window element;
  DS-CNN's 25x5 pool on the M4: 18,160 -> 7,640 instructions).
* softmax: its per-position stages (maximum, sum of exps, reciprocal) computed inside the output's position loop.
* everything else: the epilogue fused into the reduction's output loop (no temporary buffer).
"""

from __future__ import annotations

from typing import Any

from tvm import s_tir
from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

from tinycompile.mcu import microkernels, schedules_rv32
from tinycompile.mcu.tuning import DEFAULT, ScheduleChoices
from tinycompile.quant.graph import QOp

PAD_WHOLE_MAX = 2048  # bytes: a padded input up to this size is copied whole, larger ones one row band at a time
UNROLL_MAX = 512  # multiply-accumulate statements per unrolled reduction body
SMLAD_DOT4 = "tinycompile_smlad_dot4_i8_i16"


@T.prim_func(s_tir=True)
def _dot4_desc(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (4,), "int8", offset_factor=1)
    B = T.match_buffer(b, (2, 2), "int16", offset_factor=1)
    C = T.match_buffer(c, (1,), "int32", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:1], A[0:4], B[0:2, 0:2])
        T.writes(C[0:1])
        for i, j in T.grid(2, 2):
            with T.sblock("update"):
                vi, vj = T.axis.remap("RR", [i, j])
                C[0] = C[0] + T.Cast("int32", A[vi + vj * 2]) * T.Cast("int32", B[vi, vj])


@T.prim_func(s_tir=True)
def _dot4_impl(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (4,), "int8", offset_factor=1)
    B = T.match_buffer(b, (2, 2), "int16", offset_factor=1)
    C = T.match_buffer(c, (1,), "int32", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:1], A[0:4], B[0:2, 0:2])
        T.writes(C[0:1])
        # One expression (no local bindings: TVMScript would give each one a buffer).
        C[0] = T.call_llvm_pure_intrin(
            "int32",
            "llvm.arm.smlad",
            T.call_llvm_pure_intrin(  # bytes 1 and 3 of the input word, sign-extended to halfwords
                "int32",
                "llvm.arm.sxtb16",
                T.reinterpret(
                    "int32",
                    T.bitwise_or(
                        T.shift_right(T.reinterpret("uint32", A.vload([0], "int8x4")), T.uint32(8)),
                        T.shift_left(T.reinterpret("uint32", A.vload([0], "int8x4")), T.uint32(24)),
                    ),
                ),
            ),
            T.reinterpret("int32", B.vload([1, 0], "int16x2")),  # weights of bytes 1 and 3
            T.call_llvm_pure_intrin(
                "int32",
                "llvm.arm.smlad",
                T.call_llvm_pure_intrin("int32", "llvm.arm.sxtb16", T.reinterpret("int32", A.vload([0], "int8x4"))),
                T.reinterpret("int32", B.vload([0, 0], "int16x2")),  # weights of bytes 0 and 2
                C[0],
            ),
        )


TensorIntrin.register(SMLAD_DOT4, _dot4_desc, _dot4_impl, override=True)


SMLA_MUL4 = "tinycompile_smlaxy_mul4_i8_i16"


@T.prim_func(s_tir=True)
def _mul4_desc(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (4,), "int8", offset_factor=1)
    B = T.match_buffer(b, (4,), "int16", offset_factor=1)
    C = T.match_buffer(c, (4,), "int32", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:4], A[0:4], B[0:4])
        T.writes(C[0:4])
        for i in T.serial(4):
            with T.sblock("update"):
                vi = T.axis.remap("S", [i])
                C[vi] = C[vi] + T.Cast("int32", A[vi]) * T.Cast("int32", B[vi])


@T.prim_func(s_tir=True)
def _mul4_impl(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (4,), "int8", offset_factor=1)
    B = T.match_buffer(b, (4,), "int16", offset_factor=1)
    C = T.match_buffer(c, (4,), "int32", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:4], A[0:4], B[0:4])
        T.writes(C[0:4])
        # SXTB16 of the input word gives bytes (0, 2), of the word rotated by 8 bytes (1, 3); the weights are two
        # int16 pairs (0, 1) and (2, 3); SMLA<x><y> picks the bottom or top halfword of each operand.
        C[0] = T.call_llvm_pure_intrin(
            "int32", "llvm.arm.smlabb",
            T.call_llvm_pure_intrin("int32", "llvm.arm.sxtb16", T.reinterpret("int32", A.vload([0], "int8x4"))),
            T.reinterpret("int32", B.vload([0], "int16x2")), C[0])
        C[2] = T.call_llvm_pure_intrin(
            "int32", "llvm.arm.smlatb",
            T.call_llvm_pure_intrin("int32", "llvm.arm.sxtb16", T.reinterpret("int32", A.vload([0], "int8x4"))),
            T.reinterpret("int32", B.vload([2], "int16x2")), C[2])
        C[1] = T.call_llvm_pure_intrin(
            "int32", "llvm.arm.smlabt",
            T.call_llvm_pure_intrin(
                "int32", "llvm.arm.sxtb16",
                T.reinterpret("int32", T.bitwise_or(
                    T.shift_right(T.reinterpret("uint32", A.vload([0], "int8x4")), T.uint32(8)),
                    T.shift_left(T.reinterpret("uint32", A.vload([0], "int8x4")), T.uint32(24))))),
            T.reinterpret("int32", B.vload([0], "int16x2")), C[1])
        C[3] = T.call_llvm_pure_intrin(
            "int32", "llvm.arm.smlatt",
            T.call_llvm_pure_intrin(
                "int32", "llvm.arm.sxtb16",
                T.reinterpret("int32", T.bitwise_or(
                    T.shift_right(T.reinterpret("uint32", A.vload([0], "int8x4")), T.uint32(8)),
                    T.shift_left(T.reinterpret("uint32", A.vload([0], "int8x4")), T.uint32(24))))),
            T.reinterpret("int32", B.vload([2], "int16x2")), C[3])


TensorIntrin.register(SMLA_MUL4, _mul4_desc, _mul4_impl, override=True)
# Four input bytes as two words of sign-extended halfwords, bytes (0, 2) and (1, 3) (two SXTB16): the pixel-pair
# GEMM's expanded input, each word ``step`` words after the other.
EXPAND4 = "tinycompile_sxtb16_expand4"


@T.prim_func(s_tir=True)
def _expand_desc(a: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (4,), "int8", offset_factor=1)
    step = T.int32()
    C = T.match_buffer(c, (2, 1), "int32", strides=[step, 1], offset_factor=1)
    with T.sblock("root"):
        T.reads(A[0:4])
        T.writes(C[0:2, 0])
        for i in T.serial(2):
            with T.sblock("xe"):
                vi = T.axis.remap("S", [i])
                C[vi, 0] = T.bitwise_or(T.bitwise_and(T.Cast("int32", A[vi]), 65535),
                                        T.shift_left(T.Cast("int32", A[vi + 2]), 16))


@T.prim_func(s_tir=True)
def _expand_impl(a: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (4,), "int8", offset_factor=1)
    step = T.int32()
    C = T.match_buffer(c, (2, 1), "int32", strides=[step, 1], offset_factor=1)
    with T.sblock("root"):
        T.reads(A[0:4])
        T.writes(C[0:2, 0])
        C[0, 0] = T.call_llvm_pure_intrin("int32", "llvm.arm.sxtb16", T.reinterpret("int32", A.vload([0], "int8x4")))
        C[1, 0] = T.call_llvm_pure_intrin("int32", "llvm.arm.sxtb16", T.reinterpret("int32", T.bitwise_or(
            T.shift_right(T.reinterpret("uint32", A.vload([0], "int8x4")), T.uint32(8)),
            T.shift_left(T.reinterpret("uint32", A.vload([0], "int8x4")), T.uint32(24)))))


TensorIntrin.register(EXPAND4, _expand_desc, _expand_impl, override=True)


@T.prim_func(s_tir=True)
def _expand_impl_c(a: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (4,), "int8", offset_factor=1)
    step = T.int32()
    C = T.match_buffer(c, (2, 1), "int32", strides=[step, 1], offset_factor=1)
    with T.sblock("root"):
        T.reads(A[0:4])
        T.writes(C[0:2, 0])
        C[0, 0] = T.call_pure_extern("int32", "tc_sxtb16", T.call_pure_extern("int32", "tc_load32", T.address_of(A[0])))
        word = T.Cast("uint32", T.call_pure_extern("int32", "tc_load32", T.address_of(A[0])))
        C[1, 0] = T.call_pure_extern("int32", "tc_sxtb16", T.Cast("int32", T.bitwise_or(
            T.shift_right(word, T.uint32(8)), T.shift_left(word, T.uint32(24)))))


TensorIntrin.register(EXPAND4 + "_c", _expand_desc, _expand_impl_c, override=True)
SXTAB16_WINDOW_MAX = 256  # window elements whose int8 sum fits a signed 16-bit lane: -32768 <= sum <= 32512
LOOKUPS_PER_STEP = 4  # table lookups per iteration of an unrolled lookup loop


def sxtab16_window(kh: int, kw: int) -> str:
    """The name of a registered tensor intrinsic summing a ``kh x kw`` window of four int8 channels into four int32
    accumulators (input rows and columns at any stride) through packed 16-bit lane sums: per window element one
    word load and two SXTAB16 (bytes 0 and 2, then the word rotated by 8: bytes 1 and 3), 0.75 instructions per
    byte against 1.75 for one SXTAB or shift-and-add per byte; the lanes are unpacked into the four sums once per
    window. ``kh`` 1: one row (TVM drops the row loop of one iteration from the block, so it is not described)."""
    if kh * kw > SXTAB16_WINDOW_MAX:
        raise ValueError(f"a {kh}x{kw} window overflows 16-bit lane sums (at most {SXTAB16_WINDOW_MAX} elements)")
    name = f"tinycompile_sxtab16_window_{kh}x{kw}_i8"
    rows = kh > 1

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, c: T.handle) -> None:
        row, col = T.int32(), T.int32()
        A = T.match_buffer(a, (kh, kw, 4), "int8", strides=[row, col, 1], offset_factor=1)
        C = T.match_buffer(c, (4,), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:4], A[0:kh, 0:kw, 0:4])
            T.writes(C[0:4])
            if rows:
                for i, j, k in T.grid(kh, kw, 4):
                    with T.sblock("update"):
                        vk, vi, vj = T.axis.remap("SRR", [k, i, j])  # the pool block's order: channel, row, column
                        C[vk] = C[vk] + T.Cast("int32", A[vi, vj, vk])
            else:
                for j, k in T.grid(kw, 4):
                    with T.sblock("update"):
                        vk, vj = T.axis.remap("SR", [k, j])
                        C[vk] = C[vk] + T.Cast("int32", A[0, vj, vk])

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, c: T.handle) -> None:
        row, col = T.int32(), T.int32()
        A = T.match_buffer(a, (kh, kw, 4), "int8", strides=[row, col, 1], offset_factor=1)
        C = T.match_buffer(c, (4,), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:4], A[0:kh, 0:kw, 0:4])
            T.writes(C[0:4])
            # (c0, c2) and (c1, c3) as 16-bit lane pairs; not "local": TVM takes a local buffer of a tensorized block
            # from the workspace (a call per kernel, and bytes the planner does not count)
            lanes = T.alloc_buffer((2,), "int32")
            lanes[0] = 0
            lanes[1] = 0
            for i in T.serial(kh):
                for j in T.unroll(kw):
                    lanes[0] = T.call_llvm_pure_intrin(
                        "int32", "llvm.arm.sxtab16", lanes[0], T.reinterpret("int32", A.vload([i, j, 0], "int8x4")))
                    lanes[1] = T.call_llvm_pure_intrin(
                        "int32", "llvm.arm.sxtab16", lanes[1], T.reinterpret("int32", T.bitwise_or(
                            T.shift_right(T.reinterpret("uint32", A.vload([i, j, 0], "int8x4")), T.uint32(8)),
                            T.shift_left(T.reinterpret("uint32", A.vload([i, j, 0], "int8x4")), T.uint32(24)))))
            for k in T.unroll(4):  # lane k // 2 of word k % 2: the low half sign-extended, or the top half shifted down
                C[k] = C[k] + T.shift_right(T.shift_left(lanes[k % 2], 16 - 16 * (k // 2)), 16)

    TensorIntrin.register(name, desc, impl, override=True)
    return name


# The same two intrinsics for TVM's C target: ``tc_<acle name>`` calls (``codegen.ACLE_HEADER_TEXT``, which the
# generated C includes on cores with the DSP extension: the ACLE intrinsics of arm_acle.h there, portable C on a host
# build) and ``tc_load32`` (a 32-bit load from any address, defined in the ABI header).


@T.prim_func(s_tir=True)
def _dot4_impl_c(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (4,), "int8", offset_factor=1)
    B = T.match_buffer(b, (2, 2), "int16", offset_factor=1)
    C = T.match_buffer(c, (1,), "int32", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:1], A[0:4], B[0:2, 0:2])
        T.writes(C[0:1])
        C[0] = T.call_pure_extern(
            "int32",
            "tc_smlad",
            T.call_pure_extern(
                "int32",
                "tc_sxtb16",
                T.Cast(
                    "int32",
                    T.bitwise_or(
                        T.shift_right(T.Cast("uint32", T.call_pure_extern("int32", "tc_load32", T.address_of(A[0]))), T.uint32(8)),
                        T.shift_left(T.Cast("uint32", T.call_pure_extern("int32", "tc_load32", T.address_of(A[0]))), T.uint32(24)),
                    ),
                ),
            ),
            T.call_pure_extern("int32", "tc_load32", T.address_of(B[1, 0])),
            T.call_pure_extern(
                "int32",
                "tc_smlad",
                T.call_pure_extern("int32", "tc_sxtb16", T.call_pure_extern("int32", "tc_load32", T.address_of(A[0]))),
                T.call_pure_extern("int32", "tc_load32", T.address_of(B[0, 0])),
                C[0],
            ),
        )


@T.prim_func(s_tir=True)
def _mul4_impl_c(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (4,), "int8", offset_factor=1)
    B = T.match_buffer(b, (4,), "int16", offset_factor=1)
    C = T.match_buffer(c, (4,), "int32", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:4], A[0:4], B[0:4])
        T.writes(C[0:4])
        C[0] = T.call_pure_extern(
            "int32", "tc_smlabb",
            T.call_pure_extern("int32", "tc_sxtb16", T.call_pure_extern("int32", "tc_load32", T.address_of(A[0]))),
            T.call_pure_extern("int32", "tc_load32", T.address_of(B[0])), C[0])
        C[2] = T.call_pure_extern(
            "int32", "tc_smlatb",
            T.call_pure_extern("int32", "tc_sxtb16", T.call_pure_extern("int32", "tc_load32", T.address_of(A[0]))),
            T.call_pure_extern("int32", "tc_load32", T.address_of(B[2])), C[2])
        C[1] = T.call_pure_extern(
            "int32", "tc_smlabt",
            T.call_pure_extern(
                "int32", "tc_sxtb16",
                T.Cast("int32", T.bitwise_or(
                    T.shift_right(T.Cast("uint32", T.call_pure_extern("int32", "tc_load32", T.address_of(A[0]))), T.uint32(8)),
                    T.shift_left(T.Cast("uint32", T.call_pure_extern("int32", "tc_load32", T.address_of(A[0]))), T.uint32(24))))),
            T.call_pure_extern("int32", "tc_load32", T.address_of(B[0])), C[1])
        C[3] = T.call_pure_extern(
            "int32", "tc_smlatt",
            T.call_pure_extern(
                "int32", "tc_sxtb16",
                T.Cast("int32", T.bitwise_or(
                    T.shift_right(T.Cast("uint32", T.call_pure_extern("int32", "tc_load32", T.address_of(A[0]))), T.uint32(8)),
                    T.shift_left(T.Cast("uint32", T.call_pure_extern("int32", "tc_load32", T.address_of(A[0]))), T.uint32(24))))),
            T.call_pure_extern("int32", "tc_load32", T.address_of(B[2])), C[3])


TensorIntrin.register(SMLAD_DOT4 + "_c", _dot4_desc, _dot4_impl_c, override=True)
TensorIntrin.register(SMLA_MUL4 + "_c", _mul4_desc, _mul4_impl_c, override=True)
DSP_FLAVOURS = {"llvm": "", "c": "_c"}  # codegen -> suffix of the intrinsics' names
# One SMLAD: a pair of int16 inputs times a pair of int16 weights (the depthwise kernel over row pairs).
SMLAD_PAIR = "tinycompile_smlad_pair_i16"


@T.prim_func(s_tir=True)
def _pair_desc(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (2,), "int16", offset_factor=1)
    B = T.match_buffer(b, (2,), "int16", offset_factor=1)
    C = T.match_buffer(c, (1,), "int32", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:1], A[0:2], B[0:2])
        T.writes(C[0:1])
        for i in T.serial(2):
            with T.sblock("update"):
                vi = T.axis.remap("R", [i])
                C[0] = C[0] + T.Cast("int32", A[vi]) * T.Cast("int32", B[vi])


@T.prim_func(s_tir=True)
def _pair_impl(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (2,), "int16", offset_factor=1)
    B = T.match_buffer(b, (2,), "int16", offset_factor=1)
    C = T.match_buffer(c, (1,), "int32", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:1], A[0:2], B[0:2])
        T.writes(C[0:1])
        C[0] = T.call_llvm_pure_intrin("int32", "llvm.arm.smlad", T.reinterpret("int32", A.vload([0], "int16x2")),
                                       T.reinterpret("int32", B.vload([0], "int16x2")), C[0])


@T.prim_func(s_tir=True)
def _pair_impl_c(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (2,), "int16", offset_factor=1)
    B = T.match_buffer(b, (2,), "int16", offset_factor=1)
    C = T.match_buffer(c, (1,), "int32", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:1], A[0:2], B[0:2])
        T.writes(C[0:1])
        C[0] = T.call_pure_extern("int32", "tc_smlad", T.call_pure_extern("int32", "tc_load32", T.address_of(A[0])),
                                  T.call_pure_extern("int32", "tc_load32", T.address_of(B[0])), C[0])


TensorIntrin.register(SMLAD_PAIR, _pair_desc, _pair_impl, override=True)
TensorIntrin.register(SMLAD_PAIR + "_c", _pair_desc, _pair_impl_c, override=True)


def schedule_kernel(
    sch: s_tir.Schedule, op: QOp | None, codegen: str = "c", dsp: bool = False, choices: ScheduleChoices = DEFAULT
) -> None:
    """Schedule one kernel in place: ``op`` is the QuantGraph op it computes, ``codegen`` ("c" or "llvm") the TVM
    target that compiles it, ``dsp`` whether to use the Arm DSP intrinsics (in that codegen's flavour), ``choices``
    the core's knobs (``tuning``)."""
    flavour = codegen if dsp else None
    blocks = _blocks(sch)
    if op is not None and op.op == "softmax" and "row_max" in blocks:
        _softmax(sch)
        return
    if op is not None and op.op == "lut" and set(blocks) == {"out"}:
        _flat_unrolled(sch)
        return
    if "acc" not in blocks or "out" not in blocks:
        return
    if not dsp and op is not None and schedules_rv32.schedule(sch, op, blocks):  # scalar cores (rv32imc)
        return
    if "xe" in blocks and op is not None and flavour is not None:
        _pixel_pairs(sch, op, flavour, choices.pointwise_loads)
        return
    if "plane" in blocks and op is not None and flavour is not None:
        _dwconv_row_pairs(sch, flavour, choices.dwconv_phases)
        return
    if "pad" in blocks and op is not None:
        _place_pad(sch, op, codegen)
    if op is not None and op.op == "conv":
        _conv(sch, op, flavour)
    elif op is not None and op.op == "dwconv":
        _dwconv(sch, op, flavour, choices.dwconv_channels)
    else:
        # not k x 1 windows: TVM drops the column loop of one iteration, and a single column of rows at a stride is
        # not a region the intrinsic's buffer can take
        if (op is not None and op.op == "avgpool" and flavour == "llvm" and op.out_shape[2] % 4 == 0
                and op.kernel[1] > 1 and op.kernel[0] * op.kernel[1] <= SXTAB16_WINDOW_MAX):
            _pool_channels(sch)
        else:
            _fused_epilogue(sch, op)


def _flat_unrolled(sch: s_tir.Schedule) -> None:
    """A table lookup: one flat loop over every element, four lookups per iteration (no per-row loop set-up; the
    compiler schedules the four loads ahead of their stores)."""
    out = sch.get_sblock("out")
    fused = sch.fuse(*sch.get_loops(out))
    if int(sch.get(fused).extent) % LOOKUPS_PER_STEP == 0:
        sch.unroll(sch.split(fused, factors=[None, LOOKUPS_PER_STEP])[1])


def _blocks(sch: s_tir.Schedule) -> dict[str, Any]:
    try:
        root = sch.get_sblock("root")
    except Exception:  # noqa: BLE001 - a kernel without a root block has nothing to schedule
        return {}
    return {sch.get(b).name_hint: b for b in sch.get_child_blocks(root)}


def _fused_epilogue(sch: s_tir.Schedule, op: QOp | None) -> None:
    acc = sch.get_sblock("acc")
    loops = sch.get_loops(acc)
    n_spatial = sum(1 for iv in sch.get(acc).iter_vars if iv.iter_type == 0)  # data-parallel axes
    _epilogue_at(sch, loops[n_spatial - 1])
    if len(sch.get_loops(acc)) > n_spatial:
        sch.decompose_reduction(acc, sch.get_loops(acc)[n_spatial])
        inner = sch.get_loops(sch.get_sblock("acc_update"))[-1]
        # Short window rows of sums (avgpool, gap): unrolled, loads at fixed offsets. Not max reductions: TVM's C
        # codegen names each max() in a variable and reuses it for the next unrolled step, a stale value.
        if op is not None and op.op in ("avgpool", "gap") and int(sch.get(inner).extent) <= 8:
            sch.unroll(inner)


def _pool_channels(sch: s_tir.Schedule) -> None:
    """An average pool's window sums four channels at a time (``sxtab16_window``, the window's columns unrolled
    inside it); the epilogue after each run of four channels."""
    acc = sch.get_sblock("acc")
    h, w, c, kh, kw = sch.get_loops(acc)
    c_o, c_i = sch.split(c, [None, 4])
    sch.reorder(c_o, kh, kw, c_i)
    _epilogue_at(sch, c_o)
    init = sch.decompose_reduction(acc, kh)
    for loop in sch.get_loops(init)[3:]:
        sch.unroll(loop)
    n_kh, n_kw = int(sch.get(kh).extent), int(sch.get(kw).extent)
    sch.tensorize(kh if n_kh > 1 else kw, sxtab16_window(n_kh, n_kw))
    _unroll_epilogue(sch, 3)


def _softmax(sch: s_tir.Schedule) -> None:
    """Every per-position stage of ``lowering.te_ops.softmax`` inside the output's position loop, in order: each row's
    maximum, sum and reciprocal live in registers instead of (H, W) scratch buffers."""
    row = sch.get_loops(sch.get_sblock("out"))[1]
    stages = [name for name in _blocks(sch) if name != "out"]  # in definition order
    for name in reversed(stages):  # consumers first: each producer lands in front of its consumers
        sch.compute_at(sch.get_sblock(name), row)


def _epilogue_at(sch: s_tir.Schedule, loop: Any) -> None:
    """Move the epilogue stages (``biased`` if present, then ``out``) under ``loop``."""
    if "biased" in _blocks(sch):
        sch.reverse_compute_at(sch.get_sblock("biased"), loop)
    sch.reverse_compute_at(sch.get_sblock("out"), loop)


def _unroll_epilogue(sch: s_tir.Schedule, depth: int) -> None:
    """Unroll the epilogue stages' loops below the first ``depth`` (the tile loops)."""
    for name in ("biased", "out"):
        if name in _blocks(sch) or name == "out":
            for loop in sch.get_loops(sch.get_sblock(name))[depth:]:
                sch.unroll(loop)


def _divisor(n: int, choices: tuple[int, ...]) -> int:
    return next((c for c in choices if n % c == 0), 1)


def _conv(sch: s_tir.Schedule, op: QOp, dsp: str | None) -> None:
    acc = sch.get_sblock("acc")
    loops = sch.get_loops(acc)
    h, w, o = loops[:3]
    red = list(loops[3:])
    ho, wo, co = op.out_shape
    packed = len(red) in (4, 5) and sch.get(red[-1]).extent == 2 and sch.get(red[-2]).extent == 2 and dsp is not None
    pointwise = op.kernel == (1, 1) and op.stride == (1, 1) and not any(op.padding)
    pix = [sch.fuse(h, w)] if pointwise else [h, w]
    to = _divisor(co, (8, 4, 2) if packed and len(red) == 5 and dsp == "llvm" else (4, 2))  # LLVM, input channels: 8
    # Pixel tiles must not straddle output rows: the epilogue's (h, w) loops placed under a tile of the fused pixel
    # axis that crosses a row get non-constant extents, which cannot be unrolled (a 1x1 conv on 2x3, say).
    tp = 1 if packed else _divisor(wo, (2,))
    o_o, o_i = sch.split(o, [None, to])
    tile = [o_i]
    if tp > 1:
        p_o, p_i = sch.split(pix[-1], [None, tp])
        pix[-1] = p_o
        tile = [p_i, o_i]
    inner = red[-2:] if packed else []
    outer_red = red[:-2] if packed else red
    # The innermost reduction loop outside the tile is unrolled by a few steps only: fully unrolled, its input loads
    # would be loop-invariant across the channel tiles and LLVM hoists them into (spilled) registers. SMLAD with
    # LLVM: up to 16 groups of four taps (64 input channels of a pointwise conv, whole in DS-CNN) per unrolled body,
    # where LLVM pairs the weight loads into LDRDs and keeps the accumulators in registers (DS-CNN's pointwise layers
    # on the M4: 691 k -> 534 k instructions each; 4 steps: loop-carried accumulators spilled).
    last = outer_red[-1]
    step = _divisor(sch.get(last).extent, (16, 8, 4, 2) if packed and dsp == "llvm" else (8, 4, 2) if packed else (4, 2))
    if step > 1 and sch.get(last).extent > step:
        last_o, last_i = sch.split(last, [None, step])
        outer_red = [*outer_red[:-1], last_o, last_i]
    sch.reorder(o_o, *outer_red, *tile, *inner)
    _epilogue_at(sch, o_o)
    init = sch.decompose_reduction(acc, outer_red[0])
    for loop in sch.get_loops(init)[len(pix) + 1 :]:
        sch.unroll(loop)
    if packed:
        sch.tensorize(inner[0], SMLAD_DOT4 + DSP_FLAVOURS[str(dsp)])
    for loop in tile:
        sch.unroll(loop)
    sch.unroll(outer_red[-1])
    _unroll_epilogue(sch, len(pix) + 1)


def _pixel_pairs(sch: s_tir.Schedule, op: QOp, dsp: str, loads: str) -> None:
    """The pixel-pair GEMM (``te_ops._conv_pairs``): tiles of 2 pixels x 4 channels reduced by the hand-scheduled
    ``microkernels.pointwise_tile``, the pair's taps expanded to halfword pairs once (two SXTB16 per four input
    bytes) before its tiles, the epilogue after each tile; a padded copy of the input first where there is one."""
    padded = "pad" in _blocks(sch)
    if padded:
        _place_pad(sch, op, dsp)
    _, wo, _ = op.out_shape
    acc = sch.get_sblock("acc")
    p, o, g, a, b = sch.get_loops(acc)
    p_o, p_i = sch.split(p, [None, microkernels.PIXELS])
    o_o, o_i = sch.split(o, [None, microkernels.CHANNELS])
    sch.reorder(p_o, o_o, p_i, o_i, g, a, b)
    xe = sch.get_sblock("xe")
    # a pair's two words of one (group, half) side by side: one LDRD loads both
    sch.transform_layout(xe, ("write", 0), lambda q, c, h: (q // 2, c, h, q % 2))
    sch.compute_at(xe, p_o)
    xe_loops = sch.get_loops(xe)
    sch.tensorize(xe_loops[-1], EXPAND4 + DSP_FLAVOURS[dsp])
    for loop in xe_loops[1:-1]:
        sch.unroll(loop)
    # the output's pixels in the accumulator's order, so a tile's epilogue covers a range of them (the last tile of
    # an odd count: its first pixel only)
    sch.transform_block_layout(sch.get_sblock("out"), lambda y, x, c: (y * wo + x, c))
    _epilogue_at(sch, o_o)
    init = sch.decompose_reduction(acc, p_i)
    for loop in sch.get_loops(init)[2:]:
        sch.unroll(loop)
    sch.tensorize(p_i, microkernels.pointwise_tile(int(sch.get(g).extent), dsp, loads))
    for name in ("biased", "out"):  # channel by channel: its requantization constants serve both pixels at once
        loops = sch.get_loops(sch.get_sblock(name))[2:] if name in _blocks(sch) else []
        if len(loops) == 2:  # (one loop where TVM has fused them)
            sch.reorder(loops[1], loops[0])
    _unroll_epilogue(sch, 2)
    # In the workspace, not on the stack: TVM's LLVM codegen aligns a stack buffer of this size to 128 bytes, and a
    # realigned frame reserves the frame and base pointers, two of the 14 registers the tile takes.
    # After the tensorization: the intrinsics' descriptions read global buffers.
    sch.set_scope(sch.get_sblock("xe_o"), 0, "local")
    if padded:
        sch.set_scope(sch.get_sblock("pad"), 0, "local")


def _dwconv(sch: s_tir.Schedule, op: QOp, dsp: str | None, channels: int = 4) -> None:
    acc = sch.get_sblock("acc")
    h, w, c, kh, kw = sch.get_loops(acc)
    packed = dsp is not None and _weight_dtype(sch) == "int16"
    # With LLVM a core may take eight channels per tile (``tuning``): two SMLA_MUL4 per tap, the tap's weights in
    # one run of loads; the C codegen keeps four (GCC spills the larger tile).
    wide = packed and dsp == "llvm" and channels == 8 and op.out_shape[2] % 8 == 0
    tc = (8 if wide else 4) if packed else _divisor(op.out_shape[2], (4, 2))
    c_o, c_i = sch.split(c, [None, tc])
    sch.reorder(c_o, kh, kw, c_i)
    pairs = []
    if wide:
        pair, c_i = sch.split(c_i, [None, 4])
        pairs = [pair]
    _epilogue_at(sch, c_o)
    init = sch.decompose_reduction(acc, kh)
    for loop in sch.get_loops(init)[3:]:
        sch.unroll(loop)
    if packed:
        sch.tensorize(c_i, SMLA_MUL4 + DSP_FLAVOURS[str(dsp)])
    else:
        sch.unroll(c_i)
    for loop in (kh, kw, *pairs):
        sch.unroll(loop)
    _unroll_epilogue(sch, 3)


def _dwconv_row_pairs(sch: s_tir.Schedule, dsp: str, phases: str) -> None:
    """The depthwise conv over row pairs (``te_ops._dwconv_row_pairs``): four channels' padded input copied into the
    plane of row pairs, then channel by channel the even output rows, then the odd ones (each with its weights,
    loop-invariant), every kernel row pair one SMLAD (``SMLAD_PAIR``), the epilogue after each output.
    ``phases``: the loop over those two as a loop or unrolled (``tuning``)."""
    acc = sch.get_sblock("acc")
    c, h, w, j, kw, e = sch.get_loops(acc)
    c_o, c_i = sch.split(c, [None, 4])
    h_o, h_i = sch.split(h, [None, 2])
    sch.reorder(c_o, c_i, h_i, h_o, w, j, kw, e)
    plane = sch.get_sblock("plane")
    sch.compute_at(plane, c_o)
    for loop in sch.get_loops(plane)[-2:]:  # a pixel's four channels' pairs: one padding test for all
        sch.unroll(loop)
    sch.transform_block_layout(sch.get_sblock("out"), lambda y, x, ch: (ch, y, x))  # the accumulator's order
    _epilogue_at(sch, w)
    sch.decompose_reduction(acc, j)
    sch.tensorize(e, SMLAD_PAIR + DSP_FLAVOURS[dsp])
    for loop in (j, kw):
        sch.unroll(loop)
    _unroll_epilogue(sch, 5)
    if phases == "unrolled":
        sch.unroll(h_i)


def _weight_dtype(sch: s_tir.Schedule) -> str:
    """The dtype of the kernel's weight parameter (its second)."""
    func = sch.mod["main"]
    return str(func.params[1].dtype)


def _place_pad(sch: s_tir.Schedule, op: QOp, codegen: str) -> None:
    pad = sch.get_sblock("pad")
    hp, wp, c = _pad_shape(op)
    if hp * wp * c > PAD_WHOLE_MAX:
        acc = sch.get_sblock("acc")
        sch.compute_at(pad, sch.get_loops(acc)[0])
    inner = sch.get_loops(pad)[-1]
    if codegen != "c":
        # Columns inside the runs of four channels: a store stride of C bytes that no loop idiom turns into memcpy.
        loops = sch.get_loops(pad)
        if int(sch.get(inner).extent) % 4 == 0 and len(loops) >= 2:
            inner_o, inner_i = sch.split(inner, [None, 4])
            sch.reorder(inner_o, loops[-2])
            sch.vectorize(inner_i)
        return
    # The padding test depends on the row and column only: unrolling the channels lets the C compiler test once
    # per run of channels.
    step = _divisor(int(sch.get(inner).extent), (16, 8, 4, 2))
    if step > 1:
        _, inner_i = sch.split(inner, [None, step])
        sch.unroll(inner_i)


def _pad_shape(op: QOp) -> tuple[int, int, int]:
    ho, wo, _ = op.out_shape
    return (ho - 1) * op.stride[0] + op.kernel[0], (wo - 1) * op.stride[1] + op.kernel[1], op.in_shapes[0][2]

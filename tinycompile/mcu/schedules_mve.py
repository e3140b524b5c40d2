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

from tinycompile.mcu import layout
from tinycompile.lowering.requant import (
    clamp_int8,
    fast_requant,
    fast_requantize_expr,
    signless_clamp,
    times_pow2,
    zero_point_folded,
)
from tinycompile.quant.graph import QOp

LANES = 16  # int8 lanes of a 128-bit vector
_REGISTERED: set[str] = set()  # the intrinsics registered on first use
MVE_DOT16 = "tinycompile_mve_vmladava_i8x16"


def _dot_desc(n: int) -> object:
    """An int8 dot product of ``n`` taps accumulated into an int32 (what both dot-product intrinsics compute)."""

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (n,), "int8", offset_factor=1)
        B = T.match_buffer(b, (n,), "int8", offset_factor=1)
        C = T.match_buffer(c, (1,), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:1], A[0:n], B[0:n])
            T.writes(C[0:1])
            for i in T.serial(n):
                with T.sblock("update"):
                    vi = T.axis.remap("R", [i])
                    C[0] = C[0] + T.Cast("int32", A[vi]) * T.Cast("int32", B[vi])

    return desc


def _dot_impl_c(n: int) -> object:
    """The dot product as TVM's C target calls it: ``tc_mve_dot<n>`` of ``tc_mve.h``."""

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (n,), "int8", offset_factor=1)
        B = T.match_buffer(b, (n,), "int8", offset_factor=1)
        C = T.match_buffer(c, (1,), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:1], A[0:n], B[0:n])
            T.writes(C[0:1])
            C[0] = T.call_pure_extern("int32", f"tc_mve_dot{n}", C[0], T.address_of(A[0]), T.address_of(B[0]))

    return impl


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


MVE_DOT8 = "tinycompile_mve_vmladava_i16x8"


@T.prim_func(s_tir=True)
def _dot8_impl(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (8,), "int8", offset_factor=1)
    B = T.match_buffer(b, (8,), "int8", offset_factor=1)
    C = T.match_buffer(c, (1,), "int32", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:1], A[0:8], B[0:8])
        T.writes(C[0:1])
        # two widening loads (VLDRB.S16) and VMLADAVA.S16
        C[0] = T.call_llvm_pure_intrin(
            "int32", "llvm.arm.mve.vmldava.v8i16",
            T.int32(0), T.int32(0), T.int32(0), C[0],
            T.Cast("int16x8", A.vload([0], "int8x8")), T.Cast("int16x8", B.vload([0], "int8x8")))


MVE_MLA4 = "tinycompile_mve_mla_i32x4"


@T.prim_func(s_tir=True)
def _mla4_desc(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (4,), "int8", offset_factor=1)
    B = T.match_buffer(b, (4,), "int8", offset_factor=1)
    C = T.match_buffer(c, (4,), "int32", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:4], A[0:4], B[0:4])
        T.writes(C[0:4])
        for i in T.serial(4):
            with T.sblock("update"):
                vi = T.axis.remap("S", [i])
                C[vi] = C[vi] + T.Cast("int32", A[vi]) * T.Cast("int32", B[vi])


@T.prim_func(s_tir=True)
def _mla4_impl_c(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (4,), "int8", offset_factor=1)
    B = T.match_buffer(b, (4,), "int8", offset_factor=1)
    C = T.match_buffer(c, (4,), "int32", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:4], A[0:4], B[0:4])
        T.writes(C[0:4])
        T.evaluate(T.call_extern("int32", "tc_mve_mla4", T.address_of(C[0]), T.address_of(A[0]), T.address_of(B[0])))


# Lane-wise multiply-accumulate of four channels for TVM's C target (LLVM vectorizes the loop itself: VLDRB.S32
# widening loads, VMUL, VADD).
TensorIntrin.register(MVE_MLA4 + "_c", _mla4_desc, _mla4_impl_c, override=True)


def dot8_rows(cols: int, flavour: str) -> str:
    """``MVE_DOT8`` over ``8 // cols`` rows of ``cols`` taps (a loop nest as a conv's kernel rows and columns
    leave it), on eight contiguous bytes; registered on first use."""
    name = f"{MVE_DOT8}_rows{cols}{flavour}"
    if name in _REGISTERED:
        return name
    rows = 8 // cols

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (8,), "int8", offset_factor=1)
        B = T.match_buffer(b, (8,), "int8", offset_factor=1)
        C = T.match_buffer(c, (1,), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:1], A[0:8], B[0:8])
            T.writes(C[0:1])
            for i, j in T.grid(rows, cols):
                with T.sblock("update"):
                    vi, vj = T.axis.remap("RR", [i, j])
                    C[0] = C[0] + T.Cast("int32", A[vi * cols + vj]) * T.Cast("int32", B[vi * cols + vj])

    TensorIntrin.register(name, desc, _dot8_impl if flavour == "" else _dot_impl_c(8), override=True)
    _REGISTERED.add(name)
    return name


TensorIntrin.register(MVE_DOT16, _dot_desc(16), _dot16_impl, override=True)
TensorIntrin.register(MVE_DOT8, _dot_desc(8), _dot8_impl, override=True)
TensorIntrin.register(MVE_DOT8 + "_c", _dot_desc(8), _dot_impl_c(8), override=True)
# TVM's C target: calls of the tc_mve_* functions of ``codegen.MVE_HEADER_TEXT`` (arm_mve.h on a Helium core)
TensorIntrin.register(MVE_DOT16 + "_c", _dot_desc(16), _dot_impl_c(16), override=True)
FLAVOURS = {"llvm": "", "c": "_c"}  # codegen -> suffix of the intrinsics' names


def requant4(zp: int, lo: int, hi: int, flavour: str, signless: bool = False) -> str:
    """The tensor intrinsic of the fast requantization epilogue of four channels (``te_ops``' ``biased`` stage
    inlined into ``out``: ``2 acc + 2 bias``, rounding high multiply, rounding, shift, zero point ``zp``, clamp to
    ``[lo, hi]``, int8 store) for the output quantization (zp, lo, hi); registered on first use. ``signless``: the
    description without the rounding's sign term (``requant.signless_clamp``); the implementations keep it, equal
    after the clamp.

    LLVM flavour: the four table columns of the four channels by VLDRW gathers from the ``(C, 4)`` table, then
    VRMULH.S32 (``(2 t M + 2**31) >> 32`` exactly, no saturation: ``2 t`` is below 2**31), the rounding constant and
    the sign added, VSHL by the negated shift, VMAX/VMIN, a narrowing VSTRB.32. C flavour: ``tc_mve_requant4``.
    """
    name = f"tinycompile_mve_requant4_{zp}_{lo}_{hi}{'_signless' if signless else ''}{flavour}".replace("-", "m")
    if name in _REGISTERED:
        return name

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, r: T.handle, o: T.handle) -> None:
        A = T.match_buffer(a, (4,), "int32", offset_factor=1)
        R = T.match_buffer(r, (4, 4), "int32", offset_factor=1)
        O = T.match_buffer(o, (4,), "int8", offset_factor=1)
        with T.sblock("root"):
            T.reads(A[0:4], R[0:4, 0:4])
            T.writes(O[0:4])
            for i in T.serial(4):
                with T.sblock("out"):
                    vi = T.axis.remap("S", [i])
                    O[vi] = clamp_int8(fast_requantize_expr(times_pow2(A[vi], 1) + R[vi, 0], R[vi, 1], R[vi, 2], R[vi, 3],
                                                            signless), zp, lo, hi)

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, r: T.handle, o: T.handle) -> None:
        A = T.match_buffer(a, (4,), "int32", offset_factor=1)
        R = T.match_buffer(r, (4, 4), "int32", offset_factor=1)
        O = T.match_buffer(o, (4,), "int8", offset_factor=1)
        with T.sblock("root"):
            T.reads(A[0:4], R[0:4, 0:4])
            T.writes(O[0:4])
            O.vstore([0], T.Cast("int8x4", T.max(T.min(
                T.call_llvm_pure_intrin(
                    "int32x4", "llvm.arm.mve.vshl.vector",
                    T.call_llvm_pure_intrin(
                        "int32x4", "llvm.arm.mve.vrmulh",
                        T.shift_left(A.vload([0], "int32x4"), T.Broadcast(T.int32(1), 4))
                        + T.call_llvm_pure_intrin("int32x4", "llvm.arm.mve.vldr.gather.offset", T.address_of(R[0, 0]),
                                                  T.Ramp(0, 16, 4), 32, 0, 0),
                        T.call_llvm_pure_intrin("int32x4", "llvm.arm.mve.vldr.gather.offset", T.address_of(R[0, 1]),
                                                T.Ramp(0, 16, 4), 32, 0, 0),
                        0)
                    + T.call_llvm_pure_intrin("int32x4", "llvm.arm.mve.vldr.gather.offset", T.address_of(R[0, 2]),
                                              T.Ramp(0, 16, 4), 32, 0, 0)
                    + T.shift_right(
                        T.shift_left(A.vload([0], "int32x4"), T.Broadcast(T.int32(1), 4))
                        + T.call_llvm_pure_intrin("int32x4", "llvm.arm.mve.vldr.gather.offset", T.address_of(R[0, 0]),
                                                  T.Ramp(0, 16, 4), 32, 0, 0),
                        T.Broadcast(T.int32(31), 4)),
                    T.Broadcast(T.int32(0), 4)
                    - T.call_llvm_pure_intrin("int32x4", "llvm.arm.mve.vldr.gather.offset", T.address_of(R[0, 3]),
                                              T.Ramp(0, 16, 4), 32, 0, 0),
                    0, 0, 0)
                + T.Broadcast(T.int32(zp), 4), T.Broadcast(T.int32(hi), 4)), T.Broadcast(T.int32(lo), 4))))

    @T.prim_func(s_tir=True)
    def impl_c(a: T.handle, r: T.handle, o: T.handle) -> None:
        A = T.match_buffer(a, (4,), "int32", offset_factor=1)
        R = T.match_buffer(r, (4, 4), "int32", offset_factor=1)
        O = T.match_buffer(o, (4,), "int8", offset_factor=1)
        with T.sblock("root"):
            T.reads(A[0:4], R[0:4, 0:4])
            T.writes(O[0:4])
            T.evaluate(T.call_extern("int32", "tc_mve_requant4", T.address_of(A[0]), T.address_of(R[0, 0]),
                                     T.address_of(O[0]), zp, lo, hi))

    TensorIntrin.register(name, desc, impl if flavour == "" else impl_c, override=True)
    _REGISTERED.add(name)
    return name


def mve_conv(op: QOp) -> bool:
    """Whether the MVE schedule takes this conv (``layout.mve_conv``)."""
    return layout.mve_conv(op.op, op.in_shapes[0][2], tuple(op.kernel))


DW_LANES = 16


def mve_dwconv(op: QOp) -> bool:
    """Whether the MVE schedule takes this depthwise conv: channels in whole vectors."""
    return op.op == "dwconv" and op.out_shape[2] % DW_LANES == 0


def takes(op: QOp | None) -> bool:
    """Whether ``schedule_kernel`` schedules ``op`` (else the DSP schedules do, with their weight layouts)."""
    return op is not None and (mve_conv(op) or mve_dwconv(op))


def schedule_kernel(sch: s_tir.Schedule, op: QOp, codegen: str) -> None:
    """Schedule one kernel that ``takes`` in place for TVM's ``codegen``."""
    from tinycompile.mcu import schedules

    if "pad" in schedules._blocks(sch):
        schedules._place_pad(sch, op, codegen)
    if op.op == "dwconv":
        _dwconv(sch, op, FLAVOURS[codegen])
    elif op.in_shapes[0][2] == 1:
        _conv_window(sch, op, FLAVOURS[codegen])
    else:
        _conv(sch, op, FLAVOURS[codegen])


def _epilogue(sch: s_tir.Schedule, op: QOp, loop: s_tir.LoopRV, depth: int, flavour: str) -> None:
    """Place the epilogue under ``loop`` (the channel tile loop, ``depth`` loops deep) and requantize four
    channels at a time with ``requant4`` where the fast form applies, else as the DSP schedules do."""
    from tinycompile.mcu import schedules

    if not fast_requant(op):
        schedules._epilogue_at(sch, loop)
        schedules._unroll_epilogue(sch, depth)
        return
    sch.compute_inline(sch.get_sblock("biased"))
    out = sch.get_sblock("out")
    sch.reverse_compute_at(out, loop)
    inner = sch.get_loops(out)[-1]
    outer, inner = sch.split(inner, [None, 4])
    zp = 0 if zero_point_folded(op) else op.out_q.zero_point  # else the table's rounding column carries it
    sch.tensorize(inner, requant4(zp, op.lo, op.hi, flavour, signless_clamp(op)))
    sch.unroll(outer)


def _dwconv(sch: s_tir.Schedule, op: QOp, flavour: str) -> None:
    acc = sch.get_sblock("acc")
    h, w, c, kh, kw = sch.get_loops(acc)
    c_o, c_m, c_i = sch.split(c, [None, DW_LANES // 4, 4])
    sch.reorder(c_o, kh, kw, c_m, c_i)
    _epilogue(sch, op, c_o, 3, flavour)
    if flavour:
        init = sch.decompose_reduction(acc, kh)
        sch.tensorize(c_i, MVE_MLA4 + flavour)
    else:
        sch.vectorize(c_i)
        init = sch.decompose_reduction(acc, kh)
    init_loops = sch.get_loops(init)
    sch.unroll(init_loops[-2])
    if flavour:
        sch.unroll(init_loops[-1])  # TVM's C target has no vector types
    else:
        sch.vectorize(init_loops[-1])
    sch.unroll(kh)
    sch.unroll(kw)
    sch.unroll(c_m)


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
    _epilogue(sch, op, o_o, len(pix) + 1, flavour)
    init = sch.decompose_reduction(acc, kh)
    for loop in sch.get_loops(init)[len(pix) + 1 :]:
        sch.unroll(loop)
    sch.tensorize(ci_i, MVE_DOT16 + flavour)
    sch.unroll(o_i)
    sch.unroll(ci_o)


def _conv_window(sch: s_tir.Schedule, op: QOp, flavour: str) -> None:
    """One input channel (a first layer): each output pixel's window of KH x KW taps is copied into a local
    buffer, flat, and read as vectors of eight taps (``MVE_DOT8``, widening loads), as the weights of each output
    channel, flat too (the same bytes as ``(O, KH, KW, 1)``)."""
    acc = sch.get_sblock("acc")
    src = sch.get(acc).reads[-2].source  # reads: the padded input (or the input), then the weight
    kw_n = op.kernel[1]
    win = sch.reindex_cache_read(acc, _read_index(sch, acc, src), "global",
                                 lambda h, w, o, a, b, c: (h, w, a * kw_n + b + c))
    sch.transform_layout(acc, ("read", _read_index(sch, acc, sch.get(acc).reads[-1].source)),
                         lambda q, a, b, c: (q, a * kw_n + b + c))
    h, w, o, kh, kw, ci = sch.get_loops(acc)
    sch.compute_at(win, w)
    for loop in sch.get_loops(win)[2:]:
        sch.unroll(loop)
    r_o, r_i = sch.split(kh, [None, 8 // kw_n])
    sch.fuse(kw, ci)
    o_o, o_i = sch.split(o, [None, 4])
    sch.reorder(o_o, r_o, o_i, r_i)
    _epilogue(sch, op, o_o, 3, flavour)
    init = sch.decompose_reduction(acc, r_o)
    for loop in sch.get_loops(init)[3:]:
        sch.unroll(loop)
    sch.tensorize(r_i, dot8_rows(kw_n, flavour))
    sch.unroll(o_i)
    sch.unroll(r_o)


def _read_index(sch: s_tir.Schedule, block: s_tir.SBlockRV, buffer: object) -> int:
    return next(i for i, region in enumerate(sch.get(block).reads) if region.source.same_as(buffer))

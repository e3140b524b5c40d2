"""Integer requantization in TIR (TFLite's rounding, as ``quant.intmath`` computes it) and the per-channel tables
the weighted kernels read: shared by every kernel of ``te_ops``.

Each form is written for TVM's C and LLVM codegens alike: no undefined C behaviour (left shifts of negative values,
signed overflow), no constant above int32 (the index narrowing pass rejects those).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tvm
from tvm import tirx

from tinycompile.quant.graph import QOp
from tinycompile.quant.intmath import INT32_MAX

PrimExpr = Any


def i32(v: int) -> PrimExpr:
    """An int32 TIR constant."""
    return tirx.const(int(v), "int32")


def i64(v: int) -> PrimExpr:
    """An int64 TIR constant."""
    return tirx.const(int(v), "int64")


def times_pow2(v: PrimExpr, k: int) -> PrimExpr:
    """``v * 2**k`` for an int32 ``v`` whose product provably fits int32, as ``int32(uint32(v) << k)``: C leaves
    ``v << k`` undefined for a negative ``v``; shifting the unsigned value is defined, and converting it back to
    int32 is implementation-defined, not undefined (modulo 2**32 in GCC and Clang, which gives the product). One
    shift instruction, as before. Not a multiply: TVM's simplifier would fold ``int64(v * 2**k) * M`` for a constant
    ``M`` into a constant above int32, which its index narrowing pass rejects."""
    return (v.astype("uint32") << tirx.const(k, "uint32")).astype("int32")


def wrapping_mul(a: PrimExpr, b: PrimExpr) -> PrimExpr:
    """``a * b`` of int32 values, wrapping modulo 2**32 as ``intmath.requantize`` does (TFLite's int32 multiply on
    every MCU): the multiply runs in uint32, defined to wrap in C, where an int32 multiply that overflows is
    undefined; the conversion back is implementation-defined (modulo 2**32 in GCC and Clang), as in ``times_pow2``."""
    return (a.astype("uint32") * b.astype("uint32")).astype("int32")


def requantize_expr(acc: PrimExpr, multiplier: PrimExpr, shift: PrimExpr, left_shift: bool = False) -> PrimExpr:
    """TFLite double rounding in TIR, equal to ``intmath.requantize`` for multipliers in [0, 2**31), shifts in [0, 31].

    SaturatingRoundingDoublingHighMul is ``truncdiv(ab + nudge, 2**31)`` with ``nudge = 2**30`` or ``1 - 2**30`` by the
    sign of ``ab``; both cases equal ``floor((ab + 2**30) / 2**31)`` (for negative ``ab`` the truncating division of
    ``ab + 1 - 2**30`` is its ceiling, which is that floor), so ``high = (ab + 2**30) >> 31``: one 64-bit multiply,
    one 64-bit add and a shift (its saturating case needs a negative multiplier, which never occurs).
    RoundingDivideByPOT(high, s) stays in int32 as TFLite writes it: ``(high >> s) + (rem > thr)`` with
    ``rem = high & mask``, ``thr = (mask >> 1) + [high < 0]``, ``mask = 2**s - 1`` (no overflow for any int32).
    ``left_shift`` (some shifts may be negative, down to -30): ``acc * 2**max(-shift, 0)`` in int32 first, wrapping
    as ``intmath.requantize`` does (``wrapping_mul``: C leaves left shifts of negatives and int32 overflow
    undefined), and a right shift of ``max(shift, 0)``. The mask is computed in uint32: ``1 << 31`` is undefined
    for int32 in C (and TVM's bound analysis of ``INT32_MAX >> (31 - shift)`` is wrong: it drops the rounding).
    """
    if left_shift:
        acc = wrapping_mul(acc, i32(1) << tirx.max(i32(0) - shift, i32(0)))
        shift = tirx.max(shift, i32(0))
    ab = acc.astype("int64") * multiplier.astype("int64")
    high = ((ab + i64(1 << 30)) >> i64(31)).astype("int32")
    mask = ((tirx.const(1, "uint32") << shift.astype("uint32")) - tirx.const(1, "uint32")).astype("int32")
    thr = (mask >> i32(1)) - (high >> i32(31))
    return (high >> shift) + ((high & mask) > thr).astype("int32")


def requantize_single_expr(acc: PrimExpr, multiplier: PrimExpr, shift: PrimExpr) -> PrimExpr:
    """``intmath.requantize_single`` in TIR, as ``((acc M >> (S + 30)) + 1) >> 1`` (the same floor; TVM clamps a
    variable left shift of the rounding constant ``1 << (S + 30)`` to 31 bits)."""
    product = acc.astype("int64") * multiplier.astype("int64")
    return (((product >> (shift.astype("int64") + i64(30))) + i64(1)) >> i64(1)).astype("int32")


def requantize_float_expr(acc: PrimExpr, scale: PrimExpr) -> PrimExpr:
    """``intmath.requantize_float`` in TIR: C's ``round(double(acc) * scale)``, from the truncating cast and the exact
    remainder (no math intrinsics: TVM's C codegen lacks ``fabs``, and its round may go to even); soft-float on
    cores without a double-precision FPU."""
    v = acc.astype("float64") * scale
    whole = v.astype("int32")  # truncates towards zero; |v| < 2**31
    frac = v - whole.astype("float64")  # exact
    half = tirx.const(0.5, "float64")
    return whole + tirx.Select(frac >= half, i32(1), tirx.Select(frac <= -half, i32(-1), i32(0)))


FAST_ACC_BOUND = 1 << 30  # |acc + bias| below this (proved at build time) allows ``fast_requantize_expr``


def fast_requantize_expr(acc2: PrimExpr, multiplier: PrimExpr, rnd: PrimExpr, shift: PrimExpr,
                         signless: bool = False) -> PrimExpr:
    """``requantize_expr(t, M, S)`` for ``acc2 = 2 t`` with ``|t| < 2**30``, ``S`` in [1, 31], ``rnd = 2**(S-1)``.

    With ``2 t`` in int32, SaturatingRoundingDoublingHighMul is ``high = floor((2 t M + 2**31) / 2**32)`` (the same
    floor as ``requantize_expr``'s), i.e. the high word of a rounding 32 x 32 multiply. For ``S >= 1``
    RoundingDivideByPOT is ``floor((high + rnd - [high < 0]) / 2**S)`` and ``[high < 0]`` may be replaced by
    ``[t < 0]`` (they differ only when ``high = 0``, where both give 0), so the sum folds into the multiply's high
    word: ``(2 t M + 2**31 + (rnd + (t >> 31)) * 2**32) >> 32``, then one arithmetic shift. On Arm that is SMMLAR
    plus an ASR; no sum overflows since ``|high| < 2**30`` and ``rnd <= 2**30``.
    ``signless``: without the ``[t < 0]`` term, one instruction fewer, for a result clamped from below at or above
    the output zero point (``signless_clamp``). For ``t < 0`` (so ``high <= 0``) both forms give a result of at most
    0 (plus the zero point folded into ``rnd``), which that clamp raises to its floor; for ``t >= 0`` they are equal.
    """
    # (rnd + sign) * 2**32 + 2**31, built without a constant above int32 (the index narrowing pass rejects those) and
    # shifted as uint64: rnd may be negative (a folded zero point), and C leaves a negative value's left shift
    # undefined. Reinterpreted, not cast, back to int64: TVM's bound analysis takes a cast from uint64 for a
    # non-negative value and would drop the clamp below.
    lifted = (rnd if signless else rnd + (acc2 >> i32(31))).astype("int64").astype("uint64")
    one = tirx.const(1, "uint64")
    adj = tirx.reinterpret("int64", (((lifted << one) | one) << tirx.const(31, "uint64")))
    high = (acc2.astype("int64") * multiplier.astype("int64") + adj) >> i64(32)
    return high.astype("int32") >> shift


def signless_clamp(op: QOp) -> bool:
    """Whether ``op``'s fast requantization drops the sign term (``fast_requantize_expr``'s ``signless``): its output
    clamp floor is at or above its zero point (a fused ReLU). Not in depthwise kernels: their requantization
    constants stay in registers across a channel's outputs, and LLVM then folds the rounding into a 64-bit
    multiply-accumulate on the Cortex-M7 (SMLAL and two moves for SMMLAR's one; measured on DS-CNN)."""
    return op.op != "dwconv" and op.lo >= op.out_q.zero_point


def requantize_const(t: PrimExpr, multiplier: int, shift: int, bound: int) -> PrimExpr:
    """``requantize_expr`` with a build-time multiplier and shift, for ``|t| <= bound``: the SMMLAR form when the
    bound and the shift allow it (``fast_requantize_expr`` with ``rnd`` a constant), else the general one.

    A negative ``shift`` (a left shift by ``k = -shift``, ``intmath.requantize``) needs ``bound * 2**k`` in int32; then
    SaturatingRoundingDoublingHighMul(t 2**k, M) = floor((t 2**k M + 2**30) / 2**31) = floor((t M + 2**(30-k)) /
    2**(31-k)) exactly, written so (TVM would fold ``int64(t * 2**k) * M`` into a constant above int32)."""
    if shift < 0:
        k = -shift
        if bound * (1 << k) > INT32_MAX or k > 30:
            raise ValueError(f"a requantization left shift of {k} overflows int32 for values up to {bound}")
        return ((t.astype("int64") * i64(multiplier) + i64(1 << (30 - k))) >> i64(31 - k)).astype("int32")
    if multiplier == 1 << 30:  # a power-of-two scale (the larger input of an add): high = floor((t + 1) / 2)
        high = (t + i32(1)) >> i32(1) if bound < INT32_MAX else ((t.astype("int64") + i64(1)) >> i64(1)).astype("int32")
        if shift == 0:
            return high
        mask = i32((1 << shift) - 1)
        return (high >> i32(shift)) + ((high & mask) > (i32(((1 << shift) - 1) >> 1) - (high >> i32(31)))).astype("int32")
    if bound < FAST_ACC_BOUND and 1 <= shift <= 31:
        return fast_requantize_expr(times_pow2(t, 1), i32(multiplier), i32(1 << (shift - 1)), i32(shift))
    return requantize_expr(t, i32(multiplier), i32(shift))


def fast_requant(op: QOp) -> bool:
    """Whether ``op``'s accumulators provably allow ``fast_requantize_expr``: every ``|acc + bias|`` below
    ``FAST_ACC_BOUND`` for any int8 input (from the weights' absolute sums) and every shift in [1, 31]."""
    if op.op not in ("conv", "dwconv", "dense") or op.params.get("single_rounding"):
        return False
    w = op.tensors["weight"].astype(np.int64)
    sums = np.abs(w).sum(axis=(0, 1)) if op.op == "dwconv" else np.abs(w).reshape(len(w), -1).sum(axis=1)
    bound = np.abs(bias_eff(op).astype(np.int64)) + 128 * sums
    shift = op.tensors["shift"]
    return bool(bound.max() < FAST_ACC_BOUND and shift.min() >= 1 and shift.max() <= 31)


def _fast_rounding(op: QOp) -> Any:
    """The third column of the fast table: ``2**(S-1)`` plus, where it fits (``zero_point_folded``), ``zp 2**S``."""
    shift = op.tensors["shift"].astype(np.int64)
    rnd = np.left_shift(1, shift - 1)
    folded = rnd + op.out_q.zero_point * np.left_shift(1, shift)
    return folded if np.abs(folded).max() < (1 << 30) - 1 else rnd


def zero_point_folded(op: QOp) -> bool:
    """Whether ``op``'s fast table carries the output zero point in its rounding column: ``floor((h + r + zp 2**S) /
    2**S) = floor((h + r) / 2**S) + zp`` exactly, so the epilogue only clamps (one SSAT on Arm for [-128, 127]).
    It fits when ``|2**(S-1) + zp 2**S| < 2**30 - 1`` for every channel: with ``|high| < 2**30`` no sum overflows."""
    return fast_requant(op) and op.out_q.zero_point != 0 and bool(
        (_fast_rounding(op) != np.left_shift(1, op.tensors["shift"].astype(np.int64) - 1)).any())


def requant_consts(op: QOp) -> list[Any]:
    """The per-channel tables a weighted kernel takes after its weight: ``[bias, multiplier, shift]``, or with
    ``fast_requant`` one int32 table ``(C, 4)`` of rows ``(2 bias, multiplier, rounding, shift)``, rounding
    ``2**(shift-1)`` (plus ``zp 2**shift`` where ``zero_point_folded``): a channel's four constants are adjacent,
    two double-word loads on Arm."""
    b = bias_eff(op)
    mult, shift = op.tensors["multiplier"], op.tensors["shift"]
    if op.params.get("float_scale") and not op.params.get("single_rounding"):
        return [b, op.tensors["scale"].astype("float64"), shift]
    if fast_requant(op):
        return [np.stack([2 * b.astype(np.int64), mult, _fast_rounding(op), shift], axis=1).astype(np.int32)]
    return [b, mult, shift]


def clamp_int8(v: PrimExpr, zero_point: int, lo: int, hi: int) -> PrimExpr:
    """Add the output zero point, clamp to ``[lo, hi]``, cast to int8."""
    return tirx.max(tirx.min(v + i32(zero_point), i32(hi)), i32(lo)).astype("int8")


def bias_eff(op: QOp) -> Any:
    """``bias - zp_in * sum(w)`` per output channel (int32), see the module docstring."""
    w = op.tensors["weight"].astype(np.int64)
    zp = op.in_q[0].zero_point
    if op.op == "dwconv":
        sums = w.sum(axis=(0, 1))
    else:
        sums = w.reshape(len(w), -1).sum(axis=1)
    out = op.tensors["bias"].astype(np.int64) - zp * sums
    if out.min() < -(2**31) or out.max() >= 2**31:
        raise OverflowError(f"{op.op}: folded bias outside int32")
    return out.astype(np.int32)


_ = tvm  # tvm must be imported before tirx expressions are built

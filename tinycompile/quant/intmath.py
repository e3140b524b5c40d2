"""The integer semantics every back end must reproduce bit for bit.

One definition, used by the numpy integer reference, the TVM lowering and the RTL test benches:

* accumulate in int32: ``acc = bias + sum((x - x_zero_point) * w)`` (weights are symmetric, zero point 0);
* requantize with TFLite's double rounding: a saturating rounding doubling high multiply by an int32
  ``multiplier`` in [2**30, 2**31), then a rounding right shift by ``shift`` in [0, 31] (ties away from zero);
  a negative ``shift`` (scales of one or more, imported models only) shifts the accumulator left by ``-shift``
  before the multiply instead, as TFLite's MultiplyByQuantizedMultiplier does;
* add the output zero point and clamp to [lo, hi] (ReLU is folded into ``lo``).

Scales are always below one on the paths the quantizer produces (input scale x weight scale / output scale),
so only right shifts exist there, which keeps the hardware's post-processing unit simple.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
MAX_SHIFT = 31


def quantize_multiplier(scale: float, allow_left_shift: bool = False) -> tuple[int, int]:
    """Return ``(multiplier, shift)`` with ``scale ~= multiplier * 2**-31 * 2**-shift``.

    ``scale`` must lie in (0, 1), or in (0, 2**30) with ``allow_left_shift`` (a negative ``shift`` for scales of one
    or more); scales too small to represent give ``(0, 0)`` (the output is the zero point).
    """
    top = float(2**30) if allow_left_shift else 1.0
    if not 0.0 < scale < top:
        raise ValueError(f"requantization scale must satisfy 0 < scale < {top:g}, but got scale={scale!r}")
    mantissa, exponent = math.frexp(scale)  # scale = mantissa * 2**exponent, mantissa in [0.5, 1)
    multiplier = math.floor(mantissa * 2**31 + 0.5)  # half away from zero, as TFLite's QuantizeMultiplier
    if multiplier == 2**31:  # rounding carried into the next power of two
        multiplier //= 2
        exponent += 1
    shift = -exponent
    if shift > MAX_SHIFT:
        return 0, 0
    return multiplier, shift


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """TFLite's ``SaturatingRoundingDoublingHighMul`` on int32 values (vectorised, exact in int64)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    total = ab + nudge
    # C integer division truncates towards zero; numpy's floor division does not.
    quotient = np.where(total >= 0, total >> 31, -((-total) >> 31))
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, quotient).astype(np.int64)


def rounding_divide_by_pot(x: np.ndarray, shift: np.ndarray | int) -> np.ndarray:
    """TFLite's ``RoundingDivideByPOT``: ``x / 2**shift`` rounded to nearest, ties away from zero."""
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    mask = (np.int64(1) << shift) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> shift) + (remainder > threshold)


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of int64 values to int32 (as int64)."""
    return ((np.asarray(x, dtype=np.int64) + 2**31) & 0xFFFFFFFF) - 2**31


def requantize(acc: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """Scale int32 accumulators by ``multiplier * 2**-31 * 2**-shift`` (TFLite double rounding), as int64.

    A negative ``shift`` is TFLite's MultiplyByQuantizedMultiplier for a scale of one or more: ``acc << -shift`` (in
    int32 as TFLite computes it, so it wraps if it does not fit), then the doubling high multiply, no rounding shift.
    """
    shift = np.asarray(shift, dtype=np.int64)
    if (shift < 0).any():
        acc = wrap_int32(np.asarray(acc, dtype=np.int64) << np.maximum(-shift, 0))
        shift = np.maximum(shift, 0)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(acc, multiplier), shift)


def requantize_single(acc: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """Single rounding: ``(acc * M + 2**(30 + S)) >> (31 + S)`` (half up), as int64: the accelerator's POSTPROC
    ``single`` mode, used where it provably equals ``requantize_float`` (``semantics.single_rounding_exact``)."""
    acc = np.asarray(acc, dtype=np.int64)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    return (acc * multiplier + (np.int64(1) << (30 + shift))) >> (31 + shift)


def requantize_float(acc: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
    """C's ``round(double(acc) * scale)`` (ties away from zero), as int64: how TFLite's reference int8
    FULLY_CONNECTED requantizes (in double precision, not with a fixed-point multiplier as its convolutions do)."""
    v = np.asarray(acc, dtype=np.float64) * np.asarray(scale, dtype=np.float64)
    whole = np.trunc(v)
    return (whole + np.where(np.abs(v - whole) >= 0.5, np.sign(v), 0.0)).astype(np.int64)  # v - trunc(v) is exact


def requantize_to_int8(
    acc: np.ndarray,
    multiplier: np.ndarray | int,
    shift: np.ndarray | int,
    zero_point: int,
    lo: int = -128,
    hi: int = 127,
    single: bool = False,
) -> np.ndarray:
    """The whole post-processing step: requantize (``single``: ``requantize_single``), add the output zero point,
    clamp to ``[lo, hi]``, as int8."""
    out = (requantize_single if single else requantize)(acc, multiplier, shift) + zero_point
    return np.clip(out, lo, hi).astype(np.int8)

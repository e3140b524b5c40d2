"""Integer meaning of every QuantGraph op, built on :mod:`tinycompile.quant.intmath` (the one source of rounding).

Weighted ops (conv, dwconv, dense), per output channel ``c``::

    acc[c] = bias[c] + sum((x - zp_in) * w[c])            # int32; padded taps hold zp_in, so they add 0
    y[c]   = clamp(requantize(acc[c], M[c], S[c]) + zp_out, lo, hi)

maxpool: ``y = clamp(max(window), lo, hi)``; output quantization equals the input's (no rescaling). Taps in the
padding are ignored (they hold -128, which never wins).

avgpool / gap: ``y = clamp(requantize(sum(x - zp_in over window), M, S) + zp_out, lo, hi)`` where ``M, S`` encode
``s_in / (count * s_out)``: the 1/count is folded into the multiplier, so there is no integer division. A padded
pool averages the taps inside the input: ``M, S`` per output position (their count). TFLite's pools
(``params["divide"]``) keep their input's quantization and divide the raw sum by that count (``avgpool_divide``).

add (TFLite's scheme, exact in int32)::

    a' = requantize((a - zp_a) << 20, M_a, S_a)       # M_a, S_a encode s_a / (2 max(s_a, s_b))   (<= 0.5)
    b' = requantize((b - zp_b) << 20, M_b, S_b)
    y  = clamp(requantize(a' + b', M_o, S_o) + zp_out, lo, hi)   # encodes 2 max(s_a, s_b) / (2**20 s_out)

``|x - zp| <= 255`` so the shifted inputs stay below 2**28; every requantization scale is below one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinycompile.quant.intmath import (
    INT32_MAX,
    INT32_MIN,
    quantize_multiplier,
    requantize,
    requantize_to_int8,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)

ADD_LEFT_SHIFT = 20
SCALE_MARGIN = 1.0 + 2.0**-20  # keeps a scale that would reach one strictly below it


def min_out_scale(numerator: float) -> float:
    """Smallest output scale that keeps ``numerator / s_out`` a legal (< 1) requantization scale."""
    return numerator * SCALE_MARGIN


def avgpool_multiplier(s_in: float, count: int, s_out: float) -> tuple[int, int]:
    """``(M, S)`` of an average over ``count`` elements."""
    return quantize_multiplier(s_in / (count * s_out))


def add_multipliers(s_a: float, s_b: float, s_out: float) -> tuple[list[int], list[int]]:
    """``([M_a, M_b, M_o], [S_a, S_b, S_o])`` of a residual add."""
    twice_max = 2.0 * max(s_a, s_b)
    pairs = [
        quantize_multiplier(s_a / twice_max),
        quantize_multiplier(s_b / twice_max),
        quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * s_out)),
    ]
    return [m for m, _ in pairs], [s for _, s in pairs]


def add_int8(
    a: np.ndarray, b: np.ndarray, zp_a: int, zp_b: int, mult: np.ndarray, shift: np.ndarray, zp_out: int, lo: int, hi: int
) -> np.ndarray:
    """The residual add on int8 arrays of equal shape."""
    sa = requantize((a.astype(np.int64) - zp_a) << ADD_LEFT_SHIFT, int(mult[0]), int(shift[0]))
    sb = requantize((b.astype(np.int64) - zp_b) << ADD_LEFT_SHIFT, int(mult[1]), int(shift[1]))
    return requantize_to_int8(sa + sb, int(mult[2]), int(shift[2]), zp_out, lo, hi)


def mul_int8(a: np.ndarray, b: np.ndarray, zp_a: int, zp_b: int, mult: int, shift: int, zp_out: int, lo: int,
             hi: int) -> np.ndarray:
    """The elementwise product (TFLite's int8 MUL): ``(a - zp_a) (b - zp_b)`` requantized by ``s_a s_b / s_out``;
    ``b`` broadcasts (one factor per channel)."""
    product = (a.astype(np.int64) - zp_a) * (b.astype(np.int64) - zp_b)
    return requantize_to_int8(product, mult, shift, zp_out, lo, hi)


# ---------------------------------------------------------------------------------------------------------------------
# Ops of imported TFLite models. Each function reproduces TFLite's *reference* kernel (the interpreter's BUILTIN_REF
# op resolver) bit for bit; the fixed-point helpers follow gemmlowp's definitions on int64 arrays holding int32 values.
# ---------------------------------------------------------------------------------------------------------------------

SOFTMAX_DIFF_INTEGER_BITS = 5  # TFLite's kScaledDiffIntegerBits: exp's input is Q5.26
SOFTMAX_ACCUM_INTEGER_BITS = 12  # TFLite's kAccumulationIntegerBits: the sum of exps is Q12.19
SOFTMAX_OUTPUT_ZERO_POINT = -128  # int8 softmax output: scale 1/256, zero point -128
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401), (4, 242))


def tflite_round(x: float) -> int:
    """C's ``round`` (TfLiteRound): half away from zero (Python's ``round`` is half to even)."""
    return int(round_half_away(x))


def round_half_away(v: Any) -> Any:
    """Element-wise C ``round``/``roundf`` (half away from zero) as int64. Computed in float64, where ``|v| + 0.5`` is
    exact for any float32 value (in float32 it is not: 0.49999997 + 0.5 rounds up to 1)."""
    v = np.asarray(v, dtype=np.float64)
    return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int64)


def tflite_quantize_multiplier(scale: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier`` (double rounding build): ``(multiplier, shift)`` with ``scale ~=
    multiplier * 2**-31 * 2**shift``; TFLite's sign convention, a positive ``shift`` is a left shift."""
    if scale == 0.0:
        return 0, 0
    mantissa, shift = math.frexp(scale)
    q = tflite_round(mantissa * 2**31)
    if q == 2**31:  # rounding carried into the next power of two
        q //= 2
        shift += 1
    if shift < -31:  # too small to represent: TFLite flushes it to zero
        return 0, 0
    return q, shift


def softmax_params(beta: float, input_scale: float) -> dict[str, int]:
    """What TFLite's SoftmaxPrepare (reference kernel, int8) derives from ``beta`` and the input scale, both float32
    in the model: ``{"beta_multiplier", "beta_left_shift", "diff_min"}`` (PreprocessSoftmaxScaling and
    CalculateInputRadius with 5 integer bits)."""
    beta64, scale64 = float(np.float32(beta)), float(np.float32(input_scale))
    real = min(beta64 * scale64 * float(1 << (31 - SOFTMAX_DIFF_INTEGER_BITS)), float(2**31 - 1))
    if not real > 1.0:
        raise ValueError(f"softmax: beta * input_scale = {beta64 * scale64!r} is too small for TFLite's int8 kernel")
    multiplier, left_shift = tflite_quantize_multiplier(real)
    # CalculateInputRadius: the largest |x - max| whose rescaled value still fits Q5.26, computed in double as TFLite does
    radius = math.floor(((1 << SOFTMAX_DIFF_INTEGER_BITS) - 1) * float(1 << (31 - SOFTMAX_DIFF_INTEGER_BITS)) / float(1 << left_shift))
    return {"beta_multiplier": int(multiplier), "beta_left_shift": int(left_shift), "diff_min": -int(radius)}


def _sat_shl(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp's SaturatingRoundingMultiplyByPOT for a positive exponent: ``x << exponent`` saturated to int32."""
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def _exp_on_interval(a: np.ndarray) -> np.ndarray:
    """gemmlowp's exp_on_interval_between_negative_one_quarter_and_0_excl on Q0.31 values (Taylor series at -1/8)."""
    exp_minus_eighth, one_third = 1895147668, 715827883
    x = a + (1 << 28)
    x2 = saturating_rounding_doubling_high_mul(x, x)
    x3 = saturating_rounding_doubling_high_mul(x2, x)
    x4 = saturating_rounding_doubling_high_mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x4_over_4 + x3, one_third) + x2, 1)
    return exp_minus_eighth + saturating_rounding_doubling_high_mul(exp_minus_eighth, x + poly)


def exp_on_negative_values_q5(a: np.ndarray) -> np.ndarray:
    """gemmlowp's exp_on_negative_values for Q5.26 inputs ``a <= 0``: ``exp(a)`` as Q0.31 (int64 array)."""
    a = np.asarray(a, dtype=np.int64)
    frac_bits = 31 - SOFTMAX_DIFF_INTEGER_BITS
    quarter = 1 << (frac_bits - 2)
    a_mod = (a & (quarter - 1)) - quarter  # a rounded up to a multiple of 1/4, minus that multiple: [-1/4, 0)
    result = _exp_on_interval(_sat_shl(a_mod, SOFTMAX_DIFF_INTEGER_BITS))
    remainder = a_mod - a  # the non-negative multiple of 1/4 still to apply, one bit per exp(-2**k) factor
    for k, factor in _EXP_BARREL:
        hit = (remainder & (1 << (frac_bits + k))) != 0
        result = np.where(hit, saturating_rounding_doubling_high_mul(result, factor), result)
    return np.where(a == 0, INT32_MAX, result)


def softmax_table(params: dict[str, int]) -> np.ndarray:
    """int32 ``(256, 2)``: for each ``d = max - x`` in [0, 255], ``exp(-d * beta * s_in)`` as Q0.31 (column 0) and
    that term of the Q12.19 sum (column 1, rounded); both 0 where ``-d < diff_min`` (TFLite skips those inputs)."""
    d = np.arange(256, dtype=np.int64)
    kept = -d >= params["diff_min"]
    # MultiplyByQuantizedMultiplierGreaterThanOne; the kept diffs cannot overflow the int32 left shift (radius bound)
    shifted = np.where(kept, -d << params["beta_left_shift"], 0)
    scaled = saturating_rounding_doubling_high_mul(shifted, params["beta_multiplier"])
    exp = np.where(kept, exp_on_negative_values_q5(scaled), 0)
    term = rounding_divide_by_pot(exp, SOFTMAX_ACCUM_INTEGER_BITS)  # gemmlowp Rescale<12>
    return np.stack([exp, term], axis=1).astype(np.int32)


def one_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """gemmlowp's one_over_one_plus_x_for_x_in_0_1 on Q0.31 values (three Newton-Raphson steps in Q2.29)."""
    a = np.asarray(a, dtype=np.int64)
    total = a + INT32_MAX  # RoundingHalfSum(a, One): (a + b + sign) / 2 truncated
    half_den = np.where(total >= 0, (total + 1) // 2, -((-(total - 1)) // 2))
    x = 1515870810 + saturating_rounding_doubling_high_mul(half_den, -1010580540)  # 48/17 - 32/17 * d
    for _ in range(3):
        err = (1 << 29) - saturating_rounding_doubling_high_mul(half_den, x)  # 1 - d x in Q2.29
        x = x + _sat_shl(saturating_rounding_doubling_high_mul(x, err), 2)
    return _sat_shl(x, 1)  # x / 2 as Q1, rescaled to Q0


def softmax_reciprocal(total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's GetReciprocal of a positive Q12.19 sum: ``(1 / (sum scaled into [1, 2)) as Q0.31, bits over one)``."""
    total = np.asarray(total, dtype=np.int64)
    clz = 32 - np.frexp(total.astype(np.float64))[1].astype(np.int64)  # exact: the sums are integers below 2**31
    shifted_minus_one = ((total << clz) & 0xFFFFFFFF) - (1 << 31)
    return one_over_one_plus_x(shifted_minus_one), SOFTMAX_ACCUM_INTEGER_BITS - clz


def softmax_int8(x: np.ndarray, params: dict[str, int]) -> np.ndarray:
    """TFLite's reference int8 softmax over the last axis of ``x`` (any leading shape), int8 output (1/256, -128).

    Rows whose rounding exponent would exceed 31 (a sum of exps of 2**28 or more, i.e. hundreds of near-maximal
    channels) make TFLite abort; here they continue with the same round-half-up division."""
    x = np.asarray(x)
    table = softmax_table(params).astype(np.int64)
    diff = x.max(axis=-1, keepdims=True).astype(np.int64) - x.astype(np.int64)
    exp = table[diff, 0]
    recip, bits_over_unit = softmax_reciprocal(table[diff, 1].sum(axis=-1, keepdims=True))
    exponent = bits_over_unit + 31 - 8
    unsat = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(recip, exp), exponent)
    return np.clip(unsat + SOFTMAX_OUTPUT_ZERO_POINT, -128, 127).astype(np.int8)


def lut_int8(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The ``lut`` op: ``y = table[x + 128]``."""
    return np.asarray(table, dtype=np.int8)[np.asarray(x).astype(np.int64) + 128]


def _float_lut(in_scale: float, in_zp: int, out_scale: float, out_zp: int, fn: Any) -> np.ndarray:
    """TFLite's LUTPopulate for int8 in float32 arithmetic: ``clamp(round(fn(s_in (q - zp_in)) / s_out) + zp_out)``,
    indexed by ``q + 128``; ``fn`` maps a float32 array to float32."""
    q = np.arange(-128, 128, dtype=np.int32)
    s_in = np.float32(in_scale)
    dequantized = s_in * (q - np.int32(in_zp)).astype(np.float32)
    inverse_scale = np.float32(1.0) / np.float32(out_scale)
    rescaled = round_half_away(fn(dequantized).astype(np.float32) * inverse_scale)  # the float32 product, as TFLite
    return np.clip(rescaled + out_zp, -128, 127).astype(np.int8)


def _expf(v: np.ndarray) -> np.ndarray:
    # expf rounded correctly (glibc's expf is correctly rounded); float64 then one rounding to float32, where
    # large arguments overflow to inf exactly as expf's do (then 1 / (1 + inf) = 0).
    with np.errstate(over="ignore"):
        return np.exp(v.astype(np.float64)).astype(np.float32)


def logistic_table(in_scale: float, in_zp: int, out_scale: float = 1.0 / 256, out_zp: int = -128) -> np.ndarray:
    """int8 ``(256,)`` table of TFLite's int8 LOGISTIC (reference kernel: ``1 / (1 + expf(-x))`` in float32)."""
    return _float_lut(in_scale, in_zp, out_scale, out_zp, lambda v: np.float32(1.0) / (np.float32(1.0) + _expf(-v)))


def tanh_table(in_scale: float, in_zp: int, out_scale: float = 1.0 / 128, out_zp: int = 0) -> np.ndarray:
    """int8 ``(256,)`` table of TFLite's int8 TANH (reference kernel: ``tanhf(x)`` in float32)."""
    return _float_lut(in_scale, in_zp, out_scale, out_zp, lambda v: np.tanh(v.astype(np.float64)).astype(np.float32))


def requantize_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """int8 ``(256,)`` table of TFLite's int8 -> int8 QUANTIZE (reference Requantize): ``clamp(MultiplyByQuantized
    Multiplier(q - zp_in, M, shift) + zp_out)`` with ``M, shift`` from the double ``s_in / s_out``."""
    q = np.arange(-128, 128, dtype=np.int64) - in_zp
    out = multiply_by_quantized_multiplier(q, *_rescale_multiplier(in_scale, out_scale)) + out_zp
    return np.clip(out, -128, 127).astype(np.int8)


def gelu_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int, approximate: bool = False) -> np.ndarray:
    """int8 ``(256,)`` table of TFLite's int8 GELU (a float LUT): ``x (1 + erf(x / sqrt 2)) / 2`` in double, or with
    ``approximate`` the tanh form in float32."""
    def exact(v: np.ndarray) -> np.ndarray:
        v64 = v.astype(np.float64)
        return (0.5 * v64 * (1.0 + np.vectorize(math.erf)(v64 * math.sqrt(0.5)))).astype(np.float32)

    def tanh_form(v: np.ndarray) -> np.ndarray:
        inner = np.float32(math.sqrt(2.0 / math.pi)) * (v + np.float32(0.044715) * v * v * v)
        return np.float32(0.5) * v * (np.float32(1.0) + np.tanh(inner.astype(np.float64)).astype(np.float32))

    return _float_lut(in_scale, in_zp, out_scale, out_zp, tanh_form if approximate else exact)


def relu_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int, lo: float, hi: float) -> np.ndarray:
    """int8 ``(256,)`` table of TFLite's standalone RELU, RELU6, RELU_N1_TO_1 and RELU_0_TO_1 (reference ReluX): the
    input rescaled by the float32 ``s_in / s_out``, then clamped at ``zp_out + roundf(bound / s_out)``."""
    multiplier, shift = tflite_quantize_multiplier(float(np.float32(in_scale) / np.float32(out_scale)))
    s_out = np.float32(out_scale)
    q_lo = max(-128, out_zp + tflite_round(np.float32(lo) / s_out))
    q_hi = 127 if math.isinf(hi) else min(127, out_zp + tflite_round(np.float32(hi) / s_out))
    q = np.arange(-128, 128, dtype=np.int64) - in_zp
    return np.clip(multiply_by_quantized_multiplier(q, multiplier, shift) + out_zp, q_lo, q_hi).astype(np.int8)


def leaky_relu_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int, alpha: float) -> np.ndarray:
    """int8 ``(256,)`` table of TFLite's LEAKY_RELU (reference QuantizeLeakyRelu): inputs at or above the zero point
    rescaled by ``s_in / s_out``, the others by ``alpha s_in / s_out`` (both in float32, as LeakyReluPrepare)."""
    s_in, s_out = np.float32(in_scale), np.float32(out_scale)
    identity = tflite_quantize_multiplier(float(s_in / s_out))
    negative = tflite_quantize_multiplier(float(s_in * np.float32(alpha) / s_out))
    q = np.arange(-128, 128, dtype=np.int64) - in_zp
    out = np.where(q >= 0, multiply_by_quantized_multiplier(q, *identity), multiply_by_quantized_multiplier(q, *negative))
    return np.clip(out + out_zp, -128, 127).astype(np.int8)


def abs_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """int8 ``(256,)`` table of TFLite's int8 ABS: ``|q - zp_in|``, rescaled by ``s_in / s_out`` where the scales
    differ, plus ``zp_out``."""
    q = np.abs(np.arange(-128, 128, dtype=np.int64) - in_zp)
    if np.float32(in_scale) != np.float32(out_scale):
        q = multiply_by_quantized_multiplier(q, *_rescale_multiplier(in_scale, out_scale))
    return np.clip(q + out_zp, -128, 127).astype(np.int8)


def _rescale_multiplier(in_scale: float, out_scale: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier`` of ``s_in / s_out``, the float32 scales divided in double precision."""
    return tflite_quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))


def _int16_multiplier(scale: np.float32) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier then DownScaleInt32ToInt16Multiplier: a Q0.15 multiplier and TFLite's exponent."""
    multiplier, exponent = tflite_quantize_multiplier(float(scale))
    return min((multiplier + (1 << 15)) >> 16, (1 << 15) - 1), exponent


def _srdhm16(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int16 values (the operands here never both reach -2**15)."""
    ab = np.asarray(a, np.int64) * np.asarray(b, np.int64)
    total = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    return np.where(total >= 0, total >> 15, -((-total) >> 15))


def _sdhm16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The hard swish kernel's SaturatingDoublingHighMul on int16 values: ``a b / 2**15``, truncated towards zero."""
    ab = np.asarray(a, np.int64) * np.asarray(b, np.int64)
    return np.where(ab >= 0, ab >> 15, -((-ab) >> 15))


def _sat_shl16(x: np.ndarray, amount: int) -> np.ndarray:
    return np.clip(np.asarray(x, np.int64) << amount, -(1 << 15), (1 << 15) - 1)


def hard_swish_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """int8 ``(256,)`` table of TFLite's HARD_SWISH (reference kernel, int16 fixed point): ``x relu6(x + 3) / 6`` with
    the input on a 2**7 finer scale, the "reluish" factor in [0, 1] on the scale where 3.0 is 2**15."""
    hires = np.float32(1.0 / 128.0) * np.float32(in_scale)
    out_mult, out_exp = _int16_multiplier(hires / np.float32(out_scale))
    if out_exp > 0:
        raise ValueError(f"the output scale {out_scale:.3g} is finer than the input's / 128 ({float(hires):.3g}), "
                         "which TFLite's int8 HARD_SWISH refuses too")
    relu_mult, relu_exp = _int16_multiplier(hires / np.float32(3.0 / 32768.0))
    x = (np.arange(-128, 128, dtype=np.int64) - in_zp) * (1 << 7)  # |x - zp| <= 255: fits int16
    on_output = _srdhm16(x, out_mult)
    reluish = _sat_shl16(x, relu_exp - 1) if relu_exp > 0 else x
    reluish = _srdhm16(reluish, relu_mult)
    if relu_exp > 0:
        reluish = _sat_shl16(reluish, 1)
    if relu_exp < 0:
        reluish = rounding_divide_by_pot(reluish, -relu_exp)
    reluish = (reluish + (1 << 15)) >> 1
    out = rounding_divide_by_pot(_sdhm16(reluish, on_output), -out_exp)
    return np.clip(out + out_zp, -128, 127).astype(np.int8)


def binary_const_table(op: str, in_q: tuple[float, int], const_q: tuple[float, int], const: int,
                       out_q: tuple[float, int], lo: int, hi: int, const_first: bool = False) -> np.ndarray:
    """int8 ``(256,)`` table of TFLite's int8 ADD, SUB, MUL, MAXIMUM or MINIMUM of a tensor and one constant int8
    value (a broadcast scalar; ``const_first``: the constant is the first operand): the op's own integer arithmetic on
    every input value. SUB is ADD with the second operand's multiplier negated; MAXIMUM and MINIMUM compare the raw
    int8 values, as TFLite's kernels do."""
    q = np.arange(-128, 128, dtype=np.int64)
    c = np.full_like(q, const)
    if op in ("MAXIMUM", "MINIMUM"):
        return (np.maximum if op == "MAXIMUM" else np.minimum)(q, c).astype(np.int8)
    (a, (s_a, zp_a)), (b, (s_b, zp_b)) = ((c, const_q), (q, in_q)) if const_first else ((q, in_q), (c, const_q))
    s_o, zp_o = out_q
    if op in ("ADD", "SUB"):
        mults, shifts = add_multipliers(*(float(np.float32(s)) for s in (s_a, s_b, s_o)))
        if op == "SUB":
            mults[1] = -mults[1]
        return add_int8(a, b, zp_a, zp_b, np.array(mults), np.array(shifts), zp_o, lo, hi)
    multiplier, shift = mul_multiplier(s_a, s_b, s_o)
    return mul_int8(a, b, zp_a, zp_b, multiplier, shift, zp_o, lo, hi)


def mul_multiplier(s_a: float, s_b: float, s_out: float) -> tuple[int, int]:
    """``(M, S)`` of TFLite's int8 MUL: ``s_a s_b / s_out`` computed in float32 as MulPrepare does, ``S < 0`` a left
    shift."""
    scale = float(np.float32(s_a) * np.float32(s_b) / np.float32(s_out))
    return quantize_multiplier(scale, allow_left_shift=True)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier (double rounding), TFLite's sign: ``shift > 0`` shifts ``x`` left first."""
    left, right = max(shift, 0), max(-shift, 0)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(np.asarray(x, dtype=np.int64) << left, multiplier), right)


def avgpool_divide(window_sum: np.ndarray, count: int | np.ndarray, lo: int, hi: int) -> np.ndarray:
    """TFLite's int8 AveragePool: the raw int8 sum over a window of ``count`` values (one count, or one per output
    position: the taps inside the input) divided with rounding half away from zero (C's truncating division of
    ``sum +- count / 2``), clamped to ``[lo, hi]``."""
    s = np.asarray(window_sum, dtype=np.int64)
    count = np.asarray(count, dtype=np.int64)
    num = np.where(s > 0, s + count // 2, s - count // 2)
    quotient = np.sign(num) * (np.abs(num) // count)  # C division truncates towards zero
    return np.clip(quotient, lo, hi).astype(np.int8)


def window_counts(in_hw: tuple[int, int], out_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                  padding: tuple[int, int, int, int]) -> np.ndarray:
    """``(Ho, Wo)`` int32: how many taps of each pool window lie inside the input (the rest is ``padding``)."""
    def inside(size: int, out: int, k: int, s: int, pad: int) -> np.ndarray:
        start = np.arange(out) * s - pad
        return np.minimum(start + k, size) - np.maximum(start, 0)

    rows = inside(in_hw[0], out_hw[0], kernel[0], stride[0], padding[0])
    cols = inside(in_hw[1], out_hw[1], kernel[1], stride[1], padding[2])
    return np.outer(rows, cols).astype(np.int32)


def pad_int8(x: np.ndarray, padding: tuple[int, int, int, int], value: int) -> np.ndarray:
    """Constant padding of H and W of an ``(N, H, W, C)`` int8 array: ``padding`` is (top, bottom, left, right)."""
    pt, pb, pl, pr = padding
    return np.pad(np.asarray(x), ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=value).astype(np.int8)


def upsample_int8(x: np.ndarray, factor: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling of ``(N, H, W, C)`` int8 arrays: every pixel repeated ``factor`` (sh, sw) times."""
    return np.repeat(np.repeat(np.asarray(x), factor[0], axis=1), factor[1], axis=2).astype(np.int8)


def slice_int8(x: np.ndarray, cut: tuple[int, int, int, int], step: tuple[int, int], index: np.ndarray) -> np.ndarray:
    """``(N, H, W, C)`` int8 arrays with ``cut`` (top, bottom, left, right) rows and columns removed, every ``step``
    (sh, sw)-th of the rest kept, and channel ``index[c]`` as output channel ``c``."""
    h, w = np.shape(x)[1:3]
    (pt, pb, pl, pr), (sh, sw) = cut, step
    return np.asarray(x)[:, pt : h - pb : sh, pl : w - pr : sw][..., np.asarray(index)].astype(np.int8)


def spread_int8(x: np.ndarray, stride: tuple[int, int], padding: tuple[int, int, int, int], value: int) -> np.ndarray:
    """``(N, H, W, C)`` int8 pixels ``stride`` apart after ``padding`` (top, bottom, left, right), ``value`` between."""
    n, h, w, c = np.shape(x)
    (sh, sw), (pt, pb, pl, pr) = stride, padding
    out = np.full((n, (h - 1) * sh + 1 + pt + pb, (w - 1) * sw + 1 + pl + pr, c), value, np.int8)
    out[:, pt : pt + (h - 1) * sh + 1 : sh, pl : pl + (w - 1) * sw + 1 : sw] = x
    return out


def concat_int8(*xs: np.ndarray) -> np.ndarray:
    """Channel concatenation of ``(N, H, W, C_i)`` int8 arrays (inputs quantized as the output, no rescaling)."""
    return np.concatenate([np.asarray(x) for x in xs], axis=-1).astype(np.int8)


def single_rounding_exact(multiplier: np.ndarray, shift: np.ndarray, scale: np.ndarray, zero_point: int, lo: int,
                          hi: int) -> bool:
    """Whether the fixed-point single rounding ``requantize_single(acc, M[c], S[c])`` equals TFLite's
    ``requantize_float(acc, scale[c])`` for every int32 ``acc``, once the zero point is added and ``[lo, hi]`` clamps.

    Both are non-decreasing unit-step functions of ``acc``, so they agree everywhere iff they step at the same
    accumulators. Each step within the clamp lies within one accumulator of ``(k + 1/2) / scale`` (``M`` carries
    31 bits, ``|acc| < 2**31``), so a few candidates around each of the <= 256 steps per channel decide it.
    """
    from tinycompile.quant.intmath import INT32_MAX, INT32_MIN, requantize_float, requantize_single

    levels = np.arange(lo - zero_point - 1, hi - zero_point + 1, dtype=np.float64) + 0.5
    offsets = np.arange(-2, 4, dtype=np.int64)
    for m, s, sc in zip(np.asarray(multiplier).ravel(), np.asarray(shift).ravel(), np.asarray(scale, np.float64).ravel()):
        if sc <= 0.0:
            return False
        centre = np.floor(levels / sc)
        centre = centre[(centre > INT32_MIN - 8) & (centre < INT32_MAX - 8)].astype(np.int64)
        acc = (centre[:, None] + offsets[None, :]).ravel()
        a = np.clip(requantize_single(acc, int(m), int(s)) + zero_point, lo, hi)
        b = np.clip(requantize_float(acc, sc) + zero_point, lo, hi)
        if not np.array_equal(a, b):
            return False
    return True

"""Integer meaning of every QuantGraph op, built on :mod:`tinycompile.quant.intmath` (the one source of rounding).

Weighted ops (conv, dwconv, dense), per output channel ``c``::

    acc[c] = bias[c] + sum((x - zp_in) * w[c])            # int32; padded taps hold zp_in, so they add 0
    y[c]   = clamp(requantize(acc[c], M[c], S[c]) + zp_out, lo, hi)

maxpool: ``y = clamp(max(window), lo, hi)``; output quantization equals the input's (no rescaling).

avgpool / gap: ``y = clamp(requantize(sum(x - zp_in over window), M, S) + zp_out, lo, hi)`` where ``M, S`` encode
``s_in / (count * s_out)``: the 1/count is folded into the multiplier, so there is no integer division.

add (TFLite's scheme, exact in int32)::

    a' = requantize((a - zp_a) << 20, M_a, S_a)       # M_a, S_a encode s_a / (2 max(s_a, s_b))   (<= 0.5)
    b' = requantize((b - zp_b) << 20, M_b, S_b)
    y  = clamp(requantize(a' + b', M_o, S_o) + zp_out, lo, hi)   # encodes 2 max(s_a, s_b) / (2**20 s_out)

``|x - zp| <= 255`` so the shifted inputs stay below 2**28; every requantization scale is below one.
"""

from __future__ import annotations

import numpy as np

from tinycompile.quant.intmath import quantize_multiplier, requantize, requantize_to_int8

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

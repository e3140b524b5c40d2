"""Layer-level numpy references built on :mod:`tinycompile.quant.intmath` (what the RTL must match)."""

from __future__ import annotations

import numpy as np

from tinycompile.quant.intmath import requantize_to_int8


def conv2d_ref(x: np.ndarray, w: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray,
               in_zp: int, out_zp: int, stride: int = 1, pad: tuple[int, int, int, int] = (0, 0, 0, 0),
               lo: int = -128, hi: int = 127, depthwise: bool = False) -> np.ndarray:
    """int8 conv2d (HWC in, [KH, KW, Cin, Cout] or depthwise [KH, KW, C]) with zero-point padding."""
    pt, pb, pl, pr = pad
    xp = np.pad(x.astype(np.int64) - in_zp, ((pt, pb), (pl, pr), (0, 0)))
    kh, kw = w.shape[:2]
    oh = (xp.shape[0] - kh) // stride + 1
    ow = (xp.shape[1] - kw) // stride + 1
    cout = x.shape[2] if depthwise else w.shape[3]
    acc = np.zeros((oh, ow, cout), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[ky : ky + stride * oh : stride, kx : kx + stride * ow : stride, :]
            if depthwise:
                acc += patch * w[ky, kx].astype(np.int64)
            else:
                acc += patch @ w[ky, kx].astype(np.int64)
    acc = acc + np.asarray(bias, dtype=np.int64)
    acc = ((acc + 2**31) % 2**32) - 2**31  # int32 accumulator
    return requantize_to_int8(acc, np.asarray(mult), np.asarray(shift), out_zp, lo, hi)


def pool_ref(x: np.ndarray, k: tuple[int, int], stride: int, kind: str, in_zp: int, out_zp: int,
             mult: np.ndarray, shift: np.ndarray, pad: tuple[int, int, int, int] = (0, 0, 0, 0)) -> np.ndarray:
    """Max pool (pad = -inf), or average pool as requant(sum(x - zp)) with 1/count in the multiplier."""
    pt, pb, pl, pr = pad
    kh, kw = k
    fill = -(2**40) if kind == "max" else 0
    xp = np.pad(x.astype(np.int64) - in_zp, ((pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    oh = (xp.shape[0] - kh) // stride + 1
    ow = (xp.shape[1] - kw) // stride + 1
    wins = [xp[ky : ky + stride * oh : stride, kx : kx + stride * ow : stride, :]
            for ky in range(kh) for kx in range(kw)]
    acc = np.max(wins, axis=0) if kind == "max" else np.sum(wins, axis=0)
    return requantize_to_int8(acc, np.asarray(mult), np.asarray(shift), out_zp)


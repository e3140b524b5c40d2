"""Exact rewrites of convolution weights that both importers use, in torch's ``(O, I, KH, KW)`` layout: forms the
back ends do not run as such become plain convolutions with the same integer sums (and more MACs)."""

from __future__ import annotations

import numpy as np


def dilated(w: np.ndarray, dilation: tuple[int, int]) -> np.ndarray:
    """A dilated kernel spread out: ``((KH - 1) dh + 1, (KW - 1) dw + 1)`` taps, zeros between the real ones."""
    dh, dw = dilation
    out = np.zeros((*w.shape[:2], (w.shape[2] - 1) * dh + 1, (w.shape[3] - 1) * dw + 1), w.dtype)
    out[:, :, ::dh, ::dw] = w
    return out


def block_diagonal(w: np.ndarray, groups: int) -> np.ndarray:
    """A grouped convolution's ``(O, I / groups, KH, KW)`` weights as a full convolution's ``(O, I, KH, KW)``: each
    output channel reads only its group's input channels (zeros elsewhere); ``groups`` x the MACs, the same outputs."""
    out, per_group = w.shape[0], w.shape[1]
    full = np.zeros((out, per_group * groups, *w.shape[2:]), w.dtype)
    for o in range(out):
        g = o // (out // groups)
        full[o, g * per_group : (g + 1) * per_group] = w[o]
    return full

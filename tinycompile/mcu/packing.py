"""The weight layouts of the MCU's DSP schedules (Arm cores with the DSP extension): what ``lower`` hands
``tinycompile.lowering.to_relax`` as its ``weight`` for those builds. Which axis packs is ``layout``'s decision, which
the cost model shares, so flash is predicted the way a build stores it.
"""

from __future__ import annotations

import numpy as np

from tinycompile.mcu import layout
from tinycompile.quant.graph import QOp


def dsp_weight(op: QOp) -> np.ndarray:
    """The weight constant of a weighted op as the DSP schedules read it (packed where they pack, else as it is)."""
    if pixel_pairs(op):
        return pointwise_weight(op)
    if op.op == "conv":
        return conv_weight(op)
    if op.op == "dwconv":
        return dwconv_weight(op)
    return op.tensors["weight"]


def mve_weight(op: QOp) -> np.ndarray:
    """The weight constant as the Helium builds read it: int8 as it is where ``schedules_mve`` takes the op (see
    ``layout.mve_conv``), else ``dsp_weight``'s layout for the DSP schedules."""
    if layout.mve_conv(op.op, op.in_shapes[0][2], tuple(op.kernel)) or layout.mve_dwconv(op.op, op.out_shape[2]):
        return op.tensors["weight"]
    return dsp_weight(op)


def dot_axis(op: QOp) -> str | None:
    """The reduction axis of ``op``'s packed 4-way int8 dot product (see ``layout.dot_axis``)."""
    return layout.dot_axis(op.op, op.in_shapes[0][2], tuple(op.kernel))


def conv_weight(op: QOp) -> np.ndarray:
    """The conv weight for the dual 16-bit multiply-accumulate, or int8 ``(O, KH, KW, I)`` when no axis packs.

    Packed: the dot axis zero-padded to a multiple of four, groups of four taps ``t = 4g + a + 2b`` stored as int16
    ``[..., g, a, b]``, so each 32-bit word holds the taps ``(0, 2)`` or ``(1, 3)`` of a group, the order in which a
    sign-extend-bytes-to-halfwords of four input bytes delivers them.
    """
    axis = dot_axis(op)
    if axis is None:
        return op.tensors["weight"]
    w = _dot_axis_padded(op)
    o, kh, kw, cp = w.shape
    if axis == "ci":
        w6 = w.reshape(o, kh, kw, cp // 4, 2, 2).transpose(0, 1, 2, 3, 5, 4)
    else:
        w6 = w.reshape(o, kh, kw // 4, 2, 2).transpose(0, 1, 2, 4, 3)
    return np.ascontiguousarray(w6.astype(np.int16))


def _dot_axis_padded(op: QOp) -> np.ndarray:
    """The int8 conv weight ``(O, KH, KW, I)`` with its dot axis (input channels or kernel columns) zero-padded to
    a multiple of four."""
    w = op.tensors["weight"]
    axis = 3 if dot_axis(op) == "ci" else 2
    pad = [(0, 0)] * 4
    pad[axis] = (0, -w.shape[axis] % 4)
    return np.pad(w, pad)


def dwconv_weight(op: QOp) -> np.ndarray:
    """The depthwise weight: ``row_pair_weight`` where the layer runs over row pairs, else ``(KH, KW, C)``, int16
    when the channels are a multiple of four (the halfword multiply-accumulates take pairs of int16 weights from one
    32-bit load), else int8 as it is."""
    w = op.tensors["weight"]
    if row_pairs(op):
        return row_pair_weight(w, tuple(op.stride))
    return np.ascontiguousarray(w.astype(np.int16)) if w.shape[2] % 4 == 0 else w


def row_pairs(op: QOp) -> bool:
    """Whether a depthwise conv runs over row pairs (``layout.row_pairs``)."""
    return layout.row_pairs(op.op, op.out_shape[2], tuple(op.kernel), tuple(op.stride), tuple(op.out_shape[:2]))


def row_pair_weight(w: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
    """A depthwise weight ``(KH, KW, C)`` for row pairs: int16 ``[c, s, j, kw, e] = w[2j + e - s, kw, c]``, zero
    outside the kernel: an output row whose first padded row has parity ``s`` meets kernel rows ``2j - s`` and
    ``2j + 1 - s`` in its ``j``-th pair of input rows."""
    kh, kw, c = w.shape
    shape = layout.row_pair_weight_shape(c, (kh, kw), stride)
    out = np.zeros(shape, np.int16)
    for s in range(shape[1]):
        for j in range(shape[2]):
            for e in range(2):
                if 0 <= 2 * j + e - s < kh:
                    out[:, s, j, :, e] = w[2 * j + e - s].T
    return out


def pixel_pairs(op: QOp) -> bool:
    """Whether a conv runs as the pixel-pair GEMM (``layout.pixel_pairs``)."""
    return layout.pixel_pairs(op.op, op.in_shapes[0][2], op.out_shape[2], tuple(op.kernel), tuple(op.stride),
                              tuple(op.padding), tuple(op.out_shape[:2]))


def pointwise_weight(op: QOp) -> np.ndarray:
    """The weight of a conv that ``pixel_pairs`` takes: its dot axis zero-padded to a multiple of four, the taps
    flattened in the order ``(KH, KW, I)``, then as ``pointwise_weight_array`` lays a 1x1 weight out."""
    w = _dot_axis_padded(op)
    return pointwise_weight_array(w.reshape(len(w), 1, 1, -1))


def pointwise_weight_array(w: np.ndarray) -> np.ndarray:
    """A 1x1 weight ``(O, 1, 1, I)`` for the pixel-pair GEMM: int16 ``[t, 0, 0, g, a, c, b] = w[4t + c, 4g + a + 2b]``,
    so a tile of four output channels is contiguous, and its words for one (group, half) follow channel by channel."""
    o, _, _, ci = w.shape
    w7 = w.reshape(o // 4, 4, 1, 1, ci // 4, 2, 2).transpose(0, 2, 3, 4, 6, 1, 5)
    return np.ascontiguousarray(w7.astype(np.int16))

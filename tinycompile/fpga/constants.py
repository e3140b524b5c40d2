"""A layer's constants in the layouts the accelerator reads: weight tiles and post-processing parameter sets.

The input zero point is folded into the bias (``bias - zp_in * sum(w)`` over the kept taps), so the array multiplies
raw int8 values and padding with ``zp_in`` contributes nothing (rtl_sim/ISA.md section 5). Shared by the code
generator (values from a QuantGraph op) and the RTL tests' programs (values from numpy arrays).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinycompile.accel.isa import PARAM_ROWS_PER_SET
from tinycompile.accel.layout import cpad
from tinycompile.fpga.geometry import Geom, tap_major, window_passes
from tinycompile.fpga.tiling import Tiling, sweep_geom

IDENTITY_MULT = (1 << 31) - 1  # with shift 0: the identity on int8-range values (max pooling)

Scale = tuple[object, object]  # (multiplier, shift): scalars or one per channel


@dataclass(frozen=True)
class LayerValues:
    """The numbers of one layer before they are laid out.

    ``weight``: a convolution's ``(KH, KW, I, O)`` or a depthwise ``(KH, KW, C)`` over the whole kernel (the layout
    keeps the taps the geometry keeps, and packs a packed input's taps); None for pools and adds. ``bias``: per
    output channel, without the input zero point (pools: 0). ``scales``: the requantization of each parameter set
    of a tile; an add has three (input a, input b, the sum).
    """

    weight: np.ndarray | None
    bias: object
    scales: tuple[Scale, ...]
    zp_in: int
    zp_b: int = 0  # an add's second input


def param_blob(n: int, bias: object, mult: object, shift: object, c: int) -> np.ndarray:
    """(tiles, 3, N) int32: bias, multiplier, shift rows per output tile (each broadcast to ``c`` channels; padding
    channels zero)."""
    cp = cpad(c, n)
    blob = np.zeros((cp // n, PARAM_ROWS_PER_SET, n), np.int64)
    for row, arr in enumerate((bias, mult, shift)):
        full = np.zeros(cp, np.int64)
        full[:c] = np.broadcast_to(np.asarray(arr, np.int64), (c,))
        blob[:, row, :] = full.reshape(-1, n)
    if blob.min() < -(2**31) or blob.max() >= 2**31:
        raise OverflowError("a folded bias does not fit int32")
    return blob.astype(np.int32)


def diag_tiles(n: int, vals: np.ndarray) -> np.ndarray:
    """(tiles, taps, N, N) diagonal tiles from per-tap per-channel values ``(taps, C)``."""
    taps, c = vals.shape
    nt = cpad(c, n) // n
    tiles = np.zeros((nt, taps, n, n), np.int8)
    full = np.zeros((taps, nt * n), np.int64)
    full[:, :c] = vals
    r = np.arange(n)
    for j in range(nt):
        tiles[j, :, r, r] = full[:, j * n : (j + 1) * n].T
    return tiles


def window_tiles(n: int, g: Geom, vals: np.ndarray, rows: int) -> np.ndarray:
    """(tiles, passes, N, N) window-mode tiles from per-tap values ``(KH * KW, C)`` (``geometry.window_passes``):
    row ``r = i * kw + d`` holds tap ``kw - 1 - d`` of the pass's kernel row i (of a chunk: tap ``hi - 1 - r``)."""
    c, passes = vals.shape[1], window_passes(g, n, rows)
    nt = cpad(c, n) // n
    full = np.zeros((g.kh, g.kw, nt * n), np.int64)
    full[:, :, :c] = vals.reshape(g.kh, g.kw, c)
    tiles = np.zeros((nt, len(passes), n, n), np.int8)
    for k, (ky0, live, q) in enumerate(passes):
        for i in range(rows):
            if ky0 + i < live:
                continue  # summed by an earlier pass
            hi = min(g.kw, (q + 1) * n)
            for kx in range(q * n, hi):
                tiles[:, k, i * g.kw + hi - 1 - kx, :] = full[ky0 + i, kx].reshape(nt, n)
    return tiles


def tap_tiles(n: int, g: Geom, t: Tiling, vals: np.ndarray) -> np.ndarray:
    """Depthwise / pooling tiles from per-tap per-channel values ``(taps, C)`` in the tiling's scheme."""
    if not t.window:
        return diag_tiles(n, vals)
    if t.transposed:  # taps in (kx, ky) order for the swapped geometry
        vals = vals.reshape(g.kh, g.kw, -1).transpose(1, 0, 2).reshape(g.taps, -1)
    return window_tiles(n, sweep_geom(g, t), vals, t.wrows)


def kept_taps(w: np.ndarray, g: Geom) -> np.ndarray:
    """The kernel rows and columns ``g`` keeps of a ``(KH, KW, ...)`` weight (see ``geometry.trim_dead_taps``)."""
    return w[g.ky0 : g.ky0 + g.kh, g.kx0 : g.kx0 + g.kw]


def fit_conv_weight(w4: np.ndarray, g: Geom) -> np.ndarray:
    """A ``(KH, KW, I, O)`` weight in ``g``'s shape: its kept taps, or, for a packed input, ``dy x dx`` taps
    sharing one input word (tap ``(ky, kx)`` at word tap ``(ky // dy, kx // dx)``, slot ``(ky % dy, kx % dx)``)."""
    if (g.dx, g.dy) == (1, 1):
        return kept_taps(w4, g)
    kh0, kw0, c0 = w4.shape[:3]
    out = np.zeros((g.kh, g.kw, g.c, g.co), np.int8)
    for ky in range(kh0):
        for kx in range(kw0):
            (qy, ty), (qx, tx) = divmod(ky, g.dy), divmod(kx, g.dx)
            slot = (ty * g.dx + tx) * c0
            out[qy, qx, slot : slot + c0] = w4[ky, kx]
    return out


def layer_constants(g: Geom, t: Tiling, n: int, v: LayerValues) -> tuple[np.ndarray, np.ndarray]:
    """Weight tiles and parameter blob of one layer, in the layouts its tiling's scheme reads: tiles ordered (tap,
    channel tile) where the emitter steps taps over a group (``geometry.tap_major``), else (tile, tap)."""
    tiles, blob = _tile_major(g, t, n, v)
    if tap_major(g):
        tiles = np.ascontiguousarray(tiles.transpose(1, 0, 2, 3))
    return tiles, blob


def _tile_major(g: Geom, t: Tiling, n: int, v: LayerValues) -> tuple[np.ndarray, np.ndarray]:
    """Weight tiles ``(tiles, reduction tiles, N, N)`` and parameter blob of one layer."""
    bias = np.asarray(v.bias, np.int64)
    if g.kind == "conv":
        w4 = fit_conv_weight(v.weight, g)  # type: ignore[arg-type]
        cb, nt = cpad(g.c, n) // n, cpad(g.co, n) // n
        wp = np.zeros((g.kh, g.kw, cb * n, nt * n), np.int8)
        wp[:, :, : g.c, : g.co] = w4
        tiles = np.ascontiguousarray(wp.reshape(g.taps * cb, n, nt, n).transpose(2, 0, 1, 3))
        folded = bias - v.zp_in * w4.astype(np.int64).reshape(-1, g.co).sum(axis=0)
        return tiles, param_blob(n, folded, *v.scales[0], g.co)
    if g.kind == "dw":
        w = kept_taps(np.asarray(v.weight, np.int64), g).reshape(g.taps, g.c)
        return tap_tiles(n, g, t, w), param_blob(n, bias - v.zp_in * w.sum(axis=0), *v.scales[0], g.co)
    ones = np.ones((g.taps, g.c), np.int64)
    if g.kind == "maxpool":  # the array passes max(x) through identity tiles; the bias then takes zp_in off
        return diag_tiles(n, ones[:1]), param_blob(n, bias - v.zp_in, *v.scales[0], g.co)
    if g.kind == "avgpool":  # the sum of the window's (x - zp_in): the multiplier holds 1 / count
        tiles = tap_tiles(n, g, t, ones) if t.window else diag_tiles(n, ones[:1])
        return tiles, param_blob(n, bias - v.zp_in * g.taps, *v.scales[0], g.co)
    # add: identity tiles; parameter sets (a, b, sum) per tile, see rtl_sim/ISA.md section 5
    eye = diag_tiles(n, ones[:1])[:, 0]
    sets = [param_blob(n, b, *scale, g.co) for b, scale in zip((-v.zp_in, -v.zp_b, 0), v.scales)]
    return eye, np.stack(sets, axis=1)  # (tiles, 3 sets, 3 rows, N)

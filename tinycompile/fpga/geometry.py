"""Geometry of a layer on the accelerator: what it computes (input, output, window, kind) and the rewrites that make
it cheaper to run (a packed network input, kernel taps that only read padding dropped), plus the predicates the
tiling and the emitter choose their schemes by.

Pure Python over plain integers, so the search's cost model can use it as freely as the code generator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tinycompile.accel.isa import MAX_COUNT, MAX_PIXEL_STEP, MAX_STRIDE
from tinycompile.accel.layout import cpad

KINDS = ("conv", "dw", "maxpool", "avgpool", "add")


@dataclass(frozen=True)
class Geom:
    """What the accelerator computes for one layer: input ``(h, w, c)``, output ``(oh, ow, co)``, window, kind."""

    kind: str
    h: int
    w: int
    c: int
    oh: int
    ow: int
    co: int
    kh: int = 1
    kw: int = 1
    sh: int = 1
    sw: int = 1
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right
    dx: int = 1  # input columns between horizontal taps (a packed network input, see ``pack_input``)
    dy: int = 1  # input rows between vertical taps (likewise)
    ky0: int = 0  # first kernel row and column kept when taps that only read padding are dropped (``trim_dead_taps``)
    kx0: int = 0
    real_macs: int = 0  # useful MACs when the shape above includes packing slots (0: computed from the shape)

    @property
    def taps(self) -> int:
        """Window size."""
        return self.kh * self.kw

    def macs(self) -> int:
        """Useful multiply-accumulates (one per input element read for pools and adds)."""
        if self.real_macs:
            return self.real_macs
        per_out = {"conv": self.taps * self.c, "add": 2}.get(self.kind, self.taps)
        return self.oh * self.ow * self.co * per_out


def dense_geom(in_hwc: tuple[int, int, int], units: int, n: int) -> Geom:
    """A dense layer reading an (h, w, c) tensor in NHWC order, as a convolution the array can run.

    If the flattened input is contiguous in memory (one pixel, or channels a multiple of N) it is one long
    1x1-pixel vector; otherwise each pixel carries channel padding, so the dense is a convolution whose window
    is the whole input.
    """
    h, w, c = in_hwc
    if h * w == 1 or c % n == 0:
        return Geom("conv", 1, 1, h * w * c, 1, 1, units)
    return Geom("conv", h, w, c, 1, 1, units, kh=h, kw=w)


def geom_from_hwc(op: str, ins: list[tuple[int, int, int]], out: tuple[int, int, int], kernel: tuple[int, int],
                  stride: tuple[int, int], padding: tuple[int, int, int, int], n: int) -> Geom | None:
    """Geometry of one op given NHWC shapes (None for a view such as flatten)."""
    h, w, c = ins[0]
    oh, ow, co = out
    if op == "flatten":
        return None
    if op == "dense":
        return dense_geom(ins[0], co, n)
    if op == "add":
        return Geom("add", h, w, c, oh, ow, co)
    whole_map = op in ("maxpool", "avgpool") and tuple(kernel) == (h, w) and not any(padding)
    if op == "gap" or whole_map:  # one window over the whole map: its stride never applies
        return Geom("maxpool" if op == "maxpool" else "avgpool", h, w, c, oh, ow, co, kh=h, kw=w)
    kind = {"conv": "conv", "dwconv": "dw", "maxpool": "maxpool", "avgpool": "avgpool"}[op]
    return Geom(kind, h, w, c, oh, ow, co, *kernel, *stride, tuple(padding))  # type: ignore[arg-type]


def pack_input(g: Geom, n: int) -> Geom | None:
    """A convolution on the network input with few channels, with ``ry`` x ``p`` taps packed into each word.

    The host writes the input (padded in x, and in y when ``ry > 1``) as
    ``X'[y, q, (ty * p + tx) * c + ch] = Xpad[y + ty, q + tx, ch]`` for ``ty < ry``, ``tx < p``; the convolution then
    has ``ceil(kh / ry) x ceil(kw / p)`` taps, ``ry`` rows and ``p`` columns apart (``Geom.dy``, ``Geom.dx``),
    instead of ``kh x kw`` taps that each fill only ``c`` of the ``N`` lanes (DS-CNN's first layer: 40 taps of one
    channel become 5 full words at N = 8). None when packing does not help.
    """
    if g.kind != "conv" or g.kw < 2 or 2 * g.c > n:
        return None
    p = min(n // g.c, g.kw)
    ry = min(g.kh, n // (g.c * p))
    ry = -(-g.kh // -(-g.kh // ry))  # the fewest rows per word for the same number of row taps
    pad = (0, 0) if ry > 1 else g.pad[:2]
    return replace(g, h=g.h + sum(g.pad[:2]) - sum(pad), w=g.w + g.pad[2] + g.pad[3], c=ry * p * g.c,
                   kh=-(-g.kh // ry), kw=-(-g.kw // p), dx=p, dy=ry, pad=(*pad, 0, 0), real_macs=g.macs())


def _live(n_in: int, k: int, s: int, lo: int, n_out: int) -> tuple[int, int]:
    """Taps [first, last) of one axis that read an in-bounds element for at least one output."""
    return max(0, lo - (n_out - 1) * s), min(k, lo + n_in)


def trim_dead_taps(g: Geom) -> Geom:
    """A convolution without the kernel rows and columns that only ever read padding (on a 1-pixel map a 5-tap
    kernel with padding 2 keeps its centre tap: a fifth of the weights to load and of the passes to run).

    Exact: a padding element equals the input zero point, whose product the folded bias cancels tap by tap, so a
    dropped tap contributed nothing; the code generator folds the bias over the kept taps only.
    """
    if g.kind not in ("conv", "dw") or (g.dx, g.dy) != (1, 1):
        return g
    (y0, y1), (x0, x1) = _live(g.h, g.kh, g.sh, g.pad[0], g.oh), _live(g.w, g.kw, g.sw, g.pad[2], g.ow)
    if (y0, y1, x0, x1) == (0, g.kh, 0, g.kw) or y0 >= y1 or x0 >= x1:
        return g
    kh, kw, top, left = y1 - y0, x1 - x0, g.pad[0] - y0, g.pad[2] - x0
    bottom, right = (g.oh - 1) * g.sh + kh - g.h - top, (g.ow - 1) * g.sw + kw - g.w - left
    return replace(g, kh=kh, kw=kw, pad=(top, bottom, left, right), ky0=y0, kx0=x0)


def accel_geom(g: Geom, reads_network_input: bool, n: int) -> Geom:
    """The geometry the code generator emits for a layer: the first layer packed (``pack_input``) when that pays,
    any other convolution without its dead taps (``trim_dead_taps``). The cost model calls this too."""
    if reads_network_input and (packed := pack_input(g, n)) is not None:
        return packed
    return trim_dead_taps(g)


def unsupported_reason(g: Geom, n: int) -> str | None:
    """Why the accelerator cannot run this layer at all (None if it can)."""
    if g.kind not in KINDS:
        return f"op kind {g.kind!r} has no accelerator mapping"
    if g.h > MAX_COUNT or g.w > MAX_COUNT:
        return f"input {g.h}x{g.w} exceeds the address generator's {MAX_COUNT}-pixel bounds"
    if g.sh > MAX_PIXEL_STEP or g.sw > MAX_PIXEL_STEP:
        return f"stride {g.sh}x{g.sw} exceeds the address generator's 4-bit steps (max {MAX_PIXEL_STEP})"
    row = g.sh * g.w * cpad(g.c, n)
    if row > MAX_STRIDE:
        return f"an input row of {row} bytes exceeds the 20-bit load stride"
    return None



def dense_like(g: Geom) -> bool:
    """The window covers the whole input (dense on a padded flatten, global pooling): taps are consecutive pixels."""
    return g.oh == 1 and g.ow == 1 and g.pad == (0, 0, 0, 0) and g.kh == g.h and g.kw == g.w and g.dx == 1


def tap_major(g: Geom) -> bool:
    """Depthwise / pooling weight tiles ordered (tap, channel tile): one COMPUTE per tap over all tiles of a group.

    Otherwise (a whole-input window, one output pixel) they are ordered (channel tile, tap) and one COMPUTE
    sweeps every tap, since one-row passes are cheaper than one instruction per tap.
    """
    return g.kind in ("dw", "maxpool", "avgpool") and not dense_like(g)


def windowed(g: Geom) -> bool:
    """A stride-1 depthwise or average pool summed in COMPUTE window mode (rtl_sim/ISA.md, COMPUTE ``win``).

    Array row r then sees the padded input r words back along a row, so one pass sums up to N horizontal taps of
    one kernel row on every channel (``kh x ceil(kw / N)`` tiles per channel tile) instead of one diagonal tile per tap.
    """
    return g.kind in ("dw", "avgpool") and (g.sh, g.sw, g.dx) == (1, 1, 1) and not dense_like(g)


def window_chunks(g: Geom, n: int) -> int:
    """Window-mode passes per kernel row: taps of a row beyond N need another pass."""
    return -(-g.kw // n)


def window_rows(g: Geom, n: int, ports: int) -> int:
    """Kernel rows one window-mode pass sums side by side: one per INP read port, as many ``kw``-tap rows as fit in
    the array's ``n`` rows (COMPUTE ``wg = kw``); 1 (one row, cut into chunks of N taps) if no two fit."""
    return max(1, min(ports, n // g.kw, g.kh))


def window_passes(g: Geom, n: int, rows: int) -> list[tuple[int, int, int]]:
    """(First kernel row read, first kernel row summed, chunk) of each window-mode pass summing ``rows`` rows.

    With ``rows`` > 1 the last pass starts early enough that every read port stays inside the loaded rows; the rows
    an earlier pass summed get zero weights there."""
    if rows == 1:
        return [(ky, ky, q) for ky in range(g.kh) for q in range(window_chunks(g, n))]
    return [(min(k, g.kh - rows), k, 0) for k in range(0, g.kh, rows)]


def transposed(g: Geom) -> Geom:
    """The same layer with rows and columns swapped: a shifted-window sweep then runs down the columns."""
    t, b, left, right = g.pad
    return replace(g, h=g.w, w=g.h, oh=g.ow, ow=g.oh, kh=g.kw, kw=g.kh, sh=g.sw, sw=g.sh, pad=(left, right, t, b))


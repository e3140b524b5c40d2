"""Tiling of a layer to the scratchpads: passes, groups, spatial blocks and reduction chunks.

A layer is cut into *passes* (slices of output-channel tiles whose parameter sets fit the PARAM scratchpad; a barrier
ends each pass), each pass into *groups* of output-channel tiles whose weights fit half of WGT, each group into
spatial *blocks* (output rows, or column slices of one row) whose inputs fit half of INP and whose accumulators fit
half of ACC, and each block into *steps* (chunks of the reduction when the weights of one output tile do not fit
half of WGT). Halves alternate so loads of step s+1 overlap compute of step s, and post-processing / stores of
block b overlap compute of block b+1 (see :mod:`tinycompile.fpga.emit`).

Pure Python over plain integers (the cost model tiles every layer the search proposes).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import accumulate

from tinycompile.accel.config import AccelConfig
from tinycompile.accel.isa import ADD_PARAM_SETS, MAX_COUNT, MAX_M, MAX_NT_STRIDE, field_max
from tinycompile.accel.layout import cpad
from tinycompile.fpga.geometry import Geom, dense_like, transposed, window_passes, window_rows, windowed

TARGET_BLOCKS = 4  # spatial blocks per group: enough for the double-buffered pipeline to fill
GROUP_BLOCKS = 8  # channel-group blocks wanted by a shifted-window layer (no halo: only instructions cost more)
MIN_BLOCK_PIXELS = 16  # below this the per-block instruction overhead outweighs the overlap
MAX_PSET = field_max("POSTPROC", "pset")  # parameter sets a pass may address
HALVES = 2  # INP, WGT, ACC and OUT are double-buffered: one half is filled or drained while the other is in use


def halves(p: AccelConfig) -> tuple[int, int, int, int]:
    """INP words, WGT tiles, ACC rows and OUT words of one half of each double-buffered scratchpad."""
    return p.inp_depth // HALVES, p.wgt_tiles // HALVES, p.acc_depth // HALVES, p.out_depth // HALVES


@dataclass(frozen=True)
class Block:
    """One spatial block of one group: output rows ``oy0..oy0+rows``, columns ``ox0..ox0+cols`` (add: flat pixels)."""

    g0: int
    gn: int
    oy0: int
    rows: int
    ox0: int
    cols: int

    @property
    def m(self) -> int:
        """Accumulator rows per output tile."""
        return self.rows * self.cols


@dataclass(frozen=True)
class Tiling:
    """How a layer is cut: passes of output tiles, groups, spatial blocks and reduction chunks."""

    passes: tuple[tuple[int, int], ...]  # (first tile, tiles) per pass
    blocks: tuple[tuple[Block, ...], ...]  # per pass
    kt: int  # reduction tiles per output tile (conv: taps x input blocks; dw/pool: taps; add: 1)
    kc: int  # reduction tiles per chunk
    cb: int  # input channel blocks
    shift: bool = False  # depthwise / pooling with stride 1: see ``_shift_plan``
    window: bool = False  # shifted rows summed by COMPUTE window mode: see ``windowed``
    wrows: int = 1  # kernel rows a window-mode pass sums side by side: see ``geometry.window_rows``
    transposed: bool = False  # the shifted rows run down the columns: see ``transposed``

    @property
    def chunks(self) -> int:
        """Reduction chunks per block."""
        return -(-self.kt // self.kc)


@dataclass
class Pass:
    """One pass of a tiling: output tiles ``t0 .. t0 + tn``, its blocks, and its steps (block, chunk) in order."""

    t0: int
    tn: int
    blocks: tuple[Block, ...]
    chunks: int
    steps: list[tuple[int, int]] = field(init=False)  # (block index, reduction chunk), block by block
    groups: list[int] = field(init=False)  # group index of every block (blocks of one group are consecutive)

    def __post_init__(self) -> None:
        """Number the steps and the groups once (the emitter asks per step)."""
        self.steps = [(bi, c) for bi in range(len(self.blocks)) for c in range(self.chunks)]
        self.groups = [k - 1 for k in accumulate(int(self.new_group(bi)) for bi in range(len(self.blocks)))]

    def new_group(self, bi: int) -> bool:
        """Block ``bi`` is the first of its group (its weights are not loaded yet)."""
        return bi == 0 or self.blocks[bi - 1].g0 != self.blocks[bi].g0


def tiling_passes(t: Tiling) -> list[Pass]:
    """The passes of a tiling, each with its blocks."""
    return [Pass(t0, tn, blocks, t.chunks) for (t0, tn), blocks in zip(t.passes, t.blocks)]


def _balanced(total: int, size: int) -> int:
    """The size of equal pieces covering ``total`` in as many pieces as ``size`` needs (no small last piece)."""
    return -(-total // -(-total // size))


def _spatial(g: Geom, mmax: int, first: int = 0) -> list[tuple[int, int, int, int]]:
    """Blocks (oy0, rows, ox0, cols) covering the output, each at most ``mmax`` pixels; with whole rows, the first
    block only as many rows as ``first`` pixels need, where that is fewer (the array starts sooner)."""
    if g.kind == "add":  # elementwise: blocks are flat pixel ranges
        total = g.h * g.w
        size = _balanced(total, min(mmax, MAX_COUNT, max(MIN_BLOCK_PIXELS, -(-total // TARGET_BLOCKS))))
        return [(0, 1, p, min(size, total - p)) for p in range(0, total, size)]
    oh, ow = g.oh, g.ow
    if ow <= min(mmax, MAX_COUNT) and oh > 1:  # whole output rows
        rmax = min(mmax // ow, MAX_COUNT)
        r = _balanced(oh, min(rmax, max(-(-oh // TARGET_BLOCKS), -(-MIN_BLOCK_PIXELS // ow))))
        r0 = min(r, max(1, -(-first // ow))) if first else r
        rest = _balanced(oh - r0, r) if r0 < oh else r
        return [(0, r0, 0, ow)] + [(y, min(rest, oh - y), 0, ow) for y in range(r0, oh, rest)]
    cols = _balanced(ow, min(mmax, MAX_COUNT, max(MIN_BLOCK_PIXELS, -(-ow // TARGET_BLOCKS))))  # slices of a row
    return [(y, 1, x, min(cols, ow - x)) for y in range(oh) for x in range(0, ow, cols)]


def _shift_plan(g: Geom, p: AccelConfig, gn: int, tn: int) -> tuple[int, int] | None:
    """(Channel tiles per group, output rows per block) for the shifted-window scheme; None if it does not apply or fit.

    A stride-1 depthwise or pooling layer loads each block's padded input rows once (``Wp = W + left + right``
    words per row, per channel tile) instead of once per tap; tap (ky, kx) is then the same buffer read from offset
    ``ky * Wp + kx``. Each block computes ``rows * Wp`` accumulator rows, of which ``kw - 1`` per row are spare and
    never stored. Nine times less input traffic for a 3x3 window. The pipeline's blocks are cut by channel groups
    before rows (``gn`` at most): a block of rows reloads ``kh - 1`` halo rows, a group of channels nothing.
    """
    if g.kind not in ("dw", "maxpool", "avgpool") or (g.sh, g.sw, g.dx) != (1, 1, 1) or dense_like(g):
        return None
    wp = g.w + g.pad[2] + g.pad[3]
    half_inp, _, half_acc, half_out = halves(p)

    def rmax(k: int) -> int:  # rows of a block of k channel tiles that fit INP, ACC, OUT and the fields
        return min(((half_inp - g.kw) // k) // wp - (g.kh - 1), half_acc // (k * wp), half_out // (k * wp),
                   MAX_NT_STRIDE // wp - (g.kh - 1), MAX_COUNT - g.kh)  # a plane is the inp_nt_stride

    if wp > MAX_COUNT:
        return None
    gn = min(gn, -(-tn // GROUP_BLOCKS))
    gn = next((k for k in range(gn, 0, -1) if rmax(k) >= g.oh), gn)  # whole maps if a smaller group allows
    if rmax(gn) < 1:
        return None
    want = -(-TARGET_BLOCKS // -(-tn // gn))  # row blocks still wanted for the pipeline to fill
    r = min(rmax(gn), g.oh, max(-(-g.oh // want), -(-MIN_BLOCK_PIXELS // wp)))
    return gn, _balanced(g.oh, r)


def sweep_geom(g: Geom, t: Tiling) -> Geom:
    """The geometry a shifted-window tiling's blocks and taps refer to (rows and columns swapped if transposed)."""
    return transposed(g) if t.transposed else g


def _compute_rows(g: Geom, t: Tiling) -> int:
    """Rows the array is issued for a shifted-window tiling (spare columns included): the cost to minimise."""
    wp = g.w + g.pad[2] + g.pad[3]
    return sum(t.kt * b.gn * b.rows * wp for blocks in t.blocks for b in blocks)


def plan_layer(g: Geom, p: AccelConfig) -> Tiling:
    """Cut one layer to the scratchpads (always succeeds for a supported layer: big layers get more pieces).

    A window-mode layer sweeps rows or columns, whichever issues fewer array rows (DS-CNN's 25 x 5 maps: columns).
    """
    if windowed(g):
        options = [(gg, replace(t, transposed=tr)) for tr, gg in ((False, g), (True, transposed(g)))
                   if (t := _plan(gg, p, True)).shift]
        if options:
            return min(options, key=lambda o: _compute_rows(*o))[1]
    return _plan(g, p, False)


def _reduction(g: Geom, p: AccelConfig, wrows: int | None) -> tuple[int, int, int]:
    """(Output tiles per pass, reduction tiles per output tile, reduction tiles per chunk) of a layer (``wrows``: the
    kernel rows a window-mode pass sums, None outside window mode).

    A pass is bounded by the parameter sets (an add uses three per tile and keeps both inputs and both accumulators
    of a block, so its whole pass must fit one half of each scratchpad); a chunk by half of WGT and INP and by one
    12-bit loop count of weight rows.
    """
    n = p.n
    half_inp, half_wgt, half_acc, half_out = halves(p)
    if g.kind == "add":  # both inputs (and both accumulators) of a tile in one half
        return max(1, min(p.param_sets // ADD_PARAM_SETS, half_inp // 2, half_acc // 2, half_out, half_wgt)), 1, 1
    if g.kind == "conv":
        kt = g.taps * cpad(g.c, n) // n
    else:
        kt = g.taps if wrows is None else len(window_passes(g, n, wrows))
    return max(1, min(p.param_sets, MAX_PSET)), kt, min(kt, half_wgt, half_inp, MAX_COUNT // n)


def _group(g: Geom, p: AccelConfig, tn: int, kt: int, kc: int) -> tuple[int, int]:
    """(Output tiles per group, accumulator rows per block at most) of a pass of ``tn`` tiles.

    A convolution's input block serves every tile of its group; a depthwise or pooling block holds one plane per
    channel tile, so the group bounds its input too. A chunked reduction keeps one tile per group.
    """
    n = p.n
    half_inp, half_wgt, half_acc, half_out = halves(p)
    if g.kind == "add":  # both inputs and both accumulators of every tile of the pass
        return tn, min(half_inp // (2 * tn), half_acc // (2 * tn), half_out // tn)
    if kc < kt:
        gn = 1
    elif g.kind == "conv":
        gn = min(tn, half_wgt // kc, half_acc, half_out)
    else:
        gn = min(tn, half_wgt // kc, half_inp // kc, half_acc, half_out, MAX_COUNT // n)
    kin = kc * (gn if g.kind != "conv" else 1)
    mmax = min(half_inp // kin, half_acc // gn, half_out // gn, MAX_M)
    if g.kind != "conv":
        mmax = min(mmax, MAX_NT_STRIDE // kc)  # inp_nt_stride = kc * m
    return gn, mmax


def _plan(g: Geom, p: AccelConfig, window: bool) -> Tiling:
    """The tiling of ``g`` with shifted windows where they fit (``window``: the shifted rows sum in window mode)."""
    wrows = window_rows(g, p.n, p.inp_ports) if window else None
    per_pass, kt, kc = _reduction(g, p, wrows)
    nts = cpad(g.co, p.n) // p.n
    passes = tuple((t0, min(per_pass, nts - t0)) for t0 in range(0, nts, per_pass))
    blocks = []
    shift = False
    for t0, tn in passes:
        gn, mmax = _group(g, p, tn, kt, kc)
        sp = _shift_plan(g, p, gn, tn) if g.kind != "add" and kc == kt else None
        if t0 == 0:
            shift = sp is not None  # decided on the first (largest) pass; later passes have no more tiles per group
        if shift and sp is not None:
            gn, rows = sp
            spatial = [(y, min(rows, g.oh - y), 0, g.ow) for y in range(0, g.oh, rows)]
        else:
            # a convolution's first block computes tile by tile as each tile's weights arrive: from 1.5 N pixels
            # on, a tile's rows outlast the next tile's weights (kt x N words), with room for the port's other users
            fill = 3 * p.n // 2 if g.kind == "conv" and t0 == 0 and kc == kt and gn > 1 else 0
            spatial = _spatial(g, mmax, fill)
        blocks.append(tuple(Block(g0, min(gn, t0 + tn - g0), y, r, x, c)
                            for g0 in range(t0, t0 + tn, gn) for (y, r, x, c) in spatial))
    return Tiling(passes, tuple(blocks), kt, kc, cpad(g.c, p.n) // p.n, shift, window and shift,
                  wrows if wrows and shift else 1)

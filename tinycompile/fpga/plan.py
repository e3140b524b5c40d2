"""Layer plans for the accelerator: geometry of each layer, its tiling to the scratchpads, and its instruction stream.

Pure Python (no numpy, torch or TVM), so the cost model can replay exactly the schedule the code generator emits:
``emit_layer`` takes byte addresses as plain integers and returns the instructions, and both
:mod:`tinycompile.fpga.codegen` (real addresses) and :mod:`tinycompile.fpga.schedule` (any addresses) call it.

A layer is cut into *passes* (slices of output-channel tiles whose parameter sets fit the PARAM scratchpad; a barrier
ends each pass), each pass into *groups* of output-channel tiles whose weights fit half of WGT, each group into
spatial *blocks* (output rows, or column slices of one row) whose inputs fit half of INP and whose accumulators fit
half of ACC, and each block into *steps* (chunks of the reduction when the weights of one output tile do not fit
half of WGT). Halves alternate so loads of step s+1 overlap compute of step s, and post-processing / stores of
block b overlap compute of block b+1 (dependency tokens as in ``rtl_sim/ISA.md`` section 3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from tinycompile.accel.assembler import Instr
from tinycompile.accel.config import scratchpad_depths

KINDS = ("conv", "dw", "maxpool", "avgpool", "add")
TARGET_BLOCKS = 4  # spatial blocks per group: enough for the double-buffered pipeline to fill
GROUP_BLOCKS = 8  # channel-group blocks wanted by a shifted-window layer (no halo: only instructions cost more)
MIN_BLOCK_PIXELS = 16  # below this the per-block instruction overhead outweighs the overlap
MAX_COUNT = 4095  # 12-bit loop counts and bounds of the address generator
MAX_STRIDE = (1 << 19) - 1  # 20-bit signed byte strides
MAX_PIXEL_STEP = 15  # 4-bit coordinate steps
IDENTITY_MULT = (1 << 31) - 1  # with shift 0: the identity on int8-range values (max pooling)


@dataclass(frozen=True)
class AccelParams:
    """Sizes of one accelerator configuration (must equal the RTL parameters the program runs on)."""

    n: int
    inp_depth: int
    wgt_tiles: int
    acc_depth: int
    out_depth: int
    param_sets: int

    @classmethod
    def for_array(cls, n: int, accelerator: Mapping[str, Any] | None = None) -> AccelParams:
        """Sizes for an ``n`` x ``n`` array from a target's ``accelerator:`` section (bytes kept equal across N; keys
        it leaves out, or all with None, are the shipped fpga target's)."""
        return cls(n=n, **scratchpad_depths(n, accelerator))


def cpad(c: int, n: int) -> int:
    """Channels rounded up to a multiple of ``n`` (activations are stored with this many bytes per pixel)."""
    return -(-c // n) * n


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
    transposed: bool = False  # the shifted rows run down the columns: see ``transposed``

    @property
    def chunks(self) -> int:
        """Reduction chunks per block."""
        return -(-self.kt // self.kc)


def _spatial(g: Geom, mmax: int) -> list[tuple[int, int, int, int]]:
    """Blocks (oy0, rows, ox0, cols) covering the output, each at most ``mmax`` pixels."""
    if g.kind == "add":  # elementwise: blocks are flat pixel ranges
        total = g.h * g.w
        size = min(mmax, MAX_COUNT, max(MIN_BLOCK_PIXELS, -(-total // TARGET_BLOCKS)))
        nb = -(-total // size)
        size = -(-total // nb)
        return [(0, 1, p, min(size, total - p)) for p in range(0, total, size)]
    oh, ow = g.oh, g.ow
    if ow <= min(mmax, MAX_COUNT) and oh > 1:
        rmax = min(mmax // ow, MAX_COUNT)
        r = min(rmax, max(-(-oh // TARGET_BLOCKS), -(-MIN_BLOCK_PIXELS // ow)))
        nb = -(-oh // r)
        r = -(-oh // nb)
        return [(y, min(r, oh - y), 0, ow) for y in range(0, oh, r)]
    cmax = min(mmax, MAX_COUNT)
    cols = min(cmax, max(MIN_BLOCK_PIXELS, -(-ow // TARGET_BLOCKS)))
    nb = -(-ow // cols)
    cols = -(-ow // nb)
    return [(y, 1, x, min(cols, ow - x)) for y in range(oh) for x in range(0, ow, cols)]


def _shift_plan(g: Geom, p: AccelParams, gn: int, tn: int) -> tuple[int, int] | None:
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
    half_inp, half_acc = p.inp_depth // 2, p.acc_depth // 2

    def rmax(k: int) -> int:  # rows of a block of k channel tiles that fit INP, ACC, OUT and the fields
        return min(((half_inp - g.kw) // k) // wp - (g.kh - 1), half_acc // (k * wp), p.out_depth // (k * wp),
                   ((1 << 16) - 1) // wp - (g.kh - 1), MAX_COUNT - g.kh)

    if wp > MAX_COUNT:
        return None
    gn = min(gn, -(-tn // GROUP_BLOCKS))
    gn = next((k for k in range(gn, 0, -1) if rmax(k) >= g.oh), gn)  # whole maps if a smaller group allows
    if rmax(gn) < 1:
        return None
    want = -(-TARGET_BLOCKS // -(-tn // gn))  # row blocks still wanted for the pipeline to fill
    r = min(rmax(gn), g.oh, max(-(-g.oh // want), -(-MIN_BLOCK_PIXELS // wp)))
    return gn, -(-g.oh // -(-g.oh // r))  # balanced blocks


def windowed(g: Geom) -> bool:
    """A stride-1 depthwise or average pool summed in COMPUTE window mode (rtl_sim/ISA.md, COMPUTE ``win``).

    Array row r then sees the padded input r words back along a row, so one pass sums up to N horizontal taps of
    one kernel row on every channel (``kh x ceil(kw / N)`` tiles per channel tile) instead of one diagonal tile per tap.
    """
    return g.kind in ("dw", "avgpool") and (g.sh, g.sw, g.dx) == (1, 1, 1) and not dense_like(g)


def window_chunks(g: Geom, n: int) -> int:
    """Window-mode passes per kernel row: taps of a row beyond N need another pass."""
    return -(-g.kw // n)


def transposed(g: Geom) -> Geom:
    """The same layer with rows and columns swapped: a shifted-window sweep then runs down the columns."""
    t, b, left, right = g.pad
    return replace(g, h=g.w, w=g.h, oh=g.ow, ow=g.oh, kh=g.kw, kw=g.kh, sh=g.sw, sw=g.sh, pad=(left, right, t, b))


def sweep_geom(g: Geom, t: Tiling) -> Geom:
    """The geometry a shifted-window tiling's blocks and taps refer to (rows and columns swapped if transposed)."""
    return transposed(g) if t.transposed else g


def _compute_rows(g: Geom, t: Tiling) -> int:
    """Rows the array is issued for a shifted-window tiling (spare columns included): the cost to minimise."""
    wp = g.w + g.pad[2] + g.pad[3]
    return sum(t.kt * b.gn * b.rows * wp for blocks in t.blocks for b in blocks)


def plan_layer(g: Geom, p: AccelParams) -> Tiling:
    """Cut one layer to the scratchpads (always succeeds for a supported layer: big layers get more pieces).

    A window-mode layer sweeps rows or columns, whichever issues fewer array rows (DS-CNN's 25 x 5 maps: columns).
    """
    if windowed(g):
        options = [(gg, replace(t, transposed=tr)) for tr, gg in ((False, g), (True, transposed(g)))
                   if (t := _plan(gg, p, True)).shift]
        if options:
            return min(options, key=lambda o: _compute_rows(*o))[1]
    return _plan(g, p, False)


def _plan(g: Geom, p: AccelParams, window: bool) -> Tiling:
    n = p.n
    half_inp, half_wgt, half_acc = p.inp_depth // 2, p.wgt_tiles // 2, p.acc_depth // 2
    nts = cpad(g.co, n) // n
    cb = cpad(g.c, n) // n
    kmax = min(half_wgt, half_inp, MAX_COUNT // n)  # a chunk's weight rows must fit one 12-bit loop count
    if g.kind == "add":
        per_pass = max(1, min(p.param_sets // 3, half_inp // 2, half_acc // 2, p.out_depth, half_wgt))
        kt = kc = 1
    else:
        per_pass = max(1, min(p.param_sets, MAX_COUNT))
        kt = g.taps * cb if g.kind == "conv" else g.kh * window_chunks(g, n) if window else g.taps
        kc = min(kt, kmax)
    passes = tuple((t0, min(per_pass, nts - t0)) for t0 in range(0, nts, per_pass))
    blocks = []
    shift = False
    for t0, tn in passes:
        if g.kind == "add":
            gn = tn
            mmax = min(half_inp // (2 * gn), half_acc // (2 * gn), p.out_depth // gn)
        else:
            if kc < kt:
                gn = 1
            elif g.kind == "conv":
                gn = min(tn, half_wgt // kc, half_acc, p.out_depth)
            else:
                gn = min(tn, half_wgt // kc, half_inp // kc, half_acc, p.out_depth, MAX_COUNT // n)
            kin = kc * (gn if g.kind != "conv" else 1)
            mmax = min(half_inp // kin, half_acc // gn, p.out_depth // gn, (1 << 16) - 1)
            if g.kind != "conv":
                mmax = min(mmax, ((1 << 16) - 1) // kc)  # inp_nt_stride = kc * m is a 16-bit field
        sp = _shift_plan(g, p, gn, tn) if g.kind != "add" and kc == kt else None
        if t0 == 0:
            shift = sp is not None  # decided on the first (largest) pass; later passes have no more tiles per group
        if shift and sp is not None:
            gn, rows = sp
            spatial = [(y, min(rows, g.oh - y), 0, g.ow) for y in range(0, g.oh, rows)]
        else:
            spatial = _spatial(g, mmax)
        blocks.append(tuple(Block(g0, min(gn, t0 + tn - g0), y, r, x, c)
                            for g0 in range(t0, t0 + tn, gn) for (y, r, x, c) in spatial))
    return Tiling(passes, tuple(blocks), kt, kc, cb, shift, window and shift)


@dataclass(frozen=True)
class LayerAddrs:
    """Byte addresses of one layer's tensors in external memory."""

    x: int
    out: int
    wgt: int = 0
    prm: int = 0
    b: int = 0  # second input of an add


def contiguous(words: int, n: int) -> dict[str, int]:
    """Pattern fields for ``words`` consecutive N-byte words (over two loops when one 12-bit count is too few)."""
    if words <= MAX_COUNT:
        return {"n1": 1, "n0": words, "d0": n}
    k = -(-words // MAX_COUNT)
    while words % k:
        k += 1
    return {"n1": k, "d1": (words // k) * n, "n0": words // k, "d0": n}


def dense_like(g: Geom) -> bool:
    """The window covers the whole input (dense on a padded flatten, global pooling): taps are consecutive pixels."""
    return g.oh == 1 and g.ow == 1 and g.pad == (0, 0, 0, 0) and g.kh == g.h and g.kw == g.w and g.dx == 1


def tap_major(g: Geom) -> bool:
    """Depthwise / pooling weight tiles ordered (tap, channel tile): one COMPUTE per tap over all tiles of a group.

    Otherwise (a whole-input window, one output pixel) they are ordered (channel tile, tap) and one COMPUTE
    sweeps every tap, since one-row passes are cheaper than one instruction per tap.
    """
    return g.kind in ("dw", "maxpool", "avgpool") and not dense_like(g)


def emit_layer(g: Geom, t: Tiling, p: AccelParams, a: LayerAddrs, zp_in: int, zp_out: int, lo: int, hi: int,
               zp_b: int = 0, lshift: int = 0, single: bool = False) -> list[Instr]:
    """The instruction stream of one layer (every pass ends with a barrier, so layers can be cut between).

    ``single``: requantize with single rounding (POSTPROC ``single``, TFLite's fully connected); same timing.

    Program order per step s: COMPUTE(s), then the post-processing and store of the block that finished at
    step s-1, then the loads of step s+1. Units fetch in program order from queues 8 deep, so a compute placed
    before the next step's (possibly many) loads is dispatched in time to overlap them.
    """
    n = p.n
    half_inp, half_wgt, half_acc = p.inp_depth // 2, p.wgt_tiles // 2, p.acc_depth // 2
    cs_in, cs_out = cpad(g.c, n), cpad(g.co, n)
    kt, kc, cb = t.kt, t.kc, t.cb
    chunks = t.chunks
    nts = cs_out // n
    pool = g.kind in ("maxpool", "avgpool")  # identity tiles: the same for every group and chunk
    fixed = pool and not t.window  # one identity tile per channel tile serves every tap (COMPUTE wfix)
    tap_tiles = 0 if fixed else 1  # weight tiles advanced per tap, in units of the group's tiles
    per_tap = tap_major(g)
    whole = dense_like(g)
    pad_byte = -128 if g.kind == "maxpool" else zp_in
    # Shifted-window scheme: its sweep geometry, padded row, spare leading columns, INP words kept before the planes
    gs = sweep_geom(g, t)
    wp = gs.w + gs.pad[2] + gs.pad[3]
    spare = gs.kw - 1 if t.window else 0  # window mode: a row's first kw - 1 outputs see the previous row
    lead = max(0, gs.kw - n) if t.window else 0  # the first chunk of a wide row starts before the plane
    # byte steps along the sweep's rows and columns, in the input and the output (NHWC either way)
    in_row, in_col = (cs_in, g.w * cs_in) if t.transposed else (g.w * cs_in, cs_in)
    out_row, out_col = (cs_out, g.ow * cs_out) if t.transposed else (g.ow * cs_out, cs_out)
    prog: list[Instr] = []

    def emit(op: str, **f: int) -> None:
        prog.append(Instr(op, f))

    rounding = {"single": 1} if single and g.kind != "add" else {}  # add mode always rounds twice

    def sweep_coords(row0: int, col0: int, h: int, w: int) -> dict[str, int]:
        """AGU coordinates of a sweep: loop 1 steps the sweep's rows, loop 0 its columns (from ``row0, col0``)."""
        if t.transposed:
            return {"x0": row0, "y0": col0, "sx1": 1, "sy0": 1, "h": h, "w": w}
        return {"y0": row0, "x0": col0, "sy1": 1, "sx0": 1, "h": h, "w": w}

    def rows_of(blk: Block) -> int:
        """Accumulator rows per output tile of a block (shifted windows also compute the kw - 1 spare columns)."""
        return blk.rows * wp if t.shift else blk.m

    def window_loads(blk: Block, k0: int, k1: int, ib: int) -> list[dict[str, int]]:
        m = blk.m
        out = []
        if t.shift:  # the block's padded input rows, once, one plane per channel tile
            r0, c0 = blk.oy0 - gs.pad[0], -gs.pad[2]
            base = (a.x + r0 * in_row + c0 * in_col + blk.g0 * n) % (1 << 32)
            out.append({"sp": 0, "sp_base": ib + lead, "base": base,
                        "n2": blk.gn, "d2": n, "n1": blk.rows + gs.kh - 1, "d1": in_row, "n0": wp, "d0": in_col,
                        "pad": pad_byte, **sweep_coords(r0, c0, g.h, g.w)})
            return out
        if g.kind == "conv":
            tap = k0 // cb
            while tap * cb < k1:
                lo_k, hi_k = max(k0, tap * cb), min(k1, (tap + 1) * cb)
                if whole and lo_k == tap * cb and hi_k == (tap + 1) * cb:
                    run = 1  # whole taps of a whole-input window are consecutive pixels: one load for the run
                    while run < MAX_COUNT and (tap + run + 1) * cb <= k1:
                        run += 1
                    out.append({"sp": 0, "sp_base": ib + (lo_k - k0), "base": a.x + tap * cs_in,
                                    "n2": 1, "n1": run, "d1": cs_in, "n0": cb, "d0": n})
                    tap += run
                    continue
                ky, kx = divmod(tap, g.kw)
                y0, x0 = blk.oy0 * g.sh + ky * g.dy - g.pad[0], blk.ox0 * g.sw + kx * g.dx - g.pad[2]
                out.append({"sp": 0, "sp_base": ib + (lo_k - k0) * m,
                                "base": (a.x + (y0 * g.w + x0) * cs_in + (lo_k - tap * cb) * n) % (1 << 32),
                                "n2": hi_k - lo_k, "d2": n, "n1": blk.rows, "d1": g.sh * g.w * cs_in, "n0": blk.cols,
                                "d0": g.sw * cs_in, "y0": y0, "x0": x0, "sy1": g.sh, "sx0": g.sw, "h": g.h, "w": g.w, "pad": pad_byte})
                tap += 1
            return out
        if whole:  # one output pixel: INP word (tile j, tap k) at j * kc + k, all tiles and taps in one load
            out.append({"sp": 0, "sp_base": ib, "base": a.x + k0 * cs_in + blk.g0 * n, "n2": blk.gn, "d2": n,
                            "n1": 1, "n0": k1 - k0, "d0": cs_in})
            return out
        for tap in range(k0, k1):  # one plane per tap holding every channel tile of the group: (tap, tile, pixel)
            ky, kx = divmod(tap, g.kw)
            y0, x0 = blk.oy0 * g.sh + ky - g.pad[0], blk.ox0 * g.sw + kx - g.pad[2]
            out.append({"sp": 0, "sp_base": ib + (tap - k0) * blk.gn * m,
                            "base": (a.x + (y0 * g.w + x0) * cs_in + blk.g0 * n) % (1 << 32),
                            "n2": blk.gn, "d2": n, "n1": blk.rows, "d1": g.sh * g.w * cs_in, "n0": blk.cols, "d0": g.sw * cs_in,
                            "y0": y0, "x0": x0, "sy1": g.sh, "sx0": g.sw, "h": g.h, "w": g.w, "pad": pad_byte})
        return out

    def weight_load(blk: Block, k0: int, k1: int, sp_tile: int) -> dict[str, int]:
        if per_tap:  # memory (tap, tile): for each tap of the chunk the group's tiles
            return {"sp": 1, "sp_base": sp_tile * n, "base": a.wgt + (k0 * nts + blk.g0) * n * n,
                        "n2": 1, "n1": k1 - k0, "d1": nts * n * n, "n0": blk.gn * n, "d0": n}
        if k0 == 0 and k1 == kt:  # memory (tile, k): the group's tiles are contiguous
            return dict(sp=1, sp_base=sp_tile * n, base=a.wgt + blk.g0 * kt * n * n, **contiguous(blk.gn * kt * n, n))
        return {"sp": 1, "sp_base": sp_tile * n, "base": a.wgt + (blk.g0 * kt + k0) * n * n,
                    "n2": blk.gn, "d2": kt * n * n, "n1": 1, "n0": (k1 - k0) * n, "d0": n}

    def emit_pass(t0: int, tn: int, blocks: tuple[Block, ...]) -> None:
        # Steps: (block index, chunk); loads of a step fill INP half s % 2.
        steps = [(bi, c) for bi in range(len(blocks)) for c in range(chunks)]
        group_of = []
        gi = -1
        for bi, blk in enumerate(blocks):
            if bi == 0 or blocks[bi - 1].g0 != blk.g0:
                gi += 1
            group_of.append(gi)

        def wgt_half(s: int) -> int:
            bi = steps[s][0]
            if pool or g.kind == "add":
                return 0  # loaded once per pass, never overwritten
            return (s % 2) * half_wgt if chunks > 1 else (group_of[bi] % 2) * half_wgt

        def split_fill(s: int) -> bool:
            """The pipeline's first convolution step: weights loaded and computed per output tile, so the array
            starts after one tile's weights instead of the whole group's (each piece pushes its own token)."""
            return s == 0 and g.kind == "conv" and chunks == 1 and blocks[0].gn > 1

        def loads(s: int) -> None:
            bi, c = steps[s]
            blk = blocks[bi]
            ib = (s % 2) * half_inp
            k0, k1 = c * kc, min(kt, (c + 1) * kc)
            lds: list[dict[str, int]] = []
            words = 36 if g.kind == "add" else 12  # parameter words per output tile
            params = dict(sp=2, sp_base=0, base=a.prm + t0 * words * n, **contiguous(words * tn, n))
            if split_fill(s):  # input, then one weight piece per output tile; parameters before the last piece
                lds = window_loads(blk, k0, k1, ib)
                pieces = [weight_load(replace(blk, g0=blk.g0 + j, gn=1), k0, k1, wgt_half(s) + j * (k1 - k0))
                          for j in range(blk.gn)]
                order = [(ld, 0) for ld in lds] + [(ld, 1) for ld in pieces[:-1]] + [(params, 0), (pieces[-1], 1)]
                for ld, push in order:
                    emit("LOAD", push_next=push, **ld)
                return
            if s == 0:
                lds.append(params)
            if g.kind == "add":
                if s == 0:  # identity tiles, one per output tile of the pass
                    lds.append(dict(sp=1, sp_base=0, base=a.wgt, **contiguous(tn * n, n)))
                for i, src in enumerate((a.x, a.b)):
                    lds.append({"sp": 0, "sp_base": ib + i * blk.gn * blk.m, "base": src + blk.ox0 * cs_in + blk.g0 * n,
                                    "n2": blk.gn, "d2": n, "n1": 1, "n0": blk.m, "d0": cs_in})
            else:
                lds.extend(window_loads(blk, k0, k1, ib))
                if pool:
                    if s == 0:  # the largest group (and chunk) of identity tiles serves every step
                        big = max(blocks, key=lambda b: b.gn)
                        lds.append(dict(sp=1, sp_base=0, base=a.wgt + big.g0 * n * n, **contiguous(big.gn * n, n))
                                   if fixed else weight_load(big, 0, min(kt, kc), 0))
                elif chunks > 1 or c == 0 and (bi == 0 or blocks[bi - 1].g0 != blk.g0):
                    lds.append(weight_load(blk, k0, k1, wgt_half(s)))
            for i, ld in enumerate(lds):
                emit("LOAD", pop_next=int(i == 0 and s >= 2), push_next=int(i == len(lds) - 1), **ld)

        def compute(s: int) -> None:
            bi, c = steps[s]
            blk = blocks[bi]
            m, ib, ab = rows_of(blk), (s % 2) * half_inp, (bi % 2) * half_acc
            k0, k1 = c * kc, min(kt, (c + 1) * kc)
            first_wait = int(c == 0 and bi >= 2)  # the accumulator half's previous block must be stored
            last = int(c == chunks - 1)
            wb = wgt_half(s)
            if g.kind == "add":
                parts = [{"inp_base": ib + i * blk.gn * m, "wgt_base": 0, "acc_base": ab + i * blk.gn * m, "kt": 1,
                              "inp_nt_stride": m, "init": 1} for i in range(2)]
            elif t.window:  # kernel row ky, taps q*N .. hi-1: array row r holds tap hi-1-r (ISA.md, window mode)
                plane = (blk.rows + gs.kh - 1) * wp
                qn = window_chunks(gs, n)
                parts = [{"inp_base": ib + lead + (k // qn) * wp + min(gs.kw, (k % qn + 1) * n) - gs.kw,
                          "wgt_base": wb + k * blk.gn, "acc_base": ab, "kt": 1, "inp_nt_stride": plane,
                          "init": int(k == 0), "win": 1} for k in range(k0, k1)]
            elif t.shift:  # tap (ky, kx) reads the block's rows from offset ky * Wp + kx
                plane = (blk.rows + gs.kh - 1) * wp
                parts = [{"inp_base": ib + (tap // gs.kw) * wp + tap % gs.kw, "wgt_base": wb + tap * tap_tiles * blk.gn,
                          "acc_base": ab, "kt": 1, "inp_nt_stride": plane, "init": int(tap == 0)}
                         for tap in range(k0, k1)]
            elif per_tap:
                parts = [{"inp_base": ib + kk * blk.gn * m, "wgt_base": wb + kk * tap_tiles * blk.gn, "acc_base": ab,
                          "kt": 1, "inp_nt_stride": m, "init": int(c == 0 and kk == 0)} for kk in range(k1 - k0)]
            else:
                parts = [{"inp_base": ib, "wgt_base": wb, "acc_base": ab, "kt": k1 - k0, "init": int(c == 0),
                          "wfix": int(fixed), "inp_nt_stride": (k1 - k0) * m if g.kind != "conv" else 0}]
            nt = blk.gn
            if split_fill(s):  # one part per output tile, each waiting for its weight piece
                parts = [{**parts[0], "wgt_base": wb + j * (k1 - k0), "acc_base": ab + j * m} for j in range(nt)]
                nt = 1
            for i, f in enumerate(parts):
                end = i == len(parts) - 1
                emit("COMPUTE", pop_prev=int(i == 0 or split_fill(s)), pop_next=first_wait if i == 0 else 0,
                     push_prev=int(end), push_next=last if end else 0, max=int(g.kind == "maxpool"), m=m, nt=nt, **f)

        def store(bi: int) -> None:
            blk = blocks[bi]
            m, ab = rows_of(blk), (bi % 2) * half_acc
            for j in range(blk.gn):
                if g.kind == "add":
                    emit("POSTPROC", pop_prev=int(j == 0), add=1, acc_a=ab + j * m, acc_b=ab + (blk.gn + j) * m,
                         out_base=j * m, rows=m, pset=3 * (blk.g0 - t0 + j), zp=zp_out, lo=lo, hi=hi, lshift=lshift)
                else:
                    emit("POSTPROC", pop_prev=int(j == 0), acc_a=ab + j * m, out_base=j * m, rows=m,
                         pset=blk.g0 - t0 + j, zp=zp_out, lo=lo, hi=hi, **rounding)
            if g.kind == "add":
                emit("STORE", push_prev=1, sp_base=0, base=a.out + blk.ox0 * cs_out + blk.g0 * n, n2=blk.gn, d2=n,
                     n1=1, n0=m, d0=cs_out)
            elif t.shift:  # the spare columns (before the first or after the last output) are out of bounds: skipped
                bounds = {"y0": -spare, "sy0": 1, "h": g.oh} if t.transposed else {"x0": -spare, "sx0": 1, "w": g.ow}
                base = (a.out + blk.oy0 * out_row - spare * out_col + blk.g0 * n) % (1 << 32)
                emit("STORE", push_prev=1, sp_base=0, base=base, n2=blk.gn, d2=n, n1=blk.rows, d1=out_row, n0=wp, d0=out_col, **bounds)
            else:
                emit("STORE", push_prev=1, sp_base=0,
                     base=a.out + (blk.oy0 * g.ow + blk.ox0) * cs_out + blk.g0 * n, n2=blk.gn, d2=n,
                     n1=blk.rows, d1=g.ow * cs_out, n0=blk.cols, d0=cs_out)

        loads(0)
        for s, (bi, c) in enumerate(steps):
            compute(s)
            if s >= 1 and steps[s - 1][1] == chunks - 1:
                store(steps[s - 1][0])
            if s + 1 < len(steps):
                loads(s + 1)
        store(steps[-1][0])
        # Barrier: wait for the last stores, drain leftover tokens, so the next pass or layer starts clean.
        nb = len(blocks)
        for _ in range(min(nb, 2)):
            emit("SYNC", queue=1, pop_next=1)
        emit("SYNC", queue=1, push_prev=1)
        for _ in range(min(len(steps), 2) + 1):
            emit("SYNC", queue=0, pop_next=1)

    for (t0, tn), blocks in zip(t.passes, t.blocks):
        emit_pass(t0, tn, blocks)
    return prog

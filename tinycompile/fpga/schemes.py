"""The COMPUTE schemes of the accelerator: for one step of a layer, what it loads into INP, the COMPUTE instructions
that reduce it, and how a block's accumulators are post-processed and stored.

One class per scheme (rtl_sim/ISA.md section 5 describes the layouts):

* :class:`ConvScheme` - a convolution or dense layer: one COMPUTE over the step's reduction tiles (a packed network
  input is a convolution whose taps lie ``dy`` rows and ``dx`` columns apart);
* :class:`TapScheme` - a strided depthwise or pooling layer: one diagonal tile and one INP plane per tap (pools: the
  same identity tile for every tap);
* :class:`WholeMapScheme` - a window over the whole input (global pooling: ``wfix``): one COMPUTE sweeps every tap;
* :class:`ShiftScheme` - a stride-1 depthwise or pooling layer: the block's padded rows loaded once, tap
  ``(ky, kx)`` read from offset ``ky * Wp + kx``;
* :class:`WindowScheme` - the same rows summed in COMPUTE window mode (``win``): one pass per kernel row and N taps;
* :class:`AddScheme` - a residual add: both inputs through identity tiles, then POSTPROC add mode.

The pipeline that orders the steps and their dependency tokens is :mod:`tinycompile.fpga.emit`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinycompile.accel.config import AccelConfig
from tinycompile.accel.isa import ADD_PARAM_SETS, ADDRESS_SPACE, MAX_COUNT, SP_INP, SP_WGT
from tinycompile.accel.layout import contiguous, cpad
from tinycompile.fpga.geometry import Geom, dense_like, tap_major, window_passes
from tinycompile.fpga.tiling import Block, Pass, Tiling, halves, sweep_geom

Fields = dict[str, int]


@dataclass(frozen=True)
class LayerAddrs:
    """Byte addresses of one layer's tensors in external memory."""

    x: int
    out: int
    wgt: int = 0
    prm: int = 0
    b: int = 0  # second input of an add


@dataclass(frozen=True)
class LayerQuant:
    """The zero points and clamp of one layer: the pad byte of its loads and the fields of its POSTPROCs."""

    zp_in: int = 0
    zp_out: int = 0
    lo: int = -128
    hi: int = 127
    lshift: int = 0  # add mode: both inputs shifted left before their requantization
    single: bool = False  # requantize with single rounding (POSTPROC ``single``, TFLite's fully connected)


class EmitContext:
    """One layer being emitted, and the sizes every scheme derives from it."""

    def __init__(self, g: Geom, t: Tiling, cfg: AccelConfig, a: LayerAddrs, q: LayerQuant) -> None:
        """Keep the layer and derive its scratchpad halves, padded channel strides and identity-tile mode."""
        self.g, self.t, self.cfg, self.a, self.q = g, t, cfg, a, q
        self.n = n = cfg.n
        self.half_inp, self.half_wgt, self.half_acc, self.half_out = halves(cfg)
        self.cs_in, self.cs_out = cpad(g.c, n), cpad(g.co, n)
        self.nts = self.cs_out // n
        self.pool = g.kind in ("maxpool", "avgpool")  # identity tiles: the same for every group and chunk
        self.fixed = self.pool and not t.window  # one identity tile per channel tile serves every tap (wfix)
        self.pad_byte = -128 if g.kind == "maxpool" else q.zp_in  # padding must not win a max, and adds 0 otherwise


@dataclass(frozen=True)
class Step:
    """One step of a pass: reduction tiles ``k0 .. k1`` (chunk ``c``) of block ``bi``, loaded at INP word ``ib``."""

    s: int
    bi: int
    c: int
    blk: Block
    k0: int
    k1: int
    ib: int


class Scheme:
    """What every scheme shares: accumulators are the block's output pixels, post-processed one tile at a time and
    stored as ``rows x cols`` pixels; trained weights are loaded per group (or per chunk), identity tiles once."""

    fills_per_tile = False  # the pipeline's first step loads and computes one output tile at a time

    def __init__(self, ctx: EmitContext) -> None:
        """Keep the layer being emitted."""
        self.ctx = ctx

    def acc_rows(self, blk: Block) -> int:
        """Accumulator rows per output tile of a block."""
        return blk.m

    def input_loads(self, st: Step) -> list[Fields]:
        """LOAD fields that bring a step's inputs into INP."""
        raise NotImplementedError

    def parts(self, st: Step, wb: int, ab: int, m: int) -> list[Fields]:
        """COMPUTE fields of a step (weights at tile ``wb``, accumulators at row ``ab``, ``m`` rows per tile)."""
        raise NotImplementedError

    def step_loads(self, ps: Pass, st: Step, wb: int) -> list[Fields]:
        """Every LOAD of a step but the parameters: its inputs, then the weights it is the first to need."""
        return self.input_loads(st) + self.weight_loads(ps, st, wb)

    def weight_loads(self, ps: Pass, st: Step, wb: int) -> list[Fields]:
        """Trained weights once per group (per step when the reduction is chunked); identity tiles once per pass,
        sized for its largest group (and chunk), since they are the same for every group."""
        ctx = self.ctx
        if ctx.pool:
            if st.s:
                return []
            big = max(ps.blocks, key=lambda b: b.gn)
            if ctx.fixed:
                n = ctx.n
                return [dict(sp=SP_WGT, sp_base=0, base=ctx.a.wgt + big.g0 * n * n, **contiguous(big.gn * n, n))]
            return [self.weight_tiles(big, 0, min(ctx.t.kt, ctx.t.kc), 0)]
        if ctx.t.chunks > 1 or st.c == 0 and ps.new_group(st.bi):
            return [self.weight_tiles(st.blk, st.k0, st.k1, wb)]
        return []

    def weight_tiles(self, blk: Block, k0: int, k1: int, sp_tile: int) -> Fields:
        """LOAD fields of the weight tiles of reduction tiles ``k0 .. k1`` of a block's group, to WGT tile
        ``sp_tile``."""
        ctx, n = self.ctx, self.ctx.n
        a, kt, nts = ctx.a, ctx.t.kt, ctx.nts
        if tap_major(ctx.g):  # memory (tap, tile): for each tap of the chunk the group's tiles
            return {"sp": SP_WGT, "sp_base": sp_tile * n, "base": a.wgt + (k0 * nts + blk.g0) * n * n,
                    "n2": 1, "n1": k1 - k0, "d1": nts * n * n, "n0": blk.gn * n, "d0": n}
        if k0 == 0 and k1 == kt:  # memory (tile, k): the group's tiles are contiguous
            return dict(sp=SP_WGT, sp_base=sp_tile * n, base=a.wgt + blk.g0 * kt * n * n,
                        **contiguous(blk.gn * kt * n, n))
        return {"sp": SP_WGT, "sp_base": sp_tile * n, "base": a.wgt + (blk.g0 * kt + k0) * n * n,
                "n2": blk.gn, "d2": kt * n * n, "n1": 1, "n0": (k1 - k0) * n, "d0": n}

    def postproc(self, blk: Block, j: int, ab: int, m: int, t0: int) -> Fields:
        """POSTPROC fields of output tile ``j`` of a block (its parameter set counts from the pass's first tile)."""
        q = self.ctx.q
        return dict(acc_a=ab + j * m, out_base=j * m, rows=m, pset=blk.g0 - t0 + j, zp=q.zp_out, lo=q.lo, hi=q.hi,
                    **({"single": 1} if q.single else {}))

    def store(self, blk: Block) -> Fields:
        """STORE fields of a block's output pixels (every tile of its group)."""
        ctx, g = self.ctx, self.ctx.g
        return dict(sp_base=0, base=ctx.a.out + (blk.oy0 * g.ow + blk.ox0) * ctx.cs_out + blk.g0 * ctx.n, n2=blk.gn,
                    d2=ctx.n, n1=blk.rows, d1=g.ow * ctx.cs_out, n0=blk.cols, d0=ctx.cs_out)

    def _tap_load(self, blk: Block, ky: int, kx: int, sp_base: int, offset: int, tiles: int) -> Fields:
        """LOAD fields of one tap's input pixels for a block (im2col with padding: out-of-bounds words get the pad
        byte); ``offset`` bytes into the pixel, ``tiles`` channel tiles."""
        ctx, g = self.ctx, self.ctx.g
        y0, x0 = blk.oy0 * g.sh + ky * g.dy - g.pad[0], blk.ox0 * g.sw + kx * g.dx - g.pad[2]
        base = (ctx.a.x + (y0 * g.w + x0) * ctx.cs_in + offset) % ADDRESS_SPACE  # the first pixel may be padding
        return {"sp": SP_INP, "sp_base": sp_base, "base": base, "n2": tiles, "d2": ctx.n,
                "n1": blk.rows, "d1": g.sh * g.w * ctx.cs_in, "n0": blk.cols, "d0": g.sw * ctx.cs_in,
                "y0": y0, "x0": x0, "sy1": g.sh, "sx0": g.sw, "h": g.h, "w": g.w, "pad": ctx.pad_byte}


class ConvScheme(Scheme):
    """A convolution or dense layer: INP holds the step's reduction tiles (tap, input channel tile) one plane each,
    and one COMPUTE multiplies them by every output tile of the group."""

    fills_per_tile = True

    def input_loads(self, st: Step) -> list[Fields]:
        """One load per tap (and input channel range); whole taps of a whole-input window, which are consecutive
        pixels, are merged into one load."""
        ctx, g, blk, cb = self.ctx, self.ctx.g, st.blk, self.ctx.t.cb
        out = []
        tap = st.k0 // cb
        while tap * cb < st.k1:
            lo_k, hi_k = max(st.k0, tap * cb), min(st.k1, (tap + 1) * cb)
            if dense_like(g) and lo_k == tap * cb and hi_k == (tap + 1) * cb:
                run = 1
                while run < MAX_COUNT and (tap + run + 1) * cb <= st.k1:
                    run += 1
                out.append({"sp": SP_INP, "sp_base": st.ib + (lo_k - st.k0), "base": ctx.a.x + tap * ctx.cs_in,
                            "n2": 1, "n1": run, "d1": ctx.cs_in, "n0": cb, "d0": ctx.n})
                tap += run
                continue
            ky, kx = divmod(tap, g.kw)
            sp_base, offset = st.ib + (lo_k - st.k0) * blk.m, (lo_k - tap * cb) * ctx.n
            out.append(self._tap_load(blk, ky, kx, sp_base, offset, hi_k - lo_k))
            tap += 1
        return out

    def parts(self, st: Step, wb: int, ab: int, m: int) -> list[Fields]:
        """One COMPUTE over the step's reduction tiles (the first chunk initialises the accumulators)."""
        return [{"inp_base": st.ib, "wgt_base": wb, "acc_base": ab, "kt": st.k1 - st.k0, "init": int(st.c == 0),
                 "wfix": 0, "inp_nt_stride": 0}]


class TapScheme(Scheme):
    """A strided depthwise or pooling layer: one INP plane per tap holding every channel tile of the group, one
    COMPUTE per tap with the tap's diagonal tiles (pools: the same identity tile for every tap)."""

    def input_loads(self, st: Step) -> list[Fields]:
        """One load per tap of the chunk: INP (tap, tile, pixel)."""
        blk, g = st.blk, self.ctx.g
        plane = blk.gn * blk.m
        return [self._tap_load(blk, *divmod(tap, g.kw), st.ib + (tap - st.k0) * plane, blk.g0 * self.ctx.n, blk.gn)
                for tap in range(st.k0, st.k1)]

    def parts(self, st: Step, wb: int, ab: int, m: int) -> list[Fields]:
        """One COMPUTE per tap; trained tiles advance a group per tap, a pool's identity tiles stay."""
        tap_tiles = 0 if self.ctx.fixed else 1
        return [{"inp_base": st.ib + kk * st.blk.gn * m, "wgt_base": wb + kk * tap_tiles * st.blk.gn, "acc_base": ab,
                 "kt": 1, "inp_nt_stride": m, "init": int(st.c == 0 and kk == 0)} for kk in range(st.k1 - st.k0)]


class WholeMapScheme(Scheme):
    """A depthwise or pooling window over the whole input (one output pixel, e.g. a global pool): the taps are
    consecutive pixels, so one load and one COMPUTE sweep them all (a pool's one identity tile with ``wfix``)."""

    def input_loads(self, st: Step) -> list[Fields]:
        """INP word (tile j, tap k) at j * kc + k: every tile and tap of the chunk in one load."""
        ctx, blk = self.ctx, st.blk
        return [{"sp": SP_INP, "sp_base": st.ib, "base": ctx.a.x + st.k0 * ctx.cs_in + blk.g0 * ctx.n, "n2": blk.gn,
                 "d2": ctx.n, "n1": 1, "n0": st.k1 - st.k0, "d0": ctx.cs_in}]

    def parts(self, st: Step, wb: int, ab: int, m: int) -> list[Fields]:
        """One COMPUTE: kt taps of one row per tile, each tile's taps ``kt * m`` words after the previous tile's."""
        return [{"inp_base": st.ib, "wgt_base": wb, "acc_base": ab, "kt": st.k1 - st.k0, "init": int(st.c == 0),
                 "wfix": int(self.ctx.fixed), "inp_nt_stride": (st.k1 - st.k0) * m}]


class ShiftScheme(Scheme):
    """A stride-1 depthwise or pooling layer: the block's padded input rows, ``Wp`` words each, loaded once per
    channel tile; tap ``(ky, kx)`` reads them from offset ``ky * Wp + kx``. Each block computes ``rows * Wp``
    accumulator rows; the spare columns (windows that run past the row) are never stored."""

    spare = 0  # leading accumulator columns per row that are no output (window mode's first kw - 1)
    lead = 0  # INP words kept before the planes (window mode's wide rows start before them)

    def __init__(self, ctx: EmitContext) -> None:
        """Derive the sweep (rows and columns swapped for a transposed tiling) and its byte steps."""
        super().__init__(ctx)
        g = ctx.g
        self.gs = gs = sweep_geom(g, ctx.t)
        self.wp = gs.w + gs.pad[2] + gs.pad[3]
        # byte steps along the sweep's rows and columns, in the input and the output (NHWC either way)
        self.in_row, self.in_col, self.out_row, self.out_col = g.w * ctx.cs_in, ctx.cs_in, g.ow * ctx.cs_out, ctx.cs_out
        if ctx.t.transposed:  # the sweep's rows are the map's columns
            self.in_row, self.in_col, self.out_row, self.out_col = self.in_col, self.in_row, self.out_col, self.out_row

    def acc_rows(self, blk: Block) -> int:
        """Every padded position of the block's rows is computed (the spare ones too)."""
        return blk.rows * self.wp

    def plane(self, blk: Block) -> int:
        """INP words of one channel tile's padded rows (the block's rows and the ``kh - 1`` halo rows)."""
        return (blk.rows + self.gs.kh - 1) * self.wp

    def _sweep_coords(self, row0: int, col0: int, h: int, w: int) -> Fields:
        """AGU coordinates of a sweep: loop 1 steps the sweep's rows, loop 0 its columns (from ``row0, col0``)."""
        if self.ctx.t.transposed:
            return {"x0": row0, "y0": col0, "sx1": 1, "sy0": 1, "h": h, "w": w}
        return {"y0": row0, "x0": col0, "sy1": 1, "sx0": 1, "h": h, "w": w}

    def input_loads(self, st: Step) -> list[Fields]:
        """The block's padded input rows, once, one plane per channel tile."""
        ctx, gs, blk = self.ctx, self.gs, st.blk
        r0, c0 = blk.oy0 - gs.pad[0], -gs.pad[2]
        base = (ctx.a.x + r0 * self.in_row + c0 * self.in_col + blk.g0 * ctx.n) % ADDRESS_SPACE
        return [{"sp": SP_INP, "sp_base": st.ib + self.lead, "base": base, "n2": blk.gn, "d2": ctx.n,
                 "n1": blk.rows + gs.kh - 1, "d1": self.in_row, "n0": self.wp, "d0": self.in_col, "pad": ctx.pad_byte,
                 **self._sweep_coords(r0, c0, ctx.g.h, ctx.g.w)}]

    def parts(self, st: Step, wb: int, ab: int, m: int) -> list[Fields]:
        """One COMPUTE per tap, reading the rows from the tap's offset."""
        tap_tiles, kw = (0 if self.ctx.fixed else 1), self.gs.kw
        return [{"inp_base": st.ib + (tap // kw) * self.wp + tap % kw, "wgt_base": wb + tap * tap_tiles * st.blk.gn,
                 "acc_base": ab, "kt": 1, "inp_nt_stride": self.plane(st.blk), "init": int(tap == 0)}
                for tap in range(st.k0, st.k1)]

    def store(self, blk: Block) -> Fields:
        """The block's rows, ``Wp`` positions each: the spare ones, before the first output or after the last, are
        out of bounds and skipped."""
        ctx, g = self.ctx, self.ctx.g
        if ctx.t.transposed:
            bounds = {"y0": -self.spare, "sy0": 1, "h": g.oh}
        else:
            bounds = {"x0": -self.spare, "sx0": 1, "w": g.ow}
        base = (ctx.a.out + blk.oy0 * self.out_row - self.spare * self.out_col + blk.g0 * ctx.n) % ADDRESS_SPACE
        return dict(sp_base=0, base=base, n2=blk.gn, d2=ctx.n, n1=blk.rows, d1=self.out_row, n0=self.wp,
                    d0=self.out_col, **bounds)


class WindowScheme(ShiftScheme):
    """Shifted rows summed in COMPUTE window mode: array row r sees the word r positions back along the row, so one
    pass per kernel row sums up to N of its taps (``kh x ceil(kw / N)`` passes instead of ``kh x kw``)."""

    def __init__(self, ctx: EmitContext) -> None:
        """Window mode's first ``kw - 1`` outputs of a row see the previous row; a row wider than N starts early."""
        super().__init__(ctx)
        self.spare = self.gs.kw - 1
        self.lead = max(0, self.gs.kw - ctx.n)
        self.passes = window_passes(self.gs, ctx.n, ctx.t.wrows)

    def parts(self, st: Step, wb: int, ab: int, m: int) -> list[Fields]:
        """Kernel rows ky0.. side by side, read port i at row ky0 + i (``wg = kw``, ``wstride = Wp``); or kernel row
        ky0, taps q*N .. hi-1: array row r holds tap hi-1-r (rtl_sim/ISA.md, window mode)."""
        gs, n, rows = self.gs, self.ctx.n, self.ctx.t.wrows
        side = {"wg": gs.kw, "wstride": self.wp} if rows > 1 else {}
        parts = []
        for k in range(st.k0, st.k1):
            ky0, _, q = self.passes[k]
            parts.append({"inp_base": st.ib + self.lead + ky0 * self.wp + min(gs.kw, (q + 1) * n) - gs.kw,
                          "wgt_base": wb + k * st.blk.gn, "acc_base": ab, "kt": 1, "inp_nt_stride": self.plane(st.blk),
                          "init": int(k == 0), "win": 1, **side})
        return parts


class AddScheme(Scheme):
    """A residual add: both inputs of a block pass the array through identity tiles into two accumulator blocks,
    then POSTPROC add mode requantizes each and their sum (three parameter sets per tile)."""

    def step_loads(self, ps: Pass, st: Step, wb: int) -> list[Fields]:
        """The identity tiles (one per output tile of the pass, first step only), then both inputs."""
        n = self.ctx.n
        eye = [dict(sp=SP_WGT, sp_base=0, base=self.ctx.a.wgt, **contiguous(ps.tn * n, n))] if st.s == 0 else []
        return eye + self.input_loads(st)

    def input_loads(self, st: Step) -> list[Fields]:
        """Input a, then input b, of the block's flat pixel range."""
        ctx, blk = self.ctx, st.blk
        return [{"sp": SP_INP, "sp_base": st.ib + i * blk.gn * blk.m,
                 "base": src + blk.ox0 * ctx.cs_in + blk.g0 * ctx.n,
                 "n2": blk.gn, "d2": ctx.n, "n1": 1, "n0": blk.m, "d0": ctx.cs_in}
                for i, src in enumerate((ctx.a.x, ctx.a.b))]

    def parts(self, st: Step, wb: int, ab: int, m: int) -> list[Fields]:
        """One COMPUTE per input, each into its own accumulator block."""
        return [{"inp_base": st.ib + i * st.blk.gn * m, "wgt_base": 0, "acc_base": ab + i * st.blk.gn * m, "kt": 1,
                 "inp_nt_stride": m, "init": 1} for i in range(2)]

    def postproc(self, blk: Block, j: int, ab: int, m: int, t0: int) -> Fields:
        """Add mode: input a's accumulators, input b's after the group's, sets (a, b, sum) of the tile."""
        q = self.ctx.q
        return dict(add=1, acc_a=ab + j * m, acc_b=ab + (blk.gn + j) * m, out_base=j * m, rows=m,
                    pset=ADD_PARAM_SETS * (blk.g0 - t0 + j), zp=q.zp_out, lo=q.lo, hi=q.hi, lshift=q.lshift)

    def store(self, blk: Block) -> Fields:
        """The block's flat pixel range."""
        ctx = self.ctx
        return dict(sp_base=0, base=ctx.a.out + blk.ox0 * ctx.cs_out + blk.g0 * ctx.n, n2=blk.gn, d2=ctx.n, n1=1,
                    n0=blk.m, d0=ctx.cs_out)


def scheme_for(ctx: EmitContext) -> Scheme:
    """The scheme a layer's tiling calls for."""
    g, t = ctx.g, ctx.t
    if g.kind == "add":
        return AddScheme(ctx)
    if t.window:
        return WindowScheme(ctx)
    if t.shift:
        return ShiftScheme(ctx)
    if g.kind == "conv":
        return ConvScheme(ctx)
    return WholeMapScheme(ctx) if dense_like(g) else TapScheme(ctx)

"""Program builders: map int8 layers onto the accelerator ISA (double-buffered, token-synchronised).

Activations live in external memory as NHWC (batch 1) with the channel dimension padded to a
multiple of N (``cpad``); padded channels hold don't-care bytes that always meet zero weights.
Each builder appends instructions to a :class:`ProgramBuilder`; ``finish()`` adds DONE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinycompile.accel.assembler import Instr, MemoryImage
from tinycompile.accel.config import default_array, rtl_parameters, scratchpad_depths
from tinycompile.accel.isa import QUEUE_COMPUTE, QUEUE_LOAD, SP_INP, SP_PARAM, SP_WGT


def cpad(c: int, n: int) -> int:
    """Channels rounded up to a multiple of ``n``."""
    return -(-c // n) * n


@dataclass
class AccelConfig:
    """Array and scratchpad sizes of one RTL configuration (the tc_accel parameters it is built with).

    Values left at 0 come from the fpga target (``hw_targets/fpga.yaml``, see :mod:`tinycompile.accel.config`): its
    array size, and scratchpads of the same bytes for every array size (32 KB of inputs, 32 KB of weights, 32 KB of
    accumulators, 8 KB of outputs: 4096 input words, 512 weight tiles, 1024 accumulator rows and 1024 output words
    at N = 8).
    """

    n: int = 0
    inp_depth: int = 0
    wgt_tiles: int = 0
    acc_depth: int = 0
    out_depth: int = 0
    param_sets: int = 0

    def __post_init__(self) -> None:
        """Fill in the sizes left at 0."""
        self.n = self.n or default_array()
        sizes = scratchpad_depths(self.n)
        self.inp_depth = self.inp_depth or sizes["inp_depth"]
        self.wgt_tiles = self.wgt_tiles or sizes["wgt_tiles"]
        self.acc_depth = self.acc_depth or sizes["acc_depth"]
        self.out_depth = self.out_depth or sizes["out_depth"]
        self.param_sets = self.param_sets or sizes["param_sets"]

    def rtl_parameters(self) -> dict[str, int]:
        """The tc_accel parameters of this configuration."""
        return rtl_parameters(self.n, self.inp_depth, self.wgt_tiles, self.acc_depth, self.out_depth,
                              self.param_sets)


def contiguous(words: int, n: int) -> dict[str, int]:
    """Pattern fields for ``words`` consecutive N-byte words (split over two loops past 4095)."""
    k = 1
    while words // k > 4095 or words % k:
        k += 1
    return dict(n1=k, d1=(words // k) * n, n0=words // k, d0=n)


@dataclass
class Tensor:
    """An activation tensor in external memory (NHWC, batch 1, channels padded to N)."""

    addr: int
    h: int
    w: int
    c: int
    zp: int = 0

    def stride_c(self, n: int) -> int:
        """Bytes between two pixels."""
        return cpad(self.c, n)


class ProgramBuilder:
    """Collects instructions and tracks the double-buffer token protocol within one layer."""

    def __init__(self, cfg: AccelConfig, image: MemoryImage) -> None:
        """Start an empty program for ``cfg`` whose data lives in ``image``."""
        self.cfg = cfg
        self.image = image
        self.prog: list[Instr] = []
        self.pset_next = 0

    def emit(self, op: str, **fields: int) -> Instr:
        """Append one instruction."""
        ins = Instr(op, fields)
        self.prog.append(ins)
        return ins

    def barrier(self, blocks: int) -> None:
        """End a layer: wait for its stores and drain leftover tokens so the next layer starts clean."""
        left = min(blocks, 2)
        for _ in range(left):
            self.emit("SYNC", queue=QUEUE_COMPUTE, pop_next=1)
        self.emit("SYNC", queue=QUEUE_COMPUTE, push_prev=1)
        for _ in range(left + 1):
            self.emit("SYNC", queue=QUEUE_LOAD, pop_next=1)

    def params(self, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> int:
        """Place per-channel parameter sets in memory, emit their LOAD, return the first set index."""
        n = self.cfg.n
        cp = cpad(len(bias), n)
        nsets = cp // n
        if self.pset_next + nsets > self.cfg.param_sets:
            self.pset_next = 0  # safe: a barrier separates layers, so older sets are dead
        blob = np.zeros((nsets, 3, n), dtype=np.int32)
        for arr, row in ((bias, 0), (mult, 1), (shift, 2)):
            full = np.zeros(cp, dtype=np.int64)
            full[: len(arr)] = arr
            blob[:, row, :] = full.reshape(nsets, n).astype(np.int32)
        addr = self.image.put(blob)
        first = self.pset_next
        words = blob.nbytes // n
        self.emit("LOAD", sp=SP_PARAM, sp_base=first * 3 * 4, base=addr, **contiguous(words, n))
        self.pset_next += nsets
        return first

    def finish(self) -> list[Instr]:
        """Append DONE and return the program."""
        self.emit("DONE")
        return self.prog


def _store_block(pb: ProgramBuilder, out: Tensor, oy0: int, rows: int, nts: int, pset: int,
                 acc_base: int, m: int, zp: int, lo: int, hi: int, pop_first: bool) -> None:
    """POSTPROC every n-tile of a block into the output scratchpad, then one STORE of the rows."""
    n = pb.cfg.n
    for nt in range(nts):
        pb.emit("POSTPROC", pop_prev=int(pop_first and nt == 0), acc_a=acc_base + nt * m,
                out_base=nt * m, rows=m, pset=pset + nt, zp=zp, lo=lo, hi=hi)
    cs = out.stride_c(n)
    pb.emit("STORE", push_prev=1, sp_base=0, base=out.addr + oy0 * out.w * cs, n2=nts, d2=n,
            n1=rows, d1=out.w * cs, n0=out.w, d0=cs)


def conv2d(pb: ProgramBuilder, x: Tensor, w: np.ndarray, bias: np.ndarray, mult: np.ndarray,
           shift: np.ndarray, out_zp: int, stride: int = 1, pad: tuple[int, int, int, int] = (0, 0, 0, 0),
           lo: int = -128, hi: int = 127, depthwise: bool = False, pool: str | None = None) -> Tensor:
    """Emit a conv2d / depthwise conv / pooling layer; return the output tensor.

    ``w`` is int8 [KH, KW, Cin, Cout] (depthwise: [KH, KW, C]); ``pad`` is (top, bottom, left, right).
    ``pool`` in {"max", "avg"} runs a depthwise-shaped layer with identity weights (``w`` gives the
    window as a shape-only array; ``bias`` is then ignored and derived from the zero point).
    """
    cfg, n = pb.cfg, pb.cfg.n
    kh, kw = w.shape[:2]
    dw = depthwise or pool is not None
    cin = x.c
    cout = cin if dw else w.shape[3]
    pt, pbm, pl, pr = pad
    oh = (x.h + pt + pbm - kh) // stride + 1
    ow = (x.w + pl + pr - kw) // stride + 1
    cb_in, nts = cpad(cin, n) // n, cpad(cout, n) // n
    taps = kh * kw

    # Weight tiles in memory, tile t = nt*KT + kt, each N rows (k) x N bytes (output channel).
    if dw:
        kt_n = taps
        tiles = np.zeros((nts, kt_n, n, n), dtype=np.int8)
        wd = np.ones((kh, kw, cin), dtype=np.int64) if pool else w.astype(np.int64)
        for cb in range(nts):
            for t in range(taps):
                for r in range(n):
                    ch = cb * n + r
                    if ch < cin:
                        tiles[cb, t, r, r] = wd[t // kw, t % kw, ch]
        wsum = wd.reshape(taps, cin).sum(axis=0)
    else:
        kt_n = taps * cb_in
        wp = np.zeros((kh, kw, cb_in * n, nts * n), dtype=np.int8)
        wp[:, :, :cin, :cout] = w
        tiles = wp.reshape(taps * cb_in, n, nts, n).transpose(2, 0, 1, 3).copy()
        wsum = w.astype(np.int64).reshape(-1, cout).sum(axis=0)
    if pool:
        bias = np.zeros(cout, dtype=np.int64)
    # Input zero point folded into the bias: acc = bias + sum((x - zp) * w).
    fbias = np.asarray(bias, dtype=np.int64) - (0 if pool == "max" else x.zp) * wsum
    if pool == "max":
        fbias = fbias - x.zp
    wgt_addr = pb.image.put(tiles)
    pset = pb.params(fbias, mult, shift)
    out = Tensor(pb.image.alloc(oh * ow * nts * n), oh, ow, cout, out_zp)

    # Block size: whole output rows so one STORE pattern covers the block.
    half_inp, half_acc = cfg.inp_depth // 2, cfg.acc_depth // 2
    ng = nts
    while ng > 1 and (kt_n * ng > cfg.wgt_tiles // 2):
        ng = -(-ng // 2)
    if kt_n * ng > cfg.wgt_tiles // 2:
        raise ValueError(f"k tiles must fit half the weight scratchpad, but got kt={kt_n}")
    kin = kt_n * (ng if dw else 1)  # input words per pixel (depthwise: one set per channel tile)
    rows = max(1, min(oh, half_inp // (kin * ow), half_acc // (ng * ow), cfg.out_depth // (ng * ow)))
    if kin * ow > half_inp or ng * ow > half_acc or ng * ow > cfg.out_depth:
        raise ValueError(f"one output row must fit the scratchpads, but got ow={ow}, kt={kt_n}")
    cs_in = x.stride_c(n)
    pad_byte = -128 if pool == "max" else x.zp

    blocks = []
    for g0 in range(0, nts, ng):
        for oy0 in range(0, oh, rows):
            blocks.append((g0, min(ng, nts - g0), oy0, min(rows, oh - oy0)))

    def emit_loads(j: int) -> None:
        g0, gn, oy0, r = blocks[j]
        m = r * ow
        ib, wb = (j % 2) * half_inp, 0
        new_group = j == 0 or blocks[j - 1][0] != g0
        gi = sum(1 for k in range(j + 1) if k == 0 or blocks[k - 1][0] != blocks[k][0]) - 1
        wb = (gi % 2) * (cfg.wgt_tiles // 2)
        loads = []
        for t in range(taps):
            ky, kx = divmod(t, kw)
            y0 = oy0 * stride + ky - pt
            x0 = kx - pl
            for cbg in range(gn if dw else 1):
                cb0 = g0 + cbg if dw else 0
                ncb = 1 if dw else cb_in
                sp = ib + (cbg * taps * m + t * m if dw else t * cb_in * m)
                loads.append(dict(sp=SP_INP, sp_base=sp, base=(x.addr + (y0 * x.w + x0) * cs_in + cb0 * n) % (1 << 32),
                                  n2=ncb, d2=n, n1=r, d1=stride * x.w * cs_in, n0=ow, d0=stride * cs_in,
                                  y0=y0, x0=x0, sy1=stride, sx0=stride, h=x.h, w=x.w, pad=pad_byte))
        if new_group:
            loads.append(dict(sp=SP_WGT, sp_base=wb * n, base=wgt_addr + g0 * kt_n * n * n,
                              **contiguous(gn * kt_n * n, n)))
        for i, ld in enumerate(loads):
            pb.emit("LOAD", pop_next=int(i == 0 and j >= 2), push_next=int(i == len(loads) - 1), **ld)
        blocks[j] = (g0, gn, oy0, r, ib, wb)

    emit_loads(0)
    for j in range(len(blocks)):
        if j + 1 < len(blocks):
            emit_loads(j + 1)
        g0, gn, oy0, r, ib, wb = blocks[j]
        m = r * ow
        ab = (j % 2) * half_acc
        pb.emit("COMPUTE", pop_prev=1, pop_next=int(j >= 2), push_prev=1, push_next=1,
                init=1, max=int(pool == "max"), inp_base=ib, wgt_base=wb, acc_base=ab, m=m, kt=kt_n,
                nt=gn, inp_nt_stride=kt_n * m if dw else 0)
        _store_block(pb, Tensor(out.addr + g0 * n, oh, ow, cout), oy0, r, gn, pset + g0, ab, m,
                     out_zp, lo, hi, True)
    pb.barrier(len(blocks))
    return out


def dense(pb: ProgramBuilder, x: Tensor, w: np.ndarray, bias: np.ndarray, mult: np.ndarray,
          shift: np.ndarray, out_zp: int, lo: int = -128, hi: int = 127) -> Tensor:
    """Fully connected layer on a [M, K] input stored as an (M, 1, K) tensor: a 1x1 conv."""
    return conv2d(pb, x, w.reshape(1, 1, *w.shape), bias, mult, shift, out_zp, lo=lo, hi=hi)


def add(pb: ProgramBuilder, a: Tensor, b: Tensor, lshift: int, qa: tuple[np.ndarray, np.ndarray],
        qb: tuple[np.ndarray, np.ndarray], qo: tuple[np.ndarray, np.ndarray], out_zp: int,
        lo: int = -128, hi: int = 127) -> Tensor:
    """Residual add: both inputs pass the array with identity weights, then POSTPROC add mode.

    ``qa``, ``qb``, ``qo`` are per-channel (multiplier, shift) pairs; see ``reference.add_ref``.
    """
    cfg, n = pb.cfg, pb.cfg.n
    nts = cpad(a.c, n) // n
    cs = a.stride_c(n)
    eye = np.zeros((nts, n, n), dtype=np.int8)
    eye[:, np.arange(n), np.arange(n)] = 1
    wgt_addr = pb.image.put(eye)
    blob = np.zeros((nts, 3, 3, n), dtype=np.int64)  # [n-tile, set a/b/out, bias/mult/shift, lane]
    for s, (bias, (m, sh)) in enumerate(((-a.zp, qa), (-b.zp, qb), (0, qo))):
        for row, arr in enumerate((np.full(a.c, bias), m, sh)):
            full = np.zeros(nts * n, dtype=np.int64)
            full[: a.c] = arr
            blob[:, s, row, :] = full.reshape(nts, n)
    if pb.pset_next + 3 * nts > cfg.param_sets:
        pb.pset_next = 0
    pset = pb.pset_next
    paddr = pb.image.put(blob.astype(np.int32))
    pb.emit("LOAD", sp=SP_PARAM, sp_base=pset * 12, base=paddr, **contiguous(blob.size * 4 // n, n))
    pb.pset_next += 3 * nts
    pb.emit("LOAD", sp=SP_WGT, sp_base=0, base=wgt_addr, **contiguous(nts * n, n))
    out = Tensor(pb.image.alloc(a.h * a.w * cs), a.h, a.w, a.c, out_zp)
    half_inp, half_acc = cfg.inp_depth // 2, cfg.acc_depth // 2
    rows = max(1, min(a.h, half_inp // (2 * nts * a.w), half_acc // (2 * nts * a.w),
                      cfg.out_depth // (nts * a.w)))
    if 2 * nts * a.w > min(half_inp, half_acc):
        raise ValueError(f"one row of both inputs must fit the scratchpads, but got w={a.w}")
    blocks = [(y0, min(rows, a.h - y0)) for y0 in range(0, a.h, rows)]
    for j, (y0, r) in enumerate(blocks):
        m = r * a.w
        ib, ab = (j % 2) * half_inp, (j % 2) * half_acc
        for i, t in enumerate((a, b)):
            pb.emit("LOAD", pop_next=int(i == 0 and j >= 2), push_next=i, sp=SP_INP,
                    sp_base=ib + i * nts * m, base=t.addr + y0 * a.w * cs, n2=nts, d2=n, n1=r,
                    d1=a.w * cs, n0=a.w, d0=cs)
        for i in range(2):
            pb.emit("COMPUTE", pop_prev=int(i == 0), pop_next=int(i == 0 and j >= 2), push_prev=i,
                    push_next=i, init=1, inp_base=ib + i * nts * m, wgt_base=0,
                    acc_base=ab + i * nts * m, m=m, kt=1, nt=nts, inp_nt_stride=m)
        for nt in range(nts):
            pb.emit("POSTPROC", pop_prev=int(nt == 0), add=1, acc_a=ab + nt * m,
                    acc_b=ab + nts * m + nt * m, out_base=nt * m, rows=m, pset=pset + 3 * nt,
                    zp=out_zp, lo=lo, hi=hi, lshift=lshift)
        pb.emit("STORE", push_prev=1, sp_base=0, base=out.addr + y0 * a.w * cs, n2=nts, d2=n,
                n1=r, d1=a.w * cs, n0=a.w, d0=cs)
    pb.barrier(len(blocks))
    return out

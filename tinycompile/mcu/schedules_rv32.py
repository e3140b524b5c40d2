"""Schedules of the conv and depthwise kernels for scalar cores without SIMD (rv32imc, and the portable C build).

Without a dot-product instruction each multiply-accumulate is a ``mul`` and an ``add``, and every int8 operand is one
``lb``: what a schedule can remove is the loads (each loaded value reused from a register by several
multiply-accumulates), the loop overhead, and the per-output work of the requantization epilogue.

* conv: register tiles of ``TO`` output channels x ``TP`` pixels along a row (1x1 convs: a GEMM over the fused
  pixels): per reduction step ``TO + TP`` loads feed ``TO * TP`` multiply-accumulates and the accumulators stay in
  registers. The tile is the one with the most multiply-accumulates per load within ``ACC_REGS`` accumulators, one
  reduction step per loop iteration: GCC's and LLVM's schedulers hoist every load of an unrolled body above its
  multiplies (and LLVM reassociates the sums), so bigger tiles or bodies spill (DS-CNN's pointwise layers: 4 x 5
  tiles 1.90 M instructions each, 2 x 5 with two steps a body 1.71 M, 2 x 5 with one step 1.68 M). With one input
  channel the kernel columns are unrolled whole: an input column that neighbouring pixels share is loaded once.
* dwconv: one channel x ``TP`` pixels along a row, the KHxKW taps unrolled: each weight is loaded once per tile and
  held in a register across the pixels, and an input that several taps of neighbouring pixels read is loaded once
  (3x3 stride 1: ``TP + 2`` loads per kernel row instead of ``3 TP``). The padding is inlined, not copied: with the
  row's pixels unrolled the column tests are constants and vanish, the row tests stay (one per load); the band copy
  cost a quarter of the kernel (every input row copied once per output row that reads it).
* the epilogue of a tile runs channel by channel: each channel's requantization constants are read into a local
  array (registers) once for the tile's pixels; without it every int8 store, which C lets alias any table, would
  force the compiler to reload them for the next pixel.
"""

from __future__ import annotations

from typing import Any

from tvm import s_tir

from tinycompile.quant.graph import QOp

PAD_WHOLE_MAX = 2048  # bytes: as schedules.PAD_WHOLE_MAX
ACC_REGS = 10  # accumulators of a conv tile (measured: see the module docstring)
MAX_TP = 8  # pixels per tile
UNROLL_MACS = 10  # multiply-accumulate statements per reduction body: one step of the tile
# One input channel: whole kernel rows are unrolled, so the tile is smaller. DS-CNN's first layer (10x4 kernel, rows of
# 5): 1 x 5 tiles 1.12 M (C) / 1.17 M (LLVM) instructions, 2 x 5 1.15 M / 1.53 M, 4 x 1 1.32 M / 1.32 M.
ROW_ACC_REGS = 5
ROW_UNROLL_MACS = 40  # the same for a reduction along kernel columns (one input channel): whole rows


def schedule(sch: s_tir.Schedule, op: QOp, blocks: dict[str, Any]) -> bool:
    """Schedule a conv or dwconv kernel in place for a scalar core; False (nothing done) for other kernels."""
    if "acc" not in blocks or "out" not in blocks:
        return False
    if op.op == "conv":
        _conv(sch, op)
        return True
    if op.op == "dwconv":
        _dwconv(sch, op)
        return True
    return False


def conv_tile(channels: int, row: int, regs: int = ACC_REGS) -> tuple[int, int]:
    """``(TO, TP)``: output channels x pixels of a conv's register tile, for ``channels`` outputs and rows of ``row``
    pixels (a tile does not cross a row); the most multiply-accumulates per loaded value, then the larger tile."""
    best = (0.0, 0, 1, 1)
    for to in _divisors(channels, regs):
        for tp in _divisors(row, min(MAX_TP, regs // to)):
            best = max(best, (to * tp / (to + tp), to * tp, to, tp))
    return best[2], best[3]


def _divisors(n: int, limit: int) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def _conv(sch: s_tir.Schedule, op: QOp) -> None:
    acc = sch.get_sblock("acc")
    if "pad" in _block_names(sch):
        _place_pad(sch, op)
    h, w, o, *red = sch.get_loops(acc)
    ho, wo, co = op.out_shape
    to, tp = conv_tile(co, wo, ROW_ACC_REGS if op.in_shapes[0][2] == 1 else ACC_REGS)
    pointwise = op.kernel == (1, 1) and op.stride == (1, 1) and not any(op.padding)
    pix = sch.fuse(h, w) if pointwise else w  # tiles of divisors of a row never cross one
    p_o, p_i = sch.split(pix, [None, tp])
    o_o, o_i = sch.split(o, [None, to])
    # The innermost reduction loop with extent > 1 (input channels, or kernel columns for one input channel):
    # unrolled by a few steps so the loop's compare and branch are amortised but the body stays in registers.
    red = [r for r in red if int(sch.get(r).extent) > 1] or red[-1:]
    last = red[-1]
    n_last = int(sch.get(last).extent)
    limit = ROW_UNROLL_MACS if op.in_shapes[0][2] == 1 else UNROLL_MACS
    step = max([d for d in _divisors(n_last, 16) if d * to * tp <= limit] or [1])
    if step < n_last:
        last_o, last_i = sch.split(last, [None, step])
        red = [*red[:-1], last_o, last_i]
    sch.reorder(p_o, o_o, *red, p_i, o_i)
    _epilogue(sch, o_o)
    init = sch.decompose_reduction(acc, red[0])
    for loop in sch.get_loops(init)[-2:]:
        sch.unroll(loop)
    sch.unroll(p_i)
    sch.unroll(o_i)
    sch.unroll(red[-1])
    if len(red) > 1 and int(sch.get(red[-2]).extent) <= 4 and step == n_last:
        sch.unroll(red[-2])  # short kernel rows fully unrolled: their inputs overlap across the tile's pixels


def _dwconv(sch: s_tir.Schedule, op: QOp) -> None:
    if "pad" in _block_names(sch):
        sch.compute_inline(sch.get_sblock("pad"))
    acc = sch.get_sblock("acc")
    h, w, c, kh, kw = sch.get_loops(acc)
    tp = max(_divisors(op.out_shape[1], MAX_TP))
    w_o, w_i = sch.split(w, [None, tp])
    sch.reorder(w_o, c, kh, kw, w_i)
    _epilogue(sch, c)
    init = sch.decompose_reduction(acc, kh)
    sch.unroll(sch.get_loops(init)[-1])
    for loop in (kh, kw, w_i):
        sch.unroll(loop)


def _epilogue(sch: s_tir.Schedule, tile: Any) -> None:
    """The epilogue stages (``biased`` if present, then ``out``) under ``tile``, their loops unrolled; ``out`` runs
    channel by channel with the channel's requantization constants copied into a local array (registers) first."""
    names = [n for n in ("biased", "out") if n in _block_names(sch)]
    for name in names:
        sch.reverse_compute_at(sch.get_sblock(name), tile)
    out = sch.get_sblock("out")
    loops = sch.get_loops(out)
    inner = loops[next(i for i, lp in enumerate(loops) if sch.get(lp).same_as(sch.get(tile))) + 1 :]
    if len(inner) > 1:
        sch.reorder(inner[-1], *inner[:-1])  # the channel loop (the output's last axis) outermost
    at = inner[-1] if len(inner) > 1 else tile
    for index in range(1, len(sch.get(out).reads)):  # every read but the accumulator's: the per-channel tables
        cached = sch.cache_read(out, index, "global", consumer_blocks=[out])
        sch.compute_at(cached, at)
    for name in names:
        loops = sch.get_loops(sch.get_sblock(name))
        depth = next(i for i, lp in enumerate(loops) if sch.get(lp).same_as(sch.get(tile))) + 1
        for loop in loops[depth:]:
            sch.unroll(loop)
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        if sch.get(block).name_hint.endswith("_global"):
            for loop in sch.get_loops(block)[len(sch.get_loops(sch.get_sblock("out"))) - 1 :]:
                sch.unroll(loop)


def _place_pad(sch: s_tir.Schedule, op: QOp) -> None:
    """The padded input whole when small, else one band of rows per output row (``schedules.PAD_WHOLE_MAX``)."""
    pad = sch.get_sblock("pad")
    ho, wo, _ = op.out_shape
    rows, cols = (ho - 1) * op.stride[0] + op.kernel[0], (wo - 1) * op.stride[1] + op.kernel[1]
    if rows * cols * op.in_shapes[0][2] > PAD_WHOLE_MAX:
        sch.compute_at(pad, sch.get_loops(sch.get_sblock("acc"))[0])
    inner = sch.get_loops(pad)[-1]
    step = max(_divisors(int(sch.get(inner).extent), 16))
    if step > 1:
        sch.unroll(sch.split(inner, [None, step])[1])  # the padding test once per run of channels


def _block_names(sch: s_tir.Schedule) -> set[str]:
    root = sch.get_sblock("root")
    return {sch.get(b).name_hint for b in sch.get_child_blocks(root)}

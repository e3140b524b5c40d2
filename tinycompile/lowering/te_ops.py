"""Tensor-expression (TE) definitions of the QuantGraph ops, one kernel per op, NHWC without a batch axis.

Each weighted op is a reduction stage ``acc`` (int32) followed by an epilogue stage ``out`` (requantize, add the zero
point, clamp, cast to int8); the scheduler later moves the epilogue inside the reduction's output loop, so the
accumulator shrinks to one register and no temporary buffer is left. Padding is a ``pad`` stage holding the input zero
point (placed by the schedule), so the reduction reads without bounds tests.

The weighted kernels use ``acc = bias_eff + sum(x * w)`` with ``bias_eff = bias - zp_in * sum(w)``: identical in
integers to the reference's ``bias + sum((x - zp_in) * w)`` (padded taps read ``zp_in`` and cancel), and it lets the
inner loop multiply raw int8 values. The requantization arithmetic and the per-channel tables are ``requant``'s.

Weights come in the layout the caller of ``to_relax`` chose: int8 as the QuantGraph holds them, or (conv) the packed
int16 forms of a 4-way dot product, which the kernel recognises by the weight's rank (7: a convolution as the GEMM
over pixel pairs of the Arm register tile, ``_conv_pairs``).
"""

from __future__ import annotations

from typing import Any

import tvm
from tvm import te, tirx

from tinycompile.lowering.requant import (
    clamp_int8,
    fast_requantize_expr,
    i32,
    i64,
    requantize_const,
    requantize_expr,
    requantize_float_expr,
    requantize_single_expr,
    signless_clamp,
    times_pow2,
    zero_point_folded,
)
from tinycompile.quant.graph import QOp
from tinycompile.quant.intmath import INT32_MAX
from tinycompile.quant.semantics import ADD_LEFT_SHIFT

PrimExpr = Any


def pad_input(op: QOp, x: te.Tensor, rows_only: bool = False, kw_total: int = 0, channels: int = 0,
              value: int | None = None) -> te.Tensor:
    """The input as the window loops read it: a ``pad`` stage holding ``value`` (default: the input zero point)
    outside the input.

    Only the rows and columns some window reaches are materialised, ``((Ho-1)*sh + KH, (Wo-1)*sw + KW, C)``. The
    schedule places the stage (whole, or one band of rows per output row), so the reduction reads it without
    bounds tests. Without padding the input is returned as it is. ``rows_only`` (one input channel): the stage is
    2-D ``(rows, columns)``, always materialised, so a run of kernel columns is a contiguous innermost region.
    ``kw_total`` / ``channels``: kernel width / channel count rounded up for a 4-way dot product (the extra
    columns / channels hold the zero point and meet zero weights); the stage is then always materialised.
    """
    pt, pb, pl, pr = op.padding
    H, W, C = op.in_shapes[0]
    kw_total = kw_total or op.kernel[1]
    channels = channels or C
    if not any(op.padding) and not rows_only and channels == C:
        return x
    ho, wo, _ = op.out_shape
    hp = (ho - 1) * op.stride[0] + op.kernel[0]
    wp = (wo - 1) * op.stride[1] + kw_total
    zp = tirx.const(op.in_q[0].zero_point if value is None else value, "int8")

    def f(h: PrimExpr, w: PrimExpr, c: PrimExpr) -> PrimExpr:
        conds = []
        if pt:
            conds.append(h >= pt)
        if pb or hp > pt + H:
            conds.append(h < pt + H)
        if pl:
            conds.append(w >= pl)
        if pr or wp > pl + W:
            conds.append(w < pl + W)
        if channels > C:
            conds.append(c < C)
        inside = x[h - pt, w - pl, c]
        return te.if_then_else(tirx.all(*conds), inside, zp) if conds else inside

    if rows_only:
        return te.compute((hp, wp), lambda h, w: f(h, w, 0), name="pad")
    return te.compute((hp, wp, channels), f, name="pad")


def conv(op: QOp, x: te.Tensor, w: te.Tensor, *tables: te.Tensor) -> te.Tensor:
    """Standard convolution; weight int8 ``(O, KH, KW, I)``, or a packed int16 layout (see the module docstring)."""
    if len(w.shape) == 7:
        return _conv_pairs(op, x, w, tables)
    ho, wo, co = op.out_shape
    kh_n, kw_n = op.kernel
    cin = op.in_shapes[0][2]
    sh, sw = op.stride
    if len(w.shape) == 6:  # packed along (possibly rounded-up) input channels
        xp = pad_input(op, x, channels=4 * int(w.shape[3]))
    elif len(w.shape) == 5:  # packed along (possibly rounded-up) kernel columns of one input channel
        xp = pad_input(op, x, rows_only=True, kw_total=4 * int(w.shape[2]))
    else:
        xp = pad_input(op, x)
    rkh = te.reduce_axis((0, kh_n), "kh")
    if len(w.shape) == 4:
        rkw = te.reduce_axis((0, kw_n), "kw")
        rci = te.reduce_axis((0, cin), "ci")

        def body(h: PrimExpr, x_: PrimExpr, o: PrimExpr) -> PrimExpr:
            return te.sum(xp[h * sh + rkh, x_ * sw + rkw, rci].astype("int32") * w[o, rkh, rkw, rci].astype("int32"), axis=[rkh, rkw, rci])

    elif len(w.shape) == 6:  # packed along the input channels
        rkw = te.reduce_axis((0, kw_n), "kw")
        rg = te.reduce_axis((0, int(w.shape[3])), "g")
        ra = te.reduce_axis((0, 2), "a")
        rb = te.reduce_axis((0, 2), "b")

        def body(h: PrimExpr, x_: PrimExpr, o: PrimExpr) -> PrimExpr:
            xv = xp[h * sh + rkh, x_ * sw + rkw, rg * 4 + ra + rb * 2]
            return te.sum(xv.astype("int32") * w[o, rkh, rkw, rg, ra, rb].astype("int32"), axis=[rkh, rkw, rg, ra, rb])

    else:  # packed along the kernel columns (one input channel)
        rg = te.reduce_axis((0, int(w.shape[2])), "g")
        ra = te.reduce_axis((0, 2), "a")
        rb = te.reduce_axis((0, 2), "b")

        def body(h: PrimExpr, x_: PrimExpr, o: PrimExpr) -> PrimExpr:
            xv = xp[h * sh + rkh, x_ * sw + rg * 4 + ra + rb * 2]
            return te.sum(xv.astype("int32") * w[o, rkh, rg, ra, rb].astype("int32"), axis=[rkh, rg, ra, rb])

    acc = te.compute((ho, wo, co), body, name="acc")
    return _epilogue(op, acc, tables, lambda idx: idx[2])


def _conv_pairs(op: QOp, x: te.Tensor, w: te.Tensor, tables: tuple) -> te.Tensor:
    """A convolution as a GEMM over pixel pairs (the weight in ``packing.pointwise_weight``'s layout: its taps
    flattened as ``(KH, KW, I)``, the dot axis rounded up to four).

    ``xe`` holds each pixel's taps as pairs of halfwords, ``(4g + a, 4g + a + 2)`` in word ``(g, a)`` (what SXTB16
    makes of four input bytes that lie side by side: channels, or kernel columns of one input channel, in the
    padded copy ``pad_input`` makes where the layer needs one); ``acc`` runs over the pixels rounded up to even,
    the odd count's spare pixel a copy of the last (its sums are never stored), and ``out`` maps the pixels back to
    rows and columns.
    """
    ho, wo, co = op.out_shape
    kh_n, kw_n = op.kernel
    sh, sw = op.stride
    n_pix = ho * wo
    groups = int(w.shape[3])
    if op.in_shapes[0][2] == 1:  # along kernel columns: groups (row, four columns)
        per_row = groups // kh_n
        xp = pad_input(op, x, rows_only=True, kw_total=4 * per_row)

        def tap(q: PrimExpr, g: PrimExpr, t: PrimExpr) -> PrimExpr:
            return xp[(q // wo) * sh + g // per_row, (q % wo) * sw + (g % per_row) * 4 + t]
    else:  # along input channels: groups (row, column, four channels)
        per_tap = groups // (kh_n * kw_n)
        xp = pad_input(op, x, channels=4 * per_tap)

        def tap(q: PrimExpr, g: PrimExpr, t: PrimExpr) -> PrimExpr:
            k = g // per_tap
            return xp[(q // wo) * sh + k // kw_n, (q % wo) * sw + k % kw_n, (g % per_tap) * 4 + t]

    def expand(p: PrimExpr, g: PrimExpr, a: PrimExpr) -> PrimExpr:
        q = tirx.min(p, n_pix - 1)
        return (tap(q, g, a).astype("int32") & i32(0xFFFF)) | (tap(q, g, a + 2).astype("int32") << i32(16))

    xe = te.compute((n_pix + n_pix % 2, groups, 2), expand, name="xe")
    rg = te.reduce_axis((0, groups), "g")
    ra = te.reduce_axis((0, 2), "a")
    rb = te.reduce_axis((0, 2), "b")

    def body(p: PrimExpr, o: PrimExpr) -> PrimExpr:
        v = xe[p, rg, ra]
        lane = tirx.Select(rb == 0, (v << i32(16)) >> i32(16), v >> i32(16))  # halfword b, sign-extended
        return te.sum(lane * w[o // 4, 0, 0, rg, ra, o % 4, rb].astype("int32"), axis=[rg, ra, rb])

    acc = te.compute((n_pix + n_pix % 2, co), body, name="acc")
    return _epilogue(op, acc, tables, lambda idx: idx[1], (ho, wo, co), lambda idx: (idx[0] * wo + idx[1], idx[2]))


def dwconv(op: QOp, x: te.Tensor, w: te.Tensor, *tables: te.Tensor) -> te.Tensor:
    """Depthwise convolution, weight (KH, KW, C), or (rank 5) the row-pair layout of ``_dwconv_row_pairs``."""
    if len(w.shape) == 5:
        return _dwconv_row_pairs(op, x, w, tables)
    ho, wo, co = op.out_shape
    kh_n, kw_n = op.kernel
    sh, sw = op.stride
    xp = pad_input(op, x)
    rkh = te.reduce_axis((0, kh_n), "kh")
    rkw = te.reduce_axis((0, kw_n), "kw")
    acc = te.compute(
        (ho, wo, co),
        lambda h, x_, c: te.sum(xp[h * sh + rkh, x_ * sw + rkw, c].astype("int32") * w[rkh, rkw, c].astype("int32"), axis=[rkh, rkw]),
        name="acc",
    )
    return _epilogue(op, acc, tables, lambda idx: idx[2])


def _dwconv_row_pairs(op: QOp, x: te.Tensor, w: te.Tensor, tables: tuple) -> te.Tensor:
    """A depthwise convolution over pairs of input rows (the weight in ``packing.row_pair_weight``'s layout).

    ``plane`` holds the padded input, four channels at a time, as halfword pairs of rows ``(2q, 2q + 1)``; output
    row ``h`` meets the pairs from ``q = sh h // 2`` with the weights of its parity ``sh h % 2``: two kernel rows
    per product. ``acc`` runs channel-major over the rows rounded up to even (the spare row is never stored).
    """
    ho, wo, co = op.out_shape
    H, W, _ = op.in_shapes[0]
    pt, _, pl, _ = op.padding
    sh, sw = op.stride
    _, phases, pairs, kw_n, _ = (int(v) for v in w.shape)
    rows = (sh * (ho + ho % 2 - 1)) // 2 + pairs  # the last output row's first pair, and its others
    zp = tirx.const(op.in_q[0].zero_point, "int16")

    def fill(c4: PrimExpr, q: PrimExpr, col: PrimExpr, ci: PrimExpr, e: PrimExpr) -> PrimExpr:
        r = q * 2 + e
        inside = tirx.all(r >= pt, r < pt + H, col >= pl, col < pl + W)
        return te.if_then_else(inside, x[r - pt, col - pl, c4 * 4 + ci].astype("int16"), zp)

    plane = te.compute((co // 4, rows, (wo - 1) * sw + kw_n, 4, 2), fill, name="plane")
    rj = te.reduce_axis((0, pairs), "j")
    rkw = te.reduce_axis((0, kw_n), "kw")
    re_ = te.reduce_axis((0, 2), "e")

    def body(c: PrimExpr, h: PrimExpr, x_: PrimExpr) -> PrimExpr:
        phase = (h * sh) % 2 if phases == 2 else 0
        xv = plane[c // 4, (h * sh) // 2 + rj, x_ * sw + rkw, c % 4, re_].astype("int32")
        return te.sum(xv * w[c, phase, rj, rkw, re_].astype("int32"), axis=[rj, rkw, re_])

    acc = te.compute((co, ho + ho % 2, wo), body, name="acc")
    return _epilogue(op, acc, tables, lambda idx: idx[0], (ho, wo, co), lambda idx: (idx[2], idx[0], idx[1]))


def dense(op: QOp, x: te.Tensor, w: te.Tensor, *tables: te.Tensor) -> te.Tensor:
    """Fully connected on a flat (I,) input, weight (O, I)."""
    n_out, n_in = (int(d) for d in w.shape)
    ri = te.reduce_axis((0, n_in), "i")
    acc = te.compute((n_out,), lambda o: te.sum(x[ri].astype("int32") * w[o, ri].astype("int32"), axis=[ri]), name="acc")
    # The output is (1, 1, O) like every other tensor, so no reshape kernel follows.
    return _epilogue(op, acc, tables, lambda idx: idx[0], (1, 1, n_out))


def _epilogue(op: QOp, acc: te.Tensor, tables: tuple, chan: Any, shape: Any = None, index: Any = None) -> te.Tensor:
    """Add the folded bias (a stage of its own, ``biased``), requantize, add the zero point, clamp, store int8.

    ``tables`` are ``requant_consts``': ``(bias, multiplier, shift)``, or one ``(C, 4)`` table for
    ``fast_requantize_expr``, whose ``biased`` stage holds ``2 acc + 2 bias``. The separate stage keeps the sum an
    int32 value: inside one expression TVM's simplifier would widen ``int64(acc + bias)`` to
    ``int64(acc) + int64(bias)`` and the requantization's product to 64 x 64 bits. ``shape``: the output's shape
    when it differs from the accumulator's (dense: the accumulator's are its last indices); ``index``: the map from
    output to accumulator indices where they are not those (pixel pairs).
    """
    fast = len(tables) == 1
    if fast:
        rq = tables[0]
        biased = te.compute(acc.shape, lambda *idx: times_pow2(acc[idx], 1) + rq[chan(idx), 0], name="biased")
    else:
        bias, mult, shift = tables
        biased = te.compute(acc.shape, lambda *idx: acc[idx] + bias[chan(idx)], name="biased")

    left = bool((op.tensors["shift"] < 0).any())  # scales of one or more: the general form's left shift

    def f(*idx: PrimExpr) -> PrimExpr:
        a_idx = idx if shape is None else index(idx) if index is not None else idx[len(idx) - len(acc.shape) :]
        c = chan(a_idx)
        if fast:
            y = fast_requantize_expr(biased[a_idx], rq[c, 1], rq[c, 2], rq[c, 3], signless_clamp(op))
        elif op.params.get("single_rounding"):  # proven equal to float_scale where both are set
            y = requantize_single_expr(biased[a_idx], mult[c], shift[c])
        elif op.params.get("float_scale"):
            y = requantize_float_expr(biased[a_idx], mult[c])  # requant_consts put the float64 scales there
        else:
            y = requantize_expr(biased[a_idx], mult[c], shift[c], left_shift=left)
        zp = 0 if fast and zero_point_folded(op) else op.out_q.zero_point  # else in the table's rounding column
        return clamp_int8(y, zp, op.lo, op.hi)

    return te.compute(acc.shape if shape is None else shape, f, name="out")


def maxpool(op: QOp, x: te.Tensor) -> te.Tensor:
    """Max over each window (padded taps hold -128, which never wins), then the ReLU clamp if any."""
    ho, wo, c = op.out_shape
    sh, sw = op.stride
    x = pad_input(op, x, value=-128)
    rkh = te.reduce_axis((0, op.kernel[0]), "kh")
    rkw = te.reduce_axis((0, op.kernel[1]), "kw")
    acc = te.compute((ho, wo, c), lambda h, w, ch: te.max(x[h * sh + rkh, w * sw + rkw, ch], axis=[rkh, rkw]), name="acc")
    return te.compute(
        (ho, wo, c), lambda h, w, ch: tirx.max(tirx.min(acc[h, w, ch], tirx.const(op.hi, "int8")), tirx.const(op.lo, "int8")), name="out"
    )


def avgpool(op: QOp, x: te.Tensor, *tables: te.Tensor) -> te.Tensor:
    """Sum of ``x - zp_in`` over each window, requantized by a multiplier that includes 1/count.

    The zero point leaves the loop: the window sums raw int8 values (padded taps hold the zero point) and a
    ``biased`` stage subtracts ``count * zp_in`` once per output. A padded pool's multiplier and shift differ by
    output position (the taps inside the input): ``tables``, ``(Ho, Wo)`` each. With ``params["divide"]`` (imported
    models): ``avgpool_divide``.
    """
    if op.params.get("divide"):
        return avgpool_divide(op, x, *tables)
    ho, wo, c = op.out_shape
    zp = op.in_q[0].zero_point
    count = op.kernel[0] * op.kernel[1]
    acc = window_sum(op, x, zp)
    biased = te.compute((ho, wo, c), lambda h, w, ch: acc[h, w, ch] - i32(count * zp), name="biased")
    if tables:
        mult, shift = tables
        left = int(op.tensors["shift"].min()) < 0

        def requantized(h: PrimExpr, w: PrimExpr, ch: PrimExpr) -> PrimExpr:
            return requantize_expr(biased[h, w, ch], mult[h, w], shift[h, w], left_shift=left)
    else:
        m, s = int(op.tensors["multiplier"][0]), int(op.tensors["shift"][0])
        bound = 255 * count  # |x - zp| <= 255 per element

        def requantized(h: PrimExpr, w: PrimExpr, ch: PrimExpr) -> PrimExpr:
            return requantize_const(biased[h, w, ch], m, s, bound)

    return te.compute((ho, wo, c), lambda h, w, ch: clamp_int8(requantized(h, w, ch), op.out_q.zero_point, op.lo, op.hi),
                      name="out")


def window_sum(op: QOp, x: te.Tensor, pad_value: int = 0) -> te.Tensor:
    """The ``acc`` stage of an average: the int32 sum of the raw int8 values of each window (padded taps hold
    ``pad_value``)."""
    ho, wo, c = op.out_shape
    sh, sw = op.stride
    x = pad_input(op, x, value=pad_value)
    rkh = te.reduce_axis((0, op.kernel[0]), "kh")
    rkw = te.reduce_axis((0, op.kernel[1]), "kw")
    return te.compute(
        (ho, wo, c),
        lambda h, w, ch: te.sum(x[h * sh + rkh, w * sw + rkw, ch].astype("int32"), axis=[rkh, rkw]),
        name="acc",
    )


def avgpool_divide(op: QOp, x: te.Tensor, counts: te.Tensor | None = None) -> te.Tensor:
    """TFLite's integer average (``params["divide"]``): the raw window sum ``acc``, then ``out`` divides it by the
    window's taps inside the input (``counts``, a constant ``(Ho, Wo)`` int32 table where the pool is padded; a value,
    as index arithmetic would make the division int64, a library call on a 32-bit core), rounding half away from zero
    (C's truncating division of ``acc +- count / 2``), and clamps."""
    ho, wo, c = op.out_shape
    acc = window_sum(op, x)
    if any(op.padding) and counts is None:
        raise ValueError("a padded average pool takes its window counts (lowering.convert's tables)")

    def f(h: PrimExpr, w: PrimExpr, ch: PrimExpr) -> PrimExpr:
        s = acc[h, w, ch]
        count = counts[h, w] if counts is not None else i32(op.kernel[0] * op.kernel[1])
        half = tirx.truncdiv(count, i32(2))
        num = tirx.Select(s > i32(0), s + half, s - half)
        return tirx.max(tirx.min(tirx.truncdiv(num, count), i32(op.hi)), i32(op.lo)).astype("int8")

    return te.compute((ho, wo, c), f, name="out")


def _srdhm(a: PrimExpr, b: PrimExpr) -> PrimExpr:
    """SaturatingRoundingDoublingHighMul of int32 values, as ``(a b + 2**30) >> 31`` (see ``requantize_expr``; the
    saturating case needs both operands at INT32_MIN, which softmax's operands never are)."""
    return ((a.astype("int64") * b.astype("int64") + i64(1 << 30)) >> i64(31)).astype("int32")


def _sat_shl(t: PrimExpr, exponent: int) -> PrimExpr:
    """gemmlowp's saturating ``t * 2**exponent`` on int32 (a multiply: C leaves left shifts of negatives undefined)."""
    thr = (1 << (31 - exponent)) - 1
    return tirx.Select(t > i32(thr), i32(INT32_MAX), tirx.Select(t < i32(-thr), i32(-INT32_MAX - 1), t * i32(1 << exponent)))


def softmax(op: QOp, x: te.Tensor, table: te.Tensor) -> te.Tensor:
    """TFLite's int8 softmax over the channels of each position (``quant.semantics.softmax_int8``).

    ``table`` is ``semantics.softmax_table``: int32 ``(256, 2)`` of ``exp(-d)`` (Q0.31) and its Q12.19 term for each
    ``d = max - x``, so the per-element work is two lookups and one multiply. Per position (``h``, ``w``): the maximum,
    the sum of terms ``S`` (in [2**19, 2**31): the maximum's own term is 2**19), the headroom ``n = clz(S) - 1`` by
    eleven comparisons, and gemmlowp's reciprocal of ``S << n`` as TFLite computes it (stages ``recip0`` ..
    ``recip``: RoundingHalfSum(S << (n + 1) - 2**31, One) is exactly ``S << n``). Each output is then
    RoundingDivideByPOT(srdhm(recip, exp), 34 - n) of a non-negative value, ``((v >> (33 - n)) + 1) >> 1``.
    """
    hn, wn, cn = op.in_shapes[0]
    if cn >= 1 << (31 - 19):
        raise ValueError(f"softmax over {cn} channels: the sum of exps overflows int32")
    rc = te.reduce_axis((0, cn), "c")
    row_max = te.compute((hn, wn), lambda h, w: te.max(x[h, w, rc], axis=rc), name="row_max")

    def diff(h: PrimExpr, w: PrimExpr, c: PrimExpr) -> PrimExpr:
        return row_max[h, w].astype("int32") - x[h, w, c].astype("int32")

    rs = te.reduce_axis((0, cn), "c")
    row_sum = te.compute((hn, wn), lambda h, w: te.sum(table[diff(h, w, rs), 1], axis=rs), name="row_sum")

    def headroom(h: PrimExpr, w: PrimExpr) -> PrimExpr:
        s = row_sum[h, w]
        return sum((s < i32(1 << k)).astype("int32") for k in range(20, 31))  # clz(S) - 1 for S >= 2**19

    row_lz = te.compute((hn, wn), headroom, name="row_lz")

    def half_den(h: PrimExpr, w: PrimExpr) -> PrimExpr:
        return row_sum[h, w] << row_lz[h, w]  # the sum scaled into [2**30, 2**31): (1 + x) / 2 in Q0.31

    # Newton-Raphson for 1 / half_den in Q2.29 from 48/17 - 32/17 half_den, three steps. Each step is two stages,
    # the correction ``t`` (int32) and the saturating update: no expression repeats its predecessor, and no 64-bit
    # value reaches a comparison (the int32 index narrowing pass would narrow it).
    def correction(prev: te.Tensor) -> Any:
        def f(h: PrimExpr, w: PrimExpr) -> PrimExpr:
            err = i32(1 << 29) - _srdhm(half_den(h, w), prev[h, w])  # 1 - half_den x, Q2.29
            return _srdhm(prev[h, w], err)

        return f

    def update(prev: te.Tensor, t: te.Tensor) -> Any:
        return lambda h, w: prev[h, w] + _sat_shl(t[h, w], 2)

    x_i = te.compute((hn, wn), lambda h, w: i32(1515870810) + _srdhm(half_den(h, w), i32(-1010580540)), name="recip0")
    for k in range(1, 4):
        t = te.compute((hn, wn), correction(x_i), name=f"recip{k}_t")
        x_i = te.compute((hn, wn), update(x_i, t), name=f"recip{k}")
    recip = te.compute((hn, wn), lambda h, w: _sat_shl(x_i[h, w], 1), name="recip")

    def out(h: PrimExpr, w: PrimExpr, c: PrimExpr) -> PrimExpr:
        v = _srdhm(recip[h, w], table[diff(h, w, c), 0])
        # The shift is 33 - n in [22, 33], capped at 31 (v < 2**31). Both bounds are written out: TVM's bound
        # analysis of a shift by an unbounded amount is wrong and would drop the clamp below.
        shift = tirx.max(tirx.min(i32(33) - row_lz[h, w], i32(31)), i32(22))
        rounded = ((v >> shift) + i32(1)) >> i32(1)
        return tirx.min(rounded + i32(-128), i32(127)).astype("int8")  # rounded >= 0: only the top clamps

    return te.compute((hn, wn, cn), out, name="out")


def lut(op: QOp, x: te.Tensor, table: te.Tensor) -> te.Tensor:
    """Elementwise table lookup ``y = table[x + 128]`` (int8 table of 256 entries)."""
    return te.compute(tuple(op.out_shape), lambda *idx: table[x[idx].astype("int32") + i32(128)], name="out")


def pad(op: QOp, x: te.Tensor) -> te.Tensor:
    """Constant padding of H and W with ``params["value"]``."""
    pt, _, pl, _ = op.padding
    h_in, w_in, _ = op.in_shapes[0]
    value = tirx.const(int(op.params["value"]), "int8")

    def f(h: PrimExpr, w: PrimExpr, c: PrimExpr) -> PrimExpr:
        inside = tirx.all(h >= pt, h < pt + h_in, w >= pl, w < pl + w_in)
        return te.if_then_else(inside, x[h - pt, w - pl, c], value)

    return te.compute(tuple(op.out_shape), f, name="out")


def concat(op: QOp, *xs: te.Tensor) -> te.Tensor:
    """Channel concatenation: each output channel reads the input that holds it (no rescaling)."""
    starts = [0]
    for shape in op.in_shapes:
        starts.append(starts[-1] + shape[2])

    def f(h: PrimExpr, w: PrimExpr, c: PrimExpr) -> PrimExpr:
        value = xs[-1][h, w, c - starts[-2]]
        for k in range(len(xs) - 2, -1, -1):  # innermost: the last input
            value = te.if_then_else(c < starts[k + 1], xs[k][h, w, c - starts[k]], value)
        return value

    return te.compute(tuple(op.out_shape), f, name="out")


def add(op: QOp, a: te.Tensor, b: te.Tensor) -> te.Tensor:
    """Residual add (see ``quant.semantics``): both inputs rescaled to a common scale, summed, requantized."""
    m = [int(v) for v in op.tensors["multiplier"]]
    s = [int(v) for v in op.tensors["shift"]]
    zp_a, zp_b = op.in_q[0].zero_point, op.in_q[1].zero_point

    # |x - zp| <= 255, so each shifted input is below 2**28 and each rescaled one (scale <= 1/2) below 2**27.
    shifted = 255 << ADD_LEFT_SHIFT

    def f(*idx: PrimExpr) -> PrimExpr:
        ra = requantize_const(times_pow2(a[idx].astype("int32") - i32(zp_a), ADD_LEFT_SHIFT), m[0], s[0], shifted)
        rb = requantize_const(times_pow2(b[idx].astype("int32") - i32(zp_b), ADD_LEFT_SHIFT), m[1], s[1], shifted)
        return clamp_int8(requantize_const(ra + rb, m[2], s[2], shifted), op.out_q.zero_point, op.lo, op.hi)

    return te.compute(tuple(op.out_shape), f, name="out")


def mul(op: QOp, a: te.Tensor, b: te.Tensor) -> te.Tensor:
    """Elementwise product (``quant.semantics.mul_int8``); ``b`` is ``a``'s shape or one factor per channel."""
    m, s = int(op.tensors["multiplier"][0]), int(op.tensors["shift"][0])
    zp_a, zp_b = op.in_q[0].zero_point, op.in_q[1].zero_point
    per_channel = tuple(op.in_shapes[1][:2]) == (1, 1) and tuple(op.in_shapes[0][:2]) != (1, 1)

    def f(h: PrimExpr, w: PrimExpr, c: PrimExpr) -> PrimExpr:
        factor = b[0, 0, c] if per_channel else b[h, w, c]
        product = (a[h, w, c].astype("int32") - i32(zp_a)) * (factor.astype("int32") - i32(zp_b))  # |.| <= 255**2
        return clamp_int8(requantize_const(product, m, s, 255 * 255), op.out_q.zero_point, op.lo, op.hi)

    return te.compute(tuple(op.out_shape), f, name="out")


def upsample(op: QOp, x: te.Tensor) -> te.Tensor:
    """Nearest-neighbour upsampling (``quant.semantics.upsample_int8``): output pixel (h, w) reads (h // sh, w // sw)."""
    sh, sw = op.stride
    return te.compute(tuple(op.out_shape), lambda h, w, c: x[h // sh, w // sw, c], name="out")


def slice(op: QOp, x: te.Tensor, index: te.Tensor) -> te.Tensor:  # noqa: A001 (the op's name)
    """Rows and columns cut and stepped, channels gathered by the ``index`` table (``semantics.slice_int8``)."""
    (sh, sw), (pt, _, pl, _) = op.stride, op.padding
    return te.compute(tuple(op.out_shape), lambda h, w, c: x[pt + h * sh, pl + w * sw, index[c]], name="out")


def spread(op: QOp, x: te.Tensor) -> te.Tensor:
    """The input's pixels ``stride`` apart after ``padding``, the zero point between (``semantics.spread_int8``)."""
    (sh, sw), (pt, _, pl, _) = op.stride, op.padding
    h, w, _ = op.in_shapes[0]

    def f(y: PrimExpr, x_: PrimExpr, c: PrimExpr) -> PrimExpr:
        dy, dx = y - pt, x_ - pl
        inside = tirx.all(dy >= 0, dx >= 0, dy % sh == 0, dx % sw == 0, dy < (h - 1) * sh + 1, dx < (w - 1) * sw + 1)
        return te.if_then_else(inside, x[dy // sh, dx // sw, c], tirx.const(int(op.params["value"]), "int8"))

    return te.compute(tuple(op.out_shape), f, name="out")


_ = tvm  # tvm must be imported before tirx expressions are built

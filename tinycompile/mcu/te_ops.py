"""Tensor-expression (TE) definitions of the QuantGraph ops, one kernel per op, NHWC without a batch axis.

Each weighted op is a reduction stage ``acc`` (int32) followed by an epilogue stage ``out`` (requantize, add the zero
point, clamp, cast to int8); the scheduler later moves the epilogue inside the reduction's output loop, so the
accumulator shrinks to one register and no temporary buffer is left. Padding is read as the input zero point inside
the reduction, so no padded copy is materialised.

The weighted kernels use ``acc = bias_eff + sum(x * w)`` with ``bias_eff = bias - zp_in * sum(w)``: identical in
integers to the reference's ``bias + sum((x - zp_in) * w)`` (padded taps read ``zp_in`` and cancel), and it lets the
inner loop multiply raw int8 values.
"""

from __future__ import annotations

from typing import Any

import tvm
from tvm import te, tirx

from tinycompile.quant.graph import QOp
from tinycompile.quant.semantics import ADD_LEFT_SHIFT

PrimExpr = Any


def _i32(v: int) -> PrimExpr:
    return tirx.const(int(v), "int32")


def _i64(v: int) -> PrimExpr:
    return tirx.const(int(v), "int64")


def requantize_expr(acc: PrimExpr, multiplier: PrimExpr, shift: PrimExpr) -> PrimExpr:
    """TFLite double rounding in TIR, equal to ``intmath.requantize`` for multipliers in [0, 2**31), shifts in [0, 31].

    high = truncdiv(ab + nudge, 2**31) is SaturatingRoundingDoublingHighMul (its saturating case needs a negative
    multiplier, which never occurs). RoundingDivideByPOT(high, s) is written as one biased arithmetic shift,
    ``(high + (2**(s-1) - 1) + [high >= 0 and s > 0]) >> s``, which rounds ties away from zero; ``high >= 0``
    has the sign of ``ab`` (``high`` is 0 whenever they differ, where both biases give the same result), so
    ``ab`` is the only repeated sub-expression and the C compiler shares it.
    """
    ab = acc.astype("int64") * multiplier.astype("int64")
    positive = ab >= _i64(0)
    high = tirx.truncdiv(ab + tirx.Select(positive, _i64(1 << 30), _i64(1 - (1 << 30))), _i64(1 << 31))
    sh = shift.astype("int64")
    half_minus_one = ((_i64(1) << sh) - _i64(1)) >> _i64(1)
    bump = tirx.Select(tirx.all(positive, sh > _i64(0)), _i64(1), _i64(0))
    return ((high + half_minus_one + bump) >> sh).astype("int32")


def clamp_int8(v: PrimExpr, zero_point: int, lo: int, hi: int) -> PrimExpr:
    """Add the output zero point, clamp to ``[lo, hi]``, cast to int8."""
    return tirx.max(tirx.min(v + _i32(zero_point), _i32(hi)), _i32(lo)).astype("int8")


def _padded(x: te.Tensor, op: QOp, h: PrimExpr, w: PrimExpr, c: PrimExpr) -> PrimExpr:
    """``x[h - pad_top, w - pad_left, c]``, or the input zero point outside the input."""
    pt, _, pl, _ = op.padding
    ih, iw = h - pt, w - pl
    H, W, _ = op.in_shapes[0]
    conds = []
    if op.padding[0]:
        conds.append(ih >= 0)
    if op.padding[1]:
        conds.append(ih < H)
    if op.padding[2]:
        conds.append(iw >= 0)
    if op.padding[3]:
        conds.append(iw < W)
    if not conds:
        return x[ih, iw, c]
    return te.if_then_else(tirx.all(*conds), x[ih, iw, c], tirx.const(op.in_q[0].zero_point, "int8"))


def conv(op: QOp, x: te.Tensor, w: te.Tensor, bias: te.Tensor, mult: te.Tensor, shift: te.Tensor) -> te.Tensor:
    """Standard convolution, weight (O, KH, KW, I)."""
    ho, wo, co = op.out_shape
    kh_n, kw_n = op.kernel
    sh, sw = op.stride
    rkh = te.reduce_axis((0, kh_n), "kh")
    rkw = te.reduce_axis((0, kw_n), "kw")
    rci = te.reduce_axis((0, op.in_shapes[0][2]), "ci")
    acc = te.compute(
        (ho, wo, co),
        lambda h, x_, o: te.sum(
            _padded(x, op, h * sh + rkh, x_ * sw + rkw, rci).astype("int32") * w[o, rkh, rkw, rci].astype("int32"),
            axis=[rkh, rkw, rci],
        ),
        name="acc",
    )
    return _epilogue(op, acc, bias, mult, shift, lambda idx: idx[2])


def dwconv(op: QOp, x: te.Tensor, w: te.Tensor, bias: te.Tensor, mult: te.Tensor, shift: te.Tensor) -> te.Tensor:
    """Depthwise convolution, weight (KH, KW, C)."""
    ho, wo, co = op.out_shape
    kh_n, kw_n = op.kernel
    sh, sw = op.stride
    rkh = te.reduce_axis((0, kh_n), "kh")
    rkw = te.reduce_axis((0, kw_n), "kw")
    acc = te.compute(
        (ho, wo, co),
        lambda h, x_, c: te.sum(
            _padded(x, op, h * sh + rkh, x_ * sw + rkw, c).astype("int32") * w[rkh, rkw, c].astype("int32"),
            axis=[rkh, rkw],
        ),
        name="acc",
    )
    return _epilogue(op, acc, bias, mult, shift, lambda idx: idx[2])


def dense(op: QOp, x: te.Tensor, w: te.Tensor, bias: te.Tensor, mult: te.Tensor, shift: te.Tensor) -> te.Tensor:
    """Fully connected on a flat (I,) input, weight (O, I)."""
    n_out, n_in = (int(d) for d in w.shape)
    ri = te.reduce_axis((0, n_in), "i")
    acc = te.compute((n_out,), lambda o: te.sum(x[ri].astype("int32") * w[o, ri].astype("int32"), axis=[ri]), name="acc")
    # The output is (1, 1, O) like every other tensor, so no reshape kernel follows.
    return te.compute(
        (1, 1, n_out),
        lambda _h, _w, o: clamp_int8(requantize_expr(acc[o] + bias[o], mult[o], shift[o]), op.out_q.zero_point, op.lo, op.hi),
        name="out",
    )


def _epilogue(op: QOp, acc: te.Tensor, bias: te.Tensor, mult: te.Tensor, shift: te.Tensor, chan: Any) -> te.Tensor:
    def f(*idx: PrimExpr) -> PrimExpr:
        c = chan(idx)
        return clamp_int8(requantize_expr(acc[idx] + bias[c], mult[c], shift[c]), op.out_q.zero_point, op.lo, op.hi)

    return te.compute(acc.shape, f, name="out")


def maxpool(op: QOp, x: te.Tensor) -> te.Tensor:
    """Max over each window (no padding), then the ReLU clamp if any."""
    ho, wo, c = op.out_shape
    sh, sw = op.stride
    rkh = te.reduce_axis((0, op.kernel[0]), "kh")
    rkw = te.reduce_axis((0, op.kernel[1]), "kw")
    acc = te.compute((ho, wo, c), lambda h, w, ch: te.max(x[h * sh + rkh, w * sw + rkw, ch], axis=[rkh, rkw]), name="acc")
    return te.compute(
        (ho, wo, c), lambda h, w, ch: tirx.max(tirx.min(acc[h, w, ch], tirx.const(op.hi, "int8")), tirx.const(op.lo, "int8")), name="out"
    )


def avgpool(op: QOp, x: te.Tensor) -> te.Tensor:
    """Sum of ``x - zp_in`` over each window, requantized by a multiplier that includes 1/count."""
    ho, wo, c = op.out_shape
    sh, sw = op.stride
    zp = op.in_q[0].zero_point
    rkh = te.reduce_axis((0, op.kernel[0]), "kh")
    rkw = te.reduce_axis((0, op.kernel[1]), "kw")
    acc = te.compute(
        (ho, wo, c),
        lambda h, w, ch: te.sum(x[h * sh + rkh, w * sw + rkw, ch].astype("int32") - _i32(zp), axis=[rkh, rkw]),
        name="acc",
    )
    m, s = int(op.tensors["multiplier"][0]), int(op.tensors["shift"][0])
    return te.compute(
        (ho, wo, c),
        lambda h, w, ch: clamp_int8(requantize_expr(acc[h, w, ch], _i32(m), _i32(s)), op.out_q.zero_point, op.lo, op.hi),
        name="out",
    )


def add(op: QOp, a: te.Tensor, b: te.Tensor) -> te.Tensor:
    """Residual add (see ``quant.semantics``): both inputs rescaled to a common scale, summed, requantized."""
    m = [int(v) for v in op.tensors["multiplier"]]
    s = [int(v) for v in op.tensors["shift"]]
    zp_a, zp_b = op.in_q[0].zero_point, op.in_q[1].zero_point

    def f(*idx: PrimExpr) -> PrimExpr:
        ra = requantize_expr((a[idx].astype("int32") - _i32(zp_a)) << _i32(ADD_LEFT_SHIFT), _i32(m[0]), _i32(s[0]))
        rb = requantize_expr((b[idx].astype("int32") - _i32(zp_b)) << _i32(ADD_LEFT_SHIFT), _i32(m[1]), _i32(s[1]))
        return clamp_int8(requantize_expr(ra + rb, _i32(m[2]), _i32(s[2])), op.out_q.zero_point, op.lo, op.hi)

    return te.compute(tuple(op.out_shape), f, name="out")


def bias_eff(op: QOp) -> Any:
    """``bias - zp_in * sum(w)`` per output channel (int32), see the module docstring."""
    import numpy as np

    w = op.tensors["weight"].astype(np.int64)
    zp = op.in_q[0].zero_point
    if op.op == "dwconv":
        sums = w.sum(axis=(0, 1))
    else:
        sums = w.reshape(len(w), -1).sum(axis=1)
    out = op.tensors["bias"].astype(np.int64) - zp * sums
    if out.min() < -(2**31) or out.max() >= 2**31:
        raise OverflowError(f"{op.op}: folded bias outside int32")
    return out.astype(np.int32)


_ = tvm  # tvm must be imported before tirx expressions are built

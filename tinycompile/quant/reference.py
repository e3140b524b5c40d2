"""The integer reference: a numpy interpreter of a QuantGraph, the oracle every back end must equal bit for bit.

Public API::

    run(graph, x)            -> int8 (N, H, W, C) output of the last op
    run_layers(graph, x)     -> int8 output of every op, in order
    accuracy(graph, x, y)    -> top-1 accuracy on float (N, C, H, W) inputs

``x`` is int8 ``(N, H, W, C)`` (use ``graph.quantize_input`` on a task's float inputs). Sums are exact (int64);
an accumulator outside int32 raises, because every back end accumulates in int32.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tinycompile.quant.graph import QOp, QuantGraph
from tinycompile.quant.intmath import INT32_MAX, INT32_MIN, requantize_float, requantize_to_int8
from tinycompile.quant import semantics
from tinycompile.quant.semantics import add_int8


def run(graph: QuantGraph, x: np.ndarray) -> np.ndarray:
    """int8 ``(N, H, W, C)`` input -> int8 output of the last op."""
    return run_layers(graph, x)[-1]


def run_layers(graph: QuantGraph, x: np.ndarray) -> list[np.ndarray]:
    """int8 outputs ``(N, H, W, C)`` of every op in execution order."""
    x = np.asarray(x)
    if x.dtype != np.int8 or x.shape[1:] != tuple(graph.input_shape):
        raise ValueError(f"input must be int8 of shape (N, {', '.join(map(str, graph.input_shape))}), but got {x.dtype} {x.shape}")
    outs: list[np.ndarray] = []
    for i, op in enumerate(graph.ops):
        args = [x if j == -1 else outs[j] for j in op.inputs]
        y = OPS[op.op](op, *args)
        assert y.shape[1:] == tuple(op.out_shape), f"op {i} ({op.op}): shape {y.shape[1:]} != {op.out_shape}"
        outs.append(y)
    return outs


def accuracy(graph: QuantGraph, x: np.ndarray, y: np.ndarray, batch: int = 1024) -> float:
    """Top-1 accuracy of the int8 network on float ``(N, C, H, W)`` inputs."""
    correct = 0
    for i in range(0, len(x), batch):
        out = run(graph, graph.quantize_input(x[i : i + batch]))
        correct += int((out.reshape(len(out), -1).argmax(1) == y[i : i + batch]).sum())
    return correct / max(len(x), 1)


def _windows(op: QOp, x: np.ndarray, pad_value: int) -> np.ndarray:
    """(N, Ho, Wo, C, KH, KW) int64 windows of ``x - 0`` padded with ``pad_value``."""
    pt, pb, pl, pr = op.padding
    xp = np.pad(x.astype(np.int64), ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=pad_value)
    kh, kw = op.kernel
    sh, sw = op.stride
    win = sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    ho, wo = op.out_shape[0], op.out_shape[1]
    return win[:, :ho, :wo]


def _checked(acc: np.ndarray, op: QOp) -> np.ndarray:
    if acc.size and (acc.min() < INT32_MIN or acc.max() > INT32_MAX):
        raise OverflowError(f"{op.op}: an int32 accumulator overflows ({acc.min()}..{acc.max()})")
    return acc


def _exact_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # float64 matmul is exact here (|sums| < 2**53) and far faster than numpy's integer matmul.
    return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)


def _post(op: QOp, acc: np.ndarray) -> np.ndarray:
    t = op.tensors
    if op.params.get("float_scale"):  # TFLite's fully connected: the double-precision scale is the definition
        return np.clip(requantize_float(_checked(acc, op), t["scale"]) + op.out_q.zero_point, op.lo, op.hi).astype(np.int8)
    return requantize_to_int8(_checked(acc, op), t["multiplier"].astype(np.int64), t["shift"].astype(np.int64),
                              op.out_q.zero_point, op.lo, op.hi, single=bool(op.params.get("single_rounding")))


def _conv(op: QOp, x: np.ndarray) -> np.ndarray:
    zp = op.in_q[0].zero_point
    win = _windows(op, x, zp) - zp  # (N, Ho, Wo, I, KH, KW)
    n, ho, wo = win.shape[:3]
    cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(n * ho * wo, -1)  # (KH, KW, I) order matches the weight
    w = op.tensors["weight"].reshape(len(op.tensors["weight"]), -1)
    acc = _exact_dot(cols, w.T) + op.tensors["bias"]
    return _post(op, acc).reshape(n, ho, wo, -1)


def _dwconv(op: QOp, x: np.ndarray) -> np.ndarray:
    zp = op.in_q[0].zero_point
    win = _windows(op, x, zp) - zp  # (N, Ho, Wo, C, KH, KW)
    w = op.tensors["weight"].astype(np.int64).transpose(2, 0, 1)  # (C, KH, KW)
    acc = (win * w).sum(axis=(4, 5)) + op.tensors["bias"]
    return _post(op, acc)


def _dense(op: QOp, x: np.ndarray) -> np.ndarray:
    flat = x.reshape(len(x), -1).astype(np.int64) - op.in_q[0].zero_point
    acc = _exact_dot(flat, op.tensors["weight"].T) + op.tensors["bias"]
    return _post(op, acc).reshape(len(x), 1, 1, -1)


def _maxpool(op: QOp, x: np.ndarray) -> np.ndarray:
    out = _windows(op, x, -128).max(axis=(4, 5))  # a padded tap (-128) never wins
    return np.clip(out, op.lo, op.hi).astype(np.int8)


def _avgpool(op: QOp, x: np.ndarray) -> np.ndarray:
    if op.params.get("divide"):  # TFLite's integer average of the raw values (imported models; padded pools)
        counts = semantics.window_counts(op.in_shapes[0][:2], op.out_shape[:2], op.kernel, op.stride, op.padding)
        return semantics.avgpool_divide(_windows(op, x, 0).sum(axis=(4, 5)), counts[:, :, None], op.lo, op.hi)
    zp = op.in_q[0].zero_point
    acc = (_windows(op, x, zp) - zp).sum(axis=(4, 5))  # padded taps add 0
    per_position = op.out_shape[0], op.out_shape[1], 1  # a padded pool: one multiplier per output position
    m, s = (op.tensors[k].reshape(per_position) if op.tensors[k].size > 1 else int(op.tensors[k][0])
            for k in ("multiplier", "shift"))
    return requantize_to_int8(_checked(acc, op), m, s, op.out_q.zero_point, op.lo, op.hi)


def _flatten(op: QOp, x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), 1, 1, -1)


def _add(op: QOp, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    t = op.tensors
    return add_int8(a, b, op.in_q[0].zero_point, op.in_q[1].zero_point, t["multiplier"], t["shift"], op.out_q.zero_point, op.lo, op.hi)


def _mul(op: QOp, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    t = op.tensors
    return semantics.mul_int8(a, b, op.in_q[0].zero_point, op.in_q[1].zero_point, int(t["multiplier"][0]),
                              int(t["shift"][0]), op.out_q.zero_point, op.lo, op.hi)


def _softmax(op: QOp, x: np.ndarray) -> np.ndarray:
    return semantics.softmax_int8(x, op.params)


def _lut(op: QOp, x: np.ndarray) -> np.ndarray:
    return semantics.lut_int8(x, op.tensors["table"])


def _pad(op: QOp, x: np.ndarray) -> np.ndarray:
    return semantics.pad_int8(x, op.padding, int(op.params["value"]))


def _upsample(op: QOp, x: np.ndarray) -> np.ndarray:
    return semantics.upsample_int8(x, tuple(op.stride))  # type: ignore[arg-type]


def _spread(op: QOp, x: np.ndarray) -> np.ndarray:
    return semantics.spread_int8(x, tuple(op.stride), tuple(op.padding), int(op.params["value"]))  # type: ignore[arg-type]


def _slice(op: QOp, x: np.ndarray) -> np.ndarray:
    return semantics.slice_int8(x, tuple(op.padding), tuple(op.stride), op.tensors["index"])  # type: ignore[arg-type]


def _concat(op: QOp, *xs: np.ndarray) -> np.ndarray:
    return semantics.concat_int8(*xs)


OPS = {
    "conv": _conv,
    "dwconv": _dwconv,
    "dense": _dense,
    "maxpool": _maxpool,
    "avgpool": _avgpool,
    "gap": _avgpool,
    "flatten": _flatten,
    "add": _add,
    "mul": _mul,
    "softmax": _softmax,
    "lut": _lut,
    "pad": _pad,
    "concat": _concat,
    "upsample": _upsample,
    "spread": _spread,
    "slice": _slice,
}

"""The MCU kernels of the imported-model ops (softmax, lut, pad, concat, avgpool divide, padded pools) are bit-exact
on QEMU.

Hand-built QuantGraphs (no quantizer, no TFLite file) with the op constants from ``quant.semantics``; every kernel's
output (not only the last) is dumped by the firmware and compared with the integer reference, on cortex-m4 and
rv32imc with TVM's C and LLVM codegens. ``test_import_semantics.py`` shows that reference equals TFLite's kernels.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinycompile.errors import UserError
from tinycompile.mcu.backend import build_and_run
from tinycompile.mcu.library import compile_graph
from tinycompile.quant import reference, semantics
from tinycompile.quant.graph import HWC, QOp, QParams, QuantGraph, spec_of
from tinycompile.quant.intmath import quantize_multiplier, requantize_to_int8
from tinycompile.targets import load_target

VECTORS = 16


def conv_op(rng: np.random.Generator, src: int, in_shape: HWC, in_q: QParams, channels: int, kernel: tuple[int, int],
            out_q: QParams) -> QOp:
    """A random valid-padding stride-1 conv whose requantization keeps most outputs inside int8."""
    h, w, ci = in_shape
    fan_in = kernel[0] * kernel[1] * ci
    weight = rng.integers(-127, 128, (channels, *kernel, ci)).astype(np.int8)
    # |acc| has a standard deviation near 74 * 73 * sqrt(fan_in) for random int8 data: map ~3 of them onto int8
    m, s = quantize_multiplier(40.0 / (74 * 73 * np.sqrt(fan_in)))
    out_shape = (h - kernel[0] + 1, w - kernel[1] + 1, channels)
    tensors = {
        "weight": weight,
        "bias": rng.integers(-2000, 2000, channels).astype(np.int32),
        "multiplier": np.full(channels, m, np.int32),
        "shift": np.full(channels, s, np.int32),
    }
    return QOp("conv", (src,), (in_shape,), out_shape, (in_q,), out_q, kernel=kernel, tensors=tensors)


def softmax_op(src: int, shape: HWC, in_q: QParams) -> QOp:
    """Softmax over the channels, params as the importer derives them (beta 1)."""
    return QOp("softmax", (src,), (shape,), shape, (in_q,), QParams(1 / 256, -128), params=semantics.softmax_params(1.0, in_q.scale))


def lut_op(src: int, shape: HWC, in_q: QParams, out_q: QParams, table: np.ndarray) -> QOp:
    """An elementwise table lookup."""
    return QOp("lut", (src,), (shape,), shape, (in_q,), out_q, tensors={"table": table})


def softmax_graph(rng: np.random.Generator) -> QuantGraph:
    """conv -> softmax over 12 channels at 2x3 positions; softmax straight on the input (4 channels); both
    concatenated (every op must reach the output: Relax drops the others)."""
    in_q, mid_q = QParams(0.05, -2), QParams(0.15, 3)
    c0 = conv_op(rng, -1, (2, 3, 4), in_q, 12, (1, 1), mid_q)
    s1, s2 = softmax_op(0, c0.out_shape, mid_q), softmax_op(-1, (2, 3, 4), in_q)
    out_q = s1.out_q
    cat = QOp("concat", (1, 2), ((2, 3, 12), (2, 3, 4)), (2, 3, 16), (out_q, out_q), out_q)
    return QuantGraph((2, 3, 4), in_q, [c0, s1, s2, cat])


def softmax_edges_graph(rng: np.random.Generator) -> QuantGraph:
    """Softmax over 100 channels (large sums of exps); a 1-channel conv and softmax over its single channel (the
    reciprocal saturates: every output is 127); softmax with a coarse input scale (many diffs skipped)."""
    in_q, mid_q, coarse = QParams(0.02, 5), QParams(0.3, -7), QParams(1.0, 0)
    c1 = conv_op(rng, -1, (1, 2, 100), in_q, 1, (1, 1), mid_q)
    s3 = QOp("softmax", (-1,), ((1, 2, 100),), (1, 2, 100), (coarse,), QParams(1 / 256, -128),
             params=semantics.softmax_params(1.0, coarse.scale))
    ops = [softmax_op(-1, (1, 2, 100), in_q), c1, softmax_op(1, c1.out_shape, mid_q), s3]
    q = ops[0].out_q
    ops.append(QOp("concat", (0, 2, 3), ((1, 2, 100), (1, 2, 1), (1, 2, 100)), (1, 2, 201), (q, q, q), q))
    return QuantGraph((1, 2, 100), in_q, ops)


def mixed_graph(rng: np.random.Generator) -> QuantGraph:
    """int8 requantization lut -> pad -> conv 3x3 -> logistic lut; conv 1x1 on a 6x5 map; concat of three;
    avgpool divide with a ReLU clamp; tanh lut."""
    in_q, rq, q = QParams(0.04, -9), QParams(0.03, 20), QParams(0.1, 3)  # 4/3: a left shift
    req = lut_op(-1, (5, 6, 3), in_q, rq, semantics.requantize_table(in_q.scale, in_q.zero_point, rq.scale, rq.zero_point))
    pad = QOp("pad", (0,), ((5, 6, 3),), (8, 7, 3), (rq,), rq, padding=(1, 2, 0, 1), params={"value": rq.zero_point})
    c2 = conv_op(rng, 1, (8, 7, 3), rq, 8, (3, 3), q)  # (6, 5, 8)
    sig = lut_op(2, (6, 5, 8), q, QParams(1 / 256, -128), semantics.logistic_table(q.scale, q.zero_point))
    c4 = conv_op(rng, 2, (6, 5, 8), q, 4, (1, 1), q)  # (6, 5, 4): an even pixel count in rows of five
    cat = QOp("concat", (3, 4, 2), ((6, 5, 8), (6, 5, 4), (6, 5, 8)), (6, 5, 20), (q, q, q), q)
    avg = QOp("avgpool", (5,), ((6, 5, 20),), (4, 2, 20), (q,), q, kernel=(3, 2), stride=(1, 2), lo=q.zero_point,
              params={"divide": 1})
    tanh = lut_op(6, (4, 2, 20), q, QParams(1 / 128, 0), semantics.tanh_table(q.scale, q.zero_point))
    return QuantGraph((5, 6, 3), in_q, [req, pad, c2, sig, c4, cat, avg, tanh])


def left_shift_graph(rng: np.random.Generator) -> QuantGraph:
    """Requantization scales of one or more (negative shifts: a left shift before the high multiply): a 1x1 conv
    whose six channels mix right and left shifts (the per-channel table path), then an average pool whose single
    scale needs a left shift (the build-time constant path)."""
    in_q, q = QParams(0.05, -4), QParams(0.08, 2)
    scales = [0.05, 0.3, 1.0, 1.3, 2.2, 4.5]
    reach = [100, 20, 6, 4, 3, 1]  # weight magnitudes keeping every channel's outputs off the rails
    weight = np.stack([rng.integers(-k, k + 1, (1, 1, 3)) for k in reach]).astype(np.int8)
    pairs = [quantize_multiplier(sc, allow_left_shift=True) for sc in scales]
    tensors = {
        "weight": weight,
        "bias": rng.integers(-50, 50, 6).astype(np.int32),
        "multiplier": np.array([m for m, _ in pairs], np.int32),
        "shift": np.array([sh for _, sh in pairs], np.int32),
    }
    conv = QOp("conv", (-1,), ((4, 5, 3),), (4, 5, 6), (in_q,), q, tensors=tensors)
    m, sh = quantize_multiplier(2.5, allow_left_shift=True)  # s_in / (count s_out) for a 2x2 window
    avg = QOp("avgpool", (0,), ((4, 5, 6),), (3, 4, 6), (q,), QParams(q.scale / 10, 1), kernel=(2, 2),
              tensors={"multiplier": np.array([m], np.int32), "shift": np.array([sh], np.int32)})
    return QuantGraph((4, 5, 3), in_q, [conv, avg])


def padded_pools_graph(rng: np.random.Generator) -> QuantGraph:
    """Pools whose windows leave the input (TFLite's SAME pools, ceil mode): a 3x3 stride-2 max pool padded on every
    side (its padded taps must never win over negative values), a 3x3 stride-1 average over the taps inside (9, 6 or
    4 of them), a 2x2 stride-2 average padded at the end only, over 4, 2 or 1 taps, and the 3x3 average again with a
    multiplier per output position (a float model's, requantized to another scale)."""
    in_q, q = QParams(0.05, -4), QParams(0.1, 30)  # zero point 30: much of the map lies below real zero
    c0 = conv_op(rng, -1, (7, 9, 4), in_q, 8, (1, 1), q)
    mp = QOp("maxpool", (0,), ((7, 9, 8),), (4, 5, 8), (q,), q, kernel=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1))
    ap = QOp("avgpool", (1,), ((4, 5, 8),), (4, 5, 8), (q,), q, kernel=(3, 3), padding=(1, 1, 1, 1),
             params={"divide": 1})
    ap2 = QOp("avgpool", (0,), ((7, 9, 8),), (4, 5, 8), (q,), q, kernel=(2, 2), stride=(2, 2), padding=(0, 1, 0, 1),
              lo=q.zero_point, params={"divide": 1})
    # a float model's padded average: requantized to its own output scale by a multiplier per count of taps inside
    out_q = QParams(0.07, -5)
    counts = semantics.window_counts((4, 5), (4, 5), (3, 3), (1, 1), (1, 1, 1, 1)).reshape(-1)
    pairs = [quantize_multiplier(q.scale / (int(n) * out_q.scale)) for n in counts]
    ap3 = QOp("avgpool", (1,), ((4, 5, 8),), (4, 5, 8), (q,), out_q, kernel=(3, 3), padding=(1, 1, 1, 1),
              tensors={"multiplier": np.array([m for m, _ in pairs], np.int32),
                       "shift": np.array([sh for _, sh in pairs], np.int32)})
    lift = lut_op(4, (4, 5, 8), out_q, q, semantics.requantize_table(out_q.scale, out_q.zero_point, q.scale, q.zero_point))
    cat = QOp("concat", (2, 3, 5), ((4, 5, 8), (4, 5, 8), (4, 5, 8)), (4, 5, 24), (q, q, q), q)
    return QuantGraph((7, 9, 4), in_q, [c0, mp, ap, ap2, ap3, lift, cat])


GRAPHS = {"softmax": softmax_graph, "softmax_edges": softmax_edges_graph, "mixed": mixed_graph, "left_shift": left_shift_graph,
          "padded_pools": padded_pools_graph}


def vectors_for(graph: QuantGraph, rng: np.random.Generator) -> np.ndarray:
    """Random int8 inputs plus the corners: all 127, all -128, equal rows, one maximum per row."""
    v = rng.integers(-128, 128, (VECTORS, *graph.input_shape)).astype(np.int8)
    v[0], v[1] = 127, -128
    v[2] = v[2, :, :, :1]  # each position's channels equal
    v[3] = -128
    v[3, :, :, 0] = 127  # one maximum per position, every other channel far below it
    v[4] = rng.integers(-3, 4, graph.input_shape)  # a narrow band: many near-equal exps
    return v


@pytest.fixture(scope="module")
def graphs() -> dict[str, tuple[QuantGraph, np.ndarray, object]]:
    rng = np.random.default_rng(3)
    out = {}
    for name, make in GRAPHS.items():
        graph = make(rng)
        out[name] = (graph, vectors_for(graph, rng), compile_graph(graph))
    return out


def test_graphs_exercise_the_ops(graphs) -> None:
    # Guards against vacuous cases: softmax outputs spread over the range (and the single-channel one saturates),
    # the luts and the clamps reach both ends, the divide mode's ReLU clamp is hit.
    g, v, _ = graphs["softmax"]
    outs = reference.run_layers(g, v)
    assert len(np.unique(outs[1])) > 50 and outs[1].min() == -128 and len(np.unique(outs[2])) > 50
    g, v, _ = graphs["softmax_edges"]
    outs = reference.run_layers(g, v)
    assert (outs[2] == 127).all() and len(np.unique(outs[0])) > 10 and len(np.unique(outs[3])) > 5
    g, v, _ = graphs["mixed"]
    outs = reference.run_layers(g, v)
    assert {-128, 127} <= set(np.unique(outs[3])) and (outs[6] == g.ops[6].lo).any() and len(np.unique(outs[7])) > 20
    assert len(np.unique(outs[0])) > 100  # the requantization table is not flat
    g, v, _ = graphs["left_shift"]
    outs = reference.run_layers(g, v)
    assert (g.ops[0].tensors["shift"] < 0).sum() == 4 and g.ops[1].tensors["shift"][0] < 0  # 1.0 is 0.5 * 2**1
    for c in range(6):  # every channel, right or left shifted, spreads over many values
        assert len(np.unique(outs[0][..., c])) > 20
    assert len(np.unique(outs[1])) > 50
    g, v, _ = graphs["padded_pools"]
    outs = reference.run_layers(g, v)
    corner_max = outs[0][:, :2, :2].max(axis=(1, 2))  # the max pool's first window: 2 x 2 taps inside the input
    assert np.array_equal(outs[1][:, 0, 0], corner_max) and (corner_max < g.ops[0].out_q.zero_point).any()
    edge_sum = outs[1][:, :2, :2].astype(int).sum(axis=(1, 2))  # the first average: 4 of its 9 taps inside
    assert np.array_equal(outs[2][:, 0, 0], semantics.avgpool_divide(edge_sum, 4, -128, 127))
    assert (outs[3] == g.ops[3].lo).any() and len(np.unique(outs[2])) > 50
    corner = (outs[1][:, :2, :2].astype(int) - 30).sum(axis=(1, 2))  # the multiplier form's first window: 4 taps
    m, sh = int(g.ops[4].tensors["multiplier"][0]), int(g.ops[4].tensors["shift"][0])
    assert np.array_equal(outs[4][:, 0, 0], requantize_to_int8(corner, m, sh, -5)) and len(np.unique(outs[4])) > 50


def test_dead_ops_are_refused(graphs) -> None:
    g, _, _ = graphs["softmax"]
    dead = QuantGraph(g.input_shape, g.input_q, g.ops[:3])  # op 1 (softmax of the conv) no longer reaches the output
    with pytest.raises(UserError, match="op.s. 0, 1 do not contribute"):
        compile_graph(dead)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(("target", "codegen"), [("cortex-m4", "c"), ("cortex-m4", "llvm"), ("rv32imc", "c"), ("rv32imc", "llvm")])
@pytest.mark.parametrize("case", list(GRAPHS))
def test_import_ops_bit_exact_on_qemu(graphs, case: str, target: str, codegen: str, tmp_path) -> None:
    graph, vectors, compiled = graphs[case]
    result = build_and_run(graph, spec_of(graph), load_target(target), tmp_path, vectors, codegen, compiled=compiled, check_layers=True)
    assert result.ok and result.mismatches == 0
    kernels = result.library.info.kernels
    assert len(kernels) == len(graph.ops)
    assert all(k.split("_", 1)[1] in {op.op for op in graph.ops} for k in kernels)  # l<i>_<op>, lowercase op

"""The integer reference of the imported-model ops equals TFLite's reference kernels (ai-edge-litert, BUILTIN_REF).

Each test writes tiny single-op int8 models with ``tests/tflite_models.py``, runs them in the LiteRT interpreter
with the reference op resolver and compares every output element with ``quant.reference`` on the equivalent
QuantGraph (whose ops take their constants from ``quant.semantics``). Fast: no compiler, no QEMU.
"""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tflite_models import ModelBuilder  # tests/ is on sys.path (tests/conftest.py lives there)

from tinycompile.quant import intmath, reference, semantics
from tinycompile.quant.graph import QOp, QParams, QuantGraph

ALL_INT8 = np.arange(-128, 128, dtype=np.int8)


def run_litert(model: bytes, *inputs: np.ndarray) -> np.ndarray:
    """Run a model in LiteRT's reference kernels and return its first output."""
    it = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    for detail, x in zip(it.get_input_details(), inputs):
        it.set_tensor(detail["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def one_op_graph(op: QOp, input_shape: tuple[int, int, int], input_q: QParams) -> QuantGraph:
    """A QuantGraph holding ``op`` alone."""
    return QuantGraph(input_shape, input_q, [op])


def softmax_op(shape: tuple[int, int, int], scale: float, zero_point: int, beta: float = 1.0) -> QOp:
    """A softmax QOp as the importer writes it."""
    q = QParams(scale, zero_point)
    return QOp("softmax", (-1,), (shape,), shape, (q,), QParams(1 / 256, -128), params=semantics.softmax_params(beta, scale))


@pytest.mark.parametrize("channels", [1, 2, 10, 12, 100])
def test_softmax_equals_litert(channels: int) -> None:
    rng = np.random.default_rng(channels)
    checked = 0
    for scale in (0.01, 0.0371, 0.1, 0.25, 0.5, 1.0):
        for zero_point in (-128, -5, 0, 77, 127):
            for beta in (1.0, 0.5, 2.0):
                shape = (3, 2, channels)
                b = ModelBuilder()
                x = b.input((1, *shape), scale=scale, zero_point=zero_point)
                model = b.finish([b.softmax(x, beta=beta)])
                v = rng.integers(-128, 128, (1, *shape)).astype(np.int8)
                v[0, 0, 0] = v[0, 0, 0, 0]  # a row of equal values
                v[0, 0, 1] = -128  # one maximum, every other value far below it (skipped beyond diff_min)
                v[0, 0, 1, 0] = 127
                graph = one_op_graph(softmax_op(shape, scale, zero_point, beta), shape, QParams(scale, zero_point))
                want = run_litert(model, v)
                got = reference.run(graph, v)
                np.testing.assert_array_equal(got, want, err_msg=f"scale={scale} zp={zero_point} beta={beta}")
                checked += 1
    assert checked == 90


def test_softmax_params_are_tflites() -> None:
    # Values TFLite's Prepare derives (Q5.26 input, multiplier in [2**30, 2**31), radius = 31 * 2**26 >> left_shift).
    p = semantics.softmax_params(1.0, 0.1)
    assert p == {"beta_multiplier": 1717986944, "beta_left_shift": 23, "diff_min": -248}
    # beta * scale * 2**26 = 2**26 exactly: multiplier 2**30, left shift 27, radius floor(31 * 2**26 / 2**27) = 15
    assert semantics.softmax_params(1.0, 1.0) == {"beta_multiplier": 2**30, "beta_left_shift": 27, "diff_min": -15}


def test_softmax_table_exp_is_accurate() -> None:
    # The fixed-point exp (Q0.31) is within ~2e-7 of the true value (gemmlowp's accuracy): guards the constants.
    p = semantics.softmax_params(1.0, 0.05)
    exp = semantics.softmax_table(p)[:, 0].astype(np.float64) / 2**31
    true = np.exp(-float(np.float32(0.05)) * np.arange(256))
    assert np.abs(exp - true).max() < 1e-6


@pytest.mark.parametrize("seed", range(4))
def test_lut_tables_equal_litert(seed: int) -> None:
    rng = np.random.default_rng(seed)
    allq = ALL_INT8.reshape(1, 1, 256, 1)
    for _ in range(12):
        scale = float(np.exp(rng.uniform(np.log(0.002), np.log(2.0))))
        zp = int(rng.integers(-128, 128))
        out_scale = float(np.exp(rng.uniform(np.log(0.002), np.log(2.0))))  # ratios above and below one
        out_zp = int(rng.integers(-128, 128))
        cases = {
            "logistic": (lambda b, x: b.logistic(x), semantics.logistic_table(scale, zp)),
            "tanh": (lambda b, x: b.tanh(x), semantics.tanh_table(scale, zp)),
            "quantize": (lambda b, x: b.quantize(x, out_scale, out_zp), semantics.requantize_table(scale, zp, out_scale, out_zp)),
        }
        for name, (build, table) in cases.items():
            b = ModelBuilder()
            x = b.input((1, 1, 256, 1), scale=scale, zero_point=zp)
            want = run_litert(b.finish([build(b, x)]), allq).reshape(-1)
            op = QOp("lut", (-1,), ((1, 256, 1),), (1, 256, 1), (QParams(scale, zp),), QParams(1.0, 0), tensors={"table": table})
            got = reference.run(one_op_graph(op, (1, 256, 1), QParams(scale, zp)), allq)
            np.testing.assert_array_equal(got.reshape(-1), want, err_msg=f"{name}: scale={scale} zp={zp}")


def test_requantize_table_left_shift() -> None:
    # An effective scale above one (TFLite shift > 0: the input is shifted left before the high multiply).
    table = semantics.requantize_table(0.5, 3, 0.1, -7)
    want = np.clip(np.round((ALL_INT8.astype(np.float64) - 3) * 5.0) - 7, -128, 127)
    np.testing.assert_array_equal(table, want.astype(np.int8))


@pytest.mark.parametrize(("pool", "stride"), [((2, 2), (2, 2)), ((3, 2), (1, 2)), ((5, 5), (1, 1)), ((1, 3), (1, 1))])
def test_avgpool_divide_equals_litert(pool: tuple[int, int], stride: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(pool) + sum(stride))
    shape = (5, 6, 3)
    for scale, zp, activation in ((0.05, -3, "NONE"), (0.2, 20, "RELU"), (0.02, -128, "RELU6")):
        b = ModelBuilder()
        x = b.input((1, *shape), scale=scale, zero_point=zp)
        y = b.average_pool2d(x, pool, stride, "VALID", activation)
        model = b.finish([y])
        out_shape = tuple(y.shape[1:])
        v = rng.integers(-128, 128, (4, *shape)).astype(np.int8)
        want = np.concatenate([run_litert(model, v[i : i + 1]) for i in range(len(v))])
        lo, hi = _activation_bounds(activation, scale, zp)
        op = QOp("avgpool", (-1,), (shape,), out_shape, (QParams(scale, zp),), QParams(scale, zp), kernel=pool, stride=stride,
                 lo=lo, hi=hi, params={"divide": 1})
        got = reference.run(one_op_graph(op, shape, QParams(scale, zp)), v)
        np.testing.assert_array_equal(got, want)


def _activation_bounds(activation: str, scale: float, zp: int) -> tuple[int, int]:
    """TFLite's quantized activation range of a fused activation (CalculateActivationRangeQuantized)."""
    if activation == "NONE":
        return -128, 127
    lo = max(-128, zp)
    hi = 127 if activation == "RELU" else min(127, zp + int(round(6.0 / np.float32(scale))))
    return lo, hi


def test_pad_and_concat_equal_litert() -> None:
    rng = np.random.default_rng(7)
    shape = (4, 3, 5)
    q = QParams(0.07, -9)
    b = ModelBuilder()
    x = b.input((1, *shape), scale=q.scale, zero_point=q.zero_point)
    model = b.finish([b.pad(x, [(0, 0), (2, 1), (0, 3), (0, 0)])])
    v = rng.integers(-128, 128, (1, *shape)).astype(np.int8)
    out_shape = (shape[0] + 3, shape[1] + 3, shape[2])
    op = QOp("pad", (-1,), (shape,), out_shape, (q,), q, padding=(2, 1, 0, 3), params={"value": q.zero_point})
    np.testing.assert_array_equal(reference.run(one_op_graph(op, shape, q), v), run_litert(model, v))

    # three inputs of different channel counts, all quantized as the output
    b = ModelBuilder()
    xs = [b.input((1, 2, 3, c), scale=q.scale, zero_point=q.zero_point) for c in (4, 1, 6)]
    model = b.finish([b.concatenation(xs, axis=-1)])
    vs = [rng.integers(-128, 128, (1, 2, 3, c)).astype(np.int8) for c in (4, 1, 6)]
    want = run_litert(model, *vs)
    got = semantics.concat_int8(*vs)
    np.testing.assert_array_equal(got, want)
    # and through the reference: concat of the graph input with itself
    op = QOp("concat", (-1, -1), ((2, 3, 4), (2, 3, 4)), (2, 3, 8), (q, q), q)
    np.testing.assert_array_equal(reference.run(one_op_graph(op, (2, 3, 4), q), vs[0]), np.concatenate([vs[0], vs[0]], -1))


def test_requantize_left_shift_equals_litert_quantize() -> None:
    # intmath.requantize with a negative shift is TFLite's MultiplyByQuantizedMultiplier for scales >= 1: an int8 ->
    # int8 QUANTIZE with the output scale below the input's runs exactly that on q - zp_in.
    rng = np.random.default_rng(11)
    allq = ALL_INT8.reshape(1, 1, 256, 1)
    left_shifts = set()
    for _ in range(10):
        in_scale = float(np.exp(rng.uniform(np.log(0.01), np.log(1.0))))
        ratio = float(np.exp(rng.uniform(np.log(1.0), np.log(40.0))))
        zp, out_zp = (int(v) for v in rng.integers(-128, 128, 2))
        out_scale = float(np.float32(in_scale / ratio))
        b = ModelBuilder()
        x = b.input((1, 1, 256, 1), scale=in_scale, zero_point=zp)
        want = run_litert(b.finish([b.quantize(x, out_scale, out_zp)]), allq).reshape(-1)
        m, s = intmath.quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)), allow_left_shift=True)
        assert (m, -s) == semantics.tflite_quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
        got = intmath.requantize_to_int8(ALL_INT8.astype(np.int64) - zp, m, s, out_zp)
        np.testing.assert_array_equal(got, want)
        left_shifts.add(-s)
    assert max(left_shifts) >= 5 and min(left_shifts) >= 1


def test_requantize_mixed_shifts_per_channel() -> None:
    # Per-channel shifts of both signs in one call, each channel as if alone.
    acc = np.array([[-70000, 3, 12345], [999, -1, -5]], np.int64)
    mult = np.array([1 << 30, 1518500250, 1200000000])
    shift = np.array([-3, 0, 7])
    got = intmath.requantize(acc, mult, shift)
    for c in range(3):
        alone = intmath.requantize(acc[:, c], int(mult[c]), int(shift[c]))
        np.testing.assert_array_equal(got[:, c], alone)
    np.testing.assert_array_equal(got[:, 0], acc[:, 0] * 4)  # 2**30 / 2**31 * 2**3 = 4 exactly

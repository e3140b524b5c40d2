"""The test-model writer: every op loads and runs in TFLite's reference interpreter, with TFLite's shapes, the
converter's conventions in the flatbuffer, and the semantics a hand numpy computation gives."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import tflite

from tflite_models import ModelBuilder, Op, Tensor
from tinycompile.quant.intmath import quantize_multiplier, requantize_to_int8

litert = pytest.importorskip("ai_edge_litert.interpreter")

RNG_SEED = 1234


def interpreter(data: bytes, preserve: bool = False):
    it = litert.Interpreter(
        model_content=data,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=preserve,
        num_threads=1,
    )
    it.allocate_tensors()
    return it


def run(data: bytes, xs: np.ndarray) -> np.ndarray:
    """Each row of ``xs`` through the reference kernels (a local helper: these tests do not lean on the oracle)."""
    it = interpreter(data)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    results = []
    for x in xs:
        it.set_tensor(inp["index"], x)
        it.invoke()
        results.append(it.get_tensor(out["index"]).copy())
    return np.stack(results)


def random_inputs(x: Tensor, n: int, seed: int = RNG_SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if x.dtype == np.int8:
        return rng.integers(-128, 128, (n, *x.shape)).astype(np.int8)
    return rng.uniform(-1, 1, (n, *x.shape)).astype(np.float32)


def round_half_away(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


# ------------------------------------------------------------------------------------- hand numpy references


def tflite_padding(size: int, kernel: int, stride: int, dilation: int, padding: str) -> tuple[int, int, int]:
    """(output size, pad before, pad after), written out from TFLite's ComputeOutSize / ComputePaddingHeightWidth."""
    eff = (kernel - 1) * dilation + 1
    out = -(-size // stride) if padding == "SAME" else -(-(size - eff + 1) // stride)
    total = max((out - 1) * stride + eff - size, 0) if padding == "SAME" else 0
    return out, total // 2, total - total // 2


def conv_numpy(x: np.ndarray, w: np.ndarray, stride, padding: str, dilation=(1, 1), depthwise: bool = False):
    """NHWC convolution in float64 (zero padding); ``w`` is (O, KH, KW, I), or (1, KH, KW, C * M) for depthwise."""
    n, h, wd, c = x.shape
    kh, kw = w.shape[1:3]
    oh, top, bottom = tflite_padding(h, kh, stride[0], dilation[0], padding)
    ow, left, right = tflite_padding(wd, kw, stride[1], dilation[1], padding)
    xp = np.pad(x.astype(np.float64), ((0, 0), (top, bottom), (left, right), (0, 0)))
    o = w.shape[3] if depthwise else w.shape[0]
    y = np.zeros((n, oh, ow, o))
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dilation[0], j * dilation[1]
            patch = xp[:, r0:r0 + (oh - 1) * stride[0] + 1:stride[0], c0:c0 + (ow - 1) * stride[1] + 1:stride[1], :]
            if depthwise:
                y += np.repeat(patch, o // c, axis=3) * w[0, i, j, :].astype(np.float64)
            else:
                y += patch @ w[:, i, j, :].astype(np.float64).T
    return y


def pool_numpy(x: np.ndarray, k, stride, padding: str, reduce: str) -> np.ndarray:
    """TFLite pooling: SAME windows only see in-bounds elements (the average divides by their count)."""
    n, h, w, c = x.shape
    oh, top, _ = tflite_padding(h, k[0], stride[0], 1, padding)
    ow, left, _ = tflite_padding(w, k[1], stride[1], 1, padding)
    y = np.zeros((n, oh, ow, c), np.float64)
    for r in range(oh):
        for q in range(ow):
            r0, q0 = r * stride[0] - top, q * stride[1] - left
            win = x[:, max(r0, 0):min(r0 + k[0], h), max(q0, 0):min(q0 + k[1], w), :].astype(np.float64)
            y[:, r, q, :] = win.max(axis=(1, 2)) if reduce == "max" else win.mean(axis=(1, 2))
    return y


# ------------------------------------------------------------------------------------------- every op runs

Build = Callable[[ModelBuilder, Tensor], Tensor]

OPS: dict[str, tuple[Build, tuple[int, ...]]] = {
    # name: (how to build it on a (1, 9, 7, 3) input, the output shape TFLite computes)
    "conv2d_same_stride2": (lambda b, x: b.conv2d(x, 8, (3, 3), (2, 2), "SAME", "RELU6"), (1, 5, 4, 8)),
    "conv2d_valid_dilated": (lambda b, x: b.conv2d(x, 4, (3, 2), (1, 2), "VALID", "RELU", (2, 1)), (1, 5, 3, 4)),
    "depthwise_same_stride2": (lambda b, x: b.depthwise_conv2d(x, (3, 3), (2, 2), "SAME", "RELU"), (1, 5, 4, 3)),
    "conv2d_grouped": (lambda b, x: b.conv2d(b.conv2d(x, 6, (1, 1)), 4, (3, 3), (1, 1), "SAME", "RELU", groups=2),
                       (1, 9, 7, 4)),
    "strided_slice": (lambda b, x: b.strided_slice(x, (0, 1, 0, 2), (1, 8, 7, -4), (1, 2, 3, -1), end_mask=0b0100),
                      (1, 4, 3, 3)),
    "slice": (lambda b, x: b.slice(x, (0, 2, 1, 1), (1, -1, 4, 2)), (1, 7, 4, 2)),
    "split": (lambda b, x: b.concatenation(b.split(x, [1, 2])[::-1]), (1, 9, 7, 3)),
    "split_equal": (lambda b, x: b.split(b.conv2d(x, 4, (1, 1)), [2, 2])[1], (1, 9, 7, 2)),
    "gather": (lambda b, x: b.gather(x, [2, 0, 2, 1]), (1, 9, 7, 4)),
    "channel_shuffle": (lambda b, x: b.channel_shuffle(b.conv2d(x, 6, (1, 1)), 3), (1, 9, 7, 6)),
    "depthwise_multiplier2": (lambda b, x: b.depthwise_conv2d(x, (2, 2), depth_multiplier=2, padding="VALID"),
                              (1, 8, 6, 6)),
    "average_pool_same": (lambda b, x: b.average_pool2d(x, (3, 3), (2, 2), "SAME"), (1, 5, 4, 3)),
    "max_pool_valid": (lambda b, x: b.max_pool2d(x, (2, 2), (2, 2), "VALID"), (1, 4, 3, 3)),
    "add": (lambda b, x: b.add(x, b.conv2d(x, 3, (1, 1)), "RELU"), (1, 9, 7, 3)),
    "add_broadcast": (lambda b, x: b.add(x, b.mean(x, (1, 2), keepdims=True)), (1, 9, 7, 3)),
    "reshape": (lambda b, x: b.reshape(x, (1, -1)), (1, 189)),
    "fully_connected": (lambda b, x: b.fully_connected(b.reshape(x, (1, -1)), 10, "RELU"), (1, 10)),
    "fully_connected_per_channel": (lambda b, x: b.fully_connected(b.reshape(x, (1, -1)), 10, per_channel=True),
                                    (1, 10)),
    "fully_connected_rows": (lambda b, x: b.fully_connected(x, 5), (63, 5)),
    "fully_connected_keep_dims": (lambda b, x: b.fully_connected(x, 5, keep_num_dims=True), (1, 9, 7, 5)),
    "softmax": (lambda b, x: b.softmax(b.reshape(x, (1, -1))), (1, 189)),
    "pad": (lambda b, x: b.pad(x, ((0, 0), (1, 2), (0, 1), (0, 0))), (1, 12, 8, 3)),
    "concatenation": (lambda b, x: b.concatenation([x, b.max_pool2d(x, (1, 1), (1, 1))], axis=3), (1, 9, 7, 6)),
    "mean_keepdims": (lambda b, x: b.mean(x, (1, 2), keepdims=True), (1, 1, 1, 3)),
    "mean": (lambda b, x: b.mean(x, (1, 2)), (1, 3)),
    "reduce_max_keepdims": (lambda b, x: b.reduce_max(x, (1, 2), keepdims=True), (1, 1, 1, 3)),
    "abs": (lambda b, x: b.activation(x, "ABS"), (1, 9, 7, 3)),
    "logistic": (lambda b, x: b.logistic(x), (1, 9, 7, 3)),
    "tanh": (lambda b, x: b.tanh(x), (1, 9, 7, 3)),
}


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_runs_with_tflite_shapes_and_varying_outputs(name: str, dtype: str) -> None:
    build, shape = OPS[name]
    b = ModelBuilder(seed=3)
    x = b.input((1, 9, 7, 3), scale=0.05, zero_point=-3, dtype=dtype)
    y = build(b, x)
    assert y.shape == shape
    assert y.dtype == np.dtype(dtype)
    out = run(b.finish([y]), random_inputs(x, 6))
    assert out.shape == (6, *shape) and out.dtype == np.dtype(dtype)
    assert len(np.unique(out)) > 4, "outputs barely vary on random inputs"
    assert not np.array_equal(out[0], out[1]), "outputs do not depend on the input"
    if dtype == "int8":
        saturated = np.isin(out, (-128, 127)).mean()
        assert saturated < 0.9, f"{saturated:.0%} of the outputs are saturated"


@pytest.mark.parametrize(
    "build",
    [
        lambda b, x: b.quantize(x, 0.01, 5),
        lambda b, x: b.dequantize(b.quantize(x)),
        lambda b, x: b.dequantize(b.conv2d(b.quantize(x, 1 / 128, 0), 4, activation="RELU")),
    ],
    ids=["quantize", "quantize_dequantize", "float_io_int8_conv"],
)
def test_quantize_and_dequantize_bridge_float_and_int8(build: Build) -> None:
    b = ModelBuilder(seed=2)
    x = b.input((1, 5, 5, 3), dtype="float32")
    y = build(b, x)
    out = run(b.finish([y]), random_inputs(x, 4))
    assert out.dtype == y.dtype and out.shape == (4, *y.shape)
    assert len(np.unique(out)) > 4


def test_int8_to_int8_quantize_requantizes() -> None:
    b = ModelBuilder()
    x = b.input((1, 16), scale=0.1, zero_point=0)
    y = b.quantize(x, 0.2, 10)
    xs = np.arange(-128, 128, dtype=np.int8).reshape(16, 1, 16)
    out = run(b.finish([y]), xs).astype(np.int64)
    # TFLite requantizes with the fixed-point multiplier of 0.1 / 0.2 = 0.5, so every odd input is a tie: the
    # doubling high multiply rounds those up (-63.5 -> -63), not away from zero as a float round would.
    expected = requantize_to_int8(xs.astype(np.int64), *quantize_multiplier(0.5), 10)
    np.testing.assert_array_equal(out, expected)
    assert out[0, 0, 1] == -63 + 10


# ---------------------------------------------------------------------------------- flatbuffer conventions


def parse(data: bytes):
    assert data[4:8] == b"TFL3"
    return tflite.Model.GetRootAsModel(data, 0)


def test_model_header_buffers_and_opcodes_follow_the_converter() -> None:
    b = ModelBuilder()
    x = b.input((1, 8, 8, 2))
    y = b.conv2d(x, 4)
    y = b.depthwise_conv2d(y)
    z = b.fully_connected(b.reshape(y, (1, -1)), 3)
    data = b.finish([z])
    m = parse(data)
    assert m.Version() == 3
    assert m.Buffers(0).DataLength() == 0
    assert m.SubgraphsLength() == 1
    sg = m.Subgraphs(0)
    assert list(sg.InputsAsNumpy()) == [x.index] and list(sg.OutputsAsNumpy()) == [z.index]
    codes = {m.OperatorCodes(i).BuiltinCode(): m.OperatorCodes(i) for i in range(m.OperatorCodesLength())}
    assert set(codes) == {Op.CONV_2D, Op.DEPTHWISE_CONV_2D, Op.RESHAPE, Op.FULLY_CONNECTED}
    for code, oc in codes.items():
        assert oc.DeprecatedBuiltinCode() == code
    # The int8 versions the converter writes (the KWS reference model has the same ones).
    assert {c: oc.Version() for c, oc in codes.items()} == {
        Op.CONV_2D: 3, Op.DEPTHWISE_CONV_2D: 3, Op.RESHAPE: 1, Op.FULLY_CONNECTED: 4,
    }
    # Activations point at the empty buffer 0; each constant has its own, 16-byte aligned in the file.
    constants = [t for op in b.ops for t in op.inputs if t.index != x.index and t.index not in
                 {o.index for p in b.ops for o in p.outputs}]
    seen = set()
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        is_constant = i in {c.index for c in constants}
        assert (t.Buffer() != 0) == is_constant
        if is_constant:
            assert t.Buffer() not in seen
            seen.add(t.Buffer())
            offset = m.Buffers(t.Buffer()).DataAsNumpy().ctypes.data - np.frombuffer(data, np.uint8).ctypes.data
            assert offset % 16 == 0


def test_opcodes_beyond_127_use_the_placeholder_in_the_deprecated_field() -> None:
    b = ModelBuilder()
    x = b.input((1, 4))
    y = b.logistic(x)
    b._ops[-1].opcode = Op.STABLEHLO_ADD  # no builder method writes one; the field logic is what is tested
    m = parse(b.finish([y]))
    oc = m.OperatorCodes(0)
    assert (oc.DeprecatedBuiltinCode(), oc.BuiltinCode()) == (127, Op.STABLEHLO_ADD)


def tensor_quant(m, index: int) -> tuple[np.ndarray, np.ndarray, int]:
    q = m.Subgraphs(0).Tensors(index).Quantization()
    return q.ScaleAsNumpy(), q.ZeroPointAsNumpy(), q.QuantizedDimension()


def test_weights_are_symmetric_per_channel_with_matching_bias_scales() -> None:
    b = ModelBuilder(seed=5)
    x = b.input((1, 6, 6, 3), scale=0.02, zero_point=7)
    c = b.conv2d(x, 5, (3, 3))
    d = b.depthwise_conv2d(c, (3, 3))
    f = b.fully_connected(b.reshape(d, (1, -1)), 4)
    m = parse(b.finish([f]))
    for op, qdim, channels in ((b.ops[0], 0, 5), (b.ops[1], 3, 5), (b.ops[3], 0, 1)):
        _, wt, bt = op.inputs
        ws, wz, wd = tensor_quant(m, wt.index)
        bs, bz, bd = tensor_quant(m, bt.index)
        assert wd == qdim and len(ws) == channels and not wz.any()
        assert b.data(wt).dtype == np.int8 and np.abs(b.data(wt)).max() <= 127  # symmetric: -128 never used
        assert b.data(bt).dtype == np.int32 and bd == 0 and not bz.any()
        in_scale = np.float32(op.inputs[0].scale)
        np.testing.assert_allclose(bs, (in_scale * ws).astype(np.float32), rtol=1e-6)
    assert b.ops[0].inputs[1].shape == (5, 3, 3, 3)  # (O, KH, KW, I)
    assert b.ops[1].inputs[1].shape == (1, 3, 3, 5)  # (1, KH, KW, C)
    assert b.ops[3].inputs[1].shape == (4, 6 * 6 * 5)  # (units, in)
    opts = tflite.DepthwiseConv2DOptions()
    op = m.Subgraphs(0).Operators(1)
    opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
    assert opts.DepthMultiplier() == 1


@pytest.mark.parametrize("mode", ["option", "tensor", "both"])
def test_reshape_writes_the_new_shape_where_asked_and_equals_numpy(mode: str) -> None:
    b = ModelBuilder()
    x = b.input((1, 4, 3, 2))
    y = b.reshape(x, (2, -1, 3), mode=mode)
    assert y.shape == (2, 4, 3)
    data = b.finish([y])
    m = parse(data)
    op = m.Subgraphs(0).Operators(0)
    assert (op.InputsLength() == 2) == (mode != "option")
    has_option = op.BuiltinOptionsType() == tflite.BuiltinOptions.ReshapeOptions
    assert has_option == (mode != "tensor")
    if has_option:
        opts = tflite.ReshapeOptions()
        opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        assert list(opts.NewShapeAsNumpy()) == [2, -1, 3]
    if mode != "option":
        assert list(b.data(b.ops[0].inputs[1])) == [2, -1, 3]
    xs = random_inputs(x, 3)
    np.testing.assert_array_equal(run(data, xs), xs.reshape(3, 2, 4, 3))


def test_finish_is_repeatable_and_save_writes_it(tmp_path) -> None:
    b = ModelBuilder(seed=9)
    x = b.input((1, 4, 4, 1))
    y = b.conv2d(x, 2)
    first = b.finish([y])
    assert b.finish([y]) == first
    assert b.save(tmp_path / "m.tflite", [y]).read_bytes() == first
    b2 = ModelBuilder(seed=9)  # same seed, same weights
    assert b2.finish([b2.conv2d(b2.input((1, 4, 4, 1)), 2)]) == first


# ------------------------------------------------------------------------------------ float semantics


@pytest.mark.parametrize(
    "kernel,stride,padding,dilation,size",
    [((3, 3), (2, 2), "SAME", (1, 1), (9, 7)), ((3, 2), (2, 1), "VALID", (1, 1), (8, 5)),
     ((2, 3), (1, 1), "SAME", (2, 2), (6, 7)), ((4, 4), (3, 2), "SAME", (1, 1), (10, 9))],
)
def test_float_conv_and_depthwise_equal_numpy(kernel, stride, padding, dilation, size) -> None:
    b = ModelBuilder(seed=4)
    x = b.input((1, *size, 3), dtype="float32")
    c = b.conv2d(x, 5, kernel, stride, padding, dilation=dilation)
    d = b.depthwise_conv2d(x, kernel, stride, padding, dilation=dilation, depth_multiplier=2)
    xs = random_inputs(x, 3)
    for op, y, depthwise in ((b.ops[0], c, False), (b.ops[1], d, True)):
        w, bias = b.data(op.inputs[1]), b.data(op.inputs[2])
        expected = conv_numpy(xs[:, 0], w, stride, padding, dilation, depthwise) + bias
        got = run(b.finish([y]), xs)[:, 0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_float_dense_pools_mean_pad_concat_equal_numpy() -> None:
    b = ModelBuilder(seed=6)
    x = b.input((1, 7, 5, 4), dtype="float32")
    xs = random_inputs(x, 3)
    x0 = xs[:, 0].astype(np.float64)
    cases = []
    f = b.fully_connected(b.reshape(x, (1, -1)), 6, "RELU")
    w, bias = b.data(b.ops[-1].inputs[1]), b.data(b.ops[-1].inputs[2])
    cases.append((f, np.maximum(x0.reshape(3, 1, -1) @ w.T.astype(np.float64) + bias, 0)))
    cases.append((b.average_pool2d(x, (3, 2), (2, 2), "SAME"), pool_numpy(x0, (3, 2), (2, 2), "SAME", "avg")))
    cases.append((b.max_pool2d(x, (3, 3), (2, 1), "VALID"), pool_numpy(x0, (3, 3), (2, 1), "VALID", "max")))
    cases.append((b.mean(x, (1, 2), keepdims=True), x0.mean(axis=(1, 2), keepdims=True)))
    cases.append((b.pad(x, ((0, 0), (2, 0), (1, 3), (0, 0))), np.pad(x0, ((0, 0), (2, 0), (1, 3), (0, 0)))))
    cases.append((b.concatenation([x, x], axis=-1), np.concatenate([x0, x0], axis=-1)))
    cases.append((b.logistic(x), 1 / (1 + np.exp(-x0))))
    cases.append((b.tanh(x), np.tanh(x0)))
    cases.append((b.softmax(x), np.exp(x0) / np.exp(x0).sum(axis=-1, keepdims=True)))
    cases.append((b.add(x, x, "RELU6"), np.clip(2 * x0, 0, 6)))
    for y, expected in cases:
        got = run(b.finish([y]), xs)
        np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------- int8 semantics


def int8_conv_expected(b: ModelBuilder, xs: np.ndarray, op_index: int, stride, padding: str, depthwise: bool,
                       activation: str) -> np.ndarray:
    """TFLite's int8 convolution by hand: int32 accumulation, per-channel double rounding, zero point, clamp."""
    op = b.ops[op_index]
    x, wt, bt = op.inputs
    y = op.outputs[0]
    acc = conv_numpy(xs[:, 0].astype(np.int64) - x.zero_point, b.data(wt), stride, padding, depthwise=depthwise)
    acc = np.rint(acc).astype(np.int64) + b.data(bt)
    eff = [float(np.float64(np.float32(x.scale)) * np.float64(s) / np.float64(np.float32(y.scale)))
           for s in b.scales(wt)]
    mult, shift = zip(*(quantize_multiplier(e) for e in eff))
    lo, hi = -128, 127
    if activation in ("RELU", "RELU6"):
        lo = max(lo, y.zero_point)
    if activation == "RELU6":
        hi = min(hi, y.zero_point + int(round_half_away(np.float32(6) / np.float32(y.scale))))
    return requantize_to_int8(acc, np.array(mult), np.array(shift), y.zero_point, lo, hi)


@pytest.mark.parametrize("activation", ["NONE", "RELU", "RELU6"])
@pytest.mark.parametrize("input_zero_point", [-128, 0, 127])
def test_int8_conv_equals_hand_double_rounding(activation: str, input_zero_point: int) -> None:
    b = ModelBuilder(seed=7)
    x = b.input((1, 9, 7, 3), scale=0.03, zero_point=input_zero_point)
    # Per-channel scales over three decades: every channel has its own multiplier and shift.
    y = b.conv2d(x, 6, (3, 3), (2, 2), "SAME", activation, weight_scales=np.logspace(-4, -1, 6))
    assert y.shape == (1, 5, 4, 6)
    xs = random_inputs(x, 8)
    got = run(b.finish([y]), xs)[:, 0]
    np.testing.assert_array_equal(got, int8_conv_expected(b, xs, 0, (2, 2), "SAME", False, activation))
    assert len(np.unique(got)) > 10


@pytest.mark.parametrize("output_zero_point", [-128, 127])
def test_int8_conv_output_zero_point_at_the_limits(output_zero_point: int) -> None:
    b = ModelBuilder(seed=12)
    x = b.input((1, 7, 7, 2), scale=0.05, zero_point=0)
    y = b.conv2d(x, 4, (3, 3), (2, 2), "SAME", output_zero_point=output_zero_point)
    xs = random_inputs(x, 6)
    got = run(b.finish([y]), xs)[:, 0]
    np.testing.assert_array_equal(got, int8_conv_expected(b, xs, 0, (2, 2), "SAME", False, "NONE"))
    # Only one sign of the output is representable: the other piles up at the zero point, the first still varies.
    assert 0.2 < np.mean(got == output_zero_point) < 0.9 and len(np.unique(got)) > 10


def test_int8_depthwise_equals_hand_double_rounding() -> None:
    b = ModelBuilder(seed=8)
    x = b.input((1, 8, 7, 4), scale=0.04, zero_point=-128)
    y = b.depthwise_conv2d(x, (3, 3), (2, 2), "SAME", "RELU", weight_scales=np.logspace(-3, -1, 4))
    xs = random_inputs(x, 8)
    got = run(b.finish([y]), xs)[:, 0]
    np.testing.assert_array_equal(got, int8_conv_expected(b, xs, 0, (2, 2), "SAME", True, "RELU"))


def test_saturating_relu6_clamps_at_six() -> None:
    b = ModelBuilder(seed=10)
    x = b.input((1, 9, 7, 3), scale=0.05, zero_point=0)
    # Weights ten times larger than the default make most pre-activations exceed 6.
    y = b.conv2d(x, 8, (3, 3), activation="RELU6", weight_scales=0.01, output_scale=6 / 255, output_zero_point=-128)
    out = run(b.finish([y]), random_inputs(x, 4))
    six = -128 + round(6 / (6 / 255))
    assert six == 127 and out.max() == six
    assert (out == six).mean() > 0.2 and (out == -128).mean() > 0.2
    assert ((out > -128) & (out < six)).any()


def test_int8_max_pool_pad_concat_are_exact_moves() -> None:
    b = ModelBuilder()
    x = b.input((1, 6, 5, 2), scale=0.1, zero_point=-20)
    xs = random_inputs(x, 3)
    x0 = xs[:, 0]
    p = b.pad(x, ((0, 0), (1, 2), (0, 1), (0, 0)))
    np.testing.assert_array_equal(run(b.finish([p]), xs)[:, 0],
                                  np.pad(x0, ((0, 0), (1, 2), (0, 1), (0, 0)), constant_values=-20))
    m = b.max_pool2d(x, (3, 3), (2, 2), "SAME")
    np.testing.assert_array_equal(run(b.finish([m]), xs)[:, 0], pool_numpy(x0, (3, 3), (2, 2), "SAME", "max"))
    c = b.concatenation([x, x], axis=1)
    np.testing.assert_array_equal(run(b.finish([c]), xs)[:, 0], np.concatenate([x0, x0], axis=1))


def test_dequantize_and_float_quantize_follow_the_formulas() -> None:
    b = ModelBuilder()
    x = b.input((1, 64), dtype="float32", real_range=(-2, 2))
    q = b.quantize(x, 0.02, -7)
    d = b.dequantize(q)
    xs = random_inputs(x, 5) * 2
    expected_q = np.clip(round_half_away(xs.astype(np.float32) / np.float32(0.02)) - 7, -128, 127)
    np.testing.assert_array_equal(run(b.finish([q]), xs), expected_q)
    np.testing.assert_allclose(run(b.finish([d]), xs), (expected_q + 7) * np.float32(0.02), rtol=1e-6)


def test_caller_overrides_weights_bias_and_output_quantization() -> None:
    b = ModelBuilder()
    x = b.input((1, 1, 1, 2), scale=0.5, zero_point=0)
    w = np.array([[[[1, 2]]], [[[-3, 4]]]], np.int8)
    y = b.conv2d(x, 2, (1, 1), weights=w, weight_scales=[0.25, 0.5], bias=np.array([1, -2], np.int32),
                 output_scale=0.125, output_zero_point=3)
    assert (y.scale, y.zero_point) == (0.125, 3)
    np.testing.assert_array_equal(b.data(b.ops[0].inputs[1]), w)
    xs = np.array([[[[[2, 4]]]]], np.int8)
    # channel 0: (2*1 + 4*2 + 1) * 0.5*0.25 / 0.125 = 11; channel 1: (2*-3 + 4*4 - 2) * 0.5*0.5 / 0.125 = 16
    np.testing.assert_array_equal(run(b.finish([y]), xs).ravel(), [11 + 3, 16 + 3])


def test_builder_rejects_malformed_requests() -> None:
    b = ModelBuilder()
    x = b.input((1, 5, 5, 2))
    with pytest.raises(ValueError, match="weights must have shape"):
        b.conv2d(x, 3, weights=np.zeros((3, 3, 3, 3), np.int8))
    with pytest.raises(ValueError, match="weight scales"):
        b.conv2d(x, 3, weight_scales=[0.1, 0.2])
    with pytest.raises(ValueError, match="does not fit"):
        b.conv2d(x, 3, (7, 7), padding="VALID")
    with pytest.raises(ValueError, match="cannot reshape"):
        b.reshape(x, (1, 7, -1))
    with pytest.raises(ValueError, match="padding"):
        b.max_pool2d(x, padding="FULL")
    with pytest.raises(ValueError, match="share a type"):
        b.add(x, b.input((1, 5, 5, 2), dtype="float32"))


def test_default_quantization_keeps_a_deep_chain_unsaturated() -> None:
    b = ModelBuilder(seed=11)
    x = b.input((1, 49, 10, 1), scale=0.58, zero_point=83)
    y = b.conv2d(x, 16, (10, 4), (2, 2), "SAME", "RELU")
    for _ in range(3):
        y = b.depthwise_conv2d(y, (3, 3), activation="RELU")
        y = b.conv2d(y, 16, (1, 1), activation="RELU")
    y = b.average_pool2d(y, (25, 5), (25, 5), "VALID")
    y = b.fully_connected(b.reshape(y, (1, -1)), 12)
    data = b.finish([b.softmax(y)])
    it = interpreter(data, preserve=True)
    xs = random_inputs(x, 10)
    values: dict[int, list[np.ndarray]] = {}
    for row in xs:
        it.set_tensor(x.index, row)
        it.invoke()
        for op in b.ops:
            values.setdefault(op.outputs[0].index, []).append(it.get_tensor(op.outputs[0].index).copy())
    for op in b.ops[:-1]:  # the softmax's quantization is TFLite's, not the builder's
        v = np.stack(values[op.outputs[0].index])
        top = np.mean(v == 127)
        assert top < 0.05, f"{op.kind}: {top:.0%} of the outputs saturate at 127"
        assert len(np.unique(v)) >= 16, f"{op.kind}: only {len(np.unique(v))} distinct values"
    probabilities = np.stack(values[b.ops[-1].outputs[0].index])
    assert len({p.tobytes() for p in probabilities}) > 1

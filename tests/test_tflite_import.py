"""int8 TFLite import: every supported op, the awkward cases, equal bit for bit to TFLite's reference kernels layer by
layer; and the one-line refusals of what does not import."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from support import run_cli
from tflite_models import ModelBuilder, Op, squeeze_excite

from tinycompile.errors import UserError
from tinycompile.frontends import load_model
from tinycompile.frontends.tflite import NO_TENSOR, import_tflite
from tinycompile.frontends.tflite_oracle import reference_outputs, reference_tensors
from tinycompile.quant import reference

INPUTS = 48


def _conv_stack(b: ModelBuilder) -> list:
    """Stride-2 SAME convolutions on odd sizes, per-channel scales over four decades, saturating ReLU6."""
    x = b.input((1, 9, 7, 3), scale=0.04, zero_point=-128)
    scales = np.geomspace(1e-4, 1e-1, 8).astype(np.float32)
    y = b.conv2d(x, 8, (3, 3), (2, 2), "SAME", "RELU6", weight_scales=scales, output_scale=0.02, output_zero_point=-128)
    y = b.conv2d(y, 6, (2, 3), (2, 1), "SAME", "RELU")
    return [b.conv2d(y, 5, (1, 1), (1, 1), "VALID", "NONE", output_zero_point=127)]


def _depthwise(b: ModelBuilder) -> list:
    x = b.input((1, 11, 8, 6), scale=0.03, zero_point=127)
    y = b.depthwise_conv2d(x, (3, 3), (2, 2), "SAME", "RELU")
    return [b.depthwise_conv2d(y, (5, 3), (1, 1), "SAME", "RELU6")]


def _dense(b: ModelBuilder) -> list:
    """Fully connected layers behind a flattening RESHAPE (a view here), with and without ReLU."""
    x = b.input((1, 3, 4, 5), scale=0.05, zero_point=-9)
    y = b.fully_connected(b.reshape(x, (1, 60)), 16, "RELU")
    return [b.fully_connected(y, 7, "NONE")]


def _residual(b: ModelBuilder) -> list:
    x = b.input((1, 6, 6, 4), scale=0.05, zero_point=3)
    a = b.conv2d(x, 4, (3, 3), (1, 1), "SAME", "RELU")
    c = b.conv2d(a, 4, (3, 3), (1, 1), "SAME", "NONE")
    return [b.add(a, c, "RELU")]


def _pools(b: ModelBuilder) -> list:
    """Average pools of odd (multiplier form) and even (integer division) window sizes, a max pool, MEAN."""
    x = b.input((1, 12, 12, 5), scale=0.05, zero_point=-20)
    y = b.average_pool2d(x, (3, 3), (3, 3), "VALID")
    y = b.max_pool2d(y, (2, 2), (2, 2), "VALID", "RELU")
    a = b.average_pool2d(y, (1, 2), (1, 1), "VALID")
    return [b.add(b.mean(y, (1, 2), keepdims=True), b.mean(a, (1, 2), keepdims=True))]


def _same_pools(b: ModelBuilder) -> list:
    """SAME pools, whose windows leave the input: TFLite's max ignores the taps outside, its average divides by the
    taps inside. Odd sizes pad both sides (3 x 3, stride 2) or the end only (2 x 2, stride 2)."""
    x = b.input((1, 9, 7, 6), scale=0.05, zero_point=10)  # zero point 10: many values below real zero
    m = b.max_pool2d(x, (3, 3), (2, 2), "SAME")
    a = b.average_pool2d(m, (3, 3), (1, 1), "SAME", "RELU")
    return [b.add(a, b.average_pool2d(x, (2, 2), (2, 2), "SAME"))]


def _classifier_head(b: ModelBuilder) -> list:
    x = b.input((1, 4, 4, 8), scale=0.1, zero_point=-128)
    y = b.conv2d(x, 10, (4, 4), (1, 1), "VALID", "NONE")
    y = b.reshape(y, (1, 10))
    return [b.softmax(y)]


def _pad_concat(b: ModelBuilder) -> list:
    x = b.input((1, 5, 5, 3), scale=0.05, zero_point=-5)
    y = b.pad(x, ((0, 0), (1, 2), (0, 1), (0, 0)))
    a = b.conv2d(y, 4, (3, 3), (1, 1), "VALID", "RELU", output_scale=0.05, output_zero_point=-30)
    c = b.conv2d(y, 3, (3, 3), (1, 1), "VALID", "RELU", output_scale=0.05, output_zero_point=-30)
    return [b.concatenation([a, c], axis=3, output_scale=0.05, output_zero_point=-30)]


def _lookups(b: ModelBuilder) -> list:
    x = b.input((1, 4, 4, 6), scale=0.07, zero_point=10)
    y = b.logistic(x)
    y = b.quantize(y, scale=0.011, zero_point=-3)
    return [b.tanh(y)]


def _float_io(b: ModelBuilder) -> list:
    """An int8 model with float input and output: QUANTIZE and DEQUANTIZE at the edges."""
    x = b.input((1, 6, 5, 2), dtype="float32", real_range=(-3.0, 3.0))
    q = b.quantize(x, scale=0.025, zero_point=-4)
    y = b.conv2d(q, 4, (3, 3), (1, 1), "SAME", "RELU")
    return [b.dequantize(y)]


def _left_shift(b: ModelBuilder) -> list:
    """An effective scale above one (requantization by a left shift)."""
    x = b.input((1, 4, 4, 3), scale=0.05, zero_point=0)
    w = b.rng.integers(-1, 2, size=(4, 1, 1, 3)).astype(np.int8)
    return [b.conv2d(x, 4, (1, 1), (1, 1), "VALID", "NONE", weights=w, weight_scales=0.2, output_scale=0.008, output_zero_point=0)]


def _mean_of_one(b: ModelBuilder) -> list:
    """A MEAN over one element to a finer scale: TFLite's folded multiplier needs a left shift."""
    x = b.input((1, 1, 1, 6), scale=0.05, zero_point=-3)
    return [b.mean(x, (1, 2), keepdims=True, output_scale=0.03, output_zero_point=2)]


def _activations(b: ModelBuilder) -> list:
    """Every standalone activation, each on its own quantization (input and output scales differ; one ABS keeps its
    input's scale, which TFLite's kernel does not rescale)."""
    x = b.input((1, 3, 5, 8), scale=0.03, zero_point=-7)
    y = b.add(b.activation(x, "ABS", output_scale=0.02, output_zero_point=-128),
              b.activation(x, "ABS", output_scale=0.03, output_zero_point=-110), output_scale=0.05, output_zero_point=-128)
    y = b.activation(y, "HARD_SWISH", output_scale=0.02, output_zero_point=-90)
    y = b.activation(y, "LEAKY_RELU", alpha=0.1, output_scale=0.025, output_zero_point=-60)
    y = b.activation(y, "GELU", output_scale=0.02, output_zero_point=-100)
    y = b.activation(y, "GELU", approximate=True, output_scale=0.017, output_zero_point=-100)
    y = b.activation(b.quantize(y, scale=0.006, zero_point=5), "RELU_N1_TO_1", output_scale=0.007, output_zero_point=-2)
    y = b.activation(y, "RELU", output_scale=0.003, output_zero_point=-128)
    y = b.activation(b.quantize(y, scale=0.005, zero_point=20), "RELU_0_TO_1", output_scale=0.004, output_zero_point=-128)
    return [b.activation(b.quantize(y, scale=0.004, zero_point=-40), "RELU6", output_scale=0.003, output_zero_point=-120)]


def _squeeze_excite(b: ModelBuilder) -> list:
    """A MobileNetV3 block as Keras writes it: hard swish, a squeeze-and-excitation gate whose hard sigmoid is
    ``relu6(x + 3) * (1 / 6)`` (ADD and MUL of constant scalars), the gate's product, then MEAN, SQUEEZE and a dense."""
    x = b.input((1, 6, 6, 8), scale=0.05, zero_point=-3)
    y = b.activation(b.conv2d(x, 16, (1, 1), (1, 1), "SAME", "NONE"), "HARD_SWISH")
    y = squeeze_excite(b, b.depthwise_conv2d(y, (3, 3), (1, 1), "SAME", "NONE"), 4)
    y = b.squeeze(b.mean(y, (1, 2), keepdims=True), (1, 2))
    return [b.fully_connected(y, 5, "NONE")]


def _products(b: ModelBuilder) -> list:
    """MUL of two tensors of one shape with a fused ReLU6, then a per-channel gate given as the first input (the
    import swaps it second) whose scale needs a left shift."""
    x = b.input((1, 4, 4, 6), scale=0.04, zero_point=9)
    a = b.conv2d(x, 6, (1, 1), (1, 1), "SAME", "NONE")
    y = b.mul(a, x, "RELU6", output_scale=0.01, output_zero_point=-100)
    g = b.mean(x, (1, 2), keepdims=True, output_scale=0.01, output_zero_point=0)
    return [b.mul(g, y, output_scale=0.00002, output_zero_point=3)]


def _keras_conv1d(b: ModelBuilder) -> list:
    """A 1-D network as Keras's converter writes Conv1D: EXPAND_DIMS, CONV_2D over (1, L), SQUEEZE; a constant
    clip (MINIMUM, MAXIMUM), a SUB of a constant; GlobalAveragePooling1D's MEAN over the length of an NLC tensor."""
    x = b.input((1, 40, 3), scale=0.04, zero_point=5)
    y = b.conv2d(b.expand_dims(x, 1), 8, (1, 5), (1, 2), "SAME", "RELU")
    y = b.squeeze(y, (1,))
    top = b.constant(np.array([100], np.int8), scales=y.scale, zero_points=y.zero_point)
    y = b.binary("MAXIMUM", b.binary("MINIMUM", y, top), b.constant(np.array([-100], np.int8), scales=y.scale,
                                                                     zero_points=y.zero_point))
    y = b.binary("SUB", y, b.constant(np.array([40], np.int8), scales=0.01), output_scale=0.03, output_zero_point=0)
    y = b.squeeze(b.conv2d(b.expand_dims(y, 1), 8, (1, 3), (1, 1), "SAME", "RELU"), (1,))
    return [b.fully_connected(b.mean(y, (1,)), 4)]


def _global_max(b: ModelBuilder) -> list:
    """Keras's GlobalMaxPooling2D (REDUCE_MAX over H and W, kept as 1 x 1) before a dense layer."""
    x = b.input((1, 5, 6, 4), scale=0.05, zero_point=-3)
    y = b.reduce_max(b.conv2d(x, 8, (3, 3), (1, 1), "SAME", "RELU"), (1, 2), keepdims=True)
    return [b.fully_connected(b.reshape(y, (1, 8)), 3)]


def _global_max_1d(b: ModelBuilder) -> list:
    """Keras's Conv1D then GlobalMaxPooling1D: REDUCE_MAX over the length of an NLC tensor, dropped."""
    x = b.input((1, 12, 3), scale=0.04, zero_point=5)
    y = b.squeeze(b.conv2d(b.expand_dims(x, 1), 6, (1, 3), (1, 1), "SAME", "NONE"), (1,))
    return [b.fully_connected(b.reduce_max(y, (1,)), 3)]


def _dense_per_step(b: ModelBuilder) -> list:
    """Keras's Dense on a sequence (FULLY_CONNECTED with keep_num_dims: the same dense layer at every step) between
    a Conv1D and GlobalAveragePooling1D."""
    x = b.input((1, 10, 3), scale=0.04, zero_point=5)
    y = b.squeeze(b.conv2d(b.expand_dims(x, 1), 6, (1, 3), (1, 1), "SAME", "RELU"), (1,))  # (1, 10, 6)
    y = b.fully_connected(y, 8, "RELU", keep_num_dims=True)  # (1, 10, 8)
    return [b.fully_connected(b.mean(y, (1,)), 3)]


def _dense_per_pixel(b: ModelBuilder) -> list:
    """Keras's Dense on an NHWC map (keep_num_dims): a dense layer at every pixel, then MEAN and a classifier."""
    x = b.input((1, 4, 5, 3), scale=0.05, zero_point=-3)
    y = b.fully_connected(b.conv2d(x, 6, (3, 3), (1, 1), "SAME", "RELU"), 5, keep_num_dims=True)  # (1, 4, 5, 5)
    return [b.fully_connected(b.reshape(b.mean(y, (1, 2), keepdims=True), (1, 5)), 3)]


def _dense_rows(b: ModelBuilder) -> list:
    """The converter's older form of Keras's Dense on a sequence: FULLY_CONNECTED over the rows ``(steps,
    features)`` without keeping the dimensions, then a RESHAPE back."""
    x = b.input((1, 10, 3), scale=0.04, zero_point=5)
    y = b.squeeze(b.conv2d(b.expand_dims(x, 1), 6, (1, 3), (1, 1), "SAME", "RELU"), (1,))  # (1, 10, 6)
    y = b.reshape(b.fully_connected(y, 8, "RELU"), (1, 10, 8))  # rows (10, 8), then (1, 10, 8)
    return [b.fully_connected(b.mean(y, (1,)), 3)]


def _dense_rows_map(b: ModelBuilder) -> list:
    """The same on an NHWC map: rows ``(H * W, C)``, reshaped back to ``(1, H, W, units)``."""
    x = b.input((1, 2, 5, 3), scale=0.05, zero_point=-3)
    y = b.conv2d(x, 6, (3, 3), (1, 1), "SAME", "RELU")
    y = b.reshape(b.fully_connected(y, 4), (1, 2, 5, 4))  # rows (10, 4)
    return [b.fully_connected(b.reshape(b.mean(y, (1, 2), keepdims=True), (1, 4)), 3)]


def _upsampling(b: ModelBuilder) -> list:
    """Nearest-neighbour upsampling by whole factors, with and without half-pixel centers, between convolutions (a
    decoder's shape)."""
    x = b.input((1, 3, 4, 5), scale=0.05, zero_point=-3)
    y = b.resize_nearest(b.conv2d(x, 8, (3, 3), (1, 1), "SAME", "RELU"), (6, 8))
    y = b.resize_nearest(b.conv2d(y, 4, (3, 3), (1, 1), "SAME", "NONE"), (18, 16), half_pixel_centers=True)
    return [b.conv2d(y, 2, (1, 1), (1, 1), "SAME", "NONE")]


def _dilated(b: ModelBuilder) -> list:
    """A dilated convolution (SAME), a dilated depthwise one over the width (VALID: a temporal convolution's shape),
    a depthwise convolution with depth multiplier 2, grouped convolutions."""
    x = b.input((1, 9, 12, 3), scale=0.05, zero_point=4)
    y = b.conv2d(x, 4, (3, 3), (1, 1), "SAME", "RELU", dilation=(2, 2))
    y = b.depthwise_conv2d(y, (1, 3), (1, 1), "VALID", "RELU6", dilation=(1, 3))
    y = b.depthwise_conv2d(y, (3, 3), (2, 2), "SAME", "NONE", depth_multiplier=2)
    y = b.conv2d(y, 4, (3, 3), (1, 1), "SAME", "RELU", groups=2)  # ShuffleNet's and ResNeXt's grouped convolution
    y = b.conv2d(y, 4, (3, 1), (1, 1), "SAME", "NONE", groups=4)  # one channel per group: a depthwise one
    return [b.fully_connected(b.reshape(y, (1, -1)), 5)]


def _transposed(b: ModelBuilder) -> list:
    """Transposed convolutions (a decoder's): stride 2 SAME, stride (1, 3) VALID with a wide kernel."""
    x = b.input((1, 3, 4, 5), scale=0.05, zero_point=-3)
    y = b.transpose_conv(b.conv2d(x, 6, (1, 1), (1, 1), "SAME", "RELU"), 4, (3, 3), (2, 2), "SAME")
    return [b.transpose_conv(y, 2, (2, 5), (1, 3), "VALID")]


def _slices(b: ModelBuilder) -> list:
    """ShuffleNetV2's channel shuffle (RESHAPE, TRANSPOSE, RESHAPE) and split (SPLIT) with one half convolved,
    space-to-depth's strided slices (STRIDED_SLICE, a backwards channel step), a crop (SLICE), a channel gather
    (GATHER), a part nobody reads (SPLIT_V)."""
    x = b.input((1, 9, 12, 3), scale=0.05, zero_point=4)
    y = b.channel_shuffle(b.conv2d(x, 8, (3, 3), (1, 1), "SAME", "RELU"), 2)
    kept, changed = b.split(y, [4, 4])
    y = b.concatenation([kept, b.conv2d(changed, 4, (1, 1), output_scale=y.scale, output_zero_point=y.zero_point)])
    y = b.strided_slice(y, (0, 1, 0, -1), (1, 9, 12, -9), (1, 2, 2, -1))  # (1, 4, 6, 8)
    y = b.gather(b.slice(y, (0, 0, 1, 0), (1, -1, 4, -1)), [7, 0, 3, 3, 5])  # (1, 4, 4, 5)
    return [b.fully_connected(b.reshape(b.split(y, [2, 3])[1], (1, -1)), 5)]


MODELS: dict[str, Callable[[ModelBuilder], list]] = {
    "conv_stack": _conv_stack, "depthwise": _depthwise, "dense": _dense, "residual": _residual, "pools": _pools,
    "classifier_head": _classifier_head, "pad_concat": _pad_concat, "lookups": _lookups, "float_io": _float_io,
    "left_shift": _left_shift, "mean_of_one": _mean_of_one, "activations": _activations,
    "squeeze_excite": _squeeze_excite, "products": _products, "keras_conv1d": _keras_conv1d, "upsampling": _upsampling,
    "dilated": _dilated, "transposed": _transposed, "slices": _slices, "same_pools": _same_pools,
    "global_max": _global_max, "global_max_1d": _global_max_1d, "dense_per_step": _dense_per_step,
    "dense_per_pixel": _dense_per_pixel, "dense_rows": _dense_rows,
    "dense_rows_map": _dense_rows_map,
}  # fmt: skip


def write(tmp_path: Path, name: str, seed: int = 0) -> Path:
    b = ModelBuilder(seed=seed)
    path = tmp_path / f"{name}.tflite"
    b.save(path, MODELS[name](b))
    return path


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_layer_equals_tflite_reference_kernels(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name)
    imp = import_tflite(path)
    x8 = np.random.default_rng(1).integers(-128, 128, size=(INPUTS, *imp.graph.input_shape)).astype(np.int8)
    ours = reference.run_layers(imp.graph, x8)
    tensors = [t for t in imp.op_tensors if t != NO_TENSOR]
    oracle = reference_tensors(path, imp.model_inputs(x8), tensors)
    for i, t in enumerate(imp.op_tensors):
        if t == NO_TENSOR:
            continue
        want = oracle[t].reshape(INPUTS, -1)
        got = ours[i].reshape(INPUTS, -1)
        assert np.array_equal(got, want), f"{name}: op {i} ({imp.op_sources[i]}) differs in {(got != want).sum()} values"
        assert len(np.unique(want)) > 1, f"{name}: op {i} is constant; the case tests nothing"


def test_import_keeps_tflite_parameters(tmp_path: Path) -> None:
    """Shapes, SAME padding, activation bounds and the two forms of average pool come out as TFLite defines them."""
    conv = import_tflite(write(tmp_path, "conv_stack")).graph.ops
    assert conv[0].padding == (1, 1, 1, 1)  # 9 x 7, 3 x 3, stride 2: pad totals 2 and 2
    assert conv[1].padding == (0, 1, 1, 1)  # 5 x 4, 2 x 3, stride (2, 1): totals 1 and 2, the odd one at the end
    assert conv[0].out_shape == (5, 4, 8)
    assert conv[0].lo == -128 and conv[0].hi == min(127, -128 + round(6 / 0.02))  # ReLU6 at scale 0.02
    pools = import_tflite(write(tmp_path, "pools")).graph.ops
    assert [op.op for op in pools] == ["avgpool", "maxpool", "avgpool", "avgpool", "avgpool", "add"]
    assert "divide" not in pools[0].params and pools[2].params.get("divide") == 1  # 9 taps: exact multiplier; 2: not
    same = import_tflite(write(tmp_path, "same_pools")).graph.ops
    assert [(op.op, op.padding) for op in same[:3]] == [("maxpool", (1, 1, 1, 1)), ("avgpool", (1, 1, 1, 1)),
                                                        ("avgpool", (0, 1, 0, 1))]
    assert same[1].params.get("divide") == 1 and same[2].params.get("divide") == 1  # counts vary at the edges
    dense = import_tflite(write(tmp_path, "dense")).graph.ops
    assert [op.op for op in dense] == ["flatten", "dense", "dense"]  # the flattening RESHAPE is a view
    assert all(op.params.get("float_scale") == 1 for op in dense[1:])


def test_left_shifts_are_kept(tmp_path: Path) -> None:
    assert import_tflite(write(tmp_path, "left_shift")).graph.ops[0].tensors["shift"].max() < 0  # scale 1.25
    assert import_tflite(write(tmp_path, "mean_of_one")).graph.ops[0].tensors["shift"][0] < 0  # 0.05 / 0.03


def test_float_io_model_quantizes_inputs_as_tflite(tmp_path: Path) -> None:
    imp = import_tflite(write(tmp_path, "float_io"))
    assert imp.input_dtype == "float32" and imp.float_input_q is not None and imp.float_output_q is not None
    x8 = np.arange(-128, 128, dtype=np.int8)[: 6 * 5 * 2].reshape(1, 6, 5, 2)
    assert np.array_equal(imp.quantize_inputs(imp.model_inputs(x8).reshape(1, 6, 5, 2)), x8)


ACTIVATIONS = ("RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU", "HARD_SWISH", "GELU")


@pytest.mark.parametrize("kind", ACTIVATIONS)
def test_activation_tables_equal_tflite_on_every_input(tmp_path: Path, kind: str) -> None:
    """Each activation's table, on all 256 int8 inputs and 12 random quantizations, against the reference kernel."""
    rng = np.random.default_rng(7)
    every = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 256)
    for i in range(12):
        s_in = float(np.float32(10 ** rng.uniform(-3, 0)))
        s_out = float(np.float32(s_in * 10 ** rng.uniform(-0.7, 0.7)))
        b = ModelBuilder(seed=i)
        x = b.input((1, 256), scale=s_in, zero_point=int(rng.integers(-128, 128)))
        y = b.activation(x, kind, alpha=float(rng.uniform(0.01, 0.5)), approximate=bool(i % 2), output_scale=s_out,
                         output_zero_point=int(rng.integers(-128, 128)))
        path = b.save(tmp_path / f"{kind}-{i}.tflite", [y])
        imp = import_tflite(path)
        assert [op.op for op in imp.graph.ops] == ["lut"]
        want = reference_outputs(path, every).reshape(-1)
        assert np.array_equal(imp.graph.ops[0].tensors["table"], want), (kind, i)


@pytest.mark.parametrize("kind", ["ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM"])
def test_constant_scalar_operands_equal_tflite_on_every_input(tmp_path: Path, kind: str) -> None:
    """A tensor and a constant scalar (either side, fused activations where the op has them) become one exact table."""
    rng = np.random.default_rng(8)
    every = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 1, 1, 256)
    for i in range(12):
        s_in = float(np.float32(10 ** rng.uniform(-3, 0)))
        s_c = float(np.float32(s_in * 10 ** rng.uniform(-1, 0)))
        zp_c = int(rng.integers(-64, 64))
        value = zp_c + int(rng.choice([-1, 1]) * rng.integers(1, 64))  # within a quarter of the tensor's range
        b = ModelBuilder(seed=i)
        x = b.input((1, 1, 1, 256), scale=s_in, zero_point=int(rng.integers(-128, 128)))
        if kind in ("MAXIMUM", "MINIMUM"):  # the converter quantizes the constant as the tensor
            c = b.constant(np.array([value], np.int8), scales=s_in, zero_points=x.zero_point)
        else:
            c = b.constant(np.array([value], np.int8), scales=s_c, zero_points=zp_c)
        # an output range about that of the result, so that the outputs neither all saturate nor all round alike
        x_max, c_real = 256 * s_in, abs(value - zp_c) * s_c
        span = 2 * (x_max * c_real if kind == "MUL" else x_max + c_real)
        s_out = float(np.float32(span / 255 * 10 ** rng.uniform(-0.3, 0.3)))
        pair = (x, c) if i % 2 else (c, x)
        quant = dict(output_scale=s_out, output_zero_point=int(rng.integers(-64, 64)))
        act = ("NONE", "RELU", "RELU6")[i % 3]
        if kind in ("ADD", "MUL"):
            y = (b.add if kind == "ADD" else b.mul)(*pair, act, **quant)
        else:
            y = b.binary(kind, *pair, act, **quant) if kind == "SUB" else b.binary(kind, *pair)
        path = b.save(tmp_path / f"{kind}-{i}.tflite", [y])
        imp = import_tflite(path)
        assert [op.op for op in imp.graph.ops] == ["lut"]
        want = reference_outputs(path, every).reshape(-1)
        assert np.array_equal(imp.graph.ops[0].tensors["table"], want), (kind, i)
        assert len(np.unique(want)) > 1


def _refused(tmp_path: Path, build: Callable[[ModelBuilder], list], message: str) -> None:
    b = ModelBuilder(seed=0)
    path = b.save(tmp_path / "refused.tflite", build(b))
    with pytest.raises(UserError, match=message):
        import_tflite(path)


def test_products_and_activations_that_do_not_import_are_one_line(tmp_path: Path) -> None:
    def spatial_gate(b: ModelBuilder) -> list:
        x = b.input((1, 4, 4, 6), scale=0.05, zero_point=0)
        return [b.mul(x, b.conv2d(x, 1, (1, 1), (1, 1), "SAME", "NONE"))]  # a spatial attention map

    def channel_constant(b: ModelBuilder) -> list:
        x = b.input((1, 4, 4, 3), scale=0.05, zero_point=0)
        return [b.add(x, b.constant(np.array([1, 2, 3], np.int8), scales=0.1))]

    def huge_product(b: ModelBuilder) -> list:
        x = b.input((1, 2, 2, 4), scale=0.5, zero_point=0)
        return [b.mul(x, x, output_scale=1e-6, output_zero_point=0)]

    def fine_hard_swish(b: ModelBuilder) -> list:
        x = b.input((1, 2, 2, 4), scale=0.5, zero_point=0)
        return [b.activation(x, "HARD_SWISH", output_scale=0.001, output_zero_point=0)]

    def difference(b: ModelBuilder) -> list:
        x = b.input((1, 4, 4, 3), scale=0.05, zero_point=0)
        return [b.binary("SUB", x, b.conv2d(x, 3, (1, 1), (1, 1), "SAME", "NONE"))]

    def channel_mean(b: ModelBuilder) -> list:
        x = b.input((1, 4, 4, 3), scale=0.05, zero_point=0)
        return [b.mean(x, (3,), keepdims=True)]

    def rescaled_max(b: ModelBuilder) -> list:
        x = b.input((1, 4, 4, 3), scale=0.05, zero_point=0)
        return [b.reduce_max(x, (1, 2), keepdims=True, output_scale=0.1)]

    def aligned(b: ModelBuilder) -> list:
        return [b.resize_nearest(b.input((1, 3, 3, 2), scale=0.05, zero_point=0), (6, 6), align_corners=True)]

    def fractional(b: ModelBuilder) -> list:
        return [b.resize_nearest(b.input((1, 4, 4, 2), scale=0.05, zero_point=0), (6, 8))]

    _refused(tmp_path, aligned, r"operator 0 \(RESIZE_NEAREST_NEIGHBOR\) aligns corners; only plain upsampling")
    _refused(tmp_path, fractional, r"operator 0 \(RESIZE_NEAREST_NEIGHBOR\) resizes 4x4 to 6x8; only upsampling by whole")
    _refused(tmp_path, difference, r"operator 1 \(SUB\) of two tensors is not supported; only with a constant scalar")
    _refused(tmp_path, channel_mean, r"operator 0 \(MEAN\) reduces axes \[3\] of a rank-4 tensor; only a reduction over all spatial")
    _refused(tmp_path, rescaled_max, r"operator 0 \(REDUCE_MAX\) rescales \(input and output quantization differ\)")
    _refused(tmp_path, spatial_gate, r"operator 1 \(MUL\) broadcasts \[4, 4, 6\] \* \[4, 4, 1\]; only equal shapes or one factor")
    _refused(tmp_path, channel_constant, r"operator 0 \(ADD\) takes a constant of shape \[3\]; only one int8 value")
    _refused(tmp_path, huge_product, r"operator 0 \(MUL\) scales its product up by 2\*\*18 .*re-export with a coarser")
    _refused(tmp_path, fine_hard_swish, r"operator 0 \(HARD_SWISH\): the output scale 0.001 is finer than the input's")


def _unsupported_op_model(path: Path) -> Path:
    b = ModelBuilder(seed=0)
    x = b.input((1, 4, 4, 2), scale=0.05, zero_point=0)
    y = b.conv2d(x, 2, (1, 1), (1, 1), "SAME", "NONE")
    z = b.conv2d(x, 2, (1, 1), (1, 1), "SAME", "NONE")
    b._op("SQUARED_DIFFERENCE", Op.SQUARED_DIFFERENCE, 2, (y, z), (y,))  # no semantics here (writes over y: never run)
    return b.save(path, [y])


def test_unsupported_op_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"operator 2 \(SQUARED_DIFFERENCE\) is not supported; tinycompile imports .*CONV_2D"):
        import_tflite(_unsupported_op_model(tmp_path / "sqdiff.tflite"))


def test_dilation_and_depth_multipliers_become_plain_kernels(tmp_path: Path) -> None:
    """A dilated kernel is the same kernel spread out with zeros; a depth multiplier a block-diagonal full conv."""
    imp = import_tflite(write(tmp_path, "dilated"))
    conv, dw, mult = imp.graph.ops[:3]
    assert conv.kernel == (5, 5) and not conv.tensors["weight"][:, 1::2].any() and not conv.tensors["weight"][:, :, 1::2].any()
    assert dw.op == "dwconv" and dw.kernel == (1, 7) and not dw.tensors["weight"][:, 1::3].any()
    w = mult.tensors["weight"]  # (8, 3, 3, 4): output channel o reads input channel o // 2 only
    assert mult.op == "conv" and w.shape == (8, 3, 3, 4)
    assert all(not np.delete(w[o], o // 2, axis=-1).any() and w[o, :, :, o // 2].any() for o in range(8))
    grouped, one_per_group = imp.graph.ops[3:5]  # 2 groups of 4 of the 8 channels; 4 groups of one channel
    w = grouped.tensors["weight"]
    assert grouped.op == "conv" and w.shape == (4, 3, 3, 8)
    assert not w[:2, :, :, 4:].any() and not w[2:, :, :, :4].any() and w[:2, :, :, :4].any() and w[2:, :, :, 4:].any()
    assert one_per_group.op == "dwconv" and one_per_group.tensors["weight"].shape == (3, 1, 4)
    assert len(imp.notes) == 4 and "2 groups run as a full convolution" in imp.notes[3]


def test_slices_and_channel_shuffles_become_slice_ops(tmp_path: Path) -> None:
    """The shuffle's three ops are one slice op; the split part nobody reads is not made."""
    ops = import_tflite(write(tmp_path, "slices")).graph.ops
    shuffle = ops[1]
    assert shuffle.op == "slice" and list(shuffle.tensors["index"]) == [0, 4, 1, 5, 2, 6, 3, 7]
    assert [op.op for op in ops].count("slice") == 7  # shuffle, two halves, strided, crop, gather, the read part
    strided = ops[6]
    assert strided.stride == (2, 2) and strided.padding == (1, 1, 0, 1) and list(strided.tensors["index"]) == list(range(7, -1, -1))


def test_bad_model_files_are_one_line_exit_2(tmp_path: Path) -> None:
    good = write(tmp_path, "residual").read_bytes()
    (tmp_path / "truncated.tflite").write_bytes(good[: len(good) // 3])
    (tmp_path / "garbage.tflite").write_bytes(b"\x00garbage, not a model" * 10)
    b = ModelBuilder(seed=0)
    x = b.input((1, 4, 4, 2), dtype="float32")
    b.save(tmp_path / "float.tflite", [b.conv2d(x, 2, (3, 3), (1, 1), "SAME", "RELU")])
    _unsupported_op_model(tmp_path / "sqdiff.tflite")
    cases = {
        "truncated.tflite": "corrupt or truncated",
        "garbage.tflite": "not a TFLite flatbuffer",
        "float.tflite": "is a float model: give calibration inputs with --calib",
        "sqdiff.tflite": r"operator 2 \(SQUARED_DIFFERENCE\) is not supported",
        "missing.tflite": "no such model file",
    }
    for name, message in cases.items():
        proc = run_cli("build", str(tmp_path / name), "--target", "cortex-m4", "-o", str(tmp_path / "out"))
        assert proc.returncode == 2, (name, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, (name, proc.stderr)
        assert re.search(message, lines[0]), (name, lines[0])


def test_model_larger_than_sram_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "tiny-sram.yaml"
    from tinycompile.targets import load_target

    text = load_target("cortex-m4").path.read_text()
    target.write_text(text.replace("name: cortex-m4", "name: tiny-sram").replace(
        next(line for line in text.splitlines() if line.startswith("sram_kb:")), "sram_kb: 1"))
    proc = run_cli("build", str(write(tmp_path, "conv_stack")), "--target", str(target), "-o", str(tmp_path / "out"))
    assert proc.returncode == 2 and "exceeds tiny-sram's SRAM (1024 B)" in proc.stderr, proc.stderr


def test_user_inputs_are_checked(tmp_path: Path) -> None:
    model = load_model(write(tmp_path, "residual"))
    np.savez(tmp_path / "wrong_shape.npz", x=np.zeros((4, 5, 5, 4), np.int8))
    np.savez(tmp_path / "wrong_dtype.npz", x=np.zeros((4, 6, 6, 4), np.float32))
    np.savez(tmp_path / "no_x.npz", y=np.zeros(3))
    for name, message in {"wrong_shape": r"takes \(N, 6, 6, 4\)", "wrong_dtype": "model's input is int8", "no_x": "no array named 'x'"}.items():
        with pytest.raises(UserError, match=message):
            model.test_inputs(tmp_path / f"{name}.npz", 16)
    batch = np.random.default_rng(0).integers(-128, 128, size=(5, 1, 6, 6, 4)).astype(np.int8)
    np.savez(tmp_path / "ok.npz", x=batch)
    x = model.test_inputs(tmp_path / "ok.npz", 16)
    assert x.shape == (16, 6, 6, 4) and np.array_equal(x[:5], batch[:, 0])  # the user's first, then random ones


def test_inspect_lists_ops_and_placement(tmp_path: Path) -> None:
    proc = run_cli("inspect", str(write(tmp_path, "classifier_head")), "--target", "cortex-m4")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for text in ("CONV_2D", "SOFTMAX", "softmax", "accelerator", "host", "cortex-m4 (cost model, an estimate)", "fits"):
        assert text in out, text

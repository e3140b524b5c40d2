"""A small writer of TFLite flatbuffer models for tests, without TensorFlow (a plain module, like ``nets.py``).

Usage::

    b = ModelBuilder(seed=0)
    x = b.input((1, 9, 7, 3), scale=0.05, zero_point=-3)
    y = b.conv2d(x, filters=8, kernel=(3, 3), stride=(2, 2), padding="SAME", activation="RELU6")
    y = b.fully_connected(b.reshape(y, (1, -1)), units=10)
    data = b.finish(outputs=[b.softmax(y)])

Conventions follow what the TFLite converter writes, so that importers see the real thing:

* model version 3, file identifier ``TFL3``, buffer 0 empty; every activation tensor points at buffer 0,
  every constant has its own buffer (16-byte aligned data);
* operator codes carry both ``deprecated_builtin_code`` (capped at 127, the placeholder for newer ops) and
  ``builtin_code``, with the op versions the converter picks for the tensor types;
* int8 weights are symmetric (zero point 0) and per channel: CONV_2D filters ``(O, KH, KW, I)`` with
  ``quantized_dimension`` 0, DEPTHWISE_CONV_2D filters ``(1, KH, KW, C * M)`` with ``quantized_dimension`` 3,
  FULLY_CONNECTED weights ``(units, in)`` per tensor (or per channel, dimension 0); int32 biases with scale
  ``input_scale * weight_scale[c]`` and zero point 0;
* output shapes as TFLite computes them: SAME gives ``ceil(in / stride)``, VALID gives
  ``ceil((in - (k - 1) * dilation) / stride)``; SAME pads ``total // 2`` before and the rest after;
* ops whose int8 kernels need fixed output quantization get it by default (pools, RESHAPE, PAD, CONCATENATION:
  as their input; SOFTMAX and LOGISTIC: 1/256, -128; TANH: 1/128, 0). Every default can be overridden, which is
  how tests produce models the interpreters must reject.

Default output scales come from a cheap calibration: each tensor carries an estimated real range, inputs are
assumed uniform over it, and the output range of a weighted sum is its mean +- 3 standard deviations (computed
from the actual weights and biases), so outputs use much of the int8 range without being all saturated.

Float models: give ``b.input(shape, dtype="float32")``; every op on a float32 tensor is a float op (float weights
and biases, no quantization). QUANTIZE and DEQUANTIZE convert between the two worlds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import flatbuffers
import numpy as np
import tflite

ACTIVATIONS = {
    "NONE": tflite.ActivationFunctionType.NONE,
    "RELU": tflite.ActivationFunctionType.RELU,
    "RELU_N1_TO_1": tflite.ActivationFunctionType.RELU_N1_TO_1,
    "RELU6": tflite.ActivationFunctionType.RELU6,
}
PADDINGS = {"SAME": tflite.Padding.SAME, "VALID": tflite.Padding.VALID}
_TYPES = {
    np.dtype(np.int8): tflite.TensorType.INT8,
    np.dtype(np.float32): tflite.TensorType.FLOAT32,
    np.dtype(np.int32): tflite.TensorType.INT32,
}
# Ops added after the int8 opcode space ran out are written as 127 in the deprecated byte field.
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127
# How many standard deviations either side of the mean the default output range covers.
_SIGMAS = 3.0
Op = tflite.BuiltinOperator
_OptionsWriter = Callable[[flatbuffers.Builder], int]
_ACTIVATION_BOUNDS = {"NONE": (-math.inf, math.inf), "RELU": (0.0, math.inf), "RELU6": (0.0, 6.0),
                      "RELU_N1_TO_1": (-1.0, 1.0)}


@dataclass(frozen=True)
class Tensor:
    """A handle on one tensor of the model: its flatbuffer index, shape, type and (int8) per-tensor quantization."""

    index: int
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float | None = None
    zero_point: int | None = None

    @property
    def is_float(self) -> bool:
        """True for float32 activations (float models)."""
        return self.dtype == np.float32


@dataclass(frozen=True)
class OpInfo:
    """One operator as written: builtin name, input tensors (weights and biases included) and outputs."""

    kind: str
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]


@dataclass(frozen=True)
class _Stats:
    """What the default quantization assumes about a tensor's real values: their range, mean and spread."""

    lo: float
    hi: float
    mean: float
    std: float

    @staticmethod
    def uniform(lo: float, hi: float) -> _Stats:
        return _Stats(lo, hi, (lo + hi) / 2, (hi - lo) / math.sqrt(12))

    @staticmethod
    def of_channels(means: np.ndarray, stds: np.ndarray, activation: str) -> _Stats:
        """Stats of per-channel normal pre-activations after the fused ``activation`` (a mixture over channels)."""
        means, stds = np.atleast_1d(means).astype(np.float64), np.maximum(np.atleast_1d(stds), 1e-12)
        spread = (float(np.min(means - _SIGMAS * stds)), float(np.max(means + _SIGMAS * stds)))
        lo, hi = _clip_range(spread, activation)
        a, b = _ACTIVATION_BOUNDS[activation]
        m1, m2 = _clipped_normal_moments(means, stds, a, b)
        mean = float(m1.mean())
        return _Stats(lo, hi, mean, math.sqrt(max(float(m2.mean()) - mean**2, 0.0)))

    def with_activation(self, activation: str) -> _Stats:
        """These stats after a fused activation (the tensor taken as normal)."""
        if activation == "NONE":
            return self
        s = _Stats.of_channels(np.array([self.mean]), np.array([self.std]), activation)
        lo, hi = _clip_range((self.lo, self.hi), activation)
        return _Stats(lo, hi, s.mean, s.std)


@dataclass
class _TensorRecord:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None = None
    scales: np.ndarray | None = None
    zero_points: np.ndarray | None = None
    quantized_dimension: int = 0
    stats: _Stats | None = None


@dataclass
class _OpRecord:
    opcode: int
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options_type: int = tflite.BuiltinOptions.NONE
    options: _OptionsWriter | None = None


class ModelBuilder:
    """Builds a one-subgraph TFLite model op by op; ``finish`` serializes it (and may be called repeatedly)."""

    def __init__(self, seed: int = 0, description: str = "tinycompile test model") -> None:
        self.seed = seed
        self.description = description
        self.rng = np.random.default_rng(seed)
        self.ops: list[OpInfo] = []  # every operator written so far, in execution order
        self._tensors: list[_TensorRecord] = []
        self._ops: list[_OpRecord] = []
        self._inputs: list[int] = []
        self._counts: dict[str, int] = {}

    # ----------------------------------------------------------------------------------------------- tensors

    def input(
        self,
        shape: Sequence[int],
        scale: float = 0.05,
        zero_point: int = 0,
        dtype: str | type = "int8",
        real_range: tuple[float, float] = (-1.0, 1.0),
    ) -> Tensor:
        """Add a model input: int8 with ``scale``/``zero_point``, or float32 (``real_range``: what it will be fed)."""
        dt = np.dtype(dtype)
        if dt == np.int8:
            stats = _Stats.uniform(*_grid_range(scale, zero_point))
            return self._activation("input", shape, dt, scale, zero_point, stats, True)
        if dt == np.float32:
            return self._activation("input", shape, dt, None, None, _Stats.uniform(*real_range), True)
        raise ValueError(f"model inputs are int8 or float32, not {dt}")

    def constant(
        self,
        values: np.ndarray,
        scales: float | Sequence[float] | None = None,
        zero_points: int | Sequence[int] | None = None,
        quantized_dimension: int = 0,
        name: str | None = None,
    ) -> Tensor:
        """Add a constant tensor (int8 / int32 / float32 ``values``), quantized when ``scales`` is given."""
        values = np.ascontiguousarray(values)
        if values.dtype not in _TYPES:
            raise ValueError(f"constants are int8, int32 or float32, not {values.dtype}")
        rec = _TensorRecord(name or self._name("const"), tuple(int(d) for d in values.shape), values.dtype, values)
        if scales is not None:
            rec.scales = np.atleast_1d(np.asarray(scales, dtype=np.float32))
            zps = np.zeros(rec.scales.shape, np.int64) if zero_points is None else zero_points
            rec.zero_points = np.atleast_1d(np.asarray(zps, dtype=np.int64))
            rec.quantized_dimension = quantized_dimension
            if values.dtype == np.int8 and rec.scales.size == 1:
                real = (values.astype(np.float64) - float(rec.zero_points[0])) * float(rec.scales[0])
                rec.stats = _stats_of_values(real)
        elif values.dtype == np.float32:
            rec.stats = _stats_of_values(values.astype(np.float64))
        return self._add(rec)

    def data(self, t: Tensor) -> np.ndarray:
        """The values of a constant tensor (weights, biases, shapes), as written into the model."""
        values = self._tensors[t.index].data
        if values is None:
            raise ValueError(f"tensor {t.index} ({self._tensors[t.index].name}) is an activation, not a constant")
        return values.copy()

    def scales(self, t: Tensor) -> np.ndarray:
        """All quantization scales of a tensor (one per channel for per-channel weights and biases)."""
        s = self._tensors[t.index].scales
        return np.array([], np.float32) if s is None else s.copy()

    # ----------------------------------------------------------------------------------------- convolutions

    def conv2d(
        self,
        x: Tensor,
        filters: int,
        kernel: tuple[int, int] = (3, 3),
        stride: tuple[int, int] = (1, 1),
        padding: str = "SAME",
        activation: str = "NONE",
        dilation: tuple[int, int] = (1, 1),
        *,
        groups: int = 1,
        weights: np.ndarray | None = None,
        weight_scales: float | Sequence[float] | None = None,
        bias: np.ndarray | None = None,
        output_scale: float | None = None,
        output_zero_point: int | None = None,
    ) -> Tensor:
        """CONV_2D on an NHWC tensor; filters ``(filters, KH, KW, C / groups)``, per-channel int8 (or float32)
        weights."""
        n, h, w, c = _nhwc(x)
        oh, ow = _spatial_out((h, w), kernel, stride, padding, dilation)
        wshape = (filters, kernel[0], kernel[1], c // groups)
        wt, bt, yrange = self._weighted(x, wshape, 0, weights, weight_scales, bias, activation)
        y = self._output("conv2d", x, (n, oh, ow, filters), yrange, output_scale, output_zero_point)
        pad, act = _padding(padding), _activation(activation)

        def options(fb: flatbuffers.Builder) -> int:
            tflite.Conv2DOptionsStart(fb)
            tflite.Conv2DOptionsAddPadding(fb, pad)
            tflite.Conv2DOptionsAddStrideW(fb, stride[1])
            tflite.Conv2DOptionsAddStrideH(fb, stride[0])
            tflite.Conv2DOptionsAddFusedActivationFunction(fb, act)
            tflite.Conv2DOptionsAddDilationWFactor(fb, dilation[1])
            tflite.Conv2DOptionsAddDilationHFactor(fb, dilation[0])
            return tflite.Conv2DOptionsEnd(fb)

        version = 3 if not x.is_float else (2 if dilation != (1, 1) else 1)
        self._op("CONV_2D", Op.CONV_2D, version, (x, wt, bt), (y,), tflite.BuiltinOptions.Conv2DOptions, options)
        return y

    def transpose_conv(
        self,
        x: Tensor,
        filters: int,
        kernel: tuple[int, int] = (3, 3),
        stride: tuple[int, int] = (2, 2),
        padding: str = "SAME",
        *,
        output_size: tuple[int, int] | None = None,
        output_scale: float | None = None,
        output_zero_point: int | None = None,
    ) -> Tensor:
        """TRANSPOSE_CONV (inputs: the int32 output shape, filters ``(filters, KH, KW, C)`` per-channel int8, the
        tensor, an int32 bias); output ``in * stride`` (SAME) or ``(in - 1) * stride + kernel`` (VALID) by default."""
        n, h, w, c = _nhwc(x)
        if output_size is None:
            output_size = tuple((d * s if padding == "SAME" else (d - 1) * s + k)  # type: ignore[assignment]
                                for d, s, k in zip((h, w), stride, kernel))
        wt, bt, yrange = self._weighted(x, (filters, kernel[0], kernel[1], c), 0, None, None, None, "NONE")
        # each output sums about (kernel / stride)^2 of the taps a conv would: the range scales alike
        spread = math.sqrt(kernel[0] * kernel[1] / (stride[0] * stride[1] * kernel[0] * kernel[1]))
        yrange = _Stats(yrange.lo * spread, yrange.hi * spread, yrange.mean * spread, yrange.std * spread)
        y = self._output("transpose_conv", x, (n, *output_size, filters), yrange, output_scale, output_zero_point)
        shape_t = self.constant(np.array([n, *output_size, filters], np.int32), name=self._name("output_shape"))
        pad = _padding(padding)

        def options(fb: flatbuffers.Builder) -> int:
            tflite.TransposeConvOptionsStart(fb)
            tflite.TransposeConvOptionsAddPadding(fb, pad)
            tflite.TransposeConvOptionsAddStrideW(fb, stride[1])
            tflite.TransposeConvOptionsAddStrideH(fb, stride[0])
            return tflite.TransposeConvOptionsEnd(fb)

        self._op("TRANSPOSE_CONV", Op.TRANSPOSE_CONV, 3, (shape_t, wt, x, bt), (y,),
                 tflite.BuiltinOptions.TransposeConvOptions, options)
        return y

    def depthwise_conv2d(
        self,
        x: Tensor,
        kernel: tuple[int, int] = (3, 3),
        stride: tuple[int, int] = (1, 1),
        padding: str = "SAME",
        activation: str = "NONE",
        dilation: tuple[int, int] = (1, 1),
        depth_multiplier: int = 1,
        *,
        weights: np.ndarray | None = None,
        weight_scales: float | Sequence[float] | None = None,
        bias: np.ndarray | None = None,
        output_scale: float | None = None,
        output_zero_point: int | None = None,
    ) -> Tensor:
        """DEPTHWISE_CONV_2D; filters ``(1, KH, KW, C * depth_multiplier)``, per-channel on dimension 3."""
        n, h, w, c = _nhwc(x)
        oh, ow = _spatial_out((h, w), kernel, stride, padding, dilation)
        oc = c * depth_multiplier
        wt, bt, yrange = self._weighted(x, (1, kernel[0], kernel[1], oc), 3, weights, weight_scales, bias, activation)
        y = self._output("depthwise_conv2d", x, (n, oh, ow, oc), yrange, output_scale, output_zero_point)
        pad, act = _padding(padding), _activation(activation)

        def options(fb: flatbuffers.Builder) -> int:
            tflite.DepthwiseConv2DOptionsStart(fb)
            tflite.DepthwiseConv2DOptionsAddPadding(fb, pad)
            tflite.DepthwiseConv2DOptionsAddStrideW(fb, stride[1])
            tflite.DepthwiseConv2DOptionsAddStrideH(fb, stride[0])
            tflite.DepthwiseConv2DOptionsAddDepthMultiplier(fb, depth_multiplier)
            tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(fb, act)
            tflite.DepthwiseConv2DOptionsAddDilationWFactor(fb, dilation[1])
            tflite.DepthwiseConv2DOptionsAddDilationHFactor(fb, dilation[0])
            return tflite.DepthwiseConv2DOptionsEnd(fb)

        version = 3 if not x.is_float else (2 if dilation != (1, 1) else 1)
        kind, code, opts = "DEPTHWISE_CONV_2D", Op.DEPTHWISE_CONV_2D, tflite.BuiltinOptions.DepthwiseConv2DOptions
        self._op(kind, code, version, (x, wt, bt), (y,), opts, options)
        return y

    def fully_connected(
        self,
        x: Tensor,
        units: int,
        activation: str = "NONE",
        per_channel: bool = False,
        keep_num_dims: bool = False,
        *,
        weights: np.ndarray | None = None,
        weight_scales: float | Sequence[float] | None = None,
        bias: np.ndarray | None = None,
        output_scale: float | None = None,
        output_zero_point: int | None = None,
    ) -> Tensor:
        """FULLY_CONNECTED with weights ``(units, in)``, ``in`` the input's last dimension (rows: the others)."""
        depth = x.shape[-1]
        wt, bt, yrange = self._weighted(x, (units, depth), 0, weights, weight_scales, bias, activation, per_channel)
        if keep_num_dims:
            yshape = (*x.shape[:-1], units)
        else:
            yshape = (int(np.prod(x.shape)) // depth, units)
        y = self._output("fully_connected", x, yshape, yrange, output_scale, output_zero_point)
        act = _activation(activation)

        def options(fb: flatbuffers.Builder) -> int:
            tflite.FullyConnectedOptionsStart(fb)
            tflite.FullyConnectedOptionsAddFusedActivationFunction(fb, act)
            tflite.FullyConnectedOptionsAddKeepNumDims(fb, keep_num_dims)
            return tflite.FullyConnectedOptionsEnd(fb)

        version = 5 if keep_num_dims else (1 if x.is_float else 4)
        kind, code, opts = "FULLY_CONNECTED", Op.FULLY_CONNECTED, tflite.BuiltinOptions.FullyConnectedOptions
        self._op(kind, code, version, (x, wt, bt), (y,), opts, options)
        return y

    # ------------------------------------------------------------------------------------------------ pools

    def average_pool2d(
        self,
        x: Tensor,
        pool: tuple[int, int] = (2, 2),
        stride: tuple[int, int] = (2, 2),
        padding: str = "VALID",
        activation: str = "NONE",
        *,
        output_scale: float | None = None,
        output_zero_point: int | None = None,
    ) -> Tensor:
        """AVERAGE_POOL_2D (SAME averages only the in-bounds elements); int8 output quantized as the input."""
        return self._pool("AVERAGE_POOL_2D", Op.AVERAGE_POOL_2D, x, pool, stride, padding, activation,
                          output_scale, output_zero_point)

    def max_pool2d(
        self,
        x: Tensor,
        pool: tuple[int, int] = (2, 2),
        stride: tuple[int, int] = (2, 2),
        padding: str = "VALID",
        activation: str = "NONE",
        *,
        output_scale: float | None = None,
        output_zero_point: int | None = None,
    ) -> Tensor:
        """MAX_POOL_2D; int8 output quantized as the input."""
        return self._pool("MAX_POOL_2D", Op.MAX_POOL_2D, x, pool, stride, padding, activation,
                          output_scale, output_zero_point)

    def _pool(self, kind: str, code: int, x: Tensor, pool: tuple[int, int], stride: tuple[int, int],
              padding: str, activation: str, output_scale: float | None, output_zero_point: int | None) -> Tensor:
        n, h, w, c = _nhwc(x)
        oh, ow = _spatial_out((h, w), pool, stride, padding, (1, 1))
        # The spread is kept as it is: most of it lies between channels, which averaging does not narrow.
        st = self._stats(x)
        y = self._same_quant(kind.lower(), x, (n, oh, ow, c), output_scale, output_zero_point,
                             st.with_activation(activation))
        pad, act = _padding(padding), _activation(activation)

        def options(fb: flatbuffers.Builder) -> int:
            tflite.Pool2DOptionsStart(fb)
            tflite.Pool2DOptionsAddPadding(fb, pad)
            tflite.Pool2DOptionsAddStrideW(fb, stride[1])
            tflite.Pool2DOptionsAddStrideH(fb, stride[0])
            tflite.Pool2DOptionsAddFilterWidth(fb, pool[1])
            tflite.Pool2DOptionsAddFilterHeight(fb, pool[0])
            tflite.Pool2DOptionsAddFusedActivationFunction(fb, act)
            return tflite.Pool2DOptionsEnd(fb)

        self._op(kind, code, 1 if x.is_float else 2, (x,), (y,), tflite.BuiltinOptions.Pool2DOptions, options)
        return y

    # ----------------------------------------------------------------------------------------- elementwise

    def add(self, a: Tensor, b: Tensor, activation: str = "NONE", *, output_scale: float | None = None,
            output_zero_point: int | None = None) -> Tensor:
        """ADD with numpy broadcasting; each int8 input keeps its own quantization, the output gets a new one."""
        sa, sb = self._stats(a), self._stats(b)
        st = _Stats.of_channels(np.array([sa.mean + sb.mean]), np.array([math.hypot(sa.std, sb.std)]), activation)
        return self._arithmetic("Add", a, b, activation, st, output_scale, output_zero_point)

    def mul(self, a: Tensor, b: Tensor, activation: str = "NONE", *, output_scale: float | None = None,
            output_zero_point: int | None = None) -> Tensor:
        """MUL with numpy broadcasting; each int8 input keeps its own quantization, the output gets a new one."""
        sa, sb = self._stats(a), self._stats(b)
        corners = [x * y for x in (sa.lo, sa.hi) for y in (sb.lo, sb.hi)]
        st = _Stats(min(corners), max(corners), sa.mean * sb.mean,
                    math.sqrt((sa.std**2 + sa.mean**2) * (sb.std**2 + sb.mean**2) - (sa.mean * sb.mean) ** 2))
        return self._arithmetic("Mul", a, b, activation, st.with_activation(activation), output_scale, output_zero_point)

    def binary(self, kind: str, a: Tensor, b: Tensor, activation: str = "NONE", *, output_scale: float | None = None,
               output_zero_point: int | None = None) -> Tensor:
        """SUB (with a fused activation), MAXIMUM or MINIMUM with numpy broadcasting; MAXIMUM and MINIMUM's int8
        output is quantized as their activation input (their kernels compare raw values)."""
        sa, sb = self._stats(a), self._stats(b)
        if kind == "SUB":
            st = _Stats.of_channels(np.array([sa.mean - sb.mean]), np.array([math.hypot(sa.std, sb.std)]), activation)
            return self._arithmetic("Sub", a, b, activation, st, output_scale, output_zero_point)
        if kind not in ("MAXIMUM", "MINIMUM"):
            raise ValueError(f"binary is SUB, MAXIMUM or MINIMUM, not {kind!r}")
        _same_kind(a, b)
        shape = tuple(int(d) for d in np.broadcast_shapes(a.shape, b.shape))
        pick = max if kind == "MAXIMUM" else min
        st = _Stats(pick(sa.lo, sb.lo), pick(sa.hi, sb.hi), pick(sa.mean, sb.mean), sa.std)
        y = self._same_quant(kind.lower(), a if a.scale is not None else b, shape, output_scale, output_zero_point, st)
        self._op(kind, getattr(Op, kind), 1 if a.is_float else 2, (a, b), (y,))
        return y

    def _arithmetic(self, kind: str, a: Tensor, b: Tensor, activation: str, stats: _Stats, output_scale: float | None,
                    output_zero_point: int | None) -> Tensor:
        """ADD, SUB or MUL (``kind`` as its options table spells it: "Add"...) with a fused activation."""
        _same_kind(a, b)
        shape = tuple(int(d) for d in np.broadcast_shapes(a.shape, b.shape))
        y = self._output(kind.lower(), a, shape, stats, output_scale, output_zero_point)
        act = _activation(activation)

        def options(fb: flatbuffers.Builder) -> int:
            getattr(tflite, f"{kind}OptionsStart")(fb)
            getattr(tflite, f"{kind}OptionsAddFusedActivationFunction")(fb, act)
            return getattr(tflite, f"{kind}OptionsEnd")(fb)

        name = kind.upper()
        self._op(name, getattr(Op, name), 1 if a.is_float else 2, (a, b), (y,),
                 getattr(tflite.BuiltinOptions, f"{kind}Options"), options)
        return y

    def activation(
        self, x: Tensor, kind: str, alpha: float = 0.2, approximate: bool = False, *,
        output_scale: float | None = None, output_zero_point: int | None = None,
    ) -> Tensor:
        """A standalone activation: RELU, RELU6, RELU_N1_TO_1, RELU_0_TO_1, HARD_SWISH, LEAKY_RELU (``alpha``), GELU
        (``approximate``) or ABS; int8 output quantized over the function's range on the input's."""
        functions = {
            "RELU": lambda v: np.maximum(v, 0.0), "RELU6": lambda v: np.clip(v, 0.0, 6.0),
            "RELU_N1_TO_1": lambda v: np.clip(v, -1.0, 1.0), "RELU_0_TO_1": lambda v: np.clip(v, 0.0, 1.0),
            "HARD_SWISH": lambda v: v * np.clip(v + 3.0, 0.0, 6.0) / 6.0,
            "LEAKY_RELU": lambda v: np.where(v >= 0, v, alpha * v),
            "GELU": lambda v: v * 0.5 * (1.0 + np.vectorize(math.erf)(v / math.sqrt(2.0))),
            "ABS": np.abs,
        }
        if kind not in functions:
            raise ValueError(f"activation is one of {sorted(functions)}, not {kind!r}")
        st = self._stats(x)
        values = functions[kind](np.linspace(st.lo, st.hi, 1001))
        y = self._output(kind.lower(), x, x.shape, _stats_of_values(values), output_scale, output_zero_point)
        version = 2 if kind in ("RELU", "RELU6", "LEAKY_RELU") and not x.is_float else 1  # the converter's int8 ones
        if kind == "LEAKY_RELU":
            def options(fb: flatbuffers.Builder) -> int:
                tflite.LeakyReluOptionsStart(fb)
                tflite.LeakyReluOptionsAddAlpha(fb, alpha)
                return tflite.LeakyReluOptionsEnd(fb)

            self._op(kind, Op.LEAKY_RELU, version, (x,), (y,), tflite.BuiltinOptions.LeakyReluOptions, options)
        elif kind == "GELU":
            def options(fb: flatbuffers.Builder) -> int:
                tflite.GeluOptionsStart(fb)
                tflite.GeluOptionsAddApproximate(fb, approximate)
                return tflite.GeluOptionsEnd(fb)

            self._op(kind, Op.GELU, version, (x,), (y,), tflite.BuiltinOptions.GeluOptions, options)
        else:
            self._op(kind, getattr(Op, kind), version, (x,), (y,))
        return y

    def softmax(
        self, x: Tensor, beta: float = 1.0, *, output_scale: float | None = None, output_zero_point: int | None = None
    ) -> Tensor:
        """SOFTMAX over the last dimension; int8 output 1/256, -128 (what TFLite's int8 kernel requires)."""
        st = _Stats(0.0, 1.0, 1 / x.shape[-1], 0.5 / math.sqrt(x.shape[-1]))
        y = self._fixed_output("softmax", x, x.shape, 1 / 256, -128, output_scale, output_zero_point, st)

        def options(fb: flatbuffers.Builder) -> int:
            tflite.SoftmaxOptionsStart(fb)
            tflite.SoftmaxOptionsAddBeta(fb, beta)
            return tflite.SoftmaxOptionsEnd(fb)

        self._op("SOFTMAX", Op.SOFTMAX, 1 if x.is_float else 2, (x,), (y,), tflite.BuiltinOptions.SoftmaxOptions,
                 options)
        return y

    def logistic(self, x: Tensor, *, output_scale: float | None = None, output_zero_point: int | None = None) -> Tensor:
        """LOGISTIC (sigmoid); int8 output 1/256, -128."""
        st = _Stats.uniform(0.0, 1.0)
        y = self._fixed_output("logistic", x, x.shape, 1 / 256, -128, output_scale, output_zero_point, st)
        self._op("LOGISTIC", Op.LOGISTIC, 1 if x.is_float else 2, (x,), (y,))
        return y

    def tanh(self, x: Tensor, *, output_scale: float | None = None, output_zero_point: int | None = None) -> Tensor:
        """TANH; int8 output 1/128, 0."""
        st = _Stats.uniform(-1.0, 1.0)
        y = self._fixed_output("tanh", x, x.shape, 1 / 128, 0, output_scale, output_zero_point, st)
        self._op("TANH", Op.TANH, 1 if x.is_float else 2, (x,), (y,))
        return y

    def quantize(self, x: Tensor, scale: float | None = None, zero_point: int | None = None) -> Tensor:
        """QUANTIZE float32 -> int8, or int8 -> int8 requantization (defaults: from the estimated range)."""
        if not x.is_float and x.dtype != np.int8:
            raise ValueError("QUANTIZE reads float32 or int8")
        st = self._stats(x)
        dscale, dzp = _quant_of_range((st.lo, st.hi))
        s = dscale if scale is None else scale
        zp = dzp if zero_point is None else zero_point
        y = self._activation("quantize", x.shape, np.dtype(np.int8), s, zp, st)
        self._op("QUANTIZE", Op.QUANTIZE, 2, (x,), (y,))
        return y

    def dequantize(self, x: Tensor) -> Tensor:
        """DEQUANTIZE int8 -> float32."""
        if x.dtype != np.int8:
            raise ValueError("DEQUANTIZE reads int8")
        y = self._activation("dequantize", x.shape, np.dtype(np.float32), None, None, self._stats(x))
        self._op("DEQUANTIZE", Op.DEQUANTIZE, 2, (x,), (y,))
        return y

    # ----------------------------------------------------------------------------------------------- shapes

    def transpose(self, x: Tensor, perm: Sequence[int]) -> Tensor:
        """TRANSPOSE by ``perm`` (an int32 tensor); the quantization passes."""
        y = self._same_quant("transpose", x, [x.shape[p] for p in perm], None, None, self._stats(x))
        perm_t = self.constant(np.asarray(perm, np.int32), name=self._name("transpose_perm"))
        self._op("TRANSPOSE", Op.TRANSPOSE, 1 if x.is_float else 2, (x, perm_t), (y,))
        return y

    def channel_shuffle(self, x: Tensor, groups: int) -> Tensor:
        """ShuffleNet's channel shuffle as Keras writes it: RESHAPE to groups, TRANSPOSE the last two, RESHAPE back."""
        *lead, c = x.shape
        y = self.transpose(self.reshape(x, (*lead, groups, c // groups)), (*range(len(lead)), len(lead) + 1, len(lead)))
        return self.reshape(y, x.shape)

    def reshape(self, x: Tensor, shape: Sequence[int], mode: str = "both") -> Tensor:
        """RESHAPE (one -1 allowed); ``mode``: the new shape as ``"option"``, shape ``"tensor"`` or ``"both"``."""
        if mode not in ("option", "tensor", "both"):
            raise ValueError(f"reshape mode is option, tensor or both, not {mode!r}")
        new = _resolve_shape(x.shape, shape)
        y = self._same_quant("reshape", x, new, None, None, self._stats(x))
        inputs: tuple[Tensor, ...] = (x,)
        if mode != "option":
            inputs += (self.constant(np.asarray(shape, np.int32), name=self._name("reshape_shape")),)
        if mode == "tensor":
            self._op("RESHAPE", Op.RESHAPE, 1, inputs, (y,))
            return y
        new_shape = np.asarray(shape, np.int32)

        def options(fb: flatbuffers.Builder) -> int:
            vec = fb.CreateNumpyVector(new_shape)
            tflite.ReshapeOptionsStart(fb)
            tflite.ReshapeOptionsAddNewShape(fb, vec)
            return tflite.ReshapeOptionsEnd(fb)

        self._op("RESHAPE", Op.RESHAPE, 1, inputs, (y,), tflite.BuiltinOptions.ReshapeOptions, options)
        return y

    def resize_nearest(self, x: Tensor, size: tuple[int, int], half_pixel_centers: bool = False,
                       align_corners: bool = False) -> Tensor:
        """RESIZE_NEAREST_NEIGHBOR of an NHWC tensor to ``size`` (an int32 size tensor); the quantization passes."""
        n, _, _, c = x.shape
        y = self._same_quant("resize", x, (n, *size, c), None, None, self._stats(x))
        size_t = self.constant(np.asarray(size, np.int32), name=self._name("resize_size"))

        def options(fb: flatbuffers.Builder) -> int:
            tflite.ResizeNearestNeighborOptionsStart(fb)
            tflite.ResizeNearestNeighborOptionsAddAlignCorners(fb, align_corners)
            tflite.ResizeNearestNeighborOptionsAddHalfPixelCenters(fb, half_pixel_centers)
            return tflite.ResizeNearestNeighborOptionsEnd(fb)

        self._op("RESIZE_NEAREST_NEIGHBOR", Op.RESIZE_NEAREST_NEIGHBOR, 3 if half_pixel_centers else 2, (x, size_t), (y,),
                 tflite.BuiltinOptions.ResizeNearestNeighborOptions, options)
        return y

    def expand_dims(self, x: Tensor, axis: int) -> Tensor:
        """EXPAND_DIMS (an int32 axis tensor): a size-1 axis at ``axis``; the quantization passes through."""
        rank = len(x.shape) + 1
        at = axis % rank
        shape = (*x.shape[:at], 1, *x.shape[at:])
        y = self._same_quant("expand_dims", x, shape, None, None, self._stats(x))
        axis_t = self.constant(np.array([axis], np.int32), name=self._name("expand_axis"))
        self._op("EXPAND_DIMS", Op.EXPAND_DIMS, 1, (x, axis_t), (y,))
        return y

    def squeeze(self, x: Tensor, dims: Sequence[int]) -> Tensor:
        """SQUEEZE the size-1 axes ``dims`` (SqueezeOptions.squeeze_dims); the quantization passes through."""
        rank = len(x.shape)
        drop = {d % rank for d in dims}
        if any(x.shape[d] != 1 for d in drop):
            raise ValueError(f"cannot squeeze axes {sorted(drop)} of shape {x.shape}")
        shape = tuple(x.shape[d] for d in range(rank) if d not in drop)
        y = self._same_quant("squeeze", x, shape, None, None, self._stats(x))

        def options(fb: flatbuffers.Builder) -> int:
            tflite.SqueezeOptionsStartSqueezeDimsVector(fb, len(dims))
            for d in reversed(list(dims)):
                fb.PrependInt32(int(d))
            vec = fb.EndVector()
            tflite.SqueezeOptionsStart(fb)
            tflite.SqueezeOptionsAddSqueezeDims(fb, vec)
            return tflite.SqueezeOptionsEnd(fb)

        self._op("SQUEEZE", Op.SQUEEZE, 1, (x,), (y,), tflite.BuiltinOptions.SqueezeOptions, options)
        return y

    def pad(
        self,
        x: Tensor,
        paddings: Sequence[tuple[int, int]],
        *,
        output_scale: float | None = None,
        output_zero_point: int | None = None,
    ) -> Tensor:
        """PAD with the zero point (``paddings``: (before, after) per dimension, an int32 (rank, 2) tensor)."""
        pads = np.asarray(paddings, np.int32)
        if pads.shape != (len(x.shape), 2) or (pads < 0).any():
            raise ValueError(f"paddings must be {len(x.shape)} non-negative (before, after) pairs, got {paddings}")
        shape = tuple(int(d + p[0] + p[1]) for d, p in zip(x.shape, pads))
        st, kept = self._stats(x), int(np.prod(x.shape)) / int(np.prod(shape))
        square = kept * (st.mean**2 + st.std**2)
        st = _Stats(min(st.lo, 0.0), max(st.hi, 0.0), kept * st.mean, math.sqrt(max(square - (kept * st.mean) ** 2, 0)))
        y = self._same_quant("pad", x, shape, output_scale, output_zero_point, st)
        pt = self.constant(pads, name=self._name("paddings"))
        opts = tflite.BuiltinOptions.PadOptions

        def options(fb: flatbuffers.Builder) -> int:
            tflite.PadOptionsStart(fb)
            return tflite.PadOptionsEnd(fb)

        self._op("PAD", Op.PAD, 1 if x.is_float else 2, (x, pt), (y,), opts, options)
        return y

    def concatenation(
        self,
        xs: Sequence[Tensor],
        axis: int = -1,
        activation: str = "NONE",
        *,
        output_scale: float | None = None,
        output_zero_point: int | None = None,
    ) -> Tensor:
        """CONCATENATION along ``axis``; int8 output quantized as the first input (TFLite's int8 kernel wants all
        inputs quantized as the output)."""
        first = xs[0]
        for t in xs[1:]:
            _same_kind(first, t)
        rank = len(first.shape)
        ax = axis % rank
        for t in xs:
            if len(t.shape) != rank or any(t.shape[d] != first.shape[d] for d in range(rank) if d != ax):
                raise ValueError(f"cannot concatenate shapes {[t.shape for t in xs]} along axis {axis}")
        shape = tuple(sum(t.shape[d] for t in xs) if d == ax else first.shape[d] for d in range(rank))
        parts = [self._stats(t) for t in xs]
        weights = np.array([np.prod(t.shape) for t in xs], np.float64) / np.prod(shape)
        mean = float(sum(w * p.mean for w, p in zip(weights, parts)))
        square = float(sum(w * (p.mean**2 + p.std**2) for w, p in zip(weights, parts)))
        st = _Stats(min(p.lo for p in parts), max(p.hi for p in parts), mean, math.sqrt(max(square - mean**2, 0)))
        y = self._same_quant("concatenation", first, shape, output_scale, output_zero_point,
                             st.with_activation(activation))
        act = _activation(activation)

        def options(fb: flatbuffers.Builder) -> int:
            tflite.ConcatenationOptionsStart(fb)
            tflite.ConcatenationOptionsAddAxis(fb, axis)
            tflite.ConcatenationOptionsAddFusedActivationFunction(fb, act)
            return tflite.ConcatenationOptionsEnd(fb)

        opts = tflite.BuiltinOptions.ConcatenationOptions
        self._op("CONCATENATION", Op.CONCATENATION, 1 if first.is_float else 2, tuple(xs), (y,), opts, options)
        return y

    def strided_slice(self, x: Tensor, begin: Sequence[int], end: Sequence[int], strides: Sequence[int], *,
                      begin_mask: int = 0, end_mask: int = 0) -> Tensor:
        """STRIDED_SLICE (int32 begin, end, strides tensors; masked axes whole); the quantization passes."""
        shape = []
        for axis, size in enumerate(x.shape):
            b = None if begin_mask >> axis & 1 else begin[axis]
            e = None if end_mask >> axis & 1 else end[axis]
            shape.append(len(range(size)[slice(b, e, strides[axis])]))
        y = self._same_quant("strided_slice", x, shape, None, None, self._stats(x))
        consts = tuple(self.constant(np.asarray(v, np.int32), name=self._name(f"slice_{what}"))
                       for what, v in (("begin", begin), ("end", end), ("strides", strides)))

        def options(fb: flatbuffers.Builder) -> int:
            tflite.StridedSliceOptionsStart(fb)
            tflite.StridedSliceOptionsAddBeginMask(fb, begin_mask)
            tflite.StridedSliceOptionsAddEndMask(fb, end_mask)
            return tflite.StridedSliceOptionsEnd(fb)

        self._op("STRIDED_SLICE", Op.STRIDED_SLICE, 1 if x.is_float else 2, (x, *consts), (y,),
                 tflite.BuiltinOptions.StridedSliceOptions, options)
        return y

    def slice(self, x: Tensor, begin: Sequence[int], size: Sequence[int]) -> Tensor:
        """SLICE (int32 begin and size tensors, a size of -1: to the end); the quantization passes."""
        shape = [d - b if n == -1 else n for d, b, n in zip(x.shape, begin, size)]
        y = self._same_quant("slice", x, shape, None, None, self._stats(x))
        consts = tuple(self.constant(np.asarray(v, np.int32), name=self._name(f"slice_{what}"))
                       for what, v in (("begin", begin), ("size", size)))
        self._op("SLICE", Op.SLICE, 1 if x.is_float else 2, (x, *consts), (y,))
        return y

    def split(self, x: Tensor, sizes: Sequence[int], axis: int = -1) -> list[Tensor]:
        """SPLIT_V into parts of ``sizes`` along ``axis`` (SPLIT when they are equal); the quantization passes."""
        ax = axis % len(x.shape)
        outs = [self._same_quant("split", x, [n if d == ax else s for d, s in enumerate(x.shape)], None, None,
                                 self._stats(x)) for n in sizes]
        axis_t = self.constant(np.asarray([ax], np.int32), name=self._name("split_axis"))
        count = len(sizes)
        if len(set(sizes)) == 1:
            def options(fb: flatbuffers.Builder) -> int:
                tflite.SplitOptionsStart(fb)
                tflite.SplitOptionsAddNumSplits(fb, count)
                return tflite.SplitOptionsEnd(fb)

            self._op("SPLIT", Op.SPLIT, 1 if x.is_float else 2, (axis_t, x), tuple(outs),
                     tflite.BuiltinOptions.SplitOptions, options)
            return outs
        sizes_t = self.constant(np.asarray(sizes, np.int32), name=self._name("split_sizes"))

        def options_v(fb: flatbuffers.Builder) -> int:
            tflite.SplitVOptionsStart(fb)
            tflite.SplitVOptionsAddNumSplits(fb, count)
            return tflite.SplitVOptionsEnd(fb)

        self._op("SPLIT_V", Op.SPLIT_V, 1 if x.is_float else 2, (x, sizes_t, axis_t), tuple(outs),
                 tflite.BuiltinOptions.SplitVOptions, options_v)
        return outs

    def gather(self, x: Tensor, indices: Sequence[int], axis: int = -1) -> Tensor:
        """GATHER with constant int32 ``indices`` along ``axis``; the quantization passes."""
        ax = axis % len(x.shape)
        y = self._same_quant("gather", x, [len(indices) if d == ax else s for d, s in enumerate(x.shape)], None, None,
                             self._stats(x))
        index_t = self.constant(np.asarray(indices, np.int32), name=self._name("gather_indices"))

        def options(fb: flatbuffers.Builder) -> int:
            tflite.GatherOptionsStart(fb)
            tflite.GatherOptionsAddAxis(fb, ax)
            return tflite.GatherOptionsEnd(fb)

        self._op("GATHER", Op.GATHER, 1 if x.is_float else 2, (x, index_t), (y,), tflite.BuiltinOptions.GatherOptions,
                 options)
        return y

    def mean(
        self,
        x: Tensor,
        axes: Sequence[int],
        keepdims: bool = False,
        *,
        output_scale: float | None = None,
        output_zero_point: int | None = None,
    ) -> Tensor:
        """MEAN over ``axes`` (an int32 axis tensor; ReducerOptions.keep_dims); int8 output requantized."""
        # Requantized over the input's own spread (most of it lies between channels, which averaging keeps).
        st = self._stats(x)
        st = _Stats(max(st.lo, st.mean - _SIGMAS * st.std), min(st.hi, st.mean + _SIGMAS * st.std), st.mean, st.std)
        y = self._output("mean", x, self._reduced(x, axes, keepdims), st, output_scale, output_zero_point)
        return self._reduce("MEAN", Op.MEAN, x, y, axes, keepdims)

    def reduce_max(self, x: Tensor, axes: Sequence[int], keepdims: bool = False, *, output_scale: float | None = None,
                   output_zero_point: int | None = None) -> Tensor:
        """REDUCE_MAX over ``axes``; int8 output quantized as the input (Keras's GlobalMaxPooling)."""
        y = self._same_quant("reduce_max", x, self._reduced(x, axes, keepdims), output_scale, output_zero_point,
                             self._stats(x))
        return self._reduce("REDUCE_MAX", Op.REDUCE_MAX, x, y, axes, keepdims)

    @staticmethod
    def _reduced(x: Tensor, axes: Sequence[int], keepdims: bool) -> tuple[int, ...]:
        rank = len(x.shape)
        red = {a % rank for a in axes}
        if keepdims:
            return tuple(1 if d in red else x.shape[d] for d in range(rank))
        return tuple(x.shape[d] for d in range(rank) if d not in red)

    def _reduce(self, kind: str, code: int, x: Tensor, y: Tensor, axes: Sequence[int], keepdims: bool) -> Tensor:
        at = self.constant(np.asarray(list(axes), np.int32), name=self._name(f"{kind.lower()}_axes"))

        def options(fb: flatbuffers.Builder) -> int:
            tflite.ReducerOptionsStart(fb)
            tflite.ReducerOptionsAddKeepDims(fb, keepdims)
            return tflite.ReducerOptionsEnd(fb)

        self._op(kind, code, 1 if x.is_float else 2, (x, at), (y,), tflite.BuiltinOptions.ReducerOptions, options)
        return y

    # ------------------------------------------------------------------------------------------- serialize

    def finish(self, outputs: Sequence[Tensor]) -> bytes:
        """Serialize the model with ``outputs`` as the subgraph's outputs; returns the flatbuffer bytes."""
        if not outputs:
            raise ValueError("a model needs at least one output")
        fb = flatbuffers.Builder(1024)
        # Buffer 0 is the empty sentinel; activations point at it, every constant gets the next one.
        buffer_of: dict[int, int] = {}
        buffer_data: list[bytes | None] = [None]
        for i, rec in enumerate(self._tensors):
            if rec.data is not None:
                buffer_of[i] = len(buffer_data)
                buffer_data.append(rec.data.astype(rec.data.dtype.newbyteorder("<"), copy=False).tobytes())
        buffers = [_write_buffer(fb, d) for d in buffer_data]
        tensors = [_write_tensor(fb, rec, buffer_of.get(i, 0)) for i, rec in enumerate(self._tensors)]
        codes: list[tuple[int, int]] = []
        operators = []
        for op in self._ops:
            key = (op.opcode, op.version)
            if key not in codes:
                codes.append(key)
            operators.append(_write_operator(fb, op, codes.index(key)))
        opcodes = [_write_opcode(fb, code, version) for code, version in codes]

        name = fb.CreateString("main")
        tensor_vec = _offset_vector(fb, tensors)
        inputs_vec = fb.CreateNumpyVector(np.asarray(self._inputs, np.int32))
        outputs_vec = fb.CreateNumpyVector(np.asarray([t.index for t in outputs], np.int32))
        ops_vec = _offset_vector(fb, operators)
        tflite.SubGraphStart(fb)
        tflite.SubGraphAddTensors(fb, tensor_vec)
        tflite.SubGraphAddInputs(fb, inputs_vec)
        tflite.SubGraphAddOutputs(fb, outputs_vec)
        tflite.SubGraphAddOperators(fb, ops_vec)
        tflite.SubGraphAddName(fb, name)
        subgraph = tflite.SubGraphEnd(fb)

        codes_vec = _offset_vector(fb, opcodes)
        subgraphs_vec = _offset_vector(fb, [subgraph])
        buffers_vec = _offset_vector(fb, buffers)
        description = fb.CreateString(self.description)
        tflite.ModelStart(fb)
        tflite.ModelAddVersion(fb, 3)
        tflite.ModelAddOperatorCodes(fb, codes_vec)
        tflite.ModelAddSubgraphs(fb, subgraphs_vec)
        tflite.ModelAddDescription(fb, description)
        tflite.ModelAddBuffers(fb, buffers_vec)
        fb.Finish(tflite.ModelEnd(fb), file_identifier=b"TFL3")
        return bytes(fb.Output())

    def save(self, path: str | Path, outputs: Sequence[Tensor]) -> Path:
        """Write ``finish(outputs)`` to ``path`` and return the path."""
        path = Path(path)
        path.write_bytes(self.finish(outputs))
        return path

    # ------------------------------------------------------------------------------------------- internals

    def _name(self, kind: str) -> str:
        n = self._counts.get(kind, 0)
        self._counts[kind] = n + 1
        return f"{kind}_{n}"

    def _add(self, rec: _TensorRecord) -> Tensor:
        self._tensors.append(rec)
        return self._handle(len(self._tensors) - 1)

    def _handle(self, index: int) -> Tensor:
        rec = self._tensors[index]
        scale = zp = None
        if rec.scales is not None and rec.scales.size == 1 and rec.data is None:
            scale, zp = float(rec.scales[0]), int(rec.zero_points[0])
        return Tensor(index, rec.shape, rec.dtype, scale, zp)

    def _stats(self, t: Tensor) -> _Stats:
        st = self._tensors[t.index].stats
        return _Stats.uniform(-1.0, 1.0) if st is None else st

    def _activation(self, kind: str, shape: Sequence[int], dtype: np.dtype, scale: float | None,
                    zero_point: int | None, stats: _Stats, is_input: bool = False) -> Tensor:
        shape = tuple(int(d) for d in shape)
        if any(d <= 0 for d in shape):
            raise ValueError(f"{kind}: every dimension must be positive, got {shape}")
        rec = _TensorRecord(self._name(kind), shape, dtype, stats=stats)
        if dtype == np.int8:
            if not (scale and scale > 0) or not -128 <= int(zero_point) <= 127:
                raise ValueError(f"{kind}: int8 needs scale > 0 and -128 <= zero point <= 127")
            rec.scales = np.array([scale], np.float32)
            rec.zero_points = np.array([zero_point], np.int64)
        t = self._add(rec)
        if is_input:
            self._inputs.append(t.index)
        return t

    def _output(self, kind: str, x: Tensor, shape: Sequence[int], stats: _Stats,
                scale: float | None, zero_point: int | None) -> Tensor:
        """The output activation of ``kind``: float like ``x``, or int8 quantized over the stats' range by default."""
        if x.is_float:
            return self._activation(kind, shape, x.dtype, None, None, stats)
        dscale, dzp = _quant_of_range((stats.lo, stats.hi))
        s = dscale if scale is None else scale
        zp = dzp if zero_point is None else zero_point
        return self._activation(kind, shape, x.dtype, s, zp, stats)

    def _same_quant(self, kind: str, x: Tensor, shape: Sequence[int], scale: float | None,
                    zero_point: int | None, stats: _Stats) -> Tensor:
        s = x.scale if scale is None else scale
        zp = x.zero_point if zero_point is None else zero_point
        return self._activation(kind, shape, x.dtype, s, zp, stats)

    def _fixed_output(self, kind: str, x: Tensor, shape: Sequence[int], scale: float, zero_point: int,
                      oscale: float | None, ozp: int | None, stats: _Stats) -> Tensor:
        if x.is_float:
            return self._activation(kind, shape, x.dtype, None, None, stats)
        s = scale if oscale is None else oscale
        zp = zero_point if ozp is None else ozp
        return self._activation(kind, shape, x.dtype, s, zp, stats)

    def _op(self, kind: str, code: int, version: int, inputs: tuple[Tensor, ...], outputs: tuple[Tensor, ...],
            options_type: int = tflite.BuiltinOptions.NONE, options: _OptionsWriter | None = None) -> None:
        self._ops.append(_OpRecord(code, version, tuple(t.index for t in inputs), tuple(t.index for t in outputs),
                                   options_type, options))
        self.ops.append(OpInfo(kind, inputs, outputs))

    def _default_weight_scales(self, channels: int, fan_in: int, x: Tensor) -> np.ndarray:
        # He-like: real weights of standard deviation ~1/sqrt(fan_in) keep the output about as large as the input;
        # a random factor in [1/2, 2] per channel makes the per-channel scales actually differ.
        std_int8 = 127 / math.sqrt(3)  # of integers uniform in [-127, 127]
        spread = np.exp(self.rng.uniform(math.log(0.5), math.log(2.0), channels))
        return (spread / (math.sqrt(fan_in) * std_int8)).astype(np.float32)

    def _weighted(
        self,
        x: Tensor,
        wshape: tuple[int, ...],
        qdim: int,
        weights: np.ndarray | None,
        weight_scales: float | Sequence[float] | None,
        bias: np.ndarray | None,
        activation: str,
        per_channel: bool = True,
    ) -> tuple[Tensor, Tensor, _Stats]:
        """Weight and bias tensors of a conv / depthwise / dense op, and the estimated stats of its output."""
        channels = wshape[qdim]
        fan_in = int(np.prod(wshape)) // channels
        st = self._stats(x)
        mean_x, var_x = st.mean, st.std**2
        if x.is_float:
            w = (self.rng.normal(0, 1 / math.sqrt(fan_in), wshape).astype(np.float32)
                 if weights is None else np.asarray(weights, np.float32))
            _check_shape("weights", w, wshape)
            w_real = np.moveaxis(w, qdim, 0).reshape(channels, -1).astype(np.float64)
            sums, sq = w_real.sum(1), (w_real**2).sum(1)
            std = np.sqrt(var_x * sq + 1e-12)
            b = (self.rng.uniform(-0.5, 0.5, channels) * std).astype(np.float32) if bias is None else bias
            b = np.asarray(b, np.float32)
            _check_shape("bias", b, (channels,))
            wt = self.constant(w, name=self._name("weights"))
            bt = self.constant(b, name=self._name("bias"))
            means = mean_x * sums + b
        else:
            if x.dtype != np.int8:
                raise ValueError("quantized ops read int8 tensors")
            if weights is None:
                w = self.rng.integers(-127, 128, wshape, dtype=np.int64).astype(np.int8)
            else:
                w = np.asarray(weights)
                if w.dtype != np.int8:
                    raise ValueError(f"int8 model weights must be int8, got {w.dtype}")
            _check_shape("weights", w, wshape)
            if weight_scales is None:
                ws = self._default_weight_scales(channels, fan_in, x)
            else:
                ws = np.atleast_1d(np.asarray(weight_scales, np.float32))
            # Per-channel ops always write one scale per channel (a scalar is repeated), per-tensor ones write one.
            if per_channel and ws.size == 1:
                ws = np.full(channels, ws[0], np.float32)
            elif not per_channel:
                ws = ws[:1] if weight_scales is None else ws
            if ws.size != (channels if per_channel else 1) or (ws <= 0).any():
                raise ValueError(f"weight scales: {channels if per_channel else 1} positive values, got {ws.size}")
            per_channel_ws = np.broadcast_to(ws, (channels,)).astype(np.float64)
            w_q = np.moveaxis(w, qdim, 0).reshape(channels, -1).astype(np.float64)
            w_real = w_q * per_channel_ws[:, None]
            sums, sq = w_real.sum(1), (w_real**2).sum(1)
            std = np.sqrt(var_x * sq + 1e-12)
            bias_scales = (x.scale * ws.astype(np.float64)).astype(np.float32)
            per_channel_bs = np.broadcast_to(bias_scales, (channels,)).astype(np.float64)
            if bias is None:
                b = np.round(self.rng.uniform(-0.5, 0.5, channels) * std / per_channel_bs).astype(np.int32)
            else:
                b = np.asarray(bias)
                if b.dtype != np.int32:
                    raise ValueError(f"int8 model biases must be int32, got {b.dtype}")
            _check_shape("bias", b, (channels,))
            zeros = np.zeros(ws.size, np.int64)
            wt = self.constant(w, ws, zeros, qdim, name=self._name("weights"))
            bt = self.constant(b, bias_scales, zeros, 0, name=self._name("bias"))
            means = mean_x * sums + b * per_channel_bs
        return wt, bt, _Stats.of_channels(means, std, activation)


# ------------------------------------------------------------------------------------------------- models


def ds_cnn_like(
    seed: int = 0, channels: int = 64, blocks: int = 4, classes: int = 12, head: str = "fully_connected"
) -> tuple[ModelBuilder, Tensor]:
    """A DS-CNN keyword spotter laid out like MLPerf Tiny's KWS reference model; returns the builder and output.

    Input (1, 49, 10, 1) int8; CONV_2D 10x4 stride 2 SAME + RELU; ``blocks`` x (DEPTHWISE 3x3 + RELU, CONV 1x1 +
    RELU); AVERAGE_POOL 25x5; then RESHAPE + FULLY_CONNECTED (``head="fully_connected"``) or CONV 1x1 + RESHAPE
    (``head="conv"``); SOFTMAX.
    """
    if head not in ("fully_connected", "conv"):
        raise ValueError(f"head is fully_connected or conv, not {head!r}")
    b = ModelBuilder(seed=seed)
    x = b.input((1, 49, 10, 1), scale=0.5847029, zero_point=83)
    y = b.conv2d(x, channels, (10, 4), (2, 2), "SAME", "RELU")
    for _ in range(blocks):
        y = b.depthwise_conv2d(y, (3, 3), (1, 1), "SAME", "RELU")
        y = b.conv2d(y, channels, (1, 1), activation="RELU")
    y = b.average_pool2d(y, (25, 5), (25, 5), "VALID")
    if head == "conv":
        y = b.reshape(b.conv2d(y, classes, (1, 1)), (1, classes))
    else:
        y = b.fully_connected(b.reshape(y, (1, channels)), classes)
    return b, b.softmax(y)


def hard_sigmoid(b: ModelBuilder, x: Tensor) -> Tensor:
    """Keras's hard sigmoid as the converter writes it: ``relu6(x + 3) * (1 / 6)``, an ADD of a constant scalar with a
    fused RELU6, then a MUL by a constant scalar; output 1/255 from zero."""
    three = b.constant(np.array([127], np.int8), scales=3.0 / 127, name=b._name("three"))
    sixth = b.constant(np.array([127], np.int8), scales=(1 / 6) / 127, name=b._name("one_sixth"))
    return b.mul(b.add(x, three, "RELU6"), sixth, output_scale=1 / 255, output_zero_point=-128)


def squeeze_excite(b: ModelBuilder, x: Tensor, squeeze: int) -> Tensor:
    """MobileNetV3's squeeze-and-excitation: MEAN (keep dims), 1x1 conv + RELU, 1x1 conv, hard sigmoid, MUL gate."""
    s = b.conv2d(b.mean(x, (1, 2), keepdims=True), squeeze, (1, 1), activation="RELU")
    return b.mul(x, hard_sigmoid(b, b.conv2d(s, x.shape[3], (1, 1))))


def mobilenet_v3_like(seed: int = 0, size: int = 32, width: int = 16, classes: int = 10) -> tuple[ModelBuilder, Tensor]:
    """A MobileNetV3-Small-shaped classifier as Keras's converter writes it; returns the builder and output.

    Input (1, size, size, 3); CONV 3x3 stride 2 + HARD_SWISH; a bottleneck (depthwise 3x3 stride 2 + RELU,
    squeeze-and-excitation, 1x1 projection); a residual bottleneck (1x1 expansion x4 + HARD_SWISH, depthwise 5x5 +
    HARD_SWISH, squeeze-and-excitation, 1x1 projection, ADD); 1x1 conv x6 + HARD_SWISH; MEAN; 1x1 conv + HARD_SWISH;
    SQUEEZE; FULLY_CONNECTED; SOFTMAX.
    """
    b = ModelBuilder(seed=seed)
    x = b.input((1, size, size, 3), scale=1 / 128, zero_point=0)
    y = b.activation(b.conv2d(x, width, (3, 3), (2, 2), "SAME"), "HARD_SWISH")
    y = b.depthwise_conv2d(y, (3, 3), (2, 2), "SAME", "RELU")
    y = b.conv2d(squeeze_excite(b, y, max(8, width // 4)), width, (1, 1))
    e = b.activation(b.conv2d(y, 4 * width, (1, 1)), "HARD_SWISH")
    e = b.activation(b.depthwise_conv2d(e, (5, 5), (1, 1), "SAME"), "HARD_SWISH")
    y = b.add(y, b.conv2d(squeeze_excite(b, e, width), width, (1, 1)))
    y = b.activation(b.conv2d(y, 6 * width, (1, 1)), "HARD_SWISH")
    y = b.activation(b.conv2d(b.mean(y, (1, 2), keepdims=True), 8 * width, (1, 1)), "HARD_SWISH")
    y = b.fully_connected(b.squeeze(y, (1, 2)), classes)
    return b, b.softmax(y)


# ------------------------------------------------------------------------------------------------- helpers


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TFLite's SAME padding of one spatial dimension as (before, after): ``total // 2`` before, the rest after."""
    out = (size + stride - 1) // stride
    effective = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def out_size(size: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> int:
    """TFLite's output size of one spatial dimension (``ComputeOutSize``) for SAME or VALID padding."""
    effective = (kernel - 1) * dilation + 1
    if padding == "SAME":
        return (size + stride - 1) // stride
    if padding == "VALID":
        return (size - effective + stride) // stride
    raise ValueError(f"padding is SAME or VALID, not {padding!r}")


def _spatial_out(hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], padding: str,
                 dilation: tuple[int, int]) -> tuple[int, int]:
    oh, ow = (out_size(hw[i], kernel[i], stride[i], padding, dilation[i]) for i in range(2))
    if oh <= 0 or ow <= 0:
        raise ValueError(f"a {kernel} window with {padding} padding does not fit an input of {hw}")
    return oh, ow


def _nhwc(x: Tensor) -> tuple[int, int, int, int]:
    if len(x.shape) != 4:
        raise ValueError(f"expected an NHWC tensor, got shape {x.shape}")
    n, h, w, c = x.shape
    return n, h, w, c


def _padding(name: str) -> int:
    if name not in PADDINGS:
        raise ValueError(f"padding is SAME or VALID, not {name!r}")
    return PADDINGS[name]


def _activation(name: str) -> int:
    if name not in ACTIVATIONS:
        raise ValueError(f"fused activation is one of {sorted(ACTIVATIONS)}, not {name!r}")
    return ACTIVATIONS[name]


def _same_kind(a: Tensor, b: Tensor) -> None:
    if a.dtype != b.dtype:
        raise ValueError(f"operands must share a type, got {a.dtype} and {b.dtype}")


def _check_shape(what: str, values: np.ndarray, shape: tuple[int, ...]) -> None:
    if tuple(values.shape) != tuple(shape):
        raise ValueError(f"{what} must have shape {shape}, got {tuple(values.shape)}")


def _resolve_shape(old: tuple[int, ...], new: Sequence[int]) -> tuple[int, ...]:
    total = int(np.prod(old))
    new = [int(d) for d in new]
    if new.count(-1) > 1:
        raise ValueError(f"at most one -1 in a new shape, got {new}")
    known = int(np.prod([d for d in new if d != -1]))
    if -1 in new:
        if known == 0 or total % known:
            raise ValueError(f"cannot reshape {old} to {new}")
        new[new.index(-1)] = total // known
    if int(np.prod(new)) != total:
        raise ValueError(f"cannot reshape {old} ({total} elements) to {new}")
    return tuple(new)


def _grid_range(scale: float, zero_point: int) -> tuple[float, float]:
    """The real values an int8 tensor can hold."""
    return ((-128 - zero_point) * scale, (127 - zero_point) * scale)


def _clip_range(r: tuple[float, float], activation: str) -> tuple[float, float]:
    """The range after a fused activation."""
    lo, hi = r
    if activation == "RELU":
        lo, hi = max(lo, 0.0), max(hi, 0.0)
    elif activation == "RELU6":
        lo, hi = min(max(lo, 0.0), 6.0), min(max(hi, 0.0), 6.0)
    elif activation == "RELU_N1_TO_1":
        lo, hi = min(max(lo, -1.0), 1.0), min(max(hi, -1.0), 1.0)
    return lo, hi


def _stats_of_values(values: np.ndarray) -> _Stats:
    if values.size == 0:
        return _Stats(0.0, 0.0, 0.0, 0.0)
    return _Stats(float(values.min()), float(values.max()), float(values.mean()), float(values.std()))


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in np.ravel(z)]).reshape(np.shape(z))


def _normal_pdf(z: np.ndarray) -> np.ndarray:
    finite = np.isfinite(z)
    safe = np.where(finite, z, 0.0)
    return np.where(finite, np.exp(-0.5 * safe * safe) / math.sqrt(2 * math.pi), 0.0)


def _clipped_normal_moments(mu: np.ndarray, sigma: np.ndarray, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """E[y] and E[y**2] of ``y = clip(x, a, b)`` for ``x ~ N(mu, sigma**2)`` (a, b may be infinite)."""
    alpha, beta = (a - mu) / sigma, (b - mu) / sigma
    cdf_a, cdf_b = _normal_cdf(alpha), _normal_cdf(beta)
    pa, pb = _normal_pdf(alpha), _normal_pdf(beta)
    za = np.where(np.isfinite(alpha), alpha, 0.0) * pa  # z * pdf(z) vanishes at infinity
    zb = np.where(np.isfinite(beta), beta, 0.0) * pb
    inside = cdf_b - cdf_a
    tail_a1 = a * cdf_a if math.isfinite(a) else 0.0
    tail_b1 = b * (1 - cdf_b) if math.isfinite(b) else 0.0
    tail_a2 = a * a * cdf_a if math.isfinite(a) else 0.0
    tail_b2 = b * b * (1 - cdf_b) if math.isfinite(b) else 0.0
    m1 = tail_a1 + tail_b1 + mu * inside + sigma * (pa - pb)
    m2 = tail_a2 + tail_b2 + (mu**2 + sigma**2) * inside + 2 * mu * sigma * (pa - pb) + sigma**2 * (za - zb)
    return m1, m2


def _quant_of_range(r: tuple[float, float]) -> tuple[float, int]:
    """int8 scale and zero point covering ``r`` (widened to hold 0, as the converter does)."""
    lo, hi = min(r[0], 0.0), max(r[1], 0.0)
    if hi - lo < 1e-9:
        hi = lo + 1e-3
    scale = (hi - lo) / 255
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return float(np.float32(scale)), zp


def _offset_vector(fb: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    fb.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        fb.PrependUOffsetTRelative(off)
    return fb.EndVector()


def _write_buffer(fb: flatbuffers.Builder, data: bytes | None) -> int:
    vec = None
    if data:
        # 16-byte alignment lets kernels read int32 / float32 constants in place.
        fb.StartVector(1, len(data), 16)
        fb.head = fb.head - len(data)
        fb.Bytes[fb.head:fb.head + len(data)] = data
        fb.vectorNumElems = len(data)
        vec = fb.EndVector()
    tflite.BufferStart(fb)
    if vec is not None:
        tflite.BufferAddData(fb, vec)
    return tflite.BufferEnd(fb)


def _write_tensor(fb: flatbuffers.Builder, rec: _TensorRecord, buffer: int) -> int:
    name = fb.CreateString(rec.name)
    shape = fb.CreateNumpyVector(np.asarray(rec.shape, np.int32))
    quant = None
    if rec.scales is not None:
        scales = fb.CreateNumpyVector(rec.scales.astype(np.float32))
        zps = fb.CreateNumpyVector(rec.zero_points.astype(np.int64))
        tflite.QuantizationParametersStart(fb)
        tflite.QuantizationParametersAddScale(fb, scales)
        tflite.QuantizationParametersAddZeroPoint(fb, zps)
        tflite.QuantizationParametersAddQuantizedDimension(fb, rec.quantized_dimension)
        quant = tflite.QuantizationParametersEnd(fb)
    tflite.TensorStart(fb)
    tflite.TensorAddShape(fb, shape)
    tflite.TensorAddType(fb, _TYPES[rec.dtype])
    tflite.TensorAddBuffer(fb, buffer)
    tflite.TensorAddName(fb, name)
    if quant is not None:
        tflite.TensorAddQuantization(fb, quant)
    return tflite.TensorEnd(fb)


def _write_operator(fb: flatbuffers.Builder, op: _OpRecord, opcode_index: int) -> int:
    inputs = fb.CreateNumpyVector(np.asarray(op.inputs, np.int32))
    outputs = fb.CreateNumpyVector(np.asarray(op.outputs, np.int32))
    options = op.options(fb) if op.options is not None else None
    tflite.OperatorStart(fb)
    tflite.OperatorAddOpcodeIndex(fb, opcode_index)
    tflite.OperatorAddInputs(fb, inputs)
    tflite.OperatorAddOutputs(fb, outputs)
    if options is not None:
        tflite.OperatorAddBuiltinOptionsType(fb, op.options_type)
        tflite.OperatorAddBuiltinOptions(fb, options)
    return tflite.OperatorEnd(fb)


def _write_opcode(fb: flatbuffers.Builder, code: int, version: int) -> int:
    tflite.OperatorCodeStart(fb)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(fb, min(code, _PLACEHOLDER_FOR_GREATER_OP_CODES))
    tflite.OperatorCodeAddBuiltinCode(fb, code)
    tflite.OperatorCodeAddVersion(fb, version)
    return tflite.OperatorCodeEnd(fb)

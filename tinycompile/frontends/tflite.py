"""int8 TFLite models -> QuantGraph, with TFLite's own integer parameters (not re-derived, not re-quantized).

Every number the interpreter's reference kernels use is computed here the way TFLite's ``Prepare`` computes it from
the float scales: per-channel ``QuantizeMultiplier`` of ``double(s_in) * double(s_w[c]) / double(s_out)`` (per-tensor
fully connected: the scale product in float32 first), fused-activation bounds ``zp + round(f / scale)`` in float32,
TensorFlow's asymmetric SAME padding, and the residual add's ``left_shift = 20`` scheme. The flatbuffer is read with
the ``tflite`` package (generated from TFLite's schema).

Layout: TFLite is NHWC like the QuantGraph; a ``(1, N)`` tensor is ``(1, 1, N)``. Batch must be 1.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tinycompile.arch import same_padding
from tinycompile.errors import UserError
from tinycompile.frontends import kernels
from tinycompile.frontends.slicing import slice_fields
from tinycompile.quant import semantics
from tinycompile.quant.graph import HWC, QOp, QParams, QuantGraph
from tinycompile.quant.intmath import quantize_multiplier, requantize_to_int8

INT8, INT32, FLOAT32 = 9, 2, 0
TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8"}
PADDING_SAME, PADDING_VALID = 0, 1
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6 = 0, 1, 2, 3
OPTIONS = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}  # the ops with a fused activation
MAX_MUL_LEFT_SHIFT = 15  # (a - zp_a)(b - zp_b) is at most 255**2: shifted left further, it leaves int32
NO_TENSOR = -1  # an op the import inserted (the flat view a FULLY_CONNECTED reads): no flatbuffer tensor holds it


@dataclass
class TfliteImport:
    """An imported int8 TFLite model: the graph, and how its values map back to the flatbuffer's tensors."""

    graph: QuantGraph
    op_tensors: list[int]  # flatbuffer tensor index of each QuantGraph op's output (NO_TENSOR: inserted by the import)
    op_sources: list[str]  # the TFLite operator each QuantGraph op came from, e.g. "3:DEPTHWISE_CONV_2D"
    input_tensor: int  # the model's input tensor (float32 when a QUANTIZE follows it)
    output_tensor: int  # the model's output tensor (float32 when it is a DEQUANTIZE's)
    int8_input_tensor: int  # the int8 tensor the graph starts from
    int8_output_tensor: int  # the int8 tensor the graph ends with
    input_dtype: str
    output_dtype: str
    input_shape: tuple[int, ...]  # as the model declares it, batch included
    output_shape: tuple[int, ...]
    float_input_q: QParams | None = None  # the QUANTIZE at the input: float -> int8
    float_output_q: QParams | None = None  # the DEQUANTIZE at the output: int8 -> float
    notes: list[str] = field(default_factory=list)

    def quantize_inputs(self, x: np.ndarray) -> np.ndarray:
        """Inputs in the model's own dtype and shape ``(N, *input shape without batch)`` -> int8 NHWC for the graph."""
        if self.float_input_q is not None:
            q = self.float_input_q
            scaled = np.asarray(x, np.float32) / np.float32(q.scale)
            x = np.clip(semantics.round_half_away(scaled) + q.zero_point, -128, 127).astype(np.int8)
        return np.asarray(x, np.int8).reshape(len(x), *self.graph.input_shape)

    def model_inputs(self, x8: np.ndarray) -> np.ndarray:
        """int8 graph inputs -> the model's own inputs ``(N, *input shape)``, batch axis included (float inputs
        quantize exactly back to ``x8``)."""
        x8 = np.asarray(x8, np.int8).reshape(len(x8), *self.input_shape)
        if self.float_input_q is None:
            return x8
        q = self.float_input_q
        return ((x8.astype(np.float32) - np.float32(q.zero_point)) * np.float32(q.scale)).astype(np.float32)


def import_tflite(path: str | Path) -> TfliteImport:
    """Read an int8 ``.tflite`` file into a QuantGraph; one-line ``UserError`` for anything it cannot take."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return _Importer(data, str(path)).run()
    except (struct.error, IndexError) as exc:  # the generated reader walked off a truncated buffer
        raise UserError(f"{path}: the TFLite flatbuffer is corrupt or truncated ({type(exc).__name__}); re-export it") from None


def _model(data: bytes, where: str) -> Any:
    import tflite

    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UserError(f"{where}: not a TFLite flatbuffer (no 'TFL3' identifier); is it a .tflite file?")
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() != 1:
            raise UserError(f"{where}: the model has {model.SubgraphsLength()} subgraphs; only single-subgraph models import")
        graph = model.Subgraphs(0)
        graph.OperatorsLength(), graph.TensorsLength(), model.BuffersLength()
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a truncated flatbuffer fails anywhere inside the generated reader
        raise UserError(f"{where}: the TFLite flatbuffer is corrupt or truncated ({type(exc).__name__}); re-export it") from None
    return model


class _Importer:
    """One pass over the operators in order; each TFLite op becomes zero, one or two QuantGraph ops."""

    def __init__(self, data: bytes, where: str) -> None:
        import tflite

        self.where = where
        self.model = _model(data, where)
        self.sub = self.model.Subgraphs(0)
        self.op_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        self.ops: list[QOp] = []
        self.op_tensors: list[int] = []
        self.op_sources: list[str] = []
        self.value: dict[int, int] = {}  # flatbuffer tensor -> QuantGraph value (-1: the graph input)
        self.grouped: dict[int, tuple[int, int, bool]] = {}  # channels split in groups: source, groups, transposed
        self.rows: dict[int, HWC] = {}  # a map TFLite holds as rows (H * W, C): a fully connected layer's per pixel
        self.read_tensors = {int(t) for k in range(self.sub.OperatorsLength())  # read by an op or the model's output
                             for t in self.sub.Operators(k).InputsAsNumpy()} | {int(t) for t in self.sub.OutputsAsNumpy()}
        self.notes: list[str] = []

    # --- flatbuffer access ---------------------------------------------------------------------
    def shape(self, t: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.sub.Tensors(t).ShapeAsNumpy()) if self.sub.Tensors(t).ShapeLength() else ()

    def dtype(self, t: int) -> int:
        return int(self.sub.Tensors(t).Type())

    def scales(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        q = self.sub.Tensors(t).Quantization()
        if q is None or q.ScaleLength() == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        zp = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(q.ScaleLength(), np.int64)
        return q.ScaleAsNumpy().astype(np.float32), np.asarray(zp, np.int64)

    def qparams(self, t: int, what: str) -> QParams:
        scale, zp = self.scales(t)
        if len(scale) != 1:
            raise UserError(f"{self.where}: {what} (tensor {t}) must be quantized per tensor, but has {len(scale)} scales")
        return QParams(float(scale[0]), int(zp[0]))

    def const(self, t: int) -> np.ndarray:
        tensor = self.sub.Tensors(t)
        buf = self.model.Buffers(tensor.Buffer())
        if buf is None or buf.DataLength() == 0:
            raise UserError(f"{self.where}: tensor {t} ({self.name(t)}) must be a constant, but has no data")
        dtype = {INT8: np.int8, INT32: np.int32, FLOAT32: np.float32, 4: np.int64}.get(self.dtype(t))
        if dtype is None:
            raise UserError(f"{self.where}: constant tensor {t} has type {TYPE_NAMES.get(self.dtype(t), self.dtype(t))}, which is not supported")
        return np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=dtype).reshape(self.shape(t))

    def name(self, t: int) -> str:
        raw = self.sub.Tensors(t).Name()
        return raw.decode(errors="replace") if raw else f"t{t}"

    def hwc(self, t: int) -> HWC:
        if t in self.rows:
            return self.rows[t]
        shape = self.shape(t)
        if not shape or shape[0] != 1 or len(shape) > 4:
            raise UserError(f"{self.where}: tensor {t} ({self.name(t)}) has shape {list(shape)}; only batch-1 tensors of rank 2 to 4 import")
        if len(shape) == 4:
            return shape[1], shape[2], shape[3]
        if len(shape) == 3:
            return 1, shape[1], shape[2]
        return 1, 1, shape[-1]

    def options(self, op: Any, cls_name: str) -> Any:
        import tflite

        table = op.BuiltinOptions()
        opts = getattr(tflite, cls_name)()
        if table is not None:
            opts.Init(table.Bytes, table.Pos)
        return opts if table is not None else None

    # --- the pass ----------------------------------------------------------------------------------
    def run(self) -> TfliteImport:
        sub = self.sub
        inputs, outputs = list(sub.InputsAsNumpy()), list(sub.OutputsAsNumpy())
        if len(inputs) != 1 or len(outputs) != 1:
            raise UserError(f"{self.where}: the model has {len(inputs)} inputs and {len(outputs)} outputs; only one of each imports")
        model_in, model_out = int(inputs[0]), int(outputs[0])
        int8_in, float_in_q = model_in, None
        first = 0
        if self.dtype(model_in) == FLOAT32:
            if sub.OperatorsLength() == 0 or self.op_name(0) != "QUANTIZE":
                raise UserError(f"{self.where}: a float model (input {self.name(model_in)} is float32); give calibration data with "
                                "--calib to quantize it here, or export an int8 model")
            int8_in = int(sub.Operators(0).OutputsAsNumpy()[0])
            float_in_q = self.qparams(int8_in, "the quantized input")
            first = 1
        if self.dtype(int8_in) != INT8:
            raise UserError(f"{self.where}: input type {TYPE_NAMES.get(self.dtype(int8_in), '?')}; only int8 (or float32 + QUANTIZE) models import")
        input_q = self.qparams(int8_in, "the input")
        self.value[int8_in] = -1
        int8_out, float_out_q = model_out, None
        for k in range(first, sub.OperatorsLength()):
            name = self.op_name(k)
            op = sub.Operators(k)
            if name == "DEQUANTIZE" and int(op.OutputsAsNumpy()[0]) == model_out:
                int8_out = int(op.InputsAsNumpy()[0])
                float_out_q = self.qparams(int8_out, "the output")
                continue
            handler = self.HANDLERS.get(name)
            if handler is None:
                raise UserError(f"{self.where}: operator {k} ({name}) is not supported; tinycompile imports "
                                f"{', '.join(sorted(self.HANDLERS))}")
            handler(self, k, op)
        if int8_out not in self.value or self.value[int8_out] < 0:
            raise UserError(f"{self.where}: the output tensor is not computed by any supported operator")
        if self.value[int8_out] != len(self.ops) - 1:
            raise UserError(f"{self.where}: the output must be the last operator's result")
        self.compose_lookups()
        graph = QuantGraph(self.hwc(int8_in), input_q, self.ops, {"source": self.where, "format": "tflite"})
        return TfliteImport(
            graph=graph, op_tensors=self.op_tensors, op_sources=self.op_sources, input_tensor=model_in,
            output_tensor=model_out, int8_input_tensor=int8_in, int8_output_tensor=int8_out,
            input_dtype=TYPE_NAMES.get(self.dtype(model_in), "?"), output_dtype=TYPE_NAMES.get(self.dtype(model_out), "?"),
            input_shape=self.shape(model_in), output_shape=self.shape(model_out),
            float_input_q=float_in_q, float_output_q=float_out_q, notes=self.notes,
        )  # fmt: skip

    def compose_lookups(self) -> None:
        """A table read only by another table becomes part of it: ``t2[t1[x] + 128]`` is one exact table (Keras's hard
        sigmoid, ``relu6(x + 3) * (1 / 6)``, is three TFLite ops and one lookup here)."""
        readers = [0] * len(self.ops)
        for op in self.ops:
            for i in op.inputs:
                if i >= 0:
                    readers[i] += 1
        gone = set()
        for i, op in enumerate(self.ops):
            j = op.inputs[0] if op.op == "lut" else -1
            if j >= 0 and self.ops[j].op == "lut" and readers[j] == 1:
                first = self.ops[j]
                table = op.tensors["table"][first.tensors["table"].astype(np.int64) + 128]
                self.ops[i] = replace(op, inputs=first.inputs, in_shapes=first.in_shapes, in_q=first.in_q,
                                      tensors={"table": table})
                self.op_sources[i] = f"{self.op_sources[j]}+{self.op_sources[i]}"
                gone.add(j)
        if not gone:
            return
        kept = [i for i in range(len(self.ops)) if i not in gone]
        new_index = {old: new for new, old in enumerate(kept)} | {-1: -1}
        self.ops = [replace(self.ops[i], inputs=tuple(new_index[v] for v in self.ops[i].inputs)) for i in kept]
        self.op_tensors = [self.op_tensors[i] for i in kept]
        self.op_sources = [self.op_sources[i] for i in kept]
        self.notes.append(f"{len(gone)} lookup table(s) composed into the table that reads them")

    def op_name(self, k: int) -> str:
        code = self.model.OperatorCodes(self.sub.Operators(k).OpcodeIndex())
        return self.op_names.get(max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode())), "CUSTOM")

    def emit(self, k: int, op: QOp, out_tensor: int) -> None:
        self.ops.append(op)
        self.op_tensors.append(out_tensor)
        self.op_sources.append(f"{k}:{self.op_name(k)}")
        if out_tensor != NO_TENSOR:
            self.value[out_tensor] = len(self.ops) - 1

    def source(self, t: int, k: int) -> int:
        if t not in self.value:
            raise UserError(f"{self.where}: operator {k} ({self.op_name(k)}) reads tensor {t} ({self.name(t)}), which no "
                            "supported operator produced (a constant activation or a second input?)")
        return self.value[t]

    def int8(self, t: int, k: int, what: str) -> None:
        if self.dtype(t) != INT8:
            raise UserError(f"{self.where}: operator {k} ({self.op_name(k)}): {what} is {TYPE_NAMES.get(self.dtype(t), '?')}, "
                            "but only int8 activations import")

    def base(self, k: int, ins: list[int], out: int) -> dict[str, Any]:
        for t in (*ins, out):
            self.int8(t, k, f"tensor {t} ({self.name(t)})")
        return dict(inputs=tuple(self.source(t, k) for t in ins), in_shapes=tuple(self.hwc(t) for t in ins),
                    out_shape=self.hwc(out), in_q=tuple(self.qparams(t, "an activation") for t in ins),
                    out_q=self.qparams(out, "an activation"))  # fmt: skip

    def act_range(self, act: int, q: QParams, k: int) -> tuple[int, int]:
        """TFLite's CalculateActivationRangeQuantized: ``zp + round(f / scale)`` in float32, within int8."""

        def at(f: float) -> int:
            return q.zero_point + int(semantics.round_half_away(np.float32(f) / np.float32(q.scale)))

        if act == ACT_NONE:
            return -128, 127
        if act == ACT_RELU:
            return max(-128, at(0.0)), 127
        if act == ACT_RELU6:
            return max(-128, at(0.0)), min(127, at(6.0))
        if act == ACT_RELU_N1_TO_1:
            return max(-128, at(-1.0)), min(127, at(1.0))
        raise UserError(f"{self.where}: operator {k} ({self.op_name(k)}) has fused activation {act} (TANH/SIGN_BIT), which is not supported")

    def arithmetic_range(self, k: int, op: Any, q: QParams) -> tuple[int, int]:
        """The clamp of an ADD, SUB or MUL's fused activation (none for MAXIMUM, MINIMUM or missing options)."""
        kind = self.op_name(k)
        opts = self.options(op, OPTIONS[kind]) if kind in OPTIONS else None
        return self.act_range(int(opts.FusedActivationFunction()) if opts is not None else ACT_NONE, q, k)

    def padding(self, kind: int, in_hwc: HWC, kernel: tuple[int, int], stride: tuple[int, int]) -> tuple[int, int, int, int]:
        if kind == PADDING_VALID:
            return 0, 0, 0, 0
        top, bottom = same_padding(in_hwc[0], kernel[0], stride[0])
        left, right = same_padding(in_hwc[1], kernel[1], stride[1])
        return top, bottom, left, right

    # --- weighted ops --------------------------------------------------------------------------
    def weighted(self, k: int, op: Any, kind: str) -> None:
        ins = [int(t) for t in op.InputsAsNumpy()]
        out = int(op.OutputsAsNumpy()[0])
        if kind == "dense":
            self.dense_rows(ins[0], ins[1], out)
        base = self.base(k, ins[:1], out)
        w, tensors, effective = self.weights(k, base, ins[1], ins[2] if len(ins) > 2 else -1)
        if kind == "dense":
            self.dense(k, op, base, w, tensors, effective, out)
            return
        opts = self.options(op, "Conv2DOptions" if kind == "conv" else "DepthwiseConv2DOptions")
        stride = (int(opts.StrideH()), int(opts.StrideW()))
        dilation = (max(1, int(opts.DilationHFactor())), max(1, int(opts.DilationWFactor())))
        c_in = base["in_shapes"][0][2]
        if kind == "conv" and w.shape[3] != c_in:  # grouped: each output channel reads its group's input channels
            groups = c_in // w.shape[3]
            if c_in % w.shape[3] or w.shape[0] % groups:
                raise UserError(f"{self.where}: operator {k} (CONV_2D) filters read {w.shape[3]} channels of {c_in} "
                                f"and make {w.shape[0]}: no whole number of groups; re-export the model")
            if groups == c_in == w.shape[0]:  # one channel per group: a depthwise convolution
                w, kind = w.transpose(3, 1, 2, 0), "dwconv"
            else:
                w = _ohwi(lambda oihw: kernels.block_diagonal(oihw, groups), w)
                self.notes.append(f"operator {k}: {groups} groups run as a full convolution ({groups}x the MACs)")
        if kind == "dwconv" and w.shape[3] != c_in:  # depth multiplier M: a conv of C groups, one input channel each
            w, kind = _ohwi(lambda oihw: kernels.block_diagonal(oihw, c_in), w.transpose(3, 1, 2, 0)), "conv"
            self.notes.append(f"operator {k}: depth multiplier {w.shape[0] // c_in} runs as a full convolution "
                              f"({c_in}x the MACs)")
        if dilation != (1, 1):  # the same sums over a kernel of zeros between the taps: exact, more MACs
            w = _ohwi(lambda oihw: kernels.dilated(oihw, dilation), w)
            self.notes.append(f"operator {k}: dilation {dilation} runs as a {w.shape[1]}x{w.shape[2]} kernel with zeros")
        kernel = (w.shape[1], w.shape[2])
        tensors["weight"] = np.ascontiguousarray(w if kind == "conv" else w[0])
        pad = self.padding(int(opts.Padding()), base["in_shapes"][0], kernel, stride)
        lo, hi = self.act_range(int(opts.FusedActivationFunction()), base["out_q"], k)
        self.emit(k, QOp(op=kind, kernel=kernel, stride=stride, padding=pad, lo=lo, hi=hi, tensors=tensors, **base), out)

    def weights(self, k: int, base: dict[str, Any], w_t: int,
                bias_t: int) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """A weighted op's int8 weights, its bias and per-channel multipliers as TFLite's Prepare computes them
        (``bias_t`` -1: no bias), and its effective scales."""
        w = self.const(w_t)
        if self.dtype(w_t) != INT8:
            raise UserError(f"{self.where}: operator {k} ({self.op_name(k)}) has {TYPE_NAMES.get(self.dtype(w_t))} weights; only int8 imports")
        w_scale, w_zp = self.scales(w_t)
        if len(w_zp) and np.any(w_zp != 0):
            raise UserError(f"{self.where}: operator {k} ({self.op_name(k)}) has weight zero points != 0; TFLite int8 weights are symmetric")
        channels = base["out_shape"][2]
        bias = self.const(bias_t).astype(np.int32) if bias_t >= 0 else np.zeros(channels, np.int32)
        if bias.shape != (channels,):
            raise UserError(f"{self.where}: operator {k} ({self.op_name(k)}): bias shape {bias.shape} != ({channels},)")
        s_in, s_out = base["in_q"][0].scale, base["out_q"].scale
        per = np.broadcast_to(w_scale.astype(np.float64), (channels,))
        effective = float(np.float32(s_in)) * per / float(np.float32(s_out))  # in double, as Prepare computes it
        if effective.min() <= 0.0 or effective.max() >= 2.0**30:
            raise UserError(f"{self.where}: operator {k} ({self.op_name(k)}) has effective scales "
                            f"{effective.min():.3g}..{effective.max():.3g}; they must lie in (0, 2**30)")
        pairs = [quantize_multiplier(float(e), allow_left_shift=True) for e in effective]  # >= 1: a left shift
        tensors = {"bias": bias, "multiplier": np.array([m for m, _ in pairs], np.int32),
                   "shift": np.array([s for _, s in pairs], np.int32)}
        return w, tensors, effective

    def transpose_conv(self, k: int, op: Any) -> None:
        """TRANSPOSE_CONV: its input spread ``stride`` apart with the zero point between and around (a ``spread``
        op), then a stride-1 convolution with the filters flipped: the same integer sums as TFLite's scatter."""
        shape_t, w_t, src = (int(t) for t in op.InputsAsNumpy()[:3])
        bias_t = int(op.InputsAsNumpy()[3]) if op.InputsLength() > 3 else -1
        out = int(op.OutputsAsNumpy()[0])
        base = self.base(k, [src], out)
        w, tensors, _ = self.weights(k, base, w_t, bias_t)
        opts = self.options(op, "TransposeConvOptions")
        stride = (int(opts.StrideH()), int(opts.StrideW()))
        (h, wd, c), (oh, ow, _) = base["in_shapes"][0], base["out_shape"]
        kh, kw = w.shape[1], w.shape[2]
        # TFLite pads as a convolution from the output back to the input would; the scatter starts that far before
        pt, pl = self.padding(int(opts.Padding()), (oh, ow, c), (kh, kw), stride)[0::2]
        before = (kh - 1 - pt, kw - 1 - pl)
        after = (oh + kh - 1 - before[0] - ((h - 1) * stride[0] + 1), ow + kw - 1 - before[1] - ((wd - 1) * stride[1] + 1))
        if min(*before, *after) < 0:
            raise UserError(f"{self.where}: operator {k} (TRANSPOSE_CONV) crops its output ({h}x{wd} to {oh}x{ow}, "
                            f"kernel {kh}x{kw}, stride {stride}); not supported")
        spread_shape = (oh + kh - 1, ow + kw - 1, c)
        q = base["in_q"][0]
        self.emit(k, QOp("spread", base["inputs"], base["in_shapes"], spread_shape, base["in_q"], q, stride=stride,
                         padding=(before[0], after[0], before[1], after[1]), params={"value": q.zero_point}), NO_TENSOR)
        tensors["weight"] = np.ascontiguousarray(w[:, ::-1, ::-1, :])
        lo, hi = self.act_range(int(opts.FusedActivationFunction()), base["out_q"], k)
        conv = dict(base, inputs=(len(self.ops) - 1,), in_shapes=(spread_shape,))
        self.emit(k, QOp(op="conv", kernel=(kh, kw), lo=lo, hi=hi, tensors=tensors, **conv), out)

    def dense_rows(self, src: int, w_t: int, out: int) -> None:
        """Note ``out`` as rows of a map where a FULLY_CONNECTED reads a map or a sequence row by row without keeping
        its dimensions (the converter's older form of Keras's Dense on a 3-D or 4-D tensor: output ``(H * W, O)``,
        reshaped back after it)."""
        h, w, c = self.hwc(src)
        units, depth = (self.shape(w_t) + (0, 0))[:2]
        if (h, w) != (1, 1) and depth == c and self.shape(out) == (h * w, units):
            self.rows[out] = (h, w, units)

    def dense(self, k: int, op: Any, base: dict[str, Any], w: np.ndarray, tensors: dict[str, np.ndarray],
              effective: np.ndarray, out: int) -> None:
        """FULLY_CONNECTED over the flattened input; with keep_num_dims (or row by row, :meth:`dense_rows`) over a map
        or a sequence (Keras's Dense on a 3-D or 4-D tensor), the same dense layer at every pixel: a 1x1 convolution
        with the dense layer's requantization."""
        opts = self.options(op, "FullyConnectedOptions")
        in_hwc = base["in_shapes"][0]
        keep = (opts is not None and bool(opts.KeepNumDims())) or out in self.rows
        per_pixel = keep and in_hwc[:2] != (1, 1)
        if w.ndim != 2 or w.shape[1] != (in_hwc[2] if per_pixel else int(np.prod(in_hwc))):
            raise UserError(f"{self.where}: operator {k} (FULLY_CONNECTED) weights {list(w.shape)} do not match its input {list(in_hwc)}")
        if not per_pixel and in_hwc[:2] != (1, 1):  # TFLite flattens the NHWC input: a view; the weights are in its order
            flat = (1, 1, int(np.prod(in_hwc)))
            self.emit(k, QOp("flatten", base["inputs"], base["in_shapes"], flat, base["in_q"], base["in_q"][0]), NO_TENSOR)
            base = dict(base, inputs=(len(self.ops) - 1,), in_shapes=(flat,))
        act = int(opts.FusedActivationFunction()) if opts is not None else ACT_NONE
        lo, hi = self.act_range(act, base["out_q"], k)
        tensors["weight"] = np.ascontiguousarray(w[:, None, None, :] if per_pixel else w)  # a conv's is (O, KH, KW, I)
        # The reference kernel rounds double(acc) * scale (ties away from zero); fixed-point single rounding is used
        # by the back ends where it provably gives the same outputs.
        tensors["scale"] = effective.astype(np.float64)
        params = {"float_scale": 1}
        if tensors["shift"].min() >= 0 and semantics.single_rounding_exact(
                tensors["multiplier"], tensors["shift"], effective, base["out_q"].zero_point, lo, hi):
            params["single_rounding"] = 1
        if per_pixel:
            self.emit(k, QOp(op="conv", kernel=(1, 1), stride=(1, 1), lo=lo, hi=hi, params=params, tensors=tensors,
                             **base), out)
        else:
            self.emit(k, QOp(op="dense", lo=lo, hi=hi, params=params, tensors=tensors, **dict(base, out_shape=(1, 1, w.shape[0]))), out)

    # --- the other ops -------------------------------------------------------------------------
    def unscaled(self, k: int, base: dict[str, Any], whose: str) -> None:
        """UserError unless operator ``k`` (``base``) keeps its input's quantization, which ``whose`` kernel needs."""
        if base["in_q"][0] != base["out_q"]:
            raise UserError(f"{self.where}: operator {k} ({self.op_name(k)}) rescales (input and output quantization "
                            f"differ); {whose}")

    def pool(self, k: int, op: Any, kind: str) -> None:
        ins, out = [int(op.InputsAsNumpy()[0])], int(op.OutputsAsNumpy()[0])
        base = self.base(k, ins, out)
        opts = self.options(op, "Pool2DOptions")
        kernel = (int(opts.FilterHeight()), int(opts.FilterWidth()))
        stride = (int(opts.StrideH()), int(opts.StrideW()))
        # SAME padding: TFLite's pools ignore the taps outside the input (a max never takes them, a mean divides by
        # the taps inside), as the spec's padded pools do
        pad = self.padding(int(opts.Padding()), base["in_shapes"][0], kernel, stride)
        base["padding"] = pad
        self.unscaled(k, base, "TFLite's int8 pools do not")
        lo, hi = self.act_range(int(opts.FusedActivationFunction()), base["out_q"], k)
        if kind == "maxpool":
            self.emit(k, QOp(op="maxpool", kernel=kernel, stride=stride, lo=lo, hi=hi, **base), out)
            return
        count = kernel[0] * kernel[1]
        zp = base["in_q"][0].zero_point
        exact = None if any(pad) else _multiplier_average(count, zp, lo, hi)
        if exact is not None:  # the multiplier form equals TFLite's division on every possible window sum
            tensors = {"multiplier": np.array([exact[0]], np.int32), "shift": np.array([exact[1]], np.int32)}
            self.emit(k, QOp(op="avgpool", kernel=kernel, stride=stride, lo=lo, hi=hi, tensors=tensors, **base), out)
        else:
            why = "over a padded window" if any(pad) else f"of {count} (no exact multiplier)"
            self.notes.append(f"operator {k}: average {why} kept as an integer division")
            self.emit(k, QOp(op="avgpool", kernel=kernel, stride=stride, lo=lo, hi=hi, params={"divide": 1}, **base), out)

    def add(self, k: int, op: Any) -> None:
        ins, out = [int(t) for t in op.InputsAsNumpy()], int(op.OutputsAsNumpy()[0])
        if self.const_operand(k, op):
            return
        base = self.base(k, ins, out)
        if base["in_shapes"][0] != base["in_shapes"][1]:
            raise UserError(f"{self.where}: operator {k} (ADD) broadcasts {list(base['in_shapes'][0])} + "
                            f"{list(base['in_shapes'][1])}; only equal shapes import")
        s_a, s_b, s_o = (float(np.float32(q.scale)) for q in (*base["in_q"], base["out_q"]))
        mults, shifts = semantics.add_multipliers(s_a, s_b, s_o)
        lo, hi = self.arithmetic_range(k, op, base["out_q"])
        tensors = {"multiplier": np.array(mults, np.int32), "shift": np.array(shifts, np.int32)}
        self.emit(k, QOp(op="add", lo=lo, hi=hi, params={"left_shift": semantics.ADD_LEFT_SHIFT}, tensors=tensors, **base), out)

    def reshape(self, k: int, op: Any) -> None:
        src, out = int(op.InputsAsNumpy()[0]), int(op.OutputsAsNumpy()[0])
        if self.qparams(src, "a reshape's input") != self.qparams(out, "a reshape's output"):
            raise UserError(f"{self.where}: operator {k} ({self.op_name(k)}) changes the quantization; not supported")
        if src in self.grouped:
            self.merge_groups(k, src, out)
            return
        shape, new = self.shape(src), self.shape(out)
        if len(new) == len(shape) + 1 and new[:-2] == shape[:-1] and new[-2] * new[-1] == shape[-1] and new[-2] > 1:
            self.grouped[out] = (src, new[-2], False)  # the channels split in groups: a channel shuffle's start
            return
        in_hwc, out_hwc = self.hwc(src), self.hwc(out)
        if out_hwc == in_hwc:  # the same bytes in the same layout: nothing to run
            self.value[out] = self.source(src, k)
            return
        if out_hwc[:2] != (1, 1):
            raise UserError(f"{self.where}: operator {k} ({self.op_name(k)}) to {list(self.shape(out))}: only reshapes that "
                            "keep the NHWC layout or flatten it import")
        base = self.base(k, [src], out)
        self.emit(k, QOp(op="flatten", **base), out)

    def transpose(self, k: int, op: Any) -> None:
        """TRANSPOSE of the channels split in groups (a channel shuffle's middle), or one that keeps the layout."""
        src, perm_t = (int(t) for t in op.InputsAsNumpy()[:2])
        out = int(op.OutputsAsNumpy()[0])
        perm = [int(p) % len(self.shape(src)) for p in self.const(perm_t).reshape(-1)]
        if src in self.grouped and perm == [*range(len(perm) - 2), len(perm) - 1, len(perm) - 2]:
            source, groups, swapped = self.grouped[src]
            self.grouped[out] = (source, groups, not swapped)
            return
        if src in self.grouped or self.hwc(src) != self.hwc(out):
            raise UserError(f"{self.where}: operator {k} (TRANSPOSE) permutes axes {perm} of {list(self.shape(src))}; only "
                            "a channel shuffle's (reshape to groups, swap the last two axes, reshape back) imports")
        self.value[out] = self.source(src, k)

    def merge_groups(self, k: int, src: int, out: int) -> None:
        """The reshape that ends a channel shuffle: channel ``j`` of the output is ``(j % g) * (C / g) + j // g``."""
        source, groups, swapped = self.grouped[src]
        if self.shape(out) != self.shape(source):
            raise UserError(f"{self.where}: operator {k} (RESHAPE) reshapes channels split in groups to "
                            f"{list(self.shape(out))}; only back to {list(self.shape(source))} (a channel shuffle) imports")
        channels = self.shape(source)[-1]
        if not swapped:
            self.value[out] = self.source(source, k)
            return
        per_group = channels // groups
        self.slice(k, source, out, {}, select=[(j % groups) * per_group + j // groups for j in range(channels)])

    def resize_nearest(self, k: int, op: Any) -> None:
        """RESIZE_NEAREST_NEIGHBOR by whole factors, corners not aligned: each pixel repeated (with or without half
        pixel centers, TFLite's nearest source pixel is then ``out // factor``)."""
        src, out = int(op.InputsAsNumpy()[0]), int(op.OutputsAsNumpy()[0])
        base = self.base(k, [src], out)
        (h, w, c), (oh, ow, oc) = base["in_shapes"][0], base["out_shape"]
        opts = self.options(op, "ResizeNearestNeighborOptions")
        if opts is not None and opts.AlignCorners():
            raise UserError(f"{self.where}: operator {k} (RESIZE_NEAREST_NEIGHBOR) aligns corners; only plain "
                            "upsampling by whole factors imports")
        if oh % h or ow % w or oc != c:
            raise UserError(f"{self.where}: operator {k} (RESIZE_NEAREST_NEIGHBOR) resizes {h}x{w} to {oh}x{ow}; only "
                            "upsampling by whole factors imports")
        if base["in_q"][0] != base["out_q"]:
            raise UserError(f"{self.where}: operator {k} (RESIZE_NEAREST_NEIGHBOR) changes the quantization; not supported")
        self.emit(k, QOp(op="upsample", stride=(oh // h, ow // w), **base), out)

    def whole_map(self, k: int, op: Any) -> tuple[dict[str, Any], int]:
        """The ``base`` of a reduction (MEAN, REDUCE_MAX) over every spatial axis (H and W of NHWC, the length of a 1-D
        NLC tensor; axes of size one may stay), and its output tensor; UserError for any other axes."""
        ins, out = [int(t) for t in op.InputsAsNumpy()], int(op.OutputsAsNumpy()[0])
        base = self.base(k, ins[:1], out)
        shape = self.shape(ins[0])
        rank = len(shape)
        axes = sorted({int(a) % rank for a in self.const(ins[1]).reshape(-1)})
        spatial = set(range(1, rank - 1))
        c = base["in_shapes"][0][2]
        if not axes or not set(axes) <= spatial or any(shape[a] != 1 for a in spatial - set(axes)) \
                or base["out_shape"] != (1, 1, c):
            raise UserError(f"{self.where}: operator {k} ({self.op_name(k)}) reduces axes {axes} of a rank-{rank} "
                            "tensor; only a reduction over all spatial axes of an NHWC (or NLC) tensor imports")
        return base, out

    def mean(self, k: int, op: Any) -> None:
        """MEAN over the whole map: an average pool with TFLite's multiplier (its reference kernel folds 1/count into
        ``QuantizeMultiplier(s_in / s_out)``, then requantizes ``sum - count * zp_in`` twice-rounded)."""
        base, out = self.whole_map(k, op)
        h, w, _ = base["in_shapes"][0]
        ratio = float(np.float32(base["in_q"][0].scale)) / float(np.float32(base["out_q"].scale))
        m0, s0 = quantize_multiplier(ratio, allow_left_shift=True)
        count = h * w
        step = min(count.bit_length() - 1, 32, 31 - s0)  # TFLite's shift by floor(log2(count)), capped
        mult = (m0 << step) // count
        shift = s0 + step  # negative: a left shift (an output scale below the input's, few elements)
        tensors = {"multiplier": np.array([mult], np.int32), "shift": np.array([shift], np.int32)}
        self.emit(k, QOp(op="avgpool", kernel=(h, w), stride=(1, 1), tensors=tensors, **base), out)

    def reduce_max(self, k: int, op: Any) -> None:
        """REDUCE_MAX over the whole map (Keras's GlobalMaxPooling1D/2D): a max pool over it. TFLite's int8 kernel
        passes the largest value on as it is, so the output must be quantized as the input."""
        base, out = self.whole_map(k, op)
        self.unscaled(k, base, "TFLite's int8 REDUCE_MAX does not")
        h, w, _ = base["in_shapes"][0]
        self.emit(k, QOp(op="maxpool", kernel=(h, w), stride=(1, 1), **base), out)

    def softmax(self, k: int, op: Any) -> None:
        src, out = int(op.InputsAsNumpy()[0]), int(op.OutputsAsNumpy()[0])
        base = self.base(k, [src], out)
        opts = self.options(op, "SoftmaxOptions")
        beta = float(opts.Beta()) if opts is not None else 1.0
        params = semantics.softmax_params(beta, float(np.float32(base["in_q"][0].scale)))
        self.emit(k, QOp(op="softmax", params=dict(params), **base), out)

    def pad(self, k: int, op: Any) -> None:
        ins, out = [int(t) for t in op.InputsAsNumpy()], int(op.OutputsAsNumpy()[0])
        base = self.base(k, ins[:1], out)
        pads = self.const(ins[1]).reshape(-1, 2)
        full = np.zeros((4, 2), np.int64)
        full[4 - len(pads) :] = pads
        if full[0].any() or full[3].any():
            raise UserError(f"{self.where}: operator {k} ({self.op_name(k)}) pads the batch or channel axis; only H and W padding imports")
        if base["in_q"][0] != base["out_q"]:
            raise UserError(f"{self.where}: operator {k} ({self.op_name(k)}) changes the quantization; not supported")
        value = base["out_q"].zero_point
        if len(ins) > 2 and ins[2] >= 0:  # PADV2's constant, already quantized like the input
            value = int(self.const(ins[2]).reshape(-1)[0])
        padding = (int(full[1, 0]), int(full[1, 1]), int(full[2, 0]), int(full[2, 1]))
        self.emit(k, QOp(op="pad", padding=padding, params={"value": value}, **base), out)

    def concat(self, k: int, op: Any) -> None:
        ins, out = [int(t) for t in op.InputsAsNumpy()], int(op.OutputsAsNumpy()[0])
        base = self.base(k, ins, out)
        opts = self.options(op, "ConcatenationOptions")
        rank = len(self.shape(out))
        if int(opts.Axis()) not in (-1, rank - 1):
            raise UserError(f"{self.where}: operator {k} (CONCATENATION) joins axis {opts.Axis()}; only the channel axis imports")
        if any(q != base["out_q"] for q in base["in_q"]):
            raise UserError(f"{self.where}: operator {k} (CONCATENATION) rescales its inputs; only equal quantization imports")
        lo, hi = self.act_range(int(opts.FusedActivationFunction()), base["out_q"], k)
        self.emit(k, QOp(op="concat", lo=lo, hi=hi, **base), out)

    # --- slices: STRIDED_SLICE, SLICE, SPLIT, SPLIT_V, GATHER along the channels -> slice ops -------------------
    def strided_slice(self, k: int, op: Any) -> None:
        src, begin_t, end_t = (int(t) for t in op.InputsAsNumpy()[:3])
        strides_t = int(op.InputsAsNumpy()[3]) if self.op_name(k) == "STRIDED_SLICE" else -1
        rank = len(self.shape(src))
        begin = [int(v) for v in self.const(begin_t).reshape(-1)]
        if self.op_name(k) == "SLICE":  # begin and size (-1: to the end)
            ends = [size if n == -1 else b + n for b, n, size in zip(begin, self.const(end_t).reshape(-1), self.shape(src))]
            steps = [1] * rank
        else:
            opts = self.options(op, "StridedSliceOptions")
            if opts is not None and (opts.EllipsisMask() or opts.NewAxisMask() or opts.ShrinkAxisMask() or opts.Offset()):
                raise UserError(f"{self.where}: operator {k} (STRIDED_SLICE) uses ellipsis, new-axis, shrink-axis or "
                                "offset masks; only plain strided slices import")
            ends = [int(v) for v in self.const(end_t).reshape(-1)]
            steps = [int(v) for v in self.const(strides_t).reshape(-1)]
            for axis in range(rank):  # a masked begin or end is the whole axis
                if opts is not None and opts.BeginMask() >> axis & 1:
                    begin[axis] = 0 if steps[axis] > 0 else -1
                if opts is not None and opts.EndMask() >> axis & 1:
                    ends[axis] = self.shape(src)[axis] if steps[axis] > 0 else -self.shape(src)[axis] - 1
        self.slice(k, src, int(op.OutputsAsNumpy()[0]), dict(enumerate(zip(begin, ends, steps))))

    def split(self, k: int, op: Any) -> None:
        ins = [int(t) for t in op.InputsAsNumpy()]
        src, axis_t = (ins[1], ins[0]) if self.op_name(k) == "SPLIT" else (ins[0], ins[2])
        axis = int(self.const(axis_t).reshape(-1)[0]) % len(self.shape(src))
        begin = 0
        for out in (int(t) for t in op.OutputsAsNumpy()):
            end = begin + self.shape(out)[axis]
            if out in self.read_tensors:  # a part nothing reads is not made
                self.slice(k, src, out, {axis: (begin, end, 1)})
            begin = end

    def gather(self, k: int, op: Any) -> None:
        src, index_t = (int(t) for t in op.InputsAsNumpy()[:2])
        opts = self.options(op, "GatherOptions")
        rank = len(self.shape(src))
        axis = (int(opts.Axis()) if opts is not None else 0) % rank
        index = self.const(index_t) if self.is_const(index_t) else None
        if index is None or index.ndim != 1 or axis != rank - 1 or (opts is not None and opts.BatchDims()):
            raise UserError(f"{self.where}: operator {k} (GATHER) gathers along axis {axis} of {rank}; only constant "
                            "indices along the channel axis import")
        self.slice(k, src, int(op.OutputsAsNumpy()[0]), {}, select=[int(j) % self.shape(src)[-1] for j in index])

    def slice(self, k: int, src: int, out: int, ranges: dict[int, tuple[int, int, int]],
              select: list[int] | None = None) -> None:
        """Output ``out`` is ``src`` cut to ``ranges`` (axis -> begin, end, step as Python slices) and channels
        ``select``: a slice op, which copies int8 values (the quantization must stay)."""
        base = self.base(k, [src], out)
        if base["in_q"][0] != base["out_q"]:
            raise UserError(f"{self.where}: operator {k} ({self.op_name(k)}) changes the quantization; not supported")
        shape = self.shape(src)
        letters = {4: "NHWC", 3: "NWC", 2: "NC"}[len(shape)]
        try:
            cut, kept = slice_fields({letters[a]: r for a, r in ranges.items()}, dict(zip(letters, shape)))
        except ValueError as exc:
            raise UserError(f"{self.where}: operator {k} ({self.op_name(k)}): {exc}") from None
        channels = list(range(shape[-1])) if select is None else select
        channels = channels if kept is None else [channels[j] for j in kept]
        (top, bottom, sh), (left, right, sw) = cut["H"], cut["W"]
        self.emit(k, QOp(op="slice", stride=(sh, sw), padding=(top, bottom, left, right),
                         tensors={"index": np.array(channels, np.int32)}, **base), out)

    def lookup(self, k: int, op: Any, table: Callable[..., np.ndarray], *args: Any) -> None:
        """An elementwise op on int8 values: the 256-entry table of ``table(s_in, zp_in, s_out, zp_out, *args)``."""
        src, out = int(op.InputsAsNumpy()[0]), int(op.OutputsAsNumpy()[0])
        base = self.base(k, [src], out)
        qi, qo = base["in_q"][0], base["out_q"]
        try:
            lut = np.asarray(table(qi.scale, qi.zero_point, qo.scale, qo.zero_point, *args), np.int8)
        except ValueError as exc:  # quantizations TFLite's kernel itself refuses
            raise UserError(f"{self.where}: operator {k} ({self.op_name(k)}): {exc}") from None
        self.emit(k, QOp(op="lut", tensors={"table": lut}, **base), out)

    def is_const(self, t: int) -> bool:
        buf = self.model.Buffers(self.sub.Tensors(t).Buffer())
        return buf is not None and buf.DataLength() > 0

    def const_operand(self, k: int, op: Any) -> bool:
        """ADD, SUB, MUL, MAXIMUM or MINIMUM of a tensor and one constant value (a broadcast scalar, as Keras's
        ``x + 3`` or ``x / 6``): elementwise on the tensor, so a table of the op's own integer arithmetic. False
        (nothing emitted) if neither operand is a constant."""
        ins, out = [int(t) for t in op.InputsAsNumpy()], int(op.OutputsAsNumpy()[0])
        kind = self.op_name(k)
        if not any(self.is_const(t) for t in ins):
            return False
        const_first = self.is_const(ins[0])
        c, x = (ins[0], ins[1]) if const_first else (ins[1], ins[0])
        if self.is_const(x):
            raise UserError(f"{self.where}: operator {k} ({kind}) has two constant operands; fold it before export")
        values = self.const(c)
        if values.size != 1 or self.dtype(c) != INT8:
            raise UserError(f"{self.where}: operator {k} ({kind}) takes a constant of shape {list(values.shape)}; only one "
                            "int8 value (a scalar broadcast over the tensor) imports")
        base = self.base(k, [x], out)
        lo, hi = self.arithmetic_range(k, op, base["out_q"])
        q = lambda v: (v.scale, v.zero_point)  # noqa: E731
        cq = self.qparams(c, "the constant")
        table = semantics.binary_const_table(kind, q(base["in_q"][0]), q(cq), int(values.reshape(-1)[0]),
                                             q(base["out_q"]), lo, hi, const_first)
        self.emit(k, QOp(op="lut", tensors={"table": table}, **base), out)
        return True

    def mul(self, k: int, op: Any) -> None:
        """MUL of two tensors of one shape, or of a tensor and one factor per channel (a squeeze-and-excitation gate)."""
        ins, out = [int(t) for t in op.InputsAsNumpy()], int(op.OutputsAsNumpy()[0])
        if self.const_operand(k, op):
            return
        base = self.base(k, ins, out)
        shapes, out_shape = base["in_shapes"], base["out_shape"]
        gate = (1, 1, out_shape[2])
        if shapes[0] == gate and shapes[1] == out_shape != gate:  # the gate goes second, as the mul op reads it
            base = dict(base, **{key: base[key][::-1] for key in ("inputs", "in_shapes", "in_q")})
        elif not (shapes[0] == out_shape and shapes[1] in (out_shape, gate)):
            raise UserError(f"{self.where}: operator {k} (MUL) broadcasts {list(shapes[0])} * {list(shapes[1])}; only "
                            "equal shapes or one factor per channel import")
        s_a, s_b = (v.scale for v in base["in_q"])
        multiplier, shift = semantics.mul_multiplier(s_a, s_b, base["out_q"].scale)
        if shift < -MAX_MUL_LEFT_SHIFT:
            raise UserError(f"{self.where}: operator {k} (MUL) scales its product up by 2**{-shift} (s_a s_b / s_out is "
                            f"{s_a * s_b / base['out_q'].scale:.3g}); products of int8 values overflow int32 beyond "
                            f"2**{MAX_MUL_LEFT_SHIFT}: re-export with a coarser output scale")
        lo, hi = self.arithmetic_range(k, op, base["out_q"])
        tensors = {"multiplier": np.array([multiplier], np.int32), "shift": np.array([shift], np.int32)}
        self.emit(k, QOp(op="mul", lo=lo, hi=hi, tensors=tensors, **base), out)

    def tensor_and_constant(self, k: int, op: Any) -> None:
        """SUB, MAXIMUM and MINIMUM import with a constant scalar operand only."""
        if not self.const_operand(k, op):
            raise UserError(f"{self.where}: operator {k} ({self.op_name(k)}) of two tensors is not supported; only with a "
                            "constant scalar operand")

    def leaky_relu(self, k: int, op: Any) -> None:
        opts = self.options(op, "LeakyReluOptions")
        self.lookup(k, op, semantics.leaky_relu_table, float(opts.Alpha()) if opts is not None else 0.0)

    def gelu(self, k: int, op: Any) -> None:
        opts = self.options(op, "GeluOptions")
        self.lookup(k, op, semantics.gelu_table, bool(opts.Approximate()) if opts is not None else False)

    HANDLERS: dict[str, Callable[..., None]] = {
        "CONV_2D": lambda self, k, op: self.weighted(k, op, "conv"),
        "DEPTHWISE_CONV_2D": lambda self, k, op: self.weighted(k, op, "dwconv"),
        "FULLY_CONNECTED": lambda self, k, op: self.weighted(k, op, "dense"),
        "AVERAGE_POOL_2D": lambda self, k, op: self.pool(k, op, "avgpool"),
        "MAX_POOL_2D": lambda self, k, op: self.pool(k, op, "maxpool"),
        "ADD": add,
        "MUL": mul,
        "SUB": tensor_and_constant,
        "MAXIMUM": tensor_and_constant,
        "MINIMUM": tensor_and_constant,
        "RESHAPE": reshape,
        "SQUEEZE": reshape,
        "EXPAND_DIMS": reshape,
        "RESIZE_NEAREST_NEIGHBOR": resize_nearest,
        "TRANSPOSE_CONV": transpose_conv,
        "SOFTMAX": softmax,
        "PAD": pad,
        "MEAN": mean,
        "REDUCE_MAX": reduce_max,
        "PADV2": pad,
        "CONCATENATION": concat,
        "STRIDED_SLICE": strided_slice,
        "SLICE": strided_slice,
        "SPLIT": split,
        "SPLIT_V": split,
        "GATHER": gather,
        "TRANSPOSE": transpose,
        "LOGISTIC": lambda self, k, op: self.lookup(k, op, semantics.logistic_table),
        "TANH": lambda self, k, op: self.lookup(k, op, semantics.tanh_table),
        "QUANTIZE": lambda self, k, op: self.lookup(k, op, semantics.requantize_table),
        "RELU": lambda self, k, op: self.lookup(k, op, semantics.relu_table, 0.0, math.inf),
        "RELU6": lambda self, k, op: self.lookup(k, op, semantics.relu_table, 0.0, 6.0),
        "RELU_N1_TO_1": lambda self, k, op: self.lookup(k, op, semantics.relu_table, -1.0, 1.0),
        "RELU_0_TO_1": lambda self, k, op: self.lookup(k, op, semantics.relu_table, 0.0, 1.0),
        "LEAKY_RELU": leaky_relu,
        "HARD_SWISH": lambda self, k, op: self.lookup(k, op, semantics.hard_swish_table),
        "GELU": gelu,
        "ABS": lambda self, k, op: self.lookup(k, op, semantics.abs_table),
    }


def _ohwi(rewrite: Callable[[np.ndarray], np.ndarray], w: np.ndarray) -> np.ndarray:
    """A ``kernels`` rewrite (torch's OIHW layout) applied to TFLite filters ``(O, KH, KW, I)``."""
    return np.ascontiguousarray(rewrite(w.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1))


def _multiplier_average(count: int, zero_point: int, lo: int, hi: int) -> tuple[int, int] | None:
    """``(M, S)`` such that the QuantGraph's multiplier average equals TFLite's rounded integer division on every
    window sum of ``count`` int8 values, or None. Checked exhaustively (255 * count + 1 sums).

    Small shifts come first: with ``S = 0`` the doubling high multiply is the only rounding (a normalised multiplier
    rounds twice, and the second rounding meets exact halves), so ``M ~ 2**31 / count`` is exact for odd counts."""
    if count == 1:
        return None
    sums = np.arange(-128 * count, 127 * count + 1, dtype=np.int64)
    half = count // 2  # C's integer division, as TFLite writes the rounding
    want = np.clip(np.where(sums > 0, (sums + half) // count, -((half - sums) // count)), lo, hi)
    for shift in range(8):
        ideal = 2 ** (31 + shift) / count
        for m in (round(ideal), math.floor(ideal), math.ceil(ideal)):
            if not 0 < m < 2**31:
                continue
            got = requantize_to_int8(sums - count * zero_point, m, shift, zero_point, lo, hi)
            if np.array_equal(got.astype(np.int64), want):
                return int(m), shift
    return None

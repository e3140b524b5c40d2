"""Each Relax op of an imported float model -> ArchSpec layers with float weights (:class:`Walker`).

What the walker understands:

* conv2d / conv1d (a depthwise one with multiplier 1 as such; other groupings as a full convolution with
  block-diagonal weights), matmul with a constant (a dense layer), residual add, the product of two activations
  (same shape, or per-channel factors: a squeeze-and-excitation gate),
  max / average pooling, global average pooling (adaptive pool to 1, mean over the spatial axes), softmax over the
  channels, sigmoid and tanh, concatenation along the channels;
* any other chain of elementwise ops on one tensor (hard swish, SiLU, leaky ReLU, GELU, mish...) as one ``unary``
  layer (:mod:`tinycompile.frontends.elementwise`);
* per-channel affine ops (bias add, scale, batch norm) and activations (ReLU, ReLU6, a clip to ``0..hi`` or
  ``-inf..hi``), folded into the layer before when it is a convolution or dense layer that nothing else reads, else
  a 1x1 depthwise layer of their own;
* zero padding, folded into the next convolution's padding (else a ``pad`` layer), reshapes that only add or drop
  unit axes or flatten, transposes (the layouts TFLite and TF-converted ONNX models carry), constant subgraphs;
* a pre-quantized (QDQ) model's quantize / dequantize pairs (ONNX QuantizeLinear / DequantizeLinear): the tensor
  passes on, and its scale and zero point are kept for the quantizer (:attr:`GraphWalker.quantized`); its
  dequantized weights and biases arrive as float constants (the ONNX loader folds constant subgraphs).

Anything else raises a one-line :class:`~tinycompile.errors.UserError` naming the op and where it is. The walk
itself and its bookkeeping are :mod:`tinycompile.frontends.relax_walker`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import torch

from tinycompile.frontends.elementwise import Region
from tinycompile.frontends.kernels import block_diagonal, dilated
from tinycompile.frontends.relax_slices import SliceOps
from tinycompile.frontends.relax_walker import Draft, Val

NO_BOUND = 3.0e38  # a clip bound at least this large is no bound (float32 max is 3.4e38)
RELU_FUSES_INTO = ("conv", "dwconv", "dense", "add", "mul", "maxpool", "avgpool", "gap")
# Ops evaluated on constants (weight transposes, reshapes of biases, batch-norm arithmetic).
_CONST_OPS: dict[str, Callable[..., np.ndarray]] = {
    "relax.add": np.add, "relax.subtract": np.subtract, "relax.multiply": np.multiply,
    "relax.divide": np.divide, "relax.sqrt": np.sqrt, "relax.rsqrt": lambda v: 1.0 / np.sqrt(v),
    "relax.negative": np.negative, "relax.power": np.power, "relax.maximum": np.maximum,
    "relax.minimum": np.minimum, "relax.isnan": np.isnan, "relax.where": np.where, "relax.exp": np.exp,
    "relax.less": np.less, "relax.greater": np.greater, "relax.shape_to_tensor": np.asarray,
}
_CONST_RESHAPES = ("relax.reshape", "relax.squeeze", "relax.expand_dims", "relax.broadcast_to", "relax.astype")


class Walker(SliceOps):
    """Reads the Relax ``main`` function of an imported model into spec layers (see the module docstring)."""

    def _call(self, var: Any, call: Any) -> None:
        name = call.op.name if hasattr(call.op, "name") else str(call.op)
        args = list(call.args)
        tensor_args = [a for a in args if not isinstance(a, self.relax.ShapeExpr)]
        if all(self._const(a) is not None for a in tensor_args):
            self.consts[var] = self._fold(name, call, var)
            return
        handler = _HANDLERS.get(name)
        if name == "relax.call_tir":  # a frontend's own TIR function (ONNX's Pad when no Conv follows it)
            callee = getattr(args[0], "name_hint", None) or getattr(args[0], "name", "?")
            bound = re.fullmatch(r"(maximum|minimum)\d*", callee)
            if bound:  # TVM's ONNX Clip: a max and a min with its bounds
                self._bound(var, call, maximum=bound.group(1) == "maximum")
                return
            raise self._error(f"op {callee} (lowered by TVM's frontend to TIR) is not supported by the float importer; "
                              "a zero pad imports only when a convolution reads it")
        if handler is None:
            raise self._error(f"op {name} is not supported by the float importer (supported: {_SUPPORTED_TEXT})")
        handler(self, var, call)

    def _fold(self, name: str, call: Any, var: Any) -> np.ndarray:
        """Evaluate an op on constants only (weight transposes, reshapes of biases, batch-norm arithmetic)."""
        args = [self._const(a) for a in call.args if not isinstance(a, self.relax.ShapeExpr)]
        if not args:
            raise self._error(f"op {name} creates a tensor from nothing; it is not supported by the float importer")
        out_shape = self._shape(var, "a constant")
        if name in _CONST_OPS:
            result = _CONST_OPS[name](*args)
        elif name == "relax.permute_dims":
            axes = None if call.attrs.axes is None else [int(i) for i in call.attrs.axes]
            result = np.transpose(args[0], axes)
        elif name == "relax.take":  # ONNX Gather's index arithmetic on a static shape
            mode = "wrap" if str(call.attrs.mode) == "wrap" else "raise"
            result = np.take(args[0], args[1].astype(np.int64), axis=int(call.attrs.axis or 0), mode=mode)
        elif name in _CONST_RESHAPES:
            result = np.broadcast_to(args[0], out_shape) if name == "relax.broadcast_to" else args[0].reshape(out_shape)
        else:
            raise self._error(f"op {name} on constants is not supported by the float importer")
        return np.asarray(result, dtype=str(var.ty.dtype)).reshape(out_shape)

    def _shape_of(self, var: Any, call: Any) -> None:
        """A tensor's shape is static here: a constant (ONNX's Gather normalizes negative indices with it)."""
        self.consts[var] = np.array(self._shape(call.args[0], "the tensor whose shape is read"), np.int64)

    def _layout(self, val: Val, layout: str, what: str) -> Val:
        """``val`` read with the op's ``layout``; refuses when the op would read its axes with another meaning."""
        if val.order:
            raise self._error(f"{what} reads a tensor flattened in {val.order} order; that has no spec equivalent")
        if len(layout) != len(val.shape) or any(s != 1 and a != b for s, a, b in zip(val.shape, val.axes, layout)):
            raise self._error(f"{what} reads its input as {layout}, but the input is {val.axes} {list(val.shape)}")
        return replace(val, axes=layout)

    def _conv(self, var: Any, call: Any) -> None:
        attrs = call.attrs
        data_layout = str(attrs.data_layout)
        val = self._layout(self._value(call.args[0]), data_layout, "the convolution")
        weight = self._const(call.args[1])
        if weight is None:
            raise self._error("a convolution with computed (non-constant) weights is not supported")
        spatial = [a for a in data_layout if a in "HW"]
        w = _to_oihw(weight.astype(np.float64), str(attrs.kernel_layout))
        w = dilated(w, _pair([int(d) for d in attrs.dilation], spatial))  # exact: zeros between the taps
        pad = _pads(list(map(int, attrs.padding)), spatial)
        stride = _pair([int(s) for s in attrs.strides], spatial)
        op = self._conv_op(int(attrs.groups), val.size("C"), w.shape[0])
        if op == "conv" and int(attrs.groups) > 1:
            w = block_diagonal(w, int(attrs.groups))
        padding = tuple(a + b for a, b in zip(val.pad, pad))  # a zero pad before it folds into its padding
        channels = w.shape[0] if op == "conv" else 0
        draft = Draft(op, (val.layer,), channels=channels, kernel=(w.shape[2], w.shape[3]), stride=stride,
                      padding=padding, weight=w, bias=np.zeros(w.shape[0]))  # type: ignore[arg-type]
        self._emit(var, draft, _out_layout(attrs, data_layout))

    def _conv_transpose(self, var: Any, call: Any) -> None:
        """A transposed convolution: the input spread ``stride`` apart with zeros between and around (a spread
        layer), then a stride-1 convolution with the kernel flipped (its dilation spread out with zeros too)."""
        attrs = call.attrs
        data_layout = str(attrs.data_layout)
        val = self._materialize(self._layout(self._value(call.args[0]), data_layout, "the transposed convolution"))
        weight = self._const(call.args[1])
        if weight is None or int(attrs.groups) != 1:
            raise self._error("a transposed convolution with computed weights or groups is not supported")
        spatial = [a for a in data_layout if a in "HW"]
        w = _to_oihw(weight.astype(np.float64), str(attrs.kernel_layout))  # IOHW: the layout names in and out
        w = np.ascontiguousarray(dilated(w, _pair([int(d) for d in attrs.dilation], spatial))[:, :, ::-1, ::-1])
        kh, kw = w.shape[2:]
        pt, pb, pl, pr = _pads(list(map(int, attrs.padding)), spatial)
        oph, opw = _pair([int(p) for p in attrs.output_padding], spatial)
        pads = (kh - 1 - pt, kh - 1 - pb + oph, kw - 1 - pl, kw - 1 - pr + opw)
        if min(pads) < 0:
            raise self._error(f"a transposed convolution whose padding {list(map(int, attrs.padding))} exceeds its "
                              f"kernel is not supported")
        stride = _pair([int(s) for s in attrs.strides], spatial)
        c, h, wd = val.chw
        chw = (c, (h - 1) * stride[0] + 1 + pads[0] + pads[1], (wd - 1) * stride[1] + 1 + pads[2] + pads[3])
        self.drafts.append(Draft("spread", (val.layer,), chw, stride=stride, padding=pads, where=self.where))
        draft = Draft("conv", (len(self.drafts) - 1,), channels=w.shape[0], kernel=(kh, kw), weight=w,
                      bias=np.zeros(w.shape[0]))
        self._emit(var, draft, _out_layout(attrs, data_layout))

    def _conv_op(self, groups: int, c_in: int, c_out: int) -> str:
        """The spec op of a convolution with ``groups``: "dwconv" for a depthwise one with multiplier 1, else "conv"
        (a grouped convolution or a depthwise multiplier above 1 runs as a full one, its weights block-diagonal)."""
        return "dwconv" if groups > 1 and groups == c_in == c_out else "conv"

    def _pool(self, var: Any, call: Any) -> None:
        attrs, name = call.attrs, call.op.name
        layout = str(attrs.layout)
        val = self._layout(self._value(call.args[0]), layout, name)
        spatial = [a for a in layout if a in "HW"]
        if any(int(d) != 1 for d in attrs.dilation):
            raise self._error(f"dilated pooling is not supported ({name})")
        kernel = _pair([int(k) for k in attrs.pool_size], spatial)
        stride = _pair([int(s) for s in attrs.strides], spatial)
        pad = _pads(list(map(int, attrs.padding)), spatial)
        is_max = "max" in name
        if not is_max and bool(attrs.count_include_pad) and any(pad):
            # the padded taps count as zeros: the input padded with zeros, then pooled without padding
            val, pad = _zero_padded(val, pad), (0, 0, 0, 0)
        val = self._materialize(val)
        pad = self._ceil_mode_padding(var, name, layout, val, kernel, stride, pad)
        if not is_max and kernel == val.chw[1:] and not any(pad):
            self._emit(var, Draft("gap", (val.layer,)), _out_layout(attrs, layout))
            return
        # Taps in the pool's own padding are ignored: a max never takes them, a mean leaves them out of its count.
        draft = Draft("maxpool" if is_max else "avgpool", (val.layer,), kernel=kernel, stride=stride, padding=pad)
        self._emit(var, draft, _out_layout(attrs, layout))

    def _ceil_mode_padding(self, var: Any, name: str, layout: str, val: Val, kernel: tuple[int, int],
                           stride: tuple[int, int], pad: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """``pad`` with the rows and columns a ceil-mode pool adds at the bottom and right, whose taps it ignores as
        it does its own padding's (a mean divides by the taps inside the padded input)."""
        _, h, w = val.chw
        padded = (h + pad[0] + pad[1], w + pad[2] + pad[3])
        out = self._shape(var, name)
        got = (out[layout.index("H")] if "H" in layout else 1, out[layout.index("W")])
        extra = [max(0, (g - 1) * s + k - p) for g, s, k, p in zip(got, stride, kernel, padded)]
        return (pad[0], pad[1] + extra[0], pad[2], pad[3] + extra[1])

    def _adaptive_pool(self, var: Any, call: Any) -> None:
        attrs = call.attrs
        layout = str(attrs.layout)
        val = self._materialize(self._layout(self._value(call.args[0]), layout, call.op.name))
        sizes = [1] if attrs.output_size is None else [int(s) for s in attrs.output_size]
        out = (1, sizes[0]) if len(sizes) == 1 and "H" not in layout else tuple((sizes * 2)[:2])
        if all(s == 1 for s in out):
            self._emit(var, Draft("gap", (val.layer,)), _out_layout(attrs, layout))
            return
        hw = val.chw[1:]
        if any(d % s for d, s in zip(hw, out)):
            raise self._error(f"adaptive average pooling of {hw[0]}x{hw[1]} to {out[0]}x{out[1]} is not supported: "
                              "only to sizes that divide the map (windows of one size)")
        window = (hw[0] // out[0], hw[1] // out[1])  # every window the same: a plain average pool
        self._emit(var, Draft("avgpool", (val.layer,), kernel=window, stride=window), _out_layout(attrs, layout))

    def _reduce(self, var: Any, call: Any) -> None:
        """A mean (a global average) or a max (a global max pool) over H and W."""
        what = call.op.name.split(".")[-1]
        val = self._materialize(self._value(call.args[0]))
        if val.order:
            raise self._error(f"a {what} over a tensor flattened in {val.order} order is not supported")
        ndim = len(val.shape)
        axes = list(range(ndim)) if call.attrs.axis is None else [int(a) % ndim for a in call.attrs.axis]
        letters = {val.axes[a] for a in axes if val.shape[a] != 1}
        if not letters <= {"H", "W"} or any(val.axes[a] in "NC" and val.shape[a] != 1 for a in axes):
            raise self._error(f"a {what} over axes {axes} of a {val.axes} tensor is not supported (only over H and W)")
        keep = bool(call.attrs.keepdims)
        out_axes = val.axes if keep else "".join(l for i, l in enumerate(val.axes) if i not in axes)
        if "C" not in out_axes or out_axes[0] != "N":
            raise self._error(f"a {what} that leaves axes {out_axes} is not supported")
        draft = Draft("gap", (val.layer,)) if what == "mean" else Draft("maxpool", (val.layer,), kernel=val.chw[1:])
        self._emit(var, draft, out_axes)

    def _matmul(self, var: Any, call: Any) -> None:
        a, b = call.args
        weight = self._const(b)
        if weight is None or self._const(a) is not None:
            raise self._error("a matmul is supported only as activation @ constant (a dense layer)")
        val = self._materialize(self._value(a))
        if weight.ndim != 2 or val.axes[-1] != "C":
            raise self._error(f"a matmul of a {val.axes} {list(val.shape)} tensor by a {list(weight.shape)} matrix "
                              "is not a dense layer over the channels")
        w = weight.T.astype(np.float64)  # (out, in), torch's Linear layout
        if any(s != 1 for s in val.shape[1:-1]) and not val.order:  # a Linear at every step of a sequence or pixel
            draft = Draft("conv", (val.layer,), channels=w.shape[0], weight=w[:, :, None, None], bias=np.zeros(len(w)))
            self._emit(var, draft, val.axes)
            return
        if val.order:  # columns follow the original flatten order; the spec's flatten is channel-major
            w = w[:, _chw_index(val)]
        draft = Draft("dense", (val.layer,), channels=w.shape[0], weight=w, bias=np.zeros(w.shape[0]))
        self._emit(var, draft, val.axes)

    def _binary(self, var: Any, call: Any) -> None:
        name = call.op.name
        a, b = call.args
        ca, cb = self._const(a), self._const(b)
        if ca is None and cb is None:
            if name == "relax.multiply":
                self._product(var, a, b)
            elif name == "relax.add":
                self._residual(var, a, b)
            else:
                raise self._error(f"{name} of two activations is not supported (only add and multiply)")
            return
        act, const = (a, cb) if cb is not None else (b, ca)
        scale, shift = self._scale_shift(name, const.astype(np.float64), const_is_rhs=cb is not None)
        self._affine(var, act, scale, shift)

    def _scale_shift(self, name: str, const: np.ndarray, const_is_rhs: bool) -> tuple[np.ndarray, np.ndarray]:
        """An add, subtract, multiply or divide of an activation and ``const`` as ``x * scale + shift``."""
        ones, zeros = np.ones_like(const), np.zeros_like(const)
        if name == "relax.add":
            return ones, const
        if name == "relax.subtract":
            return (ones, -const) if const_is_rhs else (-ones, const)
        if name == "relax.multiply":
            return const, zeros
        if const_is_rhs:  # divide by a constant
            return 1.0 / const, zeros
        raise self._error("a constant divided by an activation is not supported")

    def _residual(self, var: Any, a: Any, b: Any) -> None:
        va, vb = self._materialize(self._value(a)), self._materialize(self._value(b))
        if va.shape != vb.shape or va.order != vb.order or any(
            s != 1 and x != y for s, x, y in zip(va.shape, va.axes, vb.axes)
        ):
            raise self._error(f"an add of {va.axes} {list(va.shape)} and {vb.axes} {list(vb.shape)} tensors "
                              "(broadcasting or transposed) is not supported; only same-shape residual adds")
        self._emit_like(var, Draft("add", (va.layer, vb.layer)), va)

    def _product(self, var: Any, a: Any, b: Any) -> None:
        """A product of two activations of the same shape, or of one by per-channel factors (a gate)."""
        va, vb = self._materialize(self._value(a)), self._materialize(self._value(b))
        if va.chw[1:] == (1, 1) and vb.chw[1:] != (1, 1):
            va, vb = vb, va  # the full tensor first, the factors second
        gate = vb.chw == (va.chw[0], 1, 1) and va.axes.index("C") == vb.axes.index("C")
        same = va.shape == vb.shape and va.axes == vb.axes
        if va.order or vb.order or not (same or gate):
            raise self._error(f"a multiply of {va.axes} {list(va.shape)} and {vb.axes} {list(vb.shape)} tensors is not "
                              "supported; only same-shape products and per-channel gates")
        self._emit_like(var, Draft("mul", (va.layer, vb.layer)), va)

    def _affine(self, var: Any, expr: Any, scale: np.ndarray, shift: np.ndarray) -> None:
        """``y = x * scale + shift`` per channel: folded into an open conv/dense, else a 1x1 depthwise layer. After the
        layer's activation only a uniform positive scale folds (``relu(v) * s = relu(v * s)``, its cap times ``s``)."""
        val = self._value(expr)
        s, t = self._per_channel(scale, val), self._per_channel(shift, val)
        draft = self._open(expr)
        activated = draft is not None and (draft.relu or draft.cap is not None)
        if draft is not None and draft.op in ("conv", "dwconv", "dense") and (
                not activated or (not t.any() and s.min() == s.max() > 0)):
            assert draft.weight is not None and draft.bias is not None
            draft.weight = draft.weight * s.reshape(-1, *([1] * (draft.weight.ndim - 1)))
            draft.bias = draft.bias * s + t
            draft.cap = None if draft.cap is None else draft.cap * float(s[0])
            self._fold_into(draft, var, val)
            return
        self._depthwise_1x1(var, val, s, t, relu=False)

    def _depthwise_1x1(self, var: Any, val: Val, scale: np.ndarray, shift: np.ndarray, relu: bool,
                       cap: float | None = None) -> None:
        val = self._materialize(val)
        c = val.chw[0]
        draft = Draft("dwconv", (val.layer,), relu=relu, cap=cap, weight=scale.reshape(c, 1, 1, 1).copy(), bias=shift.copy())
        self._emit_like(var, draft, val, val.shape)  # the shape of ``val``: ``var`` may be batch norm's tuple

    def _prelu(self, var: Any, call: Any) -> None:
        """ONNX's PRelu with a slope per channel (one slope for all is an elementwise table)."""
        x, slope = call.args
        alpha = self._const(slope)
        if alpha is None:
            raise self._error("a PReLU whose slope is an activation is not supported")
        rank = len(self._value(x).shape)
        if alpha.ndim == 1 and alpha.size > 1:  # slopes along the op's channel axis
            axis = int(call.attrs.axis) % rank
            alpha = alpha.reshape([alpha.size if k == axis else 1 for k in range(rank)])
        self._prelu_layers(var, x, alpha)

    def _where(self, var: Any, call: Any) -> None:
        """``where(x > 0, x, a * x)``: torch's PReLU with a slope per channel. Any other select is refused."""
        cond, yes, no = call.args
        test, scaled = self.bound.get(cond), self.bound.get(no)
        call_of = self.relax.Call
        if (isinstance(test, call_of) and getattr(test.op, "name", "") in ("relax.greater", "relax.greater_equal")
                and test.args[0].same_as(yes) and self._const(test.args[1]) is not None
                and not self._const(test.args[1]).any()
                and isinstance(scaled, call_of) and getattr(scaled.op, "name", "") == "relax.multiply"):
            operands = list(scaled.args)
            alpha = [self._const(a) for a in operands if not a.same_as(yes)]
            if len(operands) == 2 and len(alpha) == 1 and alpha[0] is not None:
                self._prelu_layers(var, yes, alpha[0])
                return
        raise self._error("op relax.where is supported only as a PReLU (where(x > 0, x, slope * x)); other selects "
                          "between tensors have no spec equivalent")

    def _prelu_layers(self, var: Any, x: Any, alpha: np.ndarray) -> None:
        """``prelu(x) = a x + (1 - a) relu(x)`` for slopes ``a <= 1``: two 1x1 depthwise layers (the second with a
        ReLU, since ``relu((1 - a) x) = (1 - a) relu(x)``) and their sum; each runs on every target."""
        val = self._materialize(self._value(x))
        a = self._per_channel(alpha, val)
        if (a > 1).any():
            raise self._error(f"a PReLU slope above 1 ({float(a.max()):.3g}) is not supported (it would be "
                              "a max of x and a x turned into a min)")
        c = val.chw[0]
        for weight, relu in ((a, False), (1 - a, True)):
            self.drafts.append(Draft("dwconv", (val.layer,), val.chw, relu=relu, weight=weight.reshape(c, 1, 1, 1),
                                     bias=np.zeros(c), where=self.where))
        self._emit_like(var, Draft("add", (len(self.drafts) - 2, len(self.drafts) - 1)), val)

    def _per_channel(self, const: np.ndarray, val: Val) -> np.ndarray:
        """A constant broadcast over ``val`` as one value per spec channel; refuses any other broadcast."""
        try:
            full = np.broadcast_to(const, val.shape)
        except ValueError:
            raise self._error(f"a constant of shape {list(const.shape)} does not broadcast onto {list(val.shape)}") from None
        c_axis = val.axes.index("C")
        per = np.moveaxis(full, c_axis, 0).reshape(val.shape[c_axis], -1)
        if not (per == per[:, :1]).all():
            raise self._error(f"a constant of shape {list(const.shape)} varies along other axes than the channels of "
                              f"a {val.axes} tensor; only per-channel constants fold")
        vec = per[:, 0].astype(np.float64)
        return vec[_chw_index(val)] if val.order else vec

    def _batch_norm(self, var: Any, call: Any) -> None:
        attrs = call.attrs
        x, gamma, beta, mean, variance = call.args
        if bool(getattr(attrs, "training", False)):
            raise self._error("batch norm in training mode; export the model in eval mode (model.eval())")
        consts = [self._const(e) for e in (gamma, beta, mean, variance)]
        if any(c is None for c in consts):
            raise self._error("batch norm with computed (non-constant) parameters is not supported")
        g, bt, m, v = (np.asarray(c, np.float64) for c in consts)  # type: ignore[arg-type]
        val = self._value(x)
        if val.axes[int(attrs.axis) % len(val.shape)] != "C":
            raise self._error(f"batch norm over axis {int(attrs.axis)} of a {val.axes} tensor (not its channels)")
        g = g if bool(attrs.scale) else np.ones_like(v)
        bt = bt if bool(attrs.center) else np.zeros_like(v)
        scale = g / np.sqrt(v + float(attrs.epsilon))
        shape = [1] * len(val.shape)
        shape[val.axes.index("C")] = -1
        self._affine(var, x, scale.reshape(shape), (bt - m * scale).reshape(shape))
        self.tuples[var] = [self.vals.pop(var), None, None]  # (normalised, running mean, running var)

    def _relu(self, var: Any, call: Any) -> None:
        self._activate(var, call.args[0], relu=True, cap=None)

    def _relu6(self, var: Any, call: Any) -> None:
        self._activate(var, call.args[0], relu=True, cap=6.0)

    def _clip(self, var: Any, call: Any) -> None:
        lo, hi = (self._const(a) for a in call.args[1:3])
        if lo is None or hi is None:
            raise self._error("clip with computed bounds is not supported")
        self._clip_to(var, call.args[0], float(lo), float(hi))

    def _bound(self, var: Any, call: Any, maximum: bool) -> None:
        """``max(x, c)`` or ``min(x, c)`` with a scalar constant ``c`` (TIR functions of TVM's ONNX Clip)."""
        x, c = call.args[1]
        const = self._const(c)
        if const is None or const.size != 1 or self._const(x) is not None:
            raise self._error(f"{'maximum' if maximum else 'minimum'} of two activations is not supported")
        bound = float(const.reshape(-1)[0])
        if maximum:
            self._clip_to(var, x, bound, np.inf)
        else:
            self._clip_to(var, x, -np.inf, bound)

    def _clip_to(self, var: Any, expr: Any, lo: float, hi: float) -> None:
        """A clip to ``lo..hi``: the layer activation it is where it is one (lo 0, a ReLU, or none; hi none or
        positive), else an elementwise table (hard tanh, a floor other than 0)."""
        bounds = (None if lo <= -NO_BOUND else lo, None if hi >= NO_BOUND else hi)
        draft = self._open(expr)
        if draft is not None and draft.op == "unary":  # a table's function clipped is one table
            draft.fn = _Clamp(*bounds, inner=draft.fn)
            self._fold_into(draft, var, self._value(expr))
        elif lo != 0.0 and lo > -NO_BOUND or hi <= 0.0:
            val = self._materialize(self._value(expr))
            self._emit_like(var, Draft("unary", (val.layer,), fn=_Clamp(*bounds)), val)
        else:
            self._activate(var, expr, relu=lo == 0.0, cap=bounds[1])

    def _activate(self, var: Any, expr: Any, relu: bool, cap: float | None) -> None:
        """A ReLU and / or an upper clamp, folded into the open layer computing ``expr`` (they commute), else a
        1x1 depthwise identity layer of their own."""
        draft = self._open(expr)
        val = self._value(expr)
        if not relu and cap is None:  # an unbounded clip
            self._same_layer(var, expr, val)
            return
        if draft is not None and draft.op in RELU_FUSES_INTO:
            draft.relu = draft.relu or relu
            if cap is not None:
                draft.cap = cap if draft.cap is None else min(draft.cap, cap)
            self._fold_into(draft, var, val)
            return
        c = val.chw[0]
        self._depthwise_1x1(var, val, np.ones(c), np.zeros(c), relu=relu, cap=cap)

    def _log_softmax(self, var: Any, call: Any) -> None:
        """A softmax, then a log table: TFLite's int8 softmax has a fixed 1/256 output step, so int8 log-probabilities
        below log(1/256) (about -5.5) reach the table's lowest entry; the order of the classes is kept."""
        self._softmax(var, call)
        val = self.vals[var]
        self._emit_like(var, Draft("unary", (val.layer,), fn=_log_probability), val)

    def _softmax(self, var: Any, call: Any) -> None:
        val = self._materialize(self._value(call.args[0]))
        axis = int(call.attrs.axis) % len(val.shape)
        if val.axes[axis] != "C" and not all(s == 1 for i, s in enumerate(val.shape) if i not in (0, axis)):
            raise self._error(f"softmax over axis {axis} of a {val.axes} tensor is not supported (only over the channels)")
        if val.axes[axis] != "C":  # the only non-unit axis: it is the channel axis of a flat vector, swap the names
            letters = list(val.axes)
            c_axis = letters.index("C")
            letters[c_axis], letters[axis] = letters[axis], letters[c_axis]
            val = replace(val, axes="".join(letters))
        self._emit_like(var, Draft("softmax", (val.layer,)), val)

    def _region(self, var: Any, region: Region) -> None:
        problem = region.resolve(self._const)
        if problem:
            raise self._error(f"an elementwise chain ({region.label()}): {problem}")
        val = self._materialize(self._value(region.root))
        self._emit_like(var, Draft("unary", (val.layer,), fn=region), val)

    def _elementwise(self, var: Any, call: Any) -> None:
        val = self._materialize(self._value(call.args[0]))
        self._emit_like(var, Draft(call.op.name.split(".")[-1], (val.layer,)), val)

    def _quantize(self, var: Any, call: Any) -> None:
        """A pre-quantized model's quantization of a tensor: kept for the quantizer (uint8 as the same values in
        int8: zero point - 128); the tensor itself passes on to its dequantize."""
        src = call.args[0]
        if self._pass_grouped(var, src):
            return
        val = self._value(src)
        scale, zero = self._const(call.args[1]), self._const(call.args[2])
        dtype = str(call.attrs.out_dtype)
        if scale is None or zero is None or scale.size != 1 or zero.size != 1:
            raise self._error("a per-channel quantization of an activation is not supported (one scale and zero "
                              "point per tensor)")
        if dtype not in ("int8", "uint8"):
            raise self._error(f"a quantization to {dtype} is not supported (int8 or uint8)")
        # The last one holds: a ReLU between two quantizations folds into the layer, whose output is the second
        shift = 128 if dtype == "uint8" else 0
        self.quantized[val.layer] = (float(scale.reshape(-1)[0]), int(zero.reshape(-1)[0]) - shift)
        draft = self._open(src)
        if self.quantized[val.layer][1] == -128 and draft is not None and draft.op in RELU_FUSES_INTO:
            # real 0 is the lowest int8 value: the quantization is the model's ReLU (ONNX Runtime drops the op), so
            # the float model keeps it too; the int8 layer is the same either way
            draft.relu = True
        self._same_layer(var, src, val)

    def _dequantize(self, var: Any, call: Any) -> None:
        if self._pass_grouped(var, call.args[0]):
            return
        self._same_layer(var, call.args[0], self._value(call.args[0]))

    def _reshape(self, var: Any, call: Any) -> None:
        src = call.args[0]
        out = self._shape(var, call.op.name)
        if src in self.grouped:
            self._merge_groups(var, src, out)
            return
        val = self._value(src)
        if out == val.shape:
            self._same_layer(var, src, val)
            return
        val = self._materialize(val)
        if out[0] != val.shape[0]:
            hint = ("; torch.export writes a Linear over a sequence so: export to ONNX, whose MatMul imports as a "
                    "1x1 convolution" if len(val.shape) == 3 and len(out) == 2 else "")
            raise self._error(f"a reshape from {list(val.shape)} to {list(out)} changes the batch axis{hint}")
        squeezed = _unit_axes_reshape(val, out)
        if squeezed is not None:
            self._same_layer(var, src, squeezed)
            return
        if len(out) == 2 and out[1] == int(np.prod(val.shape[1:])):
            self._flatten(var, val)
            return
        if self._split_channels(var, val, out):
            return
        raise self._error(f"a reshape from {val.axes} {list(val.shape)} to {list(out)} is neither a flatten nor a "
                          "squeeze / unsqueeze; it has no spec equivalent")

    def _flatten(self, var: Any, val: Val) -> None:
        if val.order:
            raise self._error(f"a flatten of a tensor already flattened in {val.order} order is not supported")
        c, h, w = val.chw
        sizes = {"C": c, "H": h, "W": w}
        seen = [a for a in val.axes[1:] if a in "CHW"]
        order = "".join(seen + [a for a in "CHW" if a not in seen])
        channel_major = [a for a in order if sizes[a] != 1] == [a for a in "CHW" if sizes[a] != 1]
        extra = {} if channel_major else {"order": order, "dims": (c, h, w)}
        self._emit(var, Draft("flatten", (val.layer,)), "NC", **extra)

    def _permute(self, var: Any, call: Any) -> None:
        src = call.args[0]
        ndim = len(self._shape(src, "the transpose's input"))
        perm = list(range(ndim))[::-1] if call.attrs.axes is None else [int(a) % ndim for a in call.attrs.axes]
        if src in self.grouped:
            self._swap_groups(var, src, perm)
            return
        val = self._value(src)
        if perm[0] != 0:
            raise self._error(f"a transpose {perm} that moves the batch axis is not supported")
        permuted = replace(val, axes="".join(val.axes[p] for p in perm), shape=tuple(val.shape[p] for p in perm))
        self._same_layer(var, call.args[0], permuted)

    def _pad(self, var: Any, call: Any) -> None:
        attrs = call.attrs
        val = self._value(call.args[0])
        if str(attrs.pad_mode) != "constant" or float(attrs.pad_value) != 0.0:
            raise self._error(f"{attrs.pad_mode} padding with value {float(attrs.pad_value):g} is not supported (only zeros)")
        widths = [int(p) for p in attrs.pad_width]
        before = {val.axes[i]: widths[2 * i] for i in range(len(val.shape))}
        after = {val.axes[i]: widths[2 * i + 1] for i in range(len(val.shape))}
        if any(before[a] or after[a] for a in val.axes if a in "NC") or val.order:
            raise self._error("padding of the batch or channel axes is not supported")
        pad = (before.get("H", 0), after.get("H", 0), before.get("W", 0), after.get("W", 0))
        self.vals[var] = _zero_padded(val, pad)

    def _resize(self, var: Any, call: Any) -> None:
        """Nearest-neighbour resizing by whole factors: an upsample layer (each pixel repeated). The coordinate modes
        whose nearest source pixel is then ``out // factor``: asymmetric with floor, the half-pixel ones rounding."""
        attrs = call.attrs
        layout = str(attrs.layout)
        val = self._materialize(self._layout(self._value(call.args[0]), layout, "the resize"))
        out = self._shape(var, "the resize")
        spatial = [a for a in layout if a in "HW"]
        factor = [out[layout.index(a)] // val.size(a) for a in spatial]
        mode, rounding = str(attrs.coordinate_transformation_mode), str(attrs.rounding_method)
        repeats = (mode == "asymmetric" and rounding == "floor") or (
            mode in ("half_pixel", "pytorch_half_pixel") and rounding in ("round", "round_prefer_floor", "round_prefer_ceil", ""))
        if str(attrs.method) != "nearest_neighbor" or not repeats or any(
                out[layout.index(a)] != f * val.size(a) or f < 1 for a, f in zip(spatial, factor)):
            raise self._error(f"a {attrs.method} resize ({mode}, {rounding or 'no rounding'}) of {list(val.chw[1:])} to "
                              f"{[out[layout.index(a)] for a in spatial]} is not supported: only nearest-neighbour "
                              "upsampling by whole factors imports")
        self._emit(var, Draft("upsample", (val.layer,), stride=_pair(factor, spatial)), layout)

    def _identity(self, var: Any, call: Any) -> None:
        if call.op.name == "relax.astype" and str(call.attrs.dtype) != "float32":
            raise self._error(f"a cast to {call.attrs.dtype} is not supported in a float model")
        self._same_layer(var, call.args[0], self._value(call.args[0]))
        if call.op.name == "relax.nn.dropout":  # (output, mask); the mask has no spec equivalent
            self.tuples[var] = [self.vals.pop(var), None]

    def _concat(self, var: Any, call: Any) -> None:
        parts = call.args[0].fields if isinstance(call.args[0], self.relax.Tuple) else None
        if parts is None:
            raise self._error("a concatenation of a computed tuple is not supported")
        vals = [self._materialize(self._value(p)) for p in parts]
        axis = int(call.attrs.axis) % len(vals[0].shape)
        first = vals[0]
        if first.axes[axis] != "C" or any(v.axes != first.axes or v.order for v in vals):
            raise self._error(f"a concatenation along axis {axis} of {first.axes} tensors is not supported (only "
                              "along the channels)")
        self._emit_like(var, Draft("concat", tuple(v.layer for v in vals)), first)


_HANDLERS: dict[str, Callable[[Walker, Any, Any], None]] = {
    "relax.nn.conv2d": Walker._conv,
    "relax.nn.conv1d": Walker._conv,
    "relax.nn.conv2d_transpose": Walker._conv_transpose,
    "relax.nn.conv1d_transpose": Walker._conv_transpose,
    "relax.nn.max_pool2d": Walker._pool,
    "relax.nn.avg_pool2d": Walker._pool,
    "relax.nn.max_pool1d": Walker._pool,
    "relax.nn.avg_pool1d": Walker._pool,
    "relax.nn.adaptive_avg_pool2d": Walker._adaptive_pool,
    "relax.nn.adaptive_avg_pool1d": Walker._adaptive_pool,
    "relax.mean": Walker._reduce,
    "relax.nn.prelu": Walker._prelu,
    "relax.where": Walker._where,
    "relax.max": Walker._reduce,
    "relax.matmul": Walker._matmul,
    "relax.add": Walker._binary,
    "relax.subtract": Walker._binary,
    "relax.multiply": Walker._binary,
    "relax.divide": Walker._binary,
    "relax.nn.batch_norm": Walker._batch_norm,
    "relax.nn.relu": Walker._relu,
    "relax.clip": Walker._clip,
    "relax.nn.relu6": Walker._relu6,
    "relax.nn.softmax": Walker._softmax,
    "relax.nn.log_softmax": Walker._log_softmax,
    "relax.sigmoid": Walker._elementwise,
    "relax.tanh": Walker._elementwise,
    "relax.reshape": Walker._reshape,
    "relax.squeeze": Walker._reshape,
    "relax.expand_dims": Walker._reshape,
    "relax.flatten": Walker._reshape,
    "relax.permute_dims": Walker._permute,
    "relax.nn.pad": Walker._pad,
    "relax.image.resize2d": Walker._resize,
    "relax.astype": Walker._identity,
    "relax.nn.dropout": Walker._identity,
    "relax.concat": Walker._concat,
    "relax.strided_slice": Walker._strided_slice,
    "relax.split": Walker._split,
    "relax.take": Walker._take,
    "relax.flip": Walker._flip,
    "relax.shape_of": Walker._shape_of,
    "relax.quantize": Walker._quantize,
    "relax.dequantize": Walker._dequantize,
}
_SUPPORTED_TEXT = ("conv and transposed conv (1-D, 2-D, strided, dilated, grouped), dense / matmul, add, subtract, "
                   "multiply, divide, max and average pools (padded, ceil mode), global and mean pools, max over H and "
                   "W, softmax, log softmax, batch norm, relu, relu6, clip, pad, reshape / flatten / squeeze, permute, "
                   "nearest resize, concat, slices and splits, channel gathers and shuffles, PReLU, quantize / "
                   "dequantize pairs, and any chain of elementwise ops on one tensor: sigmoid, tanh, hard swish, SiLU, "
                   "GELU, leaky ReLU...")


# --------------------------------------------------------------------------------------------------- helpers
@dataclass(frozen=True)
class _Clamp:
    """A clip as the function of a unary layer (bounds no layer activation has), of ``inner``'s output if given."""

    lo: float | None
    hi: float | None
    inner: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x if self.inner is None else self.inner(x), self.lo, self.hi)


def _zero_padded(val: Val, pad: tuple[int, int, int, int]) -> Val:
    """``val`` with ``pad`` (top, bottom, left, right) more zero padding, pending until a convolution takes it into its
    own or a layer is emitted for it (``_materialize``)."""
    grow = {"H": pad[0] + pad[1], "W": pad[2] + pad[3]}
    shape = tuple(s + grow.get(a, 0) for a, s in zip(val.axes, val.shape))
    return replace(val, shape=shape, pad=tuple(a + b for a, b in zip(val.pad, pad)))  # type: ignore[arg-type]


def _log_probability(p: torch.Tensor) -> torch.Tensor:
    """log(p), finite where a probability underflowed to 0 (a calibration range must be finite)."""
    return torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))


def _to_oihw(w: np.ndarray, layout: str) -> np.ndarray:
    """A conv kernel in Relax's ``layout`` (OIHW, HWIO, HWOI, OIW, WIO...) -> torch's (O, I, KH, KW)."""
    if "H" not in layout:  # 1-D kernels gain a unit H axis
        w, layout = w[..., None], layout + "H"
    return np.ascontiguousarray(w.transpose([layout.index(a) for a in "OIHW"]))


def _pads(padding: list[int], spatial: list[str]) -> tuple[int, int, int, int]:
    """Relax padding (2-D: top, left, bottom, right; 1-D: left, right) -> the spec's (top, bottom, left, right)."""
    if len(spatial) == 1:
        left, right = (padding * 2)[:2] if len(padding) == 1 else padding[:2]
        return (0, 0, left, right)
    if len(padding) == 1:
        padding = padding * 4
    elif len(padding) == 2:
        padding = padding * 2
    top, left, bottom, right = padding
    return (top, bottom, left, right)


def _pair(values: list[int], spatial: list[str]) -> tuple[int, int]:
    """A kernel size or stride given per spatial axis -> the spec's (H, W); a 1-D op's gains a unit H."""
    return (values[0], values[1]) if len(spatial) == 2 else (1, values[0])


def _out_layout(attrs: Any, layout: str) -> str:
    """The axes of an op's output: its ``out_layout`` when it names one, else its input ``layout``."""
    return str(getattr(attrs, "out_layout", "") or layout)


def _unit_axes_reshape(val: Val, out: tuple[int, ...]) -> Val | None:
    """``val`` reshaped to ``out`` when the reshape only adds or drops unit axes (and a 2-D ``out`` keeps at most the
    channels), else None."""
    kept = [(a, s) for a, s in zip(val.axes[1:], val.shape[1:]) if s != 1]
    kept_axes = [a for a, _ in kept]
    if [s for _, s in kept] != [s for s in out[1:] if s != 1] or (len(out) <= 2 and kept_axes not in ([], ["C"])):
        return None
    return replace(val, axes=_letters(out, kept_axes), shape=out)


def _letters(shape: tuple[int, ...], kept: list[str]) -> str:
    """Axis letters of a reshape that only adds or drops unit axes: the non-unit axes keep theirs, in order."""
    spare = [a for a in "CHW" if a not in kept]
    queue = list(kept)
    out = "N"
    for s in shape[1:]:
        out += queue.pop(0) if s != 1 and queue else spare.pop(0)
    return out


def _chw_index(val: Val) -> np.ndarray:
    """For each element of the spec's channel-major flatten, its position in ``val``'s own flatten order."""
    c, h, w = val.dims
    sizes = {"C": c, "H": h, "W": w}
    idx = np.arange(c * h * w).reshape([sizes[a] for a in val.order])
    return idx.transpose([val.order.index(a) for a in "CHW"]).reshape(-1)

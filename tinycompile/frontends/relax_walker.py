"""Walks the Relax ``main`` function of an imported float model, binding by binding, and keeps its books.

:class:`GraphWalker` finds the live bindings and the output, reads the input's layout from its first readers, and
tracks every Relax tensor as the spec layer that computes it plus the meaning (N, C, H or W) of each of its axes
(:class:`Val`), so NHWC and NCHW graphs import alike. Layers are built as drafts (:class:`Draft`); one stays open
while bias, scale and ReLU ops may still fold into it. What each Relax op becomes is
:mod:`tinycompile.frontends.relax_ops`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tinycompile.arch import ArchSpec, Layer, Shape
from tinycompile.errors import UserError
from tinycompile.frontends.elementwise import Region, find_regions
from tinycompile.frontends.float_loaders import check_one


@dataclass
class Val:
    """An activation as Relax sees it: the spec layer computing it and the meaning of each of its Relax axes."""

    layer: int  # spec layer index; -1 is the network input
    axes: str  # one letter per Relax axis among N, C, H, W ("NCHW", "NHWC", "NC", "NCW"...); axis 0 is always N
    shape: tuple[int, ...]  # the Relax shape
    order: str = ""  # a flatten in this order of ``dims`` (e.g. "HWC") where the spec's flatten is "CHW"
    dims: Shape = (0, 0, 0)  # (C, H, W) before that flatten
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)  # zero padding (top, bottom, left, right) not yet emitted

    def size(self, letter: str) -> int:
        """Extent of the axis meaning ``letter`` (1 when the tensor has no such axis)."""
        return self.shape[self.axes.index(letter)] if letter in self.axes else 1

    @property
    def chw(self) -> Shape:
        """The spec shape (C, H, W) of this tensor."""
        return (self.size("C"), self.size("H"), self.size("W"))


@dataclass
class Draft:
    """A spec layer being built, with its float weights in torch layout."""

    op: str
    inputs: tuple[int, ...]
    chw: Shape = (0, 0, 0)  # its output shape as Relax computed it (checked against the spec's own shape inference)
    channels: int = 0
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    relu: bool = False
    cap: float | None = None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    fn: Any = None  # a unary layer's function (tinycompile.frontends.elementwise.Region)
    select: tuple[int, ...] = ()  # a slice layer's channels
    open_var: Any = None  # the Relax var holding its output while bias, scale and ReLU may still fold into it
    where: str = ""

    def layer(self) -> Layer:
        """The frozen ArchSpec layer."""
        return Layer(self.op, self.inputs, self.channels, self.kernel, self.stride, self.padding, self.relu, self.cap,
                     self.select)


class GraphWalker:
    """Reads the Relax ``main`` function of an imported model into spec layers; a subclass translates the ops."""

    def __init__(self, mod: Any, fmt: str, name: str) -> None:
        from tvm import relax

        self.relax = relax
        self.fmt, self.name = fmt, name
        self.fn = mod["main"]
        self.bindings = [b for block in self.fn.body.blocks for b in block.bindings]
        self.bound = {b.var: b.value for b in self.bindings}
        self.vals: dict[Any, Val] = {}
        self.consts: dict[Any, np.ndarray] = {}
        self.tuples: dict[Any, list[Any]] = {}
        self.drafts: list[Draft] = []
        self.uses: dict[Any, int] = {}
        self.layout = "NCHW"
        self.where = ""
        self.regions: dict[Any, Region] = {}
        # a pre-quantized model's own int8 quantization of a layer's output (-1: the input): (scale, zero point)
        self.quantized: dict[int, tuple[float, int]] = {}

    # --- driver ------------------------------------------------------------------------------------------------
    def run(self) -> tuple[ArchSpec, list[Draft]]:
        """Walk the live bindings; return the spec and its drafts (weights)."""
        x, shape = self._input()
        out_expr = self._output_expr()
        live, self.uses = self._liveness(out_expr)
        axes = self._input_axes(x, len(shape), live)
        self.layout = "NCHW" if axes.index("C") == 1 or len(shape) == 2 else "NHWC"
        self.vals[x] = Val(-1, axes, shape)
        live_bindings = [b for b in self.bindings if b.var in live]
        self.regions = find_regions(live_bindings, self._const, self.relax)
        inner = {step[0] for region in self.regions.values() for step in region.steps} - set(self.regions)
        for count, b in enumerate(live_bindings, 1):
            self.where = f"{b.var.name} (operation {count} of {len(live_bindings)})"
            if b.var in self.regions:
                self._region(b.var, self.regions[b.var])
            elif b.var not in inner:  # computed by its region's function
                self._bind(b.var, b.value)
        out = self._output(out_expr)
        self._prune(out.layer)
        return self._spec(replace(out, layer=len(self.drafts) - 1)), self.drafts

    def _prune(self, last: int) -> None:
        """Drop the layers the output does not depend on (a slice composed past the slice it read), renumbering the
        others' inputs and quantizations."""
        needed = {last}
        for i in range(last, -1, -1):
            if i in needed:
                needed.update(j for j in self.drafts[i].inputs if j >= 0)
        if len(needed) == len(self.drafts):
            return
        index = {old: new for new, old in enumerate(sorted(needed))}
        index[-1] = -1
        self.drafts = [replace(self.drafts[i], inputs=tuple(index[j] for j in self.drafts[i].inputs))
                       for i in sorted(needed)]
        self.quantized = {index[i]: q for i, q in self.quantized.items() if i in index}

    def _input(self) -> tuple[Any, tuple[int, ...]]:
        """The network input's Relax var and shape, refused unless it is one float32 tensor of rank 2 to 4."""
        params = list(self.fn.params)
        check_one(Path(self.name), "input", params)
        x = params[0]
        shape = self._shape(x, "the input")
        if str(x.ty.dtype) != "float32":
            raise UserError(f"{self.name}: the input is {x.ty.dtype}; only float32 models import here")
        if not 2 <= len(shape) <= 4:
            raise UserError(f"{self.name}: the input has shape {list(shape)}; 2-D (N, K), 3-D or 4-D inputs import")
        return x, shape

    def _output(self, out_expr: Any) -> Val:
        """The network output, refused when it computes nothing or is flattened in another order than the spec's."""
        out = self._materialize(self._value(out_expr))
        if out.layer < 0:
            raise UserError(f"{self.name}: the output is the input; the model computes nothing")
        if out.order:
            raise UserError(f"{self.name}: the output is a tensor flattened in {out.order} order; only outputs "
                            "reached through dense layers, channels-first flattens or (C, 1, 1) tensors import")
        return out

    def _spec(self, out: Val) -> ArchSpec:
        assert out.layer == len(self.drafts) - 1, "the output must come from the last layer"
        c, h, w = self.drafts[-1].chw
        spec = ArchSpec(
            self.vals[self.fn.params[0]].chw,
            c if (h, w) == (1, 1) else 0,
            tuple(d.layer() for d in self.drafts),
            {"source": self.name, "format": self.fmt, "layout": self.layout},
        )
        for i, (got, draft) in enumerate(zip(spec.shapes(), self.drafts)):
            if got != draft.chw:  # a walker bug, not the user's: say so plainly
                raise RuntimeError(f"float import: layer {i} ({draft.op}, from {draft.where}) has spec shape {got}, "
                                   f"but TVM computed {draft.chw}")
        return spec

    def _output_expr(self) -> Any:
        expr = self.fn.body.body
        while isinstance(expr, self.relax.Var) and isinstance(self.bound.get(expr), (self.relax.Tuple, self.relax.Var)):
            expr = self.bound[expr]
        if isinstance(expr, self.relax.Tuple):
            if len(expr.fields) != 1:
                check_one(Path(self.name), "output", list(expr.fields))
            expr = expr.fields[0]
        return expr

    def _liveness(self, out_expr: Any) -> tuple[set[Any], dict[Any, int]]:
        """Bindings the output depends on, and how often each var is read by them (a fold needs a single reader)."""
        live: set[Any] = set()
        uses: dict[Any, int] = {}

        def read(expr: Any) -> None:
            for var in self._reads(expr):
                uses[var] = uses.get(var, 0) + 1
                live.add(var)

        read(out_expr)
        for b in reversed(self.bindings):
            if b.var in live:
                read(b.value)
        return live, uses

    def _reads(self, expr: Any) -> list[Any]:
        """Vars an expression reads; an item of a literal tuple reads only that item (torch's max pool indices)."""
        relax = self.relax
        if isinstance(expr, relax.Var):
            return [expr]
        if isinstance(expr, relax.TupleGetItem):
            tup = expr.tuple_value
            if isinstance(tup, relax.Var) and isinstance(self.bound.get(tup), relax.Tuple):
                return self._reads(self.bound[tup].fields[expr.index])
            return self._reads(tup)
        if isinstance(expr, relax.Tuple):
            return [v for f in expr.fields for v in self._reads(f)]
        if isinstance(expr, relax.Call):
            if getattr(expr.op, "name", "") == "relax.shape_of":  # a static shape: the tensor's values are not read
                return []
            return [v for a in expr.args for v in self._reads(a)]
        return []

    def _input_axes(self, x: Any, ndim: int, live: set[Any]) -> str:
        """The input's axis letters: from a transpose or a layout-carrying op reading it, else the format's habit."""
        first, last = {2: ("NC", "NC"), 3: ("NCW", "NWC"), 4: ("NCHW", "NHWC")}[ndim]
        for b in self.bindings:
            value = b.value
            if b.var not in live or not isinstance(value, self.relax.Call) or not any(a.same_as(x) for a in value.args[:1]):
                continue
            name = value.op.name
            if name == "relax.matmul" and ndim == 3:
                return last  # a Linear over each step of a sequence: the channels are the last axis
            if name == "relax.permute_dims" and value.attrs.axes is not None:
                axes = [int(a) for a in value.attrs.axes]
                if ndim >= 3 and axes == [0, ndim - 1, *range(1, ndim - 1)]:
                    return last  # a channels-last input transposed to channels first (TF-converted ONNX)
                if ndim >= 3 and axes == [0, *range(2, ndim), 1]:
                    return first
            layout = getattr(value.attrs, "data_layout", None) or getattr(value.attrs, "layout", None)
            if layout in (first, last):
                return str(layout)
        return last if self.fmt == "tflite-float" else first

    # --- values ----------------------------------------------------------------------------------------------
    def _shape(self, var: Any, what: str) -> tuple[int, ...]:
        import tvm.ir.prim as prim

        ty = var.ty
        if not isinstance(ty, self.relax.TensorType) or ty.shape is None:
            raise UserError(f"{self.name}: {what} has no static tensor shape ({ty}); dynamic shapes do not import")
        dims = list(ty.shape.values)
        if not all(isinstance(d, prim.IntImm) for d in dims):
            raise UserError(f"{self.name}: {what} has dynamic shape {[str(d) for d in dims]}; export a fixed shape")
        return tuple(int(d) for d in dims)

    def _value(self, expr: Any) -> Val:
        relax = self.relax
        if isinstance(expr, relax.Var) and expr in self.vals:
            return self.vals[expr]
        if isinstance(expr, relax.Var) and expr in self.consts:
            raise self._error("expects an activation here, but reads a constant")
        raise self._error(f"reads {type(expr).__name__} {expr}, which the float importer does not follow")

    def _const(self, expr: Any) -> np.ndarray | None:
        """The constant value of ``expr``, or None when it is an activation."""
        import tvm.ir as ir

        if isinstance(expr, self.relax.Var):
            return self.consts.get(expr)
        if isinstance(expr, ir.GenericConst):
            return expr.value.numpy()
        if isinstance(expr, ir.Constant) and hasattr(expr, "value"):  # IntImm / FloatImm scalars
            return np.asarray(expr.value)
        return None

    def _error(self, text: str) -> UserError:
        return UserError(f"{self.name}: {self.where}: {text}")

    def _bind(self, var: Any, value: Any) -> None:
        relax = self.relax
        if isinstance(value, relax.Var):
            self._alias(var, value)
        elif isinstance(value, relax.TupleGetItem):
            self._tuple_item(var, value)
        elif isinstance(value, relax.Call):
            self._call(var, value)
        elif self._const(value) is not None:
            self.consts[var] = self._const(value)
        else:
            raise self._error(f"{type(value).__name__} bindings are not supported")

    def _call(self, var: Any, call: Any) -> None:
        """Translate the op ``call`` whose output is ``var`` into layers (the subclass's job)."""
        raise NotImplementedError

    def _region(self, var: Any, region: Region) -> None:
        """``var`` is an elementwise function of one tensor (the subclass's job)."""
        raise NotImplementedError

    def _tuple_item(self, var: Any, item: Any) -> None:
        """``var = tup[i]``: an item of a literal tuple, or the one output of a multi-output op that has a meaning."""
        tup = item.tuple_value
        if isinstance(tup, self.relax.Var) and isinstance(self.bound.get(tup), self.relax.Tuple):
            self._alias(var, self.bound[tup].fields[item.index])
        elif tup in self.tuples and self.tuples[tup][item.index] is not None:
            self._same_layer(var, tup, self.tuples[tup][item.index])
        else:
            raise self._error(f"reads output {item.index} of a multi-output op, which has no spec equivalent")

    def _alias(self, var: Any, expr: Any) -> None:
        const = self._const(expr)
        if const is not None:
            self.consts[var] = const
            return
        self._same_layer(var, expr, self._value(expr))

    def _same_layer(self, dst: Any, src: Any, val: Val) -> None:
        """``dst`` holds what ``src`` holds, read as ``val``: a layer still open at ``src`` (its only reader being
        this) stays open at ``dst``."""
        self.vals[dst] = val
        if val.layer < 0:
            return
        draft = self.drafts[val.layer]
        if draft.open_var is not None and draft.open_var.same_as(src) and self.uses.get(src, 0) == 1:
            draft.open_var = dst

    def _open(self, expr: Any) -> Draft | None:
        """The layer computing ``expr`` when ``expr`` is its output's only reader path and nothing is pending."""
        if not isinstance(expr, self.relax.Var) or expr not in self.vals:
            return None
        val = self.vals[expr]
        if val.layer < 0 or any(val.pad) or self.uses.get(expr, 0) != 1:
            return None
        draft = self.drafts[val.layer]
        return draft if draft.open_var is not None and draft.open_var.same_as(expr) else None

    def _fold_into(self, draft: Draft, var: Any, val: Val) -> None:
        """``var`` is ``draft``'s output now that an op folded into it; later ops may still fold in."""
        self.vals[var] = val
        draft.open_var = var

    def _emit(self, var: Any, draft: Draft, axes: str, shape: tuple[int, ...] | None = None, **extra: Any) -> None:
        """Append a layer whose output is the Relax ``var`` (its axes read as ``axes``; ``shape`` for a tuple var)."""
        draft.where = self.where
        draft.open_var = var
        self.drafts.append(draft)
        val = Val(len(self.drafts) - 1, axes, shape or self._shape(var, self.where), **extra)
        self.vals[var] = val
        draft.chw = val.chw

    def _emit_like(self, var: Any, draft: Draft, val: Val, shape: tuple[int, ...] | None = None) -> None:
        """Append a layer whose output has ``val``'s axes and flatten order (an elementwise layer)."""
        self._emit(var, draft, val.axes, shape, order=val.order, dims=val.dims)

    def _materialize(self, val: Val) -> Val:
        """Emit the pending zero padding of ``val`` as a pad layer (when no convolution could take it)."""
        if not any(val.pad):
            return val
        self.drafts.append(Draft("pad", (val.layer,), val.chw, padding=val.pad, where=self.where))
        return replace(val, layer=len(self.drafts) - 1, pad=(0, 0, 0, 0))

"""Float models (ONNX, ``torch.export`` programs, float32 TFLite) -> an ArchSpec and a SpecNet holding their weights.

Each format goes through TVM's Relax frontend; one walker then reads the Relax dataflow graph binding by binding and
emits ArchSpec layers. What the walker understands:

* conv2d / conv1d (groups 1, or depthwise with multiplier 1), matmul with a constant (a dense layer), residual add,
  max / average pooling, global average pooling (adaptive pool to 1, mean over the spatial axes), softmax over the
  channels;
* per-channel affine ops (bias add, scale, batch norm) and ReLU, folded into the layer before when it is a
  convolution or dense layer that nothing else reads, else a 1x1 depthwise layer of their own;
* zero padding, folded into the next convolution's padding (else a ``pad`` layer), reshapes that only add or drop
  unit axes or flatten, transposes (the layouts TFLite and TF-converted ONNX models carry), constant subgraphs.

Every Relax tensor is tracked as the spec layer that computes it plus the meaning (N, C, H or W) of each of its axes,
so NHWC and NCHW graphs import alike; the network input's layout is what its first readers say it is.
Anything else raises a one-line :class:`~tinycompile.errors.UserError` naming the op and where it is.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from tinycompile.arch import ArchSpec, Layer, Shape
from tinycompile.errors import UserError
from tinycompile.model import SpecNet
from tinycompile.quant import reference
from tinycompile.quant.graph import QuantGraph

FORMATS = {".onnx": "onnx", ".pt": "torch", ".pt2": "torch", ".tflite": "tflite-float"}
LAYOUTS = ("NCHW", "NHWC")
RELU_FUSES_INTO = ("conv", "dwconv", "dense", "add", "maxpool", "avgpool", "gap")
_HUGE = 3.0e38  # a clip bound at least this large is no bound (float32 max is 3.4e38)


@dataclass
class FloatModel:
    """An imported float model: its spec, the SpecNet reproducing it, its input layout and source format."""

    spec: ArchSpec
    model: SpecNet
    layout: str  # "NCHW" or "NHWC": how the original model's input is laid out (channels first or last)
    format: str  # "onnx", "torch" or "tflite-float"


def import_float(path: Path) -> FloatModel:
    """Import a float ``.onnx``, ``.pt``/``.pt2`` (``torch.export.save``) or float32 ``.tflite`` model."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"{path}: unknown model suffix {path.suffix!r}; expected one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    loader = {"onnx": _load_onnx, "torch": _load_torch, "tflite-float": _load_tflite}[fmt]
    mod = loader(path)
    walker = _Walker(mod, fmt, path.name)
    spec, drafts = walker.run()
    return FloatModel(spec, _specnet(spec, drafts), walker.layout, fmt)


def to_nchw(x: np.ndarray, layout: str) -> np.ndarray:
    """Inputs in a model's own ``layout`` (batch first; 2-D ``(N, K)`` and 1-D signals too) -> float32 (N, C, H, W)."""
    x = np.asarray(x, dtype=np.float32)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    if x.ndim == 2:  # feature vectors: (N, K) -> (N, K, 1, 1) whatever the layout
        return np.ascontiguousarray(x[:, :, None, None])
    if x.ndim == 3:  # signals: (N, C, L) or (N, L, C) -> (N, C, 1, L)
        x = x if layout == "NCHW" else x.transpose(0, 2, 1)
        return np.ascontiguousarray(x[:, :, None, :])
    if x.ndim == 4:
        return np.ascontiguousarray(x if layout == "NCHW" else x.transpose(0, 3, 1, 2))
    raise UserError(f"inputs must have 2, 3 or 4 dimensions (batch first), but have shape {list(x.shape)}")


def agreement(fm: FloatModel, graph: QuantGraph, x: np.ndarray, labels: np.ndarray | None = None) -> dict[str, Any]:
    """Top-1 agreement of the float model and the int8 reference on ``x`` (N, C, H, W); accuracies when labelled."""
    x = np.asarray(x, dtype=np.float32)
    if tuple(x.shape[1:]) != tuple(fm.spec.input_shape):
        want = ", ".join(map(str, fm.spec.input_shape))
        raise UserError(f"inputs have shape {list(x.shape)}, but the model takes (N, {want}) (N, C, H, W)")
    float_top, int8_top = [], []
    fm.model.eval()
    for i in range(0, len(x), 256):  # batches bound the reference's memory
        chunk = x[i : i + 256]
        with torch.no_grad():
            float_top.append(fm.model(torch.from_numpy(chunk)).numpy().reshape(len(chunk), -1).argmax(1))
        out = reference.run(graph, graph.quantize_input(chunk))
        int8_top.append(graph.dequantize_output(out).argmax(1))
    f = np.concatenate(float_top) if float_top else np.zeros(0, np.int64)
    q = np.concatenate(int8_top) if int8_top else np.zeros(0, np.int64)
    result: dict[str, Any] = {"samples": int(len(x)), "agreement": float((f == q).mean()) if len(x) else 0.0}
    if labels is not None:
        y = np.asarray(labels).reshape(-1)
        result["float_accuracy"] = float((f == y).mean()) if len(x) else 0.0
        result["int8_accuracy"] = float((q == y).mean()) if len(x) else 0.0
    return result


# --------------------------------------------------------------------------------------------------- loaders
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _frontend(path: Path, name: str, convert: Callable[[], Any]) -> Any:
    """Run a TVM frontend; its failures (ops it cannot convert) become one-line UserErrors."""
    try:
        return convert()
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - the frontends raise many types for what they cannot convert
        raise UserError(f"{path}: TVM's {name} frontend cannot convert the model ({_first_line(exc)})") from None


def _load_onnx(path: Path) -> Any:
    import onnx
    from tvm.relax.frontend.onnx import from_onnx

    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:  # noqa: BLE001 - protobuf and the checker raise many types
        raise UserError(f"{path}: not a valid ONNX model ({_first_line(exc)})") from None
    graph = proto.graph
    weights = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]  # old exporters list weights as inputs too
    _check_one(path, "input", [i.name for i in inputs])
    _check_one(path, "output", [o.name for o in graph.output])
    tensor_type = inputs[0].type.tensor_type
    if tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise UserError(f"{path}: input {inputs[0].name!r} is {onnx.TensorProto.DataType.Name(tensor_type.elem_type)}; "
                        "only float32 ONNX models import here")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor_type.shape.dim]
    if not dims or None in dims[1:]:
        raise UserError(f"{path}: input {inputs[0].name!r} has dynamic shape {_dims_text(tensor_type)}; "
                        "export it with a fixed shape (only the batch axis may be dynamic)")
    shape = [1 if dims[0] is None else dims[0], *dims[1:]]  # a dynamic batch is pinned to 1
    tensor_type.shape.dim[0].Clear()
    tensor_type.shape.dim[0].dim_value = shape[0]
    _fold_onnx_constants(proto)
    _fold_onnx_pads(proto)
    _relu_from_onnx_clips(path, proto)
    return _frontend(path, "ONNX", lambda: from_onnx(proto, shape_dict={inputs[0].name: shape}, keep_params_in_input=False))


def _fold_onnx_constants(proto: Any) -> None:
    """Evaluate the constant subgraphs of an ONNX model (onnx's reference evaluator) into initializers, in place.

    The TorchScript exporter computes the pads of a ZeroPad2d, and ``x.view(x.size(0), -1)`` its shape, with small
    subgraphs (ConstantOfShape, Concat, Slice, Shape...) that TVM's ONNX frontend calls dynamic; with a static input
    shape they are constants."""
    import onnx
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # noqa: BLE001 - inference is only a help here: fold what is constant without it
        inferred = proto
    static: dict[str, list[int]] = {}
    for info in [*inferred.graph.value_info, *inferred.graph.input]:
        dims = info.type.tensor_type.shape.dim
        if info.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            static[info.name] = [d.dim_value for d in dims]
    graph = proto.graph
    known = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept, folded = [], []
    for node in graph.node:
        value: list[np.ndarray] | None = None
        if node.domain in ("", "ai.onnx") and node.op_type not in ("RandomNormal", "RandomUniform", "RandomNormalLike",
                                                                    "RandomUniformLike", "Multinomial", "Bernoulli"):
            if node.op_type == "Shape" and node.input[0] in static and not node.attribute:
                value = [np.array(static[node.input[0]], np.int64)]
            elif all(not name or name in known for name in node.input):
                try:
                    value = list(ReferenceEvaluator(node).run(None, {n: known[n] for n in node.input if n}))
                except Exception:  # noqa: BLE001 - an op the evaluator lacks stays for TVM to convert
                    value = None
        if value is None or len(value) != len(node.output):
            kept.append(node)
            continue
        for name, array in zip(node.output, value):
            known[name] = np.asarray(array)
            folded.append(numpy_helper.from_array(np.asarray(array), name))
    if folded:
        del graph.node[:]
        graph.node.extend(kept)
        graph.initializer.extend(folded)


def _relu_from_onnx_clips(path: Path, proto: Any) -> None:
    """Clip(0, none or inf) -> Relu in place; Clip(0, 6) (ReLU6) is refused (TVM lowers a Clip with tensor bounds
    to opaque TIR max / min functions, which the walker cannot read)."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type != "Clip":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        inputs = list(node.input) + ["", ""]
        lo = consts.get(inputs[1]) if inputs[1] else attrs.get("min", -np.inf)
        hi = consts.get(inputs[2]) if inputs[2] else attrs.get("max", np.inf)
        if lo is None or hi is None or float(lo) != 0.0:
            continue
        if float(hi) == 6.0:
            raise UserError(f"{path}: Clip node {node.name or node.output[0]!r} is a ReLU6 (clip to 0..6), which has no "
                            "equivalent in tinycompile's layers; retrain with ReLU")
        if float(hi) >= _HUGE:
            node.op_type = "Relu"
            del node.input[1:]
            del node.attribute[:]


def _fold_onnx_pads(proto: Any) -> None:
    """Fold each zero Pad whose only reader is a Conv into that Conv's ``pads``, in place (TVM's ONNX frontend
    turns a Pad into an opaque TIR function, which the walker cannot read)."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    removed = []
    for pad in graph.node:
        if pad.op_type != "Pad" or pad.output[0] in outputs:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in pad.attribute}
        inputs = list(pad.input) + [""] * 4
        widths = attrs.get("pads", consts.get(inputs[1]))
        value = consts.get(inputs[2], np.zeros(())) if inputs[2] else attrs.get("value", 0.0)
        readers = [n for n in graph.node if pad.output[0] in n.input]
        if (widths is None or attrs.get("mode", b"constant") != b"constant" or inputs[3] or np.any(np.asarray(value) != 0)
                or len(readers) != 1 or readers[0].op_type != "Conv" or list(readers[0].input).index(pad.output[0]) != 0):
            continue
        conv = readers[0]
        conv_attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        widths = [int(w) for w in np.asarray(widths).reshape(-1)]
        rank = len(widths) // 2
        batch_or_channel = widths[0] or widths[1] or widths[rank] or widths[rank + 1]
        if conv_attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID") or batch_or_channel:
            continue
        spatial = rank - 2
        old = [int(p) for p in conv_attrs.get("pads", [0] * (2 * spatial))]
        new = [old[i] + widths[2 + i] for i in range(spatial)]  # ONNX pads: all begins, then all ends
        new += [old[spatial + i] + widths[rank + 2 + i] for i in range(spatial)]
        kept = [a for a in conv.attribute if a.name not in ("pads", "auto_pad")]
        del conv.attribute[:]
        conv.attribute.extend([*kept, helper.make_attribute("pads", new)])
        conv.input[0] = pad.input[0]
        removed.append(pad)
    for pad in removed:
        graph.node.remove(pad)


def _dims_text(tensor_type: Any) -> str:
    return "[" + ", ".join(d.dim_param or str(d.dim_value) for d in tensor_type.shape.dim) + "]"


def _load_torch(path: Path) -> Any:
    from tvm.relax.frontend.torch import from_exported_program

    try:
        with warnings.catch_warnings():  # torch's own deprecation notices about its pytree internals
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001 - zip, pickle and serde errors alike
        raise UserError(f"{path}: not a program written by torch.export.save ({_first_line(exc)}); a state_dict or a "
                        "torch.save'd module cannot be imported: use torch.export.export then torch.export.save") from None
    signature = program.graph_signature
    _check_one(path, "input", list(signature.user_inputs))
    _check_one(path, "output", list(signature.user_outputs))
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in signature.user_inputs:
            shape = getattr(node.meta.get("val"), "shape", ())
            if not all(isinstance(d, int) for d in shape):
                raise UserError(f"{path}: input {node.name!r} has dynamic shape {list(shape)}; "
                                "export it without dynamic_shapes")
    with warnings.catch_warnings():  # the same notices, raised again while TVM copies the program
        warnings.simplefilter("ignore", FutureWarning)
        return _frontend(path, "PyTorch", lambda: from_exported_program(program, keep_params_as_input=False,
                                                                          unwrap_unit_return_tuple=True))


def _load_tflite(path: Path) -> Any:
    import tflite
    from tvm.relax.frontend.tflite import from_tflite

    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UserError(f"{path}: not a TFLite model (no TFL3 flatbuffer identifier)")
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        sub = model.Subgraphs(0)
        inputs, outputs = list(sub.InputsAsNumpy()), list(sub.OutputsAsNumpy())
    except Exception as exc:  # noqa: BLE001 - a corrupt flatbuffer fails anywhere
        raise UserError(f"{path}: not a readable TFLite model ({_first_line(exc)})") from None
    _check_one(path, "input", inputs)
    _check_one(path, "output", outputs)
    if sub.Tensors(int(inputs[0])).Type() != tflite.TensorType.FLOAT32:
        raise UserError(f"{path}: the input is not float32; this is a quantized TFLite model, not a float one")
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        ins = [int(t) for t in op.InputsAsNumpy() if t >= 0]
        if not ins or sub.Tensors(ins[0]).Type() != tflite.TensorType.FLOAT32:
            continue
        for t in ins[1:]:
            tensor = sub.Tensors(t)
            is_int8 = tensor.Type() in (tflite.TensorType.INT8, tflite.TensorType.UINT8)
            if is_int8 and model.Buffers(tensor.Buffer()).DataLength():
                raise UserError(f"{path}: operator {i} has float inputs but int8 weights ({tensor.Name().decode()}): "
                                "a dynamic-range quantized model; convert the model with float32 weights")
    return _frontend(path, "TFLite", lambda: from_tflite(model))


def _check_one(path: Path, what: str, names: list[Any]) -> None:
    if len(names) != 1:
        raise UserError(f"{path}: the model has {len(names)} {what}s; only models with exactly one {what} import")


# --------------------------------------------------------------------------------------------------- the walker
@dataclass
class _Val:
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
class _Draft:
    """A spec layer being built, with its float weights in torch layout."""

    op: str
    inputs: tuple[int, ...]
    chw: Shape = (0, 0, 0)  # its output shape as Relax computed it (checked against the spec's own shape inference)
    channels: int = 0
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    relu: bool = False
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    open_var: Any = None  # the Relax var holding its output while bias, scale and ReLU may still fold into it
    where: str = ""

    def layer(self) -> Layer:
        """The frozen ArchSpec layer."""
        return Layer(self.op, self.inputs, self.channels, self.kernel, self.stride, self.padding, self.relu)


class _Walker:
    """Reads the Relax ``main`` function of an imported model into spec layers (see the module docstring)."""

    def __init__(self, mod: Any, fmt: str, name: str) -> None:
        from tvm import relax

        self.relax = relax
        self.fmt, self.name = fmt, name
        self.fn = mod["main"]
        self.bindings = [b for block in self.fn.body.blocks for b in block.bindings]
        self.bound = {b.var: b.value for b in self.bindings}
        self.vals: dict[Any, _Val] = {}
        self.consts: dict[Any, np.ndarray] = {}
        self.tuples: dict[Any, list[Any]] = {}
        self.drafts: list[_Draft] = []
        self.uses: dict[Any, int] = {}
        self.layout = "NCHW"
        self.where = ""

    # --- driver ------------------------------------------------------------------------------------------------
    def run(self) -> tuple[ArchSpec, list[_Draft]]:
        """Walk the live bindings; return the spec and its drafts (weights)."""
        params = list(self.fn.params)
        _check_one(Path(self.name), "input", params)
        x = params[0]
        shape = self._shape(x, "the input")
        if str(x.ty.dtype) != "float32":
            raise UserError(f"{self.name}: the input is {x.ty.dtype}; only float32 models import here")
        if not 2 <= len(shape) <= 4:
            raise UserError(f"{self.name}: the input has shape {list(shape)}; 2-D (N, K), 3-D or 4-D inputs import")
        out_expr = self._output_expr()
        live, self.uses = self._liveness(out_expr)
        axes = self._input_axes(x, len(shape), live)
        self.layout = "NCHW" if axes.index("C") == 1 or len(shape) == 2 else "NHWC"
        self.vals[x] = _Val(-1, axes, shape)
        total = sum(1 for b in self.bindings if b.var in live)
        count = 0
        for b in self.bindings:
            if b.var not in live:
                continue
            count += 1
            self.where = f"{b.var.name} (operation {count} of {total})"
            self._bind(b.var, b.value)
        out = self._materialize(self._value(out_expr))
        if out.layer < 0:
            raise UserError(f"{self.name}: the output is the input; the model computes nothing")
        if out.order:
            raise UserError(f"{self.name}: the output is a tensor flattened in {out.order} order; only outputs "
                            "reached through dense layers, channels-first flattens or (C, 1, 1) tensors import")
        return self._spec(out), self.drafts

    def _spec(self, out: _Val) -> ArchSpec:
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
                _check_one(Path(self.name), "output", list(expr.fields))
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

    def _value(self, expr: Any) -> _Val:
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
            tup = value.tuple_value
            if isinstance(tup, relax.Var) and isinstance(self.bound.get(tup), relax.Tuple):
                self._alias(var, self.bound[tup].fields[value.index])
            elif tup in self.tuples and self.tuples[tup][value.index] is not None:
                self.vals[var] = self.tuples[tup][value.index]
                self._pass_open(tup, var)
            else:
                raise self._error(f"reads output {value.index} of a multi-output op, which has no spec equivalent")
        elif isinstance(value, relax.Call):
            self._call(var, value)
        elif self._const(value) is not None:
            self.consts[var] = self._const(value)
        else:
            raise self._error(f"{type(value).__name__} bindings are not supported")

    def _alias(self, var: Any, expr: Any) -> None:
        const = self._const(expr)
        if const is not None:
            self.consts[var] = const
            return
        self.vals[var] = self._value(expr)
        self._pass_open(expr, var)

    def _pass_open(self, src: Any, dst: Any) -> None:
        """``dst`` is ``src`` again: a layer still open at ``src`` (its only reader being this) stays open at ``dst``."""
        val = self.vals.get(dst)
        if val is None or val.layer < 0:
            return
        draft = self.drafts[val.layer]
        if draft.open_var is not None and draft.open_var.same_as(src) and self.uses.get(src, 0) == 1:
            draft.open_var = dst

    def _open(self, expr: Any) -> _Draft | None:
        """The layer computing ``expr`` when ``expr`` is its output's only reader path and nothing is pending."""
        if not isinstance(expr, self.relax.Var) or expr not in self.vals:
            return None
        val = self.vals[expr]
        if val.layer < 0 or any(val.pad) or self.uses.get(expr, 0) != 1:
            return None
        draft = self.drafts[val.layer]
        return draft if draft.open_var is not None and draft.open_var.same_as(expr) else None

    def _emit(self, var: Any, draft: _Draft, axes: str, shape: tuple[int, ...] | None = None, **extra: Any) -> _Val:
        """Append a layer whose output is the Relax ``var`` (its axes read as ``axes``; ``shape`` for a tuple var)."""
        draft.where = self.where
        draft.open_var = var
        self.drafts.append(draft)
        val = _Val(len(self.drafts) - 1, axes, shape or self._shape(var, self.where), **extra)
        self.vals[var] = val
        draft.chw = val.chw
        return val

    def _materialize(self, val: _Val) -> _Val:
        """Emit the pending zero padding of ``val`` as a pad layer (when no convolution could take it)."""
        if not any(val.pad):
            return val
        self.drafts.append(_Draft("pad", (val.layer,), val.chw, padding=val.pad, where=self.where))
        return replace(val, layer=len(self.drafts) - 1, pad=(0, 0, 0, 0))

    # --- ops -------------------------------------------------------------------------------------------------
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
        a = args[0]
        simple: dict[str, Callable[..., np.ndarray]] = {
            "relax.add": np.add, "relax.subtract": np.subtract, "relax.multiply": np.multiply,
            "relax.divide": np.divide, "relax.sqrt": np.sqrt, "relax.rsqrt": lambda v: 1.0 / np.sqrt(v),
            "relax.negative": np.negative, "relax.power": np.power, "relax.maximum": np.maximum,
            "relax.minimum": np.minimum, "relax.isnan": np.isnan, "relax.where": np.where, "relax.exp": np.exp,
        }
        if name in simple:
            result = simple[name](*args)
        elif name == "relax.permute_dims":
            axes = None if call.attrs.axes is None else [int(i) for i in call.attrs.axes]
            result = np.transpose(a, axes)
        elif name in ("relax.reshape", "relax.squeeze", "relax.expand_dims", "relax.broadcast_to", "relax.astype"):
            result = np.broadcast_to(a, out_shape) if name == "relax.broadcast_to" else a.reshape(out_shape)
        else:
            raise self._error(f"op {name} on constants is not supported by the float importer")
        return np.asarray(result, dtype=str(var.ty.dtype)).reshape(out_shape)

    def _layout(self, val: _Val, layout: str, what: str) -> _Val:
        """``val`` read with the op's ``layout``; refuses when the op would read its axes with another meaning."""
        if val.order:
            raise self._error(f"{what} reads a tensor flattened in {val.order} order; that has no spec equivalent")
        if len(layout) != len(val.shape) or any(s != 1 and a != b for s, a, b in zip(val.shape, val.axes, layout)):
            raise self._error(f"{what} reads its input as {layout}, but the input is {val.axes} {list(val.shape)}")
        return replace(val, axes=layout)

    def _conv(self, var: Any, call: Any) -> None:
        attrs = call.attrs
        val = self._layout(self._value(call.args[0]), str(attrs.data_layout), "the convolution")
        weight = self._const(call.args[1])
        if weight is None:
            raise self._error("a convolution with computed (non-constant) weights is not supported")
        spatial = [a for a in str(attrs.data_layout) if a in "HW"]
        if any(int(d) != 1 for d in attrs.dilation):
            raise self._error(f"dilated convolution (dilation {list(map(int, attrs.dilation))}) is not supported")
        w = _to_oihw(weight.astype(np.float64), str(attrs.kernel_layout))
        pad = _pads(list(map(int, attrs.padding)), spatial)
        strides = [int(s) for s in attrs.strides]
        stride = (strides[0], strides[1]) if len(spatial) == 2 else (1, strides[0])
        groups, c_in = int(attrs.groups), val.size("C")
        if groups == 1:
            op = "conv"
        elif groups == c_in and w.shape[0] == c_in:
            op = "dwconv"
        else:
            kind = (f"a depthwise convolution with channel multiplier {w.shape[0] // c_in}" if groups == c_in
                    else f"a grouped convolution ({groups} groups)")
            raise self._error(f"{kind} is not supported")
        padding = tuple(a + b for a, b in zip(val.pad, pad))  # a zero pad before it folds into its padding
        out_axes = str(getattr(attrs, "out_layout", "") or attrs.data_layout)
        channels = w.shape[0] if op == "conv" else 0
        draft = _Draft(op, (val.layer,), channels=channels, kernel=(w.shape[2], w.shape[3]), stride=stride,
                       padding=padding, weight=w, bias=np.zeros(w.shape[0]))  # type: ignore[arg-type]
        self._emit(var, draft, out_axes)

    def _pool(self, var: Any, call: Any) -> None:
        attrs, name = call.attrs, call.op.name
        layout = str(attrs.layout)
        val = self._layout(self._value(call.args[0]), layout, name)
        spatial = [a for a in layout if a in "HW"]
        if any(int(d) != 1 for d in attrs.dilation):
            raise self._error(f"dilated pooling is not supported ({name})")
        kernel = [int(k) for k in attrs.pool_size]
        strides = [int(s) for s in attrs.strides]
        kernel2 = (kernel[0], kernel[1]) if len(spatial) == 2 else (1, kernel[0])
        stride2 = (strides[0], strides[1]) if len(spatial) == 2 else (1, strides[0])
        pad = _pads(list(map(int, attrs.padding)), spatial)
        is_max = "max" in name
        if any(pad):
            # Zero padding is exact for a max over non-negative values (after a ReLU) and for an average that
            # counts the padded taps; other padded pools have no spec equivalent.
            non_negative = val.layer >= 0 and self.drafts[val.layer].relu and not any(val.pad)
            if (is_max and not non_negative) or (not is_max and not bool(attrs.count_include_pad)):
                kind = "max pooling of possibly negative values" if is_max else "average pooling that skips padded taps"
                raise self._error(f"padded {kind} is not supported")
            grow = {"H": pad[0] + pad[1], "W": pad[2] + pad[3]}
            shape = tuple(s + grow.get(a, 0) for a, s in zip(val.axes, val.shape))
            val = replace(val, shape=shape, pad=tuple(a + b for a, b in zip(val.pad, pad)))  # type: ignore[arg-type]
        val = self._materialize(val)
        c, h, w = val.chw
        out = self._shape(var, name)
        floor = ((h - kernel2[0]) // stride2[0] + 1, (w - kernel2[1]) // stride2[1] + 1)
        got = (out[layout.index("H")] if "H" in layout else 1, out[layout.index("W")])
        if got != floor:
            raise self._error(f"{name} with ceil_mode (output {got}, floor mode gives {floor}) is not supported")
        if not is_max and kernel2 == (h, w):
            self._emit(var, _Draft("gap", (val.layer,)), str(getattr(attrs, "out_layout", "") or layout))
            return
        draft = _Draft("maxpool" if is_max else "avgpool", (val.layer,), kernel=kernel2, stride=stride2)
        self._emit(var, draft, str(getattr(attrs, "out_layout", "") or layout))

    def _adaptive_pool(self, var: Any, call: Any) -> None:
        attrs = call.attrs
        layout = str(attrs.layout)
        val = self._materialize(self._layout(self._value(call.args[0]), layout, call.op.name))
        sizes = [1] if attrs.output_size is None else [int(s) for s in attrs.output_size]
        if any(s != 1 for s in sizes):
            raise self._error(f"adaptive average pooling to {sizes} is not supported (only to 1: a global average)")
        self._emit(var, _Draft("gap", (val.layer,)), str(getattr(attrs, "out_layout", "") or layout))

    def _mean(self, var: Any, call: Any) -> None:
        val = self._materialize(self._value(call.args[0]))
        if val.order:
            raise self._error(f"a mean over a tensor flattened in {val.order} order is not supported")
        ndim = len(val.shape)
        axes = list(range(ndim)) if call.attrs.axis is None else [int(a) % ndim for a in call.attrs.axis]
        letters = {val.axes[a] for a in axes if val.shape[a] != 1}
        if not letters <= {"H", "W"} or any(val.axes[a] in "NC" and val.shape[a] != 1 for a in axes):
            raise self._error(f"a mean over axes {axes} of a {val.axes} tensor is not supported (only over H and W)")
        keep = bool(call.attrs.keepdims)
        out_axes = val.axes if keep else "".join(l for i, l in enumerate(val.axes) if i not in axes)
        if "C" not in out_axes or out_axes[0] != "N":
            raise self._error(f"a mean that leaves axes {out_axes} is not supported")
        self._emit(var, _Draft("gap", (val.layer,)), out_axes)

    def _matmul(self, var: Any, call: Any) -> None:
        a, b = call.args
        weight = self._const(b)
        if weight is None or self._const(a) is not None:
            raise self._error("a matmul is supported only as activation @ constant (a dense layer)")
        val = self._materialize(self._value(a))
        if weight.ndim != 2 or val.axes[-1] != "C" or any(s != 1 for s in val.shape[1:-1]):
            raise self._error(f"a matmul of a {val.axes} {list(val.shape)} tensor by a {list(weight.shape)} matrix "
                              "is not a dense layer over the channels")
        w = weight.T.astype(np.float64)  # (out, in), torch's Linear layout
        if val.order:  # columns follow the original flatten order; the spec's flatten is channel-major
            w = w[:, _chw_index(val)]
        draft = _Draft("dense", (val.layer,), channels=w.shape[0], weight=w, bias=np.zeros(w.shape[0]))
        self._emit(var, draft, val.axes)

    def _binary(self, var: Any, call: Any) -> None:
        name = call.op.name
        a, b = call.args
        ca, cb = self._const(a), self._const(b)
        if ca is None and cb is None:
            if name != "relax.add":
                raise self._error(f"{name} of two activations is not supported (only add, a residual connection)")
            self._residual(var, a, b)
            return
        act, const = (a, cb) if cb is not None else (b, ca)
        const = const.astype(np.float64)
        if name == "relax.add":
            scale, shift = np.ones_like(const), const
        elif name == "relax.subtract":
            scale, shift = (np.ones_like(const), -const) if cb is not None else (-np.ones_like(const), const)
        elif name == "relax.multiply":
            scale, shift = const, np.zeros_like(const)
        elif cb is not None:  # divide by a constant
            scale, shift = 1.0 / const, np.zeros_like(const)
        else:
            raise self._error("a constant divided by an activation is not supported")
        self._affine(var, act, scale, shift)

    def _residual(self, var: Any, a: Any, b: Any) -> None:
        va, vb = self._materialize(self._value(a)), self._materialize(self._value(b))
        if va.shape != vb.shape or va.order != vb.order or any(
            s != 1 and x != y for s, x, y in zip(va.shape, va.axes, vb.axes)
        ):
            raise self._error(f"an add of {va.axes} {list(va.shape)} and {vb.axes} {list(vb.shape)} tensors "
                              "(broadcasting or transposed) is not supported; only same-shape residual adds")
        self._emit(var, _Draft("add", (va.layer, vb.layer)), va.axes, order=va.order, dims=va.dims)

    def _affine(self, var: Any, expr: Any, scale: np.ndarray, shift: np.ndarray) -> None:
        """``y = x * scale + shift`` per channel: folded into an open conv/dense, else a 1x1 depthwise layer."""
        val = self._value(expr)
        s, t = self._per_channel(scale, val), self._per_channel(shift, val)
        draft = self._open(expr)
        if draft is not None and draft.op in ("conv", "dwconv", "dense") and not draft.relu:
            assert draft.weight is not None and draft.bias is not None
            draft.weight = draft.weight * s.reshape(-1, *([1] * (draft.weight.ndim - 1)))
            draft.bias = draft.bias * s + t
            self.vals[var] = val
            draft.open_var = var
            return
        self._depthwise_1x1(var, val, s, t, relu=False)

    def _depthwise_1x1(self, var: Any, val: _Val, scale: np.ndarray, shift: np.ndarray, relu: bool) -> None:
        val = self._materialize(val)
        c = val.chw[0]
        draft = _Draft("dwconv", (val.layer,), relu=relu, weight=scale.reshape(c, 1, 1, 1).copy(), bias=shift.copy())
        self._emit(var, draft, val.axes, val.shape, order=val.order, dims=val.dims)

    def _per_channel(self, const: np.ndarray, val: _Val) -> np.ndarray:
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
        self._apply_relu(var, call.args[0])

    def _apply_relu(self, var: Any, expr: Any) -> None:
        draft = self._open(expr)
        val = self._value(expr)
        if draft is not None and draft.op in RELU_FUSES_INTO and not draft.relu:
            draft.relu = True
            self.vals[var] = val
            draft.open_var = var
            return
        c = val.chw[0]
        self._depthwise_1x1(var, val, np.ones(c), np.zeros(c), relu=True)  # a ReLU nothing could take

    def _clip(self, var: Any, call: Any) -> None:
        lo, hi = (self._const(a) for a in call.args[1:3])
        if lo is None or hi is None:
            raise self._error("clip with computed bounds is not supported")
        lo_f, hi_f = float(lo), float(hi)
        if lo_f == 0.0 and hi_f >= _HUGE:
            self._apply_relu(var, call.args[0])
            return
        if lo_f == 0.0 and hi_f == 6.0:
            raise self._error("ReLU6 (clip to 0..6) has no equivalent in tinycompile's layers; retrain with ReLU")
        raise self._error(f"clip to {lo_f:g}..{hi_f:g} is not supported (only clip to 0..inf, a ReLU)")

    def _relu6(self, var: Any, call: Any) -> None:
        raise self._error("ReLU6 (clip to 0..6) has no equivalent in tinycompile's layers; retrain with ReLU")

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
        self._emit(var, _Draft("softmax", (val.layer,)), val.axes, order=val.order, dims=val.dims)

    def _reshape(self, var: Any, call: Any) -> None:
        val = self._value(call.args[0])
        out = self._shape(var, call.op.name)
        if out == val.shape:
            self.vals[var] = val
            self._pass_open(call.args[0], var)
            return
        val = self._materialize(val)
        if out[0] != val.shape[0]:
            raise self._error(f"a reshape from {list(val.shape)} to {list(out)} changes the batch axis")
        kept = [(a, s) for a, s in zip(val.axes[1:], val.shape[1:]) if s != 1]
        if [s for _, s in kept] == [s for s in out[1:] if s != 1] and (len(out) > 2 or [a for a, _ in kept] in ([], ["C"])):
            self.vals[var] = replace(val, axes=_letters(out, [a for a, _ in kept]), shape=out)
            self._pass_open(call.args[0], var)
            return
        if len(out) == 2 and out[1] == int(np.prod(val.shape[1:])):
            self._flatten(var, val)
            return
        raise self._error(f"a reshape from {val.axes} {list(val.shape)} to {list(out)} is neither a flatten nor a "
                          "squeeze / unsqueeze; it has no spec equivalent")

    def _flatten(self, var: Any, val: _Val) -> None:
        if val.order:
            raise self._error(f"a flatten of a tensor already flattened in {val.order} order is not supported")
        c, h, w = val.chw
        sizes = {"C": c, "H": h, "W": w}
        seen = [a for a in val.axes[1:] if a in "CHW"]
        order = "".join(seen + [a for a in "CHW" if a not in seen])
        channel_major = [a for a in order if sizes[a] != 1] == [a for a in "CHW" if sizes[a] != 1]
        extra = {} if channel_major else {"order": order, "dims": (c, h, w)}
        self._emit(var, _Draft("flatten", (val.layer,)), "NC", **extra)

    def _permute(self, var: Any, call: Any) -> None:
        val = self._value(call.args[0])
        ndim = len(val.shape)
        perm = list(range(ndim))[::-1] if call.attrs.axes is None else [int(a) % ndim for a in call.attrs.axes]
        if perm[0] != 0:
            raise self._error(f"a transpose {perm} that moves the batch axis is not supported")
        self.vals[var] = replace(val, axes="".join(val.axes[p] for p in perm), shape=tuple(val.shape[p] for p in perm))
        self._pass_open(call.args[0], var)

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
        total = tuple(a + b for a, b in zip(val.pad, pad))
        self.vals[var] = replace(val, shape=self._shape(var, "pad"), pad=total)  # type: ignore[arg-type]

    def _identity(self, var: Any, call: Any) -> None:
        if call.op.name == "relax.astype" and str(call.attrs.dtype) != "float32":
            raise self._error(f"a cast to {call.attrs.dtype} is not supported in a float model")
        self.vals[var] = self._value(call.args[0])
        self._pass_open(call.args[0], var)
        if call.op.name == "relax.nn.dropout":  # (output, mask); the mask has no spec equivalent
            self.tuples[var] = [self.vals.pop(var), None]

    def _concat(self, var: Any, call: Any) -> None:
        raise self._error("concatenation is not supported by tinycompile's int8 quantizer")


_HANDLERS: dict[str, Callable[[_Walker, Any, Any], None]] = {
    "relax.nn.conv2d": _Walker._conv,
    "relax.nn.conv1d": _Walker._conv,
    "relax.nn.max_pool2d": _Walker._pool,
    "relax.nn.avg_pool2d": _Walker._pool,
    "relax.nn.max_pool1d": _Walker._pool,
    "relax.nn.avg_pool1d": _Walker._pool,
    "relax.nn.adaptive_avg_pool2d": _Walker._adaptive_pool,
    "relax.nn.adaptive_avg_pool1d": _Walker._adaptive_pool,
    "relax.mean": _Walker._mean,
    "relax.matmul": _Walker._matmul,
    "relax.add": _Walker._binary,
    "relax.subtract": _Walker._binary,
    "relax.multiply": _Walker._binary,
    "relax.divide": _Walker._binary,
    "relax.nn.batch_norm": _Walker._batch_norm,
    "relax.nn.relu": _Walker._relu,
    "relax.clip": _Walker._clip,
    "relax.nn.relu6": _Walker._relu6,
    "relax.nn.softmax": _Walker._softmax,
    "relax.reshape": _Walker._reshape,
    "relax.squeeze": _Walker._reshape,
    "relax.expand_dims": _Walker._reshape,
    "relax.flatten": _Walker._reshape,
    "relax.permute_dims": _Walker._permute,
    "relax.nn.pad": _Walker._pad,
    "relax.astype": _Walker._identity,
    "relax.nn.dropout": _Walker._identity,
    "relax.concat": _Walker._concat,
}
_SUPPORTED_TEXT = "conv, depthwise conv, dense, add, pools, global pool, softmax, batch norm, relu, pad, reshape"


# --------------------------------------------------------------------------------------------------- helpers
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


def _letters(shape: tuple[int, ...], kept: list[str]) -> str:
    """Axis letters of a reshape that only adds or drops unit axes: the non-unit axes keep theirs, in order."""
    spare = [a for a in "CHW" if a not in kept]
    queue = list(kept)
    out = "N"
    for s in shape[1:]:
        out += queue.pop(0) if s != 1 and queue else spare.pop(0)
    return out


def _chw_index(val: _Val) -> np.ndarray:
    """For each element of the spec's channel-major flatten, its position in ``val``'s own flatten order."""
    c, h, w = val.dims
    sizes = {"C": c, "H": h, "W": w}
    idx = np.arange(c * h * w).reshape([sizes[a] for a in val.order])
    return idx.transpose([val.order.index(a) for a in "CHW"]).reshape(-1)


def _specnet(spec: ArchSpec, drafts: list[_Draft]) -> SpecNet:
    """A SpecNet with the drafts' float weights; each batch norm is an exact identity (eps 0) holding the bias."""
    model = SpecNet(spec)
    with torch.no_grad():
        for draft, op in zip(drafts, model.ops):
            if draft.op in ("conv", "dwconv"):
                conv, bn = op[1], op[2]
                conv.weight.copy_(torch.from_numpy(draft.weight))
                bn.eps = 0.0  # x / sqrt(1 + 0) * 1 + b is exact in float32; folded_weights then reads (w, b) back
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0)
                bn.weight.fill_(1.0)
                bn.bias.copy_(torch.from_numpy(draft.bias))
            elif draft.op == "dense":
                op.weight.copy_(torch.from_numpy(draft.weight))
                op.bias.copy_(torch.from_numpy(draft.bias))
    return model.eval()

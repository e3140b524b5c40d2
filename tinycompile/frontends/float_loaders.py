"""Float model files (ONNX, ``torch.export`` programs, float32 TFLite) -> a Relax module, through TVM's frontends.

Each loader checks what the walker (:mod:`tinycompile.frontends.relax_walker`) cannot recover from later: one input
and one output, float32, static shapes. ONNX models are cleaned up first (constant subgraphs evaluated, zero pads
folded into convolutions), as TVM's ONNX frontend would otherwise lower those to opaque TIR functions. Every
failure is a one-line :class:`~tinycompile.errors.UserError`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from tinycompile.arch import same_padding
from tinycompile.errors import UserError
from tinycompile.frontends.onnx_qoperator import qoperator_to_qdq

# Ops the constant folder leaves alone: their outputs are random, not constants.
_RANDOM_OPS = ("RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli")


def load(path: Path, fmt: str) -> Any:
    """The Relax module of the model at ``path`` in format ``fmt`` ("onnx", "torch" or "tflite-float")."""
    return {"onnx": _load_onnx, "torch": _load_torch, "tflite-float": _load_tflite}[fmt](path)


def check_one(path: Path, what: str, names: list[Any]) -> None:
    """Refuse a model with other than exactly one ``what`` ("input" or "output")."""
    if len(names) != 1:
        raise UserError(f"{path}: the model has {len(names)} {what}s; only models with exactly one {what} import")


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


# --------------------------------------------------------------------------------------------------- ONNX
def _load_onnx(path: Path) -> Any:
    import onnx
    from tvm.relax.frontend.onnx import from_onnx

    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:  # noqa: BLE001 - protobuf and the checker raise many types
        raise UserError(f"{path}: not a valid ONNX model ({_first_line(exc)})") from None
    name, shape = _pin_onnx_input(path, proto)
    qoperator_to_qdq(proto)
    _fold_onnx_constants(proto)
    _explicit_auto_pads(proto)
    _fold_onnx_pads(proto)
    return _frontend(path, "ONNX", lambda: from_onnx(proto, shape_dict={name: shape}, keep_params_in_input=False))


def _pin_onnx_input(path: Path, proto: Any) -> tuple[str, list[int]]:
    """Check the single float32 input of an ONNX model and pin a dynamic batch to 1, in place; its name and shape."""
    import onnx

    graph = proto.graph
    weights = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]  # old exporters list weights as inputs too
    check_one(path, "input", [i.name for i in inputs])
    check_one(path, "output", [o.name for o in graph.output])
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
    return inputs[0].name, shape


def _dims_text(tensor_type: Any) -> str:
    return "[" + ", ".join(d.dim_param or str(d.dim_value) for d in tensor_type.shape.dim) + "]"


def _initializers(graph: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in graph.initializer}


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _fold_onnx_constants(proto: Any) -> None:
    """Evaluate the constant subgraphs of an ONNX model (onnx's reference evaluator) into initializers, in place.

    The TorchScript exporter computes the pads of a ZeroPad2d, and ``x.view(x.size(0), -1)`` its shape, with small
    subgraphs (ConstantOfShape, Concat, Slice, Shape...) that TVM's ONNX frontend calls dynamic; with a static input
    shape they are constants."""
    from onnx import numpy_helper

    static = _static_shapes(proto)
    graph = proto.graph
    known = _initializers(graph)
    kept, folded = [], []
    for node in graph.node:
        value = _evaluate(node, known, static)
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


def _static_shapes(proto: Any) -> dict[str, list[int]]:
    """The tensors of an ONNX model whose shapes shape inference makes fully static, with those shapes."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # noqa: BLE001 - inference is only a help here: fold what is constant without it
        inferred = proto
    static: dict[str, list[int]] = {}
    for info in [*inferred.graph.value_info, *inferred.graph.input]:
        dims = info.type.tensor_type.shape.dim
        if info.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            static[info.name] = [d.dim_value for d in dims]
    return static


def _evaluate(node: Any, known: dict[str, np.ndarray], static: dict[str, list[int]]) -> list[np.ndarray] | None:
    """The outputs of ``node`` when they are constants (its inputs ``known``, or a Shape of a static tensor)."""
    from onnx.reference import ReferenceEvaluator

    if node.domain not in ("", "ai.onnx") or node.op_type in _RANDOM_OPS:
        return None
    if node.op_type == "Shape" and node.input[0] in static and not node.attribute:
        return [np.array(static[node.input[0]], np.int64)]
    if not all(not name or name in known for name in node.input):
        return None
    try:
        return list(ReferenceEvaluator(node).run(None, {n: known[n] for n in node.input if n}))
    except Exception:  # noqa: BLE001 - an op the evaluator lacks stays for TVM to convert
        return None


def _explicit_auto_pads(proto: Any) -> None:
    """Give each Conv and pool with ``auto_pad`` SAME_UPPER / SAME_LOWER its explicit ``pads``, in place (TVM's ONNX
    frontend turns a 1-D one into an opaque TIR pad); the extra row or column goes at the end (UPPER) or the start."""
    from onnx import helper

    static = None
    for node in proto.graph.node:
        mode = _attributes(node).get("auto_pad", b"NOTSET")
        if node.op_type not in ("Conv", "MaxPool", "AveragePool") or mode not in (b"SAME_UPPER", b"SAME_LOWER"):
            continue
        static = _static_shapes(proto) if static is None else static
        if node.input[0] not in static:
            continue  # left to TVM's frontend
        attrs = _attributes(node)
        sizes = static[node.input[0]][2:]
        weight = _initializers(proto.graph).get(node.input[1]) if node.op_type == "Conv" else None
        kernel = attrs.get("kernel_shape") or (list(weight.shape[2:]) if weight is not None else None)
        if kernel is None:
            continue
        strides = attrs.get("strides", [1] * len(sizes))
        dilations = attrs.get("dilations", [1] * len(sizes))
        begins, ends = [], []
        for size, k, stride, d in zip(sizes, kernel, strides, dilations):
            small, large = same_padding(size, (k - 1) * d + 1, stride)  # a dilated kernel's extent
            begins.append(small if mode == b"SAME_UPPER" else large)
            ends.append(large if mode == b"SAME_UPPER" else small)
        kept = [a for a in node.attribute if a.name not in ("pads", "auto_pad")]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("pads", begins + ends)])


def _fold_onnx_pads(proto: Any) -> None:
    """Fold each zero Pad whose only reader is a Conv into that Conv's ``pads``, in place (TVM's ONNX frontend
    turns a Pad into an opaque TIR function, which the walker cannot read)."""
    graph = proto.graph
    consts = _initializers(graph)
    outputs = {o.name for o in graph.output}
    removed = []
    for pad in graph.node:
        fold = _foldable_pad(graph, pad, consts) if pad.op_type == "Pad" and pad.output[0] not in outputs else None
        if fold is None:
            continue
        conv, widths, between = fold
        _widen_conv_pads(conv, widths)
        conv.input[0] = pad.input[0]  # the Conv now reads what the Pad read
        removed += [pad, *between]
    for node in removed:
        graph.node.remove(node)


def _foldable_pad(graph: Any, pad: Any, consts: dict[str, np.ndarray]) -> tuple[Any, list[int], list[Any]] | None:
    """The Conv that is the only reader of the zero spatial ``pad`` (directly, or through a QDQ model's quantize /
    dequantize pair, which then goes too: the pad's input has its quantization already), the pad's widths and the
    pair; None when it cannot fold."""
    attrs = _attributes(pad)
    inputs = list(pad.input) + [""] * 4
    widths = attrs.get("pads", consts.get(inputs[1]))
    value = consts.get(inputs[2], np.zeros(())) if inputs[2] else attrs.get("value", 0.0)
    between: list[Any] = []
    readers = [n for n in graph.node if pad.output[0] in n.input]
    read = pad.output[0]
    for op in ("QuantizeLinear", "DequantizeLinear"):
        if len(readers) == 1 and readers[0].op_type == op and readers[0].input[0] == read:
            between.append(readers[0])
            read = readers[0].output[0]
            readers = [n for n in graph.node if read in n.input]
    if (widths is None or attrs.get("mode", b"constant") != b"constant" or inputs[3] or np.any(np.asarray(value) != 0)
            or len(between) == 1 or len(readers) != 1 or readers[0].op_type != "Conv"
            or list(readers[0].input).index(read) != 0):
        return None
    conv = readers[0]
    widths = [int(w) for w in np.asarray(widths).reshape(-1)]
    rank = len(widths) // 2
    batch_or_channel = widths[0] or widths[1] or widths[rank] or widths[rank + 1]
    if _attributes(conv).get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID") or batch_or_channel:
        return None
    return conv, widths, between


def _widen_conv_pads(conv: Any, widths: list[int]) -> None:
    """Add a Pad's ``widths`` (ONNX order, batch and channel axes included) to ``conv``'s own ``pads``, in place."""
    from onnx import helper

    rank = len(widths) // 2
    spatial = rank - 2
    old = [int(p) for p in _attributes(conv).get("pads", [0] * (2 * spatial))]
    new = [old[i] + widths[2 + i] for i in range(spatial)]  # ONNX pads: all begins, then all ends
    new += [old[spatial + i] + widths[rank + 2 + i] for i in range(spatial)]
    kept = [a for a in conv.attribute if a.name not in ("pads", "auto_pad")]
    del conv.attribute[:]
    conv.attribute.extend([*kept, helper.make_attribute("pads", new)])


# --------------------------------------------------------------------------------------------------- torch.export
@contextlib.contextmanager
def _quiet_pytree_notices() -> Iterator[None]:
    """Silence torch's own deprecation notices about its pytree internals (raised on load and again while TVM
    copies the program)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _load_torch(path: Path) -> Any:
    from tvm.relax.frontend.torch import from_exported_program

    try:
        with _quiet_pytree_notices():
            program = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001 - zip, pickle and serde errors alike
        raise UserError(f"{path}: not a program written by torch.export.save ({_first_line(exc)}); a state_dict or a "
                        "torch.save'd module cannot be imported: use torch.export.export then torch.export.save") from None
    signature = program.graph_signature
    check_one(path, "input", list(signature.user_inputs))
    check_one(path, "output", list(signature.user_outputs))
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in signature.user_inputs:
            shape = getattr(node.meta.get("val"), "shape", ())
            if not all(isinstance(d, int) for d in shape):
                raise UserError(f"{path}: input {node.name!r} has dynamic shape {list(shape)}; "
                                "export it without dynamic_shapes")
    with _quiet_pytree_notices():
        return _frontend(path, "PyTorch", lambda: from_exported_program(
            program, keep_params_as_input=False, unwrap_unit_return_tuple=True,
            custom_convert_map={"amax.default": _amax, "adaptive_max_pool2d.default": _adaptive_max_pool2d}))


def _amax(node: Any, importer: Any) -> Any:
    """``torch.amax`` (a global max pool written ``x.amax((2, 3))``), which TVM's PyTorch frontend lacks: a Relax max."""
    from tvm import relax

    args = [*node.args, None, False][1:3]
    dims, keep = node.kwargs.get("dim", args[0]), node.kwargs.get("keepdim", args[1])
    x = importer.env[node.args[0]]
    return importer.block_builder.emit(relax.op.max(x, axis=list(dims) if dims else None, keepdims=bool(keep)))


def _adaptive_max_pool2d(node: Any, importer: Any) -> tuple[Any, Any]:
    """``nn.AdaptiveMaxPool2d`` (TVM's PyTorch frontend lacks it) to sizes that divide the map: a max pool whose window
    and stride are the quotients. Its second output, the indices, is an argmax the import refuses if it is read."""
    from tvm import relax

    x = importer.env[node.args[0]]
    h, w = (int(d) for d in x.ty.shape.values[-2:])
    size = node.args[1] if isinstance(node.args[1], (list, tuple)) else (node.args[1], node.args[1])
    out = [int(s) if s is not None else d for s, d in zip(size, (h, w))]
    if h % out[0] or w % out[1]:
        raise ValueError(f"adaptive max pooling of {h}x{w} to {out[0]}x{out[1]} has windows of varying size")
    window = (h // out[0], w // out[1])
    values = importer.block_builder.emit(relax.op.nn.max_pool2d(x, window, window))
    return values, importer.block_builder.emit(relax.op.argmax(x, axis=1, keepdims=True))


# --------------------------------------------------------------------------------------------------- TFLite
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
    check_one(path, "input", inputs)
    check_one(path, "output", outputs)
    if sub.Tensors(int(inputs[0])).Type() != tflite.TensorType.FLOAT32:
        raise UserError(f"{path}: the input is not float32; this is a quantized TFLite model, not a float one")
    _refuse_int8_weights(path, model, sub)
    return _frontend(path, "TFLite", lambda: from_tflite(model))


def _refuse_int8_weights(path: Path, model: Any, sub: Any) -> None:
    """Refuse a dynamic-range quantized model: float operators that hold int8 weights."""
    import tflite

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

"""ArchSpec: the small, JSON-serialisable description of a candidate network.

The search writes it, the model builder, the cost model, the quantizer and the back ends read it. Every tensor has a
shape ``(C, H, W)``: a 1-D signal of length L is ``(C, 1, L)`` and runs through the same 2-D ops with ``kh = 1``;
dense outputs are ``(units, 1, 1)``. ``flatten`` orders elements channel-major (as ``torch.flatten`` on NCHW).

Ops (fields each uses):
  conv      channels, kernel, stride, padding, relu         standard convolution (+ bias)
  dwconv    kernel, stride, padding, relu                   depthwise convolution, multiplier 1 (+ bias)
  maxpool   kernel, stride, padding                         taps in the padding are ignored (less than a kernel)
  avgpool   kernel, stride, padding                         the mean over the taps inside the input
  gap                                                       global average pool -> (C, 1, 1)
  flatten                                                   -> (C*H*W, 1, 1)
  dense     channels, relu                                  fully connected (+ bias)
  add       relu                                            elementwise sum of two inputs of the same shape
  mul       relu                                            elementwise product; the second input may be (C, 1, 1),
                                                            one factor per channel (a squeeze-and-excitation gate)
Ops that only imported models use (``tinycompile.frontends``; the search spaces do not produce them):
  softmax                                                   softmax over the channels of each position
  lut                                                       elementwise table lookup (logistic, tanh, requantize)
  pad       padding                                         constant padding of H and W
  concat                                                    channels of all inputs side by side (same H, W)
  mean                                                      mean over H and W -> (C, 1, 1), like gap
  sigmoid, tanh                                             elementwise logistic / tanh (float models; a lut in int8)
  unary                                                     any other elementwise function (float models: hard swish,
                                                            SiLU, leaky ReLU...; its SpecNet module holds it; a lut)
  upsample  stride                                          nearest neighbour: each pixel repeated (sh, sw) times
  spread    stride, padding                                 pixels stride apart, zeros between (a transposed conv's)
  slice     padding, stride, select                         rows and columns: ``padding`` (top, bottom, left, right)
                                                            cut away, then every ``stride``-th kept; channels: the
                                                            input channel of each output one (``select``; empty: all).
                                                            Channel split, channel shuffle, crops, space-to-depth
Each layer reads ``inputs`` (indices of earlier layers, -1 for the network input; default: the previous layer).
Its output activation: ``relu`` (max with 0), then ``cap`` (min with a positive bound, in real units; ReLU6 is
``relu`` with ``cap`` 6, imported models only).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Shape = tuple[int, int, int]
OPS = ("conv", "dwconv", "maxpool", "avgpool", "gap", "flatten", "dense", "add", "mul", "softmax", "lut", "pad",
       "concat", "mean", "sigmoid", "tanh", "unary", "upsample", "spread", "slice")
ELEMENTWISE_OPS = ("softmax", "lut", "sigmoid", "tanh", "unary")
WEIGHTED_OPS = ("conv", "dwconv", "dense")


@dataclass(frozen=True)
class Layer:
    """One op of the network."""

    op: str
    inputs: tuple[int, ...]
    channels: int = 0
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right
    relu: bool = False
    cap: float | None = None  # upper clamp of the output, after the ReLU (ReLU6: 6.0); None: unbounded
    select: tuple[int, ...] = ()  # slice: the input channel of each output channel (empty: every channel in order)


@dataclass(frozen=True)
class ArchSpec:
    """A network: its input shape, its class count and its layers in execution order (the last is the logits).

    ``num_classes = 0``: not a classifier (an imported model whose output is any shape)."""

    input_shape: Shape
    num_classes: int
    layers: tuple[Layer, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.shapes()  # validates the whole graph once, at construction

    # --- shapes and counts, from the spec alone -------------------------------------------------
    def shapes(self) -> list[Shape]:
        """Output shape of every layer; raises ``ValueError`` naming the layer if the graph is inconsistent."""
        out: list[Shape] = []
        for i, layer in enumerate(self.layers):
            if layer.op not in OPS:
                raise ValueError(f"layer {i}: unknown op {layer.op!r}; expected one of {', '.join(OPS)}")
            ins = [self.input_shape if j == -1 else out[j] for j in layer.inputs if -1 <= j < i]
            if len(ins) != len(layer.inputs):
                raise ValueError(f"layer {i} ({layer.op}): inputs {layer.inputs} must name earlier layers or -1")
            out.append(_infer_shape(i, layer, ins))
        if out and self.num_classes and out[-1] != (self.num_classes, 1, 1):
            raise ValueError(f"the last layer must give ({self.num_classes}, 1, 1) logits, but gives {out[-1]}")
        return out

    def input_shapes(self, index: int, shapes: list[Shape] | None = None) -> list[Shape]:
        """Shapes of the tensors that layer ``index`` reads (pass ``shapes()`` to avoid recomputing it)."""
        shapes = self.shapes() if shapes is None else shapes
        return [self.input_shape if j == -1 else shapes[j] for j in self.layers[index].inputs]

    def macs(self) -> list[int]:
        """Multiply-accumulates per layer (pool and add count one op per input element read)."""
        shapes = self.shapes()
        result = []
        for i, layer in enumerate(self.layers):
            c_out, h_out, w_out = shapes[i]
            c_in = self.input_shapes(i, shapes)[0][0]
            kh, kw = layer.kernel
            if layer.op == "conv":
                result.append(c_out * h_out * w_out * c_in * kh * kw)
            elif layer.op == "dwconv":
                result.append(c_out * h_out * w_out * kh * kw)
            elif layer.op == "dense":
                result.append(c_out * c_in)
            elif layer.op in ("maxpool", "avgpool"):
                result.append(c_out * h_out * w_out * kh * kw)
            elif layer.op in ("gap", "mean"):
                result.append(numel(self.input_shapes(i, shapes)[0]))
            elif layer.op in ("add", "mul", *ELEMENTWISE_OPS):
                result.append(numel(shapes[i]))
            else:
                result.append(0)
        return result

    def weight_shapes(self) -> list[tuple[int, ...] | None]:
        """Weight tensor shape per layer in torch's layout (None for ops without weights)."""
        shapes = self.shapes()
        result: list[tuple[int, ...] | None] = []
        for i, layer in enumerate(self.layers):
            c_in = self.input_shapes(i, shapes)[0][0]
            if layer.op == "conv":
                result.append((layer.channels, c_in, *layer.kernel))
            elif layer.op == "dwconv":
                result.append((shapes[i][0], 1, *layer.kernel))
            elif layer.op == "dense":
                result.append((layer.channels, c_in))
            else:
                result.append(None)
        return result

    def params(self) -> int:
        """Trainable parameters (weights plus one bias per output channel)."""
        total = 0
        for shape in self.weight_shapes():
            if shape is not None:
                total += numel(shape) + shape[0]
        return total

    def consumers(self) -> list[list[int]]:
        """For each layer, the later layers that read its output."""
        users: list[list[int]] = [[] for _ in self.layers]
        for i, layer in enumerate(self.layers):
            for j in layer.inputs:
                if j >= 0:
                    users[j].append(i)
        return users

    # --- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return {
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "layers": [{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(l).items() if k != "select" or v}
                       for l in self.layers],
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ArchSpec:
        """Inverse of :meth:`to_dict`; ``ValueError`` naming the key if ``data`` (read from a file) is not a spec."""
        if not isinstance(data, dict) or not isinstance(data.get("layers"), list) or not data["layers"]:
            raise ValueError("a spec must be a JSON object with input_shape, num_classes and a non-empty list of layers")
        meta = data.get("meta", {})
        if not isinstance(meta, dict):
            raise ValueError(f"meta must be an object, but got {meta!r}")
        layers = tuple(_layer(i, layer) for i, layer in enumerate(data["layers"]))
        return cls(_ints("input_shape", data.get("input_shape"), 3, 1), _int("num_classes", data.get("num_classes"), 0),
                   layers, dict(meta))

    def save(self, path: str | Path) -> None:
        """Write the spec as indented JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ArchSpec:
        """Read a spec written by :meth:`save` (``ValueError`` if the file is not JSON or not a spec)."""
        return cls.from_dict(json.loads(Path(path).read_text()))


def _int(key: str, value: Any, low: int) -> int:
    """``value`` as read from JSON, which must be an integer >= ``low`` (not a float, not a bool)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{key} must be an integer >= {low}, but got {value!r}")
    return value


def _ints(key: str, value: Any, count: int, low: int) -> tuple[int, ...]:
    """A list of ``count`` integers >= ``low`` as read from JSON."""
    if not isinstance(value, list) or len(value) != count:
        raise ValueError(f"{key} must be a list of {count} integers, but got {value!r}")
    return tuple(_int(key, v, low) for v in value)


def _layer(i: int, data: Any) -> Layer:
    """One layer of a spec read from JSON: every field of the type :class:`Layer` declares."""
    where = f"layer {i}"
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be an object, but got {data!r}")
    unknown = set(data) - set(Layer.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    if data.get("op") not in OPS:
        raise ValueError(f"{where}: unknown op {data.get('op')!r}; expected one of {', '.join(OPS)}")
    if not isinstance(data.get("relu", False), bool):
        raise ValueError(f"{where}: relu must be true or false, but got {data['relu']!r}")
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(j, int) and not isinstance(j, bool) for j in inputs):
        raise ValueError(f"{where}: inputs must be a list of layer indices, but got {inputs!r}")
    cap = data.get("cap")
    if cap is not None and (not isinstance(cap, (int, float)) or isinstance(cap, bool) or not 0 < cap < float("inf")):
        raise ValueError(f"{where}: cap must be a positive number or null, but got {cap!r}")
    fields = {"op": data["op"], "inputs": tuple(inputs), "relu": data.get("relu", False),
              "cap": None if cap is None else float(cap),
              "channels": _int(f"{where}: channels", data.get("channels", 0), 0)}
    for key, count, low in (("kernel", 2, 1), ("stride", 2, 1), ("padding", 4, 0)):
        if key in data:
            fields[key] = _ints(f"{where}: {key}", data[key], count, low)
    if "select" in data:
        select = data["select"]
        if not isinstance(select, list):
            raise ValueError(f"{where}: select must be a list of channel indices, but got {select!r}")
        fields["select"] = _ints(f"{where}: select", select, len(select), 0)
    return Layer(**fields)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) for one axis: output ``ceil(size / stride)``, extra on the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def numel(shape: tuple[int, ...]) -> int:
    """Number of elements of a shape."""
    n = 1
    for d in shape:
        n *= d
    return n


def _conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + pad - kernel) // stride + 1


def _infer_shape(i: int, layer: Layer, ins: list[Shape]) -> Shape:
    where = f"layer {i} ({layer.op})"
    if layer.cap is not None and not layer.cap > 0:
        raise ValueError(f"{where}: cap must be positive, but got {layer.cap}")
    if layer.op == "concat":
        if not ins or any(s[1:] != ins[0][1:] for s in ins):
            raise ValueError(f"{where}: inputs must share H and W, but got {ins}")
        return (sum(s[0] for s in ins), ins[0][1], ins[0][2])
    expected_inputs = 2 if layer.op in ("add", "mul") else 1
    if len(ins) != expected_inputs:
        raise ValueError(f"{where}: takes {expected_inputs} input(s), but got {len(ins)}")
    c, h, w = ins[0]
    kh, kw = layer.kernel
    sh, sw = layer.stride
    pt, pb, pl, pr = layer.padding
    if layer.op in ("maxpool", "avgpool") and (max(pt, pb) >= kh or max(pl, pr) >= kw):
        # a window wholly in the padding would have no tap to take the max or mean of
        raise ValueError(f"{where}: a pool's padding {layer.padding} must be less than its kernel {layer.kernel} on "
                         "each side")
    if layer.op in ("conv", "dwconv", "maxpool", "avgpool"):
        ho, wo = _conv_out(h, kh, sh, pt + pb), _conv_out(w, kw, sw, pl + pr)
        if ho < 1 or wo < 1:
            raise ValueError(f"{where}: kernel {layer.kernel} does not fit input {ins[0]} with padding {layer.padding}")
        if layer.op == "conv":
            if layer.channels < 1:
                raise ValueError(f"{where}: channels must be >= 1, but got {layer.channels}")
            return (layer.channels, ho, wo)
        return (c, ho, wo)
    if layer.op in ("gap", "mean"):
        return (c, 1, 1)
    if layer.op in ELEMENTWISE_OPS:
        return (c, h, w)
    if layer.op == "pad":
        return (c, h + pt + pb, w + pl + pr)
    if layer.op == "upsample":  # nearest neighbour: every pixel repeated stride (sh, sw) times
        return (c, h * sh, w * sw)
    if layer.op == "spread":  # pixels stride (sh, sw) apart, the zero point between them and in the padding
        return (c, (h - 1) * sh + 1 + pt + pb, (w - 1) * sw + 1 + pl + pr)
    if layer.op == "slice":
        if any(j >= c for j in layer.select) or pt + pb >= h or pl + pr >= w:
            raise ValueError(f"{where}: selects channels {list(layer.select)} and cuts {layer.padding} of {ins[0]}")
        return (len(layer.select) or c, -(-(h - pt - pb) // sh), -(-(w - pl - pr) // sw))
    if layer.op == "flatten":
        return (c * h * w, 1, 1)
    if layer.op == "dense":
        if (h, w) != (1, 1):
            raise ValueError(f"{where}: needs a flat (C, 1, 1) input, but got {ins[0]}; add a flatten or gap first")
        if layer.channels < 1:
            raise ValueError(f"{where}: channels must be >= 1, but got {layer.channels}")
        return (layer.channels, 1, 1)
    if layer.op == "mul":
        if ins[1] not in (ins[0], (c, 1, 1)):
            raise ValueError(f"{where}: the second input must match the first or be ({c}, 1, 1), but got {ins}")
        return ins[0]
    if ins[0] != ins[1]:  # add
        raise ValueError(f"{where}: input shapes must match, but got {ins[0]} and {ins[1]}")
    return ins[0]

"""QuantGraph: the int8 network every back end compiles and the integer reference interprets.

Layout: every activation is int8 **NHWC**, stored per sample as ``(H, W, C)`` (a 1-D signal is ``(1, L, C)``).
``flatten`` is a view (the bytes do not move): a ``dense`` layer reading a flattened ``(H, W, C)`` tensor has its
weights permuted to that ``(h, w, c)`` order by the quantizer, so the view stays exact.

Tensors of each op (``QOp.tensors``):
  conv     weight int8 (O, KH, KW, I); bias int32 (O); multiplier int32 (O); shift int32 (O)
  dwconv   weight int8 (KH, KW, C);    bias, multiplier, shift per channel
  dense    weight int8 (O, I) with I in the NHWC order of its input; bias, multiplier, shift per output
  avgpool  multiplier, shift of shape (1,)      (gap is an avgpool whose kernel is the whole input); a padded one
           (its taps in the padding ignored) has one of each per output position, (Ho * Wo,) in row-major order
  add      multiplier, shift of shape (3,): input a, input b, output; ``params["left_shift"]``
  mul      multiplier, shift of shape (1,): ``(a - zp_a) (b - zp_b)`` scaled by ``s_a s_b / s_out``; b is (H, W, C)
           or (1, 1, C) (one factor per channel)
  maxpool, flatten: none
Ops of imported models (``tinycompile.frontends``), with TFLite's integer semantics:
  softmax  over the channels of each position (TFLite's int8 softmax, output scale 1/256, zero point -128);
           params beta_multiplier, beta_left_shift, diff_min (``semantics.softmax_params``)
  lut      elementwise ``y = table[x + 128]``; tensors: table int8 (256,) (logistic, tanh, int8 requantize)
  pad      ``padding`` (top, bottom, left, right) filled with ``params["value"]``
  upsample nearest neighbour: output pixel (h, w) is input pixel (h // sh, w // sw), ``stride`` = (sh, sw); no tensors
  spread   input pixels ``stride`` apart after ``padding`` (top, bottom, left, right), ``params["value"]`` (the zero
           point) everywhere else: with a stride-1 conv, a transposed convolution
  concat   its inputs' channels side by side (every input quantized as the output)
  slice    output pixel (h, w), channel c is input pixel (pt + h * sh, pl + w * sw), channel ``index[c]``:
           ``padding`` (top, bottom, left, right) the rows and columns cut away, ``stride`` the step; tensor index
           int32 (C_out); output quantized as the input
  dense    with ``params["float_scale"] = 1`` (TFLite's int8 FULLY_CONNECTED; a 1x1 conv too, where it keeps its
           dimensions over a map or a sequence): requantized by
           ``intmath.requantize_float(acc, scale[c])`` in double precision; tensor ``scale`` float64 (O); with
           ``params["single_rounding"] = 1`` as well when ``intmath.requantize_single`` with its multiplier and
           shift provably gives the same outputs (``semantics.single_rounding_exact``), which back ends may use
  conv, dwconv, dense with ``params["single_rounding"] = 1`` alone: requantized by ``intmath.requantize_single``
  avgpool  with ``params["divide"] = 1``: TFLite's integer average ``round_half_away(sum(x) / count)`` of the raw
           int8 values (input and output quantized alike; count: the window's taps inside the input), no multiplier
           tensors
The integer meaning of each op is written down in :mod:`tinycompile.quant.semantics`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinycompile.arch import ArchSpec, Layer
from tinycompile.errors import UserError
from tinycompile.fileio import read_npz, write_json, write_with

HWC = tuple[int, int, int]
GRAPH_JSON, TENSORS_NPZ = "quant_graph.json", "quant_tensors.npz"


@dataclass(frozen=True)
class QParams:
    """Affine int8 quantization of one tensor: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int


@dataclass
class QOp:
    """One integer op; ``inputs`` index earlier ops (-1 is the graph input), shapes are ``(H, W, C)``."""

    op: str
    inputs: tuple[int, ...]
    in_shapes: tuple[HWC, ...]
    out_shape: HWC
    in_q: tuple[QParams, ...]
    out_q: QParams
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right; padded with the input zero point
    lo: int = -128  # output clamp: ReLU is folded in as lo = output zero point
    hi: int = 127
    params: dict[str, int] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class QuantGraph:
    """The quantized network: input quantization, ops in execution order (the last is the logits)."""

    input_shape: HWC
    input_q: QParams
    ops: list[QOp]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def output_shape(self) -> HWC:
        """``(H, W, C)`` of the last op."""
        return self.ops[-1].out_shape

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float ``(N, C, H, W)`` inputs (as the tasks give them) -> int8 ``(N, H, W, C)``."""
        q = np.round(np.asarray(x, dtype=np.float64) / self.input_q.scale) + self.input_q.zero_point
        return np.clip(q, -128, 127).astype(np.int8).transpose(0, 2, 3, 1).copy()

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        """int8 outputs -> float logits ``(N, classes)``."""
        q = self.ops[-1].out_q
        return (y.reshape(len(y), -1).astype(np.float64) - q.zero_point) * q.scale

    def save(self, folder: str | Path) -> None:
        """Write ``quant_graph.json`` (readable) and ``quant_tensors.npz`` into ``folder``."""
        folder = Path(folder)
        arrays: dict[str, np.ndarray] = {}
        ops = []
        for i, op in enumerate(self.ops):
            d = {k: getattr(op, k) for k in ("op", "inputs", "in_shapes", "out_shape", "kernel", "stride", "padding")}
            d.update(lo=op.lo, hi=op.hi, params=op.params, out_q=_q_dict(op.out_q), in_q=[_q_dict(q) for q in op.in_q])
            d["tensors"] = {}
            for name, arr in op.tensors.items():
                key = f"op{i}.{name}"
                arrays[key] = arr
                d["tensors"][name] = {"key": key, "dtype": str(arr.dtype), "shape": list(arr.shape)}
                if arr.size <= 64:  # small per-channel tables stay readable in the JSON itself
                    d["tensors"][name]["values"] = arr.tolist()
            ops.append(d)
        doc = {
            "layout": "NHWC",
            "input_shape": self.input_shape,
            "input_q": _q_dict(self.input_q),
            "output_shape": self.output_shape,
            "ops": ops,
            "meta": self.meta,
        }
        write_with(folder / TENSORS_NPZ, lambda tmp: _save_npz(tmp, arrays))
        write_json(folder / GRAPH_JSON, doc)

    @classmethod
    def load(cls, folder: str | Path) -> QuantGraph:
        """Read a graph written by :meth:`save`; a one-line UserError if the files are missing, damaged or disagree
        (every tensor must have the dtype and shape the JSON records for it)."""
        folder = Path(folder)
        try:
            doc = json.loads((folder / GRAPH_JSON).read_text())
        except (OSError, ValueError) as exc:  # ValueError: bad JSON or bytes that are not UTF-8
            raise UserError(f"{folder / GRAPH_JSON}: not a readable QuantGraph ({type(exc).__name__}: {exc})") from None
        arrays = read_npz(folder / TENSORS_NPZ)
        try:
            return cls._from_doc(doc, arrays)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{folder}: {GRAPH_JSON} and {TENSORS_NPZ} do not make a QuantGraph "
                            f"({type(exc).__name__}: {exc})") from None

    @classmethod
    def _from_doc(cls, doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> QuantGraph:
        ops = []
        for d in doc["ops"]:
            tensors = {}
            for name, t in d["tensors"].items():
                arr = arrays[t["key"]]
                if str(arr.dtype) != t["dtype"] or list(arr.shape) != list(t["shape"]):
                    raise ValueError(f"tensor {t['key']} must be {t['dtype']} {list(t['shape'])}, but is "
                                     f"{arr.dtype} {list(arr.shape)}")
                tensors[name] = arr
            ops.append(
                QOp(
                    op=d["op"],
                    inputs=tuple(d["inputs"]),
                    in_shapes=tuple(tuple(s) for s in d["in_shapes"]),  # type: ignore[misc]
                    out_shape=tuple(d["out_shape"]),  # type: ignore[arg-type]
                    in_q=tuple(QParams(**q) for q in d["in_q"]),
                    out_q=QParams(**d["out_q"]),
                    kernel=tuple(d["kernel"]),  # type: ignore[arg-type]
                    stride=tuple(d["stride"]),  # type: ignore[arg-type]
                    padding=tuple(d["padding"]),  # type: ignore[arg-type]
                    lo=d["lo"],
                    hi=d["hi"],
                    params=dict(d["params"]),
                    tensors=tensors,
                )
            )
        if not ops:
            raise ValueError("the graph has no ops")
        return cls(tuple(doc["input_shape"]), QParams(**doc["input_q"]), ops, dict(doc.get("meta", {})))  # type: ignore[arg-type]


def spec_of(graph: QuantGraph) -> ArchSpec:
    """The ArchSpec of a graph (shapes, MACs, arena and cost model read it), for graphs that did not come from one."""
    layers = []
    for op in graph.ops:
        channels = op.out_shape[2] if op.op in ("conv", "dense") else 0
        kernel = tuple(op.kernel) if op.op in ("conv", "dwconv", "maxpool", "avgpool") else (1, 1)
        stride = tuple(op.stride) if op.op in ("conv", "dwconv", "maxpool", "avgpool", "upsample", "spread", "slice") else (1, 1)
        name = "gap" if (op.op == "avgpool" and tuple(op.kernel) == op.in_shapes[0][:2] and op.out_shape[:2] == (1, 1)
                         and not any(op.padding)) else op.op
        if name == "gap":
            kernel = stride = (1, 1)
        select = tuple(int(j) for j in op.tensors["index"]) if op.op == "slice" else ()
        layers.append(Layer(name, tuple(op.inputs), channels, kernel, stride, tuple(op.padding),  # type: ignore[arg-type]
                            select=select))
    h, w, c = graph.input_shape
    oh, ow, oc = graph.output_shape
    classes = oc if (oh, ow) == (1, 1) else 0
    return ArchSpec((c, h, w), classes, tuple(layers), dict(graph.meta))


def _q_dict(q: QParams) -> dict[str, Any]:
    return {"scale": q.scale, "zero_point": q.zero_point}


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:  # a file object keeps numpy from appending its own .npz suffix
        np.savez(f, **arrays)

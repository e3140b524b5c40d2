"""Float models (ONNX, ``torch.export`` programs, float32 TFLite) -> an ArchSpec and a SpecNet holding their weights.

Each format is loaded through TVM's Relax frontend (:mod:`tinycompile.frontends.float_loaders`, with its ONNX
clean-ups); one walker (:mod:`tinycompile.frontends.relax_ops`, whose docstring lists the ops it understands) then
reads the Relax dataflow graph into ArchSpec layers with float weights, which a SpecNet receives here. Anything that
does not import raises a one-line :class:`~tinycompile.errors.UserError` naming the op and where it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinycompile.arch import ArchSpec
from tinycompile.errors import UserError
from tinycompile.frontends.float_loaders import load
from tinycompile.frontends.relax_ops import Walker
from tinycompile.frontends.relax_walker import Draft
from tinycompile.model import SpecNet
from tinycompile.quant import reference
from tinycompile.quant.graph import QParams, QuantGraph
from tinycompile.quant.quantize import FIXED_QUANTIZATION_OPS

FORMATS = {".onnx": "onnx", ".pt": "torch", ".pt2": "torch", ".tflite": "tflite-float"}
LAYOUTS = ("NCHW", "NHWC")


@dataclass
class FloatModel:
    """An imported float model: its spec, the SpecNet reproducing it, its input layout and source format."""

    spec: ArchSpec
    model: SpecNet
    layout: str  # "NCHW" or "NHWC": how the original model's input is laid out (channels first or last)
    format: str  # "onnx", "torch" or "tflite-float"
    quantized: dict[int, QParams] = field(default_factory=dict)  # a pre-quantized (QDQ) model's own quantization
    # of the input (-1) and of layers' outputs

    def needs_calibration(self) -> list[int]:
        """The layers (-1: the input) whose int8 quantization the model does not give: all of a float model."""
        return [i for i in (-1, *range(len(self.spec.layers))) if i not in self.quantized
                and (i < 0 or self.spec.layers[i].op not in FIXED_QUANTIZATION_OPS)]


def import_float(path: Path) -> FloatModel:
    """Import a float ``.onnx``, ``.pt``/``.pt2`` (``torch.export.save``) or float32 ``.tflite`` model."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"{path}: unknown model suffix {path.suffix!r}; expected one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    walker = Walker(load(path, fmt), fmt, path.name)
    spec, drafts = walker.run()
    quantized = {i: QParams(*q) for i, q in walker.quantized.items()}
    return FloatModel(spec, _specnet(spec, drafts), walker.layout, fmt, quantized)


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
    """Top-1 agreement of the float model and the int8 reference on ``x`` (N, C, H, W), accuracies when labelled; for
    an output with positions (a map, not class scores) the int8 output's largest and mean error against the float one
    instead, relative to the float output's largest magnitude."""
    x = np.asarray(x, dtype=np.float32)
    if tuple(x.shape[1:]) != tuple(fm.spec.input_shape):
        want = ", ".join(map(str, fm.spec.input_shape))
        raise UserError(f"inputs have shape {list(x.shape)}, but the model takes (N, {want}) (N, C, H, W)")
    h, w, c = graph.output_shape
    floats, int8s = [], []
    fm.model.eval()
    for i in range(0, len(x), 256):  # batches bound the reference's memory
        chunk = x[i : i + 256]
        with torch.no_grad():
            floats.append(fm.model(torch.from_numpy(chunk)).numpy().reshape(len(chunk), c, h, w))
        out = graph.dequantize_output(reference.run(graph, graph.quantize_input(chunk)))
        int8s.append(out.reshape(len(chunk), h, w, c).transpose(0, 3, 1, 2))
    f = np.concatenate(floats) if floats else np.zeros((0, c, h, w))
    q = np.concatenate(int8s) if int8s else np.zeros((0, c, h, w))
    result: dict[str, Any] = {"samples": int(len(x))}
    if (h, w) != (1, 1):
        scale = max(float(np.abs(f).max()) if len(x) else 0.0, 1e-12)
        result["max_error"] = float(np.abs(q - f).max()) / scale if len(x) else 0.0
        result["mean_error"] = float(np.abs(q - f).mean()) / scale if len(x) else 0.0
        return result
    f_top, q_top = f.reshape(len(x), -1).argmax(1), q.reshape(len(x), -1).argmax(1)
    result["agreement"] = float((f_top == q_top).mean()) if len(x) else 0.0
    if labels is not None:
        y = np.asarray(labels).reshape(-1)
        result["float_accuracy"] = float((f_top == y).mean()) if len(x) else 0.0
        result["int8_accuracy"] = float((q_top == y).mean()) if len(x) else 0.0
    return result


def _specnet(spec: ArchSpec, drafts: list[Draft]) -> SpecNet:
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
            elif draft.op == "unary":
                op.fn = draft.fn
    return model.eval()

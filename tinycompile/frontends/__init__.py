"""Model files a user brings (``.tflite``, ``.onnx``, ``.pt``/``.pt2``) -> the QuantGraph every back end compiles.

int8 TFLite models import with TFLite's own integer parameters (:mod:`tinycompile.frontends.tflite`) and are
checked against TFLite's reference interpreter as a second oracle. Float models (float TFLite, ONNX, torch.export)
import into an ArchSpec with float weights (:mod:`tinycompile.frontends.float_model`) and are quantized here with the
user's calibration inputs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinycompile.arch import ArchSpec
from tinycompile.errors import UserError
from tinycompile.fileio import read_npz
from tinycompile.quant.graph import QuantGraph, spec_of

MODEL_SUFFIXES = (".tflite", ".onnx", ".pt", ".pt2")
HELD_OUT = 0.2  # share of the calibration inputs kept out of calibration, to measure float vs int8 agreement


@dataclass
class ImportedModel:
    """A model file turned into a QuantGraph, with what the build needs to feed it and to check it."""

    path: Path
    format: str  # "tflite-int8", "tflite-float", "onnx", "torch"
    graph: QuantGraph
    spec: ArchSpec
    sources: list[str]  # per QuantGraph op: the original operator it came from
    tflite: Any = None  # frontends.tflite.TfliteImport for int8 TFLite models (the reference interpreter can run them)
    held_out: np.ndarray | None = None  # float models: int8 graph inputs kept out of calibration
    agreement: dict[str, Any] = field(default_factory=dict)  # float models: float vs int8 on the held-out inputs
    layout: str = "NHWC"  # how the model file lays out its input (float models: NCHW or NHWC)
    prequantized: bool = False  # a pre-quantized ONNX model (QDQ or operator form): its own scales and zero points

    def test_inputs(self, npz: Path | None, count: int, seed: int = 0) -> np.ndarray:
        """int8 graph inputs ``(N, H, W, C)``: the user's (``--inputs``), else held-out calibration inputs, else
        random ones over the int8 range; topped up with random ones to ``count``."""
        if npz is not None:
            x = self._user_inputs(npz)
        elif self.held_out is not None:
            x = self.held_out[:count]
        else:
            x = np.zeros((0, *self.graph.input_shape), np.int8)
        missing = max(count - len(x), 0)
        rng = np.random.default_rng(seed)
        extra = rng.integers(-128, 128, size=(missing, *self.graph.input_shape)).astype(np.int8)
        return np.concatenate([x, extra]) if missing else x

    def _user_inputs(self, npz: Path) -> np.ndarray:
        data = load_npz(npz, ("x",))
        x = data["x"]
        if self.tflite is not None:
            want_shape, want_dtype = tuple(self.tflite.input_shape[1:]), self.tflite.input_dtype
        else:
            want_shape, want_dtype = tuple(self.graph.input_shape), "int8"
        if x.ndim >= 1 and self.tflite is not None and tuple(x.shape[1:]) == tuple(self.tflite.input_shape):
            x = x.reshape(len(x), *want_shape)  # (N, 1, ...) with the model's batch axis: the same samples
        if x.ndim < 1 or tuple(x.shape[1:]) != want_shape:
            raise UserError(f"{npz}: x has shape {list(x.shape)}, but the model takes (N, {', '.join(map(str, want_shape))})")
        if str(x.dtype) != want_dtype:
            raise UserError(f"{npz}: x is {x.dtype}, but the model's input is {want_dtype}; convert it first")
        return self.tflite.quantize_inputs(x) if self.tflite is not None else x


def is_model_file(path: Path) -> bool:
    """Whether ``path`` names a model file (by its suffix) rather than a trial folder."""
    return Path(path).suffix.lower() in MODEL_SUFFIXES


def load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz`` file; one-line UserError when it cannot be read or lacks a key."""
    arrays = read_npz(path)
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise UserError(f"{path}: no array named {missing[0]!r} (it holds {', '.join(arrays) or 'nothing'})")
    return arrays


def load_model(path: Path, calib: Path | None = None) -> ImportedModel:
    """Import a model file: int8 TFLite as it is; float models quantized with the calibration inputs ``calib``;
    pre-quantized ONNX models with their own scales and zero points."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    suffix = path.suffix.lower()
    if suffix == ".tflite" and not _is_float_tflite(path):
        from tinycompile.frontends.tflite import import_tflite

        if calib is not None:
            raise UserError(f"{path} is an int8 model: --calib applies to float models only (drop it)")
        imp = import_tflite(path)
        graph = imp.graph
        return ImportedModel(path, "tflite-int8", graph, spec_of(graph), list(imp.op_sources), tflite=imp)
    return _import_float(path, calib)


def _is_float_tflite(path: Path) -> bool:
    """A float TFLite model: float32 input not followed by a QUANTIZE (an int8 model with float I/O has one)."""
    from tinycompile.frontends.tflite import FLOAT32, _model

    model = _model(path.read_bytes(), str(path))
    try:
        sub = model.Subgraphs(0)
        if sub.InputsLength() != 1 or sub.Tensors(int(sub.Inputs(0))).Type() != FLOAT32:
            return False
        if sub.OperatorsLength() == 0:
            return True
        code = model.OperatorCodes(sub.Operators(0).OpcodeIndex())
    except (struct.error, IndexError):  # truncated: the int8 importer reports it in its own words
        return False
    return max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode())) != 114  # BuiltinOperator.QUANTIZE


def _import_float(path: Path, calib: Path | None) -> ImportedModel:
    """A float model quantized with ``calib``'s inputs, or a pre-quantized ONNX one with its own quantization
    (``calib`` then optional: it adds the float vs int8 agreement and test inputs)."""
    from tinycompile.frontends.float_model import agreement, import_float, to_nchw
    from tinycompile.quant.quantize import quantize

    fm = import_float(path)
    if calib is None:
        missing = fm.needs_calibration()
        if not fm.quantized:
            raise UserError(f"{path} is a float model: give calibration inputs with --calib calib.npz (array x "
                            "shaped (N, *input shape), float32) to quantize it to int8 here")
        if missing:
            what = ", ".join("the input" if i < 0 else f"layer {i} ({fm.spec.layers[i].op})" for i in missing[:3])
            raise UserError(f"{path} quantizes some tensors but not {what}: give calibration inputs for the rest "
                            "with --calib calib.npz (array x shaped (N, *input shape), float32)")
        graph = quantize(fm.spec, fm.model, None, fm.quantized)
        graph.meta.update(source=str(path), format=fm.format)
        return ImportedModel(path, fm.format, graph, fm.spec, [layer.op for layer in fm.spec.layers],
                             layout=fm.layout, prequantized=True)
    data = load_npz(calib, ("x",))
    x = np.asarray(data["x"], np.float32)
    if len(x) < 10:
        raise UserError(f"{calib}: {len(x)} calibration inputs; give at least 10 (a few hundred is better)")
    x = to_nchw(x, fm.layout)
    if tuple(x.shape[1:]) != tuple(fm.spec.input_shape):
        raise UserError(f"{calib}: x has shape {list(data['x'].shape)}, which does not match the model's input")
    split = len(x) - max(int(len(x) * HELD_OUT), 1)
    graph = quantize(fm.spec, fm.model, x[:split], fm.quantized)
    graph.meta.update(source=str(path), format=fm.format)
    labels = data.get("y")
    agree = agreement(fm, graph, x[split:], None if labels is None else np.asarray(labels)[split:])
    return ImportedModel(path, fm.format, graph, fm.spec, [layer.op for layer in fm.spec.layers],
                         held_out=graph.quantize_input(x[split:]), agreement=agree, layout=fm.layout,
                         prequantized=bool(fm.quantized))

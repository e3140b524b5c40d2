"""`tinycompile build model.tflite` on QEMU: the target's outputs equal TFLite's reference kernels bit for bit, and the
build folder records what ran (io.npz)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from support import run_cli
from tflite_models import ModelBuilder, mobilenet_v3_like

from tinycompile.frontends import load_model
from tinycompile.quant import reference


def _small_kws(path: Path) -> Path:
    """A DS-CNN in miniature: stride-2 SAME conv, depthwise, pointwise, residual add, global average, FC, softmax."""
    b = ModelBuilder(seed=3)
    x = b.input((1, 13, 6, 1), scale=0.5, zero_point=83)
    y = b.conv2d(x, 8, (5, 3), (2, 2), "SAME", "RELU")
    d = b.depthwise_conv2d(y, (3, 3), (1, 1), "SAME", "RELU")
    p = b.conv2d(d, 8, (1, 1), (1, 1), "SAME", "RELU")
    y = b.add(y, p, "RELU")
    y = b.average_pool2d(y, (7, 3), (1, 1), "VALID")
    y = b.fully_connected(b.reshape(y, (1, 8)), 5)
    return b.save(path, [b.softmax(y, beta=0.05)])  # a low beta keeps the classes apart on random inputs


def _tie_dense(path: Path) -> Path:
    """A fully connected layer whose scale 0.5 makes exact ties: TFLite rounds them away from zero in double
    precision, which no half-up fixed-point rounding reproduces (the double-precision kernel path)."""
    b = ModelBuilder(seed=0)
    x = b.input((1, 4), scale=1.0, zero_point=0)
    w = np.array([[1, 0, 0, 0], [0, 3, 0, 0], [1, 1, 1, 1]], np.int8)
    y = b.fully_connected(x, 3, weights=w, weight_scales=0.5, bias=np.zeros(3, np.int32), output_scale=1.0, output_zero_point=0)
    return b.save(path, [y])


def _build(model: Path, target: str, out: Path, *extra: str):
    return run_cli("build", str(model), "--target", target, "-o", str(out), "--vectors", "16", *extra)


@pytest.mark.slow
def test_imported_model_is_bit_exact_with_tflite_on_qemu(tmp_path: Path) -> None:
    model = _small_kws(tmp_path / "kws.tflite")
    proc = _build(model, "cortex-m4", tmp_path / "m4")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    report = json.loads((tmp_path / "m4" / "report.json").read_text())
    assert report["bit_exact"] and report["oracles"]["tflite_reference"]["bit_exact"] and report["verdict"] == "pass"
    assert report["oracles"]["tflite_reference"]["inputs"] == 16
    assert [row["source"].split(":")[1] for row in report["layers"]][-2:] == ["FULLY_CONNECTED", "SOFTMAX"]
    assert all(row["ran_on"] in ("cortex-m4", "view (no data moved)") for row in report["layers"])
    with np.load(tmp_path / "m4" / "io.npz") as io:
        inputs, outputs = io["inputs"], io["outputs"]
    graph = load_model(model).graph
    assert inputs.shape == (16, 13, 6, 1) and outputs.shape == (16, 1, 1, 5)
    assert np.array_equal(outputs, reference.run(graph, inputs))
    assert len({o.tobytes() for o in outputs}) > 1  # the inputs reach the output


@pytest.mark.slow
@pytest.mark.parametrize("target,codegen", [("cortex-m4", "c"), ("rv32imc", "llvm"), ("cortex-m7", "llvm")])
def test_double_precision_fully_connected(tmp_path: Path, target: str, codegen: str) -> None:
    model = _tie_dense(tmp_path / "tie.tflite")
    assert load_model(model).graph.ops[0].params == {"float_scale": 1}  # no exact fixed-point form exists
    proc = _build(model, target, tmp_path / "out", "--codegen", codegen)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["oracles"]["tflite_reference"]["bit_exact"]


def test_double_precision_refused_where_llvm_gets_it_wrong(tmp_path: Path) -> None:
    proc = _build(_tie_dense(tmp_path / "tie.tflite"), "cortex-m4", tmp_path / "out", "--codegen", "llvm")
    assert proc.returncode == 2 and "requantizes in double precision" in proc.stderr and "--codegen c" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cortex-m4", "rv32imc"])
def test_upsampling_decoder_is_bit_exact_with_tflite(tmp_path: Path, target: str) -> None:
    """RESIZE_NEAREST_NEIGHBOR by whole factors and a TRANSPOSE_CONV (a decoder's) between convolutions, on QEMU."""
    b = ModelBuilder(seed=4)
    x = b.input((1, 4, 3, 4), scale=0.05, zero_point=-3)
    y = b.resize_nearest(b.conv2d(x, 8, (3, 3), (1, 1), "SAME", "RELU"), (8, 6), half_pixel_centers=True)
    y = b.resize_nearest(b.conv2d(y, 4, (3, 3), (1, 1), "SAME", "NONE"), (8, 18))
    y = b.transpose_conv(b.conv2d(y, 3, (1, 1), (1, 1), "SAME", "NONE"), 2, (3, 3), (2, 2), "SAME")
    model = b.save(tmp_path / "decoder.tflite", [y])
    proc = _build(model, target, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["bit_exact"] and report["oracles"]["tflite_reference"]["bit_exact"]
    ops = ["conv", "upsample", "conv", "upsample", "conv", "spread", "conv"]
    assert [row["op"] for row in report["layers"]] == ops


@pytest.mark.slow
def test_keras_conv1d_with_dense_per_step_and_global_max_pooling_is_bit_exact_with_tflite(tmp_path: Path) -> None:
    """A Keras time-series classifier: Conv1D (EXPAND_DIMS, CONV_2D, SQUEEZE), ABS, a Dense at every step
    (FULLY_CONNECTED keeping its dimensions: a 1x1 convolution), GlobalMaxPooling1D (REDUCE_MAX over the length), a
    dense layer and softmax, on QEMU."""
    b = ModelBuilder(seed=5)
    x = b.input((1, 24, 3), scale=0.04, zero_point=5)
    y = b.squeeze(b.conv2d(b.expand_dims(x, 1), 8, (1, 5), (1, 2), "SAME", "NONE"), (1,))
    y = b.reduce_max(b.fully_connected(b.activation(y, "ABS"), 6, "RELU", keep_num_dims=True), (1,))
    model = b.save(tmp_path / "conv1d.tflite", [b.softmax(b.fully_connected(y, 4), beta=0.1)])
    proc = _build(model, "cortex-m4", tmp_path / "out")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["bit_exact"] and report["oracles"]["tflite_reference"]["bit_exact"]
    sources = [row["source"].split(":")[1] for row in report["layers"]]
    assert sources[1:4] == ["ABS", "FULLY_CONNECTED", "REDUCE_MAX"]
    assert [row["op"] for row in report["layers"]][1:4] == ["lut", "conv", "maxpool"]


@pytest.mark.slow
@pytest.mark.parametrize("target,codegen", [("cortex-m4", "c"), ("rv32imc", "llvm")])
def test_dense_per_step_keeps_tflite_double_precision_ties(tmp_path: Path, target: str, codegen: str) -> None:
    """A Dense at every step whose scales make exact ties (2**-5 * 2**4 / 1 = 0.5, weights -1, 0, 1): the 1x1
    convolution requantizes in double precision, ties away from zero, as TFLite's fully connected does."""
    b = ModelBuilder(seed=0)
    x = b.input((1, 12, 8), scale=2.0**-5, zero_point=-3)
    w = np.random.default_rng(0).integers(-1, 2, (6, 8)).astype(np.int8)
    model = b.save(tmp_path / "ties.tflite", [b.fully_connected(x, 6, keep_num_dims=True, weights=w, weight_scales=16.0,
                                                                output_scale=1.0, output_zero_point=-10)])
    op = load_model(model).graph.ops[0]
    assert op.op == "conv" and op.params == {"float_scale": 1}  # no fixed-point form gives TFLite's ties
    proc = _build(model, target, tmp_path / "out", "--codegen", codegen)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["oracles"]["tflite_reference"]["bit_exact"]


@pytest.mark.slow
def test_mobilenet_v3_with_hard_swish_and_gates_is_bit_exact_with_tflite(tmp_path: Path) -> None:
    """HARD_SWISH, squeeze-and-excitation gates (MUL by a per-channel factor) and Keras's hard sigmoid (ADD and MUL of
    constant scalars, composed into one table) build on QEMU, bit-exact against TFLite's reference kernels."""
    b, out = mobilenet_v3_like(seed=1, size=16, width=8)
    model = b.save(tmp_path / "mnv3.tflite", [out])
    proc = _build(model, "cortex-m4", tmp_path / "m4")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    report = json.loads((tmp_path / "m4" / "report.json").read_text())
    assert report["bit_exact"] and report["oracles"]["tflite_reference"]["bit_exact"]
    sources = [row["source"] for row in report["layers"]]
    assert sum("HARD_SWISH" in s for s in sources) == 5 and sum(re.fullmatch(r"\d+:MUL", s) is not None for s in sources) == 2
    assert sum("ADD+" in s and s.endswith(":MUL") for s in sources) == 2  # each hard sigmoid is one table
    assert all(row["ran_on"] == "cortex-m4" for row in report["layers"])

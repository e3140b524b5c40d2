"""Float model import (tinycompile.frontends.float_model): ONNX, torch.export and float32 TFLite.

A small CNN trained for a few seconds on sklearn's 8x8 digits is exported to each format, imported, checked to
reproduce the original float outputs, quantized with the project's own int8 PTQ and checked against the float
original's argmax with the integer reference. Error paths build tiny ONNX graphs by hand.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from tinycompile.errors import UserError
from tinycompile.frontends.float_model import FloatModel, agreement, import_float, to_nchw
from tinycompile.quant.quantize import quantize
from tinycompile.tasks import Task

# The MLPerf Tiny float models are not shipped; these two checks run where TINYCOMPILE_MODELS names a folder holding them.
MODELS_DIR = Path(os.environ.get("TINYCOMPILE_MODELS", "/nonexistent"))
KWS_FLOAT = MODELS_DIR / "kws_ref_model_float32.tflite"
RESNET_FLOAT = MODELS_DIR / "pretrainedResnet.tflite"
CALIBRATION = 400
AGREEMENT_BAR = 0.97


class DigitsNet(nn.Module):
    """conv-BN-ReLU, depthwise-BN-ReLU, pointwise conv + residual add, max pool, zero pad + conv, global pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.pw = nn.Conv2d(16, 16, 1)
        self.pool = nn.MaxPool2d(2)
        self.pad = nn.ZeroPad2d(1)  # an explicit pad the importer must fold into the next conv's padding
        self.conv3 = nn.Conv2d(16, 32, 3)
        self.bn3 = nn.BatchNorm2d(32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.dw(x)))
        x = torch.relu(x + self.pw(y))
        x = self.pool(x)
        x = torch.relu(self.bn3(self.conv3(self.pad(x))))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


@dataclass
class Trained:
    net: DigitsNet
    task: Task
    float_acc: float


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    # Tiny tensors: threads only contend (training took 40x longer on two busy cores with two threads).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(digits: Task) -> Trained:
    torch.manual_seed(0)
    net = DigitsNet()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    x, y = torch.from_numpy(digits.x_train), torch.from_numpy(digits.y_train)
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):  # a few seconds on one thread; ~97-99% on the test split
        net.train()
        for idx in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(torch.from_numpy(digits.x_test)).argmax(1).numpy() == digits.y_test).mean())
    return Trained(net, digits, acc)


@pytest.fixture(scope="module")
def exported(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("float_models")
    example = torch.from_numpy(trained.task.x_test[:1])
    onnx_path = folder / "digits.onnx"
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated in torch 2.9+, but still works
        warnings.simplefilter("ignore")
        torch.onnx.export(trained.net, (example,), str(onnx_path), dynamo=False, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "batch"}})  # a dynamic batch pins to 1
    pt2_path = folder / "digits.pt2"
    torch.export.save(torch.export.export(trained.net, (example,)), str(pt2_path))
    return {"onnx": onnx_path, "torch": pt2_path}


def _float_outputs(fm: FloatModel, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return fm.model(torch.from_numpy(to_nchw(x, fm.layout))).numpy()


# ------------------------------------------------------------------------------------------- ONNX and torch
@pytest.mark.parametrize("fmt", ["onnx", "torch"])
def test_import_reproduces_the_float_model(trained: Trained, exported: dict[str, Path], fmt: str) -> None:
    fm = import_float(exported[fmt])
    assert fm.format == fmt and fm.layout == "NCHW"
    assert fm.spec.input_shape == (1, 8, 8) and fm.spec.num_classes == 10
    # Batch norms fold into the convolutions, biases and ReLUs into their layers, the zero pad into conv3.
    ops = [layer.op for layer in fm.spec.layers]
    assert ops == ["conv", "dwconv", "conv", "add", "maxpool", "conv", "gap", "dense"], ops
    assert fm.spec.layers[5].padding == (1, 1, 1, 1) and fm.spec.layers[3].relu and fm.spec.layers[3].inputs == (0, 2)
    x = trained.task.x_test
    with torch.no_grad():
        want = trained.net(torch.from_numpy(x)).numpy()
    assert np.abs(_float_outputs(fm, x) - want).max() < 1e-4


@pytest.mark.parametrize("fmt", ["onnx", "torch"])
def test_int8_reference_agrees_with_the_float_original(trained: Trained, exported: dict[str, Path], fmt: str) -> None:
    fm = import_float(exported[fmt])
    task = trained.task
    graph = quantize(fm.spec, fm.model, task.x_train[:CALIBRATION])
    result = agreement(fm, graph, task.x_test, task.y_test)
    assert trained.float_acc > 0.9, "the fixture model did not learn; the bar below would mean nothing"
    assert result["samples"] == len(task.x_test)
    assert result["agreement"] >= AGREEMENT_BAR, result
    assert result["float_accuracy"] == pytest.approx(trained.float_acc)
    assert result["int8_accuracy"] >= trained.float_acc - 0.02, result


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torch"])
def test_float_model_builds_for_cortex_m4(trained: Trained, exported: dict[str, Path], fmt: str, tmp_path: Path) -> None:
    """`tinycompile build model --calib` as a user runs it: quantized here, bit-exact on QEMU, and its int8 argmax
    agrees with the float original on the held-out calibration inputs."""
    from support import run_cli

    task = trained.task
    np.savez(tmp_path / "calib.npz", x=task.x_train[:CALIBRATION], y=task.y_train[:CALIBRATION])
    proc = run_cli("build", str(exported[fmt]), "--target", "cortex-m4", "--calib", str(tmp_path / "calib.npz"),
                   "-o", str(tmp_path / "out"), "--vectors", "16")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["bit_exact"] and report["graph"]["source"]["format"] == fmt and report["verdict"] == "pass"
    agree = report["float_vs_int8"]
    assert agree["samples"] == CALIBRATION // 5 and agree["agreement"] >= AGREEMENT_BAR, agree


# ------------------------------------------------------------------------------------------- float TFLite
def _digits_tflite(net: DigitsNet) -> bytes:
    """The trained net written as a float32 TFLite model (NHWC, BN folded as a converter would, softmax at the end)."""
    tflite_models = pytest.importorskip("tflite_models")  # tests/tflite_models.py, the test-model writer

    @torch.no_grad()
    def folded(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[np.ndarray, np.ndarray]:
        w = conv.weight.double()
        b = conv.bias.double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        if bn is not None:
            s = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            w, b = w * s[:, None, None, None], (b - bn.running_mean.double()) * s + bn.bias.double()
        return w.numpy(), b.numpy()

    def ohwi(w: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(w.transpose(0, 2, 3, 1), dtype=np.float32)

    b = tflite_models.ModelBuilder(seed=0)
    x = b.input((1, 8, 8, 1), dtype="float32", real_range=(-1.0, 3.0))
    w, bias = folded(net.conv1, net.bn1)
    h = b.conv2d(x, 16, (3, 3), padding="SAME", activation="RELU", weights=ohwi(w), bias=bias.astype(np.float32))
    w, bias = folded(net.dw, net.bn2)  # depthwise filters are (1, KH, KW, C)
    dw_w = np.ascontiguousarray(w[:, 0].transpose(1, 2, 0)[None], dtype=np.float32)
    y = b.depthwise_conv2d(h, (3, 3), padding="SAME", activation="RELU", weights=dw_w, bias=bias.astype(np.float32))
    w, bias = folded(net.pw, None)
    y = b.conv2d(y, 16, (1, 1), padding="VALID", weights=ohwi(w), bias=bias.astype(np.float32))
    h = b.add(h, y, activation="RELU")
    h = b.max_pool2d(h, (2, 2), (2, 2), padding="VALID")
    h = b.pad(h, [(0, 0), (1, 1), (1, 1), (0, 0)])
    w, bias = folded(net.conv3, net.bn3)
    h = b.conv2d(h, 32, (3, 3), padding="VALID", activation="RELU", weights=ohwi(w), bias=bias.astype(np.float32))
    h = b.mean(h, axes=(1, 2), keepdims=False)
    logits = b.fully_connected(h, 10, weights=net.fc.weight.detach().numpy().astype(np.float32),
                               bias=net.fc.bias.detach().numpy().astype(np.float32))
    return b.finish(outputs=[b.softmax(logits)])


def _litert(path: Path, x: np.ndarray) -> np.ndarray:
    """Run a float TFLite model on each sample with LiteRT's interpreter."""
    interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter")
    it = interpreter_mod.Interpreter(model_path=str(path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    result = []
    for sample in x:
        it.set_tensor(inp["index"], sample[None].astype(np.float32))
        it.invoke()
        result.append(it.get_tensor(out["index"]).reshape(-1).copy())
    return np.stack(result)


def test_float_tflite_imports_and_quantizes(trained: Trained, tmp_path: Path) -> None:
    path = tmp_path / "digits_float.tflite"
    path.write_bytes(_digits_tflite(trained.net))
    fm = import_float(path)
    assert fm.format == "tflite-float" and fm.layout == "NHWC" and fm.spec.input_shape == (1, 8, 8)
    ops = [layer.op for layer in fm.spec.layers]
    assert ops == ["conv", "dwconv", "conv", "add", "maxpool", "conv", "gap", "dense", "softmax"], ops
    task = trained.task
    x_nhwc = task.x_test.transpose(0, 2, 3, 1)  # the model's own layout
    want = _litert(path, x_nhwc[:200])
    assert np.abs(_float_outputs(fm, x_nhwc[:200]) - want).max() < 1e-5
    graph = quantize(fm.spec, fm.model, to_nchw(task.x_train[:CALIBRATION].transpose(0, 2, 3, 1), fm.layout))
    assert graph.ops[-1].op == "softmax" and graph.ops[-1].out_q.scale == 1 / 256
    assert set(graph.ops[-1].params) == {"beta_multiplier", "beta_left_shift", "diff_min"}
    result = agreement(fm, graph, task.x_test, task.y_test)
    assert result["agreement"] >= AGREEMENT_BAR, result


def test_tflite_flatten_of_nhwc_permutes_the_dense_columns(tmp_path: Path) -> None:
    """A RESHAPE of an NHWC tensor to (1, -1) flattens in (H, W, C) order; the spec's flatten is (C, H, W)."""
    tflite_models = pytest.importorskip("tflite_models")
    b = tflite_models.ModelBuilder(seed=3)
    x = b.input((1, 5, 4, 3), dtype="float32")
    rng = np.random.default_rng(3)
    h = b.conv2d(x, 6, (3, 3), (1, 1), "VALID", "RELU", weights=rng.standard_normal((6, 3, 3, 3)).astype(np.float32),
                 bias=rng.standard_normal(6).astype(np.float32))
    h = b.fully_connected(b.reshape(h, (1, -1)), 7, weights=rng.standard_normal((7, 36)).astype(np.float32),
                          bias=rng.standard_normal(7).astype(np.float32))
    path = tmp_path / "flatten.tflite"
    b.save(path, outputs=[h])
    fm = import_float(path)
    assert [layer.op for layer in fm.spec.layers] == ["conv", "flatten", "dense"]
    xs = rng.standard_normal((16, 5, 4, 3)).astype(np.float32)
    assert np.abs(_float_outputs(fm, xs) - _litert(path, xs)).max() < 1e-4


@pytest.mark.skipif(not RESNET_FLOAT.exists(), reason=f"{RESNET_FLOAT} is not on this machine")
def test_mlperf_tiny_float_resnet_reproduces_litert() -> None:
    fm = import_float(RESNET_FLOAT)
    assert fm.layout == "NHWC" and fm.spec.input_shape == (3, 32, 32) and fm.spec.layers[-1].op == "softmax"
    xs = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 3)).astype(np.float32)
    assert np.abs(_float_outputs(fm, xs) - _litert(RESNET_FLOAT, xs)).max() < 1e-5


@pytest.mark.skipif(not KWS_FLOAT.exists(), reason=f"{KWS_FLOAT} is not on this machine")
def test_mlperf_tiny_kws_float_with_int8_weights_is_refused() -> None:
    # The "float32" KWS reference model keeps its conv weights in int8 (dynamic-range quantization).
    with pytest.raises(UserError, match="dynamic-range quantized"):
        import_float(KWS_FLOAT)


# ------------------------------------------------------------------------------------------- NHWC ONNX
def test_onnx_with_an_nhwc_input_reports_nhwc(tmp_path: Path) -> None:
    """TF-converted ONNX models take NHWC and transpose it first; calibration data then comes in NHWC."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    fc = rng.standard_normal((4 * 4 * 3, 5)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t", "w"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Transpose", ["r"], ["back"], perm=[0, 2, 3, 1]),  # flattened in (H, W, C) order
        helper.make_node("Flatten", ["back"], ["f"]),
        helper.make_node("MatMul", ["f", "fc"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "nhwc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 5, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(fc, "fc")])
    path = tmp_path / "nhwc.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    fm = import_float(path)
    assert fm.layout == "NHWC" and fm.spec.input_shape == (2, 6, 5)
    x = rng.standard_normal((3, 6, 5, 2)).astype(np.float32)
    conv = torch.relu(nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(w)))
    want = conv.permute(0, 2, 3, 1).reshape(3, -1).numpy() @ fc
    assert np.abs(_float_outputs(fm, x) - want).max() < 1e-4


def test_to_nchw_handles_every_rank() -> None:
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    assert to_nchw(x, "NCHW").shape == (2, 3, 4, 5)
    np.testing.assert_array_equal(to_nchw(x, "NHWC"), x.transpose(0, 3, 1, 2))
    assert to_nchw(x[:, :, 0], "NHWC").shape == (2, 5, 1, 3)  # (N, L, C) signal
    assert to_nchw(x[:, :, 0], "NCHW").shape == (2, 3, 1, 5)  # (N, C, L) signal
    assert to_nchw(x[:, 0, 0], "NHWC").shape == (2, 5, 1, 1)


# ------------------------------------------------------------------------------------------- pre-quantized ONNX (QDQ)
def _qdq(trained: Trained, source: Path, out: Path, activations: str = "QInt8", **options: Any) -> Path:
    """``source`` quantized by ONNX Runtime's static quantizer (QDQ form unless ``quant_format`` says otherwise,
    per-channel int8 weights)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter({"x": x[None]} for x in trained.task.x_train[:CALIBRATION])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    quant_format = getattr(QuantFormat, options.pop("quant_format", "QDQ"))
    quantize_static(str(source), str(out), Reader(), quant_format=quant_format, per_channel=True,
                    activation_type=getattr(QuantType, activations), weight_type=QuantType.QInt8, **options)
    return out


@pytest.fixture(scope="module")
def qdq(trained: Trained, exported: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _qdq(trained, exported["onnx"], tmp_path_factory.mktemp("qdq") / "digits_qdq.onnx")


def _ort_int8(path: Path, graph: Any, x: np.ndarray) -> np.ndarray:
    """ONNX Runtime's outputs of the QDQ model on float inputs (N, C, H, W), as the int8 values it quantized them to."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y = np.concatenate([sess.run(None, {"x": xi[None]})[0] for xi in x.astype(np.float32)])
    q = graph.ops[-1].out_q
    return np.clip(np.round(y / q.scale) + q.zero_point, -128, 127).astype(np.int64)


def test_qdq_model_imports_with_its_own_quantization(trained: Trained, qdq: Path, tmp_path: Path) -> None:
    """No calibration: every tensor takes the model's own scale and zero point, the int8 weights come out as ONNX
    Runtime stored them, and the int8 reference matches ONNX Runtime's int8 kernels to one output step (they
    requantize in float, ours in TFLite's fixed point), with the same top-1 class on the digits test split. The
    ReLUs ONNX Runtime dropped (a zero point of -128 clamps as they did) come back in the float model, which is
    then the original: its accuracy on held-out inputs is the trained network's."""
    import onnx
    from onnx import numpy_helper

    from tinycompile.frontends import load_model
    from tinycompile.quant import reference

    model = load_model(qdq)
    graph = model.graph
    assert model.prequantized and model.format == "onnx" and graph.meta["calibration_samples"] == 0
    proto = onnx.load(str(qdq)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in proto.initializer}
    consts = set(inits) | {o for n in proto.node if n.op_type == "Constant" for o in n.output}
    quantized = {(float(inits[n.input[1]]), int(inits[n.input[2]])) for n in proto.node
                 if n.op_type == "QuantizeLinear" and n.input[0] not in consts}  # activations, not a pad's value
    ours = {(q.scale, q.zero_point) for q in (graph.input_q, *(op.out_q for op in graph.ops))}
    assert ours == {(float(np.float32(s)), z) for s, z in quantized}
    conv1 = next(n for n in proto.node if n.op_type == "Conv")
    weight_dq = next(n for n in proto.node if n.output[0] == conv1.input[1])
    np.testing.assert_array_equal(graph.ops[0].tensors["weight"], inits[weight_dq.input[0]].transpose(0, 2, 3, 1))
    x = trained.task.x_test
    got = reference.run(graph, graph.quantize_input(x)).reshape(len(x), -1).astype(np.int64)
    want = _ort_int8(qdq, graph, x)
    assert np.abs(got - want).max() <= 1
    assert (got == want).mean() >= 0.7  # most values agree exactly
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.99
    np.savez(tmp_path / "calib.npz", x=np.concatenate([trained.task.x_train[:320], x[:80]]),
             y=np.concatenate([trained.task.y_train[:320], trained.task.y_test[:80]]))
    agree = load_model(qdq, tmp_path / "calib.npz").agreement  # held out: the last fifth, x[:80]
    with torch.no_grad():
        original = float((trained.net(torch.from_numpy(x[:80])).argmax(1).numpy() == trained.task.y_test[:80]).mean())
    assert agree["float_accuracy"] == pytest.approx(original) and agree["agreement"] >= AGREEMENT_BAR, agree


def test_operator_form_is_the_same_model(trained: Trained, exported: dict[str, Path], qdq: Path, tmp_path: Path) -> None:
    """ONNX Runtime's operator form of the same quantization (QLinearConv, QLinearAdd, int8 MaxPool and Pad, QGemm)
    imports to the QDQ form's graph: the same scales, zero points, weights and biases."""
    import onnx

    from tinycompile.frontends import load_model

    path = _qdq(trained, exported["onnx"], tmp_path / "qop.onnx", quant_format="QOperator")
    assert {"QLinearConv", "QLinearAdd", "QGemm"} <= {n.op_type for n in onnx.load(str(path)).graph.node}
    qop, ref = load_model(path).graph, load_model(qdq).graph
    assert qop.input_q == ref.input_q and [op.op for op in qop.ops] == [op.op for op in ref.ops]
    for a, b in zip(qop.ops, ref.ops):
        assert a.out_q == b.out_q and a.tensors.keys() == b.tensors.keys()
        for key in a.tensors:
            np.testing.assert_array_equal(a.tensors[key], b.tensors[key])


class Branches(nn.Module):
    """Two convolutions concatenated along the channels: ONNX Runtime quantizes each branch on its own range."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 4, 1), nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([torch.relu(self.a(x)), 3 * torch.relu(self.b(x))], 1).mean((2, 3)))


def test_concatenated_branches_take_the_concatenations_quantization(trained: Trained, tmp_path: Path) -> None:
    """The branches' own quantizations differ (QLinearConcat requantizes them); here each branch's convolution
    requantizes straight to the concatenation's, and the result still tracks ONNX Runtime."""
    graph, got, want = _quantized_by_ort(Branches, trained, tmp_path)
    concat = next(i for i, op in enumerate(graph.ops) if op.op == "concat")
    assert [graph.ops[j].out_q for j in graph.ops[concat].inputs] == [graph.ops[concat].out_q] * 2
    assert np.abs(got - want).max() <= 2 and (got.argmax(1) == want.argmax(1)).mean() >= 0.9


def _quantized_by_ort(cls: type[nn.Module], trained: Trained, tmp_path: Path) -> tuple[Any, np.ndarray, np.ndarray]:
    """A fresh ``cls`` exported to ONNX and quantized by ONNX Runtime (QDQ): its imported graph, and the int8 outputs
    of our integer reference and of ONNX Runtime on the digits test split."""
    from tinycompile.frontends import load_model
    from tinycompile.quant import reference

    torch.manual_seed(0)
    source = tmp_path / f"{cls.__name__}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(cls().eval(), (torch.from_numpy(trained.task.x_test[:1]),), str(source), dynamo=False,
                          input_names=["x"], output_names=["y"])
    path = _qdq(trained, source, tmp_path / f"{cls.__name__}_qdq.onnx")
    graph = load_model(path).graph
    x = trained.task.x_test
    got = reference.run(graph, graph.quantize_input(x)).reshape(len(x), -1).astype(np.int64)
    return graph, got, _ort_int8(path, graph, x)


class Shuffled(nn.Module):
    """ShuffleNetV2's basic unit: the channels shuffled and split, one half convolved, the halves joined."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.conv, self.fc = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.stem(x))
        y = y.view(len(y), 2, 4, *y.shape[2:]).transpose(1, 2).reshape(y.shape)
        kept, changed = y.chunk(2, dim=1)
        return self.fc(torch.cat([kept, torch.relu(self.conv(changed))], 1).mean((2, 3)))


def test_a_quantized_channel_shuffle_is_two_slices(trained: Trained, tmp_path: Path) -> None:
    """ONNX Runtime quantizes the shuffle's reshaped and transposed views too; they pass through, and the shuffle
    and split become two slices of the stem's output that keep its quantization."""
    graph, got, want = _quantized_by_ort(Shuffled, trained, tmp_path)
    slices = [op for op in graph.ops if op.op == "slice"]
    assert [list(op.tensors["index"]) for op in slices] == [[0, 4, 1, 5], [2, 6, 3, 7]]
    assert all(op.inputs == (0,) and op.out_q == graph.ops[0].out_q for op in slices)
    assert np.abs(got - want).max() <= 2 and (got.argmax(1) == want.argmax(1)).mean() >= 0.9


def test_uint8_activations_are_the_same_int8_model(trained: Trained, exported: dict[str, Path], qdq: Path,
                                                   tmp_path: Path) -> None:
    """ONNX Runtime's uint8 activations (zero point + 128) import to the quantization of its int8 ones."""
    from tinycompile.frontends import load_model

    u8 = load_model(_qdq(trained, exported["onnx"], tmp_path / "u8.onnx", activations="QUInt8")).graph
    i8 = load_model(qdq).graph
    assert u8.input_q == i8.input_q and [op.out_q for op in u8.ops] == [op.out_q for op in i8.ops]


def test_partly_quantized_model_needs_calibration_for_the_rest(trained: Trained, exported: dict[str, Path],
                                                               tmp_path: Path) -> None:
    """Only the convolutions quantized: without --calib the error names the first layer left; with it, the model's
    quantization where it gives one and calibrated ranges elsewhere."""
    from tinycompile.frontends import load_model

    path = _qdq(trained, exported["onnx"], tmp_path / "convs.onnx", op_types_to_quantize=["Conv"])
    with pytest.raises(UserError, match=r"quantizes some tensors but not layer \d+ \((add|maxpool|gap|dense)\).*calib"):
        load_model(path)
    np.savez(tmp_path / "calib.npz", x=trained.task.x_train[:CALIBRATION])
    model = load_model(path, tmp_path / "calib.npz")
    assert model.prequantized and model.agreement["agreement"] >= AGREEMENT_BAR, model.agreement


def test_channels_last_quantized_pool_is_refused(tmp_path: Path) -> None:
    """ONNX Runtime's NHWC quantized pools would be read as NCHW: refused in one line instead."""
    import onnx
    from onnx import TensorProto, helper

    vi = helper.make_tensor_value_info
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("QLinearGlobalAveragePool", ["q", "s", "z", "s", "z"], ["p"], domain="com.microsoft",
                              channels_last=1),
             helper.make_node("DequantizeLinear", ["p", "s", "z"], ["y"])]
    inits = [onnx.numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             onnx.numpy_helper.from_array(np.array(0, np.int8), "z")]
    graph = helper.make_graph(nodes, "g", [vi("x", TensorProto.FLOAT, [1, 4, 4, 3])],
                              [vi("y", TensorProto.FLOAT, [1, 1, 1, 3])], inits)
    path = tmp_path / "nhwc_pool.onnx"
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    onnx.save(model, str(path))
    assert "QLinearGlobalAveragePool" in _one_line_error(path, "channels last")


def test_quantized_bias_from_a_computed_scale_is_refused(tmp_path: Path) -> None:
    """A QLinearConv bias whose input scale is not an initializer cannot be turned into floats: one line."""
    import onnx
    from onnx import TensorProto, helper

    vi, arr = helper.make_tensor_value_info, onnx.numpy_helper.from_array
    nodes = [helper.make_node("Constant", [], ["s"], value=arr(np.array(0.1, np.float32))),
             helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("QLinearConv", ["q", "s", "z", "w", "ws", "wz", "s", "z", "b"], ["c"]),
             helper.make_node("DequantizeLinear", ["c", "s", "z"], ["y"])]
    inits = [arr(np.array(0, np.int8), "z"), arr(np.ones((2, 1, 1, 1), np.int8), "w"),
             arr(np.array(0.05, np.float32), "ws"), arr(np.array(0, np.int8), "wz"), arr(np.zeros(2, np.int32), "b")]
    graph = helper.make_graph(nodes, "g", [vi("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [vi("y", TensorProto.FLOAT, [1, 2, 4, 4])], inits)
    path = tmp_path / "computed_scale.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    _one_line_error(path, "not an initializer")


@pytest.mark.slow
def test_qdq_model_builds_without_calibration(qdq: Path, tmp_path: Path) -> None:
    """`tinycompile build model_qdq.onnx` with no --calib: bit-exact on QEMU, and ONNX Runtime, run on the same
    inputs as the report's oracle, within one output step."""
    from support import run_cli

    proc = run_cli("build", str(qdq), "--target", "cortex-m4", "-o", str(tmp_path / "out"), "--vectors", "16")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["bit_exact"] and report["verdict"] == "pass" and "float_vs_int8" not in report
    ort = report["oracles"]["onnxruntime"]
    assert ort["inputs"] == 16 and ort["max_step_difference"] <= 1 and ort["top1_agreement"] >= 0.9, ort


# ------------------------------------------------------------------------------------------- errors
def _onnx_file(tmp_path: Path, nodes: list, inputs: list, outputs: list, inits: dict[str, np.ndarray] | None = None) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()])
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def _one_line_error(path: Path, match: str) -> str:
    with pytest.raises(UserError, match=match) as info:
        import_float(path)
    text = str(info.value)
    assert "\n" not in text, text
    return text


def test_unreadable_files_are_user_errors(tmp_path: Path) -> None:
    for suffix, match in ((".onnx", "not a valid ONNX model"), (".tflite", "not a TFLite model"),
                          (".pt2", "not a program written by torch.export.save")):
        path = tmp_path / f"junk{suffix}"
        path.write_bytes(b"this is not a model at all" * 10)
        _one_line_error(path, match)
    _one_line_error(tmp_path / "model.h5", "unknown model suffix")
    _one_line_error(tmp_path / "missing.onnx", "no such model file")


def test_unsupported_ops_are_named(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    vi = helper.make_tensor_value_info
    w = np.ones((2, 1, 1, 1), np.float32)
    sine = _onnx_file(tmp_path, [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
                                 helper.make_node("Sin", ["c"], ["y"])],
                      [vi("x", TensorProto.FLOAT, [1, 1, 4, 4])], [vi("y", TensorProto.FLOAT, [1, 2, 4, 4])], {"w": w})
    assert "operation 2 of 2" in _one_line_error(sine, "relax.sin")


def test_several_inputs_outputs_and_dynamic_shapes_are_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    vi = helper.make_tensor_value_info
    two_in = _onnx_file(tmp_path, [helper.make_node("Add", ["a", "b"], ["y"])],
                        [vi("a", TensorProto.FLOAT, [1, 4]), vi("b", TensorProto.FLOAT, [1, 4])],
                        [vi("y", TensorProto.FLOAT, [1, 4])])
    _one_line_error(two_in, "2 inputs")
    two_out = _onnx_file(tmp_path, [helper.make_node("Relu", ["a"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
                         [vi("a", TensorProto.FLOAT, [1, 4])],
                         [vi("y", TensorProto.FLOAT, [1, 4]), vi("z", TensorProto.FLOAT, [1, 4])])
    _one_line_error(two_out, "2 outputs")
    dynamic = _onnx_file(tmp_path, [helper.make_node("Relu", ["a"], ["y"])],
                         [vi("a", TensorProto.FLOAT, [1, "length"])], [vi("y", TensorProto.FLOAT, [1, "length"])])
    _one_line_error(dynamic, "dynamic shape")


def test_torch_dynamic_batch_is_refused(tmp_path: Path) -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU6(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    x = torch.zeros(2, 1, 8, 8)
    batch = torch.export.Dim("batch", min=2)
    path = tmp_path / "dynamic.pt2"
    torch.export.save(torch.export.export(net, (x,), dynamic_shapes=({0: batch},)), str(path))
    _one_line_error(path, "dynamic shape")


@pytest.mark.parametrize("mode", ["SAME_UPPER", "SAME_LOWER"])
def test_auto_padded_1d_convolutions_and_pools_equal_onnx_runtime(mode: str, tmp_path: Path) -> None:
    """``auto_pad`` SAME (Keras-style exports), 1-D, an even kernel (one extra tap at the end or the start) and a
    stride: explicit pads before TVM's frontend, which would lower them to an opaque pad."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(5)
    vi = helper.make_tensor_value_info
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], auto_pad=mode, kernel_shape=[4], strides=[2]),
             helper.make_node("MaxPool", ["c"], ["y"], auto_pad=mode, kernel_shape=[2], strides=[1])]
    path = _onnx_file(tmp_path, nodes, [vi("x", TensorProto.FLOAT, [1, 2, 11])], [vi("y", TensorProto.FLOAT, [1, 3, 6])],
                      {"w": rng.standard_normal((3, 2, 4)).astype(np.float32)})
    fm = import_float(path)
    assert [(layer.op, layer.padding) for layer in fm.spec.layers] == [
        ("conv", (0, 0, 1, 2) if mode == "SAME_UPPER" else (0, 0, 2, 1)),
        ("maxpool", (0, 0, 0, 1) if mode == "SAME_UPPER" else (0, 0, 1, 0))]
    x = rng.standard_normal((8, 2, 11)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x[:1]})[0]
    with torch.no_grad():
        got = fm.model(torch.from_numpy(to_nchw(x[:1], fm.layout))).numpy()
    assert np.abs(got.reshape(want.shape) - want).max() < 1e-5

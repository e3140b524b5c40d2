"""Float model import beyond conv and ReLU, in ONNX and torch.export: bounded activations (ReLU6, clips), channel
concatenation, sigmoid, tanh, any other elementwise activation (hard swish, SiLU, leaky ReLU, mish, GELU), grouped
convolutions and products of two tensors (squeeze-and-excitation gates).

MobileNet-style networks use ReLU6 or hard swish and gates, Inception / SqueezeNet-style ones join branches with a
concatenation, detectors use leaky ReLU and end in a sigmoid. Each test exports a small network, imports it, checks
the spec it becomes and that the import reproduces the original float outputs, then quantizes it and checks the int8
integer reference against the float original; the slow tests build one network with all of them for cortex-m4 and
the accelerator, bit-exact.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tinycompile.arch import ArchSpec, Layer
from tinycompile.errors import UserError
from tinycompile.frontends.float_model import FloatModel, agreement, import_float, to_nchw
from tinycompile.model import SpecNet
from tinycompile.quant import reference, semantics
from tinycompile.quant.quantize import quantize
from tinycompile.quant.semantics import logistic_table, tanh_table

F = nn.functional
FORMATS = ("onnx", "torch")


class InvertedResidual(nn.Module):
    """A MobileNetV2 block: ReLU6 stem, 1x1 expansion + ReLU6, depthwise + ReLU6, 1x1 projection, residual add,
    then an upper clamp without a ReLU (``torch.clamp(max=2)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.expand, self.bn1 = nn.Conv2d(8, 24, 1, bias=False), nn.BatchNorm2d(24)
        self.dw, self.bn2 = nn.Conv2d(24, 24, 3, padding=1, groups=24, bias=False), nn.BatchNorm2d(24)
        self.project = nn.Conv2d(24, 8, 1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.bn0(self.stem(x)))
        y = nn.ReLU6()(self.bn1(self.expand(x)))
        y = F.hardtanh(self.bn2(self.dw(y)), 0.0, 6.0)
        x = torch.clamp(x + self.project(y), max=2.0)
        return self.fc(x.mean((2, 3)))


class TwoBranches(nn.Module):
    """An Inception-style join: a 1x1 and a 3x3 branch of different ranges concatenated, a ReLU6 branch beside
    them (so the shared quantization is wider than 0..6 and its clamp bites), a strided conv, a global pool."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(1, 8, 1), nn.Conv2d(1, 5, 3, padding=1), nn.Conv2d(1, 3, 3, padding=1)
        self.mix = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, 4)
        with torch.no_grad():
            self.a.weight.mul_(8.0)  # branch a reaches well above 6: the joined range is wider than ReLU6's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([F.relu(self.a(x)), self.b(x), F.relu6(self.c(x) * 4.0)], dim=1)
        y = F.relu(self.mix(y))
        return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))


class Squashed(nn.Module):
    """tanh inside the network, a sigmoid on its single output (a binary detector's head)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 6, 3, padding=1), nn.Linear(6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(torch.tanh(self.conv(x)).mean((2, 3))))


class Mixed(nn.Module):
    """Every op of this file in one network, for the builds: ReLU6 stem, two branches joined, a channel shuffle and
    split, hard swish, a crop, a squeeze-and-excitation gate, tanh, a sigmoid head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.a, self.b = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 4, 3, padding=1)
        self.c = nn.Conv2d(6, 6, 1)
        self.mix, self.excite = nn.Conv2d(12, 16, 3, stride=2, padding=1), nn.Linear(16, 16)
        self.fc = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.stem(x) * 3.0)
        x = _shuffle(torch.cat([F.relu(self.a(x)), F.relu6(self.b(x))], dim=1), 2)
        kept, changed = x.chunk(2, dim=1)
        x = F.hardswish(self.mix(torch.cat([kept, F.relu(self.c(changed))], dim=1)))[:, :, 1:, :]
        x = x * F.hardsigmoid(self.excite(x.mean((2, 3))))[:, :, None, None]
        return torch.sigmoid(self.fc(torch.tanh(x.mean((2, 3)))))


def _shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: channel ``g * (C / groups) + i`` moves to ``i * groups + g``."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _export(net: nn.Module, x: torch.Tensor, folder: Path, fmt: str) -> Path:
    if fmt == "torch":
        path = folder / f"{type(net).__name__}.pt2"
        torch.export.save(torch.export.export(net, (x[:1],)), str(path))
        return path
    path = folder / f"{type(net).__name__}.onnx"
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated in torch 2.9+, but still works
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x[:1],), str(path), dynamo=False, input_names=["x"], output_names=["y"])
    return path


def _net(cls: type[nn.Module]) -> nn.Module:
    torch.manual_seed(0)
    net = cls()
    for m in net.modules():  # batch norms with statistics of their own, not the identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 3.0)
    return net.eval()


def _inputs(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 4.0 - 1.0


def _float_outputs(fm: FloatModel, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return fm.model(x).numpy()


def _int8_outputs(fm: FloatModel, calib: torch.Tensor, x: torch.Tensor) -> tuple[np.ndarray, float]:
    """Dequantized int8 reference outputs on ``x`` and the output scale."""
    graph = quantize(fm.spec, fm.model, calib.numpy())
    q = graph.ops[-1].out_q
    out = reference.run(graph, graph.quantize_input(x.numpy())).reshape(len(x), -1)
    return (out.astype(np.float64) - q.zero_point) * q.scale, q.scale


@pytest.mark.parametrize("fmt", FORMATS)
def test_relu6_and_clips_fold_into_their_layers(fmt: str, tmp_path: Path) -> None:
    net, x = _net(InvertedResidual), _inputs(64, 1)
    with torch.no_grad():
        stem = net.bn0(net.stem(x))
    assert float(stem.max()) > 6.0, "the stem never saturates: the ReLU6 would not be tested"
    fm = import_float(_export(net, x, tmp_path, fmt))
    layers = fm.spec.layers
    assert [layer.op for layer in layers] == ["conv", "conv", "dwconv", "conv", "add", "gap", "dense"]
    assert [(layer.relu, layer.cap) for layer in layers[:5]] == [
        (True, 6.0), (True, 6.0), (True, 6.0), (False, None), (False, 2.0)]
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(_float_outputs(fm, x) - want).max() < 1e-4


@pytest.mark.parametrize("fmt", FORMATS)
def test_hard_sigmoid_folds_into_the_convolution(fmt: str, tmp_path: Path) -> None:
    """relu6(x + 3) / 6: the shift before the clip and the positive scale after it fold into the conv (cap 1)."""
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Hardsigmoid(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    x = _inputs(32, 13)
    fm = import_float(_export(net, x, tmp_path, fmt))
    assert [(layer.op, layer.relu, layer.cap) for layer in fm.spec.layers] == [
        ("conv", True, 1.0), ("flatten", False, None), ("dense", False, None)]
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(_float_outputs(fm, x) - want).max() < 1e-5


@pytest.mark.parametrize("fmt", FORMATS)
def test_relu6_network_int8_tracks_the_float_original(fmt: str, tmp_path: Path) -> None:
    net, calib, x = _net(InvertedResidual), _inputs(300, 2), _inputs(100, 3)
    fm = import_float(_export(net, calib, tmp_path, fmt))
    got, scale = _int8_outputs(fm, calib, x)
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max() + 4 * scale


def test_a_cap_below_the_tensor_range_clamps_int8_at_the_cap() -> None:
    """Layer 0 has ReLU6 but shares its output quantization with a wider tensor (through the concat): its int8
    clamp must sit at the quantized 6, TFLite's rule, and its int8 outputs never pass it."""
    spec = ArchSpec((1, 4, 4), 0, (
        Layer("conv", (-1,), channels=2, kernel=(1, 1), relu=True, cap=6.0),
        Layer("conv", (-1,), channels=2, kernel=(1, 1), relu=True),
        Layer("concat", (0, 1)),
    ))
    model = SpecNet(spec).eval()
    with torch.no_grad():
        for op, gain in ((model.ops[0], 10.0), (model.ops[1], 30.0)):
            op[1].weight.fill_(gain)
    x = np.random.default_rng(0).uniform(0.0, 1.0, (64, 1, 4, 4)).astype(np.float32)
    graph = quantize(spec, model, x)
    q = graph.ops[2].out_q
    assert graph.ops[0].out_q == graph.ops[1].out_q == q and q.scale == pytest.approx(30.0 / 255, rel=0.01)
    six = q.zero_point + int(np.floor(6.0 / q.scale + 0.5))
    assert (graph.ops[0].lo, graph.ops[0].hi) == (q.zero_point, six) and graph.ops[1].hi == 127
    first = reference.run_layers(graph, graph.quantize_input(x))[0]
    assert first.max() == six, "the capped branch should saturate at the quantized 6"


@pytest.mark.parametrize("fmt", FORMATS)
def test_concatenated_branches_share_one_quantization(fmt: str, tmp_path: Path) -> None:
    net, calib, x = _net(TwoBranches), _inputs(300, 4), _inputs(100, 5)
    fm = import_float(_export(net, calib, tmp_path, fmt))
    ops = [layer.op for layer in fm.spec.layers]
    assert ops == ["conv", "conv", "conv", "concat", "conv", "gap", "dense"], ops
    assert fm.spec.layers[3].inputs == (0, 1, 2) and fm.spec.layers[2].cap == 6.0
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(_float_outputs(fm, x) - want).max() < 1e-4
    graph = quantize(fm.spec, fm.model, calib.numpy())
    joined = graph.ops[3].out_q
    assert all(graph.ops[j].out_q == joined for j in (0, 1, 2))
    assert graph.ops[2].hi < 127, "the ReLU6 branch should be clamped below the joined range's top"
    got, scale = _int8_outputs(fm, calib, x)
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max() + 4 * scale


@pytest.mark.parametrize("fmt", FORMATS)
def test_clips_without_a_layer_equivalent_are_tables(fmt: str, tmp_path: Path) -> None:
    """Hard tanh (ONNX: a max, then a min) and a floor other than 0 have no layer activation: each is one table."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Hardtanh(-1.0, 1.0), nn.Conv2d(4, 4, 1), Clamp(0.25),
                        nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    calib, x = _inputs(200, 27), _inputs(50, 28)
    fm = import_float(_export(net, calib, tmp_path, fmt))
    assert [layer.op for layer in fm.spec.layers] == ["conv", "unary", "conv", "unary", "flatten", "dense"]
    with torch.no_grad():
        want = net(x).numpy()
        assert float(net[0](x).abs().max()) > 1.5  # the hard tanh clips
    assert np.abs(_float_outputs(fm, x) - want).max() < 1e-5
    graph = quantize(fm.spec, fm.model, calib.numpy())
    for op, (lo, hi) in zip((graph.ops[1], graph.ops[3]), ((-1.0, 1.0), (0.25, None))):
        real = (op.tensors["table"].astype(float) - op.out_q.zero_point) * op.out_q.scale
        assert real.min() >= lo - op.out_q.scale and (hi is None or real.max() <= hi + op.out_q.scale)


class Clamp(nn.Module):
    def __init__(self, lo: float) -> None:
        super().__init__()
        self.lo = lo

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, min=self.lo)


def test_a_concatenation_along_the_width_is_refused(tmp_path: Path) -> None:
    class WidthCat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return torch.cat([y, y], dim=3).flatten(1)

    for fmt in FORMATS:
        with pytest.raises(UserError, match="only along the channels"):
            import_float(_export(WidthCat().eval(), torch.zeros(1, 1, 8, 8), tmp_path, fmt))


def test_a_softmax_joined_by_a_concatenation_is_refused() -> None:
    spec = ArchSpec((4, 1, 1), 0, (Layer("softmax", (-1,)), Layer("concat", (0, -1))))
    x = np.random.default_rng(0).standard_normal((16, 4, 1, 1)).astype(np.float32)
    with pytest.raises(UserError, match="layer 0: a softmax output joined by a concatenation is not supported"):
        quantize(spec, SpecNet(spec).eval(), x)


def test_cap_round_trips_through_json_and_is_validated() -> None:
    spec = ArchSpec((1, 4, 4), 0, (Layer("conv", (-1,), channels=2, relu=True, cap=6.0),))
    assert ArchSpec.from_dict(spec.to_dict()) == spec and ArchSpec.from_dict(spec.to_dict()).layers[0].cap == 6.0
    data = spec.to_dict()
    for bad in (0, -1.0, "6", True):
        data["layers"][0]["cap"] = bad
        with pytest.raises(ValueError, match="layer 0: cap must be a positive number or null"):
            ArchSpec.from_dict(data)
    with pytest.raises(ValueError, match="cap must be positive"):
        ArchSpec((1, 4, 4), 0, (Layer("conv", (-1,), channels=2, cap=-1.0),))


@pytest.mark.parametrize("fmt", FORMATS)
def test_sigmoid_and_tanh_become_tflite_lookups(fmt: str, tmp_path: Path) -> None:
    net, calib, x = _net(Squashed), _inputs(300, 6), _inputs(100, 7)
    fm = import_float(_export(net, calib, tmp_path, fmt))
    assert [layer.op for layer in fm.spec.layers] == ["conv", "tanh", "gap", "dense", "sigmoid"]
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(_float_outputs(fm, x) - want).max() < 1e-5
    graph = quantize(fm.spec, fm.model, calib.numpy())
    tanh, sigmoid = graph.ops[1], graph.ops[4]
    assert tanh.op == sigmoid.op == "lut"
    assert (tanh.out_q.scale, tanh.out_q.zero_point) == (1 / 128, 0)  # TFLite's fixed int8 quantizations
    assert (sigmoid.out_q.scale, sigmoid.out_q.zero_point) == (1 / 256, -128)
    for op, table in ((tanh, tanh_table), (sigmoid, logistic_table)):
        q = op.in_q[0]
        np.testing.assert_array_equal(op.tensors["table"], table(q.scale, q.zero_point))
    got, scale = _int8_outputs(fm, calib, x)
    assert np.abs(got - want).max() < 0.03  # the output is a probability in steps of 1/256


ACTIVATIONS = {"hardswish": F.hardswish, "silu": F.silu, "leaky_relu": lambda x: F.leaky_relu(x, 0.1), "mish": F.mish,
               "gelu": F.gelu}


class Activated(nn.Module):
    def __init__(self, act: str) -> None:
        super().__init__()
        self.act, self.conv, self.fc = ACTIVATIONS[act], nn.Conv2d(1, 8, 3), nn.Linear(8, 3)
        with torch.no_grad():
            self.conv.weight.mul_(2.0)  # pre-activations over about -4..4: every activation's bend is in range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.conv(x)).mean((2, 3)))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_an_elementwise_chain_becomes_one_lookup_table(act: str, fmt: str, tmp_path: Path) -> None:
    """TVM spells these activations as chains of elementwise ops; each imports as one unary layer, and its int8
    table holds the activation itself (torch's own function) at each of the 256 input values."""
    torch.manual_seed(0)
    net, calib, x = Activated(act).eval(), _inputs(300, 9) / 2, _inputs(100, 10) / 2
    fm = import_float(_export(net, calib, tmp_path, fmt))
    assert [layer.op for layer in fm.spec.layers] == ["conv", "unary", "gap", "dense"]
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(_float_outputs(fm, x) - want).max() < 1e-5
    graph = quantize(fm.spec, fm.model, calib.numpy())
    lut = graph.ops[1]
    qi, qo = lut.in_q[0], lut.out_q
    real = torch.tensor((np.arange(-128, 128) - qi.zero_point) * qi.scale, dtype=torch.float32)
    expected = np.clip(np.round(ACTIVATIONS[act](real).double().numpy() / qo.scale) + qo.zero_point, -128, 127)
    diff = np.abs(lut.tensors["table"].astype(np.int64) - expected)
    assert lut.op == "lut" and diff.max() <= 1 and (diff > 0).sum() <= 2  # float32 rounding at a half step at most
    got, scale = _int8_outputs(fm, calib, x)
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max() + 4 * scale


class Grouped(nn.Module):
    """A grouped convolution (ResNeXt / ShuffleNet style) and a depthwise one with channel multiplier 2."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.grouped = nn.Conv2d(8, 12, 3, padding=1, groups=4)
        self.multiplied = nn.Conv2d(12, 24, 3, stride=2, padding=1, groups=12)
        self.fc = nn.Linear(24, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.grouped(F.relu(self.bn(self.stem(x)))))
        return self.fc(F.relu(self.multiplied(x)).mean((2, 3)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_grouped_convolutions_run_as_block_diagonal_full_ones(fmt: str, tmp_path: Path) -> None:
    net, calib, x = _net(Grouped), _inputs(300, 11), _inputs(100, 12)
    fm = import_float(_export(net, calib, tmp_path, fmt))
    layers = fm.spec.layers
    assert [layer.op for layer in layers] == ["conv", "conv", "conv", "gap", "dense"]
    assert (layers[1].channels, layers[2].channels, layers[2].stride) == (12, 24, (2, 2))
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(_float_outputs(fm, x) - want).max() < 1e-5
    graph = quantize(fm.spec, fm.model, calib.numpy())
    weight = graph.ops[1].tensors["weight"]  # (O, KH, KW, I): output channel o reads only group o // 3's inputs
    for o in range(12):
        outside = np.delete(weight[o], np.s_[2 * (o // 3) : 2 * (o // 3) + 2], axis=-1)
        assert not outside.any()
    got, scale = _int8_outputs(fm, calib, x)
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max() + 4 * scale


class SqueezeExcite(nn.Module):
    """MobileNetV3's block: hard swish, a squeeze-and-excitation gate (global pool, two dense layers, hard sigmoid)
    multiplying the features per channel."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.squeeze, self.excite = nn.Linear(16, 4), nn.Linear(4, 16)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.hardswish(self.bn(self.conv(x)))
        gate = F.hardsigmoid(self.excite(F.relu(self.squeeze(y.mean((2, 3))))))
        return self.fc((y * gate[:, :, None, None]).mean((2, 3)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_squeeze_and_excitation_gate_is_a_per_channel_product(fmt: str, tmp_path: Path) -> None:
    net, calib, x = _net(SqueezeExcite), _inputs(300, 14), _inputs(100, 15)
    fm = import_float(_export(net, calib, tmp_path, fmt))
    ops = [layer.op for layer in fm.spec.layers]
    assert ops == ["conv", "unary", "gap", "dense", "dense", "mul", "gap", "dense"], ops
    assert fm.spec.layers[5].inputs == (1, 4) and fm.spec.layers[4].cap == 1.0  # the hard sigmoid folds
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(_float_outputs(fm, x) - want).max() < 1e-5
    got, scale = _int8_outputs(fm, calib, x)
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max() + 4 * scale


def test_the_int8_product_is_the_requantized_product_of_its_inputs() -> None:
    """A same-shape product and a per-channel one: every output equals the product of the dequantized inputs
    requantized, to one output step."""
    for second in ((3, 4, 5), (3, 1, 1)):
        spec = ArchSpec((3, 4, 5), 0, (Layer("conv", (-1,), channels=3, kernel=(1, 1)),
                                       Layer("gap" if second[1] == 1 else "conv", (-1,), channels=3),
                                       Layer("mul", (0, 1))))
        model = SpecNet(spec).eval()
        x = np.random.default_rng(1).standard_normal((64, 3, 4, 5)).astype(np.float32)
        graph = quantize(spec, model, x)
        outs = reference.run_layers(graph, graph.quantize_input(x))
        (qa, qb, qo) = (graph.ops[i].out_q for i in range(3))
        a, b = ((outs[k].astype(float) - q.zero_point) * q.scale for k, q in ((0, qa), (1, qb)))
        real = a * b
        want = np.clip(np.round(real / qo.scale) + qo.zero_point, -128, 127)
        assert np.abs(outs[2] - want).max() <= 1


def test_a_product_of_incompatible_shapes_is_refused(tmp_path: Path) -> None:
    """Spatial attention multiplies by a one-channel map: neither the same shape nor per-channel factors."""
    class Spatial(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.att = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return (y * torch.sigmoid(self.att(y))).flatten(1)

    with pytest.raises(UserError, match="only same-shape products and per-channel gates"):
        import_float(_export(Spatial().eval(), torch.zeros(1, 1, 8, 8), tmp_path, "torch"))


def test_an_activation_on_a_fixed_quantization_op_is_refused() -> None:
    spec = ArchSpec((4, 1, 1), 0, (Layer("sigmoid", (-1,), relu=True),))
    x = np.random.default_rng(0).standard_normal((16, 4, 1, 1)).astype(np.float32)
    with pytest.raises(UserError, match="layer 0: sigmoid with an activation is not supported"):
        quantize(spec, SpecNet(spec).eval(), x)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cortex-m4", "fpga"])
def test_a_network_with_every_new_op_builds_bit_exact(target: str, tmp_path: Path) -> None:
    """`tinycompile build model.pt2 --calib` as a user runs it: on the MCU every layer compiled by TVM, on the
    accelerator the convolutions (ReLU6 clamps in its post-processing) and the rest on the host, bit-exact."""
    from support import run_cli

    net, calib = _net(Mixed), _inputs(200, 8)
    path = _export(net, calib, tmp_path, "torch")
    np.savez(tmp_path / "calib.npz", x=calib.numpy())
    proc = run_cli("build", str(path), "--target", target, "--calib", str(tmp_path / "calib.npz"),
                   "-o", str(tmp_path / "out"), "--vectors", "16")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["bit_exact"] and report["verdict"] == "pass"
    assert report["float_vs_int8"]["samples"] == 40


class ShuffleUnit(nn.Module):
    """ShuffleNet's and YOLO's ways of moving channels and pixels: a grouped 1x1 conv, a channel shuffle, a channel
    split with one half passed on (ShuffleNetV2), space-to-depth by strided slices (YOLOv5's Focus), a channel
    gather in reverse order, a crop."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.grouped = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 8, 1, groups=2)
        self.dw, self.bn, self.pw = nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1)
        self.focus = nn.Conv2d(32, 12, 1)
        self.fc = nn.Linear(10 * 2 * 3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _shuffle(F.relu(self.grouped(F.relu(self.stem(x)))), 2)
        kept, changed = x.split([4, 4], dim=1)
        x = torch.cat([kept, F.relu(self.pw(self.bn(self.dw(changed))))], dim=1)
        x = torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], dim=1)
        x = F.relu(self.focus(x)).flip(1)[:, 2:, 1:3, :3]
        return self.fc(x.index_select(1, torch.tensor([9, 0, 1, 2, 3, 4, 5, 6, 7, 8])).flatten(1))


@pytest.mark.parametrize("fmt", FORMATS)
def test_slices_splits_and_shuffles_are_slice_layers(fmt: str, tmp_path: Path) -> None:
    net, calib, x = _net(ShuffleUnit), _inputs(300, 20), _inputs(100, 21)
    fm = import_float(_export(net, calib, tmp_path, fmt))
    ops = [layer.op for layer in fm.spec.layers]
    # A slice of a slice is one slice of the first's input (torch slices one axis at a time, ONNX both at once and
    # shares a half-done one): the two halves of the shuffled channels, four Focus slices, the flip, crop and gather.
    assert ops.count("slice") == 7 and ops.count("concat") == 2
    halves = [layer for layer in fm.spec.layers if layer.op == "slice"][:2]
    assert [layer.select for layer in halves] == [(0, 4, 1, 5), (2, 6, 3, 7)] and halves[0].inputs == halves[1].inputs
    focus = [layer for layer in fm.spec.layers if layer.op == "slice" and layer.stride == (2, 2)]
    assert [layer.padding for layer in focus] == [(0, 1, 0, 1), (1, 0, 0, 1), (0, 1, 1, 0), (1, 0, 1, 0)]
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(_float_outputs(fm, x) - want).max() < 1e-5
    graph = quantize(fm.spec, fm.model, calib.numpy())
    for op in graph.ops:
        if op.op == "slice":  # a copy of int8 values: the input's quantization
            assert op.out_q == graph.ops[op.inputs[0]].out_q
    got, scale = _int8_outputs(fm, calib, x)
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max() + 4 * scale


class Pools(nn.Module):
    """Pools whose windows leave the input, as torch and ONNX write them: a padded max pool of values below zero, a
    ceil-mode max pool, an average that skips its padded taps (ONNX's default), a ceil-mode average, an adaptive max
    (to one pixel: a global max)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.mid, self.fc = nn.Conv2d(1, 6, 3), nn.Conv2d(6, 6, 1), nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.stem(x), 3, 2, padding=1)  # 6 x 6 -> 3 x 3, no ReLU before: negative values
        x = F.max_pool2d(self.mid(F.avg_pool2d(x, 3, 1, padding=1, count_include_pad=False)), 2, 2, ceil_mode=True)
        x = torch.cat([F.avg_pool2d(x, 3, 2, ceil_mode=True), F.adaptive_max_pool2d(x, 1)], 1)
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_max_over_the_map_is_a_max_pool(fmt: str, tmp_path: Path) -> None:
    """``x.amax((2, 3))`` (ONNX: ReduceMax), which TVM's PyTorch frontend lacks, and an adaptive max to 2 x 2."""

    class Maxes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.Linear(4 + 16, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.fc(torch.cat([y.amax((2, 3)), F.adaptive_max_pool2d(y, 2).flatten(1)], 1))

    net, x = _net(Maxes), _inputs(50, 32)
    fm = import_float(_export(net, x, tmp_path, fmt))
    pools = [(layer.kernel, layer.stride) for layer in fm.spec.layers if layer.op == "maxpool"]
    assert sorted(pools) == [((4, 4), (4, 4)), ((8, 8), (1, 1))]  # the adaptive one: windows of 4 x 4 at a stride of 4
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(_float_outputs(fm, x) - want).max() < 1e-5


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_adaptive_average_to_sizes_dividing_the_map_is_an_average_pool(fmt: str, tmp_path: Path) -> None:
    class Adaptive(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.Linear(4 * 2 * 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(F.adaptive_avg_pool2d(F.relu(self.conv(x)), (2, 4)).flatten(1))

    net, x = _net(Adaptive), _inputs(50, 33)
    fm = import_float(_export(net, x, tmp_path, fmt))
    pool = next(layer for layer in fm.spec.layers if layer.op == "avgpool")
    assert (pool.kernel, pool.stride) == ((4, 2), (4, 2))  # 8 x 8 to 2 x 4: windows of 4 x 2
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(_float_outputs(fm, x) - want).max() < 1e-5


def test_an_adaptive_average_to_sizes_not_dividing_the_map_is_refused(tmp_path: Path) -> None:
    class Uneven(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.adaptive_avg_pool2d(self.conv(x), 3).flatten(1)

    with pytest.raises(UserError, match="adaptive average pooling of 8x8 to 3x3 is not supported: only to sizes that "
                                        "divide the map"):
        import_float(_export(Uneven().eval(), _inputs(4, 34), tmp_path, "torch"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_pools_that_leave_the_input_ignore_the_taps_outside(fmt: str, tmp_path: Path) -> None:
    net, calib, x = _net(Pools), _inputs(300, 22), _inputs(100, 23)
    fm = import_float(_export(net, calib, tmp_path, fmt))
    pools = [(layer.op, layer.kernel, layer.padding) for layer in fm.spec.layers if "pool" in layer.op]
    assert pools == [("maxpool", (3, 3), (1, 1, 1, 1)), ("avgpool", (3, 3), (1, 1, 1, 1)),
                     ("maxpool", (2, 2), (0, 1, 0, 1)), ("avgpool", (3, 3), (0, 1, 0, 1)),
                     ("maxpool", (2, 2), (0, 0, 0, 0))]  # the ceil modes pad the end; the adaptive max is a pool
    with torch.no_grad():
        want = net(x).numpy()
        assert float(net.stem(x).min()) < -0.5  # the padded max pool's taps at -inf matter
    assert np.abs(_float_outputs(fm, x) - want).max() < 1e-5
    graph = quantize(fm.spec, fm.model, calib.numpy())
    for op in (op for op in graph.ops if op.op == "avgpool"):  # a multiplier for each count of taps inside
        counts = semantics.window_counts(op.in_shapes[0][:2], op.out_shape[:2], op.kernel, op.stride, op.padding)
        assert op.tensors["multiplier"].size == counts.size and counts.min() < 9
        for count in np.unique(counts):
            assert len(set(op.tensors["multiplier"][counts.reshape(-1) == count])) == 1
    got, scale = _int8_outputs(fm, calib, x)
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max() + 4 * scale


class PReLUs(nn.Module):
    """PReLU with a slope per channel (two 1x1 depthwise layers and their sum) and with one slope (a table)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.mid, self.fc = nn.Conv2d(1, 6, 3), nn.Conv2d(6, 6, 3), nn.Linear(6, 4)
        self.per_channel, self.shared = nn.PReLU(6), nn.PReLU()
        with torch.no_grad():
            self.per_channel.weight.copy_(torch.tensor([0.25, -0.3, 0.0, 0.9, 0.5, 1.0]))  # negative, zero, one

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.shared(self.mid(self.per_channel(self.stem(x)))).mean((2, 3)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_prelu_is_a_sum_of_depthwise_layers_or_a_table(fmt: str, tmp_path: Path) -> None:
    net, calib, x = _net(PReLUs), _inputs(300, 24), _inputs(100, 25)
    fm = import_float(_export(net, calib, tmp_path, fmt))
    assert [layer.op for layer in fm.spec.layers] == ["conv", "dwconv", "dwconv", "add", "conv", "unary", "gap",
                                                      "dense"]
    assert [layer.relu for layer in fm.spec.layers[1:3]] == [False, True]
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(_float_outputs(fm, x) - want).max() < 1e-5
    got, scale = _int8_outputs(fm, calib, x)
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max() + 4 * scale


def test_prelu_slopes_above_one_and_other_selects_are_refused(tmp_path: Path) -> None:
    net, x = _net(PReLUs), _inputs(8, 26)
    with torch.no_grad():
        net.per_channel.weight[0] = 1.5
    with pytest.raises(UserError, match=r"a PReLU slope above 1 \(1.5\) is not supported"):
        import_float(_export(net, x, tmp_path, "torch"))

    class Select(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return torch.where(y > 0, y, torch.sigmoid(y) * 2.0 + x[:, :, :6, :6]).flatten(1)

    with pytest.raises(UserError, match=r"op relax\.(greater|where) is (not )?supported"):  # one line, the op named
        import_float(_export(Select().eval(), x, tmp_path, "torch"))


class LogSoftmaxNet(nn.Module):
    """PyTorch's MNIST example in small: convolutions, a max pool, two dense layers, log_softmax (for NLLLoss)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.f1, self.f2 = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 8, 3), nn.Linear(8 * 2 * 2, 16), nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.c2(F.relu(self.c1(x)))), 2).flatten(1)
        return F.log_softmax(12.0 * self.f2(F.relu(self.f1(x))), dim=1)  # confident: a long tail


@pytest.mark.parametrize("fmt", FORMATS)
def test_log_softmax_is_a_softmax_then_a_log_table(fmt: str, tmp_path: Path) -> None:
    net, calib, x = _net(LogSoftmaxNet), _inputs(300, 29), _inputs(100, 30)
    fm = import_float(_export(net, calib, tmp_path, fmt))
    assert [layer.op for layer in fm.spec.layers][-2:] == ["softmax", "unary"]
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(_float_outputs(fm, x) - want).max() < 1e-4
    got, scale = _int8_outputs(fm, calib, x)
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.95
    likely = want > np.log(1 / 64)  # the classes with probability above 1/64: the softmax's 1/256 step resolves them
    assert likely.any() and (~likely).any() and np.abs(got - want)[likely].max() < 0.35


class SequenceLinear(nn.Module):
    """Linear layers applied at every step of a ``(batch, steps, features)`` sequence, averaged over the steps."""

    def __init__(self) -> None:
        super().__init__()
        self.f1, self.f2 = nn.Linear(6, 12), nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f2(F.relu(self.f1(x))).mean(1)


def test_a_linear_over_a_sequence_is_a_pointwise_convolution(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = SequenceLinear().eval()
    calib = torch.randn(200, 10, 6, generator=torch.Generator().manual_seed(31))
    x = calib[:50]  # inside the calibrated ranges (the means over 10 steps of fresh noise have tails beyond them)
    fm = import_float(_export(net, calib, tmp_path, "onnx"))
    assert fm.layout == "NHWC" and [layer.op for layer in fm.spec.layers] == ["conv", "conv", "gap"]
    with torch.no_grad():
        want = net(x).numpy()
        got = fm.model(torch.from_numpy(to_nchw(x.numpy(), fm.layout))).numpy().reshape(want.shape)
    assert np.abs(got - want).max() < 1e-5
    graph = quantize(fm.spec, fm.model, to_nchw(calib.numpy(), fm.layout))
    q = graph.ops[-1].out_q
    out = reference.run(graph, graph.quantize_input(to_nchw(x.numpy(), fm.layout))).reshape(want.shape)
    assert np.abs((out.astype(np.float64) - q.zero_point) * q.scale - want).max() < 0.05 * np.abs(want).max() + 4 * q.scale
    # torch.export writes the same Linear as a reshape that merges the batch with the steps: refused, with the way out
    with pytest.raises(UserError, match="changes the batch axis; torch.export writes a Linear over a sequence so"):
        import_float(_export(net, calib, tmp_path, "torch"))


def test_a_split_channel_view_read_otherwise_is_refused(tmp_path: Path) -> None:
    class GroupMean(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return y.view(1, 2, 4, 8, 8).permute(0, 1, 2, 4, 3).reshape(1, 8, 8, 8)

    with pytest.raises(UserError, match=r"a transpose \[0, 1, 2, 4, 3\] of a tensor whose channels a reshape split"):
        import_float(_export(GroupMean().eval(), _inputs(8, 22), tmp_path, "onnx"))


class Decoder(nn.Module):
    """Nearest-neighbour upsampling between convolutions (an autoencoder's decoder), by 2 and by (1, 3)."""

    def __init__(self, mode: str = "nearest") -> None:
        super().__init__()
        self.down, self.mid, self.out = nn.Conv2d(1, 6, 3, stride=2, padding=1), nn.Conv2d(6, 4, 3, padding=1), nn.Conv2d(4, 2, 1)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.interpolate(torch.relu(self.down(x)), scale_factor=2, mode=self.mode)
        return self.out(nn.functional.interpolate(self.mid(y), scale_factor=(1, 3), mode="nearest"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_nearest_upsampling_is_an_upsample_layer(fmt: str, tmp_path: Path) -> None:
    net, calib, x = _net(Decoder), _inputs(300, 13), _inputs(100, 14)
    fm = import_float(_export(net, calib, tmp_path, fmt))
    assert [(layer.op, layer.stride) for layer in fm.spec.layers if layer.op == "upsample"] == [("upsample", (2, 2)),
                                                                                               ("upsample", (1, 3))]
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(_float_outputs(fm, x).reshape(want.shape) - want).max() < 1e-5
    got, scale = _int8_outputs(fm, calib, x)
    graph = quantize(fm.spec, fm.model, calib.numpy())
    assert graph.ops[1].op == "upsample" and graph.ops[1].out_q == graph.ops[0].out_q  # a copy keeps the quantization
    nhwc = want.transpose(0, 2, 3, 1).reshape(len(x), -1)  # the int8 graph's layout
    assert np.abs(got - nhwc).max() < 0.05 * np.abs(want).max() + 4 * scale
    # a map, not class scores: the report gives the int8 output's error, not a top-1 agreement
    agree = agreement(fm, graph, x.numpy())
    assert "agreement" not in agree and 0 < agree["mean_error"] < agree["max_error"] < 0.05 + 4 * scale / np.abs(want).max()


def test_bilinear_resizing_is_refused(tmp_path: Path) -> None:
    net, calib = Decoder("bilinear").eval(), _inputs(8, 15)
    with pytest.raises(UserError, match=r"a linear resize .* is not supported: only nearest-neighbour upsampling by whole factors"):
        import_float(_export(net, calib, tmp_path, "onnx"))


class Dilated(nn.Module):
    """A dilated 2-D convolution, then dilated 1-D convolutions along the width (a temporal convolutional network's)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=2, dilation=2)
        self.tcn1, self.tcn2 = nn.Conv2d(4, 6, (1, 3), dilation=(1, 2)), nn.Conv2d(6, 6, (1, 2), dilation=(1, 3))
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.tcn2(torch.relu(self.tcn1(torch.relu(self.conv(x))))))
        return self.head(y.mean((2, 3)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_dilated_convolutions_are_kernels_with_zeros(fmt: str, tmp_path: Path) -> None:
    net, calib, x = _net(Dilated), _inputs(300, 16), _inputs(100, 17)
    fm = import_float(_export(net, calib, tmp_path, fmt))
    assert [layer.kernel for layer in fm.spec.layers[:3]] == [(5, 5), (1, 5), (1, 4)]
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(_float_outputs(fm, x) - want).max() < 1e-5
    got, scale = _int8_outputs(fm, calib, x)
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max() + 4 * scale


class Transposed(nn.Module):
    """An autoencoder's decoder: transposed convolutions with stride, padding, output padding and dilation."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(1, 6, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1)
        self.wide = nn.ConvTranspose2d(4, 2, (1, 3), stride=(1, 2), dilation=(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.wide(torch.relu(self.up(torch.relu(self.down(x)))))


@pytest.mark.parametrize("fmt", FORMATS)
def test_transposed_convolutions_are_spread_then_convolved(fmt: str, tmp_path: Path) -> None:
    net, calib, x = _net(Transposed), _inputs(300, 18), _inputs(100, 19)
    fm = import_float(_export(net, calib, tmp_path, fmt))
    assert [layer.op for layer in fm.spec.layers] == ["conv", "spread", "conv", "spread", "conv"]
    assert fm.spec.layers[3].stride == (1, 2) and fm.spec.layers[4].kernel == (1, 5)  # the dilated kernel spread out
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(_float_outputs(fm, x).reshape(want.shape) - want).max() < 1e-5
    got, scale = _int8_outputs(fm, calib, x)
    nhwc = want.transpose(0, 2, 3, 1).reshape(len(x), -1)
    assert np.abs(got - nhwc).max() < 0.05 * np.abs(want).max() + 4 * scale

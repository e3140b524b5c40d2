"""ArchSpec: shapes, counts and serialisation agree with the torch model built from it."""

from __future__ import annotations

import pytest
import torch

from tinycompile.arch import ArchSpec, Layer, same_padding
from tinycompile.model import SpecNet, folded_weights


def residual_1d() -> ArchSpec:
    return ArchSpec(
        (2, 1, 21),
        5,
        (
            Layer("conv", (-1,), channels=8, kernel=(1, 5), stride=(1, 2), padding=(0, 0, *same_padding(21, 5, 2)), relu=True),
            Layer("dwconv", (0,), kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
            Layer("conv", (1,), channels=8, kernel=(1, 1)),
            Layer("add", (0, 2), relu=True),
            Layer("avgpool", (3,), kernel=(1, 2), stride=(1, 2)),
            Layer("flatten", (4,)),
            Layer("dense", (5,), channels=5),
        ),
    )


def test_shapes_match_torch_and_counts_are_exact() -> None:
    spec = residual_1d()
    assert spec.shapes() == [(8, 1, 11), (8, 1, 11), (8, 1, 11), (8, 1, 11), (8, 1, 5), (40, 1, 1), (5, 1, 1)]
    model = SpecNet(spec)
    assert model(torch.randn(3, 2, 1, 21)).shape == (3, 5)
    # conv 8*11*2*5, dw 8*11*3, pw 8*11*8, add 88, pool 8*5*2, dense 40*5
    assert spec.macs() == [880, 264, 704, 88, 80, 0, 200]
    folded = [w for w in folded_weights(model) if w is not None]
    assert spec.params() == sum(w.size + b.size for w, b in folded)


def test_folded_weights_reproduce_the_trained_network() -> None:
    spec = residual_1d()
    model = SpecNet(spec)
    for module in model.modules():  # give batch norm non-trivial statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
    model.eval()
    x = torch.randn(4, 2, 1, 21)
    w0, b0 = folded_weights(model)[0]
    conv0 = torch.nn.functional.conv2d(model.ops[0][0](x), torch.from_numpy(w0), torch.from_numpy(b0), stride=(1, 2))
    assert torch.allclose(conv0, model.ops[0](x), atol=1e-5)


def test_json_round_trip(tmp_path) -> None:
    spec = residual_1d()
    spec.save(tmp_path / "spec.json")
    assert ArchSpec.load(tmp_path / "spec.json") == spec


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ((Layer("dense", (-1,), channels=3),), "needs a flat"),
        ((Layer("conv", (-1,), channels=3, kernel=(1, 50)), Layer("flatten", (0,))), "does not fit"),
        ((Layer("flatten", (-1,)), Layer("add", (0, -1))), "input shapes must match"),
        ((Layer("flatten", (-1,)), Layer("dense", (5,), channels=3)), "must name earlier layers"),
        ((Layer("flatten", (-1,)), Layer("dense", (0,), channels=4)), "must give (3, 1, 1) logits"),
        ((Layer("avgpool", (-1,), kernel=(1, 3), stride=(1, 1), padding=(0, 0, 3, 1)), Layer("gap", (0,))),
         "layer 0 (avgpool): a pool's padding (0, 0, 3, 1) must be less than its kernel (1, 3) on each side"),
    ],
)
def test_inconsistent_graphs_are_refused_with_the_layer_named(layers, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ArchSpec((1, 1, 20), 3, layers)

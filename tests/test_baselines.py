"""The DS-CNN baseline: MLPerf Tiny's shape on the keyword task's MFCCs, adapted to other inputs, and it fits the
keyword benchmark's cortex-m4 budget."""

from __future__ import annotations

import pytest
import torch

from tinycompile.baselines import ds_cnn, widest_ds_cnn
from tinycompile.cost.model import estimate
from tinycompile.model import SpecNet
from tinycompile.targets import load_target


def test_ds_cnn_on_mfccs_has_mlperf_tinys_layers() -> None:
    spec = ds_cnn((1, 49, 10), 12)
    ops = [layer.op for layer in spec.layers]
    assert ops == ["conv"] + ["dwconv", "conv"] * 4 + ["gap", "flatten", "dense"]
    stem = spec.layers[0]
    assert (stem.kernel, stem.stride, stem.channels) == ((10, 4), (2, 2), 64)
    shapes = spec.shapes()
    assert shapes[0] == (64, 25, 5)  # SAME at stride 2: ceil(49 / 2) x ceil(10 / 2)
    assert all(shape == (64, 25, 5) for shape in shapes[1:9])
    assert shapes[-1] == (12, 1, 1)
    # every weight of the network counted once: stem, 4 blocks (3x3 depthwise, 1x1 pointwise), classifier
    assert spec.params() == (10 * 4 * 64 + 64) + 4 * (9 * 64 + 64 + 64 * 64 + 64) + (64 * 12 + 12)


def test_ds_cnn_fits_the_keyword_budget_on_cortex_m4() -> None:
    cost = estimate(ds_cnn((1, 49, 10), 12), load_target("cortex-m4"))
    assert cost.peak_sram <= 64 * 1024 and cost.flash <= 256 * 1024


def test_ds_cnn_adapts_to_a_small_input_and_runs_in_torch() -> None:
    spec = ds_cnn((2, 8, 3), 5, channels=8, blocks=2)
    assert spec.layers[0].kernel == (8, 3)  # the stem never reads padding alone
    model = SpecNet(spec).eval()
    with torch.no_grad():
        out = model(torch.zeros(3, 2, 8, 3))
    assert out.shape == (3, 5)
    assert [s[1:] for s in spec.shapes()[:5]] == [(4, 2)] * 5


@pytest.mark.parametrize("args", [(0, 4, 12), (8, -1, 12), (8, 4, 1)])
def test_ds_cnn_refuses_impossible_shapes(args: tuple[int, int, int]) -> None:
    channels, blocks, classes = args
    with pytest.raises(ValueError, match="ds_cnn needs"):
        ds_cnn((1, 49, 10), classes, channels=channels, blocks=blocks)


def test_the_widest_ds_cnn_within_a_cap_is_the_last_that_fits() -> None:
    cap = 500_000
    spec = widest_ds_cnn((1, 49, 10), 12, cap)
    width = spec.layers[0].channels
    assert sum(spec.macs()) <= cap < sum(ds_cnn((1, 49, 10), 12, channels=width + 1).macs())
    assert widest_ds_cnn((1, 49, 10), 12, cap, max_channels=8).layers[0].channels == 8  # capped in width too
    assert widest_ds_cnn((1, 49, 10), 12, 10) is None  # not even one channel fits

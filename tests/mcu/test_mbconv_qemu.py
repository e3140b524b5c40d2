"""A sampled MBConv network (mbconv2d: expansion, a large depthwise kernel, a residual add, a stride of 2, on images
resized to the chosen resolution) builds bit-exact for cortex-m4 on QEMU, its task resized again by `build`."""

from __future__ import annotations

from pathlib import Path

import pytest

from nets import mbconv_trial
from tinycompile.backends.flow import build_trial
from tinycompile.targets import load_target
from tinycompile.trial import load_trial


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_sampled_mbconv_network_is_bit_exact_on_cortex_m4(tmp_path: Path) -> None:
    trial = mbconv_trial(tmp_path / "trial")
    side = load_trial(trial)[0].meta["resolution"]
    report = build_trial(trial, load_target("cortex-m4"), tmp_path / "build", vectors=16)
    assert report["bit_exact"] is True and report["inputs"] == 16
    assert report["graph"]["input_shape"] == [side, side, 1]  # HWC, as the library reads it
    assert {"conv", "dwconv", "add", "gap", "dense"} <= {layer["op"] for layer in report["layers"]}
    assert report["graph"]["source"]["int8_test_accuracy"] > 0.5  # on the test split resized as in training

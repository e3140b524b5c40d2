"""The sampled MBConv network of tests/mcu/test_mbconv_qemu.py builds bit-exact on the accelerator too (N = 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nets import mbconv_trial
from tinycompile.backends.flow import build_trial
from tinycompile.targets import Target
from tinycompile.trial import load_trial


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_sampled_mbconv_network_is_bit_exact_on_the_accelerator(fpga_target: Target, tmp_path: Path) -> None:
    trial = mbconv_trial(tmp_path / "trial")
    side = load_trial(trial)[0].meta["resolution"]
    report = build_trial(trial, fpga_target, tmp_path / "build", {"array": 8}, 16)
    assert report["bit_exact"] is True and report["inputs"] == 16 and report["mismatched_layer_outputs"] == 0
    assert report["graph"]["input_shape"] == [side, side, 1]

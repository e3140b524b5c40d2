"""Helpers of the FPGA back-end tests (a uniquely named module: several conftest.py files share one test run)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from tinycompile.arch import ArchSpec
from tinycompile.model import SpecNet
from tinycompile.quant.graph import QuantGraph
from tinycompile.quant.quantize import quantize
from tinycompile.targets import Target

from nets import SPECS  # noqa: F401  (re-exported for the fpga tests)

INPUTS = 16
EPOCHS = {"mnist1d": 2, "digits": 2}  # seconds, not minutes: bit-exactness does not need accuracy


def target_with_array(target: Target, n: int) -> Target:
    """The same target with another array size (what ``--array`` does)."""
    return replace(target, accelerator={**target.accelerator, "array": n, "bus_bytes_per_cycle": n})


def random_graph(spec: ArchSpec, seed: int = 0) -> QuantGraph:
    """A QuantGraph of ``spec`` with random weights and random calibration data (shapes are what matter)."""
    torch.manual_seed(seed)
    model = SpecNet(spec)
    model.eval()
    calib = np.random.default_rng(seed).standard_normal((32, *spec.input_shape)).astype(np.float32)
    return quantize(spec, model, calib)

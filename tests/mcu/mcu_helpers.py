"""Helpers shared by the MCU tests (importable: pytest puts this folder on sys.path)."""

from __future__ import annotations

import torch

from tinycompile.arch import ArchSpec
from tinycompile.model import SpecNet


def random_model(spec: ArchSpec, seed: int) -> SpecNet:
    """An untrained model with random weights and non-trivial batch-norm statistics (for per-op tests)."""
    torch.manual_seed(seed)
    model = SpecNet(spec)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    model.eval()
    return model

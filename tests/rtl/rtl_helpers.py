"""Helpers for the RTL benches (random requantization parameters)."""

from __future__ import annotations

import numpy as np

from tinycompile.quant.intmath import quantize_multiplier


def requant_params(rng: np.random.Generator, c: int, lo: float = 0.0005, hi: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Random per-channel (multiplier, shift) from scales in [lo, hi)."""
    ms = [quantize_multiplier(s) for s in rng.uniform(lo, hi, c)]
    return np.array([m for m, _ in ms]), np.array([s for _, s in ms])

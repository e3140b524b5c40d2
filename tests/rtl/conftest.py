"""Fixtures of the RTL benches (helpers live in rtl_helpers.py: a plain module, since several conftest.py exist)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator, so every failure reproduces."""
    return np.random.default_rng(1234)

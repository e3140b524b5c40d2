"""Helpers of the FPGA back-end tests (a uniquely named module: several conftest.py files share one test run)."""

from __future__ import annotations

from dataclasses import replace

from tinycompile.targets import Target

from nets import SPECS, random_graph  # noqa: F401  (re-exported for the fpga tests)

INPUTS = 16
EPOCHS = {"mnist1d": 2, "digits": 2}  # seconds, not minutes: bit-exactness does not need accuracy


def target_with_array(target: Target, n: int) -> Target:
    """The same target with another array size (what ``--array`` does)."""
    return replace(target, accelerator={**target.accelerator, "array": n, "bus_bytes_per_cycle": n})

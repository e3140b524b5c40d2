"""Whole networks (MNIST-1D, digits) on all four MCU targets under QEMU: bit-exact against the integer reference."""

from __future__ import annotations

import numpy as np
import pytest

from tinycompile.arch import WEIGHTED_OPS
from tinycompile.cost.memory import choose
from tinycompile.cost.model import weight_bytes
from tinycompile.mcu.backend import build_and_run
from tinycompile.quant import reference
from tinycompile.targets import load_target

TARGETS = ("cortex-m4", "cortex-m7", "cortex-m55", "rv32imc")
CASES = [(t, task, "c") for t in TARGETS for task in ("mnist1d", "digits")] + [(t, "mnist1d", "llvm") for t in TARGETS]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("target,task,codegen", CASES)
def test_network_is_bit_exact_on_qemu(prepared, target, task, codegen, tmp_path) -> None:
    p = prepared[task]
    result = build_and_run(p.graph, p.spec, load_target(target), tmp_path, p.vectors, codegen, compiled=p.compiled)
    r = result.report
    assert r["vectors"] >= 16
    assert r["mismatched_vectors"] == 0 and result.ok
    with np.load(tmp_path / "io.npz") as io:  # what ran, as the target produced it, for any other oracle
        assert np.array_equal(io["inputs"], p.vectors) and np.array_equal(io["outputs"], reference.run(p.graph, p.vectors))
    # The built arena is the planner's figure, in the ELF too, and no bigger than all activations together.
    assert r["arena_bytes"] == r["arena_bytes_in_elf"] == choose(p.spec).size == r["arena_planned_bytes"]
    assert r["arena_ratio"] <= 1.0
    assert r["workspace_peak_bytes"] <= r["workspace_bytes"]
    measured = [row["measured_instructions"] for row in r["layers"] if row["op"] != "flatten"]
    assert all(m and m > 0 for m in measured)
    assert r["library_flash_bytes"] > r["weight_bytes"] > 0
    # The search's cost model predicts the constants as built (int16 packing on DSP cores included), counting the
    # requantization tables at their larger form: never below the build, at most 4 bytes per output channel above.
    predicted = sum(weight_bytes(p.spec, load_target(target)))
    channels = sum(shape[0] for layer, shape in zip(p.spec.layers, p.spec.shapes()) if layer.op in WEIGHTED_OPS)
    assert r["weight_bytes"] <= predicted <= r["weight_bytes"] + 4 * channels, (predicted, r["weight_bytes"])

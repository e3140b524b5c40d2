"""The calibrated cost model against QEMU on a held-out network (not among bench/calibrate_mcu.py's fitting set).

A regression in the kernels (slower or faster code) or in the ``cycles:`` / ``instructions:`` coefficients of
hw_targets/*.yaml shows up here as a prediction error beyond the bars.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from mcu_helpers import random_model

from tinycompile.arch import ArchSpec, Layer
from tinycompile.arch import WEIGHTED_OPS
from tinycompile.mcu.backend import build_and_run
from tinycompile.mcu.library import compile_graph
from tinycompile.quant.quantize import quantize
from tinycompile.targets import load_target

L = Layer
# Fixed and unlike the fitting set's draws: 12x12 input with two channels, a 5x5 stem, a depthwise-separable block
# with 40 channels (not a multiple of 16), a 3x3 conv, a residual add, max and global pools, a hidden dense layer.
HELD_OUT = ArchSpec(
    (2, 12, 12),
    6,
    (
        L("conv", (-1,), channels=20, kernel=(5, 5), padding=(2, 2, 2, 2), relu=True),
        L("maxpool", (0,), kernel=(2, 2), stride=(2, 2)),
        L("dwconv", (1,), kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
        L("conv", (2,), channels=40, kernel=(1, 1), relu=True),
        L("conv", (3,), channels=40, kernel=(3, 3), padding=(1, 1, 1, 1)),
        L("add", (4, 3), relu=True),
        L("gap", (5,)),
        L("dense", (6,), channels=24, relu=True),
        L("dense", (7,), channels=6),
    ),
    {"name": "calibration-held-out"},
)
TOTAL_BAR = 0.15  # the bar: the search's cost model within 15% of every network, this one included
LAYER_BAR = 0.25  # each weighted layer (its path: Helium, DSP dot products or the portable loop, is modelled)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", ["cortex-m4", "cortex-m7", "cortex-m55", "rv32imc"])
def test_cost_model_predicts_a_held_out_networks_instructions_and_cycles(tmp_path, name: str) -> None:
    """Both coefficient sets of each MCU target (bench/calibrate_mcu.py) on the held-out network: ``instructions:``
    against QEMU's count, ``cycles:`` (the search's latency) against the cycles estimated from QEMU's trace."""
    rng = np.random.default_rng(11)
    calib = rng.normal(0, 1, (64, *HELD_OUT.input_shape)).astype(np.float32)
    graph = quantize(HELD_OUT, random_model(HELD_OUT, 11), calib)
    vectors = graph.quantize_input(calib[:2])
    result = build_and_run(graph, HELD_OUT, load_target(name), tmp_path, vectors, "c", compiled=compile_graph(graph),
                           trace=True)
    r = result.report
    assert result.ok and r["estimated_cycles"], r["cycles_are"]
    assert r["compared"]["relative_error"].startswith(
        f"predicted_instructions (the cost model with hw_targets/{name}.yaml instructions:")
    errors = {"instructions": r["total_relative_error"], "cycles": r["cycles_relative_error"]}
    assert errors["instructions"] == pytest.approx((r["predicted_instructions"] - r["measured_instructions"])
                                                   / r["measured_instructions"])
    assert errors["cycles"] == pytest.approx((r["predicted_cycles"] - r["estimated_cycles"]) / r["estimated_cycles"])
    assert all(abs(e) <= TOTAL_BAR for e in errors.values()), (
        f"instructions: predicted {r['predicted_instructions']:,} vs measured {r['measured_instructions']:,.0f}; "
        f"cycles: predicted {r['predicted_cycles']:,} vs estimated {r['estimated_cycles']:,.0f}")
    for row in r["layers"]:
        if row["op"] in WEIGHTED_OPS:
            assert abs(row["relative_error"]) <= LAYER_BAR, row
            assert abs(row["cycles_relative_error"]) <= LAYER_BAR, row


SOC_TOTAL_BAR = 0.15  # the bar for the SoC core's cost model against its cycles


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_soc_cost_model_predicts_the_held_out_networks_cycles(tmp_path) -> None:
    """soc-vexriscv's cost model (fitted to its timing model's cycles, bench/calibrate_mcu.py --targets
    soc-vexriscv) on the held-out network: the total within 15% of the cycles the timing model estimates for the
    SoC link of the rv32imc library (itself within 1% of the RTL's for this network, bench/bench_soc.py --net
    held-out)."""
    from tinycompile.cost.model import estimate
    from tinycompile.soc.estimate import estimate_kernels, qemu_twin
    from tinycompile.soc.run import build_firmware

    rng = np.random.default_rng(11)
    calib = rng.normal(0, 1, (64, *HELD_OUT.input_shape)).astype(np.float32)
    graph = quantize(HELD_OUT, random_model(HELD_OUT, 11), calib)
    vectors = graph.quantize_input(calib[:2])
    compiled = compile_graph(graph)
    soc = load_target("soc-vexriscv")
    qemu = qemu_twin(soc)
    run = build_and_run(graph, HELD_OUT, qemu, tmp_path / "qemu", vectors, "c", compiled=compiled)
    lib, elf = build_firmware(graph, HELD_OUT, soc, tmp_path / "soc", vectors, compiled)
    cycles = sum(k.cycles for k in estimate_kernels(run.elf, qemu, elf, soc, len(lib.info.kernels)))
    # the core's cost model: every layer runs on the core in this firmware (estimate() on the target itself would
    # price the layers its accelerator can run as the accelerator's)
    predicted = estimate(HELD_OUT, replace(soc, kind="mcu")).cycles
    assert run.ok and abs(predicted - cycles) <= SOC_TOTAL_BAR * cycles, (predicted, cycles)

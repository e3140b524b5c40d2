"""Whole trained networks built for the accelerator and run on its RTL: bit-exact, and the cost model within 10%."""

from __future__ import annotations

import numpy as np
import pytest
from fpga_helpers import INPUTS, SPECS, random_graph, target_with_array

from tinycompile.arch import ArchSpec, Layer
from tinycompile.cost.model import estimate
from tinycompile.quant import reference
from tinycompile.quant.graph import QuantGraph
from tinycompile.targets import Target

CASES = [(name, n) for name in SPECS for n in (4, 8)]
MAX_ERROR = 0.10


@pytest.mark.parametrize(("name", "n"), CASES)
def test_build_runs_bit_exact_on_rtl(builds: dict, name: str, n: int) -> None:
    """Every layer output of every test input equals the integer reference; the exit code says so."""
    code, report, folder = builds[(name, n)]
    assert code == 0
    assert report["bit_exact"] and report["mismatched_inputs"] == 0 and report["mismatched_layer_outputs"] == 0
    assert report["inputs"] >= INPUTS and report["backend"]["array"] == n
    assert len(report["backend"]["cycles_per_input"]) == 1  # data-independent schedule: every input takes the same cycles
    ran = {r["ran_on"] for r in report["layers"] if r["op"] != "flatten"}
    assert ran == {"accelerator"}
    assert (folder / "image.bin").is_file() and (folder / "program.s").read_text().count("\n") > 10
    with np.load(folder / "io.npz") as io:  # what ran, as the target produced it, for any other oracle
        graph = QuantGraph.load(folder / "quant")
        assert np.array_equal(io["outputs"], reference.run(graph, io["inputs"]))
        assert len(io["inputs"]) == report["inputs"]
    # both first layers read a 1-channel input: the host packs min(N, kw) columns, then as many rows as fit, per word
    kh, kw = SPECS[name].layers[0].kernel
    packing = report["backend"]["input_packing"]
    assert packing["columns"] == min(n, kw) and packing["rows"] * packing["columns"] <= n
    assert packing["rows"] == (1 if kh == 1 else min(kh, n // packing["columns"]))


@pytest.mark.parametrize(("name", "n"), CASES)
def test_cost_model_within_10_percent_of_rtl(builds: dict, name: str, n: int) -> None:
    """The schedule-replaying cost model predicts every accelerated layer's RTL cycles within 10%."""
    _, report, _ = builds[(name, n)]
    errors = {r["index"]: r["relative_error"] for r in report["layers"] if r["ran_on"] == "accelerator"}
    assert errors and all(e is not None for e in errors.values())
    worst = max(errors.values(), key=abs)
    assert abs(worst) <= MAX_ERROR, errors
    assert report["unit"] == "cycles"
    assert sum(r["measured"] for r in report["layers"] if r["measured"]) == report["latency"]["measured"]
    assert report["energy"]["measured_uj"] == pytest.approx(
        report["latency"]["measured"] / (report["target"]["clock_mhz"] * 1e3) * report["energy"]["active_mw"])


@pytest.mark.parametrize(("name", "n"), CASES)
def test_search_cost_model_uses_the_schedule(builds: dict, fpga_target: Target, name: str, n: int) -> None:
    """``cost.model.estimate`` on the fpga target replays the same per-layer schedule the build emitted."""
    _, report, _ = builds[(name, n)]
    spec = SPECS[name]
    cost = estimate(spec, target_with_array(fpga_target, n))
    for row, lc in zip(report["layers"], cost.layers):
        if row["op"] == "flatten":
            assert lc.cycles == 0
        else:
            assert lc.cycles == row["isolated_cycles"], row


def test_search_cost_model_sees_channel_padding_behind_a_flatten(fpga_target: Target) -> None:
    """A dense reading a flattened (12, 1, 10) map: stored with 12 -> 16 channel bytes per pixel at N = 8, so the
    search's estimate must cost the 10-pixel window the code generator emits, not a contiguous 120-element vector."""
    from tinycompile.accel.config import AccelConfig
    from tinycompile.fpga.codegen import op_geom
    from tinycompile.fpga.schedule import layer_timing

    spec = ArchSpec((1, 1, 40), 10, (Layer("conv", (-1,), channels=12, kernel=(1, 3), stride=(1, 4), padding=(0, 0, 1, 1)),
                                     Layer("flatten", (0,)), Layer("dense", (1,), channels=10)))
    graph = random_graph(spec)
    target = target_with_array(fpga_target, 8)
    g = op_geom(graph, 2, 8)
    assert (g.kh, g.kw, g.c) == (1, 10, 12)  # the window over the padded pixels, as emitted
    assert estimate(spec, target).layers[2].cycles == layer_timing(g, AccelConfig.for_array(8, target.accelerator)).cycles

"""Whole trained networks built for the accelerator and run on its RTL: bit-exact, and the cost model within 10%."""

from __future__ import annotations

import pytest
from fpga_helpers import INPUTS, SPECS, target_with_array

from tinycompile.arch import ArchSpec
from tinycompile.cost.model import estimate
from tinycompile.targets import Target

CASES = [(name, n) for name in SPECS for n in (4, 8)]
MAX_ERROR = 0.10


@pytest.mark.parametrize(("name", "n"), CASES)
def test_build_runs_bit_exact_on_rtl(builds: dict, name: str, n: int) -> None:
    """Every layer output of every test input equals the integer reference; the exit code says so."""
    code, report, folder = builds[(name, n)]
    assert code == 0
    assert report["bit_exact"] and report["mismatched_outputs"] == 0
    assert report["inputs"] >= INPUTS and report["array"] == n
    assert len(report["cycles_per_input"]) == 1  # data-independent schedule: every input takes the same cycles
    ran = {r["ran_on"] for r in report["layers"] if r["op"] != "flatten"}
    assert ran == {"accelerator"}
    assert (folder / "image.bin").is_file() and (folder / "program.s").read_text().count("\n") > 10
    # both first layers read a 1-channel input: the host packs min(N, kw) columns, then as many rows as fit, per word
    kh, kw = SPECS[name].layers[0].kernel
    packing = report["input_packing"]
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
    assert sum(r["measured_cycles"] for r in report["layers"] if r.get("measured_cycles")) == report["total"]["cycles"]


def _flatten_of_padded(spec: ArchSpec, index: int, n: int) -> bool:
    """A dense reading a flatten whose source pixels carry channel padding (the ArchSpec hook cannot see it)."""
    layer = spec.layers[index]
    if layer.op != "dense" or spec.layers[layer.inputs[0]].op != "flatten":
        return False
    src = spec.layers[layer.inputs[0]].inputs[0]
    c, h, w = spec.input_shape if src == -1 else spec.shapes()[src]
    return h * w > 1 and c % n != 0


@pytest.mark.parametrize(("name", "n"), CASES)
def test_search_cost_model_uses_the_schedule(builds: dict, fpga_target: Target, name: str, n: int) -> None:
    """``cost.model.estimate`` on the fpga target replays the same per-layer schedule the build emitted."""
    _, report, _ = builds[(name, n)]
    spec = SPECS[name]
    cost = estimate(spec, target_with_array(fpga_target, n))
    for row, lc in zip(report["layers"], cost.layers):
        if row["op"] == "flatten":
            assert lc.cycles == 0
        elif not _flatten_of_padded(spec, row["index"], n):
            assert lc.cycles == row["isolated_cycles"], row

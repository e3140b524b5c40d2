"""The SoC with its accelerator, one firmware for the whole network (`build --target soc-vexriscv`): the layers the
accelerator can run run there, the others on the core (TVM's code for rv32), every output bit-exact, per-layer
cycles from mcycle; an accelerator error reaches the report through the firmware instead of hanging it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from nets import SPECS, random_graph
from tinycompile.arch import ArchSpec, Layer
from tinycompile.backends.base import Workload
from tinycompile.backends.flow import finish
from tinycompile.backends.registry import get_backend
from tinycompile.cli import main
from tinycompile.errors import UserError
from tinycompile.targets import load_target

pytestmark = pytest.mark.slow
TARGET = "soc-vexriscv"
L = Layer
# Layer 1's stride (16) is beyond the accelerator's address generator: it runs on the core between two of its layers.
HYBRID = ArchSpec((2, 1, 64), 3, (
    L("conv", (-1,), channels=8, kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
    L("conv", (0,), channels=8, kernel=(1, 16), stride=(1, 16)),
    L("dwconv", (1,), kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
    L("flatten", (2,)),
    L("dense", (3,), channels=3),
))  # fmt: skip
# Layer 3 joins two accelerator tensors: the firmware copies them side by side, the convolutions stay on the
# accelerator.
JOINED = ArchSpec((2, 1, 32), 3, (
    L("conv", (-1,), channels=8, kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
    L("conv", (0,), channels=8, kernel=(1, 1), relu=True),
    L("conv", (0,), channels=4, kernel=(1, 3), padding=(0, 0, 1, 1)),
    L("concat", (1, 2)),
    L("conv", (3,), channels=8, kernel=(1, 3), stride=(1, 2), padding=(0, 0, 1, 1), relu=True),
    L("gap", (4,)),
    L("dense", (5,), channels=3),
))  # fmt: skip

# A core part that ends in a view: the slice (channels picked, columns cut and stepped) runs on the core, the flatten
# after it moves no bytes, and the dense layer on the accelerator reads the slice's tensor.
SLICED = ArchSpec((2, 1, 16), 3, (
    L("conv", (-1,), channels=8, kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
    L("slice", (0,), stride=(1, 2), padding=(0, 0, 1, 2), select=(6, 7, 0, 1, 3)),
    L("flatten", (1,)),
    L("dense", (2,), channels=3),
))  # fmt: skip
# The first accelerator layer reads the network input through a view (a flatten of the input).
FLAT_INPUT = ArchSpec((2, 1, 8), 3, (L("flatten", (-1,)), L("dense", (0,), channels=8, relu=True),
                                     L("dense", (1,), channels=3)))
# A concatenation the firmware gathers, read through a flatten by a dense layer on the accelerator: the core part
# holds no kernel.
GATHER_ONLY = ArchSpec((2, 1, 8), 3, (
    L("conv", (-1,), channels=8, kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
    L("conv", (-1,), channels=8, kernel=(1, 1)),
    L("concat", (0, 1)),
    L("flatten", (2,)),
    L("dense", (3,), channels=3),
))  # fmt: skip
# Two side branches on the core (padded averages, whose multiplier varies at the edges, which the accelerator's one
# per layer cannot), each reading its own accelerator tensor and read by the accelerator's add: two core parts, one
# tensor in and one out each.
BRANCHES = ArchSpec((2, 1, 16), 3, (
    L("conv", (-1,), channels=8, kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
    L("conv", (-1,), channels=8, kernel=(1, 1)),
    L("avgpool", (0,), kernel=(1, 3), padding=(0, 0, 1, 1)),
    L("avgpool", (1,), kernel=(1, 3), padding=(0, 0, 1, 1)),
    L("add", (2, 3)),
    L("gap", (4,)),
    L("dense", (5,), channels=3),
))  # fmt: skip
# Nothing for the accelerator: every layer on the core.
CORE_ONLY = ArchSpec((5, 1, 1), 3, (L("slice", (-1,), select=(4, 0, 2)), L("softmax", (0,))))


@pytest.mark.parametrize("spec", [SLICED, FLAT_INPUT, GATHER_ONLY, BRANCHES, CORE_ONLY],
                         ids=["sliced", "flat_input", "gather_only", "branches", "core_only"])
def test_views_slices_and_core_only_networks(spec: ArchSpec, tmp_path: Path) -> None:
    """A core part ending in a view, an accelerator layer reading the input through a view (the core writes the
    input before it), a gathered concatenation with no core kernel after it, a network without accelerator layers:
    each bit-exact, with its summary line."""
    report = _build(spec, tmp_path, vectors=4)
    assert report["bit_exact"]
    ran = [r["ran_on"] for r in report["layers"]]
    a = report["backend"]["accelerator"]
    if spec is SLICED:
        assert ran == ["accelerator", "core", "view (no data moved)", "accelerator"]
    elif spec is FLAT_INPUT:
        assert ran[1] == "accelerator" and report["layers"][1]["input_cycles"] == a["input_cycles"] > 0
    elif spec is GATHER_ONLY:
        assert ran == ["accelerator", "accelerator", "core", "view (no data moved)", "accelerator"]
        assert report["layers"][2]["measured"] > 0
    elif spec is BRANCHES:
        assert ran == ["accelerator", "accelerator", "core", "core", "accelerator", "accelerator", "accelerator"]
        assert all(r["measured"] > 0 for r in report["layers"][2:4])
    else:
        assert set(ran) == {"core"} and a["accelerator_cycles"] == 0 and a["vs_accelerator_alone"] is None
    line = get_backend("soc").summary_lines(report)[0]
    assert f"accelerator {a['accelerator_cycles']:,}, core layers" in line
    assert ("x the accelerator alone" in line) == (spec is not CORE_ONLY)


def _build(spec: ArchSpec, tmp_path: Path, vectors: int = 16) -> dict:
    backend = get_backend("soc")
    target = load_target(TARGET)
    graph = random_graph(spec)
    x = np.random.default_rng(0).integers(-128, 128, (vectors, *graph.input_shape)).astype(np.int8)
    work = Workload(graph, spec, x, "test network")
    result = backend.build(work, target, backend.options({}, target), tmp_path)
    return finish(work, {"model": "test", "format": "spec"}, target, result, tmp_path)


def test_a_core_layer_between_accelerator_layers(tmp_path: Path) -> None:
    """Accelerator, core, accelerator: bit-exact on 16 inputs; each accelerator layer's cycles as the core saw them
    hold the accelerator's own count (the first's also the core writing the network input); the whole inference costs at least its layers; `simulate` re-runs the image to
    the same cycles."""
    report = _build(HYBRID, tmp_path)
    assert report["bit_exact"] and report["unit"] == "cycles"
    assert [r["ran_on"] for r in report["layers"]] == ["accelerator", "core", "accelerator", "view (no data moved)",
                                                       "accelerator"]
    a = report["backend"]["accelerator"]
    for r in report["layers"]:
        if r["ran_on"] == "accelerator":
            held = r["measured"] - r.get("input_cycles", 0)
            assert 0 < r["accelerator_cycles"] <= held < r["accelerator_cycles"] + 400
        elif r["ran_on"] == "core":
            assert r["measured"] > 0
    assert report["layers"][0]["input_cycles"] == a["input_cycles"] > 0  # the first layer's share, as predicted
    assert a["accelerator_cycles"] == sum(r.get("accelerator_cycles", 0) for r in report["layers"])
    assert report["latency"]["measured"] >= sum(r["measured"] for r in report["layers"])
    assert a["vs_accelerator_alone"] == report["latency"]["measured"] / a["accelerator_cycles"]
    (tmp_path / "report.json").unlink()
    assert get_backend("soc").simulate(tmp_path) == 0
    again = json.loads((tmp_path / "report.json").read_text())
    assert again["bit_exact"] and again["latency"]["measured"] == report["latency"]["measured"]


def test_every_layer_on_the_accelerator(tmp_path: Path) -> None:
    """The digits network maps whole: no core layer, and the core's share is the input, the driver and the output.
    One start runs every layer; the accelerator's cycle log gives each layer exactly the cycles the fpga build of the
    same program measures on the accelerator alone (its test bench), and their sum is that run's total."""
    from tinycompile.accel.config import AccelConfig
    from tinycompile.fpga.codegen import compile_graph
    from tinycompile.fpga.rtl import mem_bytes, run_network

    report = _build(SPECS["digits"], tmp_path)
    assert report["bit_exact"]
    assert {r["ran_on"] for r in report["layers"]} <= {"accelerator", "view (no data moved)"}
    a = report["backend"]["accelerator"]
    assert a["core_layer_cycles"] == 0 and a["mac_efficiency"] > 0
    assert report["latency"]["measured"] == (a["accelerator_cycles"] + a["driver_cycles"] + a["input_cycles"]
                                             + a["output_cycles"] + a["copy_cycles"])
    graph = random_graph(SPECS["digits"])
    x = np.random.default_rng(0).integers(-128, 128, (1, *graph.input_shape)).astype(np.int8)
    alone = run_network(compile_graph(graph, AccelConfig.for_array(a["array"]), mem_bytes(a["array"])), x)
    soc = {r["index"]: (r["accelerator_cycles"], r["mac_cycles"]) for r in report["layers"]
           if r["ran_on"] == "accelerator"}
    assert soc == {m.index: (m.cycles, m.mac_cycles) for m in alone.layers}
    assert a["accelerator_cycles"] == alone.cycles[0] and sum(m.mac_cycles for m in alone.layers) == alone.mac_cycles[0]


# Layer 3 multiplies two accelerator tensors: the core is fed one, so their producers (1, 2) move onto the core.
MULTIPLIED = dataclasses.replace(JOINED, layers=(
    *JOINED.layers[:2], dataclasses.replace(JOINED.layers[2], channels=8), L("mul", (1, 2)), *JOINED.layers[4:]))


def test_a_concatenation_of_accelerator_tensors_is_gathered_by_the_firmware(tmp_path: Path) -> None:
    """A concatenation of two accelerator tensors: the firmware copies each into its channels of one buffer (the
    concatenation's cycles), the next layer runs on the accelerator again, and the network stays bit-exact."""
    report = _build(JOINED, tmp_path)
    assert report["bit_exact"]
    ran = [r["ran_on"] for r in report["layers"]]
    assert ran == ["accelerator", "accelerator", "accelerator", "core", "accelerator", "accelerator", "accelerator"]
    assert report["layers"][3]["measured"] > 0
    backend, target = get_backend("soc"), load_target(TARGET)  # `inspect` shows the placement the build ran
    assert backend.placements(random_graph(JOINED), target, backend.options({}, target)) == ran


def test_a_core_layer_multiplying_accelerator_tensors_takes_their_producers(tmp_path: Path) -> None:
    """A product (the core's) of two accelerator tensors: its producers run on the core with it, the core part reads
    the one tensor they share, and the whole network stays bit-exact."""
    report = _build(MULTIPLIED, tmp_path)
    assert report["bit_exact"]
    ran = [r["ran_on"] for r in report["layers"]]
    assert ran == ["accelerator", "core", "core", "core", "accelerator", "accelerator", "accelerator"]


def test_imported_model_softmax_on_the_core(tmp_path: Path) -> None:
    """A TFLite DS-CNN (one block, 8 channels) from the command line: its softmax runs on the core in the same image,
    bit-exact against the integer reference and TFLite's reference kernels."""
    from tflite_models import ds_cnn_like

    b, y = ds_cnn_like(seed=2, channels=8, blocks=1)
    model = tmp_path / "kws.tflite"
    model.write_bytes(b.finish([y]))
    out = tmp_path / "build"
    assert main(["build", str(model), "--target", TARGET, "-o", str(out), "--vectors", "16"]) == 0
    report = json.loads((out / "report.json").read_text())
    ran = {r["op"]: r["ran_on"] for r in report["layers"]}
    assert report["bit_exact"] and ran["softmax"] == "core" and ran["conv"] == "accelerator"


@pytest.mark.parametrize("layer", [0, 4])
def test_accelerator_error_is_reported_not_hung(tmp_path: Path, layer: int) -> None:
    """A program damaged after the build (the illegal opcode 0 at a layer's first instruction: a run's only layer,
    or the last of a run of two): the firmware reads the error status and stops; the report names that layer, the
    error code (1) and the instruction, and the verdict fails."""
    from tinycompile.accel.isa import INSTR_BYTES
    from tinycompile.soc import system

    real = system.compile_graph

    def damaged(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - the code generator's signature
        prog = real(*args, **kwargs)
        at = prog.start_at(layer)
        prog.image.data[at : at + INSTR_BYTES] = 0
        damaged.at = at  # type: ignore[attr-defined]
        return prog

    system.compile_graph = damaged
    try:
        report = _build(HYBRID, tmp_path, vectors=16)
    finally:
        system.compile_graph = real
    assert not report["bit_exact"]
    assert f"accelerator stopped on an error in layer {layer}" in report["error"]["message"]
    assert report["error"]["layer"] == layer and report["error"]["code"] == 1 and report["error"]["pc"] == damaged.at


@pytest.mark.parametrize(("given", "message"), [
    ({"array": 8, "core_only": True}, "--array and --core-only contradict"),
])  # fmt: skip
def test_bad_options(given: dict, message: str) -> None:
    """Contradicting options are refused in one line."""
    with pytest.raises(UserError, match=message):
        get_backend("soc").options(given, load_target(TARGET))


def test_array_on_a_target_without_accelerator() -> None:
    """--array on a SoC target without an accelerator section names the missing section."""
    import copy
    import dataclasses

    target = load_target(TARGET)
    raw = copy.deepcopy(target.raw)
    del raw["soc"]["accelerator"]
    bare = dataclasses.replace(target, raw=raw)
    assert get_backend("soc").options({}, bare) == {"array": 0}
    with pytest.raises(UserError, match="has no accelerator"):
        get_backend("soc").options({"array": 8}, bare)

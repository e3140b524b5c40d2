"""A new kind of target plugs in as one module and one YAML: registered, it gets the cost model, `build` (with its
own options), the common report.json and `simulate`, with no edit to tinycompile's own files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tinycompile.backends import Backend, BuildResult, Workload, get_backend, register_backend
from tinycompile.backends import registry
from tinycompile.cli import main
from tinycompile.cost.model import estimate
from tinycompile.quant import reference
from tinycompile.targets import load_target, require

TOY_YAML = """\
name: toy-chip
kind: toy
clock_mhz: 50
sram_kb: 64
flash_kb: 256
runtime: {sram_bytes: 0, code_bytes: 0, code_bytes_per_layer: 0}
energy: {active_mw: 10}
toy: {macs_per_cycle: MPC}
"""
CORE_KEYS = {"schema", "target", "graph", "inputs", "bit_exact", "mismatched_inputs", "mismatched_layer_outputs",
             "unit", "layers", "latency", "energy", "memory", "backend"}


class ToyBackend(Backend):
    """A "chip" that is numpy: it runs the integer reference, ``macs_per_cycle`` MACs a cycle, one cycle per output
    element otherwise; ``--toy-flip K`` corrupts input K's output, as broken hardware would."""

    kind = "toy"
    title = "toy targets"
    defaults = {"toy_flip": None}

    def add_options(self, group: Any) -> None:
        group.add_argument("--toy-flip", type=int, help="corrupt the output of this input")

    def check_target(self, target: Any) -> None:
        require(require(target.raw, "toy", dict, target.path), "macs_per_cycle", int, target.path, "toy.")

    def layer_cycles(self, layer: Any, in_shape: Any, out_shape: Any, macs: int, target: Any) -> float:
        return math.ceil(macs / toy_rate(target)) if macs else math.prod(out_shape)

    def constant_bytes(self, layer: Any, in_shape: Any, out_shape: Any, target: Any) -> int:
        return 7 if layer.op in ("conv", "dwconv", "dense") else 0

    def build(self, work: Workload, target: Any, options: dict[str, Any], out: Path) -> BuildResult:
        outputs = reference.run(work.graph, work.inputs).reshape(len(work.inputs), *work.graph.output_shape)
        if options["toy_flip"] is not None:
            outputs[options["toy_flip"]].flat[0] ^= 1
        (out / "toy.json").write_text(json.dumps({"target": str(target.path), "flip": options["toy_flip"]}))
        cost = estimate(work.spec, target)
        layers = [{"index": i, "op": lc.op, "ran_on": "numpy", "macs": lc.macs, "predicted": lc.cycles,
                   "measured": lc.cycles + 1} for i, lc in enumerate(cost.layers)]
        return BuildResult(outputs, "cycles", layers, float(cost.cycles), float(cost.cycles + len(layers)),
                           {"arena_bytes": cost.arena_bytes, "scratch_bytes": 0, "flash_bytes": cost.flash},
                           {"rate": toy_rate(target)})

    def owns(self, folder: Path) -> bool:
        return (Path(folder) / "toy.json").is_file()

    def simulate(self, folder: Path) -> int:
        return 0 if json.loads((Path(folder) / "toy.json").read_text())["flip"] is None else 1


def toy_rate(target: Any) -> int:
    return int(target.raw["toy"]["macs_per_cycle"])


@pytest.fixture
def toy(tmp_path: Path):
    """The toy kind registered for one test, and its target file."""
    register_backend(ToyBackend)
    (tmp_path / "toy.yaml").write_text(TOY_YAML.replace("MPC", "2"))
    yield tmp_path / "toy.yaml"
    registry._registered.pop("toy")
    get_backend.cache_clear()


def test_the_cost_model_asks_the_new_kind(toy: Path) -> None:
    from nets import SPECS

    spec = SPECS["digits"]
    cost = estimate(spec, load_target(str(toy)))
    macs = spec.macs()
    assert [lc.cycles for lc in cost.layers] == [
        math.ceil(m / 2) if m else math.prod(s) for m, s in zip(macs, spec.shapes())]
    assert cost.flash == 7 * sum(layer.op in ("conv", "dwconv", "dense") for layer in spec.layers)


def test_build_and_simulate_on_the_new_kind(toy: Path, trial: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["build", str(trial), "--target", str(toy), "-o", str(out), "--vectors", "16"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert CORE_KEYS <= set(report) and report["bit_exact"] and report["inputs"] == 16
    assert report["target"]["kind"] == "toy" and report["backend"] == {"kind": "toy", "rate": 2}
    n_layers = len(report["layers"])
    assert report["latency"]["measured"] == report["latency"]["predicted"] + n_layers
    assert report["energy"]["measured_uj"] == pytest.approx(report["latency"]["measured"] / 50e3 * 10)
    assert all(row["relative_error"] == pytest.approx(-1 / row["measured"]) for row in report["layers"])
    assert report["graph"]["source"]["trial"] == str(trial) and report["graph"]["ops"] == n_layers
    assert main(["simulate", str(out)]) == 0


def test_a_wrong_output_fails_the_build(toy: Path, trial: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["build", str(trial), "--target", str(toy), "-o", str(out), "--vectors", "16", "--toy-flip", "3"]) == 1
    report = json.loads((out / "report.json").read_text())
    assert report["bit_exact"] is False and report["mismatched_inputs"] == 1
    assert main(["simulate", str(out)]) == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--target", "TOY", "--array", "8"], "--array applies to fpga and soc targets only, not toy-chip (toy)"),
    (["--target", "cortex-m4", "--toy-flip", "1"], "--toy-flip applies to toy targets only, not cortex-m4 (mcu)"),
    (["--target", "TOY", "--codegen", "llvm"], "--codegen applies to mcu targets only, not toy-chip (toy)"),
])
def test_options_of_another_kind_are_refused(toy: Path, trial: Path, tmp_path: Path, args: list[str], message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(toy) if a == "TOY" else a for a in args]
    assert main(["build", str(trial), "-o", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err
    assert not (tmp_path / "out").exists()


def test_the_new_kind_checks_its_own_section(toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(TOY_YAML.replace("MPC", "two"))
    assert main(["inspect", "model.tflite", "--target", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{bad}: key 'toy.macs_per_cycle' must be an integer, but got 'two'" in err, err


def test_an_unknown_kind_names_the_known_ones(tmp_path: Path) -> None:
    from tinycompile.errors import UserError

    other = tmp_path / "other.yaml"
    other.write_text(TOY_YAML.replace("kind: toy", "kind: gpu"))
    with pytest.raises(UserError, match=r"key 'kind' must be one of fpga, mcu, soc, but got 'gpu'"):
        load_target(str(other))

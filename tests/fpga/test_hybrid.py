"""A layer the accelerator cannot run stays in Relax and runs on the host; the rest runs on the RTL, all bit-exact."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fpga_helpers import INPUTS, random_graph, target_with_array
from support import run_cli
from tflite_models import ModelBuilder, mobilenet_v3_like

from tinycompile.arch import ArchSpec, Layer
from tinycompile.cli import main
from tinycompile.fpga.build import build_graph
from tinycompile.targets import Target

L = Layer
# Layer 1's stride (16) exceeds the address generator's 4-bit steps: it splits the network into two regions.
SPEC = ArchSpec(
    (2, 1, 64),
    3,
    (
        L("conv", (-1,), channels=8, kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
        L("conv", (0,), channels=8, kernel=(1, 16), stride=(1, 16)),
        L("dwconv", (1,), kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
        L("flatten", (2,)),
        L("dense", (3,), channels=3),
    ),
)


def test_host_layer_between_accelerator_regions(fpga_target: Target, tmp_path) -> None:
    """Regions before and after the host layer run on the RTL; the host layer through TVM's LLVM code."""
    graph = random_graph(SPEC)
    x = graph.quantize_input(np.random.default_rng(3).standard_normal((INPUTS, *SPEC.input_shape)).astype(np.float32))
    report = build_graph(graph, target_with_array(fpga_target, 8), tmp_path, 8, x).report
    assert report["bit_exact"] and report["inputs"] == INPUTS
    assert report["host_layers"] == [1] and report["accelerator_regions"] == 2
    ran = [r["ran_on"] for r in report["layers"]]
    assert ran == ["accelerator", "host (TVM, llvm)", "accelerator", "view (no data moved)", "accelerator"]
    errors = [abs(r["relative_error"]) for r in report["layers"] if r["ran_on"] == "accelerator"]
    assert len(errors) == 3 and max(errors) <= 0.10
    # `tinycompile simulate` on such a build recompiles it from the saved graph and runs it again
    assert main(["simulate", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "report.json").read_text())["latency"]["measured"] == report["total"]["cycles"]


@pytest.mark.slow
def test_imported_mobilenet_v3_tables_and_gates_run_on_the_host(tmp_path) -> None:
    """An imported MobileNetV3: convolutions, pools and the residual add on the accelerator; hard swish tables,
    gate products and softmax on the host; bit-exact against TFLite's reference kernels."""
    b, out = mobilenet_v3_like(seed=2, size=16, width=8)
    model = b.save(tmp_path / "mnv3.tflite", [out])
    proc = run_cli("build", str(model), "--target", "fpga", "-o", str(tmp_path / "fpga"), "--vectors", "16")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    report = json.loads((tmp_path / "fpga" / "report.json").read_text())
    assert report["bit_exact"] and report["oracles"]["tflite_reference"]["bit_exact"]
    host = {row["op"] for row in report["layers"] if row["ran_on"].startswith("host")}
    accel = {row["op"] for row in report["layers"] if row["ran_on"] == "accelerator"}
    assert host == {"lut", "mul", "softmax"} and accel == {"conv", "dwconv", "avgpool", "add", "dense"}


@pytest.mark.slow
def test_same_padded_pools_max_on_the_accelerator_averages_on_the_host(tmp_path) -> None:
    """TFLite's SAME pools: the max pool's padded taps hold -128 on the accelerator too; an average over the taps
    inside the input divides by a count that varies at the edges, which the host runs. Bit-exact against TFLite's
    reference kernels."""
    b = ModelBuilder(seed=4)
    x = b.input((1, 9, 7, 8), scale=0.05, zero_point=10)  # zero point 10: much of the input lies below real zero
    y = b.average_pool2d(b.max_pool2d(x, (3, 3), (2, 2), "SAME"), (3, 3), (1, 1), "SAME")
    model = b.save(tmp_path / "same_pools.tflite", [b.conv2d(y, 8, (1, 1), (1, 1), "VALID")])
    proc = run_cli("build", str(model), "--target", "fpga", "-o", str(tmp_path / "fpga"), "--vectors", "16")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    report = json.loads((tmp_path / "fpga" / "report.json").read_text())
    assert report["bit_exact"] and report["oracles"]["tflite_reference"]["bit_exact"]
    assert [row["ran_on"] for row in report["layers"]] == ["accelerator", "host (TVM, llvm)", "accelerator"]

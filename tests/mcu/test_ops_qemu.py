"""Each op alone (odd shapes, stride and padding corners, saturation) on cortex-m4 and rv32imc, C and LLVM codegen.

Every kernel's output (not only the logits) is dumped by the firmware and compared with the integer reference.
Inputs are random over the full int8 range while calibration saw a narrow range, so outputs saturate at -128/127.
"""

from __future__ import annotations

import numpy as np
import pytest
from mcu_helpers import random_model

from tinycompile.arch import ArchSpec, Layer
from tinycompile.mcu.backend import build_and_run
from tinycompile.mcu.library import compile_graph
from tinycompile.quant import reference
from tinycompile.quant.quantize import quantize
from tinycompile.targets import load_target

L = Layer
CASES = {
    # odd channel counts, 1-D signal, stride 3, asymmetric padding
    "conv1d_stride3_asympad": ArchSpec((3, 1, 23), 6, (
        L("conv", (-1,), channels=5, kernel=(1, 4), stride=(1, 3), padding=(0, 0, 2, 1), relu=True),
        L("flatten", (0,)), L("dense", (1,), channels=6))),
    # 2-D conv with a non-square kernel, stride 2x1, no relu; depthwise with padding only on top/left
    "conv2d_dw_corner_pad": ArchSpec((2, 7, 5), 7, (
        L("conv", (-1,), channels=3, kernel=(3, 2), stride=(2, 1), padding=(1, 0, 0, 1)),
        L("dwconv", (0,), kernel=(2, 3), stride=(1, 2), padding=(1, 0, 1, 0), relu=True),
        L("gap", (1,)), L("dense", (2,), channels=7))),
    # maxpool with overlapping windows, avgpool with a window that does not divide the input, residual add
    "pools_and_add": ArchSpec((4, 5, 6), 3, (
        L("maxpool", (-1,), kernel=(3, 2), stride=(1, 2)),
        L("conv", (0,), channels=4, kernel=(1, 1)),
        L("add", (1, 0), relu=True),
        L("avgpool", (2,), kernel=(2, 2), stride=(1, 1)),
        L("flatten", (3,)), L("dense", (4,), channels=3, relu=True))),
    # a kernel covering the whole input, dense on the raw input, large fan-in (saturation of the accumulator path)
    "full_kernel_dense": ArchSpec((9, 3, 3), 5, (
        L("conv", (-1,), channels=11, kernel=(3, 3)),
        L("dense", (0,), channels=5))),
    # the Arm DSP paths: one input channel with 4-wide kernel rows (dot product along columns), depthwise on a
    # multiple of four channels with stride 2 (over row pairs) and with one kernel row (halfword multiplies), a
    # padded 3x3 conv on 8 input channels into 12 (not a multiple of 8)
    "dsp_paths": ArchSpec((1, 12, 9), 5, (
        L("conv", (-1,), channels=8, kernel=(3, 4), stride=(2, 1), padding=(1, 1, 2, 1), relu=True),
        L("dwconv", (0,), kernel=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1), relu=True),
        L("dwconv", (1,), kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
        L("conv", (2,), channels=12, kernel=(3, 3), padding=(1, 1, 1, 1)),
        L("gap", (3,)), L("dense", (4,), channels=5))),
    # one input channel, no padding, 4-wide kernel rows: only the DSP schedule copies the input (scratch > 1 KB)
    "one_channel_copy": ArchSpec((1, 40, 40), 3, (
        L("conv", (-1,), channels=4, kernel=(3, 4), stride=(2, 2), relu=True),
        L("gap", (0,)), L("dense", (1,), channels=3))),
    # a 16x16 average window: 256 elements, the most whose sums the DSP schedule keeps in 16-bit lanes (256 x -128)
    "avgpool_lane_bound": ArchSpec((8, 16, 17), 3, (
        L("avgpool", (-1,), kernel=(16, 16), stride=(1, 1)),
        L("flatten", (0,)), L("dense", (1,), channels=3))),
    # structurally equal layers share one PrimFunc: each call must still write its own planned buffer
    "shared_kernels_residual": ArchSpec((4, 3, 3), 4, (
        L("conv", (-1,), channels=4, kernel=(1, 1), relu=True),
        L("conv", (0,), channels=4, kernel=(1, 1), relu=True),
        L("conv", (1,), channels=4, kernel=(1, 1), relu=True),
        L("add", (2, 0)),
        L("gap", (3,)), L("dense", (4,), channels=4))),
}


@pytest.fixture(scope="module")
def op_graphs():
    out = {}
    rng = np.random.default_rng(0)
    for i, (name, spec) in enumerate(CASES.items()):
        calib = rng.normal(0, 0.3, (64, *spec.input_shape)).astype(np.float32)  # narrow: real inputs will saturate
        graph = quantize(spec, random_model(spec, i), calib)
        vectors = rng.integers(-128, 128, (16, *graph.input_shape)).astype(np.int8)
        vectors[0] = 127
        vectors[1] = -128
        out[name] = (spec, graph, vectors, compile_graph(graph))
    return out


def test_cases_reach_saturation(op_graphs) -> None:
    hits = set()
    for spec, graph, vectors, _ in op_graphs.values():
        for y in reference.run_layers(graph, vectors):
            hits.update({int(y.min()), int(y.max())} & {-128, 127})
    assert hits == {-128, 127}


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("codegen", ["c", "llvm"])
@pytest.mark.parametrize("target", ["cortex-m4", "rv32imc"])
@pytest.mark.parametrize("case", list(CASES))
def test_op_is_bit_exact_on_qemu(op_graphs, case, target, codegen, tmp_path) -> None:
    spec, graph, vectors, compiled = op_graphs[case]
    result = build_and_run(graph, spec, load_target(target), tmp_path, vectors, codegen, compiled=compiled, check_layers=True)
    assert result.mismatches == 0
    kernels = len(result.library.info.kernels)
    assert kernels == sum(1 for layer in spec.layers if layer.op != "flatten")

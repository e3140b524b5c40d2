"""The scalar-core schedules (``tinycompile.mcu.schedules_rv32``) at their edges, bit-exact on rv32imc (QEMU), every
layer's output compared with the integer reference: channel counts that no tile divides, a single pixel, rows longer
than a tile (several pixel tiles per row, padding tests that stay), strides, one input channel."""

from __future__ import annotations

import numpy as np
import pytest
from mcu_helpers import random_model

from tinycompile.arch import ArchSpec, Layer
from tinycompile.mcu import schedules_rv32
from tinycompile.mcu.backend import build_and_run
from tinycompile.mcu.library import compile_graph
from tinycompile.quant.quantize import quantize
from tinycompile.targets import load_target

L = Layer
CASES = {
    # 1x1 convs over odd channel counts (7 -> 5 -> 3: tiles of one channel), rows of 3 and a 1x1 map
    "pointwise_odd_channels": ArchSpec((3, 3, 7), 4, (
        L("conv", (-1,), channels=5, kernel=(1, 1), relu=True),
        L("conv", (0,), channels=3, kernel=(1, 1)),
        L("maxpool", (1,), kernel=(3, 3), stride=(3, 3)),
        L("conv", (2,), channels=6, kernel=(1, 1), relu=True),
        L("flatten", (3,)), L("dense", (4,), channels=4))),
    # rows of 12 and 11 outputs: several pixel tiles per row, the depthwise padding tests on inner tiles too
    "wide_rows": ArchSpec((4, 12, 6), 3, (
        L("dwconv", (-1,), kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
        L("conv", (0,), channels=10, kernel=(1, 2), relu=True),
        L("dwconv", (1,), kernel=(2, 3), stride=(2, 1), padding=(0, 1, 1, 1)),
        L("gap", (2,)), L("dense", (3,), channels=3))),
    # one input channel with stride 2 (whole kernel rows unrolled), odd output channels, a 2-pixel row
    "one_channel_strided": ArchSpec((1, 13, 9), 5, (
        L("conv", (-1,), channels=9, kernel=(5, 4), stride=(2, 2), padding=(2, 2, 1, 2), relu=True),
        L("dwconv", (0,), kernel=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1), relu=True),
        L("conv", (1,), channels=4, kernel=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1)),
        L("flatten", (2,)), L("dense", (3,), channels=5))),
}


@pytest.fixture(scope="module")
def graphs():
    out = {}
    rng = np.random.default_rng(7)
    for i, (name, spec) in enumerate(CASES.items()):
        calib = rng.normal(0, 0.3, (64, *spec.input_shape)).astype(np.float32)
        graph = quantize(spec, random_model(spec, 100 + i), calib)
        vectors = rng.integers(-128, 128, (8, *graph.input_shape)).astype(np.int8)
        vectors[0] = 127
        vectors[1] = -128
        out[name] = (spec, graph, vectors, compile_graph(graph))
    return out


def test_conv_tile_fits_the_registers_and_divides() -> None:
    for channels in (1, 3, 5, 7, 8, 12, 64, 96):
        for row in (1, 2, 3, 5, 7, 12, 25):
            to, tp = schedules_rv32.conv_tile(channels, row)
            assert channels % to == 0 and row % tp == 0
            assert to * tp <= schedules_rv32.ACC_REGS and tp <= schedules_rv32.MAX_TP
    # DS-CNN's pointwise layers (64 channels, rows of 5): more than one channel and the whole row per tile
    assert schedules_rv32.conv_tile(64, 5) == (2, 5)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("codegen", ["c", "llvm"])
@pytest.mark.parametrize("case", list(CASES))
def test_rv32_tiles_are_bit_exact(graphs, case, codegen, tmp_path) -> None:
    spec, graph, vectors, compiled = graphs[case]
    result = build_and_run(graph, spec, load_target("rv32imc"), tmp_path, vectors, codegen, compiled=compiled, check_layers=True)
    assert result.ok and result.mismatches == 0

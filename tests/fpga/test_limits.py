"""Layers bigger than a scratchpad are tiled (and still exact on the RTL); a layer the accelerator cannot run is refused."""

from __future__ import annotations

import numpy as np
import pytest
from fpga_helpers import random_graph

from tinycompile.accel.config import AccelConfig
from tinycompile.arch import ArchSpec, Layer
from tinycompile.errors import UserError
from tinycompile.fpga.build import compile_for_accelerator, partition_for_accelerator
from tinycompile.fpga.rtl import run_network
from tinycompile.quant import reference

L = Layer
# Every way a layer can outgrow the N = 8 scratchpads (16 KB per INP/WGT half, 512 ACC rows per half, 64 parameter sets):
BIG = ArchSpec(
    (8, 1, 1200),
    10,
    (
        L("conv", (-1,), channels=16, kernel=(1, 5), stride=(1, 2), padding=(0, 0, 2, 2), relu=True),  # 600 px row: column blocks
        L("maxpool", (0,), kernel=(1, 4), stride=(1, 4)),  # (16, 1, 150)
        L("flatten", (1,)),
        L("dense", (2,), channels=24, relu=True),  # K = 2400: 300 k-tiles > 256 per WGT half -> reduction chunks
        L("conv", (1,), channels=520, kernel=(1, 1), relu=True),  # 65 output tiles > 64 parameter sets -> two passes
        L("gap", (4,)),  # a 150-tap window
        L("dense", (5,), channels=24),
        L("add", (3, 6), relu=True),
        L("dense", (7,), channels=10),
    ),
)


def test_oversized_layers_are_tiled_and_exact() -> None:
    """Column blocks, reduction chunks and parameter passes all appear, and the RTL still matches the reference."""
    graph = random_graph(BIG)
    prog, _ = compile_for_accelerator(graph, AccelConfig.for_array(8))
    tiling = {c.index: c.tiling for c in prog.layers if c.tiling is not None}
    assert sum(len(b) for b in tiling[0].blocks) > 1 and max(b.cols for b in tiling[0].blocks[0]) < 600
    assert tiling[3].chunks > 1
    assert len(tiling[4].passes) == 2
    x = graph.quantize_input(np.random.default_rng(1).standard_normal((2, *BIG.input_shape)).astype(np.float32))
    run = run_network(prog, x, per_layer=False)
    want = reference.run_layers(graph, x)
    for b in range(len(x)):
        for i, got in run.outputs[b].items():
            np.testing.assert_array_equal(got, want[i][b], err_msg=f"input {b} layer {i}")


def test_model_the_accelerator_cannot_run_at_all_is_refused_in_one_line() -> None:
    """Its only layer reads an input wider than the address generator's 12-bit bounds: one line, layer and reason."""
    spec = ArchSpec((1, 1, 5000), 4, (L("conv", (-1,), channels=4, kernel=(1, 5000)),))
    with pytest.raises(UserError) as err:
        partition_for_accelerator(random_graph(spec), AccelConfig.for_array(8))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("layer 0 (conv) cannot run on the accelerator") and "4095" in msg


def test_model_too_big_for_accelerator_memory_is_refused_in_one_line() -> None:
    """Weights beyond the simulated external memory (1 MB at N = 4): refused, naming the layer, not a traceback."""
    spec = ArchSpec((1, 1, 2048), 10, (L("conv", (-1,), channels=8), L("flatten", (0,)), L("dense", (1,), channels=80),
                                        L("dense", (2,), channels=10)))
    with pytest.raises(UserError) as err:
        compile_for_accelerator(random_graph(spec), AccelConfig.for_array(4))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("layer 2 (dense) weights") and "1024 KB" in msg


# Tiling corners, checked on the accelerator's cycle-free ISA model (tinycompile.accel.model, bit-exact with the RTL):
EDGE_CASES = {
    # reduction chunks whose boundary falls inside a tap's channel blocks
    "conv_chunks_mid_tap": ArchSpec((300, 5, 5), 4, (L("conv", (-1,), channels=12, kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
                                                    L("gap", (0,)), L("dense", (1,), channels=4))),
    # depthwise taps beyond half the weight scratchpad (chunked at N = 16)
    "dw_tap_chunks": ArchSpec((8, 10, 10), 4, (L("dwconv", (-1,), kernel=(9, 9), padding=(4, 4, 4, 4), relu=True),
                                               L("gap", (0,)), L("dense", (1,), channels=4))),
    # more channel tiles than parameter sets: depthwise and pooling passes over input channel slices
    "dw_passes": ArchSpec((520, 2, 3), 4, (L("dwconv", (-1,), kernel=(2, 2), padding=(0, 1, 0, 1)),
                                           L("maxpool", (0,), kernel=(2, 3), stride=(2, 3)), L("flatten", (1,)),
                                           L("dense", (2,), channels=4))),
    "maxpool_window_chunks": ArchSpec((8, 30, 30), 4, (L("maxpool", (-1,), kernel=(17, 17), stride=(13, 13)),
                                                       L("avgpool", (0,), kernel=(2, 2)), L("flatten", (1,)),
                                                       L("dense", (2,), channels=4))),
    "add_passes": ArchSpec((200, 3, 3), 4, (L("conv", (-1,), channels=200, relu=True), L("add", (0, -1)), L("gap", (1,)),
                                            L("dense", (2,), channels=4))),
    "unequal_strides": ArchSpec((3, 9, 11), 4, (L("conv", (-1,), channels=5, kernel=(3, 2), stride=(2, 3), padding=(1, 0, 0, 1)),
                                                L("flatten", (0,)), L("dense", (1,), channels=4))),
}


def _exact_layers_on_model(spec: ArchSpec, seed: int = 0):
    """Compile ``spec`` at N = 4, 8 and 16, run it on the ISA model and check every layer's output against the
    integer reference; yields (N, layer code) for each accelerated layer."""
    from tinycompile.accel.layout import read_tensor
    from tinycompile.accel.model import run_model
    from tinycompile.fpga.codegen import compile_graph

    graph = random_graph(spec)
    x = graph.quantize_input(np.random.default_rng(seed).standard_normal((1, *spec.input_shape)).astype(np.float32))
    want = reference.run_layers(graph, x)
    for n in (4, 8, 16):
        prog = compile_graph(graph, AccelConfig.for_array(n), (1 << 18) * n)
        got = run_model(prog.with_input(x[0]), prog.prog_addr, AccelConfig.for_array(n), max_instrs=1_000_000)
        for code in prog.layers:
            if code.count:
                np.testing.assert_array_equal(read_tensor(got, code.out), want[code.index][0], err_msg=f"N={n} layer {code.index}")
                yield n, code


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_tiling_corners_are_exact_on_the_isa_model(name: str) -> None:
    """Every layer of every corner case equals the integer reference at N = 4, 8 and 16, and the corner is reached."""
    pieces = max(max(len(code.tiling.passes), code.tiling.chunks) for _, code in _exact_layers_on_model(EDGE_CASES[name]))
    assert pieces > 1 or name == "unequal_strides"  # the corner really was exercised


# Window mode (stride-1 depthwise and average pools): rows wider than N taps, maps swept down their columns.
WINDOW_CASES = (
    ArchSpec((6, 20, 3), 4, (L("dwconv", (-1,), kernel=(5, 7), padding=(2, 2, 3, 3), relu=True),  # tall: columns
                             L("avgpool", (0,), kernel=(3, 2), stride=(1, 1)), L("flatten", (1,)), L("dense", (2,), channels=4))),
    ArchSpec((5, 1, 40), 4, (L("dwconv", (-1,), kernel=(1, 9), padding=(0, 0, 4, 4)),  # one row: 9 taps in 3 passes at N = 4
                             L("avgpool", (0,), kernel=(1, 5), stride=(1, 1)), L("gap", (1,)), L("dense", (2,), channels=4))),
    # kernel rows side by side (one INP read port each): 3x3 in 2 passes at N = 8 and 1 at N = 16; 5x5 at N = 16 in
    # 2 passes of 3 rows, the second starting a row early
    ArchSpec((12, 9, 11), 4, (L("dwconv", (-1,), kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
                              L("dwconv", (0,), kernel=(5, 5), padding=(2, 2, 2, 2)),
                              L("avgpool", (1,), kernel=(3, 3), stride=(1, 1)), L("gap", (2,)),
                              L("dense", (3,), channels=4))),
)


def test_window_mode_layers_are_exact_on_the_isa_model() -> None:
    """Depthwise and average-pool layers in window mode equal the integer reference at N = 4, 8, 16, both sweeps."""
    seen, side = set(), set()
    for spec in WINDOW_CASES:
        for n, code in _exact_layers_on_model(spec, seed=1):
            t = code.tiling
            if t.window:
                g = code.geom
                kh, kw = (g.kw, g.kh) if t.transposed else (g.kh, g.kw)
                seen.add((code.op, t.transposed, kw > n))
                side.add((n, kh, t.wrows, t.kt))
    # both sweeps, both ops, and rows of more than N taps (several passes per kernel row) were exercised
    assert {("dwconv", True, True), ("dwconv", False, True), ("avgpool", True, False), ("avgpool", False, False)} <= seen
    # kernel rows side by side: 3 rows in 2 passes of 2 at N = 8, in 1 of 3 at N = 16, 5 in 2 of 3; none at N = 4
    assert {(8, 3, 2, 2), (16, 3, 3, 1), (16, 5, 3, 2)} <= side
    assert all(rows == 1 for n, _, rows, _ in side if n == 4)


# Kernel taps that only ever read padding are dropped: a 3x5 conv and a 3x3 depthwise on a 1 x 2 map keep 1 x 3 taps.
DEAD_TAPS = ArchSpec((4, 1, 2), 4, (L("conv", (-1,), channels=8, kernel=(3, 5), padding=(1, 1, 2, 2), relu=True),
                                    L("dwconv", (0,), kernel=(3, 3), padding=(1, 1, 1, 1)), L("gap", (1,)),
                                    L("dense", (2,), channels=4)))


def test_taps_that_only_read_padding_are_dropped_exactly() -> None:
    """The trimmed layers still equal the integer reference (the bias is folded over the kept taps only)."""
    kept = {(code.index, code.geom.kh, code.geom.kw) for _, code in _exact_layers_on_model(DEAD_TAPS)
            if code.op in ("conv", "dwconv")}
    assert {(0, 1, 3), (1, 1, 3)} <= kept  # the conv (unpacked at N = 4) and the depthwise at every N


# A refilled plane keeps the padding the load two steps before wrote (LOAD keep): depthwise layers with one step per
# channel tile, a 3x3 and a 5x5.
KEEP_PADDING = ArchSpec((24, 40, 6), 4, (L("dwconv", (-1,), kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
                                         L("dwconv", (0,), kernel=(5, 5), padding=(2, 2, 2, 2)), L("gap", (1,)),
                                         L("dense", (2,), channels=4)))


def test_refilled_planes_keep_their_padding_exactly() -> None:
    """Exact at N = 4, 8 and 16 on the ISA model; from the third step on the depthwise planes load with ``keep``
    (never the first two, whose half holds another layer's data); the cost model charges the load unit fewer
    cycles for them and the layer no more."""
    from tinycompile.accel.assembler import Instr
    from tinycompile.fpga.codegen import compile_graph
    from tinycompile.fpga.schedule import _work, simulate

    assert sum(1 for _ in _exact_layers_on_model(KEEP_PADDING)) == 12
    graph = random_graph(KEEP_PADDING)
    for n in (4, 8, 16):
        prog = compile_graph(graph, AccelConfig.for_array(n), (1 << 18) * n)
        for code in prog.layers[:2]:
            planes = [ins.fields.get("keep", 0) for ins in prog.instrs_of(code.index)
                      if ins.op == "LOAD" and ins.fields["sp"] == 0]
            assert len(planes) > 2 and planes[:2] == [0, 0] and all(planes[2:]), (n, code.index, planes)
        kept = [ins for c in prog.layers for ins in prog.instrs_of(c.index)]
        plain = [Instr(ins.op, {k: v for k, v in ins.fields.items() if k != "keep"}) for ins in kept]
        load_cycles = [sum(_work("LOAD", ins.fields, n)[1] for ins in code if ins.op == "LOAD")
                       for code in (kept, plain)]
        assert load_cycles[0] < load_cycles[1] and simulate(kept, n).cycles <= simulate(plain, n).cycles

"""The packed network input the SoC's core writes: only the pixels the first layer's LOADs read (a read grid), the
rest left as they are; checked on the ISA model, no RTL."""

from __future__ import annotations

import numpy as np
import pytest

from nets import random_graph
from tinycompile.accel.config import AccelConfig
from tinycompile.accel.layout import read_tensor
from tinycompile.accel.model import run_model
from tinycompile.arch import ArchSpec, Layer
from tinycompile.fpga.codegen import compile_graph
from tinycompile.soc.feed import read_grid, written_bytes

L = Layer


def _spec(stride: int) -> ArchSpec:
    """DS-CNN's first layer in small (10 x 4 kernel, one channel, SAME-like padding) and a dense head."""
    return ArchSpec((1, 21, 10), 4, (
        L("conv", (-1,), channels=8, kernel=(10, 4), stride=(stride, stride), padding=(4, 5, 1, 2), relu=True),
        L("flatten", (0,)),
        L("dense", (1,), channels=4),
    ))  # fmt: skip


@pytest.mark.parametrize(("stride", "grid"), [(2, ((0, 2), (0, 2))), (1, ((0, 1), (0, 1)))])
def test_pixels_off_the_read_grid_are_never_read(stride: int, grid: tuple) -> None:
    """The grid is what the strides give (2 x 2: every second packed row and column; 1: all of them), and a packed
    input whose pixels off the grid hold garbage gives every layer the same output, bit for bit, as the whole one."""
    graph = random_graph(_spec(stride))
    cfg = AccelConfig.for_array(8)
    prog = compile_graph(graph, cfg, 1 << 20)
    assert prog.pack is not None and read_grid(prog) == grid
    loc = prog.input
    assert loc is not None
    (y0, ys), (q0, qs) = grid
    assert written_bytes(prog) == len(range(y0, loc.h, ys)) * len(range(q0, loc.w, qs)) * 8
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, graph.input_shape).astype(np.int8)
    whole = prog.with_input(x)
    damaged = prog.with_input(x)
    pixels = damaged.data[loc.addr : loc.addr + loc.nbytes(8)].reshape(loc.h, loc.w, 8)
    on = np.zeros((loc.h, loc.w), bool)
    on[y0::ys, q0::qs] = True
    pixels[~on] = rng.integers(0, 256, (int((~on).sum()), 8), dtype=np.uint8)
    assert stride == 1 or (~on).any()
    outs = [run_model(img, prog.prog_addr, cfg) for img in (whole, damaged)]
    for code in prog.layers:
        if code.count:
            np.testing.assert_array_equal(read_tensor(outs[0], code.out), read_tensor(outs[1], code.out))

"""The packed network input the SoC's core writes: only the pixels the first layer's LOADs read (a read grid), the
rest left as they are; checked on the ISA model, no RTL."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nets import random_graph
from tinycompile.accel.config import AccelConfig
from tinycompile.accel.layout import cpad, read_tensor
from tinycompile.accel.model import run_model
from tinycompile.arch import ArchSpec, Layer
from tinycompile.fpga.codegen import compile_graph
from tinycompile.soc.feed import WRITE_INPUT, input_defines, input_writes, read_grid

L = Layer


def _spec(stride: int) -> ArchSpec:
    """DS-CNN's first layer in small (10 x 4 kernel, one channel, SAME-like padding) and a dense head."""
    return ArchSpec((1, 21, 10), 4, (
        L("conv", (-1,), channels=8, kernel=(10, 4), stride=(stride, stride), padding=(4, 5, 1, 2), relu=True),
        L("flatten", (0,)),
        L("dense", (1,), channels=4),
    ))  # fmt: skip


# writes: the 21 rows of 10 bytes copied byte by byte, and 2 words (2 rows x 4 columns) stored per packed pixel on
# the grid in the packed rows 3..24 that hold data (4 zero-point rows above): 11 x 7 of them at stride 2, 22 x 13 at 1
@pytest.mark.parametrize(("stride", "grid", "writes"), [(2, ((0, 2), (0, 2)), 210 + 11 * 7 * 2),
                                                        (1, ((0, 1), (0, 1)), 210 + 22 * 13 * 2)])
def test_pixels_off_the_read_grid_are_never_read(stride: int, grid: tuple, writes: int) -> None:
    """The grid is what the strides give (2 x 2: every second packed row and column; 1: all of them), and a packed
    input whose pixels off the grid hold garbage gives every layer the same output, bit for bit, as the whole one."""
    graph = random_graph(_spec(stride))
    cfg = AccelConfig.for_array(8)
    prog = compile_graph(graph, cfg, 1 << 20)
    assert prog.pack is not None and read_grid(prog) == grid
    loc = prog.input
    assert loc is not None
    (y0, ys), (q0, qs) = grid
    assert input_writes(graph, prog) == writes
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


_HARNESS = """\
#include <stdint.h>
#include <stdio.h>
#include <string.h>
static uint8_t tc_mem[TC_MEM_BYTES] __attribute__((aligned(8)));
#define TC_ACCEL_MEM_BASE ((uintptr_t)tc_mem)
@WRITE_INPUT@
int main(void) {
  static int8_t x[TC_H * TC_W * TC_C];
  if (fread(tc_mem, 1, TC_MEM_BYTES, stdin) != TC_MEM_BYTES) return 1;
  for (int k = 0; k < 2; ++k) {  /* the first call lays out the padding, the second writes only the data rows */
    if (fread(x, 1, sizeof(x), stdin) != sizeof(x)) return 1;
    write_input(x);
    fwrite(tc_mem, 1, TC_MEM_BYTES, stdout);
  }
  return 0;
}
"""


def _one_layer(shape: tuple, kernel: tuple, stride: tuple, padding: tuple) -> ArchSpec:
    return ArchSpec(shape, 4, (L("conv", (-1,), channels=8, kernel=kernel, stride=stride, padding=padding),
                               L("flatten", (0,)), L("dense", (1,), channels=4)))


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs the host's C compiler")
@pytest.mark.parametrize(("spec", "n"), [
    (_spec(2), 8),                                                    # DS-CNN's: 2 rows x 4 columns, 2 x 2 grid
    (_spec(2), 16),                                                   # 4 rows x 4 columns
    (_one_layer((1, 1, 40), (1, 5), (1, 1), (0, 0, 2, 2)), 8),        # MNIST-1D's: 5 columns, two words a pixel
    (_one_layer((3, 9, 9), (3, 3), (1, 1), (1, 1, 1, 1)), 8),         # 2 columns of 3 channels: 6 bytes a pixel
    (_one_layer((1, 9, 9), (3, 3), (2, 2), (1, 1, 1, 1)), 8),         # 2 rows x 3 columns: rows inside words
    (_one_layer((5, 6, 7), (3, 3), (1, 1), (1, 1, 1, 1)), 8),         # not packed: 5 channels a pixel
    (_one_layer((2, 1, 30), (1, 7), (1, 3), (0, 0, 3, 3)), 8),        # 4 columns of 2 channels, every third column
])  # fmt: skip
def test_the_cores_input_writer_matches_the_packing(spec: ArchSpec, n: int, tmp_path: Path) -> None:
    """The C routine the SoC's core runs (compiled here for the host: same byte order) writes, for two inputs in
    turn, exactly the packed pixels on the read grid that the accelerator's image holds for them, and nothing else."""
    graph = random_graph(spec)
    prog = compile_graph(graph, AccelConfig.for_array(n), 1 << 18)
    assert prog.input is not None
    loc, pixel = prog.input, cpad(prog.input.c, n)
    defines = {**input_defines(graph, prog), "TC_MEM_BYTES": prog.image.data.size}
    source = "".join(f"#define {k} ({v})\n" for k, v in defines.items()) + _HARNESS.replace("@WRITE_INPUT@", WRITE_INPUT)
    (tmp_path / "w.c").write_text(source)
    subprocess.run(["cc", "-O2", "-Wall", "-Werror", "-fsanitize=address,undefined", "-fno-sanitize-recover", "-o", str(tmp_path / "w"), str(tmp_path / "w.c")], check=True)
    rng = np.random.default_rng(5)
    xs = [rng.integers(-128, 128, graph.input_shape).astype(np.int8) for _ in range(2)]
    run = subprocess.run([str(tmp_path / "w")], input=prog.image.data.tobytes() + b"".join(x.tobytes() for x in xs),
                         capture_output=True)
    assert run.returncode == 0, run.stderr.decode()[-2000:]  # the sanitizers' report of a stray access
    out = run.stdout
    (y0, ys), (q0, qs) = read_grid(prog)
    on = np.zeros((loc.h, loc.w), bool)
    on[y0::ys, q0::qs] = True
    before = prog.image.data[loc.addr : loc.addr + loc.nbytes(n)].reshape(loc.h, loc.w, pixel)
    for k, x in enumerate(xs):
        mem = np.frombuffer(out, np.uint8)[k * prog.image.data.size : (k + 1) * prog.image.data.size]
        np.testing.assert_array_equal(np.delete(mem, np.s_[loc.addr : loc.addr + loc.nbytes(n)]),
                                      np.delete(prog.image.data, np.s_[loc.addr : loc.addr + loc.nbytes(n)]))
        got = mem[loc.addr : loc.addr + loc.nbytes(n)].reshape(loc.h, loc.w, pixel)
        want = prog.with_input(x).data[loc.addr : loc.addr + loc.nbytes(n)].reshape(loc.h, loc.w, pixel)
        np.testing.assert_array_equal(got[on], want[on])
        np.testing.assert_array_equal(got[~on], before[~on])

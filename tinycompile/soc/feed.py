"""The network input as the accelerator's first layer reads it, written by the SoC's core: the C routine
``write_input`` (padded with the input's zero point and packed ``P`` columns x ``ROWS`` rows per word, as
``tinycompile.fpga.codegen.InputPack`` describes) and the macros it needs, and the test inputs as C."""

from __future__ import annotations

import numpy as np

from tinycompile.accel.isa import SP_INP
from tinycompile.accel.layout import cpad
from tinycompile.fpga.codegen import AccelProgram, InputPack
from tinycompile.quant.graph import QuantGraph

WRITE_INPUT = """\
/* The input as the first layer reads it: pixel (y, q) holds rows y..y+ROWS-1, columns q..q+P-1 of the input
   padded with its zero point (TOP rows above, LEFT columns before it), channels padded to the word with zeros.
   The padded input is laid out in RAM (cached) once; per input only its H real rows are copied in, and only the
   packed rows that hold one of them are written out (the others hold padding only: written by the first call).
   The channel padding words are never written: the image copied in at boot holds zeros there. Nor are the packed
   pixels the program never loads (a strided first layer reads every YSTEP-th packed row from Y0 and every QSTEP-th
   column from Q0: with stride 2 x 2 a quarter of them). */
#define TC_XW (TC_WP + TC_P)
#define TC_WORDS (TC_PIXEL_BYTES / 4)
static int8_t xp[(TC_HP + TC_ROWS) * TC_XW * TC_C + 4] __attribute__((aligned(4)));
static int tc_input_written;

static void write_input(const int8_t *x) {
  int y0 = TC_Y0, y1 = TC_HP;
  if (!tc_input_written) {
    memset(xp, TC_ZP, sizeof(xp));
    tc_input_written = 1;
  } else {
    y0 = TC_TOP - TC_ROWS + 1 > 0 ? TC_TOP - TC_ROWS + 1 : 0;
    y1 = TC_TOP + TC_H < TC_HP ? TC_TOP + TC_H : TC_HP;
    if (y0 < TC_Y0) y0 = TC_Y0;
    y0 = TC_Y0 + (y0 - TC_Y0 + TC_YSTEP - 1) / TC_YSTEP * TC_YSTEP;  /* the first row read at or after y0 */
  }
  for (int y = 0; y < TC_H; ++y) {
    int8_t *d = &xp[((y + TC_TOP) * TC_XW + TC_LEFT) * TC_C];
    const int8_t *s = &x[y * TC_W * TC_C];
#pragma GCC unroll 16
    for (int i = 0; i < TC_W * TC_C; ++i) d[i] = s[i];  /* a short row: inline, not a call of memcpy's byte loop */
  }
#if TC_P * TC_C == 4 && (TC_XW * TC_C) % 4 == 0
  /* One word per run (DS-CNN's first layer: 4 columns of 1 channel): the 4 / C windows that start in an aligned
     word of a row are funnel shifts of it and the next word, with constant shifts. */
  for (int y = y0; y < y1; y += TC_YSTEP) {
    volatile uint32_t *dst = (volatile uint32_t *)(TC_ACCEL_MEM_BASE + TC_IN_ADDR) + y * TC_WP * TC_WORDS;
    const uint32_t *row[TC_ROWS];
    for (int ty = 0; ty < TC_ROWS; ++ty) row[ty] = (const uint32_t *)&xp[(y + ty) * TC_XW * TC_C];
    for (int i = 0; i * (4 / TC_C) < TC_WP; ++i) {
      uint32_t lo[TC_ROWS], hi[TC_ROWS];  /* in registers: the stores below cannot change them */
      for (int ty = 0; ty < TC_ROWS; ++ty) {
        lo[ty] = row[ty][i];
        hi[ty] = row[ty][i + 1];
      }
#pragma GCC unroll 4
      for (int k = 0; k < 4 / TC_C; ++k) {
        int q = i * (4 / TC_C) + k;
        if (q >= TC_WP) break;
        if (q >= TC_Q0 && (q - TC_Q0) % TC_QSTEP == 0)  /* constant per k when QSTEP divides 4 / C: unrolled away */
          for (int ty = 0; ty < TC_ROWS; ++ty)
            dst[q * TC_WORDS + ty] = k ? lo[ty] >> (8 * TC_C * k) | hi[ty] << (32 - 8 * TC_C * k) : lo[ty];
      }
    }
  }
#else
  uint32_t px[TC_WORDS] = {0};
  for (int y = y0; y < y1; y += TC_YSTEP) {
    for (int q = TC_Q0; q < TC_WP; q += TC_QSTEP) {
      volatile uint32_t *dst = (volatile uint32_t *)(TC_ACCEL_MEM_BASE + TC_IN_ADDR) + (y * TC_WP + q) * TC_WORDS;
      for (int ty = 0; ty < TC_ROWS; ++ty)
        memcpy((uint8_t *)px + ty * TC_P * TC_C, &xp[((y + ty) * TC_XW + q) * TC_C], TC_P * TC_C);
      for (int i = 0; i < TC_WORDS; ++i) *dst++ = px[i];
    }
  }
#endif
}

"""

def input_defines(graph: QuantGraph, prog: AccelProgram) -> dict[str, int]:
    """The macros ``WRITE_INPUT`` needs: where the program reads the network input and how it is packed."""
    assert prog.input is not None
    h, w, c = graph.input_shape
    pack = prog.pack or InputPack(p=1, left=0, right=0, zero_point=0)
    hp, wp, cp = pack.shape(h, w, c)
    assert (hp, wp, cp) == (prog.input.h, prog.input.w, prog.input.c), "the input's packing disagrees with its place"
    (y0, ystep), (q0, qstep) = read_grid(prog)
    return dict(TC_IN_ADDR=prog.input.addr, TC_H=h, TC_W=w, TC_C=c, TC_HP=hp, TC_WP=wp, TC_P=pack.p, TC_ROWS=pack.rows,
                TC_TOP=pack.top, TC_LEFT=pack.left, TC_ZP=pack.zero_point, TC_PIXEL_BYTES=cpad(cp, prog.params.n),
                TC_Y0=y0, TC_YSTEP=ystep, TC_Q0=q0, TC_QSTEP=qstep)


def read_grid(prog: AccelProgram) -> tuple[tuple[int, int], tuple[int, int]]:
    """(first, step) of the packed input's rows and of its columns that the program's LOADs read: every pixel it
    reads lies on that grid (steps of 1 where the rows or columns read are not evenly spaced)."""
    from tinycompile.accel.model import pattern_reads

    loc = prog.input
    assert loc is not None
    pixel = cpad(loc.c, prog.params.n)
    reads = {(a - loc.addr) // pixel for ins in prog.instrs
             if ins.op == "LOAD" and ins.get("sp") == SP_INP for a in pattern_reads(ins)
             if loc.addr <= a < loc.addr + loc.nbytes(prog.params.n)}
    return _progression(sorted({r // loc.w for r in reads})), _progression(sorted({r % loc.w for r in reads}))


def written_bytes(prog: AccelProgram) -> int:
    """Bytes of the packed input ``write_input`` writes for the first input: the pixels on the read grid."""
    loc = prog.input
    assert loc is not None
    (y0, ystep), (q0, qstep) = read_grid(prog)
    return len(range(y0, loc.h, ystep)) * len(range(q0, loc.w, qstep)) * cpad(loc.c, prog.params.n)


def _progression(values: list[int]) -> tuple[int, int]:
    """(first, step) of an evenly spaced list (step 1 if it is not, or has under two values)."""
    if not values:
        return 0, 1
    steps = {b - a for a, b in zip(values, values[1:])}
    return values[0], steps.pop() if len(steps) == 1 else 1


def c_vectors(vectors: np.ndarray) -> str:
    """``tc_vectors[TC_NUM_VECTORS][size]``: the int8 inputs, one row each, as a C definition."""
    flat = np.asarray(vectors, np.int8).reshape(len(vectors), -1)
    rows = ",\n".join("  {" + ",".join(str(int(v)) for v in x) + "}" for x in flat)
    return f"static const int8_t tc_vectors[TC_NUM_VECTORS][{flat.shape[1]}] = {{\n{rows}\n}};\n"

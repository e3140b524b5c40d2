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
   The padded input is laid out in RAM (cached) once, each row a whole number of words, XOFF bytes in so that its
   data starts on a word; per input only its H real rows are copied in, and only the packed rows that hold one of
   them are written out (the others hold padding only: written by the first call). The channel padding words are
   never written: the image copied in at boot holds zeros there. Nor are the packed pixels the program never loads
   (a strided first layer reads every YSTEP-th packed row from Y0 and every QSTEP-th column from Q0: with stride
   2 x 2 a quarter of them). */
#define TC_SEG (TC_P * TC_C)                              /* bytes of one input row in a pixel */
#define TC_SEGW ((TC_SEG + 3) / 4)                        /* the words they take */
#define TC_XOFF ((TC_W * TC_C) % 4 ? 0 : (4 - TC_LEFT * TC_C % 4) % 4)  /* where the rows copy as words */
#define TC_XB ((TC_XOFF + (TC_WP + TC_P) * TC_C + 3) / 4 * 4)  /* bytes of a padded row */
#define TC_WORDS (TC_PIXEL_BYTES / 4)
static int8_t xp[(TC_HP + TC_ROWS) * TC_XB + 4 * (TC_C + TC_SEGW + 1)] __attribute__((aligned(4)));
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
    int8_t *d = &xp[(y + TC_TOP) * TC_XB + TC_XOFF + TC_LEFT * TC_C];
    const int8_t *s = &x[y * TC_W * TC_C];
    /* a short row: inline, not a call of memcpy's byte loop */
    if ((TC_W * TC_C) % 4 == 0 && ((uintptr_t)s & 3) == 0) {
#pragma GCC unroll 16
      for (int i = 0; i < TC_W * TC_C / 4; ++i) ((uint32_t *)d)[i] = ((const uint32_t *)s)[i];
    } else {
#pragma GCC unroll 16
      for (int i = 0; i < TC_W * TC_C; ++i) d[i] = s[i];
    }
  }
#if TC_ROWS == 1 || TC_SEG % 4 == 0
  /* Every input row of a pixel fills whole words of it (the last one masked to the row's bytes). Pixel q = 4i + k
     starts in word iC + (XOFF + kC) / 4 of its padded row, (XOFF + kC) % 4 bytes in: for each k of the unrolled
     loop a constant funnel shift of the 4 pixels' words, loaded into registers first (the stores may alias them). */
  for (int y = y0; y < y1; y += TC_YSTEP) {
    volatile uint32_t *dst = (volatile uint32_t *)(TC_ACCEL_MEM_BASE + TC_IN_ADDR) + y * TC_WP * TC_WORDS;
    for (int i = 0; 4 * i < TC_WP; ++i) {
      uint32_t w[TC_ROWS][TC_C + TC_SEGW + 1];
      for (int ty = 0; ty < TC_ROWS; ++ty)
#pragma GCC unroll 16
        for (int m = 0; m <= TC_C + TC_SEGW; ++m) w[ty][m] = ((const uint32_t *)&xp[(y + ty) * TC_XB])[i * TC_C + m];
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        const int q = 4 * i + k, a = (TC_XOFF + k * TC_C) / 4, sh = 8 * ((TC_XOFF + k * TC_C) % 4);
        if (q >= TC_WP) break;
        if (q < TC_Q0 || (4 % TC_QSTEP == 0 ? ((k - TC_Q0) % TC_QSTEP + TC_QSTEP) % TC_QSTEP : (q - TC_Q0) % TC_QSTEP))
          continue;  /* constant for each k where the column step divides 4 */
        for (int ty = 0; ty < TC_ROWS; ++ty)
#pragma GCC unroll 8
          for (int j = 0; j < TC_SEGW; ++j) {
            uint32_t v = sh ? w[ty][a + j] >> sh | w[ty][a + j + 1] << (32 - sh) : w[ty][a + j];
            if (j == TC_SEGW - 1 && TC_SEG % 4) v &= (1u << 8 * (TC_SEG % 4)) - 1;
            dst[q * TC_WORDS + ty * TC_SEGW + j] = v;
          }
      }
    }
  }
#else
  /* Rows of a pixel that start inside a word (ROWS > 1 and P x C not a whole number of words): byte copies. */
  uint32_t px[TC_WORDS] = {0};
  for (int y = y0; y < y1; y += TC_YSTEP) {
    for (int q = TC_Q0; q < TC_WP; q += TC_QSTEP) {
      volatile uint32_t *dst = (volatile uint32_t *)(TC_ACCEL_MEM_BASE + TC_IN_ADDR) + (y * TC_WP + q) * TC_WORDS;
      for (int ty = 0; ty < TC_ROWS; ++ty)
        memcpy((uint8_t *)px + ty * TC_SEG, &xp[(y + ty) * TC_XB + TC_XOFF + q * TC_C], TC_SEG);
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


def input_writes(graph: QuantGraph, prog: AccelProgram) -> int:
    """What ``write_input`` does for one input in the steady state: :func:`write_ops` for the packed rows that hold
    data and the columns on the read grid."""
    d = input_defines(graph, prog)
    y0, ystep = d["TC_Y0"], d["TC_YSTEP"]
    first = max(d["TC_TOP"] - d["TC_ROWS"] + 1, 0, y0)
    first = y0 + -(-(first - y0) // ystep) * ystep
    pixels = len(range(first, min(d["TC_TOP"] + d["TC_H"], d["TC_HP"]), ystep)) \
        * len(range(d["TC_Q0"], d["TC_WP"], d["TC_QSTEP"]))
    return write_ops(pixels, d["TC_ROWS"], d["TC_P"] * d["TC_C"], d["TC_PIXEL_BYTES"], (d["TC_H"], d["TC_W"], d["TC_C"]))


def write_ops(pixels: int, rows: int, row_bytes: int, pixel_bytes: int, shape: tuple[int, int, int]) -> int:
    """The words ``write_input`` stores for ``pixels`` packed pixels of ``rows`` input rows of ``row_bytes`` each,
    plus the moves of its copy of an (H, W, C) input (words where a row is whole words, else bytes): the operations
    its cycles follow (the soc target's ``input_cycles_per_write``)."""
    per_pixel = rows * -(-row_bytes // 4) if rows == 1 or row_bytes % 4 == 0 else pixel_bytes // 4
    h, w, c = shape
    return pixels * per_pixel + h * (w * c // 4 if w * c % 4 == 0 else w * c)


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
    return (f"static const int8_t tc_vectors[TC_NUM_VECTORS][{flat.shape[1]}] __attribute__((aligned(4))) = {{\n"
            f"{rows}\n}};\n")

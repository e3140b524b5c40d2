"""The network input as the accelerator's first layer reads it, written by the SoC's core: the C routine
``write_input`` (padded with the input's zero point and packed ``P`` columns x ``ROWS`` rows per word, as
``tinycompile.fpga.codegen.InputPack`` describes) and the macros it needs, and the test inputs as C."""

from __future__ import annotations

import numpy as np

from tinycompile.accel.layout import cpad
from tinycompile.fpga.codegen import AccelProgram, InputPack
from tinycompile.quant.graph import QuantGraph

WRITE_INPUT = """\
/* The input as the first layer reads it: pixel (y, q) holds rows y..y+ROWS-1, columns q..q+P-1 of the input
   padded with its zero point (TOP rows above, LEFT columns before it), channels padded to the word with zeros.
   The padded input is laid out once in RAM (cached), so each packed pixel is ROWS contiguous runs of P*C bytes:
   copied with constant sizes into an aligned word buffer, then stored as whole words. */
#define TC_XW (TC_WP + TC_P)
static int8_t xp[(TC_HP + TC_ROWS) * TC_XW * TC_C];

static void write_input(const int8_t *x) {
  memset(xp, TC_ZP, sizeof(xp));
  for (int y = 0; y < TC_H; ++y) memcpy(&xp[((y + TC_TOP) * TC_XW + TC_LEFT) * TC_C], &x[y * TC_W * TC_C], TC_W * TC_C);
  volatile uint32_t *dst = (volatile uint32_t *)(TC_ACCEL_MEM_BASE + TC_IN_ADDR);
#if TC_P * TC_C == 4
  /* One word per run (DS-CNN's first layer: 4 columns of 1 channel): along a row the word slides by C bytes, so
     each step shifts C bytes out and C bytes in instead of gathering four. */
  for (int y = 0; y < TC_HP; ++y) {
    const uint8_t *src[TC_ROWS];
    uint32_t win[TC_ROWS];
    for (int ty = 0; ty < TC_ROWS; ++ty) {
      src[ty] = (const uint8_t *)&xp[(y + ty) * TC_XW * TC_C];
      win[ty] = src[ty][0] | (uint32_t)src[ty][1] << 8 | (uint32_t)src[ty][2] << 16 | (uint32_t)src[ty][3] << 24;
    }
    for (int q = 0; q < TC_WP; ++q) {
      for (int ty = 0; ty < TC_ROWS; ++ty) *dst++ = win[ty];
      for (int i = TC_ROWS; i < TC_PIXEL_BYTES / 4; ++i) *dst++ = 0u;
      for (int ty = 0; ty < TC_ROWS; ++ty)
        for (int c = 0; c < TC_C; ++c) win[ty] = win[ty] >> 8 | (uint32_t)src[ty][4 + q * TC_C + c] << 24;
    }
  }
#else
  uint32_t px[TC_PIXEL_BYTES / 4] = {0};
  for (int y = 0; y < TC_HP; ++y) {
    for (int q = 0; q < TC_WP; ++q) {
      for (int ty = 0; ty < TC_ROWS; ++ty)
        memcpy((uint8_t *)px + ty * TC_P * TC_C, &xp[((y + ty) * TC_XW + q) * TC_C], TC_P * TC_C);
      for (int i = 0; i < TC_PIXEL_BYTES / 4; ++i) *dst++ = px[i];
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
    return dict(TC_IN_ADDR=prog.input.addr, TC_H=h, TC_W=w, TC_C=c, TC_HP=hp, TC_WP=wp, TC_P=pack.p, TC_ROWS=pack.rows,
                TC_TOP=pack.top, TC_LEFT=pack.left, TC_ZP=pack.zero_point, TC_PIXEL_BYTES=cpad(cp, prog.params.n))


def c_vectors(vectors: np.ndarray) -> str:
    """``tc_vectors[TC_NUM_VECTORS][size]``: the int8 inputs, one row each, as a C definition."""
    flat = np.asarray(vectors, np.int8).reshape(len(vectors), -1)
    rows = ",\n".join("  {" + ",".join(str(int(v)) for v in x) + "}" for x in flat)
    return f"static const int8_t tc_vectors[TC_NUM_VECTORS][{flat.shape[1]}] = {{\n{rows}\n}};\n"

"""Patch-based execution on the MCU: the patch stage's kernels and its loop in the AOT runner.

The graph is cut in two (``split``): the stage's ops with their patch shapes and no padding (``cost.patches``:
positions outside a tensor are filled with its zero point in the patch buffers, which is what padding reads), and
the rest of the network reading the stage's output as its input. Both are lowered by TVM as any graph
(``lower.lower``); the stage's kernels are renamed ``patch_*``. ``stage_source`` writes the runner's loop: per patch,
load the input region (zero point outside the image), run each stage kernel and fill its output's outside
positions, and copy the output patch into the stage's output tensor.
"""

from __future__ import annotations

import dataclasses

import tvm

from tinycompile.arch import ArchSpec
from tinycompile.cost.memory import MemoryPlan
from tinycompile.cost.patches import PatchPlan
from tinycompile.mcu.lower import Arg, Call, Lowered, lower
from tinycompile.mcu.tuning import DEFAULT, ScheduleChoices
from tinycompile.quant.graph import QuantGraph

PREFIX = "patch_"


def split(graph: QuantGraph, spec: ArchSpec, plan: PatchPlan) -> tuple[QuantGraph, QuantGraph]:
    """The stage as a graph over one input patch, and the rest as a graph over the stage's output."""
    shapes = spec.shapes()
    stage = []
    for i, op in enumerate(graph.ops[: plan.end + 1]):
        c_in, h_in, w_in = plan.in_shape(spec, i, shapes)
        c_out, h_out, w_out = plan.out_shape(spec, i, shapes)
        stage.append(dataclasses.replace(op, in_shapes=((h_in, w_in, c_in),), out_shape=(h_out, w_out, c_out),
                                         padding=(0, 0, 0, 0)))
    c0, h0, w0 = plan.in_shape(spec, 0, shapes)
    first = QuantGraph((h0, w0, c0), graph.input_q, stage, dict(graph.meta))
    cut = plan.end + 1
    rest_ops = [dataclasses.replace(op, inputs=tuple(j - cut for j in op.inputs)) for op in graph.ops[cut:]]
    rest = QuantGraph(graph.ops[plan.end].out_shape, graph.ops[plan.end].out_q, rest_ops, dict(graph.meta))
    return first, rest


def stage_source(graph: QuantGraph, memory: MemoryPlan, kernel_calls: list[str]) -> str:
    """The C body of the patch loop: ``kernel_calls[l]`` is the statement calling stage kernel ``l``."""
    plan = memory.patch
    assert plan is not None
    off = memory.patch_offsets
    end = plan.end
    ih, iw, ic = graph.input_shape
    lines = [
        f"  for (int32_t pi = 0; pi < {plan.grid[0]}; ++pi) {{",
        f"    for (int32_t pj = 0; pj < {plan.grid[1]}; ++pj) {{",
        "      const int32_t a = tc_patch_rows[pi], b = tc_patch_cols[pj];",
        f"      tc_patch_load(tc_arena + {off[0]}, input, {_region(plan, 0)}, {ih}, {iw}, {ic}, {graph.input_q.zero_point});",
    ]
    for l in range(end + 1):
        lines.append("      " + kernel_calls[l])
        if l < end:
            h, w, c = graph.ops[l].out_shape
            lines.append(f"      tc_patch_fill(tc_arena + {off[l + 1]}, {_region(plan, l + 1)}, {h}, {w}, {c}, "
                         f"{graph.ops[l].out_q.zero_point});")
    h, w, c = graph.ops[end].out_shape
    out = memory.tensor_offsets[end]
    lines.append(f"      tc_patch_store(tc_arena + {out}, tc_arena + {off[end + 1]}, a, b, {plan.patch[0]}, "
                 f"{plan.patch[1]}, {w}, {c});")
    lines += ["    }", "  }"]
    return "\n".join(lines)


def stage_tables(plan: PatchPlan) -> str:
    """The patch starts along each axis of the stage's output."""
    rows = ", ".join(map(str, plan.row_starts))
    cols = ", ".join(map(str, plan.col_starts))
    return (f"static const int32_t tc_patch_rows[{len(plan.row_starts)}] = {{{rows}}};\n"
            f"static const int32_t tc_patch_cols[{len(plan.col_starts)}] = {{{cols}}};\n")


def _region(plan: PatchPlan, layer: int) -> str:
    """Arguments ``y0, x0, h, w`` of layer ``layer``'s input region for the patch at ``(a, b)``."""
    r, c = plan.rows[layer], plan.cols[layer]
    return f"{r.scale} * a + {r.shift}, {c.scale} * b + {c.shift}, {r.size}, {c.size}"


# Helpers of the generated runner. Copies go a 32-bit word at a time (the patch rows are not aligned, which Armv7-M
# and RISC-V loads allow): the C library's memcpy/memset are byte loops in picolibc's size-optimised build, and GCC
# turns a plain copy loop back into a call of them unless told not to.
HELPERS = r"""
#if defined(__GNUC__) && !defined(__clang__)
#define TC_NO_LIBCALL __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define TC_NO_LIBCALL
#endif
TC_NO_LIBCALL static void tc_copy(int8_t* d, const int8_t* s, int32_t n) {
  for (; n >= 4; n -= 4, d += 4, s += 4) { uint32_t v; __builtin_memcpy(&v, s, 4); __builtin_memcpy(d, &v, 4); }
  for (; n > 0; --n) *d++ = *s++;
}
TC_NO_LIBCALL static void tc_set(int8_t* d, int8_t value, int32_t n) {
  const uint32_t v = 0x01010101u * (uint8_t)value;
  for (; n >= 4; n -= 4, d += 4) __builtin_memcpy(d, &v, 4);
  for (; n > 0; --n) *d++ = value;
}
/* Region [y0, y0+h) x [x0, x0+w) of an H x W x C tensor: the zero point where it lies outside the tensor. */
static void tc_patch_fill(int8_t* p, int32_t y0, int32_t x0, int32_t h, int32_t w, int32_t H, int32_t W, int32_t C,
                          int32_t zp) {
  const int32_t lo = x0 < 0 ? -x0 : 0, hi = x0 + w > W ? W - x0 : w;
  if (y0 >= 0 && y0 + h <= H && lo == 0 && hi == w) return;
  for (int32_t y = 0; y < h; ++y, p += w * C) {
    if (y0 + y < 0 || y0 + y >= H) { tc_set(p, (int8_t)zp, w * C); continue; }
    if (lo > 0) tc_set(p, (int8_t)zp, lo * C);
    if (hi < w) tc_set(p + hi * C, (int8_t)zp, (w - hi) * C);
  }
}
/* The same region copied from the tensor at src, the zero point outside it. */
static void tc_patch_load(int8_t* p, const int8_t* src, int32_t y0, int32_t x0, int32_t h, int32_t w, int32_t H,
                          int32_t W, int32_t C, int32_t zp) {
  const int32_t lo = x0 < 0 ? -x0 : 0, hi = x0 + w > W ? W - x0 : w;
  for (int32_t y = 0; y < h; ++y) {
    if (y0 + y < 0 || y0 + y >= H) continue;
    tc_copy(p + (y * w + lo) * C, src + ((y0 + y) * W + x0 + lo) * C, (hi - lo) * C);
  }
  tc_patch_fill(p, y0, x0, h, w, H, W, C, zp);
}
/* A patch of h x w pixels into the W-wide tensor at dst, at row a, column b. */
static void tc_patch_store(int8_t* dst, const int8_t* p, int32_t a, int32_t b, int32_t h, int32_t w, int32_t W,
                           int32_t C) {
  for (int32_t y = 0; y < h; ++y) tc_copy(dst + ((a + y) * W + b) * C, p + y * w * C, w * C);
}
"""


def lower_patched(graph: QuantGraph, spec: ArchSpec, plan: PatchPlan, codegen: str = "c", dsp: bool | str | None = False,
                  choices: ScheduleChoices = DEFAULT) -> Lowered:
    """The stage's kernels (renamed ``patch_*``) then the rest's, in one TIR module; the rest's calls name the
    original graph's ops and tensors."""
    first, rest = split(graph, spec, plan)
    low_s = lower(first, codegen, dsp, choices)
    low_r = lower(rest, codegen, dsp, choices)
    cut = plan.end + 1
    funcs = {}
    for gv, func in low_s.tir.functions.items():
        name = PREFIX + gv.name_hint
        funcs[tvm.ir.GlobalVar(name)] = func.with_attr("global_symbol", name)
    for gv, func in low_r.tir.functions.items():
        funcs[gv] = func
    stage_calls = [Call(PREFIX + c.kernel, c.op_index, c.args) for c in low_s.calls]
    rest_calls = [
        Call(c.kernel, c.op_index + cut,
             tuple(a if a.tensor is None else Arg(a.tensor + cut, a.const) for a in c.args))
        for c in low_r.calls
    ]
    text = low_s.relax_text + "\n" + low_r.relax_text
    return Lowered(tvm.IRModule(funcs), stage_calls + rest_calls, text, stage_calls=len(stage_calls))

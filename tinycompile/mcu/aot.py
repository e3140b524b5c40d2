"""The static AOT runner: ``model.h`` / ``model.c`` calling the TVM kernels in order over one planned arena.

No malloc: activations live in one ``static int8_t`` arena laid out by ``cost.arena.plan_activations`` (the same plan
the cost model predicts with), weights are ``const`` (flash), every DLTensor and packed-argument array is a
compile-time constant, and the kernels' ``TVMBackendAllocWorkspace`` calls are served LIFO from a static scratch
region sized at build time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinycompile.arch import ArchSpec
from tinycompile.cost.arena import ArenaPlan, storage_tensor
from tinycompile.cost.memory import MemoryPlan
from tinycompile.mcu import patches
from tinycompile.mcu.codegen import ABI_HEADER
from tinycompile.mcu.lower import Lowered
from tinycompile.mcu.naming import Naming
from tinycompile.quant.graph import QuantGraph

_CTYPES = {np.dtype(np.int8): ("int8_t", 0, 8), np.dtype(np.int16): ("int16_t", 0, 16), np.dtype(np.int32): ("int32_t", 0, 32),
           np.dtype(np.float64): ("double", 2, 64)}  # DLPack type codes: 0 int, 2 float


@dataclass(frozen=True)
class RunnerInfo:
    """What the generated runner holds: sizes in bytes and the kernel order (for profiling)."""

    arena_bytes: int
    workspace_bytes: int
    weight_bytes: int
    kernels: tuple[str, ...]
    kernel_ops: tuple[int, ...]
    input_offset: int
    output_offset: int


def generate(
    graph: QuantGraph, spec: ArchSpec, lowered: Lowered, plan: ArenaPlan | MemoryPlan, workspace: int,
    naming: Naming = Naming()
) -> tuple[str, str, RunnerInfo]:
    """Return ``(model_h, model_c, info)``; every exported name as ``naming`` gives it. With a patch stage
    (``lowered.stage_calls``, ``plan.patch``) the first kernels run in the patch loop over patch buffers, reading
    the input from the caller's buffer."""
    in_size = int(np.prod(graph.input_shape))
    out_size = int(np.prod(graph.output_shape))
    last = len(graph.ops) - 1
    staged = lowered.stage_calls
    in_off = -1 if staged else plan.offset_of_tensor(-1, spec)
    out_off = plan.offset_of_tensor(last, spec)

    def offset(tensor: int, in_stage: bool = False) -> int:
        if in_stage:  # layer l's input patch is buffer l, its output buffer l + 1 (the stage's output patch last)
            assert isinstance(plan, MemoryPlan)
            return plan.patch_offsets[tensor + 1]
        return plan.offset_of_tensor(storage_tensor(spec, tensor), spec)

    lines: list[str] = []
    protos: list[str] = []
    calls: list[str] = []
    weight_bytes = 0
    for k, call in enumerate(lowered.calls):
        protos.append(f"int32_t {naming.kernel(call.kernel)}(void* self, void* args, int32_t num_args, void* result);")
        arg_names = []
        func = lowered.tir[call.kernel]
        shapes = [tuple(int(d) for d in p.shape) for p in func.params]
        args = list(call.args) + [None]  # the kernel's last argument is its output
        for a_i, arg in enumerate(args):
            name = f"k{k}_a{a_i}"
            if arg is not None and arg.const is not None:
                arr = np.ascontiguousarray(arg.const)
                ctype, code, bits = _CTYPES[arr.dtype]
                weight_bytes += arr.nbytes
                lines.append(f"static const {ctype} {name}_data[{arr.size}] __attribute__((aligned(4))) = {{{_c_values(arr)}}};")
                data = f"(void*){name}_data"
            else:
                tensor = call.op_index if arg is None else arg.tensor
                assert tensor is not None
                code, bits = 0, 8
                data = f"(void*)(tc_arena + {offset(tensor, k < staged)})"
            shape = shapes[a_i]
            dims = ", ".join(str(int(d)) for d in shape) or "1"
            lines.append(f"static const int64_t {name}_shape[{max(len(shape), 1)}] = {{{dims}}};")
            lines.append(
                f"static const DLTensor {name} = {{{data}, {{1, 0}}, {len(shape)}, {{{code}, {bits}, 1}}, "
                f"(int64_t*){name}_shape, NULL, 0}};"
            )
            arg_names.append(name)
        packed = ", ".join(f"{{.type_index = TC_FFI_DLTENSOR_PTR, .v_ptr = (void*)&{n}}}" for n in arg_names)
        lines.append(f"static const TVMFFIAny k{k}_args[{len(arg_names)}] = {{{packed}}};")
        lines.append("")
        step = max(k - staged + 1, 0) if staged else k  # the patch loop is step 0 of the profile
        invoke = f"if ({naming.kernel(call.kernel)}(NULL, (void*)k{k}_args, {len(arg_names)}, &ret) != 0) return -{step + 1};"
        calls.append(invoke if k < staged else f"  TC_PROFILE_HOOK({step});\n  {invoke}")
    if staged:
        assert isinstance(plan, MemoryPlan) and plan.patch is not None
        lines.append(patches.HELPERS + patches.stage_tables(plan.patch))
        calls[:staged] = ["  TC_PROFILE_HOOK(0);\n" + patches.stage_source(graph, plan, calls[:staged])]
    steps = lowered.calls[staged - 1 :] if staged else lowered.calls

    info = RunnerInfo(
        arena_bytes=plan.size,
        workspace_bytes=workspace,
        weight_bytes=weight_bytes,
        kernels=tuple(("patch stage" if staged and k == 0 else c.kernel) for k, c in enumerate(steps)),
        kernel_ops=tuple(c.op_index for c in steps),
        input_offset=in_off,
        output_offset=out_off,
    )
    names = {"N": naming.api(""), "P": naming.ident(""), "M": naming.macro("")}  # tc_model_, tc_, TC_ by default
    h = _HEADER.format(
        **names,
        in_size=in_size,
        out_size=out_size,
        arena=plan.size,
        workspace=workspace,
        n_kernels=len(steps),
        in_shape=" x ".join(map(str, graph.input_shape)),
        out_shape=" x ".join(map(str, graph.output_shape)),
        in_scale=graph.input_q.scale,
        in_zp=graph.input_q.zero_point,
        out_scale=graph.ops[-1].out_q.scale,
        out_zp=graph.ops[-1].out_q.zero_point,
    )
    c = _SOURCE.format(
        **names,
        alloc=naming.symbol("TVMBackendAllocWorkspace"),
        free=naming.symbol("TVMBackendFreeWorkspace"),
        alloc_ptr=naming.symbol("__TVMBackendAllocWorkspace"),
        free_ptr=naming.symbol("__TVMBackendFreeWorkspace"),
        abi=ABI_HEADER,
        arena=plan.size,
        workspace=max(workspace, 8),
        protos="\n".join(protos),
        tables="\n".join(lines),
        out_off=out_off,
        calls="\n".join(calls),
        n_kernels=len(steps),
        out_offsets=", ".join(str(offset(c.op_index)) for c in steps),
        out_sizes=", ".join(str(int(np.prod(graph.ops[c.op_index].out_shape))) for c in steps),
        load_input="" if staged else f"memcpy(tc_arena + {in_off}, input, {names['M']}INPUT_SIZE);",
    )
    return h, c, info


def _c_values(arr: np.ndarray) -> str:
    if arr.dtype.kind == "f":  # hexadecimal floating constants: the exact double, no decimal rounding
        return ",".join(float(v).hex() for v in arr.reshape(-1))
    return ",".join(str(v) for v in arr.reshape(-1).tolist())


_HEADER = """\
/* Generated by tinycompile: an int8 network compiled with TVM. Do not edit. */
#ifndef {M}MODEL_H
#define {M}MODEL_H
#include <stdint.h>

#define {M}INPUT_SIZE {in_size}      /* int8, NHWC {in_shape}: q = round(x / {in_scale!r}) + {in_zp} */
#define {M}OUTPUT_SIZE {out_size}    /* int8 logits {out_shape}: x = {out_scale!r} * (q - {out_zp}) */
#define {M}INPUT_SCALE {in_scale!r}f
#define {M}INPUT_ZERO_POINT {in_zp}
#define {M}OUTPUT_SCALE {out_scale!r}f
#define {M}OUTPUT_ZERO_POINT {out_zp}
#define {M}ARENA_BYTES {arena}       /* one static activation arena */
#define {M}WORKSPACE_BYTES {workspace}   /* static scratch for the kernels' workspace requests */
#define {M}NUM_KERNELS {n_kernels}

/* Run one inference. Returns 0, or -k if kernel k-1 failed. Not reentrant (one static arena). */
int {N}run(const int8_t* input, int8_t* output);

/* Largest scratch the kernels took so far (bytes). */
uint32_t {N}workspace_peak(void);

#ifdef {M}PROFILE
/* Called before kernel k (0..{M}NUM_KERNELS-1) and with k = {M}NUM_KERNELS after the last one. */
void {P}profile_hook(int k);
/* Where kernel k's int8 output lies in the arena (to check every layer against the integer reference). */
extern const uint32_t {P}kernel_out_offset[{M}NUM_KERNELS];
extern const uint32_t {P}kernel_out_size[{M}NUM_KERNELS];
const int8_t* {N}arena(void);
#endif
#endif
"""

_SOURCE = """\
/* Generated by tinycompile: the static AOT runner. Do not edit. */
#include <string.h>
#include "{abi}"
#include "model.h"

#ifdef {M}PROFILE
#define TC_PROFILE_HOOK(k) {P}profile_hook(k)
#else
#define TC_PROFILE_HOOK(k)
#endif

static int8_t tc_arena[{arena}] __attribute__((aligned(16)));

/* TVM kernels ask for scratch through these; served LIFO from a static region, never from a heap. */
static uint8_t tc_workspace[{workspace}] __attribute__((aligned(16)));
static uint32_t tc_workspace_top, tc_workspace_high;

void* {alloc}(int device_type, int device_id, uint64_t nbytes, int code_hint, int bits_hint) {{
  (void)device_type; (void)device_id; (void)code_hint; (void)bits_hint;
  uint32_t size = (uint32_t)((nbytes + 7u) & ~7ull);
  if (tc_workspace_top + size > sizeof(tc_workspace)) return NULL;
  void* p = tc_workspace + tc_workspace_top;
  tc_workspace_top += size;
  if (tc_workspace_top > tc_workspace_high) tc_workspace_high = tc_workspace_top;
  return p;
}}

int {free}(int device_type, int device_id, void* ptr) {{
  (void)device_type; (void)device_id;
  tc_workspace_top = (uint32_t)((uint8_t*)ptr - tc_workspace);
  return 0;
}}

/* LLVM-built kernels call the workspace functions through these pointers. */
void* (*{alloc_ptr})(int, int, uint64_t, int, int) = {alloc};
int (*{free_ptr})(int, int, void*) = {free};
#if defined(__arm__)
/* LLVM's ARM objects reference the C++ unwinder personality; nothing here unwinds. */
__attribute__((weak)) void __aeabi_unwind_cpp_pr0(void) {{}}
#endif

uint32_t {N}workspace_peak(void) {{ return tc_workspace_high; }}

#ifdef {M}PROFILE
const uint32_t {P}kernel_out_offset[{n_kernels}] = {{{out_offsets}}};
const uint32_t {P}kernel_out_size[{n_kernels}] = {{{out_sizes}}};
const int8_t* {N}arena(void) {{ return tc_arena; }}
#endif

{protos}

{tables}
int {N}run(const int8_t* input, int8_t* output) {{
  TVMFFIAny ret;
  {load_input}
{calls}
  TC_PROFILE_HOOK({n_kernels});
  memcpy(output, tc_arena + {out_off}, {M}OUTPUT_SIZE);
  return 0;
}}
"""

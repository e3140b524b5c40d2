"""A network on the SoC with its accelerator: one firmware image runs it end to end.

The fpga back end's partition decides where each layer runs. The accelerator's layers make one program (its code
generator), with DONE only where the core has work in between, so one start covers each run of consecutive
accelerator layers: the next layer's first weights and parameters load while this one's last stores drain
(cross-layer prefetch), and the core starts and polls once per run. Each layer's cycles come from the accelerator's
own cycle log (every layer's last barrier stamps its cycle counter into memory, rtl_sim/ISA.md SYNC). Each run of
consecutive layers the accelerator cannot run is a sub-network compiled by the MCU back end (TVM's C for the core)
into a library of its own name (``core0``, ...). The generated ``main()`` copies the accelerator's memory image in at
boot; then, per input, it writes the input as the first layer reads it, walks the steps in order (start the
accelerator and poll it; or copy a tensor out of the accelerator's memory, run a library, copy its result back) and
reads the output, timing each step with ``mcycle``; it reads the cycle log and prints the figures after the
inference, so neither is timed. A core part that starts with a concatenation of accelerator tensors has the
firmware copy each into its channels of one buffer (the concatenation's cycles), so the layers feeding it stay on
the accelerator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinycompile.accel.config import AccelConfig
from tinycompile.accel.layout import cpad
from tinycompile.errors import UserError
from tinycompile.fpga.codegen import AccelProgram, compile_graph, mac_rows, storage_index
from tinycompile.mcu import firmware
from tinycompile.mcu.library import compile_graph as compile_for_core
from tinycompile.mcu.library import write_library
from tinycompile.mcu.naming import Naming
from tinycompile.quant.graph import QuantGraph, spec_of
from tinycompile.soc.accel import c_words, run_firmware
from tinycompile.soc.feed import WRITE_INPUT, c_vectors, input_defines
from tinycompile.soc.rtl import AccelPart
from tinycompile.soc.simulate import SocRun
from tinycompile.targets import Target

MAX_POLLS = 100_000_000  # status reads before the driver gives up on a layer (rc 3: not finished)
ACCEL_RC = {1: "the accelerator stopped on an error", 2: "the accelerator addressed beyond its memory",
            3: "the accelerator did not finish"}


@dataclass(frozen=True)
class CorePart:
    """Consecutive layers the core runs: their ops, the tensors they read and the sub-network they form."""

    ops: tuple[int, ...]
    sources: tuple[int, ...]  # the ops whose output buffers they read (-1: the network input)
    graph: QuantGraph | None  # its input is the tensor the first of ``ops`` reads (None: nothing after a gather)
    gather: int | None = None  # a first op that concatenates accelerator tensors: the firmware copies them side by
    #                            side (one source each), and ``graph`` starts after it


@dataclass(frozen=True)
class SystemPlan:
    """Where every op runs (``accelerator``, ``core`` or ``view``), the accelerator's program, the core's parts and
    the steps of one inference in order: ``("accelerator", op)`` or ``("core", part)``."""

    placement: dict[int, str]
    refused: dict[int, str]  # op -> why the accelerator cannot run it
    program: AccelProgram | None
    parts: tuple[CorePart, ...]
    steps: tuple[tuple[str, int], ...]


def plan_system(graph: QuantGraph, cfg: AccelConfig, mem_bytes: int, gather: bool = True) -> SystemPlan:
    """Partition ``graph`` for an accelerator of ``cfg`` with ``mem_bytes`` of memory and cut the rest into core parts;
    UserError (one line) for a core part the firmware cannot feed (it reads two tensors, or two of its outputs are
    read elsewhere). ``gather=False``: concatenations of accelerator tensors take their producers onto the core too
    (the benchmark's baseline)."""
    from tinycompile.fpga.partition import partition

    part = partition(graph, cfg, mem_bytes)
    place = {i: "core" if part.placement.get(i, "core") == "host" else part.placement.get(i, "core")
             for i in range(len(graph.ops))}
    refused = {**part.refused, **feed_core_parts(graph, place, gather)}
    core_runs = _core_runs(graph, place)
    in_parts = {i for r in core_runs for i in r}
    on_accel = {i for i in range(len(graph.ops)) if i not in in_parts}
    parts = tuple(_core_part(graph, r, place, gather) for r in core_runs)
    firsts = {p.ops[0]: k for k, p in enumerate(parts)}
    steps: list[tuple[str, int]] = []
    for i in range(len(graph.ops)):
        if i in firsts:
            steps.append(("core", firsts[i]))
        elif place[i] == "accelerator" and i in on_accel:
            steps.append(("accelerator", i))
    program = None
    if any(place[i] == "accelerator" for i in on_accel):
        # A run ends where the core takes over: the accelerator's last layer before a core part stops with DONE.
        stops = frozenset(i for (kind, i), (nxt, _) in zip(steps, steps[1:]) if kind == "accelerator" and nxt == "core")
        program = compile_graph(graph, cfg, mem_bytes, ops=on_accel, stops=stops)
    return SystemPlan(place, refused, program, parts, tuple(steps))


def feed_core_parts(graph: QuantGraph, place: dict[int, str], gather: bool = True) -> dict[int, str]:
    """Move onto the core (in ``place``) the layer before each core part that reads several tensors from outside it,
    until every part reads one (the firmware feeds a core part one tensor); why each moved, by layer."""
    moved = {}
    while True:  # a core part reading several accelerator tensors (a product, say) takes the layer before
        fed = next((r for r in _core_runs(graph, place) if r[0] > 0 and len(_outside_reads(graph, r)) > 1
                    and (not gather or _gathered(graph, r, place) is None)), None)
        if fed is None:
            return moved
        place[fed[0] - 1] = "core"
        moved[fed[0] - 1] = (f"the core runs it: layer {fed[-1]} on the core reads several tensors, and the firmware "
                             "feeds a core part one")


def _core_runs(graph: QuantGraph, place: dict[int, str]) -> list[list[int]]:
    """The core parts: runs of consecutive ops off the accelerator that hold at least one core op (views alone need
    no core), each cut where no later op of the run reads an earlier one (there the earlier ops' outputs all leave
    the run, so a part that ends there is fed one tensor and exports one: two side branches, say)."""
    runs: list[list[int]] = []
    for i in range(len(place)):
        if place[i] != "accelerator":
            if runs and runs[-1][-1] == i - 1 and not _clean_cut(graph, runs[-1], i, place):
                runs[-1].append(i)
            else:
                runs.append([i])
    return [r for r in runs if any(place[i] == "core" for i in r)]


def _clean_cut(graph: QuantGraph, before: list[int], i: int, place: dict[int, str]) -> bool:
    """Whether no op of the run from ``i`` on reads an op of ``before`` (the run so far)."""
    earlier = set(before)
    end = next((j for j in range(i, len(place)) if place[j] == "accelerator"), len(place))
    return not any(j in earlier for k in range(i, end) for j in graph.ops[k].inputs)


def _gathered(graph: QuantGraph, run: list[int], place: dict[int, str]) -> int | None:
    """The run's first op when the firmware can gather what the run reads: a concatenation of accelerator tensors
    that is the only op of the run reading from outside it."""
    first = graph.ops[run[0]]
    inside = set(run)
    later = [j for i in run[1:] for j in graph.ops[i].inputs if j not in inside]
    sources = [storage_index(graph, j) for j in first.inputs]
    if first.op != "concat" or later or any(j < 0 or place.get(j) != "accelerator" for j in sources):
        return None
    return run[0]


def _outside_reads(graph: QuantGraph, run: list[int]) -> set[tuple[int, tuple[int, ...]]]:
    """(storage tensor, shape read) of every tensor the ops of ``run`` read from outside it."""
    inside = set(run)
    return {(storage_index(graph, j), tuple(graph.ops[i].in_shapes[k])) for i in run
            for k, j in enumerate(graph.ops[i].inputs) if j not in inside}


def accelerator_runs(steps: Sequence[tuple[str, int]]) -> list[list[int]]:
    """The step indices of each run of consecutive accelerator steps (one start of the accelerator each)."""
    runs: list[list[int]] = []
    for k, (kind, _) in enumerate(steps):
        if kind == "accelerator":
            if runs and runs[-1][-1] == k - 1:
                runs[-1].append(k)
            else:
                runs.append([k])
    return runs


def part_name(k: int) -> str:
    """The C name of core part ``k``'s library."""
    return f"core{k}"


def _core_part(graph: QuantGraph, run: list[int], place: dict[int, str], gathers: bool) -> CorePart:
    inside = set(run)
    what = f"layers {run[0]}..{run[-1]}" if len(run) > 1 else f"layer {run[0]}"
    reads = _outside_reads(graph, run)
    gather = _gathered(graph, run, place) if gathers else None
    if gather is None and (len({s for s, _ in reads}) != 1 or len(reads) != 1):
        raise UserError(f"{what} ({', '.join(graph.ops[i].op for i in run)}) run on the SoC's core and read "
                        f"{len(reads)} tensors from the accelerator; the soc back end feeds one: build with --core-only")
    last = storage_index(graph, run[-1])
    read_outside = {storage_index(graph, j) for k, op in enumerate(graph.ops) if k not in inside for j in op.inputs}
    exported = ({s for s in read_outside if s in inside} | ({storage_index(graph, len(graph.ops) - 1)} & inside)) - {last}
    if exported:
        raise UserError(f"{what} run on the SoC's core and layer {min(exported)}'s output is read elsewhere too; the "
                        "soc back end copies back only a core part's last output: build with --core-only")
    body = list(run[1:] if gather is not None else run)
    while len(body) > (gather is None) and graph.ops[body[-1]].op == "flatten":  # a view of the op before's bytes
        body.pop()
    if gather is not None:  # the firmware's copy is the concatenation: the sub-network reads its output
        first = graph.ops[gather]
        sources = tuple(storage_index(graph, j) for j in first.inputs)
        if not body:
            return CorePart(tuple(run), sources, None, gather)
        index = {op: k for k, op in enumerate(body)} | {gather: -1}
        shape, q = first.out_shape, first.out_q
    else:
        source, shape = reads.pop()
        sources = (source,)
        index = {op: k for k, op in enumerate(body)}
        q = graph.input_q if source < 0 else graph.ops[source].out_q
    ops = [dataclasses.replace(graph.ops[i], inputs=tuple(index.get(j, -1) for j in graph.ops[i].inputs)) for i in body]
    return CorePart(tuple(run), sources, QuantGraph(tuple(shape), q, ops, {}), gather)


@dataclass(frozen=True)
class Firmware:
    """What :func:`write_firmware` built: the ELF and, per core part, its library's kernels' ops (graph indices)."""

    elf: Path
    kernel_ops: tuple[tuple[int, ...], ...]
    image_bytes: int


def write_firmware(plan: SystemPlan, graph: QuantGraph, vectors: np.ndarray, target: Target, folder: Path) -> tuple[
        list[Path], list[str], Firmware]:
    """Write the core parts' libraries, ``system.h`` and ``main.c`` into ``folder``; return the sources, the C flags
    and what they will build (the ELF is linked by :func:`run_system`)."""
    b = firmware.build_config(target, emulator=False)
    folder.mkdir(parents=True, exist_ok=True)
    prog = plan.program
    n = prog.params.n if prog is not None else 4
    sources: list[Path] = [folder / "main.c"]
    cflags: list[str] = []
    kernel_ops: list[tuple[int, ...]] = []
    includes, hooks, report = [], [], []
    body: dict[int, str] = {}  # step index -> its C code (an accelerator run's at its first step)
    defines: dict[str, int] = {"TC_NUM_VECTORS": len(vectors), "TC_NUM_STEPS": len(plan.steps)}
    locs = {c.index: c.out for c in prog.layers} if prog is not None else {}
    max_cp = 4
    for k, part in enumerate(plan.parts):
        name, naming = part_name(k), Naming(part_name(k))
        gathered = [] if part.gather is None else [part.gather]  # the gather's cycles are the concatenation's
        nk = len(gathered)
        if part.graph is not None:
            lib = write_library(folder / name, part.graph, spec_of(part.graph), compile_for_core(part.graph), "c",
                                b.get("llvm_target"), naming, b["cc"])
            sources += [lib.folder / "model.c", *lib.kernels]
            cflags.append(f"-D{naming.macro('PROFILE')}")
            body_ops = part.ops[1:] if part.gather is not None else part.ops
            kernel_ops.append((*gathered, *(body_ops[j] for j in lib.info.kernel_ops)))
            includes.append(f'#include "{name}/model.h"')
            nk += len(lib.info.kernels)
            hooks.append(f"static uint32_t {name}_marks[{len(lib.info.kernels) + 1}];\n"
                         f"void {naming.ident('profile_hook')}(int k) {{ {name}_marks[k] = mcycle(); }}\n"
                         f"static int8_t {name}_out[{naming.macro('OUTPUT_SIZE')}];")
        else:
            kernel_ops.append(tuple(gathered))
            hooks.append(f"static int8_t {name}_out[{int(np.prod(graph.ops[part.gather].out_shape))}];")
        if part.sources == (-1,):
            feed, copy_in = "tc_vectors[v]", ""
        else:  # each tensor read copied out of the accelerator's memory, side by side (a gather) or alone
            feed = f"{name}_in" if part.graph is not None else f"{name}_out"
            if part.graph is not None:
                hooks.append(f"static int8_t {name}_in[{naming.macro('INPUT_SIZE')}];")
            width, offset, copy_in = sum(locs[src].c for src in part.sources), 0, ""
            for src in part.sources:
                loc = locs[src]
                max_cp = max(max_cp, cpad(loc.c, n))
                copy_in += (f"tc_get({loc.addr}u, {loc.h * loc.w}u, {loc.c}u, {cpad(loc.c, n)}u, {feed} + {offset}, "
                            f"{width}u); ")
                offset += loc.c
        copy_out = ""
        dest = storage_index(graph, part.ops[-1])
        if prog is not None and dest in prog.inputs:
            loc = prog.inputs[dest]
            max_cp = max(max_cp, cpad(loc.c, n))
            copy_out = f"tc_put({name}_out, {loc.addr}u, {loc.h * loc.w}u, {loc.c}u, {cpad(loc.c, n)}u); "
        step = plan.steps.index(("core", k))
        run_lib = "" if part.graph is None else (
            f"    if ({naming.api('run')}({feed}, {name}_out) != 0) {{ printf(\"F %d {k}\\n\", v); exit(4); }}\n")
        marks = "" if part.graph is None else (
            f"    for (int j = {len(gathered)}; j < {nk}; ++j) ks_{name}[j] = {name}_marks[j - {len(gathered)} + 1] - "
            f"{name}_marks[j - {len(gathered)}];")
        body[step] = (f"    /* {name}: layers {list(part.ops)} on the core */\n"
                      f"    a = mcycle(); {copy_in}b = mcycle();\n{run_lib}"
                      f"    c = mcycle(); {copy_out}d = mcycle();\n"
                      f"    st[{step}][0] = d - a; st[{step}][1] = b - a; st[{step}][2] = d - c;\n"
                      + (f"    ks_{name}[0] = b - a;\n" if gathered else "") + marks)
        hooks.append(f"static uint32_t ks_{name}[{max(nk, 1)}];")
        report.append(f"    for (int j = 0; j < {nk}; ++j) printf(\"K %d {k} %d %lu\\n\", v, j, (unsigned long)ks_{name}[j]);")
    logs = []  # after the inference: each run's cycle log split into its layers
    for run in accelerator_runs(plan.steps):
        assert prog is not None
        ops = [plan.steps[k][1] for k in run]
        s0 = run[0]
        body[s0] = (f"    /* layers {ops} on the accelerator, one start */\n"
                    f"    a = mcycle(); rc = tc_accel_run({prog.start_at(ops[0])}u, {MAX_POLLS}u, &r); b = mcycle();\n"
                    f"    if (rc) fail(v, tc_layer_at(r.pc, {ops[0]}), &r);\n"
                    f"    st[{s0}][0] = b - a; st[{s0}][1] = r.cycles; st[{s0}][2] = r.mac_cycles;")
        # Layer k's accelerator cycles: its stamp minus the one before (the run's last: up to the run's end); the
        # core's start and poll beyond the accelerator's count go to the run's first layer.
        lines = [f"    {{ uint32_t core = st[{s0}][0], acc = st[{s0}][1], prev = 0, m;"]
        for k, i in zip(run, ops):
            mark = "acc" if k == run[-1] else f"TC_ACCEL_LOG({prog.stamp_at(i)}u)"
            lines.append(f"      m = {mark}; st[{k}][1] = m - prev; st[{k}][0] = m - prev; "
                         f"st[{k}][2] = {mac_rows(prog, i)}u; prev = m;")
        lines.append(f"      st[{s0}][0] += core - acc; }}")
        logs.append("\n".join(lines))
    ranges = [(prog.start_at(c.index), prog.done_at(c.index), c.index) for c in prog.layers if c.count] if prog else []
    layer_at = "".join(f"  if (pc >= {a}u && pc < {b}u) return {i};\n" for a, b, i in ranges)
    last = storage_index(graph, len(graph.ops) - 1)
    out_size = int(np.prod(graph.output_shape))
    if last in locs:
        loc = locs[last]
        max_cp = max(max_cp, cpad(loc.c, n))
        read_out = f"tc_get({loc.addr}u, {loc.h * loc.w}u, {loc.c}u, {cpad(loc.c, n)}u, out, {loc.c}u); const int8_t *o = out;"
    else:
        k = next(k for k, p in enumerate(plan.parts) if storage_index(graph, p.ops[-1]) == last)
        read_out = f"const int8_t *o = {part_name(k)}_out;"
    write_in = ""
    if prog is not None and prog.input is not None:
        defines.update(input_defines(graph, prog))
        write_in = "write_input(tc_vectors[v]);"
    defines["TC_MAX_CP"] = max_cp
    defines["TC_OUTPUT_BYTES"] = out_size
    image = prog.image.data[: prog.image.top] if prog is not None else np.zeros(4, np.uint8)
    (folder / "system.h").write_text("".join(f"#define {k} ({v})\n" for k, v in defines.items()) + c_vectors(vectors)
                                     + c_words("tc_image", image))
    main = (_MAIN.replace("@INCLUDES@", "\n".join(includes))
            .replace("@WRITE_INPUT@", WRITE_INPUT if write_in else "")
            .replace("@HOOKS@", "\n".join(hooks))
            .replace("@WRITE_IN@", write_in)
            .replace("@STEPS@", "\n".join(body[k] for k in sorted(body)))
            .replace("@LOGS@", "\n".join(logs))
            .replace("@LAYER_AT@", layer_at)
            .replace("@READ_OUT@", read_out)
            .replace("@REPORT@", "\n".join(report)))
    (folder / "main.c").write_text(main)
    return sources, cflags, Firmware(folder / "firmware.elf", tuple(kernel_ops), int(image.size))


_MAIN = """\
/* A network on the SoC: the accelerator's layers and the core's, one image (generated by tinycompile.soc.system). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tc_accel_driver.h"
#include "system.h"
@INCLUDES@

static inline uint32_t mcycle(void) { uint32_t v; __asm__ volatile(".insn i 0x73, 2, %0, x0, -1280" : "=r"(v)); return v; }

@WRITE_INPUT@
/* An accelerator tensor (pixels of cp bytes, the first c real) to / from a dense NHWC int8 buffer; tc_get writes
   its pixels `stride` bytes apart (a concatenation's channels side by side). */
static __attribute__((unused)) void tc_get(uint32_t addr, uint32_t pixels, uint32_t c, uint32_t cp, int8_t *dst,
                                           uint32_t stride) {
  const volatile uint32_t *src = (const volatile uint32_t *)(TC_ACCEL_MEM_BASE + addr);
  uint32_t w[TC_MAX_CP / 4];
  for (uint32_t p = 0; p < pixels; ++p) {
    for (uint32_t i = 0; i < cp / 4u; ++i) w[i] = *src++;
    memcpy(dst + p * stride, w, c);
  }
}

static __attribute__((unused)) void tc_put(const int8_t *src, uint32_t addr, uint32_t pixels, uint32_t c, uint32_t cp) {
  volatile uint32_t *dst = (volatile uint32_t *)(TC_ACCEL_MEM_BASE + addr);
  uint32_t w[TC_MAX_CP / 4];
  for (uint32_t p = 0; p < pixels; ++p) {
    memset(w, 0, cp);
    memcpy(w, src + p * c, c);
    for (uint32_t i = 0; i < cp / 4u; ++i) *dst++ = w[i];
  }
}

#define TC_ACCEL_LOG(addr) (*(const volatile uint32_t *)(TC_ACCEL_MEM_BASE + (addr)))

/* The accelerator layer whose instructions hold byte address pc (first: the run's first layer, if none does). */
static __attribute__((unused)) int tc_layer_at(uint32_t pc, int first) {
@LAYER_AT@  return first;
}

static void fail(int v, int layer, const tc_accel_result *r) {
  printf("E %d %d %d %lu %lu %lu\\n", v, layer, r->rc, (unsigned long)r->code, (unsigned long)r->pc,
         (unsigned long)r->fault_addr);
  exit(3);
}

@HOOKS@
static uint32_t st[TC_NUM_STEPS > 0 ? TC_NUM_STEPS : 1][3];
static __attribute__((unused)) int8_t out[TC_OUTPUT_BYTES + TC_MAX_CP];

int main(void) {
  tc_accel_result r;
  int rc;
  uint32_t a, b, c, d;
  (void)r; (void)rc; (void)c; (void)d;
  uint32_t t0 = mcycle();
  tc_accel_write(0, tc_image, sizeof(tc_image));
  printf("B %lu\\n", (unsigned long)(mcycle() - t0));
  for (int v = 0; v < TC_NUM_VECTORS; ++v) {
    uint32_t start = mcycle();
    @WRITE_IN@
    uint32_t written = mcycle();
@STEPS@
    uint32_t ran = mcycle();
    @READ_OUT@
    uint32_t end = mcycle();
@LOGS@
    printf("T %d %lu %lu %lu\\n", v, (unsigned long)(end - start), (unsigned long)(written - start),
           (unsigned long)(end - ran));
    for (int s = 0; s < TC_NUM_STEPS; ++s)
      printf("S %d %d %lu %lu %lu\\n", v, s, (unsigned long)st[s][0], (unsigned long)st[s][1], (unsigned long)st[s][2]);
@REPORT@
    printf("O %d ", v);
    for (int i = 0; i < TC_OUTPUT_BYTES; ++i) printf("%02x", (unsigned)(uint8_t)o[i]);
    printf("\\n");
  }
  exit(0);
}
"""


@dataclass(frozen=True)
class AccelFault:
    """The accelerator stopped a layer: which input and layer, the driver's rc, its error code, PC and the address
    beyond its memory (if that was it)."""

    vector: int
    layer: int
    rc: int
    code: int
    pc: int
    fault_addr: int

    def message(self) -> str:
        """One line for the report."""
        where = f", address {self.fault_addr:#x}" if self.rc == 2 else ""
        return (f"{ACCEL_RC.get(self.rc, f'rc {self.rc}')} in layer {self.layer} (input {self.vector}): error code "
                f"{self.code}, instruction at {self.pc:#x}{where}")


@dataclass(frozen=True)
class SystemRun:
    """One run of the firmware: outputs, per input the whole inference's cycles (and its input writing and output
    reading), per step its figures and per core kernel its cycles (the last input: the steady state, caches warm and
    the input's constant padding written by the first); the boot copy; the run itself."""

    outputs: np.ndarray | None  # (N, output size) int8; None if the accelerator stopped
    totals: list[int]
    input_cycles: list[int]
    output_cycles: list[int]
    steps: list[tuple[int, int, int]]  # last input: accelerator (core cycles, accel cycles, MAC cycles) or core
    #                                    part (core cycles, copy-in cycles, copy-out cycles)
    kernels: dict[int, list[int]]  # core part -> its kernels' cycles (last input)
    boot_cycles: int
    fault: AccelFault | None
    soc: SocRun


def run_system(plan: SystemPlan, graph: QuantGraph, vectors: np.ndarray, target: Target, folder: Path,
               accel_mem_bytes: int) -> tuple[SystemRun, Firmware]:
    """Build the firmware for ``vectors`` (int8 NHWC, one per row) into ``folder`` and run it on the SoC's RTL;
    RuntimeError with the SoC's account if the firmware failed other than by the accelerator's error."""
    sources, cflags, fw = write_firmware(plan, graph, vectors, target, folder)
    cfg = plan.program.params if plan.program is not None else AccelConfig.for_array(8)
    soc = run_firmware(folder, sources, target, AccelPart(cfg, accel_mem_bytes), cflags, check=False)
    return parse_run(soc, len(vectors), len(plan.steps), target), fw


def parse_run(soc: SocRun, n_vectors: int, n_steps: int, target: Target) -> SystemRun:
    """What the firmware printed, read back; RuntimeError if it failed other than by the accelerator's error."""
    from tinycompile.soc.run import soc_config

    lines = [ln.split() for ln in soc.text.splitlines() if ln[:2] in ("B ", "T ", "S ", "K ", "O ", "E ")]
    errors = [list(map(int, p[1:])) for p in lines if p[0] == "E"]
    if errors:
        return SystemRun(None, [], [], [], [], {}, 0, AccelFault(*errors[0][:6]), soc)
    failure = soc.failure(soc_config(target).timeout_cycles)
    if failure is not None:
        raise RuntimeError(f"the firmware failed on the SoC: {failure}")
    boot = next(int(p[1]) for p in lines if p[0] == "B")
    totals = {int(p[1]): list(map(int, p[2:])) for p in lines if p[0] == "T"}
    raw = {int(p[1]): np.frombuffer(bytes.fromhex(p[2]), np.int8) for p in lines if p[0] == "O"}
    if sorted(totals) != list(range(n_vectors)) or sorted(raw) != list(range(n_vectors)):
        raise RuntimeError(f"the firmware printed results for {len(raw)} of {n_vectors} inputs:\n{soc.text[-1500:]}")
    last = str(n_vectors - 1)
    steps = [tuple(map(int, p[3:6])) for p in lines if p[0] == "S" and p[1] == last]
    kernels: dict[int, list[int]] = {}
    for p in lines:
        if p[0] == "K" and p[1] == last:
            kernels.setdefault(int(p[2]), []).append(int(p[4]))
    assert len(steps) == n_steps
    return SystemRun(np.stack([raw[v] for v in range(n_vectors)]), [totals[v][0] for v in range(n_vectors)],
                     [totals[v][1] for v in range(n_vectors)], [totals[v][2] for v in range(n_vectors)],
                     steps, kernels, boot, None, soc)  # type: ignore[arg-type]


def layer_cycles(steps: Sequence[tuple[str, int]], run: SystemRun, kernel_ops: Sequence[Sequence[int]],
                 n_ops: int) -> dict[int, dict[str, Any]]:
    """Per op that did work (the last input): where it ran and its cycles as the core saw them; the accelerator's own
    count and MAC cycles beside them for its layers."""
    rows: dict[int, dict[str, Any]] = {}
    for (kind, i), (core, x, y) in zip(steps, run.steps):
        if kind == "accelerator":
            rows[i] = {"ran_on": "accelerator", "cycles": core, "accelerator_cycles": x, "mac_cycles": y}
        else:
            for op, cyc in zip(kernel_ops[i], run.kernels.get(i, [])):
                row = rows.setdefault(op, {"ran_on": "core", "cycles": 0})
                row["cycles"] += cyc
    return {i: rows[i] for i in sorted(rows) if i < n_ops}


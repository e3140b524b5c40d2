"""QuantGraph -> a self-contained C library folder: kernels (C or object), model.h/model.c, ABI header (and the ACLE
header of DSP kernels in C), README. Every exported name as a ``Naming`` gives it (``tinycompile build --name``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinycompile.arch import ArchSpec
from tinycompile.cost.memory import MemoryPlan, choose
from tinycompile.errors import UserError
from tinycompile.mcu import aot, codegen, firmware
from tinycompile.mcu.layout import simd_kind
from tinycompile.mcu.lower import Lowered, lower
from tinycompile.mcu.naming import Naming
from tinycompile.quant.graph import QuantGraph, spec_of
from tinycompile.mcu.tuning import DEFAULT, ScheduleChoices

CODEGENS = ("c", "llvm")


@dataclass(frozen=True)
class Library:
    """A generated library: its folder, the kernel sources/objects to compile, and its runner's facts."""

    folder: Path
    kernels: tuple[Path, ...]
    info: aot.RunnerInfo
    codegen: str
    compile_seconds: float
    naming: Naming = Naming()


@dataclass
class Compiled:
    """Lowering done once per graph: the portable TIR, calls, C source and its workspace figure. The DSP variants
    (Arm cores with the DSP extension) and the LLVM schedules are lowered on first use and kept."""

    lowered: Lowered
    c_source: str
    workspace: int
    seconds: float
    graph: QuantGraph | None = None
    variants: dict[tuple[str, str | None, ScheduleChoices], tuple[Lowered, str, int]] = field(default_factory=dict)
    memory: MemoryPlan | None = None  # the arena plan the runner uses (None: the per-layer plan of the graph)

    def lowered_for(self, codegen_kind: str, llvm_target: dict[str, Any] | None, simd: str | None = None,
                    choices: ScheduleChoices = DEFAULT) -> tuple[Lowered, str, int]:
        """The lowering, its C source (for the C codegen) and its kernel scratch in bytes, for a build with
        ``codegen_kind`` for the chip of ``llvm_target``: schedules differ per codegen and for cores with the DSP
        extension. An LLVM variant allocates what the C variant of the same schedule does (the same TIR but for
        the intrinsics' flavour, the unrolling of the padding copy and the register tiles), so its scratch is read
        from that C. ``simd``: the target's ``build.simd`` (``layout.simd_kind``); ``choices``: its schedule knobs
        (``tuning``; they apply to the LLVM DSP schedules only)."""
        kind = simd_kind(llvm_target, simd)
        key = (codegen_kind, kind, choices if codegen_kind == "llvm" and kind is not None else DEFAULT)
        if key[:2] == ("c", None) or self.graph is None:
            return self.lowered, self.c_source, self.workspace
        if key not in self.variants:
            start = time.perf_counter()
            lowered = _lower(self.graph, self.memory, *key)
            if key[0] == "c":
                src = codegen.build_c(lowered.tir, dsp=key[1] is not None, mve=key[1] == "mve")
                scratch = codegen.workspace_bytes(src)
            else:
                src = ""
                scratch = self.lowered_for("c", llvm_target, simd, choices)[2]
            self.variants[key] = (lowered, src, scratch)
            self.seconds += time.perf_counter() - start
        return self.variants[key]


def compile_graph(graph: QuantGraph, memory: MemoryPlan | None = None) -> Compiled:
    """Lower ``graph`` through Relax to TIR (the portable schedules) and generate the kernels' C. ``memory``: the
    arena plan, by default the planner's choice for the graph (``cost.memory.choose``: in-place layers, a patch
    stage where it lowers the arena), which the cost model predicts with."""
    start = time.perf_counter()
    memory = memory or choose(spec_of(graph))
    lowered = _lower(graph, memory)
    src = codegen.build_c(lowered.tir)
    return Compiled(lowered, src, codegen.workspace_bytes(src), time.perf_counter() - start, graph, memory=memory)


def _lower(graph: QuantGraph, memory: MemoryPlan | None, codegen_kind: str = "c", dsp: bool | str | None = False,
           choices: ScheduleChoices = DEFAULT) -> Lowered:
    if memory is None or memory.patch is None:
        return lower(graph, codegen_kind, dsp, choices)
    from tinycompile.mcu.patches import lower_patched

    return lower_patched(graph, spec_of(graph), memory.patch, codegen_kind, dsp, choices)


def write_library(
    folder: Path,
    graph: QuantGraph,
    spec: ArchSpec,
    compiled: Compiled,
    codegen_kind: str,
    llvm_target: dict[str, Any] | None,
    naming: Naming = Naming(),
    cc: str | None = None,
    simd: str | None = None,
    choices: ScheduleChoices = DEFAULT,
) -> Library:
    """Write the library into ``folder`` (C kernels, or an object built with ``llvm_target``), its exported names as
    ``naming`` gives them. ``cc``: the target's C compiler, whose objcopy renames the symbols of an LLVM object
    (needed only then, with a name other than the default); ``simd``: the target's ``build.simd``; ``choices``: the core's schedule knobs (``tuning``)."""
    if codegen_kind not in CODEGENS:
        raise UserError(f"--codegen must be one of {', '.join(CODEGENS)}, but got {codegen_kind!r}")
    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    plan = compiled.memory or choose(spec)
    lowered, c_source, scratch = compiled.lowered_for(codegen_kind, llvm_target, simd, choices)
    header, source, info = aot.generate(graph, spec, lowered, plan, scratch, naming)
    (folder / codegen.ABI_HEADER).write_text(naming.rename_source(codegen.ABI_HEADER_TEXT))
    (folder / "model.h").write_text(header)
    (folder / "model.c").write_text(source)
    (folder / codegen.ACLE_HEADER).unlink(missing_ok=True)  # a folder written before may hold one
    (folder / codegen.MVE_HEADER).unlink(missing_ok=True)
    acle = codegen_kind == "c" and f'#include "{codegen.ACLE_HEADER}"' in c_source  # DSP kernels in C
    mve = codegen_kind == "c" and f'#include "{codegen.MVE_HEADER}"' in c_source  # Helium kernels in C
    if codegen_kind == "c":
        kernel = folder / "kernels.c"
        kernel.write_text(naming.rename_source(c_source))
        if acle:
            (folder / codegen.ACLE_HEADER).write_text(codegen.ACLE_HEADER_TEXT)
        if mve:
            (folder / codegen.MVE_HEADER).write_text(codegen.MVE_HEADER_TEXT)
    else:
        if llvm_target is None:
            raise UserError("--codegen llvm needs build.llvm_target in the target's YAML")
        kernel = folder / "kernels.o"
        codegen.build_llvm(lowered.tir, llvm_target, kernel)
        if not naming.is_default:
            if cc is None:
                raise ValueError("renaming an LLVM object's symbols needs the target's C compiler (cc)")
            codegen.rename_object_symbols(kernel, naming, firmware.toolchain_tool(cc, "objcopy"))
    (folder / "README.md").write_text(_readme(graph, info, codegen_kind, kernel.name, naming, acle, mve))
    seconds = compiled.seconds + time.perf_counter() - start
    return Library(folder, (kernel,), info, codegen_kind, seconds, naming)


def _readme(graph: QuantGraph, info: aot.RunnerInfo, kind: str, kernel: str, naming: Naming, acle: bool,
            mve: bool = False) -> str:
    h, w, c = graph.input_shape
    compile_line = (
        "add `kernels.c` and `model.c` to your sources" if kind == "c" else "add `model.c` to your sources and link `kernels.o`"
    )
    acle_file = f", `{codegen.ACLE_HEADER}` (the DSP intrinsics: arm_acle.h's on the chip, portable C elsewhere)" if acle else ""
    if mve:
        acle_file += f", `{codegen.MVE_HEADER}` (the Helium operations: arm_mve.h's on the chip, portable C elsewhere)"
    run, m, p = naming.api("run"), naming.macro(""), naming.ident("")
    host = (
        "\n\nThe C sources also build on a PC (e.g. `gcc -std=gnu11 -I. your_test.c model.c kernels.c`) for unit tests: "
        "the same integer results as on the chip."
        if kind == "c" else ""
    )
    return f"""# int8 model library `{naming.name}` (generated by tinycompile)

Files: `model.h` (the API), `model.c` (static runner, weights, arena), `{kernel}` (TVM-generated kernels,
{'C' if kind == 'c' else 'an object built by TVM for this chip'}), `tc_tvm_abi.h` (the few TVM ABI types they use){acle_file}.
No heap, no RTOS, no TVM runtime: only `memcpy` from the C library.

## Use it in your firmware
1. Copy this folder into your project; {compile_line}; add this folder to the include path.
   Compile with your usual flags for the chip (-O2 recommended), e.g. `-mcpu=cortex-m4 -mthumb -O2`.
2. Quantize the input: `q = clamp(round(x / {m}INPUT_SCALE) + {m}INPUT_ZERO_POINT, -128, 127)`, stored NHWC
   ({h} x {w} x {c}: channel fastest).
3. Call `int rc = {run}(input_q, logits_q);` (0 on success). `logits_q` holds {m}OUTPUT_SIZE int8 values;
   the class is the index of the largest one; real logits are `{m}OUTPUT_SCALE * (q - {m}OUTPUT_ZERO_POINT)`.{host}

Several libraries link into one program when each was built with its own `tinycompile build --name`: every
exported symbol and macro carries it (this one: `{run}`, `{m}INPUT_SIZE`, kernels `{naming.kernel("<kernel>")}`).
Each folder holds a `model.h`: include each by its folder (e.g. this one copied to `{naming.name}/`:
`#include "{naming.name}/model.h"`).

## Memory
- activation arena: {info.arena_bytes} bytes (static, `.bss`), laid out at build time over tensor lifetimes
- kernel scratch (`{naming.symbol("TVMBackendAllocWorkspace")}`): {info.workspace_bytes} bytes (static)
- weights and tables: {info.weight_bytes} bytes (`const`, flash)
- kernels: {len(info.kernels)} ({', '.join(info.kernels)})

`{run}` is not reentrant (one static arena). Define `{m}PROFILE` and a `void {p}profile_hook(int k)` to time
each kernel (called before kernel k and once after the last).
"""

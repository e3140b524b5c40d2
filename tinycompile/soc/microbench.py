"""Cycles of short instruction patterns on the SoC's core, read from mcycle on the RTL: the measurements behind the
soc-vexriscv target's ``timing:`` table, and the model's own price of the same patterns to compare.

Each pattern is assembled 16 times in a row inside a loop of 64 iterations (1,024 copies), run twice (the second run
is timed: its code is in the instruction cache); the cycles of the same loop with an empty body are subtracted and
the rest divided by 1,024: a pattern's cost in steady state, loop and counter reads excluded. The data patterns
address a 64 KiB buffer through ``a1``.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tinycompile.mcu import timing
from tinycompile.mcu.firmware import build_config
from tinycompile.mcu.trace import Insn
from tinycompile.targets import Target

COPIES = 16
ITERATIONS = 64


@dataclass(frozen=True)
class Pattern:
    """A few instructions: ``body`` as the assembler reads it (one instruction per line, run in a loop), ``setup``
    before the loop; ``qemu``: the same as QEMU prints it (offsets for labels) when it differs from ``body``;
    ``taken``: the pattern's transfer of control (its first) is taken, to the next copy; ``tolerance``: how far
    the model may be from the RTL (cycles per copy) -- a cycle where the core's cost depends on where the fetch unit
    stands (a redirect's distance and alignment, a replayed load's), which the table averages."""

    name: str
    body: tuple[str, ...]
    setup: tuple[str, ...] = ()
    qemu: tuple[str, ...] = ()
    taken: bool = False
    tolerance: float = 0.1


# The table's evidence: one pattern per rule (see hw_targets/soc-vexriscv.yaml).
PATTERNS = (
    Pattern("alu", ("addi t0,t0,1", "addi t1,t1,1")),
    Pattern("shift then use", ("slli t1,t2,3", "add t4,t1,t1")),
    Pattern("load", ("lw t1,0(a1)", "addi t3,t3,1")),
    Pattern("load then use", ("lw t1,0(a1)", "add t2,t1,t1")),
    Pattern("load, one, use", ("lw t1,0(a1)", "addi t3,t3,1", "add t2,t1,t1")),
    Pattern("load, two, use", ("lw t1,0(a1)", "addi t3,t3,1", "addi t4,t4,1", "add t2,t1,t1")),
    Pattern("mul then use", ("mul t1,t2,t3", "add t4,t1,t1")),
    Pattern("mul, one, use", ("mul t1,t2,t3", "addi t5,t5,1", "add t4,t1,t1")),
    Pattern("div", ("div t1,t2,t3",), ("li t2,1000", "li t3,7")),
    Pattern("store, alu", ("sw t1,0(a1)", "addi t3,t3,1")),
    Pattern("store, store", ("sw t1,0(a1)", "sw t1,4(a1)")),
    Pattern("store, load of that word", ("sw t1,0(a1)", "lw t2,0(a1)"), tolerance=1.0),  # replay: 5 to 8
    Pattern("store, one, load of that word", ("sw t1,0(a1)", "addi t3,t3,1", "lw t2,0(a1)"), tolerance=1.0),
    Pattern("store, two, load of that word", ("sw t1,0(a1)", "addi t3,t3,1", "addi t4,t4,1", "lw t2,0(a1)")),
    Pattern("store, load of the next word", ("sw t1,0(a1)", "lw t2,4(a1)")),
    Pattern("load missing the D$", ("lw t1,0(a1)", "addi a1,a1,32")),
    Pattern("forward branch not taken", ("bne zero,zero,.+4",), qemu=("bne zero,zero,4",)),
    # a mispredicted transfer: 4 to 5 cycles, JAL 2 to 3, by the target's distance and the fetch line
    Pattern("forward branch taken", ("beq zero,zero,.+8", "addi zero,zero,0"), qemu=("beq zero,zero,8", "nop"),
            taken=True, tolerance=1.0),
    Pattern("forward branch taken, far", ("beq zero,zero,.+36", *("addi zero,zero,0",) * 8),
            qemu=("beq zero,zero,36", *("nop",) * 8), taken=True, tolerance=1.0),
    Pattern("jal to a word", ("jal zero,.+4",), qemu=("j 4",), taken=True, tolerance=1.0),
    Pattern("jalr", ("auipc a2,0", "jalr zero,8(a2)"), qemu=("auipc a2,0", "jr 8(a2)"), taken=True, tolerance=1.0),
)


def _asm(pattern: Pattern) -> str:
    lines = [".option push", ".option norvc", ".balign 4", *pattern.setup, f"li t6,{ITERATIONS}", "1:", f".rept {COPIES}",
             *pattern.body, ".endr", "addi t6,t6,-1", "bnez t6,1b", ".option pop"]
    return "\\n".join(lines)


def _program(patterns: tuple[Pattern, ...]) -> str:
    """C source: each pattern (and an empty one first) timed with mcycle, printed as ``name<TAB>cycles``."""
    out = ["#include <stdint.h>", "#include <stdio.h>", "#include <stdlib.h>",
           "static uint32_t buf[16384] __attribute__((aligned(64)));",
           'static inline uint32_t cyc(void) { uint32_t v; __asm__ volatile(".insn i 0x73, 2, %0, x0, -1280" : "=r"(v)); '
           "return v; }",
           "int main(void) {", "  uint32_t t0, t1;"]
    for p in (Pattern("empty", ()), *patterns):
        out += ["  for (int run = 0; run < 2; run++) {", "    t0 = cyc();",
                f'    __asm__ volatile("mv a1,%0\\n{_asm(p)}" : : "r"(buf) : "t0", "t1", "t2", "t3", "t4", "t5", "t6", '
                '"a1", "a2", "memory");',
                "    t1 = cyc();", "  }", f'  printf("{p.name}\\t%lu\\n", (unsigned long)(t1 - t0));']
    out += ["  exit(0);", "}"]
    return "\n".join(out) + "\n"


def measure(target: Target, folder: Path, patterns: tuple[Pattern, ...] = PATTERNS) -> dict[str, float]:
    """Cycles per copy of each pattern on the SoC's RTL (``target``: the SoC's target)."""
    from tinycompile.soc.run import soc_config
    from tinycompile.soc.runtime import write_runtime
    from tinycompile.soc.simulate import run_elf

    b = build_config(target, emulator=False)
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / "patterns.c"
    src.write_text(_program(patterns))
    elf = folder / "patterns.elf"
    res = subprocess.run([b["cc"], *b["cflags"], "-O2", "--specs=picolibc.specs", "-o", str(elf), str(src),
                          str(write_runtime(folder)), f"-Wl,--defsym=__flash={b['flash_origin']:#x}",
                          f"-Wl,--defsym=__flash_size={b['flash_size']:#x}", f"-Wl,--defsym=__ram={b['ram_origin']:#x}",
                          f"-Wl,--defsym=__ram_size={b['ram_size']:#x}"], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"the pattern program did not compile: {res.stderr[-2000:]}")
    run = run_elf(elf, soc_config(target).mem_words, timeout_cycles=50_000_000)
    failure = run.failure(50_000_000)
    if failure is not None:
        raise RuntimeError(f"the pattern program failed on the SoC: {failure}")
    counts = dict(line.split("\t") for line in run.text.splitlines() if "\t" in line)
    empty = float(counts.pop("empty"))
    return {name: (float(v) - empty) / (COPIES * ITERATIONS) for name, v in counts.items()}


def model_cycles(model: timing.TimingModel, pattern: Pattern) -> float:
    """The timing model's cycles per copy of ``pattern`` in steady state (the data cache and the instruction fetch
    left out: the D$ pattern is priced by the data cache's ``miss``)."""
    text = pattern.qemu or pattern.body
    insns = [Insn(4 * i, 4, *(line.split(" ", 1) + [""])[:2], (0x13, 0)) for i, line in enumerate(text)]
    decoded = [timing.decode("riscv", i) for i in insns]
    if pattern.taken:  # each copy is a block of its own, up to its transfer to the next copy (word-aligned)
        end = next(j for j, d in enumerate(decoded) if d.control) + 1
        return timing.piece_cost(model, decoded[:end]).cycles + timing.transfer_cost(model, decoded[end - 1], True, 0)
    # straight-line copies: the marginal cost of one more copy (dependences across copies included)
    many = timing.piece_cost(model, decoded * (COPIES + 1)).cycles - timing.piece_cost(model, decoded * COPIES).cycles
    if pattern.name == "load missing the D$" and model.data_cache is not None:
        many += model.data_cache.miss
    return many

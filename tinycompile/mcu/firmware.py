"""The firmware project around the library: a test harness, its build with the target's cross compiler, and QEMU.

The harness runs every embedded test vector, prints each int8 output in hex and the per-kernel instruction counts
over semihosting; Python compares the outputs with the integer reference. Instruction counting (QEMU is not
cycle-accurate, ``-icount shift=0`` makes it deterministic): SysTick ticks x ``instructions_per_tick`` on Arm,
``minstret`` on RISC-V.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from elftools.elf.elffile import ELFFile

from tinycompile.errors import UserError
from tinycompile.mcu.layout import check_simd
from tinycompile.mcu.naming import Naming
from tinycompile.targets import Target

APT_PACKAGES = {
    "arm-none-eabi-gcc": "gcc-arm-none-eabi picolibc-arm-none-eabi",
    "riscv64-unknown-elf-gcc": "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf",
    "qemu-system-arm": "qemu-system-arm",
    "qemu-system-riscv32": "qemu-system-misc",
}
QEMU_TIMEOUT_S = 120.0
FLASH_SECTIONS = (".text", ".rodata", ".data", ".init", ".fini", ".init_array", ".fini_array", ".ARM.exidx")
RAM_SECTIONS = (".data", ".bss", ".tbss", ".tdata", ".noinit")


@dataclass(frozen=True)
class RunResult:
    """Outputs and per-kernel instruction counts of one QEMU run (counts are per inference, first vector)."""

    outputs: np.ndarray  # (N, output_size) int8
    kernel_instructions: list[list[float]]  # per vector, per kernel
    layer_outputs: dict[tuple[int, int], np.ndarray]  # (vector, kernel) -> int8 output, when dumped
    total_instructions: list[float]
    workspace_peak: int
    stdout: str


def require_tool(tool: str) -> str:
    """The path of ``tool``, or a UserError naming the Debian package to install."""
    path = shutil.which(tool)
    if path is None:
        pkg = APT_PACKAGES.get(tool, tool)
        raise UserError(f"{tool} not found; install it with: sudo apt-get install {pkg}")
    return path


def toolchain_tool(cc: str, tool: str) -> str:
    """The path of the binutils program ``tool`` (e.g. ``objcopy``) of the toolchain whose compiler is ``cc``, or a
    UserError naming the Debian package to install."""
    proc = subprocess.run([require_tool(cc), f"-print-prog-name={tool}"], capture_output=True, text=True)
    name = proc.stdout.strip()  # the full path when the toolchain has it, else the bare name
    path = name if name and Path(name).is_file() else shutil.which(cc.removesuffix("gcc") + tool)
    if path is None:
        pkg = APT_PACKAGES.get(cc, "binutils").split()[0].replace("gcc-", "binutils-")
        raise UserError(f"{cc}'s {tool} not found; install it with: sudo apt-get install {pkg}")
    return path


def build_config(target: Target, emulator: bool = True) -> dict[str, Any]:
    """The target's ``build:`` section, checked for the keys this back end needs (``emulator``: and the QEMU command;
    a firmware that runs elsewhere, on the SoC's RTL, needs none)."""
    b = target.build
    need = ("cc", "cflags", *(("qemu",) if emulator else ()), "flash_origin", "flash_size", "ram_origin", "ram_size",
            "counter", "instructions_per_tick", "llvm_target")
    missing = [k for k in need if k not in b]
    if missing:
        raise UserError(f"{target.path}: build section lacks {', '.join(missing)}; see hw_targets/cortex-m4.yaml")
    if b["counter"] not in _COUNTERS:
        raise UserError(f"{target.path}: build.counter must be one of {', '.join(_COUNTERS)}, but got {b['counter']!r}")
    if "simd" in b:
        wrong = check_simd(b["llvm_target"], b["simd"])
        if wrong:
            raise UserError(f"{target.path}: {wrong}")
    return dict(b)


def write_harness(folder: Path, vectors: np.ndarray, counter: str, naming: Naming = Naming()) -> None:
    """Write ``main.c`` and ``vectors.h`` (the int8 NHWC test inputs, one row each) for the library ``naming`` names."""
    rows = ",\n".join("  {" + ",".join(str(int(v)) for v in row) + "}" for row in vectors.reshape(len(vectors), -1))
    (folder / "vectors.h").write_text(
        "/* Generated test inputs (int8, NHWC), quantized from the task's test split. */\n"
        f"#define TC_NUM_VECTORS {len(vectors)}\n"
        f"static const int8_t tc_vectors[TC_NUM_VECTORS][{naming.macro('INPUT_SIZE')}] = {{\n{rows}\n}};\n"
    )
    main = _MAIN.replace("@COUNTER@", _COUNTERS[counter])
    for token, prefix in (("@N@", naming.api("")), ("@P@", naming.ident("")), ("@M@", naming.macro(""))):
        main = main.replace(token, prefix)
    (folder / "main.c").write_text(main)


def compile_firmware(
    folder: Path, library: Path, target: Target, kernels: list[Path], dump_layers: bool = False,
    profile: Naming | None = Naming(), oslib: str | None = "semihost", extra_sources: Sequence[Path] = (),
) -> Path:
    """Cross-compile ``folder/main.c`` with the library in ``library`` (its ``model.c``) and ``kernels`` (sources or
    objects) into ``folder/firmware.elf``; ``profile``: the library whose profiling hooks the harness defines (its
    ``<NAME>_PROFILE`` macro), or None for a harness without them; ``oslib``: picolibc's OS layer (None: the
    ``extra_sources`` give stdout and ``_exit``, as on a chip without a debugger)."""
    b = build_config(target, emulator=False)
    cc = require_tool(b["cc"])
    elf = folder / "firmware.elf"
    cmd = [
        cc,
        *b["cflags"],
        "-O2",
        "-g0",
        "-std=gnu11",
        "-ffunction-sections",
        "-fdata-sections",
        *([f"-D{profile.macro('PROFILE')}"] if profile is not None else []),
        *(["-DTC_DUMP_LAYERS"] if dump_layers else []),
        "--specs=picolibc.specs",
        *([f"--oslib={oslib}"] if oslib else []),
        f"-I{library}",
        "-o",
        str(elf),
        str(folder / "main.c"),
        str(library / "model.c"),
        *map(str, kernels),
        *map(str, extra_sources),
        "-Wl,--gc-sections",
        f"-Wl,--defsym=__flash={b['flash_origin']:#x}",
        f"-Wl,--defsym=__flash_size={b['flash_size']:#x}",
        f"-Wl,--defsym=__ram={b['ram_origin']:#x}",
        f"-Wl,--defsym=__ram_size={b['ram_size']:#x}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    (folder / "build.log").write_text(" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
    if proc.returncode != 0:
        if "picolibc.specs" in proc.stderr:
            pkg = APT_PACKAGES.get(b["cc"], "picolibc")
            raise UserError(f"{b['cc']} cannot find picolibc; install it with: sudo apt-get install {pkg}")
        overflow = overflow_error(proc.stderr, target, b)
        if overflow is not None:
            raise overflow
        raise RuntimeError(f"firmware build failed (see {folder / 'build.log'}):\n{proc.stderr[-3000:]}")
    return elf


def overflow_error(stderr: str, target: Target, b: dict[str, Any]) -> UserError | None:
    """The one-line error of a firmware the linker could not fit into the target's flash or RAM, else None."""
    full = re.search(r"region `(\w+)' overflowed by (\d+) bytes", stderr)
    if full is None:
        return None
    region, over = full.group(1), int(full.group(2))
    size = int(b["flash_size"] if region == "flash" else b["ram_size"])
    return UserError(f"the firmware does not fit {target.name}'s {region} ({size:,} B) by {over:,} B: it holds the model, "
                     f"its code and the test inputs with their outputs; use a smaller model or a target with more {region}")


def run_qemu(elf: Path, target: Target, n_vectors: int, n_kernels: int, out_size: int, timeout: float = QEMU_TIMEOUT_S) -> RunResult:
    """Run the firmware on the target's QEMU machine and parse what it printed."""
    b = build_config(target)
    log = elf.with_suffix(".out")
    log.unlink(missing_ok=True)
    cmd = qemu_command(elf, target, log)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"QEMU did not finish within {timeout:.0f} s: {' '.join(cmd)}") from None
    text = log.read_text() if log.exists() else ""
    if proc.returncode != 0 or "DONE" not in text:
        raise RuntimeError(f"firmware failed on QEMU (exit {proc.returncode}):\n{text[-2000:]}{proc.stderr[-1000:]}")
    return parse_output(text, n_vectors, n_kernels, out_size, float(b["instructions_per_tick"]), "the MCU")


def parse_output(text: str, n_vectors: int, n_kernels: int, out_size: int, per_tick: float, where: str) -> RunResult:
    """What the harness printed (outputs, per-kernel counts x ``per_tick``, layer dumps, workspace peak), parsed;
    RuntimeError for the model's error line (``where`` names the machine in the message)."""
    outputs = np.zeros((n_vectors, out_size), np.int8)
    counts = [[0.0] * n_kernels for _ in range(n_vectors)]
    totals = [0.0] * n_vectors
    peak = 0
    layers: dict[tuple[int, int], np.ndarray] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "O":
            outputs[int(parts[1])] = np.frombuffer(bytes.fromhex(parts[2]), np.int8)
        elif parts[0] == "P":
            counts[int(parts[1])][int(parts[2])] = int(parts[3]) * per_tick
        elif parts[0] == "T":
            totals[int(parts[1])] = int(parts[2]) * per_tick
        elif parts[0] == "L":
            layers[(int(parts[1]), int(parts[2]))] = np.frombuffer(bytes.fromhex(parts[3]), np.int8)
        elif parts[0] == "W":
            peak = int(parts[1])
        elif parts[0] == "E":
            raise RuntimeError(f"the model returned an error on {where}: {line}")
    return RunResult(outputs, counts, layers, totals, peak, text)


def qemu_command(elf: Path, target: Target, log: Path) -> list[str]:
    """The command that runs ``elf`` on the target's QEMU machine, its semihosting output going to ``log``."""
    b = build_config(target)
    require_tool(b["qemu"][0])
    # Semihosting output goes to a file chardev: QEMU's stdio backend makes stdout non-blocking and drops output
    # written into a full pipe.
    return [
        *map(str, b["qemu"]),
        "-display", "none", "-monitor", "none", "-serial", "none",
        "-chardev", f"file,id=tcout,path={log}",
        "-semihosting-config", "enable=on,target=native,chardev=tcout",
        "-kernel", str(elf),
    ]  # fmt: skip


def section_sizes(path: Path) -> dict[str, int]:
    """Sizes of the allocated sections of an ELF file (executable or object)."""
    sizes: dict[str, int] = {}
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            if sec["sh_flags"] & 0x2 or sec.name.startswith((".text", ".rodata", ".data", ".bss")):  # SHF_ALLOC
                sizes[sec.name] = sizes.get(sec.name, 0) + int(sec["sh_size"])
    return sizes


def memory_use(sizes: dict[str, int]) -> tuple[int, int]:
    """``(flash, ram)`` bytes implied by section sizes (initialised data counts in both)."""
    flash = sum(v for k, v in sizes.items() if k.startswith(FLASH_SECTIONS))
    ram = sum(v for k, v in sizes.items() if k.startswith(RAM_SECTIONS))
    return flash, ram


_COUNTERS = {
    # SysTick: a 24-bit down counter on the processor clock; under -icount shift=0 one tick is a fixed number of
    # instructions (40 at 25 MHz on mps2). Deltas are taken modulo 2**24: each kernel must stay below 2**24 ticks.
    "systick": """\
#define SYST_CSR (*(volatile uint32_t*)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t*)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t*)0xE000E018u)
static void counter_init(void) { SYST_RVR = 0x00FFFFFFu; SYST_CVR = 0; SYST_CSR = 5u; }
static inline uint32_t counter_read(void) { return SYST_CVR; }
static inline uint32_t counter_elapsed(uint32_t before, uint32_t after) { return (before - after) & 0x00FFFFFFu; }
""",
    # minstret counts retired instructions exactly (machine mode; csrr minstret as .insn: 0xB02 is -1278 as a signed 12-bit field, and no zicsr -march is needed).
    "minstret": """\
static void counter_init(void) {}
static inline uint32_t counter_read(void) { uint32_t v; __asm__ volatile(".insn i 0x73, 2, %0, x0, -1278" : "=r"(v)); return v; }
static inline uint32_t counter_elapsed(uint32_t before, uint32_t after) { return after - before; }
""",
    # mcycle counts clock cycles, on RTL (a real core: tinycompile.soc); csrr mcycle is csrrs x0 from 0xB00 (-1280).
    "mcycle": """\
static void counter_init(void) {}
static inline uint32_t counter_read(void) { uint32_t v; __asm__ volatile(".insn i 0x73, 2, %0, x0, -1280" : "=r"(v)); return v; }
static inline uint32_t counter_elapsed(uint32_t before, uint32_t after) { return after - before; }
""",
}

_MAIN = """\
/* Generated test harness: runs every test vector, prints outputs and per-kernel instruction counts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "model.h"
#include "vectors.h"

@COUNTER@
static uint32_t tc_counts[@M@NUM_KERNELS + 1];
static uint32_t tc_last;
static uint32_t tc_total;
static int tc_vector;

void @P@profile_hook(int k) {
  uint32_t now = counter_read();
  if (k > 0) {
    uint32_t d = counter_elapsed(tc_last, now);
    tc_counts[k - 1] = d;
    tc_total += d;
#ifdef TC_DUMP_LAYERS
    const int8_t* t = @N@arena() + @P@kernel_out_offset[k - 1];
    printf("L %d %d ", tc_vector, k - 1);
    for (uint32_t i = 0; i < @P@kernel_out_size[k - 1]; ++i) printf("%02x", (unsigned)(uint8_t)t[i]);
    printf("\\n");
#endif
  }
  tc_last = counter_read();  /* re-read: the bookkeeping above is not charged to the next kernel */
}

int main(void) {
  static int8_t out[@M@OUTPUT_SIZE];
  counter_init();
  for (int v = 0; v < TC_NUM_VECTORS; ++v) {
    tc_total = 0;
    tc_vector = v;
    int rc = @N@run(tc_vectors[v], out);
    if (rc != 0) { printf("E %d %d\\n", v, rc); exit(1); }
    printf("O %d ", v);
    for (int i = 0; i < @M@OUTPUT_SIZE; ++i) printf("%02x", (unsigned)(uint8_t)out[i]);
    printf("\\n");
    for (int k = 0; k < @M@NUM_KERNELS; ++k) printf("P %d %d %lu\\n", v, k, (unsigned long)tc_counts[k]);
    printf("T %d %lu\\n", v, (unsigned long)tc_total);
  }
  printf("W %lu\\n", (unsigned long)@N@workspace_peak());
  printf("DONE\\n");
  exit(0);  /* semihosting exit: returning from main does not stop every QEMU machine */
}
"""

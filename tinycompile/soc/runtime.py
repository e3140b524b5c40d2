"""The SoC's C runtime: picolibc's stdout on the TX register, ``exit`` on the EXIT register, and a trap handler
that reports the cause instead of letting the core spin (the harness itself is :mod:`tinycompile.mcu.firmware`'s)."""

from __future__ import annotations

from pathlib import Path

IO_BASE = 0xF000_0000  # tc_soc_io's registers; the core does not cache addresses at or above 0x8000_0000
TRAP_EXIT = 0x7F  # the exit code of a trap (the line before it says which)

_RUNTIME = """\
/* SoC runtime (generated): stdout on the TX register, exit on the EXIT register, traps reported. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define SOC_TX (*(volatile uint32_t *)@TX@u)
#define SOC_EXIT (*(volatile uint32_t *)@EXIT@u)

static int soc_putc(char c, FILE *f) {
  (void)f;
  SOC_TX = (uint8_t)c;
  return (unsigned char)c;
}

static FILE soc_stdio = FDEV_SETUP_STREAM(soc_putc, NULL, NULL, _FDEV_SETUP_WRITE);
FILE *const stdin = &soc_stdio;
FILE *const stdout = &soc_stdio;
FILE *const stderr = &soc_stdio;

void _exit(int code) {
  SOC_EXIT = (uint32_t)code;
  for (;;) {
  }
}

static void soc_hex(uint32_t v) {
  for (int i = 28; i >= 0; i -= 4) SOC_TX = (uint32_t)"0123456789abcdef"[(v >> i) & 0xFu];
}

/* CSR access as .insn: -march=rv32imc without zicsr has no csrr mnemonic. */
#define SOC_CSR_READ(csr, v) __asm__ volatile(".insn i 0x73, 2, %0, x0, " #csr : "=r"(v))

/* A trap (illegal instruction, bus error, misaligned access) prints "X <mcause> <mepc> <mtval>" and exits with
   @TRAP@: nothing in the firmware expects one, so it ends the run rather than returning. */
__attribute__((interrupt("machine"), aligned(4), noreturn)) static void soc_trap(void) {
  uint32_t cause, epc, tval;
  SOC_CSR_READ(0x342, cause);
  SOC_CSR_READ(0x341, epc);
  SOC_CSR_READ(0x343, tval);
  SOC_TX = 'X';
  SOC_TX = ' ';
  soc_hex(cause);
  SOC_TX = ' ';
  soc_hex(epc);
  SOC_TX = ' ';
  soc_hex(tval);
  SOC_TX = '\\n';
  _exit(@TRAP@);
}

__attribute__((constructor)) static void soc_init(void) {
  uintptr_t handler = (uintptr_t)&soc_trap;
  __asm__ volatile(".insn i 0x73, 1, x0, %0, 0x305" : : "r"(handler)); /* csrw mtvec */
}
"""


def write_runtime(folder: Path) -> Path:
    """Write ``soc_runtime.c`` into ``folder``; return its path."""
    text = (_RUNTIME.replace("@TX@", f"{IO_BASE:#x}").replace("@EXIT@", f"{IO_BASE + 4:#x}")
            .replace("@TRAP@", str(TRAP_EXIT)))
    path = folder / "soc_runtime.c"
    path.write_text(text)
    return path

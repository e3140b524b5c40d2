"""QEMU's executed instruction stream of a firmware run, split at the harness's counter reads into kernels.

QEMU logs, with ``-d in_asm,exec,nochain``, every translated block (TB) once, disassembled (``IN:`` and one line per
instruction), and every execution of a TB (``Trace 0: <host address> [.../<guest pc>/...]``; ``nochain`` makes QEMU
return to its main loop after each TB, so every execution is logged).

The traced run is the measured run's firmware and inputs on the same machine *without* ``-icount``: under -icount
QEMU also logs TBs it then does not run (the instruction budget is refilled every 65,535 instructions: the TB that
finds it spent exits before its first instruction and runs again, which a self-loop's next iteration looks the same
as) and cuts TBs at I/O accesses. Without it the stream is the same (the firmware's control flow does not depend on
time; only the counter values it stores differ) and every logged execution ran whole.

The harness (:mod:`tinycompile.mcu.firmware`) reads the instruction counter in its profiling hook before and after
each kernel: SysTick's current value register on Arm (a load whose address the hook's code builds with mov/movw/movt
or a literal: found by following those constants through the block), ``csrr minstret`` on RISC-V. Each call of the
hook reads twice (the first call's first value is dropped): the executions between a kernel's two reads are that
kernel's; the read that ends a kernel counts in it, as the counter counts it. Only the first input is traced:
tracing stops (QEMU is killed) at its last kernel's end.

QEMU's disassembler does not know every instruction (Armv8.1-M's low-overhead loops and Helium on the M55): the
instructions are re-split here by their encoding's length, so an instruction the disassembler printed as ``.byte``
still counts once; :mod:`tinycompile.mcu.timing` classifies it by its encoding.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.elffile import ELFFile

TRACE_FLAGS = "in_asm,exec,nochain"
_INSN = re.compile(r"^0x([0-9a-fA-F]+):\s+(\S.*)$")
_EXEC = re.compile(r"^Trace \d+: (0x[0-9a-fA-F]+) \[[0-9a-fA-F]+/([0-9a-fA-F]+)/")


@dataclass(frozen=True)
class Insn:
    """One guest instruction of a TB."""

    pc: int
    size: int  # bytes
    mnemonic: str  # as QEMU's disassembler printed it; "" where it could not decode the instruction
    operands: str
    code: tuple[int, ...]  # the instruction's halfwords in memory order


@dataclass(frozen=True)
class Block:
    """One translated block: straight-line instructions, entered at the first."""

    pc: int
    insns: tuple[Insn, ...]
    reads: tuple[int, ...] = ()  # the instructions that read the harness's counter (in the profiling hook)

    @property
    def end(self) -> int:
        """The address after the last instruction (where execution falls through to)."""
        last = self.insns[-1]
        return last.pc + last.size


@dataclass
class Trace:
    """The executed blocks of one input, in order, in pieces: a block's execution is cut at a counter read, each
    piece with its kernel (-1: between kernels)."""

    isa: str
    kernels: int
    blocks: list[Block] = field(default_factory=list)
    seq: array = field(default_factory=lambda: array("i"))  # block index per piece
    first: array = field(default_factory=lambda: array("i"))  # the piece's first instruction (> 0: a cut block)
    executed: array = field(default_factory=lambda: array("i"))  # instructions in the piece
    segment: array = field(default_factory=lambda: array("i"))  # kernel index, -1 outside the kernels
    reads: int = 0  # counter reads seen
    seconds: float = 0.0  # wall time of the traced QEMU run and its parsing

    @property
    def complete(self) -> bool:
        """Whether every kernel's end was seen."""
        return self.reads >= 2 * self.kernels + 1

    def kernel_instructions(self) -> list[int]:
        """Instructions executed in each kernel."""
        counts = [0] * self.kernels
        for n, seg in zip(self.executed, self.segment):
            if seg >= 0:
                counts[seg] += n
        return counts


def insn_size(isa: str, halfword: int) -> int:
    """The length in bytes of the instruction whose first halfword is ``halfword``."""
    if isa == "thumb":
        return 4 if halfword >> 11 in (0b11101, 0b11110, 0b11111) else 2
    return 4 if halfword & 3 == 3 else 2  # riscv: the C extension's 16-bit instructions do not end in 0b11


SYSTICK_CVR = 0xE000E018  # SysTick's current value register: what the Arm harness's counter_read loads
_REG = {"sb": 9, "sl": 10, "fp": 11, "ip": 12, "sp": 13, "lr": 14, "pc": 15, **{f"r{i}": i for i in range(16)}}
_MOV_IMM = re.compile(r"^(r\d+|sb|sl|fp|ip|lr),\s*#(-?(?:0x[0-9a-f]+|\d+))$")
_LOAD = re.compile(r"^(r\d+|sb|sl|fp|ip|lr),\s*\[(r\d+|sb|sl|fp|ip|sp|lr|pc)(?:,\s*#(-?(?:0x[0-9a-f]+|\d+)))?\]$")


def counter_reads(isa: str, insns: list[Insn], word: Callable[[int], int | None] | None = None) -> list[int]:
    """Indices of the instructions of one block (of the profiling hook) that read the harness's counter: a load of
    SysTick's current value on Arm (its address followed through mov/movw/movt and literal loads, ``word`` reading
    the literals), a read of ``minstret`` on RISC-V."""
    if isa == "riscv":
        return [j for j, i in enumerate(insns) if "minstret" in i.operands or i.mnemonic == "rdinstret"]
    consts: dict[str, int] = {}
    found = []
    for j, insn in enumerate(insns):
        root = insn.mnemonic.split(".")[0]
        ops = insn.operands.replace(" ", "").replace(",", ", ")
        mov = _MOV_IMM.match(ops)
        load = _LOAD.match(ops)
        dest = ops.split(",")[0].strip()
        if mov and root in ("mov", "movs", "movw"):
            consts[dest] = int(mov.group(2), 0) & 0xFFFFFFFF
        elif mov and root == "movt" and dest in consts:
            consts[dest] = (consts[dest] & 0xFFFF) | (int(mov.group(2), 0) & 0xFFFF) << 16
        elif load and root == "ldr":
            base, off = load.group(2), int(load.group(3) or "0", 0)
            value = None
            if base == "pc" and word is not None:
                value = word(((insn.pc + 4) & ~3) + off)
            elif base in consts and (consts[base] + off) & 0xFFFFFFFF == SYSTICK_CVR:
                found.append(j)
            consts.pop(dest, None)
            if value is not None:
                consts[dest] = value
        elif dest in _REG and not _writes_nothing(root):
            consts.pop(dest, None)  # written by something this does not follow
    return found


def _writes_nothing(root: str) -> bool:
    """Whether a Thumb instruction leaves its first register operand as it was (stores, compares, branches)."""
    conds = ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al")
    return root.startswith(("str", "cmp", "cmn", "tst", "teq", "push", "it")) or root in (
        "b", "bl", "bx", "blx", "cbz", "cbnz") or (root[:1] == "b" and root[1:] in conds)


class LogParser:
    """Turns QEMU's log lines into a :class:`Trace`; ``hook``: the address range of the harness's profiling hook."""

    def __init__(self, isa: str, hook: tuple[int, int], kernels: int, word: Callable[[int], int | None] | None = None) -> None:
        if isa not in ("thumb", "riscv"):
            raise ValueError(f"unknown instruction set {isa!r}")
        self.isa = isa
        self.hook = hook
        self.word = word
        self.trace = Trace(isa, kernels)
        self._lines: list[tuple[int, str, str, str]] | None = None  # the IN block being read
        self._fresh: int | None = None  # a block translated but not yet executed
        self._by_host: dict[str, int] = {}  # QEMU's host address of a TB -> block index
        self._current = -1  # the segment executions go to now

    def feed_all(self, lines: Iterable[str]) -> Trace:
        """Parse every line (or up to the first input's last kernel end)."""
        for line in lines:
            if self.feed(line):
                break
        self._close_block()
        return self.trace

    def feed(self, line: str) -> bool:
        """Parse one line; True once every kernel of the first input has been seen."""
        if line.startswith("Trace "):
            self._close_block()
            return self._execute(line)
        if self._lines is not None:
            m = _INSN.match(line)
            if m:
                self._lines.append(_split_insn(int(m.group(1), 16), m.group(2)))
            elif not line.strip():
                self._close_block()
            return False  # other lines of an IN block (RISC-V's "Priv: 3; Virt: 0")
        if line.startswith("IN:"):
            self._lines = []
        return False

    def _close_block(self) -> None:
        if self._lines is None:
            return
        lines, self._lines = self._lines, None
        if not lines:
            return
        insns = _resplit(self.isa, lines)
        lo, hi = self.hook
        reads = counter_reads(self.isa, insns, self.word) if lo <= insns[0].pc < hi else []
        self.trace.blocks.append(Block(insns[0].pc, tuple(insns), tuple(reads)))
        self._fresh = len(self.trace.blocks) - 1

    def _execute(self, line: str) -> bool:
        m = _EXEC.match(line)
        if m is None:
            return False
        host, pc = m.group(1), int(m.group(2), 16)
        if self._fresh is not None:  # QEMU runs a TB right after translating it
            if self.trace.blocks[self._fresh].pc == pc:
                self._by_host[host] = self._fresh
            self._fresh = None
        index = self._by_host.get(host)
        if index is None or self.trace.blocks[index].pc != pc:
            raise RuntimeError(f"QEMU's log executes a TB at {pc:#x} that it never translated (log line: {line.strip()})")
        block = self.trace.blocks[index]
        t = self.trace
        pos = 0
        for j in block.reads:
            # The hook reads twice per call, also before the first kernel (a value it drops): read 2k + 1 starts
            # kernel k, read 2k + 2 ends it; the read itself belongs to what comes before it.
            t.reads += 1
            if t.reads == 1:
                continue
            self._piece(index, pos, j + 1 - pos)
            pos = j + 1
            kernel, starts = divmod(t.reads - 1, 2)
            self._current = kernel if starts else -1
            if t.complete:
                return True
        if pos < len(block.insns):
            self._piece(index, pos, len(block.insns) - pos)
        return False

    def _piece(self, index: int, first: int, count: int) -> None:
        t = self.trace
        t.seq.append(index)
        t.first.append(first)
        t.executed.append(count)
        t.segment.append(self._current)


def _split_insn(pc: int, rest: str) -> tuple[int, str, str, str]:
    """``(pc, raw hex, mnemonic, operands)`` of one disassembled line (fields are two or more spaces apart)."""
    parts = re.split(r"\s{2,}", rest.strip())
    return pc, parts[0], parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else ""


def _resplit(isa: str, lines: list[tuple[int, str, str, str]]) -> list[Insn]:
    """The block's instructions, split by encoding length (the disassembler's split where it agrees)."""
    halfwords: dict[int, int] = {}
    named: dict[int, tuple[str, str, int]] = {}
    for pc, raw, mnemonic, operands in lines:
        hws: list[int] = []
        for tok in raw.split():
            if len(tok) == 8:  # a whole 32-bit word (RISC-V): its low halfword comes first in memory
                hws += [int(tok[4:], 16), int(tok[:4], 16)]
            else:
                hws.append(int(tok, 16))
        for i, h in enumerate(hws):
            halfwords[pc + 2 * i] = h
        named[pc] = (mnemonic, operands, 2 * len(hws))
    start, end = min(halfwords), max(halfwords) + 2
    insns = []
    pc = start
    while pc < end:
        size = insn_size(isa, halfwords[pc])
        code = tuple(halfwords.get(pc + 2 * i, 0) for i in range(size // 2))
        mnemonic, operands, printed = named.get(pc, ("", "", 0))
        if printed != size or mnemonic.startswith("."):
            mnemonic, operands = "", ""  # the disassembler did not decode this instruction whole
        insns.append(Insn(pc, size, mnemonic.lower(), operands.lower(), code))
        pc += size
    return insns


def symbol_range(elf: Path, name: str) -> tuple[int, int]:
    """``[start, end)`` of function ``name`` in ``elf`` (the Thumb bit cleared)."""
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        syms = symtab.get_symbol_by_name(name) if symtab is not None else None
        if not syms:
            raise RuntimeError(f"{elf} has no symbol {name}: cannot find the profiling hook to split the trace")
        start = int(syms[0]["st_value"]) & ~1
        return start, start + max(int(syms[0]["st_size"]), 2)


def elf_words(elf: Path) -> Callable[[int], int | None]:
    """A reader of the 32-bit little-endian words of ``elf``'s loaded segments (None outside them)."""
    with open(elf, "rb") as f:
        segments = [(int(s["p_vaddr"]), s.data()) for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_LOAD"]

    def word(address: int) -> int | None:
        for base, data in segments:
            if base <= address and address + 4 <= base + len(data):
                return int.from_bytes(data[address - base : address - base + 4], "little")
        return None

    return word


def without_icount(cmd: list[str]) -> list[str]:
    """``cmd`` without its ``-icount <options>``."""
    out: list[str] = []
    skip = False
    for arg in cmd:
        if skip:
            skip = False
        elif arg in ("-icount", "--icount"):
            skip = True
        else:
            out.append(arg)
    return out


def trace_firmware(elf: Path, cmd: list[str], isa: str, hook: str, kernels: int, timeout: float,
                   extra_args: Iterable[str] = ()) -> Trace:
    """Run ``elf`` with QEMU's command ``cmd`` (its -icount dropped) and the trace on stderr, parse it as it comes,
    and stop QEMU once the first input's ``kernels`` have run; ``hook``: the profiling hook's symbol; ``extra_args``:
    more QEMU options (a plugin)."""
    start = time.perf_counter()
    proc = subprocess.Popen([*without_icount(cmd), *extra_args, "-d", TRACE_FLAGS], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1 << 20)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    parser = LogParser(isa, symbol_range(elf, hook), kernels, elf_words(elf))
    try:
        assert proc.stderr is not None
        trace = parser.feed_all(proc.stderr)
    finally:
        timer.cancel()
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    trace.seconds = time.perf_counter() - start
    if not trace.complete:
        raise RuntimeError(f"the traced QEMU run ended after {trace.reads} of {2 * kernels + 1} counter reads "
                           f"(timeout {timeout:.0f} s): {' '.join(cmd)}")
    return trace

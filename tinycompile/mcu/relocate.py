"""Addresses of one link of a firmware in another link of the same objects (QEMU's memory map -> the SoC's).

QEMU cannot run the SoC's image (its machine has no memory at address 0), so the SoC's cycle estimate traces the same
library linked for QEMU and moves every address to where the SoC's link put it: by symbol (functions, the kernels'
constant tables, the arena), else by section. Cache sets and halfword alignment depend on the real addresses, and
the two links differ in their start-up code, so the kernels sit at other offsets modulo 4 KiB.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from elftools.elf.elffile import ELFFile

from tinycompile.mcu.trace import Block, Insn, Trace


def _symbols(elf: Path) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """``{name: (address, size)}`` of the sized symbols whose name occurs once, and of the allocated sections."""
    seen: dict[str, list[tuple[int, int]]] = {}
    sections: dict[str, tuple[int, int]] = {}
    with open(elf, "rb") as f:
        e = ELFFile(f)
        for sec in e.iter_sections():
            if sec["sh_flags"] & 2 and sec["sh_size"]:  # SHF_ALLOC
                sections[sec.name] = (int(sec["sh_addr"]), int(sec["sh_size"]))
        symtab = e.get_section_by_name(".symtab")
        for sym in symtab.iter_symbols() if symtab is not None else ():
            if sym.name and sym["st_size"] and sym["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT"):
                seen.setdefault(sym.name, []).append((int(sym["st_value"]) & ~1, int(sym["st_size"])))
    return {n: v[0] for n, v in seen.items() if len(v) == 1}, sections


@dataclass(frozen=True)
class Relocation:
    """Sorted ranges ``[start, end)`` of the source link with the offset that moves them into the target link."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    deltas: tuple[int, ...]

    @classmethod
    def between(cls, source: Path, target: Path) -> Relocation:
        """The relocation from ``source``'s addresses to ``target``'s (two links of the same library)."""
        src_syms, src_secs = _symbols(source)
        dst_syms, dst_secs = _symbols(target)
        ranges: dict[int, tuple[int, int]] = {}
        for name, (addr, size) in src_syms.items():
            other = dst_syms.get(name)
            if other is not None and other[1] == size:
                ranges[addr] = (addr + size, other[0] - addr)
        spans = sorted((a, e, d) for a, (e, d) in ranges.items())
        # Sections fill the gaps between symbols (the stack, unnamed constants); symbols take precedence.
        for name, (addr, size) in src_secs.items():
            if name in dst_secs:
                spans += _gaps(spans, addr, addr + size, dst_secs[name][0] - addr)
        spans.sort()
        return cls(tuple(s[0] for s in spans), tuple(s[1] for s in spans), tuple(s[2] for s in spans))

    def __call__(self, address: int) -> int:
        """Where ``address`` is in the target link (unchanged where neither a symbol nor a section covers it)."""
        i = bisect_right(self.starts, address) - 1
        if i >= 0 and address < self.ends[i]:
            return address + self.deltas[i]
        return address

    def array(self, addresses: np.ndarray) -> np.ndarray:
        """:meth:`__call__` over an array of 32-bit addresses."""
        if not self.starts:
            return addresses
        a = addresses.astype(np.int64)
        i = np.searchsorted(np.asarray(self.starts, dtype=np.int64), a, side="right") - 1
        ok = (i >= 0) & (a < np.asarray(self.ends, dtype=np.int64)[np.maximum(i, 0)])
        moved = a + np.where(ok, np.asarray(self.deltas, dtype=np.int64)[np.maximum(i, 0)], 0)
        return (moved & 0xFFFFFFFF).astype(np.uint32)

    def trace(self, trace: Trace) -> Trace:
        """``trace`` with its instructions at the target link's addresses (the stream itself unchanged)."""
        blocks = [Block(self(b.pc), tuple(Insn(self(i.pc), i.size, i.mnemonic, i.operands, i.code) for i in b.insns),
                        b.reads) for b in trace.blocks]
        return Trace(trace.isa, trace.kernels, blocks, trace.seq, trace.first, trace.executed, trace.segment,
                     trace.reads, trace.seconds)


def _gaps(spans: list[tuple[int, int, int]], start: int, end: int, delta: int) -> list[tuple[int, int, int]]:
    """The parts of ``[start, end)`` that no span covers, each with ``delta``."""
    out = []
    pos = start
    for s, e, _ in sorted(spans):
        if e <= pos or s >= end:
            continue
        if s > pos:
            out.append((pos, s, delta))
        pos = max(pos, e)
    if pos < end:
        out.append((pos, end, delta))
    return out

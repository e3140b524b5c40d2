"""A firmware ELF as the SoC memory's initial contents: one 32-bit little-endian word per line, for ``$readmemh``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from elftools.elf.elffile import ELFFile


def elf_to_words(elf: Path, mem_bytes: int) -> np.ndarray:
    """The loadable segments of ``elf`` at their load addresses (initialised data at its copy in flash), as
    little-endian words from address 0 up to the last byte used; ValueError if a segment lies outside the memory."""
    image = np.zeros(mem_bytes, np.uint8)
    top = 0
    with open(elf, "rb") as f:
        for seg in ELFFile(f).iter_segments():
            if seg["p_type"] != "PT_LOAD" or seg["p_filesz"] == 0:
                continue
            addr, data = int(seg["p_paddr"]), seg.data()
            if addr + len(data) > mem_bytes:
                raise ValueError(f"{elf}: a segment at {addr:#x} (+{len(data)} B) lies outside the SoC's "
                                 f"{mem_bytes} B memory")
            image[addr:addr + len(data)] = np.frombuffer(data, np.uint8)
            top = max(top, addr + len(data))
    return image[: (top + 3) // 4 * 4].view("<u4")


def write_hex(elf: Path, mem_bytes: int, out: Path) -> int:
    """Write ``elf``'s memory image to ``out`` for ``$readmemh``; return its size in bytes."""
    words = elf_to_words(elf, mem_bytes)
    out.write_text("".join(f"{int(w):08x}\n" for w in words))
    return int(words.size * 4)

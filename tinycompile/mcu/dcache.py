"""Data cache misses per kernel: QEMU's recorded loads and stores (:mod:`tinycompile.mcu.memtrace`) matched to the
executed instruction stream (:mod:`tinycompile.mcu.trace`) and run through a direct-mapped, write-through cache
that allocates on loads only (VexRiscv's data cache as the SoC configures it; the target's ``timing.data_cache``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinycompile.mcu.trace import Trace


@dataclass(frozen=True)
class DataCache:
    """A direct-mapped data cache: ``cache_lines`` lines of ``line_bytes``; a load that misses costs ``miss`` cycles
    (the line's refill); stores write through and allocate nothing."""

    miss: float
    line_bytes: int
    cache_lines: int


def kernel_misses(trace: Trace, memory_insns: dict[int, list[int]], pcs: np.ndarray, addresses: np.ndarray,
                  cache: DataCache) -> list[int]:
    """Load misses per kernel. ``memory_insns``: per block index, the indices of its loads and stores (the order
    QEMU records their accesses in); ``pcs``: the records' instruction addresses (bit 0: a store), in the trace's
    addresses; ``addresses``: their data addresses. ValueError when the records do not follow the stream."""
    keys: dict[tuple[int, int, int], int] = {}
    piece_pcs: list[np.ndarray] = []
    seq = []
    for b, f, n in zip(trace.seq, trace.first, trace.executed):
        key = (b, f, n)
        k = keys.get(key)
        if k is None:
            insns = trace.blocks[b].insns
            k = keys[key] = len(piece_pcs)
            piece_pcs.append(np.asarray([insns[j].pc for j in memory_insns.get(b, ()) if f <= j < f + n], dtype=np.uint32))
        seq.append(k)
    counts = np.asarray([len(a) for a in piece_pcs], dtype=np.int64)[np.asarray(seq, dtype=np.int64)]
    expected = np.concatenate([piece_pcs[k] for k in seq]) if seq else np.zeros(0, dtype=np.uint32)
    need = len(expected)
    # QEMU is stopped at the last kernel's end: the accesses of the last piece may not have been recorded.
    short = need - len(pcs)
    if short > (int(counts[-1]) if len(counts) else 0):
        raise ValueError(f"QEMU recorded {len(pcs):,} data accesses, the traced stream has {need:,}")
    have = min(need, len(pcs))
    got = pcs[:have] & ~np.uint32(1)
    want = expected[:have]
    if not np.array_equal(got, want):
        first = int(np.flatnonzero(got != want)[0])
        raise ValueError(f"data access {first:,} was recorded at pc {int(got[first]):#x}, the stream has "
                         f"{int(want[first]):#x} there")
    segment = np.repeat(np.asarray(trace.segment, dtype=np.int64), counts)[:have]
    is_load = (pcs[:have] & 1) == 0
    line = addresses[:have].astype(np.int64) // cache.line_bytes
    loads = np.flatnonzero(is_load)
    miss = _direct_mapped_misses(line[loads], cache.cache_lines)
    seg = segment[loads][miss]
    return [int(v) for v in np.bincount(seg[seg >= 0], minlength=trace.kernels)[: trace.kernels]]


def _direct_mapped_misses(lines: np.ndarray, sets: int) -> np.ndarray:
    """Which of a sequence of loads of ``lines`` miss in a direct-mapped cache of ``sets`` lines (cold at first):
    a load hits when the previous load that mapped to its set was of the same line."""
    if len(lines) == 0:
        return np.zeros(0, dtype=bool)
    index = lines % sets
    order = np.argsort(index, kind="stable")  # each set's loads, in time order
    s, ln = index[order], lines[order]
    miss_sorted = np.ones(len(lines), dtype=bool)
    miss_sorted[1:] = (s[1:] != s[:-1]) | (ln[1:] != ln[:-1])
    miss = np.empty(len(lines), dtype=bool)
    miss[order] = miss_sorted
    return miss

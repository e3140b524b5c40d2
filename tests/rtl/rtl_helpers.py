"""Helpers for the RTL benches: random requantization parameters, programs that fill OUT and end with DONE."""

from __future__ import annotations

import numpy as np

from tinycompile.accel.assembler import Instr, MemoryImage, assemble
from tinycompile.accel.config import AccelConfig
from tinycompile.quant.intmath import quantize_multiplier

IDENT_MULT = 2**31 - 1  # with shift 0 and bias 0: exact identity on int8 values


def requant_params(rng: np.random.Generator, c: int, lo: float = 0.0005, hi: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Random per-channel (multiplier, shift) from scales in [lo, hi)."""
    ms = [quantize_multiplier(s) for s in rng.uniform(lo, hi, c)]
    return np.array([m for m, _ in ms]), np.array([s for _, s in ms])


def finish_program(img: MemoryImage, prog: list[Instr]) -> int:
    """Append DONE, put the program into the image and return its address."""
    return img.put(np.frombuffer(assemble(prog + [Instr("DONE")]), np.uint8))


def fill_out(img: MemoryImage, cfg: AccelConfig, rng: np.random.Generator, rows: int) -> list[Instr]:
    """Instructions that leave ACC[0:rows] and OUT[0:rows] = random int8 words (the first store-queue entry pops)."""
    n = cfg.n
    x_addr = img.put(rng.integers(-128, 128, (rows, n)).astype(np.int8))
    w_addr = img.put(np.eye(n, dtype=np.int8))
    p_addr = img.put(np.stack([np.zeros(n), np.full(n, IDENT_MULT), np.zeros(n)]).astype(np.int32))
    return [
        Instr("LOAD", dict(sp=0, base=x_addr, n0=rows, d0=n)),
        Instr("LOAD", dict(sp=1, base=w_addr, n0=n, d0=n)),
        Instr("LOAD", dict(sp=2, base=p_addr, n0=12, d0=n, push_next=1)),
        Instr("COMPUTE", dict(init=1, m=rows, kt=1, nt=1, pop_prev=1, push_next=1)),
        Instr("POSTPROC", dict(acc_a=0, out_base=0, rows=rows, pset=0, zp=0, lo=-128, hi=127,
                               pop_prev=1)),
    ]

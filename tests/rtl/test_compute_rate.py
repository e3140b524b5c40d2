"""Short COMPUTE passes on the RTL: one row per cycle with no bubbles, and exact through the forwarding path.

A global pool or a dense layer is a COMPUTE of many one-row passes that all accumulate into the same
accumulator row: each row is re-read before its previous update has landed in the (read-first) RAM, so
the accumulate stage must forward the last two writes. The programs below compare every accumulator
bit with the ISA model and time the compute unit (CSR 4) against a one-pass baseline. One case uses
``wfix`` (one weight tile per n tile for every k pass, as global pooling does).
"""

from __future__ import annotations

import numpy as np
import pytest

from tinycompile.accel.assembler import Instr, MemoryImage, assemble
from tinycompile.accel.config import AccelConfig
from tinycompile.accel.model import run_model
from tinycompile.accel.simulate import SimJob, run_jobs

LSHIFTS = (24, 16, 8, 0)  # four identity requantizations of acc << lshift >> 24 pin down all 32 bits
MULT, SHIFT = 2**31 - 1, 24


def _program(n: int, kt: int, m: int, nt: int, mode: dict[str, int], seed: int) -> tuple[MemoryImage, int, list[int]]:
    """LOAD data, one COMPUTE (m rows, kt passes, nt tiles), then the accumulators out through POSTPROC/STORE."""
    rng = np.random.default_rng(seed)
    img = MemoryImage(n, 1 << 20)
    words = kt * m + (nt - 1) * kt * m
    x = img.put(rng.integers(-128, 128, (words, n)).astype(np.int8))
    w = img.put(rng.integers(-128, 128, (kt * nt * n, n)).astype(np.int8))
    p = img.put(np.stack([np.zeros(n), np.full(n, MULT), np.full(n, SHIFT)]).astype(np.int32))
    rows = m * nt
    prog = [
        Instr("LOAD", dict(sp=0, base=x, n0=words, d0=n)),
        Instr("LOAD", dict(sp=1, base=w, n0=kt * nt * n, d0=n)),
        Instr("LOAD", dict(sp=2, base=p, n0=12, d0=n, push_next=1)),
        Instr("COMPUTE", dict(init=1, m=m, kt=kt, nt=nt, inp_nt_stride=kt * m, pop_prev=1, push_next=1, **mode)),
    ]
    outs = []
    for s, ls in enumerate(LSHIFTS):
        dst = img.alloc(rows * n, 64)
        prog += [Instr("POSTPROC", dict(acc_a=0, out_base=0, rows=rows, pset=0, zp=0, lo=-128, hi=127, lshift=ls,
                                        pop_prev=int(s == 0))),
                 Instr("STORE", dict(sp=0, base=dst, n0=rows, d0=n))]
        outs.append(dst)
    pa = img.put(np.frombuffer(assemble(prog + [Instr("DONE")]), np.uint8))
    return img, pa, outs


# (kt, m, nt, mode): global-pool and dense shapes (m = 1, 2), a max pool of one-row passes, a global pool on one
# weight tile per n tile (wfix), one long pass
CASES = [(200, 1, 1, {}), (64, 1, 3, {}), (50, 2, 2, {}), (90, 1, 2, {"max": 1}), (40, 1, 2, {"win": 1}),
         (70, 1, 3, {"wfix": 1}), (1, 200, 1, {})]


@pytest.mark.parametrize("n", [4, 8])
def test_short_passes_are_exact_and_take_one_cycle_per_row(n: int) -> None:
    """Every accumulator equals the model's, with and without memory stalls; the compute unit spends one cycle per
    row issued however short the passes (a 200-pass global pool costs what one 200-row pass costs)."""
    jobs, refs = [], []
    for i, (kt, m, nt, mode) in enumerate(CASES):
        img, pa, outs = _program(n, kt, m, nt, mode, seed=i)
        refs.append((run_model(img, pa, AccelConfig.for_array(n)), outs, m * nt))
        jobs += [SimJob(img, pa, stall=False), SimJob(img, pa, stall=True)]
    res = run_jobs(jobs, n=n)
    for k, r in enumerate(res):
        ref, outs, rows = refs[k // 2]
        assert r.done and not r.error, (CASES[k // 2], r.error_code)
        for dst in outs:
            np.testing.assert_array_equal(r.image.read(dst, rows * n), ref.read(dst, rows * n), err_msg=str(CASES[k // 2]))
    quiet = res[0::2]
    for (kt, m, nt, _), r in zip(CASES, quiet):
        assert r.mac_cycles == kt * m * nt
    # 200 one-row passes vs one 200-row pass (same rows issued): equal compute time within a few cycles
    assert abs(quiet[0].compute_busy - quiet[-1].compute_busy) <= 2, (quiet[0].compute_busy, quiet[-1].compute_busy)
    for (kt, m, nt, _), r in zip(CASES, quiet):
        assert r.compute_busy <= kt * m * nt + 8, ((kt, m, nt), r.compute_busy)

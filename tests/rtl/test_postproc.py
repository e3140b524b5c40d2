"""POSTPROC on the RTL (pipelined requantization lanes): bit-exact with the ISA model, and its timing.

Programs put small random rows in ACC (LOAD, identity weight tile, one COMPUTE) and parameter sets
with extreme values (bias int32 min/max, which wraps the accumulator, multipliers 2^31-1, -2^31,
2^30 and random, shifts 0 and 31), then run many POSTPROCs back to back, in normal and add mode,
with 1 to 40 rows, lshift 0 and 20 and various clamp bounds, and STORE the OUT scratchpad. Memory is
compared with ``run_model`` byte for byte, memory stalls off and on. The timing test reads the
store unit's busy counter (CSR 5) for POSTPROCs of different lengths.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinycompile.accel.assembler import Instr, MemoryImage, assemble
from tinycompile.accel.kernels import AccelConfig
from tinycompile.accel.model import run_model
from tinycompile.accel.simulate import SimJob, run_jobs
from tinycompile.quant.intmath import INT32_MAX, INT32_MIN

ACC_ROWS = 64
SETS = 8
IDENT_MULT = 2**31 - 1  # with shift 0 and bias 0: exact identity on int8 values


def _param_sets(rng: np.random.Generator, n: int) -> np.ndarray:
    """SETS parameter sets (3 rows of N int32 each: bias, multiplier, shift) with corner values."""
    rows = []
    for s in range(SETS):
        if s == 0:  # identity: exercises the plain path and the clamp
            bias, mult, shift = np.zeros(n), np.full(n, IDENT_MULT), np.zeros(n)
        else:
            bias = rng.choice([0, 1, -1, INT32_MAX, INT32_MIN, -(2**30), 12345], n)
            bias = np.where(rng.random(n) < 0.4, rng.integers(-(2**20), 2**20, n), bias)
            mult = rng.choice([IDENT_MULT, INT32_MIN, 2**30, 1518500250, -1, 0], n)
            mult = np.where(rng.random(n) < 0.5, rng.integers(2**30, 2**31, n), mult)
            shift = rng.choice([0, 31, 1, 20], n)
            shift = np.where(rng.random(n) < 0.5, rng.integers(0, 32, n), shift)
        rows += [bias, mult, shift]
    return np.stack(rows).astype(np.int64).astype(np.int32)


def _setup(img: MemoryImage, rng: np.random.Generator, acc_rows: int = ACC_ROWS) -> list[Instr]:
    """ACC[0:acc_rows] = random int8 rows, PARAM = SETS sets; the first store-queue entry pops."""
    n = img.n
    x_addr = img.put(rng.integers(-128, 128, (acc_rows, n)).astype(np.int8))
    w_addr = img.put(np.eye(n, dtype=np.int8))
    p_addr = img.put(_param_sets(rng, n))
    return [
        Instr("LOAD", dict(sp=0, base=x_addr, n0=acc_rows, d0=n)),
        Instr("LOAD", dict(sp=1, base=w_addr, n0=n, d0=n)),
        Instr("LOAD", dict(sp=2, base=p_addr, n0=12 * SETS, d0=n, push_next=1)),
        Instr("COMPUTE", dict(init=1, m=acc_rows, kt=1, nt=1, pop_prev=1, push_next=1)),
    ]


def _finish(img: MemoryImage, prog: list[Instr]) -> int:
    return img.put(np.frombuffer(assemble(prog + [Instr("DONE")]), np.uint8))


def _postproc_program(n: int, rng: np.random.Generator) -> tuple[MemoryImage, int]:
    """Setup, POSTPROCs back to back (both modes, many lengths and parameters), one STORE."""
    img = MemoryImage(n, 1 << 20)
    prog = _setup(img, rng)
    out = 0
    first = True
    lengths = [1, 2, 3, 4, 5, 7, 40, 1, 1, 2, 13, 6]
    for k, rows in enumerate(lengths * 2):
        add = int(k % 3 == 1 or k >= len(lengths) + 8)
        pset = int(rng.integers(0, SETS - 2 if add else SETS))
        zp = int(rng.integers(-128, 128))
        lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2))
        if rng.random() < 0.3:
            lo, hi = -128, 127
        f = dict(pop_prev=int(first), add=add, acc_a=int(rng.integers(0, ACC_ROWS - rows + 1)),
                 acc_b=int(rng.integers(0, ACC_ROWS - rows + 1)), out_base=out, rows=rows, pset=pset,
                 zp=zp, lo=lo, hi=hi, lshift=int(rng.choice([0, 20, 31, 3])))
        prog.append(Instr("POSTPROC", f))
        first = False
        out += rows
    dst = img.alloc(out * n)
    prog.append(Instr("STORE", dict(sp=0, base=dst, n0=out, d0=n)))
    return img, _finish(img, prog)


@pytest.mark.parametrize("n", [4, 8])
def test_postproc_programs_bit_exact(n: int) -> None:
    """Back-to-back POSTPROCs, normal and add mode, extreme parameters: memory equals the model's."""
    rng = np.random.default_rng(77 + n)
    jobs, refs = [], []
    for _ in range(2):
        img, pa = _postproc_program(n, rng)
        refs.append(run_model(img, pa, AccelConfig(n=n)))
        jobs += [SimJob(img, pa, stall=False), SimJob(img, pa, stall=True)]
    res = run_jobs(jobs, n=n)
    for k, r in enumerate(res):
        assert r.done and not r.error, (r.status, r.error_code)
        np.testing.assert_array_equal(r.image.data, refs[k // 2].data)


# Store-unit busy cycles of one POSTPROC: fixed + rows * per_row (parameter rows included in fixed).
POSTPROC_NORMAL = (9, 1)
POSTPROC_ADD = (20, 3)


def test_postproc_timing(capsys: pytest.CaptureFixture[str]) -> None:
    """Normal mode streams one row per cycle, add mode one row per 3 cycles, after a fixed latency."""
    n = 8
    lengths = [1, 2, 3, 10, 33]
    jobs, keys = [], []
    for add in (0, 1):
        for rows in [0] + lengths:
            img = MemoryImage(n, 1 << 18)
            prog = _setup(img, np.random.default_rng(3), acc_rows=40)
            if rows:
                prog.append(Instr("POSTPROC", dict(pop_prev=1, add=add, acc_a=0, acc_b=5, rows=rows,
                                                   pset=0, lshift=20 * add)))
            else:
                prog.append(Instr("SYNC", dict(queue=2, pop_prev=1)))
            jobs.append(SimJob(img, _finish(img, prog)))
            keys.append((add, rows))
    res = run_jobs(jobs, n=n)
    busy = {}
    for r, key, job in zip(res, keys, jobs):
        assert r.done and not r.error
        np.testing.assert_array_equal(r.image.data, run_model(job.image, job.prog_addr, AccelConfig(n=n)).data)
        busy[key] = r.store_busy
    for add, (fixed, per_row) in ((0, POSTPROC_NORMAL), (1, POSTPROC_ADD)):
        got = {rows: busy[(add, rows)] - busy[(add, 0)] for rows in lengths}
        with capsys.disabled():
            print(f"\nPOSTPROC {'add' if add else 'normal'} mode, store-unit cycles beyond a SYNC: {got}")
        assert got == {rows: fixed + per_row * rows for rows in lengths}, got

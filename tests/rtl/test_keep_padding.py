"""LOAD ``keep``: out-of-bounds words are left as they are, and a wholly out-of-bounds run takes one cycle.

A padded plane is loaded once with one pad byte, then again from other data with ``keep`` and another pad byte:
the plane must hold the new data and the first pad, on the RTL (memory stalls off and on) and in the ISA model.
INP is read back through the array (identity weights, identity requantization) and stored. The load unit's busy
counter pins the cycles the cost model charges a ``keep`` LOAD.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinycompile.accel.assembler import Instr, MemoryImage
from tinycompile.accel.config import AccelConfig
from tinycompile.accel.isa import ADDRESS_SPACE
from tinycompile.accel.model import run_model
from tinycompile.accel.simulate import SimJob, run_jobs
from tinycompile.fpga.schedule import OVERHEAD, _work

from rtl_helpers import IDENT_MULT, finish_program

ROWS, COLS = 3, 5  # the map; the plane adds one pad row above and below and one pad column left and right
PAD_FIRST, PAD_KEPT = 7, -100  # the first load's pad byte; the keep load's, which must never be written


def _plane(base: int, n: int, pad: int, keep: int, swap: bool = False) -> Instr:
    """LOAD of the padded (ROWS + 2) x (COLS + 2) plane to INP word 0; ``swap``: loop 1 steps x and loop 0 steps
    y (the transposed sweep), so the empty runs are the pad columns instead of the pad rows."""
    h, w = (COLS, ROWS) if swap else (ROWS, COLS)
    coords = {"x0": -1, "y0": -1, "sx1": 1, "sy0": 1} if swap else {"y0": -1, "x0": -1, "sy1": 1, "sx0": 1}
    d1, d0 = (n, COLS * n) if swap else (COLS * n, n)
    return Instr("LOAD", dict(sp=0, base=(base - d1 - d0) % ADDRESS_SPACE, n1=h + 2, d1=d1, n0=w + 2, d0=d0,
                              h=ROWS, w=COLS, pad=pad, keep=keep, **coords))


def _readback_job(n: int, swap: bool, stall: bool, rng: np.random.Generator) -> tuple[SimJob, int, np.ndarray]:
    """The program, where it stores the plane, and the plane it must leave there (one int8 word per position)."""
    img = MemoryImage(n, 1 << 18)
    first = img.put(rng.integers(-128, 128, (ROWS, COLS, n)).astype(np.int8))
    data = rng.integers(-128, 128, (ROWS, COLS, n)).astype(np.int8)
    second = img.put(data)
    w = img.put(np.eye(n, dtype=np.int8))
    p = img.put(np.stack([np.zeros(n), np.full(n, IDENT_MULT), np.zeros(n)]).astype(np.int32))
    words = (ROWS + 2) * (COLS + 2)
    dst = img.alloc(words * n)
    prog = [_plane(first, n, PAD_FIRST, 0, swap), _plane(second, n, PAD_KEPT, 1, swap),
            Instr("LOAD", dict(sp=1, base=w, n0=n, d0=n)),
            Instr("LOAD", dict(sp=2, base=p, n0=12, d0=n, push_next=1)),
            Instr("COMPUTE", dict(init=1, m=words, kt=1, nt=1, pop_prev=1, push_next=1)),
            Instr("POSTPROC", dict(acc_a=0, out_base=0, rows=words, pset=0, zp=0, lo=-128, hi=127, pop_prev=1)),
            Instr("STORE", dict(sp=0, base=dst, n0=words, d0=n))]
    plane = np.full((ROWS + 2, COLS + 2, n), PAD_FIRST, np.int8)
    plane[1:-1, 1:-1] = data
    if swap:
        plane = plane.transpose(1, 0, 2)
    return SimJob(img, finish_program(img, prog), stall=stall), dst, plane.reshape(words, n)


@pytest.mark.parametrize("n", [4, 8])
def test_keep_leaves_the_padding(n: int, rng: np.random.Generator) -> None:
    """The kept plane holds the second load's data and the first load's pad byte (never the second's), row and
    column sweeps, stalls off and on; the ISA model agrees word for word."""
    cases = [_readback_job(n, swap, stall, rng) for swap in (False, True) for stall in (False, True)]
    results = run_jobs([job for job, _, _ in cases], n=n)
    for (job, dst, want), r in zip(cases, results):
        assert r.done and not r.error, (r.status, r.error_code)
        got = r.image.data[dst: dst + want.size].view(np.int8).reshape(want.shape)
        np.testing.assert_array_equal(got, want)
        model = run_model(job.image, job.prog_addr, AccelConfig.for_array(n))
        np.testing.assert_array_equal(model.data, r.image.data)


def _busy_job(n: int, swap: bool | None, keep: int = 0) -> SimJob:
    """One plane LOAD (or, with ``swap`` None, a SYNC) that starts after the fetch unit has left the port: it waits
    for a token pushed only after a long POSTPROC."""
    img = MemoryImage(n, 1 << 18)
    x = img.put(np.ones((ROWS * COLS, n), np.int8))
    prog = [Instr("SYNC", dict(queue=0, pop_next=1))]
    prog.append(Instr("SYNC", dict(queue=0)) if swap is None else _plane(x, n, PAD_FIRST, keep, swap))
    prog += [Instr("SYNC", dict(queue=1, pop_next=1, push_prev=1)),
             Instr("POSTPROC", dict(rows=100, pset=0, lo=-128, hi=127, push_prev=1))]
    return SimJob(img, finish_program(img, prog))


def test_keep_cycles(capsys: pytest.CaptureFixture[str]) -> None:
    """A ``keep`` LOAD's busy cycles beyond a SYNC: the fixed 4, one per in-bounds word, one per pad word outside
    an empty run and one per empty run, less one when it ends on an empty run (no read response left to wait
    for); fewer than without ``keep``, and exactly what the cost model charges (its fixed cycles count the
    SYNC's too)."""
    n = 8
    cases = [(swap, keep) for swap in (False, True) for keep in (0, 1)]
    res = run_jobs([_busy_job(n, None)] + [_busy_job(n, swap, keep) for swap, keep in cases], n=n)
    assert all(r.done and not r.error for r in res)
    busy = {c: r.load_busy - res[0].load_busy for c, r in zip(cases, res[1:])}
    with capsys.disabled():
        print(f"\nN={n} padded plane LOAD, busy cycles beyond a SYNC (swap, keep): {busy}")
    words = (ROWS + 2) * (COLS + 2)
    for swap in (False, True):
        run_len = ROWS + 2 if swap else COLS + 2  # two empty runs: the pad columns (swap) or the pad rows
        assert busy[(swap, 1)] == 4 + words - 2 * (run_len - 1) - 1
        assert busy[(swap, 1)] < busy[(swap, 0)]
        _, fixed, port, _ = _work("LOAD", _plane(0, n, PAD_FIRST, 1, swap).fields, n)
        assert fixed + port - OVERHEAD["SYNC"] == busy[(swap, 1)]

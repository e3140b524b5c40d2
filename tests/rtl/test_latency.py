"""Fixed latency and streaming rate of LOAD, COMPUTE and STORE on the RTL, from the busy CSRs.

Each program runs one instruction of a known size (or a SYNC in the same queue as the reference)
and reads the unit's busy counter (CSR 3 load, 4 compute, 5 store); the difference to the SYNC is
the instruction's own cycles, ``fixed + per_element * count``. These pin the numbers the compiler's
cost model is fitted to, and that back-to-back LOADs and STOREs keep one word per cycle (memory
without stalls).
"""

from __future__ import annotations

import numpy as np
import pytest

from tinycompile.accel.assembler import Instr, MemoryImage
from tinycompile.accel.config import AccelConfig
from tinycompile.accel.model import run_model
from tinycompile.accel.simulate import SimJob, run_jobs

from rtl_helpers import IDENT_MULT, finish_program

# Busy cycles beyond a SYNC in the same queue: (fixed, per element). One element = one N-byte word
# (LOAD, STORE) or one accumulator row (COMPUTE).
LOAD_CYCLES = (4, 1)
LOAD_PAIR_CYCLES = (9, 1)  # two LOADs back to back, count = words of both
COMPUTE_CYCLES = (2, 1)
COMPUTE_PAIR_CYCLES = (3, 1)  # pipelined: one idle cycle between the first's last row and the second's first
STORE_CYCLES = (2, 1)  # the STORE engine starts a cycle after it takes the instruction
STORE_PAIR_CYCLES = (4, 1)


def _load_job(n: int, words: int, pair: bool) -> SimJob:
    """The LOADs wait (load-queue SYNC) for a token that arrives only after a long POSTPROC, so the
    fetch unit has fetched DONE and left the memory port before they start."""
    img = MemoryImage(n, 1 << 18)
    x = img.put(np.arange(256 * n, dtype=np.int64).astype(np.int8).reshape(256, n))
    prog = [Instr("SYNC", dict(queue=0, pop_next=1))]
    if words == 0:
        prog.append(Instr("SYNC", dict(queue=0)))
    elif pair:
        prog += [Instr("LOAD", dict(sp=0, base=x, n0=words, d0=n)),
                 Instr("LOAD", dict(sp=0, base=x, sp_base=words, n0=words, d0=n))]
    else:
        prog.append(Instr("LOAD", dict(sp=0, base=x, n0=words, d0=n)))
    prog += [Instr("SYNC", dict(queue=1, pop_next=1, push_prev=1)),
             Instr("POSTPROC", dict(rows=100, pset=0, lo=-128, hi=127, push_prev=1))]
    return SimJob(img, finish_program(img, prog))


def _compute_job(n: int, rows: int, pair: bool) -> SimJob:
    img = MemoryImage(n, 1 << 18)
    x = img.put(np.ones((64, n), np.int8))
    w = img.put(np.eye(n, dtype=np.int8))
    prog = [Instr("LOAD", dict(sp=0, base=x, n0=64, d0=n)),
            Instr("LOAD", dict(sp=1, base=w, n0=n, d0=n, push_next=1))]
    if rows:
        prog.append(Instr("COMPUTE", dict(init=1, m=rows, kt=1, nt=1, pop_prev=1)))
        if pair:
            prog.append(Instr("COMPUTE", dict(init=1, m=rows, kt=1, nt=1, acc_base=rows, inp_base=rows)))
    else:
        prog.append(Instr("SYNC", dict(queue=1, pop_prev=1)))
    return SimJob(img, finish_program(img, prog))


def _store_job(n: int, words: int, pair: bool) -> SimJob:
    img = MemoryImage(n, 1 << 18)
    x = img.put(np.ones((64, n), np.int8))
    w = img.put(np.eye(n, dtype=np.int8))
    p = img.put(np.stack([np.zeros(n), np.full(n, IDENT_MULT), np.zeros(n)]).astype(np.int32))
    dst = img.alloc(128 * n)
    prog = [Instr("LOAD", dict(sp=0, base=x, n0=64, d0=n)),
            Instr("LOAD", dict(sp=1, base=w, n0=n, d0=n)),
            Instr("LOAD", dict(sp=2, base=p, n0=12, d0=n, push_next=1)),
            Instr("COMPUTE", dict(init=1, m=64, kt=1, nt=1, pop_prev=1, push_next=1)),
            Instr("POSTPROC", dict(acc_a=0, out_base=0, rows=64, pset=0, zp=0, lo=-128, hi=127,
                                   pop_prev=1))]
    if words and pair:
        prog += [Instr("STORE", dict(sp=0, base=dst, n0=words, d0=n)),
                 Instr("STORE", dict(sp=0, base=dst + words * n, n0=words, d0=n))]
    elif words:
        prog.append(Instr("STORE", dict(sp=0, base=dst, n0=words, d0=n)))
    return SimJob(img, finish_program(img, prog))


@pytest.mark.parametrize("n", [4, 8])
def test_unit_latency(n: int, capsys: pytest.CaptureFixture[str]) -> None:
    """LOAD / STORE one word per cycle, COMPUTE one row per cycle, after the fixed latencies above; back-to-back
    COMPUTEs overlap their pipelines."""
    sizes = [1, 2, 7, 32]
    cases: list[tuple[str, int, SimJob]] = []
    for s in [0] + sizes:
        cases.append(("load", s, _load_job(n, s, False)))
        cases.append(("load2", s, _load_job(n, s, True)))
        cases.append(("compute", s, _compute_job(n, s, False)))
        cases.append(("compute2", s, _compute_job(n, s, True)))
        cases.append(("store", s, _store_job(n, s, False)))
        cases.append(("store2", s, _store_job(n, s, True)))
    res = run_jobs([c[2] for c in cases], n=n)
    busy: dict[tuple[str, int], int] = {}
    for (kind, s, job), r in zip(cases, res):
        assert r.done and not r.error, (kind, s, r.status, r.error_code)
        ref = run_model(job.image, job.prog_addr, AccelConfig.for_array(n))
        np.testing.assert_array_equal(r.image.data, ref.data)
        busy[(kind, s)] = {"load": r.load_busy, "compute": r.compute_busy, "store": r.store_busy}[kind.rstrip("2")]
    expect = {"load": LOAD_CYCLES, "load2": LOAD_PAIR_CYCLES, "compute": COMPUTE_CYCLES,
              "compute2": COMPUTE_PAIR_CYCLES, "store": STORE_CYCLES, "store2": STORE_PAIR_CYCLES}
    got, want = {}, {}
    for kind, (fixed, per) in expect.items():
        count = 2 if kind.endswith("2") else 1
        got[kind] = {s: busy[(kind, s)] - busy[(kind, 0)] for s in sizes}
        want[kind] = {s: fixed + per * count * s for s in sizes}
        with capsys.disabled():
            print(f"\nN={n} {kind}: busy cycles beyond a SYNC {got[kind]}")
    assert got == want

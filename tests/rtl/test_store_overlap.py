"""A POSTPROC beside the STORE before it, on the RTL: it starts once the STORE has read every OUT word it writes (at
once where they are disjoint); memory always equals the in-order ISA model's."""

from __future__ import annotations

import numpy as np
import pytest

from tinycompile.accel.assembler import Instr, MemoryImage
from tinycompile.accel.config import AccelConfig
from tinycompile.accel.model import run_model
from tinycompile.accel.simulate import SimJob, run_jobs

from rtl_helpers import fill_out, finish_program

STORED = 64  # words the first STORE reads, OUT[0:64]
ROWS = 16  # rows the POSTPROC behind it writes, from ACC rows the first POSTPROC did not use


def _job(n: int, out_base: int, stall: bool, rng: np.random.Generator) -> SimJob:
    """OUT[0:64] from ACC[0:64], STORE it, POSTPROC ACC[64:80] into OUT[out_base:], STORE that."""
    cfg = AccelConfig.for_array(n)
    img = MemoryImage(n, 1 << 18)
    prog = fill_out(img, cfg, rng, STORED + ROWS)
    prog[-1] = Instr("POSTPROC", {**prog[-1].fields, "rows": STORED})
    first, second = img.alloc(STORED * n), img.alloc(ROWS * n)
    prog += [Instr("STORE", dict(sp=0, base=first, n0=STORED, d0=n)),
             Instr("POSTPROC", dict(acc_a=STORED, out_base=out_base, rows=ROWS, pset=0, zp=3, lo=-128, hi=127)),
             Instr("STORE", dict(sp=0, sp_base=out_base, base=second, n0=ROWS, d0=n))]
    return SimJob(img, finish_program(img, prog), stall=stall)


@pytest.mark.parametrize("n", [4, 8])
def test_postproc_beside_store(n: int) -> None:
    """Disjoint words overlap; words the STORE has still to read wait for the reader to pass them; stalls on and
    off; every run bit-exact with the model."""
    rng = np.random.default_rng(7 + n)
    cases = [(ob, stall) for ob in (STORED, 16, 0, STORED - 8) for stall in (False, True)]
    jobs = [_job(n, ob, stall, rng) for ob, stall in cases]
    res = run_jobs(jobs, n=n)
    busy: dict[tuple[int, bool], int] = {}
    for (ob, stall), job, r in zip(cases, jobs, res):
        assert r.done and not r.error, (ob, stall, r.status, r.error_code)
        ref = run_model(job.image, job.prog_addr, AccelConfig.for_array(n))
        np.testing.assert_array_equal(r.image.data, ref.data, err_msg=f"out_base {ob}, stall {stall}")
        busy[(ob, stall)] = r.store_busy
    # The POSTPROC starts once the reader has passed its last word: at once for OUT[64:], after 32 and 16 words for
    # OUT[16:] and OUT[0:] (still hidden behind the 64-word STORE), only as it ends for OUT[56:].
    assert busy[(STORED, False)] == busy[(16, False)] == busy[(0, False)]
    assert busy[(STORED - 8, False)] >= busy[(STORED, False)] + ROWS

"""STORE streaming on the RTL: bit-exact with the ISA model under stalls, and one element per cycle.

Every program first fills the OUT scratchpad with random bytes (LOAD INP, identity weight tile,
identity requantization, one COMPUTE, one POSTPROC), then runs STOREs. Memory after the run is
compared with ``run_model`` byte for byte, with the memory's random ready stalls off and on. The rate
test reads the store unit's busy counter (CSR 5) with and without a long STORE behind the same
POSTPROC; the difference is the STORE's own cycles.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinycompile.accel.assembler import Instr, MemoryImage
from tinycompile.accel.config import AccelConfig
from tinycompile.accel.model import _pattern, run_model
from tinycompile.accel.simulate import SimJob, run_jobs

from rtl_helpers import fill_out, finish_program

ARENA = 1 << 16  # bytes of the STORE destination area


def _random_store(rng: np.random.Generator, cfg: AccelConfig, arena: int) -> dict[str, int]:
    """A random three-level STORE inside [arena, arena + ARENA) with some out-of-bounds elements."""
    n = cfg.n
    while True:
        n0, n1, n2 = (int(v) for v in rng.integers(1, [40, 6, 4]))
        f = dict(sp=0, n0=n0, n1=n1, n2=n2,
                 d0=int(rng.integers(-4, 5)) * n, d1=int(rng.integers(-60, 61)) * n,
                 d2=int(rng.integers(-300, 301)) * n,
                 y0=int(rng.integers(-3, 3)), x0=int(rng.integers(-6, 4)),
                 sy0=int(rng.integers(0, 2)), sx0=int(rng.integers(0, 3)),
                 sy1=int(rng.integers(0, 3)), sx1=int(rng.integers(0, 2)),
                 h=int(rng.integers(0, 8)), w=int(rng.integers(0, 30)))
        count = n0 * n1 * n2
        if rng.random() < 0.3:  # no bounds at all
            f.update(y0=0, x0=0, h=4095, w=4095)
        f["sp_base"] = int(rng.integers(0, cfg.out_depth - count + 1)) if count <= cfg.out_depth else -1
        f["base"] = arena + ARENA // 2
        addrs = [a for a, _ in _pattern(f)]
        if f["sp_base"] >= 0 and min(addrs) >= arena and max(addrs) + n <= arena + ARENA:
            return f


def _store_program(n: int, rng: np.random.Generator) -> tuple[MemoryImage, int]:
    """Setup, then many STOREs: contiguous, random 3-level patterns with out-of-bounds elements,
    all out of bounds, empty, a repeated address (order), single words back to back, the last OUT
    word, and STOREs interleaved with LOADs that compete for the memory port."""
    cfg = AccelConfig.for_array(n)
    img = MemoryImage(n, 1 << 20)
    depth = cfg.out_depth
    prog = fill_out(img, cfg, rng, depth)
    arena = img.alloc(ARENA)
    img.data[arena : arena + ARENA] = rng.integers(0, 256, ARENA, dtype=np.uint8)
    big = img.alloc(depth * n)
    noise = img.put(rng.integers(-128, 128, (1024, n)).astype(np.int8))
    prog.append(Instr("STORE", dict(sp=0, base=big, n0=depth, d0=n)))  # the whole OUT scratchpad
    for k in range(30):
        prog.append(Instr("STORE", _random_store(rng, cfg, arena)))
        if k % 5 == 0:  # load traffic on the port while the stores stream (INP half not computed on)
            prog.append(Instr("LOAD", dict(sp=0, sp_base=cfg.inp_depth // 2, base=noise, n0=1024, d0=n)))
    mid = arena + ARENA // 2
    prog += [
        Instr("STORE", dict(sp=0, sp_base=5, base=mid, n0=300, d0=n, h=0)),           # all skipped
        Instr("STORE", dict(sp=0, sp_base=5, base=mid, n0=0, d0=n)),                  # no element
        Instr("STORE", dict(sp=0, sp_base=17, base=mid, n0=50, n1=3, d0=0, d1=0)),    # one word, 150 times
        Instr("STORE", dict(sp=0, sp_base=7, base=mid + n, n0=200, d0=n, x0=-3, sx0=1, w=150)),
        Instr("STORE", dict(sp=0, sp_base=depth - 40, base=mid - 40 * n, n0=40, d0=n)),  # ends at the last word
    ]
    for k in range(12):  # single words, back to back
        prog.append(Instr("STORE", dict(sp=0, sp_base=int(rng.integers(0, depth)), base=mid + (k % 5) * n)))
    return img, finish_program(img, prog)


@pytest.mark.parametrize("n", [4, 8])
def test_store_programs_bit_exact(n: int) -> None:
    """STORE-heavy programs: memory equals the ISA model's, stalls off and on."""
    rng = np.random.default_rng(2024 + n)
    img, pa = _store_program(n, rng)
    ref = run_model(img, pa, AccelConfig.for_array(n))
    res = run_jobs([SimJob(img, pa, stall=False), SimJob(img, pa, stall=True)], n=n)
    for r in res:
        assert r.done and not r.error, (r.status, r.error_code)
        np.testing.assert_array_equal(r.image.data, ref.data)
    assert res[1].store_busy > res[0].store_busy  # the stalls reached the store unit


def _error_jobs(n: int, rng: np.random.Generator) -> list[tuple[SimJob, MemoryImage, int]]:
    """(job, expected memory, expected error code): each program's STOREs end with a faulting one."""
    cfg = AccelConfig.for_array(n)
    depth = cfg.out_depth
    out = []
    cases = [
        # OUT address runs past the end at element 5: elements 0..4 are written first
        (dict(sp_base=depth - 5, n0=10, d0=n), dict(n0=5), 2),
        # the out-of-range element is itself out of bounds (skipped), still error 2 when reached
        (dict(sp_base=depth - 3, n0=6, d0=n, x0=0, sx0=1, w=3), dict(n0=3), 2),
        # out of range from the first element
        (dict(sp_base=depth + 2, n0=4, d0=n), dict(n0=0), 2),
        # misaligned stride: nothing of this STORE is written
        (dict(sp_base=0, n0=4, d0=n + 1), dict(n0=0, d0=n), 3),
    ]
    for stall in (False, True):
        for bad, trunc, code in cases:
            img = MemoryImage(n, 1 << 18)
            prog = fill_out(img, cfg, rng, depth)
            dst = img.alloc(64 * n)
            prog.append(Instr("STORE", dict(sp=0, sp_base=100, base=dst + 32 * n, n0=20, d0=n)))
            good = list(prog)
            prog.append(Instr("STORE", dict(sp=0, base=dst, **bad)))
            pa = finish_program(img, prog)
            # the model stops at the faulting STORE; its written prefix is the truncated STORE
            ref_img = MemoryImage(n, img.data.size)
            ref_img.data[:] = img.data
            ref_img.top = img.top
            good.append(Instr("STORE", dict(sp=0, base=dst, **{**bad, **trunc})))
            ref = run_model(ref_img, finish_program(ref_img, good), cfg)
            out.append((SimJob(img, pa, stall=stall, timeout_cycles=100_000), ref, code))
    return out


def test_store_errors_after_earlier_writes() -> None:
    """Range errors stop at the faulting element, after every earlier write; misalignment writes nothing."""
    n = 8
    rng = np.random.default_rng(5)
    cases = _error_jobs(n, rng)
    res = run_jobs([job for job, _, _ in cases], n=n)
    for (job, ref, code), r in zip(cases, res):
        assert r.error and not r.done and r.error_code == code, (r.status, r.error_code)
        # memory below the program images: data and the store destination
        lim = job.prog_addr
        np.testing.assert_array_equal(r.image.data[:lim], ref.data[:lim])


def _rate_jobs(n: int, elems: int, stall: bool) -> list[SimJob]:
    """Jobs: POSTPROC only; + one contiguous STORE of ``elems`` words; + the same all out of bounds."""
    cfg = AccelConfig.for_array(n)
    rng = np.random.default_rng(9)
    jobs = []
    for tail in ([], [dict()], [dict(h=0)]):
        img = MemoryImage(n, 1 << 18)
        prog = fill_out(img, cfg, rng, elems)
        dst = img.alloc(elems * n)
        prog += [Instr("STORE", dict(sp=0, base=dst, n0=elems, d0=n, **f)) for f in tail]
        jobs.append(SimJob(img, finish_program(img, prog), stall=stall))
    return jobs


def test_store_one_element_per_cycle(capsys: pytest.CaptureFixture[str]) -> None:
    """A 1000-word STORE costs about one store-unit cycle per word (the old unit took two), both
    when every word is written and when every word is out of bounds; with random memory stalls
    it stays well under two."""
    n, elems = 8, 1000
    jobs = _rate_jobs(n, elems, stall=False)
    sjobs = _rate_jobs(n, elems, stall=True)
    res = run_jobs(jobs + sjobs, n=n)
    for r, job in zip(res, jobs + sjobs):
        assert r.done and not r.error
        ref = run_model(job.image, job.prog_addr, AccelConfig.for_array(n))
        np.testing.assert_array_equal(r.image.data, ref.data)
    base, full, skip, sbase, sfull, _ = (r.store_busy for r in res)
    per_word = (full - base) / elems
    per_skip = (skip - base) / elems
    per_stall = (sfull - sbase) / elems
    with capsys.disabled():
        print(f"\nSTORE {elems} words at N={n}: {per_word:.3f} cycles/word, all out of bounds "
              f"{per_skip:.3f}, with random stalls {per_stall:.3f}")
    assert full - base <= 1.1 * elems + 8, full - base
    assert skip - base <= 1.1 * elems + 8, skip - base
    assert full - base >= elems  # honest counter: one write per cycle at most
    assert sfull - sbase < 1.6 * elems, sfull - sbase

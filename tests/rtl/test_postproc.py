"""POSTPROC on the RTL (pipelined requantization lanes): bit-exact with the ISA model, and its timing.

Programs put small random rows in ACC (LOAD, identity weight tile, one COMPUTE) and parameter sets
with extreme values (bias int32 min/max, which wraps the accumulator, multipliers 2^31-1, -2^31,
2^30 and random, shifts 0 and 31), then run many POSTPROCs back to back, in normal and add mode,
with 1 to 40 rows, lshift 0 and 20 and various clamp bounds, and STORE the OUT scratchpad. Memory is
compared with ``run_model`` byte for byte, memory stalls off and on. The timing test reads the
store unit's busy counter (CSR 5) for POSTPROCs of different lengths.

Single rounding (POSTPROC ``single``, TFLite's fully connected): the lane's arithmetic, modelled stage by stage
in numpy, against ``intmath.requantize_single`` (exhaustive small ranges, every shift, random); the ISA model
against intmath; RTL programs mixing both roundings against the ISA model.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinycompile.accel.assembler import Instr, MemoryImage, assemble
from tinycompile.accel.config import AccelConfig
from tinycompile.accel.model import run_model
from tinycompile.accel.simulate import SimJob, run_jobs
from tinycompile.quant.intmath import INT32_MAX, INT32_MIN, requantize, requantize_single, requantize_to_int8

from rtl_helpers import IDENT_MULT, finish_program

ACC_ROWS = 64
SETS = 8


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


def _setup(img: MemoryImage, rng: np.random.Generator, acc_rows: int = ACC_ROWS,
           params: np.ndarray | None = None, rows: np.ndarray | None = None) -> list[Instr]:
    """ACC[0:acc_rows] = random int8 rows (or ``rows``), PARAM = SETS sets (or ``params``); the first store-queue
    entry pops. The sets arrive in two LOADs, the second at a PARAM word other than 0 (as a compiler loading the
    sets of two layers does)."""
    n = img.n
    x = rng.integers(-128, 128, (acc_rows, n)).astype(np.int8) if rows is None else rows
    x_addr = img.put(x)
    w_addr = img.put(np.eye(n, dtype=np.int8))
    p_addr = img.put(_param_sets(rng, n) if params is None else params)
    half = SETS // 2
    return [
        Instr("LOAD", dict(sp=0, base=x_addr, n0=acc_rows, d0=n)),
        Instr("LOAD", dict(sp=1, base=w_addr, n0=n, d0=n)),
        Instr("LOAD", dict(sp=2, base=p_addr, n0=12 * half, d0=n)),
        Instr("LOAD", dict(sp=2, sp_base=12 * half, base=p_addr + 12 * half * n, n0=12 * (SETS - half), d0=n,
                           push_next=1)),
        Instr("COMPUTE", dict(init=1, m=acc_rows, kt=1, nt=1, pop_prev=1, push_next=1)),
    ]


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
    return img, finish_program(img, prog)


@pytest.mark.parametrize("n", [4, 8])
def test_postproc_programs_bit_exact(n: int) -> None:
    """Back-to-back POSTPROCs, normal and add mode, extreme parameters: memory equals the model's."""
    rng = np.random.default_rng(77 + n)
    jobs, refs = [], []
    for _ in range(2):
        img, pa = _postproc_program(n, rng)
        refs.append(run_model(img, pa, AccelConfig.for_array(n)))
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
            jobs.append(SimJob(img, finish_program(img, prog)))
            keys.append((add, rows))
    res = run_jobs(jobs, n=n)
    busy = {}
    for r, key, job in zip(res, keys, jobs):
        assert r.done and not r.error
        np.testing.assert_array_equal(r.image.data, run_model(job.image, job.prog_addr, AccelConfig.for_array(n)).data)
        busy[key] = r.store_busy
    for add, (fixed, per_row) in ((0, POSTPROC_NORMAL), (1, POSTPROC_ADD)):
        got = {rows: busy[(add, rows)] - busy[(add, 0)] for rows in lengths}
        with capsys.disabled():
            print(f"\nPOSTPROC {'add' if add else 'normal'} mode, store-unit cycles beyond a SYNC: {got}")
        assert got == {rows: fixed + per_row * rows for rows in lengths}, got


# ---- single rounding ------------------------------------------------------------------------------------------

def _wrap32(v: np.ndarray) -> np.ndarray:
    return ((v + 2**31) % 2**32) - 2**31


def _lane_model(t: np.ndarray, m: np.ndarray, s: np.ndarray, single: bool) -> np.ndarray:
    """tc_requant's stages 2-5 (r32) as the RTL computes them: 16-bit partial products, the sum from bit 16 up with
    the nudge (double) or none (single), bits 46:15, the saturated corner, then the shift and its round-up bit."""
    t, m, s = (np.asarray(v, np.int64) for v in np.broadcast_arrays(t, m, s))
    tl, th, ml, mh = t & 0xFFFF, t >> 16, m & 0xFFFF, m >> 16
    pll, plh, phl, phh = (tl * ml) >> 16, tl * mh, th * ml, th * mh
    ab_hi = phh * 2**16 + pll + plh + phl + (0 if single else 2**14)  # (ab + nudge) >> 16, exact in int64
    x = np.where((t == INT32_MIN) & (m == INT32_MIN), INT32_MAX, _wrap32(ab_hi >> 15))
    half = (ab_hi >> 14) & 1 if single else np.zeros_like(x)
    xs0 = ((((x & 0xFFFFFFFF) << 1) | half) >> s) & 1  # {x, half} >> s, bit 0
    below = ((np.int64(1) << s) - 1) >> 1
    up = xs0 & (single | (x >= 0) | ((x & below) != 0))
    return _wrap32((x >> s) + up)


def test_single_rounding_lane_arithmetic() -> None:
    """The lane's decomposition x = floor(t*m / 2^31), h = bit 30: x + h (shift 0), (x >> s) + x[s-1] (s >= 1) equals
    requantize_single (r32 saturated to int32: only t = m = -2^31 at shift 0 leaves it); the same datapath without
    single still equals the double rounding."""
    rng = np.random.default_rng(5)
    corners = np.array([INT32_MIN, INT32_MIN + 1, -(2**30), -12345, -3, -2, -1, 0, 1, 2, 3, 12345, 2**30, INT32_MAX])
    mults = np.concatenate([corners, [2**30 + 1, 1518500250, 2**31 - 2]])
    # exhaustive: every t in [-2^12, 2^12] x every shift x corner multipliers; every corner pair x every shift
    t_small = np.arange(-(2**12), 2**12 + 1)
    cases = [np.meshgrid(t_small, mults, np.arange(32), indexing="ij"),
             np.meshgrid(corners, mults, np.arange(32), indexing="ij")]
    big = 2_000_000
    cases.append((rng.integers(INT32_MIN, INT32_MAX + 1, big), rng.integers(INT32_MIN, INT32_MAX + 1, big),
                  rng.integers(0, 32, big)))
    cases.append((rng.integers(-(2**20), 2**20, big), rng.integers(2**30, 2**31, big), rng.integers(0, 32, big)))
    ties = 0
    for t, m, s in cases:
        t, m, s = (np.ravel(v) for v in (t, m, s))
        want = np.clip(requantize_single(t, m, s), INT32_MIN, INT32_MAX)
        np.testing.assert_array_equal(_lane_model(t, m, s, True), want)
        np.testing.assert_array_equal(_lane_model(t, m, s, False), requantize(t, m, s))
        ties += int((want != requantize(t, m, s)).sum())
    assert ties > 1000  # the two roundings differ often enough for this to test something
    # the one product outside int32: (-2^31)^2 at shift 0 is 2^31, saturated (it still clamps to hi)
    assert int(requantize_single(np.int64(INT32_MIN), INT32_MIN, 0)) == 2**31
    assert int(_lane_model(INT32_MIN, INT32_MIN, 0, True)) == INT32_MAX


def _single_params(rng: np.random.Generator, n: int) -> np.ndarray:
    """SETS parameter sets where single and double rounding differ often: sets 0, 1 with multiplier 2^30 and small
    shifts (t / 2^(s+1) is an exact half for many small t), the rest with corners and random values."""
    prm = _param_sets(rng, n).astype(np.int64)
    for k in (0, 1):
        prm[3 * k] = rng.integers(-300, 300, n)
        prm[3 * k + 1] = 2**30
        prm[3 * k + 2] = rng.integers(0, 2 + 2 * k, n)
    prm[3 * 2 + 2] = rng.choice([0, 31], n)  # shift 0 and 31 everywhere in set 2
    return prm.astype(np.int32)


def _single_program(n: int, rng: np.random.Generator, mode: int | None = None) -> tuple[MemoryImage, int, list[Instr]]:
    """Setup, then POSTPROCs back to back with ``single`` on, off, and on in add mode (where it is ignored);
    ``mode`` 0 / 1 forces every ``single`` bit (for the comparisons). Returns the POSTPROCs too."""
    img = MemoryImage(n, 1 << 20)
    rows = rng.integers(-128, 128, (ACC_ROWS, n)).astype(np.int8)
    prog = _setup(img, rng, params=_single_params(rng, n), rows=rows)
    out, pps = 0, []
    for k, nrows in enumerate([1, 2, 5, 40, 3, 1, 17, 8, 2, 6, 1, 30, 24, 4, 33, 2]):
        add = int(k % 4 == 3)
        single = int(k % 4 != 1) if mode is None else mode
        lo, hi = (-128, 127) if k % 3 else sorted(int(v) for v in rng.integers(-128, 128, 2))
        # normal mode: mostly the tie-heavy sets 0 and 1, unshifted (a left shift would make t even)
        pset = int(rng.integers(0, SETS - 2 if add else SETS)) if add or k % 3 == 2 else k % 2
        lshift = 0 if pset < 2 and not add else int(rng.choice([0, 3, 20]))
        f = dict(pop_prev=int(k == 0), add=add, single=single, acc_a=int(rng.integers(0, ACC_ROWS - nrows + 1)),
                 acc_b=int(rng.integers(0, ACC_ROWS - nrows + 1)), out_base=out, rows=nrows, pset=pset,
                 zp=int(rng.integers(-20, 20)), lo=lo, hi=hi, lshift=lshift)
        pps.append(Instr("POSTPROC", f))
        out += nrows
    dst = img.alloc(out * n)
    prog += pps + [Instr("STORE", dict(sp=0, base=dst, n0=out, d0=n))]
    return img, finish_program(img, prog), pps


def test_isa_model_single_rounding_is_intmath() -> None:
    """run_model's POSTPROC single: normal mode is requantize_to_int8(..., single=True) of wrap((acc + bias) << ls),
    add mode ignores the bit; the outputs differ from double rounding's."""
    n = 8
    for seed in range(3):
        rng = np.random.default_rng(900 + seed)
        img, pa, pps = _single_program(n, rng)
        cfg = AccelConfig.for_array(n)
        got = run_model(img, pa, cfg)
        # the ACC rows and parameters the program loaded, from its own image
        loads = [i for i in _program_of(img, pa) if i.op == "LOAD"]
        acc = img.read(loads[0].fields["base"], ACC_ROWS * n).view(np.int8).reshape(ACC_ROWS, n).astype(np.int64)
        prm = img.read(loads[2].fields["base"], SETS * 3 * n * 4).view(np.int32).reshape(-1, n).astype(np.int64)
        dst = _program_of(img, pa)[-2].fields["base"]
        for ins in pps:
            f = ins.fields
            if f["add"]:
                continue
            b, m, s = prm[3 * f["pset"] : 3 * f["pset"] + 3]
            t = _wrap32(_wrap32(acc[f["acc_a"] : f["acc_a"] + f["rows"]] + b) << f["lshift"])
            want = requantize_to_int8(t, m, s & 31, f["zp"], f["lo"], f["hi"], single=bool(f["single"]))
            have = got.read(dst + f["out_base"] * n, f["rows"] * n).view(np.int8).reshape(-1, n)
            np.testing.assert_array_equal(have, want)
        # add mode ignores the bit; normal mode's single rounding changes some bytes
        rng = np.random.default_rng(900 + seed)
        img1, pa1, pps1 = _single_program(n, rng, mode=1)
        rng = np.random.default_rng(900 + seed)
        img0, pa0, _ = _single_program(n, rng, mode=0)
        m1, m0 = run_model(img1, pa1, cfg), run_model(img0, pa0, cfg)
        for ins in pps1:
            f = ins.fields
            span = slice(dst + f["out_base"] * n, dst + (f["out_base"] + f["rows"]) * n)
            if f["add"]:
                np.testing.assert_array_equal(m1.data[span], m0.data[span])
        assert (m1.data != m0.data).sum() >= 10


def _program_of(img: MemoryImage, pa: int) -> list[Instr]:
    from tinycompile.accel.assembler import disassemble

    return disassemble(img.data[pa:].tobytes())


@pytest.mark.parametrize("n", [4, 8])
def test_postproc_single_rounding_bit_exact(n: int) -> None:
    """POSTPROCs with and without single rounding back to back (the bit travels with each row through the lane),
    add mode with the bit set: memory equals the ISA model's, stalls off and on; the model's memory differs from
    what double rounding everywhere gives, so the RTL's single rounding is what matched."""
    rng = np.random.default_rng(31 + n)
    jobs, refs = [], []
    for k in range(2):
        img, pa, _ = _single_program(n, rng)
        refs.append(run_model(img, pa, AccelConfig.for_array(n)))
        jobs += [SimJob(img, pa, stall=False), SimJob(img, pa, stall=True)]
        double = img.data.copy()
        img0 = MemoryImage(n, img.data.size)
        img0.data[:] = double
        prog = _program_of(img0, pa)
        for ins in prog:
            if ins.op == "POSTPROC":
                ins.fields["single"] = 0
        img0.write(pa, np.frombuffer(assemble(prog), np.uint8))
        assert (run_model(img0, pa, AccelConfig.for_array(n)).data != refs[-1].data).sum() >= 10
    res = run_jobs(jobs, n=n)
    for k, r in enumerate(res):
        assert r.done and not r.error, (r.status, r.error_code)
        np.testing.assert_array_equal(r.image.data, refs[k // 2].data)

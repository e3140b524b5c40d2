"""Whole programs on the free-running RTL test bench, compared bit for bit with intmath references."""

from __future__ import annotations

import numpy as np
import pytest

from programs import TestProgram, add, conv2d, dense, pool
from rtl_helpers import requant_params

from tinycompile.accel.assembler import Instr, MemoryImage, assemble
from tinycompile.accel.config import AccelConfig
from tinycompile.accel.layout import TensorLoc, read_tensor
from tinycompile.accel.model import run_model
from tinycompile.accel.reference import conv2d_ref, pool_ref
from tinycompile.accel.simulate import SimJob, run_jobs
from tinycompile.quant.intmath import quantize_multiplier
from tinycompile.quant.semantics import ADD_LEFT_SHIFT, add_int8


def add_per_channel(a: np.ndarray, b: np.ndarray, zp_a: int, zp_b: int, scales: tuple, zp_out: int) -> np.ndarray:
    """The int8 residual add (``quant.semantics.add_int8``) with its own (multiplier, shift) triple per channel."""
    (ma, sa), (mb, sb), (mo, so) = scales
    return np.stack([add_int8(a[..., c], b[..., c], zp_a, zp_b, np.array([ma[c], mb[c], mo[c]]),
                              np.array([sa[c], sb[c], so[c]]), zp_out, -128, 127) for c in range(a.shape[-1])], axis=-1)


def small_network(rng: np.random.Generator, n: int) -> tuple[MemoryImage, int, list[tuple[TensorLoc, np.ndarray]]]:
    """conv3x3/s2 -> depthwise 3x3 -> maxpool 2x2 -> global avg pool -> dense, plus a residual add, and beside the
    chain a strided depthwise (diagonal tiles per tap) and a stride-1 max pool (shifted rows, one identity tile)."""
    prog = TestProgram(n)
    x = rng.integers(-128, 128, (11, 9, 5)).astype(np.int8)
    xt = prog.put(x)
    checks = []
    w1 = rng.integers(-128, 128, (3, 3, 5, 12)).astype(np.int8)
    b1 = rng.integers(-3000, 3000, 12)
    q1 = requant_params(rng, 12)
    t1 = conv2d(prog, xt, 7, w1, b1, q1, -20, stride=2, pad=(1, 1, 1, 1), lo=-20)
    r1 = conv2d_ref(x, w1, b1, *q1, 7, -20, 2, (1, 1, 1, 1), lo=-20)
    checks.append((t1, r1))
    w2 = rng.integers(-128, 128, (3, 3, 12)).astype(np.int8)
    b2 = rng.integers(-3000, 3000, 12)
    q2 = requant_params(rng, 12)
    t2 = conv2d(prog, t1, -20, w2, b2, q2, 4, pad=(1, 1, 1, 1), depthwise=True)
    r2 = conv2d_ref(r1, w2, b2, *q2, -20, 4, 1, (1, 1, 1, 1), depthwise=True)
    checks.append((t2, r2))
    ident = (np.full(12, 2**31 - 1), np.zeros(12, int))  # scale 1 - 2^-31: identity on int8 values
    t3 = pool(prog, t2, 4, "max", (2, 2), ident, -3, stride=2)
    r3 = pool_ref(r2, (2, 2), 2, "max", 4, -3, *ident)
    checks.append((t3, r3))
    am, ash = quantize_multiplier(0.8 / (t3.h * t3.w))
    avg = (np.full(12, am), np.full(12, ash))
    t4 = pool(prog, t3, -3, "avg", (t3.h, t3.w), avg, 2)
    r4 = pool_ref(r3, r3.shape[:2], 1, "avg", -3, 2, *avg)
    checks.append((t4, r4))
    w5 = rng.integers(-128, 128, (12, 10)).astype(np.int8)
    b5 = rng.integers(-3000, 3000, 10)
    q5 = requant_params(rng, 10)
    t5 = dense(prog, t4, 2, w5, b5, q5, 0)
    checks.append((t5, conv2d_ref(r4.reshape(1, 1, 12), w5.reshape(1, 1, 12, 10), b5, *q5, 2, 0)))
    qa, qb, qo = (requant_params(rng, 12) for _ in range(3))
    qa, qb = (qa[0], np.clip(qa[1] - 5, 0, 31)), (qb[0], np.clip(qb[1] - 5, 0, 31))
    qo = (qo[0], np.clip(qo[1] + 5, 0, 31))
    t6 = add(prog, t1, t2, -20, 4, (qa, qb, qo), 3, ADD_LEFT_SHIFT)
    checks.append((t6, add_per_channel(r1, r2, -20, 4, (qa, qb, qo), 3)))
    t7 = conv2d(prog, t1, -20, w2, b2, q2, 4, stride=2, pad=(1, 1, 1, 1), depthwise=True)
    checks.append((t7, conv2d_ref(r1, w2, b2, *q2, -20, 4, 2, (1, 1, 1, 1), depthwise=True)))
    t8 = pool(prog, t2, 4, "max", (3, 3), ident, 4, pad=(1, 1, 1, 1))
    checks.append((t8, pool_ref(r2, (3, 3), 1, "max", 4, 4, *ident, pad=(1, 1, 1, 1))))
    return prog.image, prog.finish(), checks


@pytest.mark.parametrize("n", [4, 8])
def test_small_network_bit_exact(n: int, rng: np.random.Generator) -> None:
    """A whole network in one program, stalls off and on, matches intmath bit for bit."""
    img, pa, checks = small_network(rng, n)
    res = run_jobs([SimJob(img, pa, stall=False), SimJob(img, pa, stall=True)], n=n)
    model_img = run_model(img, pa, AccelConfig.for_array(n))
    for r in res:
        assert r.done and not r.error, (r.status, r.error_code)
        for t, ref in checks:
            np.testing.assert_array_equal(read_tensor(r.image, t), ref)
            np.testing.assert_array_equal(read_tensor(model_img, t), ref)
    assert res[1].cycles > res[0].cycles  # the stalls really happened


@pytest.mark.parametrize("n", [4, 8])
def test_gemm_dense_bit_exact(n: int, rng: np.random.Generator) -> None:
    """A 64x64x64 GEMM (dense layer with batch 64), exact, with the MAC counter equal to the work."""
    prog = TestProgram(n)
    x = rng.integers(-128, 128, (64, 1, 64)).astype(np.int8)
    w = rng.integers(-128, 128, (64, 64)).astype(np.int8)
    b = rng.integers(-20000, 20000, 64)
    q = requant_params(rng, 64, 0.0001, 0.001)
    out = dense(prog, prog.put(x), -1, w, b, q, 9)
    pa = prog.finish()
    r = run_jobs([SimJob(prog.image, pa)], n=n)[0]
    assert r.done and not r.error
    np.testing.assert_array_equal(read_tensor(r.image, out), conv2d_ref(x, w.reshape(1, 1, 64, 64), b, *q, -1, 9))
    assert r.mac_cycles == 64 * 64 * 64 // (n * n)


def test_reset_mid_program_then_rerun(rng: np.random.Generator) -> None:
    """Reset in the middle of a program leaves the accelerator ready; the next run is exact."""
    img, pa, checks = small_network(rng, 8)
    res = run_jobs([SimJob(img, pa, reset_after=700), SimJob(img, pa, stall=True)], n=8)
    assert not res[0].done  # really interrupted
    assert res[1].done and not res[1].error
    for t, ref in checks:
        np.testing.assert_array_equal(read_tensor(res[1].image, t), ref)


def _error_program(kind: str, n: int) -> tuple[MemoryImage, int]:
    img = MemoryImage(n, 1 << 16)
    prog = [Instr("LOAD", dict(sp=0, base=0, n0=4, d0=n))]
    if kind == "opcode":
        blob = assemble(prog) + (0xB).to_bytes(32, "little")
        return img, img.put(np.frombuffer(blob, np.uint8))
    if kind == "sp_range":
        prog.append(Instr("LOAD", dict(sp=0, sp_base=4094, base=0, n0=4, d0=n)))
    if kind == "compute_range":
        prog.append(Instr("COMPUTE", dict(acc_base=1020, m=8)))
    if kind == "align":
        prog.append(Instr("LOAD", dict(sp=0, base=3, n0=4, d0=n)))
    if kind == "field":
        prog.append(Instr("SYNC", dict(queue=3)))
    prog.append(Instr("DONE"))
    return img, img.put(np.frombuffer(assemble(prog), np.uint8))


def test_malformed_programs_stop_with_error() -> None:
    """Unknown opcode, scratchpad overflow, misalignment, bad field: error status, never a hang."""
    kinds = {"opcode": 1, "sp_range": 2, "compute_range": 2, "align": 3, "field": 4}
    jobs = [SimJob(*_error_program(k, 8), timeout_cycles=20_000) for k in kinds]
    res = run_jobs(jobs, n=8)
    for (kind, code), r in zip(kinds.items(), res):
        assert r.error and not r.done, kind
        assert r.error_code == code, (kind, r.error_code)
        assert r.cycles < 1000, kind  # stopped promptly


def test_conv1d_1xk_stride2_and_multi_block(rng: np.random.Generator) -> None:
    """A 1-D net layer (1x5 kernel, stride 2, padding) and a conv split over several row blocks."""
    n = 8
    prog = TestProgram(n)
    x = rng.integers(-128, 128, (1, 40, 6)).astype(np.int8)
    w = rng.integers(-128, 128, (1, 5, 6, 16)).astype(np.int8)
    b = rng.integers(-3000, 3000, 16)
    q = requant_params(rng, 16)
    t1 = conv2d(prog, prog.put(x), 11, w, b, q, -7, stride=2, pad=(0, 0, 2, 2), lo=-7)
    r1 = conv2d_ref(x, w, b, *q, 11, -7, 2, (0, 0, 2, 2), lo=-7)
    x2 = rng.integers(-128, 128, (40, 30, 24)).astype(np.int8)  # 40 rows: several blocks, both halves
    w2 = rng.integers(-128, 128, (3, 3, 24, 20)).astype(np.int8)
    b2 = rng.integers(-3000, 3000, 20)
    q2 = requant_params(rng, 20, 0.0001, 0.001)
    t2 = conv2d(prog, prog.put(x2), -4, w2, b2, q2, 1, pad=(1, 1, 1, 1))
    r2 = conv2d_ref(x2, w2, b2, *q2, -4, 1, 1, (1, 1, 1, 1))
    pa = prog.finish()
    r = run_jobs([SimJob(prog.image, pa, stall=True)], n=n)[0]
    assert r.done and not r.error
    np.testing.assert_array_equal(read_tensor(r.image, t1), r1)
    np.testing.assert_array_equal(read_tensor(r.image, t2), r2)

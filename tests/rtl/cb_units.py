"""cocotb unit benches (run from test_units.py, not collected by pytest)."""

from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, Timer

from tinycompile.quant.intmath import INT32_MAX, INT32_MIN, requantize, requantize_single, requantize_to_int8


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


REQUANT_LATENCY = 5  # tc_requant: operation in at cycle c, result out in cycle c + 5


def _requant_vectors(rng: random.Random) -> list[tuple[int, ...]]:
    """(acc, bias, lshift, mult, shift, zp, lo, hi): corners, rounding ties, random values."""
    vecs = []
    corners_acc = [INT32_MIN, INT32_MAX, 0, 1, -1, 1 << 30, -(1 << 30), 12345, -12345, INT32_MIN + 1]
    corners_mult = [(1 << 30), (1 << 31) - 1, 1518500250, INT32_MIN, -1, 1, 0, INT32_MIN + 1]
    for acc in corners_acc:
        for mult in corners_mult:
            for shift in (0, 1, 7, 30, 31):
                vecs.append((acc, 0, 0, mult, shift, 0, -128, 127))
    # bias wrap-around, the residual-add left shift of 20 and the largest left shift
    for acc in corners_acc:
        for bias in (0, 1, -1, INT32_MAX, INT32_MIN):
            for lshift in (0, 1, 20, 31):
                vecs.append((acc, bias, lshift, rng.choice(corners_mult), rng.choice([0, 11, 31]),
                             rng.randint(-128, 127), -128, 127))
    # exact ties: acc * 2^30 / 2^31 = acc / 2 before the shift, so odd acc gives .5 at shift 0..
    for acc in range(-40, 41):
        for shift in (0, 1, 2, 3):
            vecs.append((acc * (1 << shift) + (1 << shift) // 2, 0, 0, 1 << 30, shift, -3, -128, 127))
    # clamp bounds: results around lo and hi, lo = hi, the ReLU form lo = zp, extreme zero points
    for r in range(-140, 141, 3):
        for lo, hi, zp in ((-128, 127, 0), (-5, 9, 0), (7, 7, 1), (-20, 127, -20), (-128, -128, 127),
                           (127, 127, -128), (-128, 127, 127), (-128, 127, -128)):
            vecs.append((r, 0, 0, (1 << 31) - 1, 0, zp, lo, hi))
    for _ in range(4000):
        acc = rng.randint(INT32_MIN, INT32_MAX) if rng.random() < 0.5 else rng.randint(-(1 << 20), 1 << 20)
        bias = rng.randint(-(1 << 16), 1 << 16) if rng.random() < 0.8 else rng.randint(INT32_MIN, INT32_MAX)
        lshift = rng.choice([0, 0, 0, 20, rng.randint(0, 31)])
        mult = rng.randint(1 << 30, (1 << 31) - 1) if rng.random() < 0.8 else rng.randint(INT32_MIN, INT32_MAX)
        shift = rng.randint(0, 31)
        zp = rng.randint(-128, 127)
        lo = rng.randint(-128, 0)
        hi = rng.randint(0, 127)
        vecs.append((acc, bias, lshift, mult, shift, zp, lo, hi))
    return vecs


def _single_ties() -> list[tuple[int, ...]]:
    """Exact halves of single rounding, t * mult = (2j + 1) * 2^(30 + shift), for every shift 0..31, both signs:
    with mult = 2^p (p >= shift) t = (2j + 1) * 2^(30 + shift - p); shift 31 through mult = -2^31, t = +-2^30."""
    vecs = []
    for shift in range(31):
        for p in sorted({shift, min(30, shift + 3), 30}):
            e = 30 + shift - p
            for j in range(-3, 3):
                t = (2 * j + 1) << e
                if INT32_MIN <= t <= INT32_MAX:
                    vecs.append((t, 0, 0, 1 << p, shift, 0, -128, 127))
    for t in (1 << 30, -(1 << 30), 3 << 29, -(3 << 29)):
        vecs.append((t, 0, 0, INT32_MIN, 31, 0, -128, 127))
    return vecs


def _expect(vec: tuple[int, ...], single: int) -> tuple[int, int]:
    """(q8, r32) of one lane operation: intmath's double or single rounding (single: r32 saturated to int32,
    which only t = mult = -2^31 at shift 0 needs)."""
    acc, bias, lshift, mult, shift, zp, lo, hi = vec
    t = _s32(_s32(acc + bias) << lshift)
    q8 = int(requantize_to_int8(np.int64(t), mult, shift, zp, lo, hi, single=bool(single)))
    r = int((requantize_single if single else requantize)(np.int64(t), mult, shift))
    return q8, min(max(r, INT32_MIN), INT32_MAX)


@cocotb.test()
async def requant_lane(dut) -> None:
    """tc_requant against intmath, one operation per cycle back to back: random values, rounding
    ties, saturation corners, left shifts, clamp bounds; every result exactly 5 cycles after its
    operands (zp, lo, hi presented in stage 4's cycle, 3 cycles after them). Every vector
    runs in double then single rounding (single_i toggles every cycle), plus exact halves of single
    rounding at every shift."""
    rng = random.Random(7)
    Clock(dut.clk_i, 10, unit="ns").start()
    ops = [(v, single) for v in _requant_vectors(rng) for single in (0, 1)]
    ops += [(v, 1) for v in _single_ties()] + [(v, 0) for v in _single_ties()]
    lat = REQUANT_LATENCY
    errors = 0
    differ = 0  # operations whose two roundings differ: the ties must make the modes distinguishable
    for k in range(len(ops) + lat):
        if k < len(ops):
            (acc, bias, lshift, mult, shift), single = ops[k][0][:5], ops[k][1]
        else:
            acc, bias, lshift, mult, shift, single = rng.getrandbits(32), 0, 0, 0, 0, 0
        dut.acc_i.value = acc & 0xFFFFFFFF
        dut.bias_i.value = bias & 0xFFFFFFFF
        dut.lshift_i.value = lshift
        dut.mult_i.value = mult & 0xFFFFFFFF
        dut.shift_i.value = shift
        dut.single_i.value = single
        b = k - (lat - 2)  # the operation in stage 4 this cycle, which samples the bounds
        zp, lo, hi = ops[b][0][5:] if 0 <= b < len(ops) else (0, -128, 127)
        j = k - (lat - 1)  # the operation in the last stage this cycle
        dut.zp_i.value = zp & 0xFF
        dut.lo_i.value = lo & 0xFF
        dut.hi_i.value = hi & 0xFF
        await RisingEdge(dut.clk_i)
        await ReadOnly()
        if 0 <= j < len(ops):
            vec, single = ops[j]
            exp_q8, exp_r32 = _expect(vec, single)
            differ += single and _expect(vec, 0)[1] != exp_r32
            got_q8 = dut.q8_o.value.to_signed()
            got_r32 = dut.r32_o.value.to_signed()
            if got_q8 != exp_q8 or got_r32 != exp_r32:
                errors += 1
                if errors < 20:
                    acc, bias, lshift, mult, shift, zp, lo, hi = vec
                    dut._log.error(f"single={single} acc={acc} bias={bias} ls={lshift} m={mult} s={shift} zp={zp} "
                                   f"lo={lo} hi={hi}: q8 {got_q8} != {exp_q8} or r32 {got_r32} != {exp_r32}")
        await Timer(1, unit="ns")
    assert errors == 0, f"{errors} mismatches in {len(ops)} operations"
    assert differ >= 100, f"only {differ} operations tell single from double rounding"


@cocotb.test()
async def mac_array(dut) -> None:
    """tc_mac_array: dot[c] = sum_r x[r][c] W[r][c], broadcast / per-element / extreme operands, one result per cycle,
    two cycles after its operands."""
    n = int(dut.N.value) if hasattr(dut, "N") else int(os.environ["TC_N"])
    rng = np.random.default_rng(3)
    Clock(dut.clk_i, 10, unit="ns").start()
    full = np.full((n, n), 1)
    cases = [(-128 * full, -128 * full), (127 * full, -128 * full), (-128 * full, 127 * full)]
    # broadcast operands (x[r][c] = a[r], the normal mode) and independent ones (window mode)
    cases += [(np.repeat(rng.integers(-128, 128, (n, 1)), n, axis=1), rng.integers(-128, 128, (n, n)))
              for _ in range(100)]
    cases += [(rng.integers(-128, 128, (n, n)), rng.integers(-128, 128, (n, n))) for _ in range(200)]
    errors = 0
    for k in range(len(cases) + 1):
        if k < len(cases):
            x, w = cases[k]
            dut.x_i.value = int.from_bytes(x.astype(np.int8).tobytes(), "little")
            dut.w_i.value = int.from_bytes(w.astype(np.int8).tobytes(), "little")
        await RisingEdge(dut.clk_i)  # the edge registers this cycle's products and the last cycle's sums
        await ReadOnly()
        if k >= 1:
            x, w = cases[k - 1]
            got = np.frombuffer(int(dut.dot_o.value).to_bytes(4 * n, "little"), np.int32)
            errors += int(not np.array_equal(got, (x.astype(np.int64) * w.astype(np.int64)).sum(axis=0)))
        await Timer(1, unit="ns")
    assert errors == 0, f"{errors} mismatching cycles"


@cocotb.test()
async def mem_port_stalls(dut) -> None:
    """tc_mem_arb: three requesters under random valid gaps, ready stalls and response latency."""
    rng = random.Random(11)
    width = int(os.environ.get("TC_DATAW", "64"))
    Clock(dut.clk_i, 10, unit="ns").start()
    dut.rst_ni.value = 0
    dut.req_valid_i.value = 0
    dut.mem_req_ready_i.value = 0
    dut.mem_rsp_valid_i.value = 0
    await ClockCycles(dut.clk_i, 2)
    dut.rst_ni.value = 1
    mem = {a: rng.getrandbits(width) for a in range(256)}
    # per requester: list of (we, addr, data)
    todo = [[(0, rng.randrange(256), 0) for _ in range(150)],
            [(0, rng.randrange(256), 0) for _ in range(150)],
            [(1, rng.randrange(256), rng.getrandbits(width)) for _ in range(150)]]
    expected = [[], [], []]
    got = [[], [], []]
    shadow = dict(mem)
    pending = []  # in-order read data queued in the "memory"
    cur = [None, None, None]
    for _ in range(20000):
        if all(not t for t in todo) and all(c is None for c in cur) and not pending:
            break
        for r in range(3):
            if cur[r] is None and todo[r] and rng.random() < 0.7:
                cur[r] = todo[r].pop(0)
        dut.req_valid_i.value = sum(1 << r for r in range(3) if cur[r] is not None)
        dut.req_we_i.value = sum((cur[r][0] if cur[r] else 0) << r for r in range(3))
        dut.req_addr_i.value = sum((cur[r][1] if cur[r] else 0) << (32 * r) for r in range(3))
        dut.req_wdata_i.value = sum((cur[r][2] if cur[r] else 0) << (width * r) for r in range(3))
        ready = rng.random() < 0.6
        dut.mem_req_ready_i.value = int(ready)
        rsp = bool(pending) and rng.random() < 0.5
        dut.mem_rsp_valid_i.value = int(rsp)
        dut.mem_rsp_rdata_i.value = pending[0] if rsp else 0
        await Timer(1, unit="ns")
        rv = int(dut.rsp_valid_o.value)
        if rsp:
            owner = [r for r in range(3) if rv >> r & 1]
            assert len(owner) == 1, rv
            got[owner[0]].append(pending.pop(0))
        if int(dut.mem_req_valid_o.value) and ready:
            we, addr = int(dut.mem_req_we_o.value), int(dut.mem_req_addr_o.value)
            rdy = int(dut.req_ready_o.value)
            r = [k for k in range(3) if rdy >> k & 1]
            assert len(r) == 1 and cur[r[0]] is not None and cur[r[0]][1] == addr
            if we:
                shadow[addr] = int(dut.mem_req_wdata_o.value)
            else:
                pending.append(shadow[addr])
                expected[r[0]].append(shadow[addr])
            cur[r[0]] = None
        await RisingEdge(dut.clk_i)
    assert all(not t for t in todo) and not pending, "requests left over: arbiter starved someone"
    assert got[0] == expected[0] and got[1] == expected[1], "responses routed to the wrong requester"
    assert len(got[0]) == 150 and len(got[1]) == 150 and not got[2]

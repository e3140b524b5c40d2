"""COMPUTE window mode (bit 10, ``win``, with kernel rows side by side: ``wg``, ``wstride``) on the RTL: bit-exact with
the model, same timing as normal mode.

Each case runs one or more COMPUTEs on a fresh accumulator region (the first with init, the others
accumulating or taking the max), then copies the int32 accumulators out through four POSTPROCs
(lshift 24 / 16 / 8 / 0 with an identity multiplier and shift 24: together they pin down all 32 bits)
and STOREs. The same program with ``win`` cleared must take exactly the same cycles.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tinycompile.accel.assembler import Instr, MemoryImage, assemble
from tinycompile.accel.config import AccelConfig
from tinycompile.accel.model import run_model
from tinycompile.accel.simulate import SimJob, run_jobs
from tinycompile.quant.intmath import requantize_to_int8

INP_WORDS = 1024
WGT_TILES = 64
LSHIFTS = (24, 16, 8, 0)
MULT, SHIFT = 2**31 - 1, 24


def _cases(n: int) -> list[tuple[int, int, list[dict[str, int]]]]:
    """(m, nt, computes) per case; every compute of a case shares m, nt and the accumulator rows."""
    def c(kt: int, stride: int = 0, **kw: int) -> dict[str, int]:
        return dict(kt=kt, inp_nt_stride=stride, **kw)
    return [
        (1, 3, [c(3), c(2, 5)]),                       # m = 1: back-to-back passes, forwarded
        (2, 3, [c(2, 4), c(1, max=1)]),                # m = 2, then max
        (3, 2, [c(3, 9), c(2)]),                       # m = 3 (no bubble), depthwise-style stride
        (n - 1, 2, [c(2)]),
        (n, 3, [c(1, n), c(3, 3 * n)]),
        (n + 1, 2, [c(2, 2 * (n + 1), max=1)]),        # max with init on the first pass
        (37, 3, [c(3, 111), c(2, 40), c(1)]),          # accumulate twice
        (300, 1, [c(2)]),                              # one long pass
        (150, 2, [c(1, 150), c(2, 0, max=1)]),
        # groups of wg rows, read port g at wstride * g: ports past the hardware's read zero
        (40, 2, [c(2, 90, wg=3, wstride=45), c(1, 0, wg=2, wstride=31)]),
        (5, 3, [c(2, 11, wg=1, wstride=3), c(1, 7, wg=n - 1, wstride=250)]),
        (64, 1, [c(1, wg=n, wstride=9), c(1, wg=n + 1, wstride=9), c(2, wg=2, wstride=0)]),
    ]


def _ports_read(cfg: AccelConfig, wg: int) -> int:
    """Read ports a window-mode COMPUTE with group width ``wg`` reads (0 or past N: one group)."""
    wg = cfg.n if wg == 0 or wg > cfg.n else wg
    return min(cfg.inp_ports, -(-cfg.n // wg))


def _program(cfg: AccelConfig, rng: np.random.Generator, win: int) -> tuple[MemoryImage, int, list[tuple[int, int]]]:
    """Memory image, program address and (byte address, rows) of every stored accumulator block."""
    n = cfg.n
    img = MemoryImage(n, 1 << 20)
    pr = np.random.default_rng(rng.integers(1 << 31))  # identical data for win = 0 and 1
    x_addr = img.put(pr.integers(-128, 128, (INP_WORDS, n)).astype(np.int8))
    w_addr = img.put(pr.integers(-128, 128, (WGT_TILES * n, n)).astype(np.int8))
    params = np.stack([np.zeros(n), np.full(n, MULT), np.full(n, SHIFT)]).astype(np.int32)
    p_addr = img.put(params)
    prog = [
        Instr("LOAD", dict(sp=0, base=x_addr, n0=INP_WORDS, d0=n)),
        Instr("LOAD", dict(sp=1, base=w_addr, n0=WGT_TILES * n, d0=n)),
        Instr("LOAD", dict(sp=2, base=p_addr, n0=12, d0=n, push_next=1)),
    ]
    outs = []
    acc = 0
    first = True
    for m, nt, computes in _cases(n):
        rows = m * nt
        assert acc + rows <= cfg.acc_depth and rows <= cfg.out_depth
        for k, cmp in enumerate(computes):
            kt, stride = cmp["kt"], cmp["inp_nt_stride"]
            wg, wstride = cmp.get("wg", 0), cmp.get("wstride", 0)
            need = (nt - 1) * stride + kt * m + (_ports_read(cfg, wg) - 1) * wstride
            fields = dict(init=int(k == 0), max=cmp.get("max", 0), win=win, wg=wg, wstride=wstride,
                          inp_base=int(pr.integers(0, INP_WORDS - need + 1)),
                          wgt_base=int(pr.integers(0, WGT_TILES - kt * nt + 1)),
                          acc_base=acc, m=m, kt=kt, nt=nt, inp_nt_stride=stride,
                          pop_prev=int(first), push_next=int(k == len(computes) - 1))
            first = False
            prog.append(Instr("COMPUTE", fields))
        for s, ls in enumerate(LSHIFTS):
            dst = img.alloc(rows * n, 64)
            prog.append(Instr("POSTPROC", dict(acc_a=acc, out_base=0, rows=rows, pset=0, zp=0, lo=-128, hi=127,
                                               lshift=ls, pop_prev=int(s == 0))))
            prog.append(Instr("STORE", dict(sp=0, base=dst, n0=rows, d0=n)))
            outs.append((dst, rows))
        acc += rows
    prog.append(Instr("DONE"))
    return img, img.put(np.frombuffer(assemble(prog), np.uint8)), outs


def _reference(cfg: AccelConfig, img: MemoryImage, prog_addr: int) -> list[np.ndarray]:
    """Independent of model.py: accumulators from a plain loop over the ISA.md pseudo-code, then the
    four extraction POSTPROCs, per case (only the window-mode programs are checked this way)."""
    from tinycompile.accel.assembler import disassemble

    n = cfg.n
    prog = disassemble(img.data[prog_addr:].tobytes())
    inp = img.read(prog[0].get("base"), INP_WORDS * n).view(np.int8).reshape(-1, n).astype(np.int64)
    wgt = img.read(prog[1].get("base"), WGT_TILES * n * n).view(np.int8).reshape(-1, n, n).astype(np.int64)
    accs: dict[int, np.ndarray] = {}
    res = []
    for ins in prog:
        f = ins.get
        if ins.op == "COMPUTE":
            m, kt, nt = f("m"), f("kt"), f("nt")
            for j in range(nt):
                for k in range(kt):
                    w = wgt[f("wgt_base") + j * kt + k]
                    for i in range(m):
                        a = f("inp_base") + j * f("inp_nt_stride") + k * m + i
                        if f("win"):
                            wg = f("wg") if 0 < f("wg") <= n else n
                            v = np.zeros((n, n), np.int64)
                            for r in range(n):
                                g, d = divmod(r, wg)
                                if g < cfg.inp_ports and i >= d:
                                    v[r] = inp[a + g * f("wstride") - d]
                            p = (v * w).sum(axis=0)
                        else:
                            p = inp[a] @ w
                        row = f("acc_base") + j * m + i
                        old = accs.get(row)
                        if f("init") and k == 0:
                            accs[row] = p
                        elif f("max"):
                            accs[row] = np.maximum(old, p)
                        else:
                            accs[row] = old + p
        elif ins.op == "POSTPROC":
            a = np.array([accs[f("acc_a") + i] for i in range(f("rows"))])
            t = ((a << f("lshift")) + 2**31) % 2**32 - 2**31
            res.append(requantize_to_int8(t, np.int64(MULT), np.int64(SHIFT), 0, -128, 127).astype(np.int8))
    return res


@pytest.mark.parametrize("n, ports", [(4, 1), (8, 2), (8, 3)])
def test_window_mode_bit_exact_same_timing(n: int, ports: int, rng: np.random.Generator) -> None:
    """Window mode equals the model and a loop reference bit for bit, with 1, 2 and 3 INP read ports; cycles equal
    normal mode's."""
    cfg = replace(AccelConfig.for_array(n), inp_ports=ports)
    seed = int(rng.integers(1 << 31))
    img1, pa1, outs = _program(cfg, np.random.default_rng(seed), win=1)
    img0, pa0, outs0 = _program(cfg, np.random.default_rng(seed), win=0)
    assert outs0 == outs and pa0 == pa1
    r1, r0, r1s = run_jobs([SimJob(img1, pa1), SimJob(img0, pa0), SimJob(img1, pa1, stall=True)], cfg=cfg)
    for r in (r1, r0, r1s):
        assert r.done and not r.error, (r.status, r.error_code)
    model1, model0 = run_model(img1, pa1, cfg), run_model(img0, pa0, cfg)
    ref1 = _reference(cfg, img1, pa1)
    for (addr, rows), ref in zip(outs, ref1):
        nb = rows * n
        np.testing.assert_array_equal(r1.image.read(addr, nb), model1.read(addr, nb))
        np.testing.assert_array_equal(r1s.image.read(addr, nb), model1.read(addr, nb))
        np.testing.assert_array_equal(r0.image.read(addr, nb), model0.read(addr, nb))
        np.testing.assert_array_equal(r1.image.read(addr, nb).view(np.int8), ref.reshape(-1))
    # the bit really changes the arithmetic
    assert any(not np.array_equal(model1.read(a, r * n), model0.read(a, r * n)) for a, r in outs)
    # timing: identical in both modes (the fpga cost model relies on it)
    assert (r1.cycles, r1.mac_cycles, r1.compute_busy) == (r0.cycles, r0.mac_cycles, r0.compute_busy)
    work = sum(m * nt * c["kt"] for m, nt, cs in _cases(n) for c in cs)
    assert r1.mac_cycles == r0.mac_cycles == work

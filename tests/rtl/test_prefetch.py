"""Cross-layer prefetch on the RTL: a layer's first weights and parameters load while the previous layer's last
stores drain, and its inputs (which read those stores) still wait for them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from programs import TestProgram, conv2d
from rtl_helpers import requant_params

from tinycompile.accel.assembler import Instr
from tinycompile.accel.config import AccelConfig
from tinycompile.accel.isa import PARAM_WORDS_PER_SET, QUEUE_LOAD, SP_INP, SP_PARAM
from tinycompile.accel.layout import TensorLoc, read_tensor
from tinycompile.accel.reference import conv2d_ref
from tinycompile.accel.simulate import SimJob, run_jobs
from tinycompile.fpga.emit import emit_layer
from tinycompile.fpga.geometry import Geom
from tinycompile.fpga.schedule import simulate
from tinycompile.fpga.schemes import LayerAddrs, LayerQuant
from tinycompile.fpga.tiling import plan_layer

N = 8


def _two_convs(rng: np.random.Generator, prefetch: bool) -> tuple[TestProgram, int, TensorLoc, np.ndarray]:
    """conv 3x3 16->32 then conv 1x1 32->32 reading its output; without prefetch the second layer's loads all wait
    for the first layer's barrier (the two tokens the split barrier leaves, taken by SYNCs)."""
    prog = TestProgram(N)
    x = rng.integers(-128, 128, (10, 10, 16)).astype(np.int8)
    w1 = rng.integers(-128, 128, (3, 3, 16, 32)).astype(np.int8)
    b1, q1 = rng.integers(-3000, 3000, 32), requant_params(rng, 32)
    t1 = conv2d(prog, prog.put(x), 5, w1, b1, q1, -7, pad=(1, 1, 1, 1))
    r1 = conv2d_ref(x, w1, b1, *q1, 5, -7, 1, (1, 1, 1, 1))
    if not prefetch:
        prog.instrs += [Instr("SYNC", {"queue": QUEUE_LOAD, "pop_next": 1}) for _ in range(2)]
    w2 = rng.integers(-128, 128, (1, 1, 32, 32)).astype(np.int8)
    b2, q2 = rng.integers(-3000, 3000, 32), requant_params(rng, 32)
    t2 = conv2d(prog, t1, -7, w2, b2, q2, 3, prefetch=prefetch)
    return prog, prog.finish(), t2, conv2d_ref(r1, w2, b2, *q2, -7, 3)


def test_prefetch_is_bit_exact_and_saves_cycles() -> None:
    """Both programs match intmath bit for bit (memory stalls on and off); with prefetch the RTL takes fewer
    cycles, and the cost model, replaying both streams, predicts each within 5% and the same order."""
    runs = {}
    for prefetch in (True, False):
        prog, pa, out, ref = _two_convs(np.random.default_rng(11), prefetch)
        res = run_jobs([SimJob(prog.image, pa), SimJob(prog.image, pa, stall=True)], n=N)
        for r in res:
            assert r.done and not r.error, (r.status, r.error_code)
            np.testing.assert_array_equal(read_tensor(r.image, out), ref)
        runs[prefetch] = (res[0].cycles, simulate(prog.instrs, N, done=True).cycles)
    (fast, fast_pred), (slow, slow_pred) = runs[True], runs[False]
    assert fast < slow, runs
    assert fast_pred < slow_pred, runs
    for cycles, pred in runs.values():
        assert abs(pred - cycles) <= 0.05 * cycles, runs


def _param_loads(code: list[Instr]) -> list[tuple[int, int, bool]]:
    """(first set, sets, loaded before the barrier token) of every PARAM LOAD of a layer's code."""
    out, token_seen = [], False
    for ins in code:
        if ins.op == "LOAD" and ins.fields.get("sp") == SP_PARAM:
            out.append((ins.fields["sp_base"] // PARAM_WORDS_PER_SET, ins.fields["n0"] // PARAM_WORDS_PER_SET,
                        not token_seen))
        token_seen |= ins.op == "LOAD" and ins.fields.get("sp") == SP_INP and bool(ins.fields.get("pop_next"))
    return out


def test_parameters_go_where_the_previous_pass_does_not_read() -> None:
    """With room in PARAM, a following layer's parameter sets go above the previous layer's and its POSTPROCs address
    them; without room they go to set 0. A convolution whose first weights come tile by tile loads them after its
    first inputs, which take the barrier token (the array waits for inputs, not parameters); pure emitter check."""
    cfg = AccelConfig.for_array(N)
    g1 = Geom("conv", 8, 8, 16, 8, 8, 32, 3, 3, 1, 1, (1, 1, 1, 1))
    g2 = Geom("conv", 8, 8, 32, 8, 8, 24)
    addrs, q = LayerAddrs(0, 1 << 16, 1 << 17, 1 << 18, 0), LayerQuant()
    for sets, expect in ((cfg.param_sets, (4, 3, False)), (4, (0, 3, False))):
        c = replace(cfg, param_sets=sets)
        first = emit_layer(g1, plan_layer(g1, c), c, addrs, q)
        second = emit_layer(g2, plan_layer(g2, c), c, addrs, q, first)
        assert _param_loads(first) == [(0, 4, True)]
        assert _param_loads(second) == [expect]
        psets = sorted({ins.fields["pset"] for ins in second if ins.op == "POSTPROC"})
        assert psets == list(range(expect[0], expect[0] + 3))

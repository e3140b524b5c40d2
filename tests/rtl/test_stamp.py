"""SYNC ``stamp`` (the per-layer cycle log): a compute-queue SYNC writes the accelerator's cycle counter into memory
when it retires, so one run over several layers still times each of them."""

from __future__ import annotations

import numpy as np

from programs import TestProgram, conv2d
from rtl_helpers import requant_params

from tinycompile.accel.assembler import Instr
from tinycompile.accel.isa import QUEUE_COMPUTE
from tinycompile.accel.layout import read_tensor
from tinycompile.accel.model import run_model
from tinycompile.accel.config import AccelConfig
from tinycompile.accel.reference import conv2d_ref
from tinycompile.accel.simulate import SimJob, run_jobs
from tinycompile.fpga.codegen import stamp_layer
from tinycompile.fpga.schedule import network_timing

N = 8


def _log(image: np.ndarray, addr: int, k: int) -> list[tuple[int, int]]:
    """(the counter, the word's other bytes as one number) of ``k`` log words at ``addr``."""
    words = image[addr : addr + k * N].reshape(k, N)
    return [(int(w[:4].view("<u4")[0]), int(w[4:].astype(np.int64).sum())) for w in words]


def test_stamps_time_each_layer_of_one_run() -> None:
    """Two convs in one run (the second prefetching behind the first), each layer's last barrier stamped, and two
    stamped SYNCs back to back at the end: the outputs stay bit-exact (memory stalls on and off), the stamps rise
    through the run and the last of them is within a few cycles of the run's end; none is lost behind another; the
    cost model splits the run at the same stamps within 5%; the ISA model, which has no clock, leaves the log alone."""
    rng = np.random.default_rng(5)
    prog = TestProgram(N)
    log = prog.image.alloc(4 * N)
    x = rng.integers(-128, 128, (10, 10, 16)).astype(np.int8)
    w1 = rng.integers(-128, 128, (3, 3, 16, 32)).astype(np.int8)
    b1, q1 = rng.integers(-3000, 3000, 32), requant_params(rng, 32)
    t1 = conv2d(prog, prog.put(x), 5, w1, b1, q1, -7, pad=(1, 1, 1, 1))
    first = list(prog.instrs)
    stamp_layer(prog.instrs, log)
    w2 = rng.integers(-128, 128, (1, 1, 32, 32)).astype(np.int8)
    b2, q2 = rng.integers(-3000, 3000, 32), requant_params(rng, 32)
    t2 = conv2d(prog, t1, -7, w2, b2, q2, 3, prefetch=True)
    second = prog.instrs[len(first) :]
    stamp_layer(second, log + N)
    prog.instrs[len(first) :] = second
    prog.instrs += [Instr("SYNC", {"queue": QUEUE_COMPUTE, "stamp": 1, "base": log + k * N}) for k in (2, 3)]
    pa = prog.finish()
    ref = conv2d_ref(conv2d_ref(x, w1, b1, *q1, 5, -7, 1, (1, 1, 1, 1)), w2, b2, *q2, -7, 3)
    res = run_jobs([SimJob(prog.image, pa), SimJob(prog.image, pa, stall=True)], n=N)
    for r in res:
        assert r.done and not r.error, (r.status, r.error_code)
        np.testing.assert_array_equal(read_tensor(r.image, t2), ref)
        (s1, hi1), (s2, hi2), (s3, hi3), (s4, hi4) = _log(r.image.data, log, 4)
        assert hi1 == hi2 == hi3 == hi4 == 0
        assert 0 < s1 < s2 < s3 < s4 <= r.cycles < s4 + 8, (s1, s2, s3, s4, r.cycles)
    s1, s2 = (s for s, _ in _log(res[0].image.data, log, 2))
    predicted = network_timing([prog.instrs[: len(first)], prog.instrs[len(first) :]], N)
    for got, want in zip(predicted, (s1, res[0].cycles - s1)):
        assert abs(got - want) <= 0.05 * want, (predicted, s1, res[0].cycles)
    model = run_model(prog.image, pa, AccelConfig.for_array(N))
    assert not model.data[log : log + 4 * N].any()
    np.testing.assert_array_equal(read_tensor(model, t2), ref)

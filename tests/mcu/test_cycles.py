"""Estimated cycles: QEMU's executed instruction stream (mcu/trace.py) priced with the target's timing table
(mcu/timing.py), reported beside the instructions.

* The log parser on a hand-written log: blocks re-split by encoding length (an instruction QEMU's disassembler
  printed as ``.byte`` plus a bogus half counts once), executions cut at the counter reads, kernels as the counter
  counts them.
* The timing model's arithmetic on synthetic streams: Cortex-M4 table values (LDR 2, pipelined LDR 1, SMLAD 1, PUSH
  1 + N, address stall, taken branch 1 + P), fetch wait states, dual issue, Helium overlap, low-overhead loops,
  RV32 loads, multiplies and branches.
* Real builds of a one-layer network: the trace counts exactly what minstret counts (rv32imc), what SysTick counts
  to its resolution (cortex-m4); the report has the estimate per layer and in total, at least one cycle per
  instruction on the Cortex-M4, and says it is an estimate.
* The back end refuses a bad ``timing:`` section.
"""

from __future__ import annotations

import copy
import dataclasses
from array import array

import numpy as np
import pytest
from mcu_helpers import random_model

from tinycompile.arch import ArchSpec, Layer
from tinycompile.backends.base import Workload
from tinycompile.backends.mcu import McuBackend
from tinycompile.errors import UserError
from tinycompile.mcu import timing
from tinycompile.mcu.backend import build_and_run
from tinycompile.mcu.library import compile_graph
from tinycompile.mcu.trace import Block, Insn, LogParser, Trace, counter_reads
from tinycompile.quant.quantize import quantize
from tinycompile.targets import load_target

HOOK = (0x100, 0x140)
LOG = """\
----------------
IN: tc_profile_hook
0x00000100:  f04f 23e0  mov.w    r3, #-0x1fff2000
0x00000104:  6999       ldr      r1, [r3, #0x18]
0x00000106:  699a       ldr      r2, [r3, #0x18]
0x00000108:  4770       bx       lr

Trace 0: 0x7f0000000100 [00800400/00000100/00000010/ff020200] tc_profile_hook
----------------
IN: kernel
0x00000200:  f040       .byte    0x40, 0xf0
0x00000202:  e001       b        #0x206
0x00000204:  3001       adds     r0, #1

Trace 0: 0x7f0000000200 [00800400/00000200/00000010/ff020200] kernel
Trace 0: 0x7f0000000200 [00800400/00000200/00000010/ff020200] kernel
Trace 0: 0x7f0000000200 [00800400/00000200/00000010/ff020200] kernel
Trace 0: 0x7f0000000100 [00800400/00000100/00000010/ff020200] tc_profile_hook
Trace 0: 0x7f0000000200 [00800400/00000200/00000010/ff020200] kernel
"""


def test_log_parser_splits_kernels_at_the_counter_reads() -> None:
    parser = LogParser("thumb", HOOK, kernels=1)
    done = False
    lines = LOG.splitlines(keepends=True)
    for n, line in enumerate(lines):
        done = parser.feed(line)
        if done:
            break
    trace = parser.trace
    assert done and n == len(lines) - 2  # stopped at the kernel's end: the last execution is not read
    hook, kernel = trace.blocks
    assert hook.reads == (1, 2)  # both loads of SysTick's current value (0xe000e000 + 0x18)
    # DLS (f040 e001, unknown to the disassembler) is one 4-byte instruction; its second half is no branch
    assert [(i.pc, i.size, i.mnemonic) for i in kernel.insns] == [(0x200, 4, ""), (0x204, 2, "adds")]
    assert kernel.insns[0].code == (0xF040, 0xE001) and kernel.end == 0x206
    # The hook's first read is dropped; its second starts kernel 0 (the bx after it counts), the next call's first
    # read ends it (counted with it).
    assert list(zip(trace.seq, trace.first, trace.executed, trace.segment)) == [
        (0, 0, 3, -1), (0, 3, 1, 0), (1, 0, 2, 0), (1, 0, 2, 0), (1, 0, 2, 0), (0, 0, 2, 0)]
    assert trace.kernel_instructions() == [1 + 3 * 2 + 2] and trace.complete


def test_counter_reads_follow_literals_and_movw_movt() -> None:
    literal = {0x138: 0xE000E010}
    insns = [Insn(0x120, 2, "ldr", "r3, [pc, #0x14]", (0x4B05,)),  # the literal at align(0x124) + 0x14
             Insn(0x122, 2, "ldr", "r0, [r3, #8]", (0x6898,)),
             Insn(0x124, 4, "movw", "r2, #0xe018", (0xF24E, 0x0218)),
             Insn(0x128, 4, "movt", "r2, #0xe000", (0xF2CE, 0x0200)),
             Insn(0x12C, 2, "ldr", "r1, [r2]", (0x6811,)),
             Insn(0x12E, 2, "ldr", "r1, [r3, #4]", (0x6859,))]
    assert counter_reads("thumb", insns, literal.get) == [1, 4]
    rv = [Insn(0x80000156, 4, "csrrs", "a4,minstret,zero", (0x2773, 0xB020)), Insn(0x8000015A, 2, "ret", "", (0x8082,))]
    assert counter_reads("riscv", rv) == [0]


def _insns(pc: int, texts: list[tuple[str, str]], size: int = 4) -> tuple[Insn, ...]:
    return tuple(Insn(pc + size * i, size, m, o, (0xBF00, 0xBF00)[: size // 2]) for i, (m, o) in enumerate(texts))


def _trace(isa: str, blocks: list[Block], pieces: list[tuple[int, int]]) -> Trace:
    """A trace of ``(block, kernel)`` executions, each block whole."""
    return Trace(isa, 1, blocks, array("i", [b for b, _ in pieces]), array("i", [0] * len(pieces)),
                 array("i", [len(blocks[b].insns) for b, _ in pieces]), array("i", [k for _, k in pieces]))


M4_LOOP = [
    ("ldr", "r4, [r1, #4]"),           # LDR: 2
    ("ldr", "r5, [r2, #4]"),           # after an LDR, address not from it: pipelined, 1
    ("smlad", "r6, r4, r5, r6"),       # 1
    ("adds", "r1, #8"),                # 1
    ("ldr", "r7, [r1]"),               # its address was just computed: 2 + 1 stall
    ("push", "{r4, r5, lr}"),          # 1 + N = 4
    ("cmp", "r1, r3"),                 # 1
    ("bne", "#0x1000"),                # 1, + P = 2 when taken
]


def m4_model(**changes: object) -> timing.TimingModel:
    target = load_target("cortex-m4")
    model = timing.TimingModel.from_section(target.raw["timing"], target.path)
    return dataclasses.replace(model, **changes)


def test_cortex_m4_table_prices_a_loop() -> None:
    model = m4_model(memory=None)
    assert (model.cycles["load"], model.cycles["mac"], model.pipelined_loads, model.taken_branch) == (2, 1, 1, 2)
    loop = Block(0x1000, _insns(0x1000, M4_LOOP))
    after = Block(loop.end, _insns(loop.end, [("bx", "lr")]))
    per_iteration = 2 + 1 + 1 + 1 + 3 + 4 + 1 + 1
    [k] = timing.estimate(_trace("thumb", [loop, after], [(0, 0), (0, 0), (0, 0), (1, -1)]), model)
    assert k.instructions == 24
    assert k.issue == 3 * per_iteration and k.branches == 2 * 2  # taken twice, then falls through
    assert k.cycles == 3 * 14 + 4 and k.fetch == 0
    assert k.mix == {"load": 9, "mac": 3, "alu": 6, "store_multiple": 3, "branch": 3}
    # Loads that depend on the loaded register do not pipeline: LDR r1, [r0]; LDR r2, [r1] is 2 + 2
    dependent = [timing.decode("thumb", i) for i in _insns(0, [("ldr", "r1, [r0]"), ("ldr", "r2, [r1]")])]
    assert timing.piece_cost(model, dependent).cycles == 4
    assert timing.decode("thumb", _insns(0, [("popeq.w", "{r4, r5, pc}")])[0]).nregs == 3


def test_flash_wait_states_cost_a_jump_into_a_missed_line() -> None:
    model = m4_model(memory=timing.Memory(wait_states=5, line_bytes=32, cache_lines=2, sequential_miss=0))
    loop = Block(0x1000, _insns(0x1000, M4_LOOP))  # 32 bytes: one line
    after = Block(loop.end, _insns(loop.end, [("bx", "lr")]))  # the next line: fetched sequentially
    far = Block(0x2000, _insns(0x2000, [("bx", "lr")]))
    stream = [(0, 0), (0, 0), (1, 0), (2, 0), (0, 0), (2, 0)]  # a 2-line cache: 0x2000 evicts the loop's line
    [k] = timing.estimate(_trace("thumb", [loop, after, far], stream), model)
    # misses: the loop's line (5), the sequential line after it (0), 0x2000 (5), the loop again (5); then 0x2000 hits
    assert k.fetch == 15


def test_dual_issue_and_helium_overlap() -> None:
    model = m4_model(memory=None, dual_issue=1.0)
    pairs = [timing.decode("thumb", i) for i in _insns(0, [("adds", "r0, r0, #1"), ("adds", "r1, r1, #1"),
                                                           ("adds", "r2, r0, #1"), ("adds", "r3, r2, #1")])]
    # the first two pair (the second is free); the third cannot join a pair already made; the fourth reads r2
    assert timing.piece_cost(model, pairs).cycles == 3
    m55 = load_target("cortex-m55")
    model = timing.TimingModel.from_section(m55.raw["timing"], m55.path)
    vec = [timing.decode("thumb", i) for i in _insns(0, [("vldrw.u32", "q0, [r0]"), ("vmla.s32", "q1, q0, r2")])]
    assert [d.cls for d in vec] == ["mve_memory", "mve"]
    assert timing.piece_cost(model, vec).cycles == 2 + 2 - 1
    # LE (f00f c165, unnamed by QEMU's disassembler) closes a low-overhead loop without a refill
    body = Block(0x40, (*_insns(0x40, [("smlad", "r6, r4, r5, r6")]), Insn(0x44, 4, "", "", (0xF00F, 0xC165))))
    [k] = timing.estimate(_trace("thumb", [body, Block(0x48, _insns(0x48, [("bx", "lr")]))],
                                 [(0, 0), (0, 0), (1, -1)]), model)
    assert k.mix == {"mac": 2, "loop_end": 2} and k.cycles == 4 and k.branches == 0


def test_riscv_table() -> None:
    target = load_target("rv32imc")
    model = timing.TimingModel.from_section(target.raw["timing"], target.path)
    loop = Block(0x80000000, _insns(0x80000000, [("lw", "a5,0(a0)"), ("mul", "a4,a5,a5"), ("addi", "a0,a0,4"),
                                                 ("bne", "a0,a1,-12")]))
    after = Block(loop.end, _insns(loop.end, [("ret", "")]))
    [k] = timing.estimate(_trace("riscv", [loop, after], [(0, 0), (0, 0), (1, -1)]), model)
    per = model.cycles["load"] + model.cycles["mul"] + 1 + 1
    assert model.cycles["load"] == 2 and model.taken_branch == 2  # loads 2, a taken branch 3
    assert k.cycles == 2 * per + model.taken_branch and k.mix == {"load": 2, "mul": 2, "alu": 2, "branch": 2}


@pytest.mark.parametrize("change,message", [
    ({"cycles": {"alu": 1}}, "missing key 'timing.cycles.mul'"),
    ({"isa": "mips"}, "timing.isa"),
    ({"taken_branch": -1}, "timing.taken_branch"),
    ({"dual_issue": 2}, "timing.dual_issue"),
    ({"bogus": 1}, "unknown key(s) timing.bogus"),
    ({"memory": {"wait_states": 5}}, "timing.memory.line_bytes"),
    ({"isa": "riscv", "cycles": {"alu": 1, "shift": 1, "mul": 1, "div": 1, "load": 1, "store": 1, "branch": 1}},
     "does not match"),
])  # fmt: skip
def test_back_end_refuses_a_bad_timing_section(change, message) -> None:
    target = load_target("cortex-m4")
    raw = copy.deepcopy(target.raw)
    raw["timing"].update(change)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        McuBackend().check_target(dataclasses.replace(target, raw=raw))


ONE_LAYER = ArchSpec((3, 6, 6), 4, (Layer("conv", (-1,), channels=4, kernel=(6, 6)),))  # one kernel: logits


@pytest.fixture(scope="module")
def one_layer():
    rng = np.random.default_rng(3)
    graph = quantize(ONE_LAYER, random_model(ONE_LAYER, 3), rng.normal(0, 0.5, (32, *ONE_LAYER.input_shape)).astype(np.float32))
    vectors = rng.integers(-128, 128, (16, *graph.input_shape)).astype(np.int8)
    return graph, vectors, compile_graph(graph)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_trace_counts_what_minstret_counts(one_layer, tmp_path) -> None:
    graph, vectors, compiled = one_layer
    r = build_and_run(graph, ONE_LAYER, load_target("rv32imc"), tmp_path, vectors, "c", compiled=compiled, trace=True).report
    e = r["cycle_estimate"]
    assert e["traced_instructions"] == r["measured_instructions"] == r["layers"][0]["measured_instructions"]
    assert e["trace_matches_counter"]
    assert r["estimated_cycles"] == r["layers"][0]["estimated_cycles"] > r["measured_instructions"]
    assert not (tmp_path / "firmware" / "firmware.trace.out").exists()
    untraced = build_and_run(graph, ONE_LAYER, load_target("rv32imc"), tmp_path / "b", vectors, "c", compiled=compiled).report
    assert untraced["estimated_cycles"] is None and "not estimated" in untraced["cycles_are"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cortex_m4_build_reports_estimated_cycles(one_layer, tmp_path) -> None:
    graph, vectors, _ = one_layer
    backend = McuBackend()
    target = load_target("cortex-m4")
    options = backend.options({}, target)
    assert options["cycle_estimate"] is True  # on by default in CLI builds
    result = backend.build(Workload(graph, ONE_LAYER, vectors, "one layer"), target, options, tmp_path)
    section = result.section
    e = section["cycle_estimate"]
    # the traced run counts what SysTick counts, to its resolution (40 instructions per tick on mps2)
    assert e["trace_matches_counter"] and abs(e["traced_instructions"] - result.measured) < 40
    [row] = result.layers
    assert row["estimated_cycles"] == section["estimated_cycles"] >= result.measured > 0
    assert section["cycles_are"] == "estimated from QEMU's executed instruction stream with hw_targets/cortex-m4.yaml timing:"
    assert e["issue_cycles"] + e["branch_refill_cycles"] + e["fetch_stall_cycles"] == pytest.approx(section["estimated_cycles"])
    assert sum(e["instruction_mix"].values()) == e["traced_instructions"]
    report = {"backend": {"kind": "mcu", **section}, "target": {"clock_mhz": target.clock_mhz}}
    lines = "\n".join(backend.summary_lines(report))
    assert "estimated cycles: " in lines and "an estimate, not a measurement" in lines and "cortex-m4.yaml timing:" in lines

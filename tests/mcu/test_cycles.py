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
* The VexRiscv model (hw_targets/soc-vexriscv.yaml): result latencies through a register scoreboard, the store
  rules, static branch prediction and halfword targets, a direct-mapped instruction cache, the data cache over
  recorded accesses (misses, and records that do not follow the stream refused), addresses moved between links,
  and QEMU's plugin recording every load and store a real run executes.
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
from tinycompile.cost.model import estimate, estimate_instructions
from tinycompile.errors import UserError
from tinycompile.mcu import memtrace, timing
from tinycompile.mcu.dcache import DataCache, kernel_misses
from tinycompile.mcu.relocate import Relocation
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
    ({"result_latency": {"bogus": 3}}, "timing.result_latency"),
    ({"data_cache": {"miss": 20, "line_bytes": 32, "cache_lines": 128, "ways": 2}}, "must be 1"),
    ({"data_cache": {"miss": 20, "line_bytes": 32}}, "missing key 'timing.data_cache.cache_lines'"),
    ({"memory": {"wait_states": 5, "line_bytes": 32, "cache_lines": 8, "sequential_miss": 0, "ways": 3}},
     "whole divisor"),
])  # fmt: skip
def test_back_end_refuses_a_bad_timing_section(change, message) -> None:
    target = load_target("cortex-m4")
    raw = copy.deepcopy(target.raw)
    raw["timing"].update(change)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        McuBackend().check_target(dataclasses.replace(target, raw=raw))


def vex_model() -> timing.TimingModel:
    target = load_target("soc-vexriscv")
    return timing.TimingModel.from_section(target.raw["timing"], target.path)


def _rv(texts: list[str]) -> list[timing.Decoded]:
    return [timing.decode("riscv", i) for i in _insns(0, [tuple((t + " ").split(" ", 1)) for t in texts])]


@pytest.mark.parametrize("body,cycles", [
    (["lw a5,0(a0)", "add a4,a5,a5"], 1 + 1 + 2),                     # load-use: the data leave write-back
    (["lw a5,0(a0)", "addi a3,a3,1", "add a4,a5,a5"], 3 + 1),         # one instruction between: 1
    (["lw a5,0(a0)", "addi a3,a3,1", "addi a2,a2,1", "add a4,a5,a5"], 4),
    (["lw a5,0(a0)", "lw a4,0(a5)"], 1 + 1 + 2),                      # the loaded register as an address
    (["lw a5,0(a0)", "sw a5,4(a0)"], 1 + 1 + 2),                      # ... as a store's data
    (["mul a5,a4,a3", "add a2,a5,a5"], 4),
    (["slli a5,a4,3", "add a2,a5,a5"], 3),                            # the shifter's result one stage later
    (["sra a5,a4,a3", "addi a2,a2,1", "add a2,a5,a5"], 3),
    (["div a5,a4,a3"], 34),
    (["sw a5,0(a0)", "sw a4,4(a0)"], 1 + 1.94),                        # back-to-back stores
    (["sw a5,8(sp)", "lw a4,8(sp)"], 1 + 1 + 6),                       # the word just stored: replayed
    (["sb a5,9(sp)", "addi a3,a3,1", "lw a4,8(sp)"], 3 + 6),          # the same word, one instruction later
    (["sw a5,8(sp)", "addi a3,a3,1", "addi a2,a2,1", "lw a4,8(sp)"], 4),
    (["sw a5,8(sp)", "lw a4,12(sp)"], 2),                              # another word
    (["sw a5,8(sp)", "addi sp,sp,-16", "lw a4,8(sp)"], 3),            # the base changed: another address
    (["lw a5,0(a0)", "add zero,a5,a5"], 4),
])  # fmt: skip
def test_vexriscv_latencies_and_store_rules(body, cycles) -> None:
    """The soc-vexriscv table on straight-line code: each case is a pattern bench/micro_vexriscv.py measures on the
    RTL (tinycompile/soc/microbench.py), priced as the RTL ran it."""
    assert timing.piece_cost(vex_model(), _rv(body)).cycles == cycles


def test_vexriscv_decodes_qemus_riscv_operands() -> None:
    lw, sw, jal, jr, ret, beq, addi = _rv(["lw a5,172(sp)", "sb a4,-3(s0)", "jal t0,4608", "jr t0", "ret",
                                           "bne s7,a5,-994", "addi a4,zero,-128"])
    assert (lw.cls, lw.writes, lw.reads, lw.address, lw.offset) == ("load", {"a5"}, {"sp"}, {"sp"}, 172)
    assert (sw.cls, sw.writes, sw.reads, sw.offset) == ("store", frozenset(), {"a4", "s0"}, -3)
    assert (jal.control, jal.writes, jr.control, jr.reads, ret.reads) == ("jal", {"t0"}, "jalr", {"t0"}, {"ra"})
    assert (beq.control, beq.offset, beq.reads) == ("cond", -994, {"s7", "a5"})
    assert (addi.writes, addi.reads) == ({"a4"}, frozenset())


def test_vexriscv_static_prediction_and_halfword_targets() -> None:
    model = vex_model()
    back, fwd, jal, jr = _rv(["bnez a5,-12", "beqz a5,24", "j 40", "ret"])
    cost = timing.transfer_cost
    assert cost(model, back, True, 0x100) == 1 and cost(model, back, False, 0x100) == 3  # predicted taken
    assert cost(model, fwd, False, 0x100) == 0 and cost(model, fwd, True, 0x100) == 3   # predicted not taken
    assert cost(model, jal, True, 0x100) == 1 and cost(model, jr, True, 0x100) == 3
    assert cost(model, fwd, True, 0x102) == 4 and cost(model, back, False, 0x102) == 4  # a halfword target: + 1
    assert cost(model, fwd, False, 0x102) == 0  # no redirect, no refetch
    # in a stream: a loop body closed by a backward branch, taken twice then falling through to a halfword address
    loop = Block(0x1002, _insns(0x1002, [("addi", "a0,a0,-1"), ("bnez", "a0,-4")]))
    after = Block(0x100A, (Insn(0x100A, 2, "ret", "", (0x8082,)),))
    [k] = timing.estimate(_trace("riscv", [loop, after], [(0, 0), (0, 0), (0, 0), (1, -1)]), model)
    assert k.issue == 6 and k.branches == (1 + 1) + (1 + 1) + (3 + 1)  # the loop's start is 2 mod 4 too


def test_direct_mapped_instruction_cache() -> None:
    """Two lines a cache size apart share a set when direct-mapped: they evict each other; fully associative (the
    Arm tables' flash caches) they both stay."""
    a = Block(0x0, _insns(0x0, [("nop", "")]))
    b = Block(0x40, _insns(0x40, [("nop", "")]))  # 2 lines of 32 bytes: 0x40 maps to 0x0's set
    stream = [(0, 0), (1, 0), (0, 0), (1, 0)]
    direct = dataclasses.replace(vex_model(), memory=timing.Memory(19, 32, 2, 19, ways=1))
    assoc = dataclasses.replace(direct, memory=timing.Memory(19, 32, 2, 19))
    assert timing.estimate(_trace("riscv", [a, b], stream), direct)[0].fetch == 4 * 19
    assert timing.estimate(_trace("riscv", [a, b], stream), assoc)[0].fetch == 2 * 19


def _accesses(rows: list[tuple[int, bool, int]]) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([pc | int(store) for pc, store, _ in rows], dtype=np.uint32),
            np.array([addr for _, _, addr in rows], dtype=np.uint32))


def test_data_cache_counts_load_misses_of_a_direct_mapped_write_through_cache() -> None:
    block = Block(0x200, _insns(0x200, [("lw", "a5,0(a0)"), ("sw", "a5,0(a1)"), ("lw", "a4,0(a1)")]))
    trace = _trace("riscv", [block], [(0, 0), (0, 0), (0, 0)])
    cache = DataCache(miss=20, line_bytes=32, cache_lines=4)  # 128 bytes: 0x1000 and 0x1080 share set 0
    pc = [0x200, 0x204, 0x208] * 3
    rows = [(pc[0], False, 0x1000), (pc[1], True, 0x2020), (pc[2], False, 0x2020),   # miss, (store), miss
            (pc[0], False, 0x1004), (pc[1], True, 0x1084), (pc[2], False, 0x1080),   # hit, (no allocation), miss
            (pc[0], False, 0x1008), (pc[1], True, 0x2024), (pc[2], False, 0x2024)]   # miss (evicted), (store), hit
    memory = {0: [0, 1, 2]}
    assert kernel_misses(trace, memory, *_accesses(rows), cache) == [4]
    model = dataclasses.replace(vex_model(), memory=None, data_cache=cache)
    [k] = timing.estimate(trace, model, _accesses(rows))
    assert k.data == 4 * 20 and k.cycles == k.issue + k.branches + k.data
    wrong = [(0x20C, False, a) if i == 4 else (p, s, a) for i, (p, s, a) in enumerate(rows)]
    with pytest.raises(ValueError, match="data access 4 was recorded at pc 0x20c, the stream has 0x204"):
        kernel_misses(trace, memory, *_accesses(wrong), cache)
    with pytest.raises(ValueError, match="recorded 3 data accesses, the traced stream has 9"):
        kernel_misses(trace, memory, *_accesses(rows[:3]), cache)


def test_relocation_moves_symbols_and_keeps_the_stream() -> None:
    move = Relocation((0x80000100, 0x80000200), (0x80000200, 0x80000300), (-0x80000000 - 0x1E, -0x80000000 + 4))
    assert (move(0x80000100), move(0x800001FE), move(0x80000204), move(0x90000000)) == (0xE2, 0x1E0, 0x208, 0x90000000)
    assert list(move.array(np.array([0x80000100, 0x80000204, 0x12], dtype=np.uint32))) == [0xE2, 0x208, 0x12]
    trace = _trace("riscv", [Block(0x80000100, _insns(0x80000100, [("nop", ""), ("ret", "")]))], [(0, 0)])
    moved = move.trace(trace)
    assert [i.pc for i in moved.blocks[0].insns] == [0xE2, 0xE6] and moved.seq == trace.seq


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
    # predicted vs measured are instructions (the instructions: coefficients); the cycles: prediction (the search's
    # latency) sits beside the estimated cycles, each with its own error
    cost, instr = estimate(ONE_LAYER, target), estimate_instructions(ONE_LAYER, target)
    assert instr.cycles != cost.cycles  # two coefficient sets
    assert result.unit == "instructions" and result.predicted == row["predicted"] == instr.cycles
    assert section["predicted_cycles"] == row["predicted_cycles"] == cost.cycles
    assert row["cycles_relative_error"] == section["cycles_relative_error"] == pytest.approx(
        (cost.cycles - section["estimated_cycles"]) / section["estimated_cycles"])
    assert "cycles:" in section["compared"]["cycles_relative_error"] and "instructions:" in section["compared"]["relative_error"]
    report = {"backend": {"kind": "mcu", **section}, "target": {"clock_mhz": target.clock_mhz}}
    lines = "\n".join(backend.summary_lines(report))
    assert "estimated cycles: " in lines and "an estimate, not a measurement" in lines and "cortex-m4.yaml timing:" in lines
    assert f"cost model {cost.cycles:,} ({100 * section['cycles_relative_error']:+.1f}%)" in lines


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_qemu_plugin_records_every_load_and_store(one_layer, tmp_path) -> None:
    """The TCG plugin's records follow the traced stream one to one (every load and store of every executed piece,
    in order), and price the one-layer network's data cache misses."""
    from tinycompile.mcu import firmware
    from tinycompile.mcu import trace as tracing
    from tinycompile.mcu.naming import Naming

    graph, vectors, compiled = one_layer
    target = load_target("rv32imc")
    build = build_and_run(graph, ONE_LAYER, target, tmp_path, vectors, "c", compiled=compiled)
    records = tmp_path / "accesses.bin"
    cmd = firmware.qemu_command(build.elf, target, tmp_path / "out.txt")
    traced = tracing.trace_firmware(build.elf, cmd, "riscv", Naming().ident("profile_hook"), 1, 120,
                                    memtrace.plugin_args(records))
    pcs, addresses = memtrace.read_records(records)
    memory = {b: [j for j, i in enumerate(block.insns) if timing.decode("riscv", i).cls in ("load", "store")]
              for b, block in enumerate(traced.blocks)}
    executed = sum(sum(1 for j in memory[b] if f <= j < f + n) for b, f, n in zip(traced.seq, traced.first, traced.executed))
    assert executed - len(memory[traced.seq[-1]]) <= len(pcs)  # all but maybe the last piece's (QEMU is stopped)
    misses = kernel_misses(traced, memory, pcs, addresses, DataCache(20, 32, 128))
    assert 0 < misses[0] < executed

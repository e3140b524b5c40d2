"""The RISC-V SoC (rtl_sim/soc/, tinycompile.soc): lint-clean glue, the MCU firmware of a small network bit-exact on
the VexRiscv RTL with QEMU's instruction count per kernel, the soc back end's cycles in report.json, and a firmware
that traps or hangs reported in one clear message."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nets import SPECS, random_graph
from tinycompile.accel.config import AccelConfig
from tinycompile.backends.base import Workload
from tinycompile.backends.flow import finish
from tinycompile.backends.registry import get_backend
from tinycompile.mcu.backend import build_and_run
from tinycompile.mcu.firmware import build_config
from tinycompile.mcu.library import compile_graph
from tinycompile.soc import rtl
from tinycompile.soc.estimate import qemu_twin
from tinycompile.soc.run import run_network, soc_config
from tinycompile.soc.runtime import write_runtime
from tinycompile.soc.simulate import run_elf
from tinycompile.targets import load_target

TARGET = "soc-vexriscv"
VECTORS = 16


@pytest.fixture(scope="module")
def small() -> tuple:
    """The mnist1d test network (every MCU op kind) with random weights, lowered once, and 16 random inputs."""
    spec = SPECS["mnist1d"]
    graph = random_graph(spec)
    vectors = np.random.default_rng(0).integers(-128, 128, (VECTORS, *graph.input_shape)).astype(np.int8)
    return spec, graph, vectors, compile_graph(graph)


@pytest.mark.parametrize(("top", "accel_n"), [("tc_soc", 0), ("tc_soc_sim", 0), ("tc_soc", 4), ("tc_soc", 8),
                                              ("tc_soc", 16), ("tc_soc_sim", 8)])
def test_soc_glue_lints_clean(top: str, accel_n: int) -> None:
    """Our SoC Verilog elaborates with -Wall and no warning (the core's own generated Verilog is waived by
    tc_soc.vlt), the synthesizable top and the simulation top, without the accelerator and with it at each array
    size (the fpga target's scratchpads)."""
    from tinycompile.accel.simulate import setup_env
    from tinycompile.soc.rtl import AccelPart

    setup_env()
    files = [str(p) for p in rtl.sources(accel=accel_n > 0) if top == "tc_soc_sim" or "_sim." not in p.name]
    timing = ["--timing", "--timescale", "1ns/1ps"] if top == "tc_soc_sim" else []
    params = AccelPart(AccelConfig.for_array(accel_n), 1 << 16).parameters() if accel_n else {}
    res = subprocess.run(["verilator", "--lint-only", "-Wall", *timing, *(f"-G{k}={v}" for k, v in params.items()),
                          "--top-module", top, *files], capture_output=True, text=True)
    assert res.returncode == 0 and "%Warning" not in res.stderr and "%Error" not in res.stderr, res.stderr[-3000:]


@pytest.mark.slow
def test_network_bit_exact_with_qemus_instruction_count(small: tuple, tmp_path: Path) -> None:
    """The library and harness, linked for the SoC, give the integer reference's outputs for 16 inputs on the RTL,
    and the core's minstret per kernel equals QEMU's count for the same library (built for the SoC's ISA on the
    rv32imc target's machine): the RTL runs the very instruction stream QEMU measures."""
    spec, graph, vectors, compiled = small
    qemu = build_and_run(graph, spec, qemu_twin(load_target(TARGET)), tmp_path / "qemu", vectors, "c",
                         compiled=compiled)
    assert qemu.ok
    res = run_network(graph, spec, load_target(TARGET), tmp_path / "soc", vectors, compiled, counter="minstret")
    assert res.mismatches == 0
    counted = [row["measured_instructions"] for row in qemu.report["layers"] if row["op"] != "flatten"]
    assert res.counts.kernel_instructions[0] == counted
    assert res.counts.total_instructions[0] == qemu.report["measured_instructions"]
    assert all(t > 0 for t in res.counts.total_instructions)  # every input ran (a T line each)


@pytest.mark.slow
def test_soc_backend_reports_cycles_beside_instructions(small: tuple, tmp_path: Path) -> None:
    """`build --target soc-vexriscv --core-only` (the back end and the shared verdict): bit-exact, unit cycles from mcycle, every
    layer's cycles at least its QEMU instruction count (one instruction per cycle at best on this core), the total
    the sum of the layers, and the simulation's speed reported; `simulate` re-runs the folder to the same cycles."""
    spec, graph, vectors, _ = small
    target = load_target(TARGET)
    backend = get_backend("soc")
    backend.check_target(target)
    work = Workload(graph, spec, vectors, "mnist1d (random weights)")
    result = backend.build(work, target, backend.options({"core_only": True}, target), tmp_path)
    report = finish(work, {"model": "test", "format": "spec"}, target, result, tmp_path)
    assert report["bit_exact"] and report["unit"] == "cycles" and report["target"]["kind"] == "soc"
    rows = [r for r in report["layers"] if r["op"] != "flatten"]
    assert all(r["measured"] >= r["qemu_instructions"] > 0 for r in rows)
    assert sum(r["measured"] for r in rows) == report["latency"]["measured"]
    b = report["backend"]
    assert 1.0 <= b["cycles_per_instruction"] < 4.0 and b["sim_cycles_per_second"] > 0
    # the timing model's estimate from QEMU's trace of the same library: within the 10% of the RTL's cycles
    assert abs(b["estimated_cycles"] - report["latency"]["measured"]) <= 0.10 * report["latency"]["measured"], b
    assert b["estimate_error"] == pytest.approx(b["estimated_cycles"] / report["latency"]["measured"] - 1)
    assert sum(r["estimated_cycles"] for r in rows) == pytest.approx(b["estimated_cycles"])
    assert sum(b["estimate_parts"].values()) == pytest.approx(b["estimated_cycles"]) and b["estimate_parts"]["data_cache"] > 0
    assert "estimated cycles: " in "\n".join(backend.summary_lines(report))
    assert (tmp_path / "firmware" / "firmware.elf").is_file() and (tmp_path / "io.npz").is_file()
    # `tinycompile simulate`: the same firmware on the RTL again, the same cycles, a fresh report
    (tmp_path / "report.json").unlink()
    assert backend.owns(tmp_path) and backend.simulate(tmp_path) == 0
    again = json.loads((tmp_path / "report.json").read_text())
    assert again["bit_exact"] and again["latency"]["measured"] == report["latency"]["measured"]
    assert again["backend"]["estimated_cycles"] == b["estimated_cycles"]  # kept in the folder's soc.json
    assert [r["qemu_instructions"] for r in again["layers"]] == [r["qemu_instructions"] for r in report["layers"]]


@pytest.mark.slow
def test_timing_table_prices_the_cores_patterns_as_the_rtl_runs_them(tmp_path: Path) -> None:
    """Every rule of soc-vexriscv's timing table against the RTL: each pattern of tinycompile/soc/microbench.py
    (load and multiply latencies, shifts, division, the store rules, a D$ miss, static branch prediction) costs on
    the core what the model prices it at: to a tenth of a cycle per pattern, or one cycle where the core's cost
    depends on the fetch unit's position (transfers, a replayed load), which the table averages."""
    from tinycompile.mcu.timing import TimingModel
    from tinycompile.soc.microbench import PATTERNS, measure, model_cycles

    target = load_target(TARGET)
    model = TimingModel.from_section(target.raw["timing"], target.path)
    measured = measure(target, tmp_path)
    off = {p.name: (round(measured[p.name], 2), model_cycles(model, p)) for p in PATTERNS
           if abs(measured[p.name] - model_cycles(model, p)) > p.tolerance}
    assert not off, off


def _program(tmp_path: Path, body: str) -> Path:
    """A bare C program (``main`` is ``body``) with the SoC runtime, linked for the soc target's memory map."""
    b = build_config(load_target(TARGET), emulator=False)
    (tmp_path / "main.c").write_text("#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
                                     f"int main(void) {{\n{body}\n}}\n")
    runtime = write_runtime(tmp_path)
    elf = tmp_path / "prog.elf"
    subprocess.run([b["cc"], *b["cflags"], "-O2", "--specs=picolibc.specs", "-o", str(elf), str(tmp_path / "main.c"),
                    str(runtime), f"-Wl,--defsym=__flash={b['flash_origin']:#x}",
                    f"-Wl,--defsym=__flash_size={b['flash_size']:#x}", f"-Wl,--defsym=__ram={b['ram_origin']:#x}",
                    f"-Wl,--defsym=__ram_size={b['ram_size']:#x}"], check=True, capture_output=True)
    return elf


@pytest.mark.slow
def test_unmapped_access_stops_the_run_at_once(tmp_path: Path) -> None:
    """A load from an address with nothing behind it: the SoC latches the address and the test bench stops there,
    with the text printed before it (the core's bus bridge would wait forever on an error, so the SoC acknowledges)."""
    elf = _program(tmp_path, 'printf("before\\n");\nexit((int)*(volatile uint32_t *)0x40000000u);')
    run = run_elf(elf, soc_config(load_target(TARGET)).mem_words, timeout_cycles=1_000_000)
    msg = run.failure(1_000_000)
    assert msg is not None and "accessed 0x40000000, where the SoC has no memory or register" in msg, msg
    assert "before" in msg and not run.exited and run.cycles < 100_000


@pytest.mark.slow
def test_trap_is_reported(tmp_path: Path) -> None:
    """An illegal instruction (custom-0: this core has no custom unit) traps; the runtime's handler prints mcause/mepc/mtval and exits, and the message names
    the cause (2: illegal instruction)."""
    elf = _program(tmp_path, 'printf("before\\n");\n__asm__ volatile(".4byte 0x0000000b");\nexit(0);')
    run = run_elf(elf, soc_config(load_target(TARGET)).mem_words, timeout_cycles=1_000_000)
    msg = run.failure(1_000_000)
    assert msg is not None and "the core trapped (mcause 00000002" in msg and "before" in msg, msg
    assert run.exited and run.cycles < 100_000


@pytest.mark.slow
def test_hang_times_out_with_a_clear_message(tmp_path: Path) -> None:
    """A firmware that never exits is stopped at the time-out, and the message says how long it waited and what it
    printed."""
    elf = _program(tmp_path, 'printf("spinning\\n");\nfor (;;) { __asm__ volatile("nop"); }')
    run = run_elf(elf, soc_config(load_target(TARGET)).mem_words, timeout_cycles=200_000)
    msg = run.failure(200_000)
    assert msg is not None and "did not exit within 200,000 cycles" in msg and "spinning" in msg, msg
    assert not run.exited and run.cycles >= 200_000


@pytest.mark.parametrize(("change", "message"), [
    (lambda raw: raw["soc"].update(core="rocket"), "soc.core must be one of im, imac, but got 'rocket'"),
    (lambda raw: raw["build"].update(cflags=["-march=rv32imc", "-mabi=ilp32"]),
     "the im core runs rv32im code: build.cflags must hold -march=rv32im"),
    (lambda raw: raw["soc"].update(timeout_cycles="long"), "soc.timeout_cycles"),
    (lambda raw: raw["build"].update(flash_origin=0x1000), "build.flash_origin must be 0"),
    (lambda raw: raw["build"].update(ram_origin=0x7FFF0000, ram_size=0x20000), "at or below 0x80000000"),
    (lambda raw: raw["build"].update(ram_size=0x10000), "must end at a power of two"),
    (lambda raw: raw.pop("soc"), "soc"),
    (lambda raw: raw["soc"]["accelerator"].update(array=5), "soc.accelerator.array must be one of 4, 8, 16"),
    (lambda raw: raw["soc"]["accelerator"].update(memory_kb=100), "soc.accelerator.memory_kb must be a power of two"),
    (lambda raw: raw["soc"]["accelerator"].pop("memory_kb"), "soc.accelerator.memory_kb"),
])  # fmt: skip
def test_back_end_refuses_a_bad_soc_target(change, message: str) -> None:
    """A target file whose soc: section or memory map the SoC cannot run is refused with one line naming the key."""
    import copy
    import dataclasses

    from tinycompile.errors import UserError

    target = load_target(TARGET)
    raw = copy.deepcopy(target.raw)
    change(raw)
    bad = dataclasses.replace(target, raw=raw, build=raw["build"])
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        get_backend("soc").check_target(bad)

"""cocotb test run inside the simulator by :mod:`tinycompile.accel.simulate` (not a pytest file)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge


async def read_csr(dut, addr: int) -> int:
    """Read one status/counter register."""
    dut.csr_addr.value = addr
    await ClockCycles(dut.clk, 1)
    await ClockCycles(dut.clk, 1)
    return int(dut.csr_rdata.value)


@cocotb.test()
async def run_jobs(dut) -> None:
    """Run every job of $TC_JOBS: load memory, start, let the clock run free, dump memory."""
    jobs = json.loads(Path(os.environ["TC_JOBS"]).read_text())
    if not jobs:
        # An empty job list would pass having simulated nothing.
        raise RuntimeError(f"{os.environ['TC_JOBS']} lists no job")
    tdir = Path(os.environ["TC_JOBS"]).parent
    Clock(dut.clk, 10, unit="ns").start()
    dut.start.value = 0
    dut.mem_load.value = 0
    dut.mem_dump.value = 0
    dut.csr_addr.value = 0
    dut.prog_base.value = 0
    for k, job in enumerate(jobs):
        dut.rst_n.value = 0
        dut.stall_en.value = int(job["stall"])
        shutil.copyfile(job["hex"], tdir / "mem.hex")
        dut.mem_load.value = 1
        await ClockCycles(dut.clk, 1)
        dut.mem_load.value = 0
        await ClockCycles(dut.clk, 2)
        dut.rst_n.value = 1
        await ClockCycles(dut.clk, 1)
        dut.prog_base.value = job["prog"]
        dut.start.value = 1
        await ClockCycles(dut.clk, 1)
        dut.start.value = 0
        t0 = time.perf_counter()
        if job["reset_after"] is not None:
            await ClockCycles(dut.clk, job["reset_after"])
        else:
            await First(RisingEdge(dut.done), RisingEdge(dut.error), ClockCycles(dut.clk, job["timeout"]))
        wall = time.perf_counter() - t0
        rec = {}
        status = await read_csr(dut, 0)
        names = ["status", "cycles", "mac_cycles", "load_busy", "compute_busy", "store_busy",
                 "instructions", "error_pc"]
        for a, name in enumerate(names):
            rec[name] = status if a == 0 else await read_csr(dut, a)
        rec["done"] = bool(status & 2)
        rec["error"] = bool(status & 4)
        rec["error_code"] = (status >> 4) & 0xF
        rec["wall_s"] = wall
        dut.mem_dump.value = 1
        await ClockCycles(dut.clk, 1)
        dut.mem_dump.value = 0
        await ClockCycles(dut.clk, 1)
        shutil.move(tdir / "dump.hex", job["out"])
        (tdir / f"job{k}.json").write_text(json.dumps(rec))

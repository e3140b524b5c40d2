"""cocotb test run inside the simulator by :mod:`tinycompile.soc.simulate` (not a pytest file): boot the firmware,
collect what it prints, stop on its exit, an access to an unmapped address or the time-out."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
from cocotb.triggers import First, RisingEdge, Timer

PERIOD_NS = 10  # tc_soc_sim's clock


@cocotb.test()
async def run_firmware(dut) -> None:
    """Run the firmware image the plusarg names; write what happened to $TC_SOC_RESULT (JSON)."""
    job = json.loads(Path(os.environ["TC_SOC_JOB"]).read_text())
    text = bytearray()

    async def collect() -> None:
        while True:
            await RisingEdge(dut.tx_valid_o)
            text.append(int(dut.tx_data_o.value))

    # The clock is the simulation top's own (tc_soc_sim): Python only wakes for a printed byte, a fault or the end.
    dut.rst_ni.value = 0
    await Timer(3 * PERIOD_NS, unit="ns")
    dut.rst_ni.value = 1
    cocotb.start_soon(collect())
    t0 = time.perf_counter()
    timeout = Timer(job["timeout_cycles"] * PERIOD_NS, unit="ns")
    # A fault stops the run at once: the core read zeros or wrote nowhere, and what follows would mislead.
    await First(RisingEdge(dut.exit_o), RisingEdge(dut.fault_o), timeout)
    wall = time.perf_counter() - t0
    result = {
        "exited": bool(int(dut.exit_o.value)),
        "exit_code": int(dut.exit_code_o.value),
        "fault": bool(int(dut.fault_o.value)),
        "fault_addr": int(dut.fault_addr_o.value),
        "cycles": int(dut.cycles_o.value),
        "wall_s": wall,
        "text": text.decode("latin-1"),
    }
    Path(job["result"]).write_text(json.dumps(result))

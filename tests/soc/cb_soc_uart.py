"""cocotb bench of the SoC's serial transmitter (run from test_soc_board.py, not collected by pytest): bytes
written as the SoC's TX register writes them (one every other cycle at most, only while ready_o is high) come out
of tx_o as 8N1 frames of exactly ClksPerBit cycles per bit, in order, none lost when the FIFO fills."""

from __future__ import annotations

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

CLKS_PER_BIT = int(os.environ["TC_CLKS_PER_BIT"])


async def _send(dut, data: list[int], stalls: list[int]) -> None:
    """Like tc_soc_io: a write is accepted in a cycle where ready_o is high and pulses valid_i the next cycle."""
    for byte in data:
        while True:
            await RisingEdge(dut.clk_i)
            await ReadOnly()
            ready = int(dut.ready_o.value)
            if not ready:
                stalls.append(1)
                continue
            await RisingEdge(dut.clk_i)
            dut.valid_i.value = 1
            dut.data_i.value = byte
            await RisingEdge(dut.clk_i)
            dut.valid_i.value = 0
            break


async def _receive(dut, count: int) -> list[int]:
    """Decode 8N1 frames: the start bit's falling edge, then every bit sampled at its middle (in clock cycles)."""
    got = []
    while len(got) < count:
        await FallingEdge(dut.tx_o)
        await ClockCycles(dut.clk_i, CLKS_PER_BIT // 2)
        assert int(dut.tx_o.value) == 0, "start bit shorter than half a bit"
        byte = 0
        for i in range(8):
            await ClockCycles(dut.clk_i, CLKS_PER_BIT)
            byte |= int(dut.tx_o.value) << i
        await ClockCycles(dut.clk_i, CLKS_PER_BIT)
        assert int(dut.tx_o.value) == 1, f"no stop bit after byte {len(got)}"
        got.append(byte)
    return got


@cocotb.test()
async def uart_frames(dut) -> None:
    cocotb.start_soon(Clock(dut.clk_i, 10, unit="ns").start())
    dut.valid_i.value = 0
    dut.data_i.value = 0
    dut.rst_ni.value = 0
    await ClockCycles(dut.clk_i, 3)
    dut.rst_ni.value = 1
    await RisingEdge(dut.clk_i)
    assert int(dut.tx_o.value) == 1 and int(dut.busy_o.value) == 0  # idle line
    data = list(random.Random(11).randbytes(40))
    stalls: list[int] = []
    rx = cocotb.start_soon(_receive(dut, len(data)))
    await _send(dut, data, stalls)
    got = await rx
    assert got == data, f"sent {data}, received {got}"
    assert stalls, "the FIFO never filled: back-pressure was not exercised"
    await ClockCycles(dut.clk_i, 2 * CLKS_PER_BIT)
    assert int(dut.busy_o.value) == 0 and int(dut.tx_o.value) == 1

"""The accelerator's road to a real chip: a RISC-V SoC (the VexRiscv core, memory, peripheral registers) simulated
cycle by cycle in Verilator under cocotb, running the MCU back end's firmware (:mod:`tinycompile.mcu`)."""

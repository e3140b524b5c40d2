"""The accelerator on the SoC's bus: the firmware copies a program's memory image into the accelerator's memory
with the C driver, starts it, waits and reads its counters, its error status and the SoC's out-of-range flag."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rtl"))  # the RTL benches' program builders
from programs import TestProgram, conv2d  # noqa: E402
from rtl_helpers import requant_params  # noqa: E402

from tinycompile.accel.assembler import Instr, MemoryImage, assemble  # noqa: E402
from tinycompile.accel.config import AccelConfig  # noqa: E402
from tinycompile.accel.layout import read_tensor  # noqa: E402
from tinycompile.accel.reference import conv2d_ref  # noqa: E402
from tinycompile.accel.simulate import SimJob, run_jobs  # noqa: E402
from tinycompile.soc.accel import run_program  # noqa: E402
from tinycompile.soc.rtl import AccelPart  # noqa: E402
from tinycompile.targets import load_target  # noqa: E402

N = 8
MEM = 1 << 18  # as soc-vexriscv.yaml's accelerator (memory_kb: 256): one Verilator model for every test
PART = AccelPart(AccelConfig.for_array(N), MEM)

pytestmark = pytest.mark.slow


def test_one_layer_from_firmware_is_bit_exact(tmp_path: Path) -> None:
    """A 3x3 stride-2 convolution (the compiler's own program generator): the firmware loads it, runs it and reads
    the output back; equal to the integer reference, and the accelerator takes the cycles it takes alone (its memory
    answers in one cycle in both); the core's polling adds little beyond them."""
    rng = np.random.default_rng(1)
    prog = TestProgram(N, MEM)
    x = rng.integers(-128, 128, (11, 9, 5)).astype(np.int8)
    w = rng.integers(-128, 128, (3, 3, 5, 12)).astype(np.int8)
    b = rng.integers(-3000, 3000, 12)
    q = requant_params(rng, 12)
    out = conv2d(prog, prog.put(x), 7, w, b, q, -20, stride=2, pad=(1, 1, 1, 1), lo=-20)
    pa = prog.finish()
    image = prog.image
    alone = run_jobs([SimJob(image, pa)], n=N)[0]
    assert alone.done and not alone.error
    run = run_program(image.data[: image.top], pa, out.addr, out.nbytes(N), load_target("soc-vexriscv"), PART,
                      tmp_path)
    assert run.outcome == "done" and run.code == 0
    image.data[out.addr: out.addr + out.nbytes(N)] = run.output
    assert np.array_equal(read_tensor(image, out), conv2d_ref(x, w, b, *q, 7, -20, 2, (1, 1, 1, 1), lo=-20))
    assert run.cycles == alone.cycles and run.instructions == alone.instructions
    assert run.cycles <= run.run_cycles < run.cycles + 400  # start, poll, read the counters
    assert run.copy_cycles > image.top // 4  # at least one store per word copied


def test_bad_instruction_is_reported_by_the_firmware(tmp_path: Path) -> None:
    """A program whose first instruction has the illegal opcode 0: the driver returns the accelerator's error with
    its code (1) and the faulting instruction's address instead of waiting for done."""
    image = MemoryImage(N, MEM)
    prog = image.put(np.zeros(64, np.uint8), align=64)
    run = run_program(image.data[: image.top], prog, prog, 32, load_target("soc-vexriscv"), PART, tmp_path)
    assert run.outcome == "accelerator error" and run.code == 1 and run.pc == prog
    assert run.status & 4 and not run.status & 2


def test_out_of_range_address_is_reported_by_the_firmware(tmp_path: Path) -> None:
    """A LOAD from beyond the accelerator's 256 KiB memory: the accelerator itself cannot tell (it sees only its
    port), the SoC flags the first such word address and the driver reports it."""
    image = MemoryImage(N, MEM)
    far = 1 << 20
    prog = image.put(np.frombuffer(assemble([Instr("LOAD", dict(sp=0, base=far, n0=4, d0=N)), Instr("DONE")]),
                                   np.uint8))
    run = run_program(image.data[: image.top], prog, prog, 32, load_target("soc-vexriscv"), PART, tmp_path)
    assert run.outcome == "address beyond the accelerator's memory" and run.fault_addr == far // N

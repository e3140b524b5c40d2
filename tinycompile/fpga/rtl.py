"""Run a compiled network on the accelerator's RTL (Verilator + cocotb, via :mod:`tinycompile.accel.simulate`).

One simulator process runs every job: one whole-network job per test input. Per-layer cycles come from the first
input's run itself: every layer's last barrier writes the accelerator's cycle counter into the program's cycle log
(rtl_sim/ISA.md, SYNC ``stamp``), so a layer's share is its stamp minus the previous one (the last layer's runs to
the end of the run); its MAC-active cycles are the rows its COMPUTEs issue, which is what the counter adds.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinycompile.accel.config import AccelConfig
from tinycompile.accel.isa import ERRORS, INSTR_BYTES
from tinycompile.accel.layout import read_tensor
from tinycompile.fpga.codegen import AccelProgram, layer_marks, mac_rows

MEM_WORDS = 1 << 18  # words of the test bench memory (the cached Verilator builds use this size)


@dataclass
class LayerMeasure:
    """RTL counters attributed to one layer."""

    index: int
    cycles: int
    mac_cycles: int


@dataclass
class RtlRun:
    """Outputs of every op for every input, and the counters."""

    outputs: list[dict[int, np.ndarray]]  # per input: op index -> (h, w, c) int8
    cycles: list[int]  # whole network, per input
    mac_cycles: list[int]
    layers: list[LayerMeasure]
    wall_s: float


class AcceleratorFault(RuntimeError):
    """A run the accelerator did not finish: it raised its error flag, or the cycle budget ran out.

    Carries the accelerator's own status register, error code and fetch PC, so a report can say where it stopped."""

    def __init__(self, run: str, status: int, error_code: int, pc: int, cycles: int, prog_addr: int,
                 timeout_cycles: int | None = None) -> None:
        """``run`` names the run (``input 3``); ``timeout_cycles`` is set when the run timed out without an error."""
        self.run, self.status, self.error_code, self.pc, self.cycles = run, status, error_code, pc, cycles
        self.timeout_cycles = timeout_cycles
        where = f"pc {pc:#x}"
        if pc >= prog_addr and (pc - prog_addr) % INSTR_BYTES == 0:
            where += f" (instruction {(pc - prog_addr) // INSTR_BYTES})"
        if timeout_cycles is None:
            text = (f"the accelerator stopped on {run} with error {error_code} "
                    f"({ERRORS.get(error_code, 'unknown error code')}) at {where} after {cycles:,} cycles (status {status:#x})")
        else:
            text = f"the accelerator did not finish {run} within {timeout_cycles:,} cycles (status {status:#x}, {where})"
        super().__init__(text)

    def to_dict(self) -> dict[str, object]:
        """The fault as report.json records it."""
        return {"message": str(self), "run": self.run, "status": self.status, "error_code": self.error_code,
                "error": ERRORS.get(self.error_code, "unknown error code"), "pc": self.pc, "cycles": self.cycles,
                "timed_out": self.timeout_cycles is not None}


def mem_bytes(n: int) -> int:
    """Bytes of external memory in the simulated system for an N-byte bus."""
    return MEM_WORDS * n


@contextmanager
def _output_to(log: Path | None) -> Iterator[None]:
    """Send the simulator's own chatter (stdout and stderr of this process and its children) to ``log``."""
    if log is None:
        yield
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


@contextmanager
def _build_lock(cfg: AccelConfig) -> Iterator[None]:
    """Serialise runs of one RTL configuration across processes: the first may (re)build the shared Verilator
    model, and two builds writing one build directory at once corrupt it."""
    import hashlib
    import tempfile

    from tinycompile.accel.simulate import tb_name
    from tinycompile.resources import rtl_build_dir

    key = f"tinycompile-{hashlib.sha1(str(rtl_build_dir()).encode()).hexdigest()[:8]}-{tb_name(cfg, MEM_WORDS)}.lock"
    with open(Path(tempfile.gettempdir()) / key, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_network(prog: AccelProgram, inputs: np.ndarray | list[dict[int, np.ndarray]], per_layer: bool = True,
                timeout_cycles: int = 20_000_000, log: Path | None = None) -> RtlRun:
    """Run ``inputs`` (int8 ``(B, H, W, C)``) on the RTL; with ``per_layer`` also measure each layer.

    ``inputs`` may instead be one dict per run of every tensor the program reads (``prog.inputs``: -1 is the network
    input, others are outputs of ops that ran on the host). ``log``: a file for the simulator's console output
    (Verilator build, cocotb), kept off the user's terminal. Raises :class:`AcceleratorFault` if any run stops with
    the accelerator's error flag or does not finish within ``timeout_cycles``.
    """
    from tinycompile.accel.simulate import (  # cocotb is only needed here
        SimJob,
        run_jobs,
    )

    feeds = [{-1: x} for x in inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    jobs = [SimJob(prog.with_inputs(f), prog.prog_addr, timeout_cycles=timeout_cycles) for f in feeds]
    compute = [code.index for code in prog.layers if code.count]
    with _output_to(log), _build_lock(prog.params):  # the RTL built with the sizes the program was cut for
        results = run_jobs(jobs, cfg=prog.params, mem_words=MEM_WORDS)
    for k, r in enumerate(results):
        if not r.done or r.error:
            what = f"input {k}"
            raise AcceleratorFault(what, r.status, r.error_code, r.error_pc, r.cycles, prog.prog_addr,
                                   None if r.error else timeout_cycles)
    outputs = []
    for r in results[: len(feeds)]:
        outputs.append({code.index: read_tensor(r.image, code.out) for code in prog.layers if code.count})
    layers: list[LayerMeasure] = []
    if per_layer:
        stamps = layer_marks(prog, results[0].image)
        ends = [stamps[i] for i in compute[:-1]] + [results[0].cycles]
        prev = 0
        for layer, end in zip(compute, ends):
            layers.append(LayerMeasure(layer, end - prev, mac_rows(prog, layer)))
            prev = end
    return RtlRun(outputs, [r.cycles for r in results[: len(feeds)]], [r.mac_cycles for r in results[: len(feeds)]],
                  layers, sum(r.wall_s for r in results))

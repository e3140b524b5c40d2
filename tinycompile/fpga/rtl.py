"""Run a compiled network on the accelerator's RTL (Verilator + cocotb, via :mod:`tinycompile.accel.simulate`).

One simulator process runs every job: one whole-network job per test input, plus, for per-layer figures, one job
per layer that stops the program right after that layer (a DONE written over its successor's first instruction).
The cycle and MAC counters of consecutive cut runs differ by exactly what that layer cost inside the network.
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

from tinycompile.accel.assembler import MemoryImage
from tinycompile.accel.kernels import AccelConfig
from tinycompile.fpga.codegen import AccelProgram, cut_after, read_tensor

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


def accel_config(prog: AccelProgram) -> AccelConfig:
    """The RTL configuration matching the program's scratchpad sizes."""
    p = prog.params
    return AccelConfig(n=p.n, inp_depth=p.inp_depth, wgt_tiles=p.wgt_tiles, acc_depth=p.acc_depth,
                       out_depth=p.out_depth, param_sets=p.param_sets)


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
    (Verilator build, cocotb), kept off the user's terminal.
    """
    from tinycompile.accel.simulate import (  # cocotb is only needed here
        SimJob,
        run_jobs,
    )

    feeds = [{-1: x} for x in inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    jobs = [SimJob(prog.with_inputs(f), prog.prog_addr, timeout_cycles=timeout_cycles) for f in feeds]
    compute = [code.index for code in prog.layers if code.count]
    cuts = compute[:-1] if per_layer else []
    for layer in cuts:
        img: MemoryImage = prog.with_inputs(feeds[0])
        cut_after(prog, layer, img)
        jobs.append(SimJob(img, prog.prog_addr, timeout_cycles=timeout_cycles))
    with _output_to(log), _build_lock(accel_config(prog)):
        results = run_jobs(jobs, cfg=accel_config(prog), mem_words=MEM_WORDS)
    for k, r in enumerate(results):
        if not r.done or r.error:
            what = f"input {k}" if k < len(feeds) else f"cut after layer {cuts[k - len(feeds)]}"
            raise RuntimeError(f"accelerator run ({what}) did not finish: status={r.status:#x} error_code={r.error_code}"
                               f" pc={r.error_pc:#x} cycles={r.cycles}")
    outputs = []
    for r in results[: len(feeds)]:
        outputs.append({code.index: read_tensor(r.image, code.out) for code in prog.layers if code.count})
    layers: list[LayerMeasure] = []
    if per_layer:
        marks = [(r.cycles, r.mac_cycles) for r in results[len(feeds):]] + [(results[0].cycles, results[0].mac_cycles)]
        prev = (0, 0)
        for layer, (cyc, mac) in zip(compute, marks):
            layers.append(LayerMeasure(layer, cyc - prev[0], mac - prev[1]))
            prev = (cyc, mac)
    return RtlRun(outputs, [r.cycles for r in results[: len(feeds)]], [r.mac_cycles for r in results[: len(feeds)]],
                  layers, sum(r.wall_s for r in results))

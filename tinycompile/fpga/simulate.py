"""Re-run a saved FPGA build on the RTL (the ``simulate`` command): same image, same inputs, fresh counters."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinycompile.errors import UserError
from tinycompile.fileio import write_json
from tinycompile.fpga import artifacts
from tinycompile.fpga.build import check_outputs
from tinycompile.fpga.report import make_report, print_report
from tinycompile.quant import reference
from tinycompile.targets import load_target


def simulate_build(folder: Path) -> int:
    """Run the build folder's inputs on the RTL, compare with the reference, rewrite report.json; 0 iff bit-exact."""
    from tinycompile.console import console
    from tinycompile.fpga.rtl import run_network

    folder = Path(folder)
    doc = artifacts.manifest(folder)
    target_file = Path(doc["target_file"])
    target = load_target(str(target_file) if target_file.is_file() else doc["target"])
    if doc.get("hybrid"):  # layers on the host: recompile from the saved graph (deterministic) and run again
        from tinycompile.fpga.build import build_graph
        from tinycompile.quant.graph import QuantGraph

        report = build_graph(QuantGraph.load(folder / "quant"), target, folder, int(doc["array"]),
                             np.load(folder / "inputs.npy"))
        print_report(report, console())
        return 0 if report["bit_exact"] else 1
    prog, placement, x, graph, doc = artifacts.load(folder)
    if len(x) == 0:
        raise UserError(f"{folder}/inputs.npy holds no inputs")
    console(stderr=True).print(f"[bold]simulate[/] {folder}: {len(x)} inputs on the RTL (N={prog.params.n})")
    run = run_network(prog, x, log=folder / "rtl.log")
    mismatches = check_outputs(run.outputs, reference.run_layers(graph, x))
    report = make_report([(prog, run)], placement, [op.op for op in graph.ops], mismatches, target, len(x))
    write_json(folder / "report.json", report)
    print_report(report, console())
    return 0 if report["bit_exact"] else 1

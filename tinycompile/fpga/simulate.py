"""Re-run a saved FPGA build on the RTL (the ``simulate`` command): same image, same inputs, fresh counters."""

from __future__ import annotations

from pathlib import Path

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
    prog, placement, x, graph, doc = artifacts.load(folder)
    target_file = Path(doc["target_file"])
    target = load_target(str(target_file) if target_file.is_file() else doc["target"])
    if len(x) == 0:
        raise UserError(f"{folder}/inputs.npy holds no inputs")
    console(stderr=True).print(f"[bold]simulate[/] {folder}: {len(x)} inputs on the RTL (N={prog.params.n})")
    run = run_network(prog, x, log=folder / "rtl.log")
    mismatches = check_outputs(prog, run.outputs, reference.run_layers(graph, x))
    report = make_report(prog, placement, run, mismatches, target, len(x))
    write_json(folder / "report.json", report)
    print_report(report, console())
    return 0 if report["bit_exact"] else 1

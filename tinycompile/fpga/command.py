"""The FPGA back end as ``tinycompile.commands.build`` expects it: ``build(request) -> BuildOutcome``."""

from __future__ import annotations

import json

from tinycompile.commands.build import BuildOutcome, BuildRequest
from tinycompile.fpga.build import array_size, build_fpga, build_graph


def build(request: BuildRequest) -> BuildOutcome:
    """Run the FPGA build for one trial or model file (``request.array`` picks the array size, else the target's)."""
    if request.model is not None:
        return _build_model(request)
    code = build_fpga(request.trial, request.target, request.out, request.array, request.vectors)
    report = json.loads((request.out / "report.json").read_text())
    return BuildOutcome(code == 0, report)


def _build_model(request: BuildRequest) -> BuildOutcome:
    """An imported model: its graph as it is; layers the accelerator cannot run go to the host."""
    from tinycompile.console import console
    from tinycompile.fileio import write_json
    from tinycompile.fpga.report import print_report

    imported, target, out = request.model, request.target, request.out
    n = array_size(target, request.array)
    log = console(stderr=True)
    log.print(f"[bold]build[/] {imported.path} ({imported.format}) for {target.name} (accelerator N={n})")
    report = build_graph(imported.graph, target, out, n, request.inputs, log=log)
    report.update(model=str(imported.path), format=imported.format)
    for row in report.get("layers", []):  # none when the accelerator did not finish
        row["source"] = imported.sources[row["index"]]
    write_json(out / "report.json", report)
    print_report(report, console())
    return BuildOutcome(bool(report["bit_exact"]), report)

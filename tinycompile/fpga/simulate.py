"""Re-run a saved FPGA build on the RTL (the ``simulate`` command): same image, same inputs, fresh counters.

The folder's old verdict (``report.json``) is removed before anything else, so a run that does not verify never
leaves a passing one behind: a damaged folder gets one line and exit code 2 and no report; a run the accelerator
does not finish, or whose outputs differ, gets a failing report and exit code 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinycompile.fileio import folder_lock, write_json
from tinycompile.fpga import artifacts
from tinycompile.fpga.build import verify_program
from tinycompile.accel.config import ARRAYS
from tinycompile.fpga.report import print_report
from tinycompile.targets import Target, load_target

REPORT = "report.json"


def simulate_build(folder: Path) -> int:
    """Run the build folder's inputs on the RTL, compare with the reference, rewrite report.json; 0 iff bit-exact."""
    from tinycompile.console import console

    folder = Path(folder)
    if not artifacts.is_build_folder(folder):
        artifacts.manifest(folder)  # refuses a folder that is no build at all, before touching anything in it
    with folder_lock(folder):
        (folder / REPORT).unlink(missing_ok=True)  # the verdict goes first: nothing below may leave it standing
        doc = artifacts.manifest(folder)
        target = _target(folder, doc)
        if doc.get("hybrid"):  # layers on the host: recompile from the saved graph (deterministic) and run again
            from tinycompile.fpga.build import build_graph

            n = doc.get("array")
            if n not in ARRAYS:
                raise artifacts.damaged(folder, f"build.json's array must be one of {ARRAYS}, but got {n!r}")
            graph = artifacts.load_graph(folder)
            report = build_graph(graph, target, folder, n, artifacts.load_inputs(folder, graph))
        else:
            prog, placement, x, graph, doc = artifacts.load(folder)
            console(stderr=True).print(f"[bold]simulate[/] {folder}: {len(x)} inputs on the RTL (N={prog.params.n})")
            report, _ = verify_program(prog, placement, graph, x, target, folder / "rtl.log")
            if report["bit_exact"] and not prog.instrs:  # the accelerator ran what we could not decode: trust neither
                raise artifacts.damaged(folder, "the program in image.bin does not decode, yet the accelerator finished it")
            write_json(folder / REPORT, report)
    print_report(report, console())
    return 0 if report["bit_exact"] else 1


def _target(folder: Path, doc: dict[str, Any]) -> Target:
    """The target the build was made for: its YAML file if it is still there, else the target of that name."""
    name, path = doc.get("target"), doc.get("target_file")
    if not isinstance(name, str) or not isinstance(path, str):
        raise artifacts.damaged(folder, f"build.json must name its target and target_file, but has {name!r} and {path!r}")
    return load_target(path if Path(path).is_file() else name)

"""Re-run a saved FPGA build on the RTL (the ``simulate`` command): same image, same inputs, fresh counters.

The caller (:meth:`tinycompile.backends.fpga.FpgaBackend.simulate`) locks the folder and removes its old verdict
(``report.json``) first, so a run that does not verify never leaves a passing one behind: a damaged folder gets one
line and exit code 2 and no report; a run the accelerator does not finish, or whose outputs differ, a failing report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinycompile.accel.config import ARRAYS
from tinycompile.fpga import artifacts
from tinycompile.fpga.build import FpgaRun, build_graph, final_outputs, verify_program
from tinycompile.quant.graph import QuantGraph
from tinycompile.targets import Target, load_target


def rerun(folder: Path) -> tuple[QuantGraph, np.ndarray, Target, FpgaRun]:
    """Run the build folder's inputs on the RTL again: its graph, inputs, target and the run."""
    from tinycompile.console import console

    doc = artifacts.manifest(folder)
    target = _target(folder, doc)
    if doc.get("hybrid"):  # layers on the host: recompile from the saved graph (deterministic) and run again
        n = doc.get("array")
        if n not in ARRAYS:
            raise artifacts.damaged(folder, f"build.json's array must be one of {ARRAYS}, but got {n!r}")
        graph = artifacts.load_graph(folder)
        x = artifacts.load_inputs(folder, graph)
        return graph, x, target, build_graph(graph, target, folder, n, x)
    prog, placement, x, graph, doc = artifacts.load(folder)
    console(stderr=True).print(f"[bold]simulate[/] {folder}: {len(x)} inputs on the RTL (N={prog.params.n})")
    report, outputs = verify_program(prog, placement, graph, x, target, folder / "rtl.log")
    if report["bit_exact"] and not prog.instrs:  # the accelerator ran what we could not decode: trust neither
        raise artifacts.damaged(folder, "the program in image.bin does not decode, yet the accelerator finished it")
    return graph, x, target, FpgaRun(report, None if outputs is None else final_outputs(graph, outputs))


def _target(folder: Path, doc: dict[str, Any]) -> Target:
    """The target the build was made for: its YAML file if it is still there, else the target of that name."""
    name, path = doc.get("target"), doc.get("target_file")
    if not isinstance(name, str) or not isinstance(path, str):
        raise artifacts.damaged(folder, f"build.json must name its target and target_file, but has {name!r} and {path!r}")
    return load_target(path if Path(path).is_file() else name)

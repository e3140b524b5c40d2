"""The accelerator back end (``kind: fpga``): TVM partitions the graph, the accelerator's program generator compiles
the regions it can run, the RTL runs them in Verilator and the host runs the rest (:mod:`tinycompile.fpga`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tinycompile.accel.config import ARRAYS
from tinycompile.accel.layout import cpad
from tinycompile.arch import WEIGHTED_OPS, Layer, Shape, numel
from tinycompile.backends.base import Backend, BuildResult, Workload
from tinycompile.errors import UserError
from tinycompile.quant.graph import QuantGraph
from tinycompile.targets import Target, require

PARAM_BYTES_PER_CHANNEL = 12  # bias, multiplier and shift, int32 each (one parameter set row per channel)


class FpgaBackend(Backend):
    """tinycompile's int8 accelerator (rtl_sim/) on an FPGA."""

    kind = "fpga"
    title = "fpga targets (the accelerator)"
    defaults = {"array": None}  # None: the target's own array size

    def add_options(self, group: argparse._ArgumentGroup) -> None:
        """``--array``."""
        group.add_argument("--array", type=int, choices=ARRAYS, help="the accelerator's N x N array size "
                           "(default: the target's)")

    def options(self, given: dict[str, Any], target: Target) -> dict[str, Any]:
        """The array size: ``--array`` or the target's, one the RTL elaborates."""
        n = given.get("array")
        n = int(target.accelerator["array"] if n is None else n)
        if n not in ARRAYS:
            raise UserError(f"--array must be one of {', '.join(map(str, ARRAYS))}, but got {n}")
        return {"array": n}

    def check_target(self, target: Target) -> None:
        """The ``accelerator:`` section: array size and memory port width."""
        section = require(target.raw, "accelerator", dict, target.path)
        for key in ("array", "bus_bytes_per_cycle"):
            require(section, key, int, target.path, "accelerator.")
        if section["array"] not in ARRAYS:
            raise UserError(f"{target.path}: key 'accelerator.array' must be one of {', '.join(map(str, ARRAYS))}, "
                            f"but got {section['array']}")

    def layer_cycles(self, layer: Layer, in_shape: Shape, out_shape: Shape, macs: int, target: Target) -> float:
        """The program generator's schedule for the layer, replayed through the accelerator's timing model."""
        from tinycompile.fpga.schedule import fpga_layer_cycles

        return fpga_layer_cycles(layer, in_shape, out_shape, macs, target)

    def constant_bytes(self, layer: Layer, in_shape: Shape, out_shape: Shape, target: Target) -> int:
        """Weights padded to the array's N-channel tiles, and one parameter set row per output channel (before the
        program generator's geometry rewrites, which only drop taps)."""
        if layer.op not in WEIGHTED_OPS:
            return 0
        n = int(target.accelerator["array"])
        cout = cpad(out_shape[0], n)
        kh, kw = layer.kernel
        if layer.op == "dense":
            weights = cpad(numel(in_shape), n) * cout
        elif layer.op == "dwconv":
            weights = kh * kw * cout * n  # diagonal N x N tiles
        else:
            weights = kh * kw * cpad(in_shape[0], n) * cout
        return weights + cout * PARAM_BYTES_PER_CHANNEL

    def placements(self, graph: QuantGraph, target: Target, options: dict[str, Any]) -> list[str]:
        """The accelerator runs what its patterns accept; TVM runs the rest on the host."""
        from tinycompile.fpga.partition import accelerator_reason

        n = options["array"]
        return ["view" if op.op == "flatten" else "host" if accelerator_reason(graph, i, n) else "accelerator"
                for i, op in enumerate(graph.ops)]

    def build(self, work: Workload, target: Target, options: dict[str, Any], out: Path) -> BuildResult:
        """Partition, compile, run every input on the RTL (host layers through TVM), check every layer."""
        from tinycompile.console import console
        from tinycompile.fpga.build import build_graph

        n = options["array"]
        log = console(stderr=True)
        log.print(f"[bold]build[/] {work.label} for {target.name} (accelerator N={n})")
        run = build_graph(work.graph, target, out, n, work.inputs, log=log)
        return result_of(run, work, target)

    def summary_lines(self, report: dict[str, Any]) -> list[str]:
        """Array utilisation, synthesis figures, where the host ran layers."""
        b = report["backend"]
        synth = b["synthesis"]
        synth_text = synth if isinstance(synth, str) else (
            f"ECP5 {synth['ecp5']['luts']} LUT4, {synth['ecp5']['mult18']} MULT18, {synth['ecp5']['bram']} DP16KD"
            + (f"; iCE40 {synth['ice40']['luts']} LUT4" if synth.get("ice40") else "")  # None: an --ecp5-only run
            + " (small-scratchpad build)")
        lines = [f"accelerator N={b['array']}: array utilisation {100 * b['total']['utilisation']:.0f}% (MAC efficiency "
                 f"{100 * b['total']['mac_efficiency']:.0f}%), {b['total']['bytes_moved']:,} bytes moved; every layer "
                 "output checked", f"synthesis for N={b['array']}: {synth_text}"]
        if b["host_layers"]:
            lines.append(f"layers {b['host_layers']} ran on the host (TVM-compiled, checked bit-exact); the cycles are "
                         f"the accelerator's {b['accelerator_regions']} regions only")
        return lines

    def owns(self, folder: Path) -> bool:
        """An FPGA build folder holds its manifest, build.json."""
        from tinycompile.fpga import artifacts

        return artifacts.is_build_folder(folder)

    def simulate(self, folder: Path) -> int:
        """Re-run the folder's program and inputs on the RTL; its old report goes first, a new one replaces it."""
        from tinycompile.backends.flow import finish
        from tinycompile.backends.report import print_report
        from tinycompile.console import console
        from tinycompile.fileio import folder_lock
        from tinycompile.fpga.simulate import rerun
        from tinycompile.quant.graph import spec_of

        folder = Path(folder)
        with folder_lock(folder):
            (folder / "report.json").unlink(missing_ok=True)  # the verdict goes first: nothing below may leave it
            graph, x, target, run = rerun(folder)
            work = Workload(graph, spec_of(graph), x, str(folder))
            source = {k: graph.meta[k] for k in ("trial", "task", "model", "format") if k in graph.meta}
            report = finish(work, source, target, result_of(run, work, target), folder)
        print_report(report, self, console())
        return 0 if report["bit_exact"] else 1


def result_of(run: Any, work: Workload, target: Target) -> BuildResult:
    """The common result of an :class:`tinycompile.fpga.build.FpgaRun` (its report becomes the back-end section)."""
    r = dict(run.report)
    if "error" in r:
        from tinycompile.cost.model import estimate

        return BuildResult(None, "cycles", [], float(estimate(work.spec, target).cycles), None,
                           {"arena_bytes": None, "scratch_bytes": None, "flash_bytes": None},
                           {k: v for k, v in r.items() if k != "error"}, error=r["error"])
    core = ("predicted_cycles", "measured_cycles", "relative_error", "index", "op", "ran_on", "macs")
    layers = [{"index": row["index"], "op": row["op"], "ran_on": row["ran_on"], "macs": row["macs"],
               "predicted": row.get("predicted_cycles"), "measured": row.get("measured_cycles"),
               **{k: v for k, v in row.items() if k not in core}} for row in r.pop("layers")]
    mismatches, memory = r.pop("mismatches"), r.pop("memory")
    total = r.pop("total")
    section = {k: v for k, v in r.items() if k not in ("target", "inputs", "bit_exact", "mismatched_outputs")}
    section["total"] = {k: v for k, v in total.items()  # what the core does not already say
                        if k not in ("cycles", "predicted_cycles", "latency_ms", "energy_uj", "macs")}
    return BuildResult(run.outputs, "cycles", layers, float(total["predicted_cycles"]), float(total["cycles"]),
                       memory, section, layer_mismatches=mismatches)

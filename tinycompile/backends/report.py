"""The one ``report.json`` schema of every build, and its table on the terminal.

Core (every target kind; documented in the README): ``schema``, ``target``, ``graph``, ``inputs``, ``bit_exact``,
``mismatched_inputs``, ``unit``, ``layers`` (predicted vs measured per layer), ``latency``, ``energy``, ``memory``,
and ``backend``: the back end's own section. A build the target did not finish has ``error`` and no measurements.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinycompile.backends.base import Backend, BuildResult, Workload
from tinycompile.targets import Target

SCHEMA = 1


def make_report(work: Workload, target: Target, result: BuildResult, mismatched_inputs: int,
                source: dict[str, Any]) -> dict[str, Any]:
    """report.json of one build: the core from the workload, target and verdict, the back end's result beside it.

    ``source`` says what was built (``{"trial": ..., "task": ...}`` or ``{"model": ..., "format": ...}``, plus
    accuracies where known)."""
    from tinycompile.cost.model import estimate

    cost = estimate(work.spec, target)
    graph = work.graph
    bit_exact = result.error is None and mismatched_inputs == 0 and not result.layer_mismatches
    layers = [{**row, "relative_error": _rel(row.get("predicted"), row.get("measured"))} for row in result.layers]
    for row in layers if work.layer_sources else []:
        row["source"] = work.layer_sources[row["index"]]
    per_ms = 1.0 / (target.clock_mhz * 1e3)  # ms per cycle
    measured_ms = None if result.measured is None else result.measured * per_ms
    mw = target.energy["active_mw"]
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "target": {"name": target.name, "kind": target.kind, "chip": target.chip, "clock_mhz": target.clock_mhz},
        "graph": {"source": source, "ops": len(graph.ops), "macs": int(sum(work.spec.macs())),
                  "params": int(work.spec.params()), "input_shape": list(graph.input_shape),
                  "output_shape": list(graph.output_shape)},
        "inputs": int(len(work.inputs)),
        "bit_exact": bit_exact,
        "mismatched_inputs": int(mismatched_inputs),
        "mismatched_layer_outputs": len(result.layer_mismatches),
        "unit": result.unit,
        "layers": layers,
        "latency": {"predicted": result.predicted, "measured": result.measured,
                    "relative_error": _rel(result.predicted, result.measured), "predicted_ms": result.predicted * per_ms,
                    "measured_ms": measured_ms},
        "energy": {"predicted_uj": result.predicted * per_ms * mw,
                   "measured_uj": None if measured_ms is None else measured_ms * mw, "active_mw": mw,
                   "basis": f"latency x the target file's active power ({mw:g} mW)"
                            + ("" if result.unit == "cycles" else f"; {result.unit} counted as one cycle each")},
        "memory": {**result.memory, "predicted_arena_bytes": cost.arena_bytes, "predicted_peak_sram": cost.peak_sram,
                   "predicted_flash_bytes": cost.flash},
        "backend": {"kind": target.kind, **result.section},
    }
    if result.error is not None:
        report["error"] = result.error
    if result.layer_mismatches:
        report["layer_mismatches"] = result.layer_mismatches[:20]
    return report


def count_mismatches(outputs: np.ndarray | None, expected: np.ndarray) -> int:
    """Inputs whose whole output differs anywhere from the integer reference's (all of them if there are no outputs)."""
    if outputs is None:
        return len(expected)
    got = np.asarray(outputs).reshape(len(outputs), -1)
    return int((got != expected.reshape(len(expected), -1)).any(axis=1).sum())


def print_report(report: dict[str, Any], backend: Backend, out: Any) -> None:
    """The per-layer table and the summary (and the back end's own lines); one line if the target stopped."""
    from rich.table import Table

    if "error" in report:
        out.print(f"[red]not verified[/]: {report['error']['message']}", soft_wrap=True)  # one line, never wrapped
        return
    unit, lat, mem = report["unit"], report["latency"], report["memory"]
    t = Table(title=f"{report['target']['name']}: predicted vs measured {unit}")
    for col in ("#", "op", "ran on", "MACs", "predicted", "measured", "error"):
        t.add_column(col, justify="left" if col in ("op", "ran on") else "right")
    for r in report["layers"]:
        t.add_row(str(r["index"]), r["op"], str(r["ran_on"]), _num(r["macs"]), _num(r["predicted"]),
                  _num(r["measured"]), _pct(r["relative_error"]))
    t.add_row("", "total", "", f"{report['graph']['macs']:,}", _num(lat["predicted"]), _num(lat["measured"]),
              _pct(lat["relative_error"]))
    out.print(t)
    verdict = "[green]bit-exact[/]" if report["bit_exact"] else (
        f"[red]{report['mismatched_inputs']} inputs differ[/]" if report["mismatched_inputs"]
        else f"[red]{report['mismatched_layer_outputs']} layer outputs differ[/]")
    energy = report["energy"]["measured_uj"]
    out.print(f"{report['inputs']} test inputs: {verdict} vs the integer reference | {_num(lat['measured'])} {unit} = "
              f"{lat['measured_ms']:.3f} ms at {report['target']['clock_mhz']:g} MHz | energy ~{energy:.1f} uJ | "
              f"arena {_num(mem.get('arena_bytes'))} B | scratch {_num(mem.get('scratch_bytes'))} B | "
              f"flash {_num(mem.get('flash_bytes'))} B")
    src = report["graph"]["source"]
    if "float_test_accuracy" in src:
        out.print(f"test accuracy: float {100 * src['float_test_accuracy']:.2f}% | int8 {100 * src['int8_test_accuracy']:.2f}%")
    for line in backend.summary_lines(report):
        out.print(line)


def _rel(predicted: float | None, measured: float | None) -> float | None:
    return None if predicted is None or not measured else (predicted - measured) / measured


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:+.1f}%"

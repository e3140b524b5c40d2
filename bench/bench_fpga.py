"""Benchmark of the FPGA back end: DS-CNN (keyword spotting) and a small MNIST-1D network on the accelerator's RTL.

For each network and array size N = 4, 8, 16: build through the whole flow (quantize -> TVM partition -> program ->
Verilator RTL, 16 inputs, bit-exact check), then report total cycles, whole-network MAC-array utilisation (the RTL's
counter: cycles the array was issued a row) and MAC efficiency (useful MACs / N^2 per cycle), latency at the target
clock, energy, the cost model's worst per-layer error, and the speed-up over the MCU back end on cortex-m4
(instructions measured on QEMU, 1 instruction ~ 1 cycle at the M4's clock).

Usage: ``python bench/bench_fpga.py [--arrays 4 8 16] [--no-mcu] [--trial DIR ...]``; writes bench/results/fpga.json
and the figures section of bench/RESULTS_fpga.md. Weights are random (shapes are what matter for cycles); quantization
uses random calibration data. ``--trial`` adds searched models (trial folders such as ``make demo``'s
runs/demo-mnist1d-cortex-m4/best) with their trained weights, quantized on their task's training split and run on its
test inputs, as ``tinycompile build`` does.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_mcu import ds_cnn  # noqa: E402  (the one DS-CNN definition of the benchmarks)

from tinycompile.arch import ArchSpec, Layer
from tinycompile.errors import UserError
from tinycompile.fpga.build import build_graph
from tinycompile.model import SpecNet
from tinycompile.quant.graph import QuantGraph
from tinycompile.quant.quantize import quantize
from tinycompile.targets import Target, load_target
from tinycompile.trial import load_trial

L = Layer
INPUTS = 16
MCU_VECTORS = 4


def mnist1d_small() -> ArchSpec:
    """A small MNIST-1D CNN (conv stem, depthwise-separable block with a residual add, pooling, dense head)."""
    return ArchSpec(
        (1, 1, 40),
        10,
        (
            L("conv", (-1,), channels=16, kernel=(1, 5), stride=(1, 2), padding=(0, 0, 2, 2), relu=True),
            L("dwconv", (0,), kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
            L("conv", (1,), channels=16, kernel=(1, 1)),
            L("add", (2, 0), relu=True),
            L("maxpool", (3,), kernel=(1, 2), stride=(1, 2)),
            L("conv", (4,), channels=32, kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
            L("gap", (5,)),
            L("dense", (6,), channels=10),
        ),
        {"name": "mnist1d-small"},
    )


def random_graph(spec: ArchSpec, seed: int = 0) -> tuple[QuantGraph, np.ndarray]:
    """Quantize random weights with random calibration data; return the graph and int8 test inputs."""
    torch.manual_seed(seed)
    model = SpecNet(spec)
    model.eval()
    data = np.random.default_rng(seed).standard_normal((256 + INPUTS, *spec.input_shape)).astype(np.float32)
    graph = quantize(spec, model, data[:256])
    return graph, graph.quantize_input(data[256:])


def mcu_instructions(graph: QuantGraph, spec: ArchSpec, x: np.ndarray, work: Path, codegen: str) -> dict:
    """Instructions per inference of the MCU back end on cortex-m4 (QEMU), or why it was not measured."""
    try:
        from tinycompile.mcu import backend

        target = load_target("cortex-m4")
        backend.check_tools(target)
        t0 = time.perf_counter()
        res = backend.build_and_run(graph, spec, target, work / f"mcu-{codegen}", x[:MCU_VECTORS], codegen)
        return {"codegen": codegen, "instructions": res.report["measured_instructions"], "bit_exact": res.ok,
                "clock_mhz": target.clock_mhz, "seconds": round(time.perf_counter() - t0, 1)}
    except Exception as exc:  # noqa: BLE001 - the benchmark reports what it could not measure and goes on
        return {"codegen": codegen, "instructions": None, "not_measured": f"{type(exc).__name__}: {exc}"[:300]}


def workloads(trials: list[Path]) -> list[tuple[str, ArchSpec, QuantGraph, np.ndarray]]:
    """(name, spec, graph, int8 inputs) of the bench's networks, then of each searched trial folder."""
    from tinycompile.backends.flow import trial_workload

    out = []
    for spec in (ds_cnn(), mnist1d_small()):
        out.append((spec.meta["name"], spec, *random_graph(spec)))
    for folder in trials:
        work, _ = trial_workload(folder, INPUTS)
        out.append((f"searched: {folder}", work.spec, work.graph, work.inputs))
    return out


def run(arrays: list[int], with_mcu: bool, trials: list[Path]) -> dict:
    """Every network at every array size; returns the results document."""
    fpga = load_target("fpga")
    results: dict = {"date": datetime.date.today().isoformat(), "command": "python bench/bench_fpga.py " + " ".join(sys.argv[1:]),
                     "target": fpga.name, "clock_mhz": fpga.clock_mhz, "inputs": INPUTS, "networks": {}}
    with tempfile.TemporaryDirectory(prefix="bench_fpga_") as tmp:
        work = Path(tmp)
        for i, (name, spec, graph, x) in enumerate(workloads(trials)):
            entry: dict = {"macs": int(sum(spec.macs())), "arrays": {}}
            if with_mcu:
                entry["cortex_m4"] = [mcu_instructions(graph, spec, x, work / f"net{i}", cg) for cg in ("llvm", "c")]
            for n in arrays:
                target = _with_array(fpga, n)
                t0 = time.perf_counter()
                rep = build_graph(graph, target, work / f"net{i}-n{n}", n, x).report
                tot = rep["total"]
                errs = [r["relative_error"] for r in rep["layers"] if r.get("relative_error") is not None]
                entry["arrays"][str(n)] = {
                    "bit_exact": rep["bit_exact"], "cycles": tot["cycles"], "predicted_cycles": tot["predicted_cycles"],
                    "utilisation": tot["utilisation"], "mac_efficiency": tot["mac_efficiency"],
                    "latency_ms": tot["latency_ms"], "energy_uj": tot["energy_uj"], "bytes_moved": tot["bytes_moved"],
                    "max_layer_error": max(map(abs, errs)), "instructions": sum(r.get("instructions") or 0 for r in rep["layers"]),
                    "layers": [{k: r.get(k) for k in ("index", "op", "predicted_cycles", "measured_cycles", "relative_error",
                                                      "utilisation", "mac_efficiency", "bytes_moved")} for r in rep["layers"]],
                    "synthesis": rep["synthesis"], "seconds": round(time.perf_counter() - t0, 1),
                }  # fmt: skip
                _speedups(entry, n)
            results["networks"][name] = entry
    return results


def _with_array(target: Target, n: int) -> Target:
    return replace(target, accelerator={**target.accelerator, "array": n, "bus_bytes_per_cycle": n})


def _speedups(entry: dict, n: int) -> None:
    a = entry["arrays"][str(n)]
    a["speedup_vs_cortex_m4"] = {}
    for m in entry.get("cortex_m4", []):
        if m.get("instructions"):
            mcu_ms = m["instructions"] / (m["clock_mhz"] * 1e3)
            a["speedup_vs_cortex_m4"][m["codegen"]] = {"latency_ratio": mcu_ms / a["latency_ms"],
                                                       "cycle_ratio": m["instructions"] / a["cycles"]}


def print_table(results: dict) -> None:
    """One row per network and array size."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"FPGA accelerator on the RTL ({results['clock_mhz']:g} MHz), {results['inputs']} inputs each, bit-exact checked")
    for col in ("network", "N", "exact", "cycles", "util.", "MAC eff.", "latency ms", "energy uJ", "max layer err",
                "M4 instr (llvm)", "speed-up (llvm)", "M4 instr (C)", "speed-up (C)"):
        t.add_column(col, justify="left" if col == "network" else "right")
    for name, e in results["networks"].items():
        mcu = {m["codegen"]: m for m in e.get("cortex_m4", [])}
        for n, a in e["arrays"].items():
            row = [name, n, "yes" if a["bit_exact"] else "NO", f"{a['cycles']:,}", f"{100 * a['utilisation']:.0f}%",
                   f"{100 * a['mac_efficiency']:.0f}%", f"{a['latency_ms']:.3f}", f"{a['energy_uj']:.1f}",
                   f"{100 * a['max_layer_error']:.1f}%"]
            for cg in ("llvm", "c"):
                m = mcu.get(cg, {})
                s = a["speedup_vs_cortex_m4"].get(cg)
                row += [f"{m['instructions']:,.0f}" if m.get("instructions") else "not measured",
                        f"{s['latency_ratio']:.1f}x" if s else "-"]
            t.add_row(*row)
    Console(width=200).print(t)


def write_markdown(results: dict, path: Path) -> None:
    """The figures section of RESULTS_fpga.md (the text above the marker is kept)."""
    marker = "<!-- figures: written by bench/bench_fpga.py -->"
    head = path.read_text().split(marker)[0] if path.is_file() else "# FPGA back end: results\n\n"
    lines = [marker, "", f"Date: {results['date']}. Command: `{results['command']}`.", "",
             "| network | N | bit-exact | cycles | utilisation | MAC efficiency | latency (ms) | energy (uJ) | max layer error | M4 instr (llvm / C) | speed-up vs M4 (llvm / C) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in results["networks"].items():
        mcu = {m["codegen"]: m for m in e.get("cortex_m4", [])}
        instr = " / ".join(f"{mcu[c]['instructions']:,.0f}" if mcu.get(c, {}).get("instructions") else "not measured" for c in ("llvm", "c"))
        for n, a in e["arrays"].items():
            sp = " / ".join(f"{a['speedup_vs_cortex_m4'][c]['latency_ratio']:.1f}x" if c in a["speedup_vs_cortex_m4"] else "-" for c in ("llvm", "c"))
            lines.append(f"| {name} | {n} | {'yes' if a['bit_exact'] else 'NO'} | {a['cycles']:,} | {100 * a['utilisation']:.1f}% | "
                         f"{100 * a['mac_efficiency']:.1f}% | {a['latency_ms']:.3f} | {a['energy_uj']:.1f} | {100 * a['max_layer_error']:.1f}% | {instr} | {sp} |")
    lines += ["", "Per-layer cost-model error (predicted vs RTL cycles):", ""]
    for name, e in results["networks"].items():
        for n, a in e["arrays"].items():
            cells = ", ".join(f"{r['index']}:{r['op']} {100 * r['relative_error']:+.1f}%" for r in a["layers"] if r.get("relative_error") is not None)
            lines.append(f"- {name}, N={n}: {cells}")
    path.write_text(head.rstrip() + "\n\n" + "\n".join(lines) + "\n")


def main() -> int:
    """Run, print, write bench/results/fpga.json and bench/RESULTS_fpga.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arrays", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--no-mcu", action="store_true", help="skip the cortex-m4 comparison")
    ap.add_argument("--trial", type=Path, nargs="*", default=[],
                    help="searched trial folders to add (spec.json, weights.pt, metrics.json)")
    args = ap.parse_args()
    for folder in args.trial:  # a bad folder fails here, in one line, not after the bench's own networks have run
        try:
            load_trial(folder)
        except UserError as exc:
            ap.error(f"--trial: {exc}")
    from tinycompile.accel.simulate import setup_env

    setup_env()
    results = run(args.arrays, not args.no_mcu, args.trial)
    out = ROOT / "bench" / "results" / "fpga.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    write_markdown(results, ROOT / "bench" / "RESULTS_fpga.md")
    print_table(results)
    exact = all(a["bit_exact"] for e in results["networks"].values() for a in e["arrays"].values())
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())

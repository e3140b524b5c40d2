"""DS-CNN (the MLPerf Tiny KWS shape, random int8 weights) on the RISC-V SoC's RTL: the library and harness (built for
the SoC's ISA) run on the VexRiscv core in Verilator (cycles from mcycle, exact) beside QEMU's instruction counts of the
same library, the rv32imc target's cycle estimate (its timing: table, GD32VF103's core, over QEMU's instruction trace)
and the soc-vexriscv target's (a model of this core and its caches over QEMU's trace and data addresses), per layer; the
simulation's speed; and the same network built for the SoC with its accelerator (N = 8, `build --target soc-vexriscv`:
every layer it can run on it, the rest on the core, one firmware), the inference's cycles split between the accelerator
and the core's work (input written, layers started and polled, core layers, output read back); ``--model FILE`` builds a
model file the same way (MLPerf Tiny's KWS reference model: its softmax on the core).

Run: ``.venv/bin/python bench/bench_soc.py [--vectors 2] [--net NAME] [--model FILE]`` -> a table,
bench/results/soc.json (with
``--net``, another network on the core alone -> bench/results/soc-NAME.json: ``held-out``, the cost model's
held-out network of tests/mcu/test_calibration.py, or a network of bench/calibrate_mcu.py by its name).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mcu import ds_cnn  # noqa: E402  (the one DS-CNN definition of the benchmarks)

from tinycompile.arch import ArchSpec  # noqa: E402
from tinycompile.backends.base import Workload  # noqa: E402
from tinycompile.backends.flow import finish  # noqa: E402
from tinycompile.backends.registry import get_backend  # noqa: E402
from tinycompile.mcu.backend import build_and_run  # noqa: E402
from tinycompile.mcu.library import compile_graph  # noqa: E402
from tinycompile.model import SpecNet  # noqa: E402
from tinycompile.quant.graph import QuantGraph  # noqa: E402
from tinycompile.quant.quantize import quantize  # noqa: E402
from tinycompile.soc.estimate import estimate_kernels, qemu_twin  # noqa: E402
from tinycompile.soc.run import per_layer, run_network  # noqa: E402
from tinycompile.targets import Target, load_target  # noqa: E402

ROOT = Path(__file__).resolve().parent
ANCHORS = {"CFU Playground KWS on VexRiscv, no CFU (Arty A7, cycles)": 87_000_000,
           "CFU Playground KWS on VexRiscv + CFU (cycles)": 9_800_000}


def main(argv: list[str] | None = None) -> int:
    """Build DS-CNN once, run it on QEMU and on the SoC's RTL, print and save per-layer figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, default=2, help="inputs run on both (default 2: ~16 M cycles each)")
    parser.add_argument("--net", default="ds-cnn", help="ds-cnn (default), held-out, or a calibrate_mcu.py network")
    parser.add_argument("--model", type=Path, help="also build this model file (e.g. MLPerf Tiny's kws_ref_model.tflite) "
                        "for the SoC with its accelerator, as `tinycompile build FILE --target soc-vexriscv` does")
    args = parser.parse_args(argv)
    spec = network(args.net)
    torch.manual_seed(0)
    model = SpecNet(spec).eval()
    calib = np.random.default_rng(0).normal(0, 1, (64, *spec.input_shape)).astype(np.float32)
    graph = quantize(spec, model, calib)
    vectors = graph.quantize_input(calib[: args.vectors])
    compiled = compile_graph(graph)
    soc_target = load_target("soc-vexriscv")
    twin = qemu_twin(soc_target)  # QEMU running the SoC's own code
    with tempfile.TemporaryDirectory() as tmp:
        qemu = build_and_run(graph, spec, twin, Path(tmp) / "qemu", vectors, "c",
                             compiled=compiled, trace=True)
        t0 = time.perf_counter()
        soc = run_network(graph, spec, soc_target, Path(tmp) / "soc", vectors, compiled)
        soc_wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        kernels = estimate_kernels(qemu.elf, twin, soc.elf, soc_target, len(soc.library.info.kernels))
        estimate_seconds = time.perf_counter() - t0
        accel = None if args.net != "ds-cnn" else with_accelerator(graph, spec, soc_target, Path(tmp) / "acc")
        imported = None if args.model is None else build_model(args.model, Path(tmp) / "model")
    kernel_ops = soc.library.info.kernel_ops
    cycles = per_layer(kernel_ops, soc.counts.kernel_instructions[0], len(spec.layers))
    soc_est = per_layer(kernel_ops, [k.cycles for k in kernels], len(spec.layers))
    rows = []
    for row, cyc, sest in zip(qemu.report["layers"], cycles, soc_est):
        if row["op"] in ("flatten", "reshape") or cyc is None:
            continue
        instr, est = row["measured_instructions"], row["estimated_cycles"]
        rows.append({"index": row["index"], "op": row["op"], "macs": row["macs"], "qemu_instructions": instr,
                     "rtl_cycles": cyc, "cycles_per_instruction": cyc / instr,
                     "rv32imc_estimated_cycles": est, "estimate_error": (est - cyc) / cyc if est else None,
                     "soc_estimated_cycles": sest, "soc_estimate_error": (sest - cyc) / cyc if sest else None})
    total_cyc = float(soc.counts.total_instructions[0])
    total_instr = float(qemu.report["measured_instructions"])
    total_est = qemu.report["estimated_cycles"]
    total_soc = float(sum(k.cycles for k in kernels))
    macs = int(sum(spec.macs()))
    title = "DS-CNN" if args.net == "ds-cnn" else args.net
    table = Table(title=f"{title} on the VexRiscv SoC (RTL) vs QEMU, {macs:,} MACs, first input")
    for col in ("#", "op", "QEMU instr", "RTL cycles", "cyc/instr", "rv32imc est.", "error", "soc-vexriscv est.",
                "error "):
        table.add_column(col, justify="left" if col == "op" else "right")
    for r in rows:
        err = "-" if r["estimate_error"] is None else f"{100 * r['estimate_error']:+.1f}%"
        serr = "-" if r["soc_estimate_error"] is None else f"{100 * r['soc_estimate_error']:+.1f}%"
        table.add_row(str(r["index"]), r["op"], f"{r['qemu_instructions']:,.0f}", f"{r['rtl_cycles']:,.0f}",
                      f"{r['cycles_per_instruction']:.2f}", f"{r['rv32imc_estimated_cycles']:,.0f}", err,
                      f"{r['soc_estimated_cycles']:,.0f}", serr)
    table.add_row("", "total", f"{total_instr:,.0f}", f"{total_cyc:,.0f}", f"{total_cyc / total_instr:.2f}",
                  f"{total_est:,.0f}", f"{100 * (total_est - total_cyc) / total_cyc:+.1f}%", f"{total_soc:,.0f}",
                  f"{100 * (total_soc - total_cyc) / total_cyc:+.1f}%")
    console = Console(width=140)
    console.print(table)
    speed = soc.run.cycles_per_second
    console.print(f"bit-exact: SoC {soc.mismatches == 0} ({len(vectors)} inputs), QEMU {qemu.ok} | simulated "
                  f"{soc.run.cycles:,} cycles (boot, {len(vectors)} inferences, printing) in {soc.run.wall_s:.1f} s: "
                  f"{speed:,.0f} cycles/s ({soc_wall:.1f} s with the model's start-up and the firmware build)")
    parts = {name: float(sum(getattr(k, attr) for k in kernels)) for name, attr in (
        ("issue", "issue"), ("branches", "branches"), ("instruction_cache", "fetch"), ("data_cache", "data"))}
    console.print("soc-vexriscv estimate = " + " + ".join(f"{k} {v:,.0f}" for k, v in parts.items())
                  + f" ({estimate_seconds:.1f} s: QEMU trace with data addresses, model)")
    out = {"date": date.today().isoformat(), "network": args.net, "command": "python bench/bench_soc.py"
           + ("" if args.vectors == 2 else f" --vectors {args.vectors}") + ("" if args.net == "ds-cnn" else f" --net {args.net}"),
           "macs": macs, "vectors": len(vectors),
           "core": f"{soc_target.chip}: 4 KiB I$ + 4 KiB D$, 2-cycle Wishbone SRAM",
           "bit_exact": soc.mismatches == 0 and qemu.ok, "rtl_cycles": total_cyc, "qemu_instructions": total_instr,
           "cycles_per_instruction": total_cyc / total_instr, "rv32imc_estimated_cycles": total_est,
           "soc_estimated_cycles": total_soc, "soc_estimate_error": (total_soc - total_cyc) / total_cyc,
           "soc_estimate_parts": parts, "soc_estimate_seconds": round(estimate_seconds, 2),
           "cycles_spread": [min(soc.counts.total_instructions), max(soc.counts.total_instructions)],
           "sim_cycles": soc.run.cycles, "sim_seconds": round(soc.run.wall_s, 2),
           "sim_cycles_per_second": round(speed), "wall_seconds_with_startup": round(soc_wall, 2),
           "anchors": ANCHORS, "layers": rows}
    (ROOT / "results").mkdir(exist_ok=True)
    if accel is None:
        (ROOT / "results" / f"soc-{args.net}.json").write_text(json.dumps(out, indent=1) + "\n")
        return 0 if out["bit_exact"] else 1
    out["with_accelerator"] = accel_summary(accel, console, "DS-CNN (random weights, no softmax)")
    if imported is not None:
        out["model"] = {"file": args.model.name, **accel_summary(imported, console, args.model.name)}
        out["command"] += f" --model {args.model}"
    for name, value in ANCHORS.items():
        console.print(f"anchor: {name}: {value:,}")
    (ROOT / "results" / "soc.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0 if out["bit_exact"] and accel["bit_exact"] and (imported is None or imported["bit_exact"]) else 1


def with_accelerator(graph: QuantGraph, spec: ArchSpec, target: Target, folder: Path) -> dict:
    """The network on the SoC with its accelerator (``build --target soc-vexriscv``: the soc back end's system path,
    16 random inputs): its report."""
    backend = get_backend("soc")
    x = np.random.default_rng(1).integers(-128, 128, (16, *graph.input_shape)).astype(np.int8)
    work = Workload(graph, spec, x, "DS-CNN")
    result = backend.build(work, target, backend.options({}, target), folder)
    return finish(work, {"model": "ds-cnn", "format": "spec"}, target, result, folder)


def build_model(path: Path, folder: Path) -> dict:
    """``tinycompile build PATH --target soc-vexriscv`` (the accelerator at the target's N, 16 inputs): its report."""
    from tinycompile.cli import main as cli

    cli(["build", str(path), "--target", "soc-vexriscv", "-o", str(folder), "--vectors", "16"])
    return json.loads((folder / "report.json").read_text())


def accel_summary(report: dict, console: Console, title: str) -> dict:
    """Print and return the whole inference's split between the accelerator and the core (first input)."""
    a = report["backend"]["accelerator"]
    total = report["latency"]["measured"]
    on = {r["ran_on"] for r in report["layers"]}
    console.print(f"{title} on the SoC with its accelerator (N = {a['array']}, {report['inputs']} inputs, bit-exact "
                  f"{report['bit_exact']}): {total:,.0f} cycles per inference = accelerator {a['accelerator_cycles']:,} + "
                  f"core layers {a['core_layer_cycles']:,} + input written {a['input_cycles']:,} + starting and "
                  f"polling {a['driver_cycles']:,} + copies {a['copy_cycles']:,} + output read {a['output_cycles']:,}: "
                  f"{a['vs_accelerator_alone']:.2f}x the accelerator alone ({a['inference_cycles']:,} = "
                  f"{a['inference_vs_accelerator_alone']:.2f}x with the input already in place, as MLPerf Tiny times "
                  f"an inference); predicted {report['latency']['predicted']:,.0f}"
                  f"{'' if 'core' not in on else ' (layers on the core: ' + ', '.join(r['op'] for r in report['layers'] if r['ran_on'] == 'core') + ')'}")
    return {"bit_exact": report["bit_exact"], "cycles": total, "predicted_cycles": report["latency"]["predicted"],
            **{k: a[k] for k in ("array", "accelerator_cycles", "core_layer_cycles", "input_cycles", "driver_cycles",
                                 "copy_cycles", "output_cycles", "vs_accelerator_alone", "inference_cycles",
                                 "inference_vs_accelerator_alone", "mac_efficiency",
                                 "boot_copy_cycles")},
            "layers": [{k: r.get(k) for k in ("index", "op", "ran_on", "measured", "accelerator_cycles", "predicted")}
                       for r in report["layers"]]}


def network(name: str) -> ArchSpec:
    """The network ``--net`` names."""
    if name == "ds-cnn":
        return ds_cnn()
    if name == "held-out":
        sys.path.insert(0, str(ROOT.parent / "tests" / "mcu"))
        from test_calibration import HELD_OUT

        return HELD_OUT
    from calibrate_mcu import networks

    found = dict(networks())
    if name not in found:
        raise SystemExit(f"unknown network {name!r}: ds-cnn, held-out or one of {', '.join(found)}")
    return found[name]


if __name__ == "__main__":
    sys.exit(main())

"""DS-CNN (the MLPerf Tiny KWS shape, random int8 weights) on the RISC-V SoC's RTL: the rv32imc library and harness
run on the VexRiscv core in Verilator (cycles from mcycle, exact) beside QEMU's instruction counts of the same
library, the rv32imc target's cycle estimate (its timing: table, GD32VF103's core, over QEMU's instruction trace)
and the soc-vexriscv target's (a model of this core and its caches over QEMU's trace and data addresses), per layer;
the simulation's speed; and the same network with every layer on the accelerator (N = 8) on the SoC's bus, driven by
the core (input written, program started and polled, output read back), beside the accelerator's own cycles.

Run: ``.venv/bin/python bench/bench_soc.py [--vectors 2] [--net NAME]`` -> a table, bench/results/soc.json (with
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
from tinycompile.mcu.backend import build_and_run  # noqa: E402
from tinycompile.mcu.library import compile_graph  # noqa: E402
from tinycompile.model import SpecNet  # noqa: E402
from tinycompile.quant.quantize import quantize  # noqa: E402
from tinycompile.soc.network import compile_all_on_accelerator  # noqa: E402
from tinycompile.soc.network import run_network as run_on_accelerator  # noqa: E402
from tinycompile.soc.estimate import estimate_kernels  # noqa: E402
from tinycompile.soc.run import per_layer, run_network  # noqa: E402
from tinycompile.targets import load_target  # noqa: E402

ROOT = Path(__file__).resolve().parent
ANCHORS = {"CFU Playground KWS on VexRiscv, no CFU (Arty A7, cycles)": 87_000_000,
           "CFU Playground KWS on VexRiscv + CFU (cycles)": 9_800_000}


def main(argv: list[str] | None = None) -> int:
    """Build DS-CNN once, run it on QEMU (rv32imc) and on the SoC's RTL, print and save per-layer figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, default=2, help="inputs run on both (default 2: ~16 M cycles each)")
    parser.add_argument("--net", default="ds-cnn", help="ds-cnn (default), held-out, or a calibrate_mcu.py network")
    args = parser.parse_args(argv)
    spec = network(args.net)
    torch.manual_seed(0)
    model = SpecNet(spec).eval()
    calib = np.random.default_rng(0).normal(0, 1, (64, *spec.input_shape)).astype(np.float32)
    graph = quantize(spec, model, calib)
    vectors = graph.quantize_input(calib[: args.vectors])
    compiled = compile_graph(graph)
    soc_target = load_target("soc-vexriscv")
    with tempfile.TemporaryDirectory() as tmp:
        qemu = build_and_run(graph, spec, load_target("rv32imc"), Path(tmp) / "qemu", vectors, "c",
                             compiled=compiled, trace=True)
        t0 = time.perf_counter()
        soc = run_network(graph, spec, soc_target, Path(tmp) / "soc", vectors, compiled)
        soc_wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        kernels = estimate_kernels(qemu.elf, load_target("rv32imc"), soc.elf, soc_target, len(soc.library.info.kernels))
        estimate_seconds = time.perf_counter() - t0
        accel = None if args.net != "ds-cnn" else run_on_accelerator(
            graph, compile_all_on_accelerator(graph, 8), vectors, soc_target, Path(tmp) / "acc")
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
    table = Table(title=f"{title} on the VexRiscv SoC (RTL) vs QEMU rv32imc, {macs:,} MACs, first input")
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
           "core": "VexRiscv RV32IMAC, 4 KiB I$ + 4 KiB D$, 2-cycle Wishbone SRAM",
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
    acc_ok = bool(np.array_equal(accel.outputs.reshape(len(vectors), -1), soc.expected)) and accel.rc == [0] * len(vectors)
    core, acc = accel.core_cycles[-1], accel.accel_cycles[-1]
    console.print(f"with the accelerator (N = 8, every layer on it), last input: {core:,} core cycles = input written "
                  f"{accel.input_cycles[-1]:,} + run and poll {accel.run_cycles[-1]:,} + output read "
                  f"{accel.output_cycles[-1]:,}; the accelerator's own counter {acc:,} ({core / acc:.2f}x); image "
                  f"copied in once at boot: {accel.boot_copy_cycles:,} cycles | bit-exact {acc_ok}")
    for name, value in ANCHORS.items():
        console.print(f"anchor: {name}: {value:,}")
    out.update({"with_accelerator": {"array": 8, "bit_exact": acc_ok, "core_cycles": accel.core_cycles,
                                "accelerator_cycles": accel.accel_cycles, "input_cycles": accel.input_cycles,
                                "run_and_poll_cycles": accel.run_cycles, "output_cycles": accel.output_cycles,
                                "core_over_accelerator": core / acc, "boot_copy_cycles": accel.boot_copy_cycles}})
    (ROOT / "results" / "soc.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0 if out["bit_exact"] and acc_ok else 1


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

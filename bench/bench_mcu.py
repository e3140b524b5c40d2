"""MLPerf Tiny DS-CNN keyword spotting (random int8 weights) through the MCU back end on QEMU: instructions per inference,
and the cycles estimated from the first input's executed instruction stream with each target's ``timing:`` table.

Run: ``.venv/bin/python bench/bench_mcu.py [--runs cortex-m4:llvm ...]`` -> a table, bench/results/mcu.json. The
anchors (``ANCHORS``): MLPerf Tiny v1.2 closed-division KWS latencies as cycles (latency x clock) and CMSIS-NN's
DS-CNN measured on this QEMU, instructions counted the same way (the project's anchor measurements of 2026-11-25).
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

from tinycompile.arch import ArchSpec, Layer, same_padding
from tinycompile.cost import memory
from tinycompile.mcu.backend import build_and_run
from tinycompile.mcu.library import compile_graph
from tinycompile.model import SpecNet
from tinycompile.quant.quantize import quantize
from tinycompile.targets import load_target

ROOT = Path(__file__).resolve().parent
ANCHORS = {
    "CMSIS-NN on this QEMU (M4, instructions)": 7_798_120,
    "ST X-CUBE-AI, MLPerf Tiny (M4 cycles, 43.19 ms @120 MHz)": 5_180_000,
    "TFLite Micro (M4 cycles, 182 ms @120 MHz)": 21_840_000,
    "microTVM + CMSIS-NN (M4 cycles, 99.8 ms)": 11_976_000,
    "fastest published (Plumerai, M4 cycles, 47.8 ms)": 5_736_000,
}
RUNS = [(t, c) for t in ("cortex-m4", "rv32imc", "cortex-m7", "cortex-m55") for c in ("c", "llvm")]
# CMSIS-NN's per-layer figures (-Ofast) on the same QEMU, per layer of each type (the anchor measurements).
CMSIS_NN_PER_LAYER = {"conv0": 1_076_680, "dwconv": 598_170, "pointwise": 1_068_930, "avgpool": 51_000, "dense": 2_200}


def layer_type(index: int, op: str) -> str:
    """DS-CNN layer types as the anchor measurements name them: conv0, dwconv, pointwise, avgpool, dense."""
    if op == "conv":
        return "conv0" if index == 0 else "pointwise"
    return op


def per_type(per_layer: list) -> dict:
    """Instructions per layer of each type (the mean over the layers of that type)."""
    groups: dict[str, list[float]] = {}
    for i, (op, count) in enumerate(per_layer):
        if op != "flatten":
            groups.setdefault(layer_type(i, op), []).append(float(count))
    return {k: sum(v) / len(v) for k, v in groups.items()}


def ds_cnn() -> ArchSpec:
    """DS-CNN as an ArchSpec: input (1, 49, 10); conv 10x4 s2 SAME 64; 4x (dw 3x3 + pw 64); avgpool 25x5; fc 12."""
    pt, pb = same_padding(49, 10, 2)
    pl, pr = same_padding(10, 4, 2)
    layers = [Layer("conv", (-1,), channels=64, kernel=(10, 4), stride=(2, 2), padding=(pt, pb, pl, pr), relu=True)]
    for _ in range(4):
        layers.append(Layer("dwconv", (len(layers) - 1,), kernel=(3, 3), padding=(1, 1, 1, 1), relu=True))
        layers.append(Layer("conv", (len(layers) - 1,), channels=64, kernel=(1, 1), relu=True))
    layers.append(Layer("avgpool", (len(layers) - 1,), kernel=(25, 5), stride=(25, 5)))
    layers.append(Layer("flatten", (len(layers) - 1,)))
    layers.append(Layer("dense", (len(layers) - 1,), channels=12))
    return ArchSpec((1, 49, 10), 12, tuple(layers), {"name": "ds-cnn-kws"})


def vww() -> ArchSpec:
    """MLPerf Tiny visual wake words' shape (MobileNetV1-0.25, 96x96x3): conv 3x3 s2 8, 13 depthwise-separable blocks
    (16, 32, 32, 64, 64, 128 x6, 256; stride 2 where MobileNetV1 has it), global average pool, dense 2."""
    layers = [Layer("conv", (-1,), channels=8, kernel=(3, 3), stride=(2, 2), padding=(0, 1, 0, 1), relu=True)]
    for channels, stride in zip((16, 32, 32, 64, 64, 128, 128, 128, 128, 128, 128, 256, 256),
                                (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)):
        pad = (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1)  # TF's SAME on even sizes
        layers.append(Layer("dwconv", (len(layers) - 1,), kernel=(3, 3), stride=(stride, stride), padding=pad, relu=True))
        layers.append(Layer("conv", (len(layers) - 1,), channels=channels, relu=True))
    layers.append(Layer("gap", (len(layers) - 1,)))
    layers.append(Layer("flatten", (len(layers) - 1,)))
    layers.append(Layer("dense", (len(layers) - 1,), channels=2))
    return ArchSpec((3, 96, 96), 2, tuple(layers), {"name": "vww-mobilenetv1-0.25"})


def sram(target: str, codegen: str) -> int:
    """Peak SRAM of the VWW shape: the per-layer arena, with in-place layers, with the planner's choice (in place and
    a patch stage); instructions and bit-exactness of each on QEMU; bench/results/mcu_sram-<target>-<codegen>.json."""
    spec = vww()
    torch.manual_seed(0)
    model = SpecNet(spec).eval()
    rng = np.random.default_rng(0)
    calib = rng.normal(0, 1, (16, *spec.input_shape)).astype(np.float32)
    graph = quantize(spec, model, calib)
    vectors = graph.quantize_input(calib[:2])
    plans = {"per-layer": memory.baseline(spec), "in place": memory.plan_memory(spec, True, None),
             "in place + patches": memory.choose(spec)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, plan in plans.items():
            t0 = time.perf_counter()
            compiled = compile_graph(graph, plan)
            res = build_and_run(graph, spec, load_target(target), Path(tmp) / name.replace(" ", "_"), vectors, codegen,
                                compiled=compiled, check_layers=True)
            r = res.report
            patch = plan.patch
            rows.append({"plan": name, "arena_bytes": r["arena_bytes"], "arena_in_elf": r["arena_bytes_in_elf"],
                         "input_in_arena": plan.input_in_arena, "instructions": r["measured_instructions"],
                         "bit_exact": res.ok, "inplace_layers": [o.layer for o in plan.inplace],
                         "patch_stage": None if patch is None else {"last_layer": patch.end, "grid": list(patch.grid)},
                         "predicted_arena": memory.choose(spec).size if name == "in place + patches" else plan.size,
                         "library_flash_bytes": r["library_flash_bytes"], "seconds": round(time.perf_counter() - t0, 1)})
    base = rows[0]
    total = memory.sum_of_tensors(spec)
    table = Table(title=f"VWW (MobileNetV1-0.25, 96x96x3), {sum(spec.macs()):,} MACs, {target} {codegen}: peak SRAM")
    for col in ("plan", "arena B", "x per-layer", "arena + input B", "instructions", "x per-layer ", "bit-exact", "flash B"):
        table.add_column(col, justify="right")
    in_bytes = int(np.prod(spec.input_shape))
    for row in rows:
        with_input = row["arena_bytes"] + (0 if row["input_in_arena"] else in_bytes)
        row["arena_plus_caller_input"] = with_input
        table.add_row(row["plan"], f"{row['arena_bytes']:,}", f"{row['arena_bytes'] / base['arena_bytes']:.2f}",
                      f"{with_input:,}", f"{row['instructions']:,.0f}", f"{row['instructions'] / base['instructions']:.3f}",
                      str(row["bit_exact"]), f"{row['library_flash_bytes']:,}")
    console = Console(width=160)
    console.print(table)
    console.print(f"sum of all tensors: {total:,} B; input {in_bytes:,} B (the caller's buffer; copied into the arena "
                  "unless a patch stage reads it in place)")
    out = {"date": date.today().isoformat(), "command": f"python bench/bench_mcu.py --sections sram --runs {target}:{codegen}",
           "macs": sum(spec.macs()), "sum_of_tensors": total, "input_bytes": in_bytes, "rows": rows}
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / f"mcu_sram-{target}-{codegen}.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0 if all(r["bit_exact"] for r in rows) else 1


def main(argv: list[str] | None = None) -> int:
    """Build DS-CNN for each (target, codegen), run one inference per vector on QEMU, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", metavar="TARGET:CODEGEN", default=[f"{t}:{c}" for t, c in RUNS],
                        help="the builds to run (default: all eight); bench/results/mcu.json then holds only these")
    parser.add_argument("--sections", choices=("speed", "sram"), default="speed",
                        help="speed: DS-CNN per target (default); sram: the VWW shape's arena per memory plan "
                             "(the first of --runs, default cortex-m4:c)")
    args = parser.parse_args(argv)
    if args.sections == "sram":
        target, codegen = (args.runs[0] if "--runs" in (argv or sys.argv) else "cortex-m4:c").split(":", 1)
        return sram(target, codegen)
    runs = [tuple(r.split(":", 1)) for r in args.runs]
    spec = ds_cnn()
    torch.manual_seed(0)
    model = SpecNet(spec).eval()  # random weights: the instruction count does not depend on their values
    rng = np.random.default_rng(0)
    calib = rng.normal(0, 1, (64, *spec.input_shape)).astype(np.float32)
    graph = quantize(spec, model, calib)
    vectors = graph.quantize_input(calib[:2])
    start = time.perf_counter()
    compiled = compile_graph(graph)
    lower_s = time.perf_counter() - start
    macs = sum(spec.macs())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for target, codegen in runs:
            t0 = time.perf_counter()
            res = build_and_run(graph, spec, load_target(target), Path(tmp) / f"{target}-{codegen}", vectors, codegen,
                                compiled=compiled, trace=True)
            r = res.report
            e = r["cycle_estimate"]
            rows.append({
                "target": target, "codegen": codegen, "bit_exact": res.ok,
                "instructions": r["measured_instructions"], "instructions_per_mac": r["measured_instructions"] / macs,
                "estimated_cycles": r["estimated_cycles"], "cycles_are": r["cycles_are"],
                "cycles_per_instruction": e["cycles_per_instruction"], "estimated_ms": e["estimated_ms"],
                "clock_mhz": load_target(target).clock_mhz,
                "cycle_components": {k: e[k] for k in ("issue_cycles", "branch_refill_cycles", "fetch_stall_cycles")},
                "instruction_mix": e["instruction_mix"], "trace_matches_counter": e["trace_matches_counter"],
                "trace_seconds": e["trace_seconds"], "model_seconds": e["model_seconds"],
                "per_layer_cycles": [(row["op"], row["estimated_cycles"]) for row in r["layers"]],
                "per_layer": [(row["op"], row["measured_instructions"]) for row in r["layers"]],
                "per_layer_type": per_type([(row["op"], row["measured_instructions"]) for row in r["layers"]]),
                "arena_bytes": r["arena_bytes"], "library_flash_bytes": r["library_flash_bytes"],
                "weight_bytes": r["weight_bytes"], "workspace_bytes": r["workspace_bytes"],
                "compile_seconds": round(lower_s + time.perf_counter() - t0, 2),
                "vs_cmsis_nn_qemu": r["measured_instructions"] / ANCHORS["CMSIS-NN on this QEMU (M4, instructions)"],
            })  # fmt: skip
    table = Table(title=f"DS-CNN (MLPerf Tiny KWS shape), {macs:,} MACs, random int8 weights")
    for col in ("target", "codegen", "bit-exact", "instructions", "per MAC", "x CMSIS-NN", "est. cycles", "cyc/instr",
                "est. ms", "arena B", "flash B", "compile s"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            row["target"], row["codegen"], str(row["bit_exact"]), f"{row['instructions']:,.0f}", f"{row['instructions_per_mac']:.2f}",
            f"{row['vs_cmsis_nn_qemu']:.2f}", f"{row['estimated_cycles']:,.0f}", f"{row['cycles_per_instruction']:.2f}",
            f"{row['estimated_ms']:.1f}", str(row["arena_bytes"]), str(row["library_flash_bytes"]), str(row["compile_seconds"]),
        )  # fmt: skip
    console = Console(width=160)
    console.print(table)
    types = Table(title="instructions per layer, by layer type (mean over the layers of a type)")
    for col in ("target", "codegen", *CMSIS_NN_PER_LAYER):
        types.add_column(col, justify="right")
    for row in rows:
        types.add_row(row["target"], row["codegen"], *(f"{row['per_layer_type'][k]:,.0f}" for k in CMSIS_NN_PER_LAYER))
    types.add_row("CMSIS-NN (M4)", "", *(f"{v:,}" for v in CMSIS_NN_PER_LAYER.values()))
    console.print(types)
    for name, value in ANCHORS.items():
        console.print(f"anchor: {name}: {value:,} ({value / macs:.2f} per MAC)")
    console.print("estimated cycles: an estimate from QEMU's executed instruction stream (first input) with each "
                  "target's hw_targets/<target>.yaml timing: table, not a measurement")
    command = "python bench/bench_mcu.py" + ("" if runs == RUNS else " --runs " + " ".join(args.runs))
    out = {"date": date.today().isoformat(), "command": command, "macs": macs, "anchors": ANCHORS,
           "cmsis_nn_per_layer": CMSIS_NN_PER_LAYER, "runs": rows}
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "mcu.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

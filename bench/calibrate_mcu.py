"""Fit the MCU cost model's per-op coefficients (the ``cycles:`` section of hw_targets/<mcu>.yaml) to QEMU counts.

Run: ``.venv/bin/python bench/calibrate_mcu.py`` (~2 min on 2 cores) -> a table per target, bench/results/calibration.json.

For each target it builds a handful of varied networks (DS-CNN and random candidates of the cnn1d / cnn2d search
spaces, random weights) with the codegen ``tinycompile build`` uses by default (TVM's C), runs them on QEMU,
bit-exact against the integer reference, and reads each layer's instruction count. ``McuBackend.layer_cycles``
is linear in the coefficients, so each layer gives one row of a linear system: its features are the formula
evaluated with one coefficient set to 1 and the others to 0 (the formula itself, not a copy of it). The fit is a
non-negative least squares over relative errors (rows divided by the measured count, floored at ``MIN_WEIGHT``
instructions so tiny layers do not dominate). QEMU counts instructions, not cycles: the coefficients are
instructions per MAC / element / output / layer, which the cost model uses as cycles (one instruction ~ one cycle on
these in-order cores for this code).

``--targets soc-vexriscv`` fits the SoC's core to cycles instead: the same rv32imc library, its per-layer cycles
estimated by the soc-vexriscv target's ``timing:`` model (QEMU's trace and data addresses priced as the VexRiscv
core and its caches; within 3% of the RTL's mcycle per layer on DS-CNN and on the held-out network below, see
bench/bench_soc.py), without the RTL (17 M DS-CNN cycles take a minute of simulation).

Every target is also checked on a held-out network (tests/mcu/test_calibration.py's, in no fit).

``--write-yaml`` puts the fitted values into the YAMLs (only the ``cycles:`` values and the comment above them).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mcu import ds_cnn  # noqa: E402

from tinycompile.arch import ArchSpec  # noqa: E402
from tinycompile.cost.arena import VIEW_OPS  # noqa: E402
from tinycompile.backends.mcu import McuBackend  # noqa: E402
from tinycompile.mcu.backend import build_and_run  # noqa: E402
from tinycompile.mcu.library import compile_graph  # noqa: E402
from tinycompile.model import SpecNet  # noqa: E402
from tinycompile.quant.quantize import quantize  # noqa: E402
from tinycompile.search.space import load_space  # noqa: E402
from tinycompile.soc.estimate import estimate_kernels  # noqa: E402
from tinycompile.soc.run import build_firmware, per_layer  # noqa: E402
from tinycompile.targets import Target, load_target  # noqa: E402

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
TARGETS = ("cortex-m4", "cortex-m7", "cortex-m55", "rv32imc")
COEFFS = ("conv", "dwconv", "dense", "pool", "gap", "add", "per_output", "layer_overhead")
MIN_WEIGHT = 2000.0  # instructions: rows are scaled by 1 / max(measured, MIN_WEIGHT)
SEED = 7
# (space, input shape (C, H, W), how many random candidates)
RANDOM_NETS = (("cnn1d", (1, 1, 40), 4), ("cnn2d", (1, 8, 8), 3), ("cnn2d", (3, 16, 16), 2))
VECTORS = 2
# The hand-set coefficients the YAMLs held before the first calibration (git c0bbaac), kept to report their error.
HAND_SET = {
    "cortex-m4": (4.0, 8.0, 3.0, 2.5, 2.0, 6.0, 6.0, 300),
    "cortex-m7": (2.8, 5.6, 2.1, 1.8, 1.4, 4.2, 4.2, 250),
    "cortex-m55": (1.0, 2.5, 0.9, 0.8, 0.6, 1.5, 2.0, 300),
    "rv32imc": (5.5, 10.0, 4.0, 3.0, 2.5, 8.0, 8.0, 300),
}


def networks(seed: int = SEED) -> list[tuple[str, ArchSpec]]:
    """DS-CNN and random candidates of the CNN search spaces (fixed seed)."""
    rng = random.Random(seed)
    nets = [("ds-cnn", ds_cnn())]
    for space_name, shape, count in RANDOM_NETS:
        space = load_space(space_name)
        for i in range(count):
            spec = space.build(space.random_choices(rng), shape, 10)
            nets.append((f"{space_name}-{'x'.join(map(str, shape))}-{i}", spec))
    return nets


def features(spec: ArchSpec, target: Target) -> tuple[list[int], np.ndarray]:
    """Indices of the layers that cost anything and their feature rows (one column per coefficient)."""
    shapes = spec.shapes()
    macs = spec.macs()
    rows, index = [], []
    for i, layer in enumerate(spec.layers):
        if layer.op in VIEW_OPS:
            continue
        in_shape = spec.input_shapes(i, shapes)[0]
        row = []
        for name in COEFFS:
            unit = replace(target, cycles={k: float(k == name) for k in COEFFS})
            row.append(McuBackend().layer_cycles(layer, in_shape, shapes[i], macs[i], unit))
        rows.append(row)
        index.append(i)
    return index, np.array(rows, dtype=np.float64)


def measure(spec: ArchSpec, target: Target, codegen: str, folder: Path, seed: int) -> tuple[dict[int, float], bool]:
    """Per-layer instructions of one inference of ``spec`` (random weights) on ``target``'s QEMU, and bit-exactness;
    for a SoC target, its core's cycles estimated from the QEMU run of its ``soc.instructions`` target."""
    torch.manual_seed(seed)
    model = SpecNet(spec).eval()
    rng = np.random.default_rng(seed)
    calib = rng.normal(0, 1, (64, *spec.input_shape)).astype(np.float32)
    graph = quantize(spec, model, calib)
    vectors = graph.quantize_input(calib[:VECTORS])
    compiled = compile_graph(graph)
    qemu = load_target(target.raw["soc"]["instructions"]) if target.kind == "soc" else target
    res = build_and_run(graph, spec, qemu, folder, vectors, codegen, compiled=compiled)
    layers = {row["index"]: float(row["measured_instructions"]) for row in res.report["layers"] if row["measured_instructions"] is not None}
    if target.kind == "soc":
        lib, elf = build_firmware(graph, spec, target, folder / "soc", vectors, compiled)
        kernels = estimate_kernels(res.elf, qemu, elf, target, len(lib.info.kernels))
        cycles = per_layer(lib.info.kernel_ops, [k.cycles for k in kernels], len(spec.layers))
        layers = {i: c for i, c in enumerate(cycles) if c is not None}
    return layers, res.ok


def fit(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares of ``a @ c ~ y`` in relative terms."""
    w = 1.0 / np.maximum(y, MIN_WEIGHT)
    aw, yw = a * w[:, None], y * w
    try:
        from scipy.optimize import nnls

        coef, _ = nnls(aw, yw)
    except ImportError:  # numpy only: least squares, clipped at zero
        coef = np.clip(np.linalg.lstsq(aw, yw, rcond=None)[0], 0.0, None)
    return coef


def errors(a: np.ndarray, y: np.ndarray, coef: np.ndarray, groups: list[str]) -> dict[str, float]:
    """Mean / max absolute relative error per layer, and per network total."""
    pred = a @ coef
    rel = np.abs(pred - y) / y
    nets = sorted(set(groups))
    tot = [abs(pred[[g == n for g in groups]].sum() - y[[g == n for g in groups]].sum()) / y[[g == n for g in groups]].sum() for n in nets]
    return {"layer_mean": float(rel.mean()), "layer_max": float(rel.max()), "network_mean": float(np.mean(tot)), "network_max": float(np.max(tot))}


def held_out(target: Target, coef: np.ndarray, codegen: str, tmp: Path) -> dict:
    """The fitted model on tests/mcu/test_calibration.py's held-out network: total and per-layer errors."""
    sys.path.insert(0, str(REPO / "tests" / "mcu"))
    from test_calibration import HELD_OUT

    index, a = features(HELD_OUT, target)
    measured, ok = measure(HELD_OUT, target, codegen, tmp / f"{target.name}-held-out", 11)
    y = np.array([measured[i] for i in index])
    pred = a @ coef
    return {"bit_exact": ok, "measured": float(y.sum()), "predicted": round(float(pred.sum())),
            "relative_error": round(float((pred.sum() - y.sum()) / y.sum()), 3),
            "layers": [{"op": HELD_OUT.layers[i].op, "measured": float(m), "predicted": round(float(p)),
                        "relative_error": round(float((p - m) / m), 3)} for i, m, p in zip(index, y, pred)]}


def calibrate(target_name: str, codegen: str, tmp: Path, log: Console) -> dict:
    target = load_target(target_name)
    rows, ys, groups, ops, exact = [], [], [], [], True
    for k, (name, spec) in enumerate(networks()):
        index, a = features(spec, target)
        measured, ok = measure(spec, target, codegen, tmp / f"{target_name}-{name}", SEED + k)
        exact &= ok
        for i, row in zip(index, a):
            rows.append(row)
            ys.append(measured[i])
            groups.append(name)
            ops.append(spec.layers[i].op)
        unit = "estimated cycles" if target.kind == "soc" else "instructions"
        log.print(f"  {target_name} {name}: {len(index)} layers, {sum(measured.values()):,.0f} {unit}, bit-exact {ok}")
    a, y = np.array(rows), np.array(ys)
    before = np.array([target.cycles[c] for c in COEFFS])
    coef = fit(a, y)
    # An op no network exercised keeps its old coefficient (its column is all zero, NNLS would give 0).
    unused = a.sum(axis=0) == 0
    coef[unused] = before[unused]
    pred = a @ coef
    rel = (pred - y) / y
    worst = [
        {"network": groups[i], "op": ops[i], "measured": float(y[i]), "predicted": round(float(pred[i])), "relative_error": round(float(rel[i]), 3)}
        for i in np.argsort(-np.abs(rel))[:6]
    ]
    nets = sorted(set(groups))
    per_network = {n: round(float((pred[[g == n for g in groups]].sum() - y[[g == n for g in groups]].sum())
                                  / y[[g == n for g in groups]].sum()), 3) for n in nets}
    return {
        "target": target_name,
        "unit": "cycles (timing: model)" if target.kind == "soc" else "instructions",
        "network_errors": per_network,
        "held_out": held_out(target, coef, codegen, tmp),
        "worst_layers": worst,
        "codegen": codegen,
        "bit_exact": exact,
        "layers": len(y),
        "networks": sorted(set(groups)),
        "ops": {op: ops.count(op) for op in sorted(set(ops))},
        "before": dict(zip(COEFFS, before.tolist())),
        "fitted": {c: round(float(v), 3 if c != "layer_overhead" else 0) for c, v in zip(COEFFS, coef)},
        "error_before": errors(a, y, before, groups),
        "error_after": errors(a, y, coef, groups),
        "hand_set": dict(zip(COEFFS, HAND_SET[target_name])) if target_name in HAND_SET else None,
        "error_hand_set": errors(a, y, np.array(HAND_SET[target_name], dtype=float), groups) if target_name in HAND_SET else None,
        "measured_total_over_hand_set_prediction": float(y.sum() / (a @ np.array(HAND_SET[target_name], dtype=float)).sum()) if target_name in HAND_SET else None,
    }


def write_yaml(result: dict, today: str) -> None:
    """Replace the ``cycles:`` values of the target's YAML and the comment lines right above ``name:`` that describe
    them (those starting with ``# Cycle coefficients``), keeping every other line."""
    path = REPO / "hw_targets" / f"{result['target']}.yaml"
    text = path.read_text()
    for key, value in result["fitted"].items():
        value_text = str(int(value)) if key == "layer_overhead" else f"{value:g}"

        def sub(m: re.Match, v: str = value_text) -> str:  # keep a trailing comment in its column
            line = f"{m.group(1)} {v}"
            if not m.group(3):
                return line
            column = len(m.group(0)) - len(m.group(3).lstrip())
            return line.ljust(max(column, len(line) + 1)) + m.group(3).lstrip()

        text = re.sub(rf"^(  {key}:)\s*([0-9.eE+-]+)(\s*#.*)?$", sub, text, count=1, flags=re.M)
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith("# Cycle coefficients")), None)
    if start is not None:
        end = start + 1
        while end < len(lines) and lines[end].startswith("#") and not lines[end].startswith("# One instruction"):
            end += 1
        if end < len(lines) and lines[end].startswith("# One instruction"):
            end += 1
        err = result["error_after"]
        ho = result["held_out"]["relative_error"]
        comment = (
            f"# Cycle coefficients: fitted {today} with `python bench/calibrate_mcu.py --targets {result['target']}` (non-negative\n"
            f"# least squares) to the cycles the timing: model below estimates for {len(result['networks'])} networks ({result['layers']} layers,\n"
            f"# the rv32imc library, TVM C codegen, bit-exact; the model is within 3% of the RTL's mcycle per layer, see\n"
            f"# bench/bench_soc.py): layer error mean {100 * err['layer_mean']:.0f}%, network total mean {100 * err['network_mean']:.0f}% "
            f"(max {100 * err['network_max']:.0f}%),\n# held-out network {100 * ho:+.0f}%.\n"
        ) if result["unit"].startswith("cycles") else (
            f"# Cycle coefficients: fitted {today} with `python bench/calibrate_mcu.py` (non-negative least squares) to QEMU\n"
            f"# instruction counts of {len(result['networks'])} networks ({result['layers']} layers, TVM {result['codegen'].upper()} codegen, "
            f"bit-exact); layer error mean {100 * err['layer_mean']:.0f}%,\n"
            f"# network total mean {100 * err['network_mean']:.0f}%. QEMU counts instructions, not cycles: the values are instructions,\n"
            "# used as cycles (about one per instruction on these in-order cores for this code; memory wait states not modelled).\n"
        )
        lines[start:end] = [comment]
    path.write_text("".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="*", default=list(TARGETS))
    parser.add_argument("--codegen", default="c", choices=("c", "llvm"))
    parser.add_argument("--write-yaml", action="store_true", help="put the fitted coefficients into hw_targets/*.yaml")
    args = parser.parse_args()
    log = Console(width=160, stderr=True)
    start = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for t in args.targets:
            results.append(calibrate(t, args.codegen, Path(tmp), log))
    console = Console(width=160)
    for r in results:
        table = Table(title=f"{r['target']} ({r['codegen']}): {r['layers']} layers of {len(r['networks'])} networks")
        table.add_column("coefficient")
        table.add_column("before", justify="right")
        table.add_column("fitted", justify="right")
        for c in COEFFS:
            table.add_row(c, f"{r['before'][c]:g}", f"{r['fitted'][c]:g}")
        eb, ea = r["error_before"], r["error_after"]
        table.add_row("layer error mean / max", f"{100 * eb['layer_mean']:.0f}% / {100 * eb['layer_max']:.0f}%", f"{100 * ea['layer_mean']:.0f}% / {100 * ea['layer_max']:.0f}%")
        table.add_row("network error mean / max", f"{100 * eb['network_mean']:.0f}% / {100 * eb['network_max']:.0f}%", f"{100 * ea['network_mean']:.0f}% / {100 * ea['network_max']:.0f}%")
        for n, e in r["network_errors"].items():
            table.add_row(f"  {n}", "", f"{100 * e:+.1f}%")
        table.add_row("held-out network (not fitted)", "", f"{100 * r['held_out']['relative_error']:+.1f}%")
        if r["error_hand_set"]:
            eh = r["error_hand_set"]
            table.add_row("hand-set (c0bbaac): layer / network mean", f"{100 * eh['layer_mean']:.0f}% / {100 * eh['network_mean']:.0f}%", "")
        console.print(table)
    today = date.today().isoformat()
    command = "python bench/calibrate_mcu.py" + ("" if args.targets == list(TARGETS) else " --targets " + " ".join(args.targets))
    name = "calibration.json" if args.targets == list(TARGETS) else f"calibration-{'-'.join(args.targets)}.json"
    out = {"date": today, "command": command, "seconds": round(time.perf_counter() - start, 1), "min_weight": MIN_WEIGHT, "results": results}
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / name).write_text(json.dumps(out, indent=1) + "\n")
    if args.write_yaml:
        for r in results:
            write_yaml(r, today)
    return 0 if all(r["bit_exact"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

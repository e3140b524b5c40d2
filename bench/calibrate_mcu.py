"""Fit the MCU cost model's coefficients (``cycles:`` and ``instructions:`` of hw_targets/<mcu>.yaml) to QEMU runs.

Run: ``.venv/bin/python bench/calibrate_mcu.py --targets cortex-m4`` (one target at a time: 1-3 min each on 2 cores,
the instruction trace is CPU heavy) -> a table per target, bench/results/calibration-<target>.json (with every
layer's measurements, so ``--refit`` can fit again without QEMU).

For each target it builds a handful of varied networks (DS-CNN and random candidates of the cnn1d / cnn2d search
spaces, random weights) with the codegen ``tinycompile build`` uses by default (TVM's C), runs them on QEMU,
bit-exact against the integer reference, and reads two figures per layer: QEMU's instruction count and the cycles
the target's ``timing:`` model estimates from QEMU's executed instruction stream (the report's
``estimated_cycles``). ``McuBackend.layer_cycles`` is linear in its coefficients, so each layer gives one row of a
linear system: its features are the cost model evaluated with one coefficient set to 1 and the others to 0 (the
model itself, patch stages included, not a copy of it). The same features are fitted twice, by non-negative least
squares over relative errors (rows divided by the measured figure, floored at ``MIN_WEIGHT`` so tiny layers do not
dominate), plus one row per network for its total (weight ``NETWORK_WEIGHT``: the search compares whole networks):

- ``cycles:`` to the estimated cycles: what the search's latency and energy use;
- ``instructions:`` to QEMU's instruction counts: what report.json compares with the measured instructions.

``--targets soc-vexriscv`` fits the SoC's core's ``cycles:`` only: the same rv32imc library, its per-layer cycles
estimated by the soc-vexriscv target's ``timing:`` model (QEMU's trace and data addresses priced as the VexRiscv
core and its caches; within 3% of the RTL's mcycle per layer on DS-CNN and on the held-out network below, see
bench/bench_soc.py), without the RTL (17 M DS-CNN cycles take a minute of simulation).

Every fit is also checked on a held-out network (tests/mcu/test_calibration.py's, in no fit).

``--write-yaml`` puts the fitted values into the YAMLs (only the two sections' values and the comment above them).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mcu import ds_cnn  # noqa: E402

from tinycompile.arch import ArchSpec, Layer  # noqa: E402
from tinycompile.backends.mcu import cost_keys  # noqa: E402
from tinycompile.cost.arena import VIEW_OPS  # noqa: E402
from tinycompile.cost.model import estimate  # noqa: E402
from tinycompile.mcu.backend import build_and_run  # noqa: E402
from tinycompile.mcu.library import compile_graph  # noqa: E402
from tinycompile.model import SpecNet  # noqa: E402
from tinycompile.quant.quantize import quantize  # noqa: E402
from tinycompile.search.space import load_space  # noqa: E402
from tinycompile.soc.estimate import estimate_kernels, qemu_twin  # noqa: E402
from tinycompile.soc.run import build_firmware, per_layer  # noqa: E402
from tinycompile.targets import Target, load_target  # noqa: E402

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
TARGETS = ("cortex-m4", "cortex-m7", "cortex-m55", "rv32imc")
MIN_WEIGHT = 800.0  # instructions or cycles: rows are scaled by 1 / max(measured, MIN_WEIGHT)
NETWORK_WEIGHT = 3.0  # weight of a network total's relative error beside one layer's
SEED = 7
HELD_OUT_SEED = 11  # tests/mcu/test_calibration.py's
# (space, input shape (C, H, W), how many random candidates)
RANDOM_NETS = (("cnn1d", (1, 1, 40), 4), ("cnn2d", (1, 8, 8), 3), ("cnn2d", (3, 16, 16), 2))
VECTORS = 2
# What each YAML section is fitted to: the key of a layer's measurements.
FITTED_TO = {"cycles": "estimated_cycles", "instructions": "instructions"}


def dsp_convs() -> ArchSpec:
    """Layers the other fitting networks leave out on some DSP core: convs past the pixel-pair tile's bounds
    (``layout.pixel_pairs``), which run in the other dot products (a padded copy above 2 KB: 4 -> 40 channels on
    24 x 24; 90 groups of four taps: 40 -> 40, 3x3), a depthwise conv over row pairs on channels that are no whole
    Helium vectors (40), and a hidden dense layer."""
    return ArchSpec((4, 24, 24), 10, (
        Layer("conv", (-1,), channels=40, kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
        Layer("maxpool", (0,), kernel=(2, 2), stride=(2, 2)),
        Layer("dwconv", (1,), kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
        Layer("conv", (2,), channels=40, kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
        Layer("gap", (3,)), Layer("dense", (4,), channels=24, relu=True),
        Layer("dense", (5,), channels=10)), {"name": "dsp-convs"})


def networks(seed: int = SEED) -> list[tuple[str, ArchSpec]]:
    """DS-CNN, convs past the pixel-pair tile and random candidates of the CNN search spaces (fixed seed)."""
    rng = random.Random(seed)
    nets = [("ds-cnn", ds_cnn()), ("dsp-convs", dsp_convs())]
    for space_name, shape, count in RANDOM_NETS:
        space = load_space(space_name)
        for i in range(count):
            spec = space.build(space.random_choices(rng), shape, 10)
            nets.append((f"{space_name}-{'x'.join(map(str, shape))}-{i}", spec))
    return nets


def sections(target: Target) -> tuple[str, ...]:
    """The YAML sections fitted for ``target``: a SoC's core has ``cycles:`` only (its RTL measures cycles)."""
    return ("cycles",) if target.kind == "soc" else ("cycles", "instructions")


def features(spec: ArchSpec, target: Target) -> tuple[list[int], np.ndarray]:
    """Indices of the layers that cost anything and their feature rows (one column per coefficient): the cost model
    with one coefficient at 1, the others at 0 (the MCU formula: a SoC target's core runs the same library)."""
    core = replace(target, kind="mcu")
    index = [i for i, layer in enumerate(spec.layers) if layer.op not in VIEW_OPS]
    cols = []
    keys = cost_keys(core)
    for name in keys:
        cost = estimate(spec, replace(core, cycles={k: float(k == name) for k in keys}))
        cols.append([cost.layers[i].cycles for i in index])
    return index, np.array(cols, dtype=np.float64).T


def measure(spec: ArchSpec, model: torch.nn.Module, target: Target, codegen: str, folder: Path,
            seed: int) -> tuple[dict[str, dict[int, float]], bool]:
    """Per layer, QEMU's instructions and the estimated cycles of one inference of ``spec`` (``model``'s weights) on
    ``target``, and bit-exactness; for a SoC target, its core's cycles estimated from the QEMU run of its
    ``soc.instructions`` target."""
    rng = np.random.default_rng(seed)
    calib = rng.normal(0, 1, (64, *spec.input_shape)).astype(np.float32)
    graph = quantize(spec, model, calib)
    vectors = graph.quantize_input(calib[:VECTORS])
    compiled = compile_graph(graph)
    soc = target.kind == "soc"
    qemu = qemu_twin(target) if soc else target
    res = build_and_run(graph, spec, qemu, folder, vectors, codegen, compiled=compiled, trace=not soc)
    rows = [row for row in res.report["layers"] if row["op"] not in VIEW_OPS]
    # A patch stage is one measured step, counted at its last layer: its other layers have no figures.
    out = {"instructions": {row["index"]: float(row["measured_instructions"]) for row in rows
                            if row["measured_instructions"] is not None}}
    if soc:
        lib, elf = build_firmware(graph, spec, target, folder / "soc", vectors, compiled)
        kernels = estimate_kernels(res.elf, qemu, elf, target, len(lib.info.kernels))
        cycles = per_layer(lib.info.kernel_ops, [k.cycles for k in kernels], len(spec.layers))
        out["estimated_cycles"] = {i: float(c) for i, c in enumerate(cycles) if c is not None}
    else:
        if res.report["estimated_cycles"] is None:
            raise SystemExit(f"{target.name}: no estimated cycles ({res.report['cycles_are']})")
        out["estimated_cycles"] = {row["index"]: float(row["estimated_cycles"]) for row in rows
                                   if row["estimated_cycles"] is not None}
    return out, res.ok


def fit(a: np.ndarray, y: np.ndarray, groups: list[str]) -> np.ndarray:
    """Non-negative least squares of ``a @ c ~ y`` in relative terms, each layer a row and each network's total one
    more (weighted by ``NETWORK_WEIGHT``)."""
    w = 1.0 / np.maximum(y, MIN_WEIGHT)
    rows, rhs = [a * w[:, None]], [y * w]
    for name in sorted(set(groups)):
        pick = np.array([g == name for g in groups])
        total = y[pick].sum()
        rows.append(NETWORK_WEIGHT * a[pick].sum(axis=0, keepdims=True) / total)
        rhs.append(np.array([NETWORK_WEIGHT]))
    aw, yw = np.vstack(rows), np.concatenate(rhs)
    try:
        from scipy.optimize import nnls

        coef, _ = nnls(aw, yw)
    except ImportError:  # numpy only: least squares, clipped at zero
        coef = np.clip(np.linalg.lstsq(aw, yw, rcond=None)[0], 0.0, None)
    return coef


def network_errors(a: np.ndarray, y: np.ndarray, coef: np.ndarray, groups: list[str]) -> dict[str, float]:
    """Signed relative error of each network's predicted total."""
    pred = a @ coef
    out = {}
    for name in sorted(set(groups)):
        pick = np.array([g == name for g in groups])
        out[name] = float((pred[pick].sum() - y[pick].sum()) / y[pick].sum())
    return out


def errors(a: np.ndarray, y: np.ndarray, coef: np.ndarray, groups: list[str]) -> dict[str, float]:
    """Mean / max absolute relative error per layer, and per network total."""
    rel = np.abs(a @ coef - y) / y
    tot = np.abs(list(network_errors(a, y, coef, groups).values()))
    return {"layer_mean": float(rel.mean()), "layer_max": float(rel.max()), "network_mean": float(tot.mean()),
            "network_max": float(tot.max())}


def specs() -> dict[str, ArchSpec]:
    """The fitting networks and the held-out one (``held-out``) by name."""
    sys.path.insert(0, str(REPO / "tests" / "mcu"))
    from test_calibration import HELD_OUT

    return {**dict(networks()), "held-out": HELD_OUT}


def collect(target: Target, codegen: str, tmp: Path, log: Console) -> dict:
    """Every measured step's figures (a layer, or a patch stage counted at its last layer), the fitting networks'
    and the held-out network's."""
    sys.path.insert(0, str(REPO / "tests" / "mcu"))
    from mcu_helpers import random_model

    def plain(spec: ArchSpec, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return SpecNet(spec).eval()

    runs: list[tuple[str, ArchSpec, int, Callable[[ArchSpec, int], torch.nn.Module]]] = [
        (name, spec, SEED + k, plain) for k, (name, spec) in enumerate(networks())]
    runs.append(("held-out", specs()["held-out"], HELD_OUT_SEED, random_model))  # built as the test builds it
    steps, exact = [], True
    for name, spec, seed, make in runs:
        measured, ok = measure(spec, make(spec, seed), target, codegen, tmp / f"{target.name}-{name}", seed)
        exact &= ok
        steps += [{"network": name, "index": i, "op": spec.layers[i].op,
                   **{key: measured[key][i] for key in measured}} for i in sorted(measured["instructions"])]
        log.print(f"  {target.name} {name}: {len(measured['instructions'])} measured steps, "
                  f"{sum(measured['instructions'].values()):,.0f} instructions, "
                  f"{sum(measured['estimated_cycles'].values()):,.0f} estimated cycles, bit-exact {ok}")
    return {"target": target.name, "codegen": codegen, "bit_exact": exact, "measurements": steps}


def step_features(steps: list[dict], target: Target) -> np.ndarray:
    """Each measured step's feature row: its layer's, plus those of the layers before it that have no figures of
    their own (a patch stage's, counted at its last layer)."""
    nets = specs()
    rows, cache = [], {}
    previous: dict[str, int] = {}
    for step in steps:
        name = step["network"]
        if name not in cache:
            cache[name] = features(nets[name], target)
        index, a = cache[name]
        low = previous.get(name, -1)
        pick = [k for k, i in enumerate(index) if low < i <= step["index"]]
        rows.append(a[pick].sum(axis=0))
        previous[name] = step["index"]
    return np.array(rows)


def analyse(data: dict, target: Target) -> dict:
    """Fit each of the target's sections to its measurements; errors per network, on the held-out network, worst
    layers."""
    rows = step_features(data["measurements"], target)
    is_held = np.array([r["network"] == "held-out" for r in data["measurements"]])
    fitting = [r for r in data["measurements"] if r["network"] != "held-out"]
    held = [r for r in data["measurements"] if r["network"] == "held-out"]
    a, ah = rows[~is_held], rows[is_held]
    groups = [r["network"] for r in fitting]
    ops = [r["op"] for r in fitting]
    fits = {}
    keys = cost_keys(replace(target, kind="mcu"))
    for section in sections(target):
        key = FITTED_TO[section]
        y, yh = np.array([r[key] for r in fitting]), np.array([r[key] for r in held])
        old = target.raw.get(section) or target.cycles
        before = np.array([float(old[c]) for c in keys])
        coef = fit(a, y, groups)
        # An op no network exercised keeps its old coefficient (its column is all zero, NNLS would give 0).
        unused = a.sum(axis=0) == 0
        coef[unused] = before[unused]
        coef = np.array([round(float(v), 0 if c == "layer_overhead" else 3) for c, v in zip(keys, coef)])
        pred, pred_h = a @ coef, ah @ coef
        rel = (pred - y) / y
        fits[section] = {
            "fitted_to": key,
            "before": dict(zip(keys, before.tolist())),
            "fitted": dict(zip(keys, coef.tolist())),
            "error_before": errors(a, y, before, groups),
            "error_after": errors(a, y, coef, groups),
            "network_errors": {n: round(e, 4) for n, e in network_errors(a, y, coef, groups).items()},
            "held_out": {"measured": float(yh.sum()), "predicted": round(float(pred_h.sum())),
                         "relative_error": round(float((pred_h.sum() - yh.sum()) / yh.sum()), 4),
                         "before": round(float((ah @ before).sum() / yh.sum() - 1), 4),
                         "layers": [{"op": r["op"], "measured": m, "predicted": round(float(p)),
                                     "relative_error": round(float((p - m) / m), 3)}
                                    for r, m, p in zip(held, yh, pred_h)]},
            "worst_layers": [{"network": groups[i], "op": ops[i], "measured": float(y[i]),
                              "predicted": round(float(pred[i])), "relative_error": round(float(rel[i]), 3)}
                             for i in np.argsort(-np.abs(rel))[:6]],
        }
    return {"target": data["target"], "codegen": data["codegen"], "bit_exact": data["bit_exact"],
            "layers": len(fitting), "networks": sorted(set(groups)), "ops": {op: ops.count(op) for op in sorted(set(ops))},
            "fits": fits, "measurements": data["measurements"]}


def _comment(result: dict, today: str) -> str:
    """The comment block above ``name:`` that says where the coefficients come from."""
    n, layers, target = len(result["networks"]), result["layers"], result["target"]
    command = f"python bench/calibrate_mcu.py --targets {target} --write-yaml"

    def summary(section: str) -> str:
        f = result["fits"][section]
        e = f["error_after"]
        return (f"network total mean {100 * e['network_mean']:.1f}% (max {100 * e['network_max']:.1f}%), held-out "
                f"network {100 * f['held_out']['relative_error']:+.1f}%, layer mean {100 * e['layer_mean']:.0f}%")

    if "instructions" not in result["fits"]:
        text = (f"Cost model coefficients: fitted {today} with `{command}` (non-negative least squares) to the cycles "
                f"the timing: model below estimates for {n} networks ({layers} layers, the rv32imc library, TVM C "
                f"codegen, bit-exact; the model is within 3% of the RTL's mcycle per layer, see bench/bench_soc.py): "
                f"{summary('cycles')}.")
        return _wrap(text)
    return _wrap(f"Cost model coefficients: fitted {today} with `{command}` (non-negative least squares) to {n} "
                 f"networks ({layers} layers, TVM {result['codegen'].upper()} codegen as `tinycompile build` uses it, "
                 f"bit-exact on QEMU).") + _wrap(
        f"cycles: fitted to the cycles the timing: table below estimates from QEMU's executed instructions (the "
        f"search's latency and energy): {summary('cycles')}.") + _wrap(
        f"instructions: the same formula fitted to QEMU's instruction counts (what report.json compares with the "
        f"measured instructions): {summary('instructions')}.")


def _wrap(text: str) -> str:
    """``text`` as YAML comment lines of at most 120 characters."""
    return "".join(f"# {line}\n" for line in textwrap.wrap(text, 118, break_on_hyphens=False))


def write_yaml(result: dict, today: str) -> None:
    """Replace the fitted sections' values in the target's YAML (an ``instructions:`` section is added after
    ``cycles:`` where missing) and the comment lines right above ``name:`` that describe them, keeping every other
    line."""
    path = REPO / "hw_targets" / f"{result['target']}.yaml"
    text = path.read_text()
    for section, f in result["fits"].items():
        if not re.search(rf"^{section}:\s*$", text, flags=re.M):  # a copy of cycles:, values replaced below
            block = re.search(r"^cycles:\s*\n(?:  .*\n)+", text, flags=re.M)
            assert block is not None, path
            text = text[:block.end()] + block.group(0).replace("cycles:", f"{section}:", 1) + text[block.end():]
        start = re.search(rf"^{section}:\s*\n", text, flags=re.M)
        end = re.search(r"^\S", text[start.end():], flags=re.M)
        body = text[start.end():start.end() + (end.start() if end else len(text))]
        for key, value in f["fitted"].items():
            value_text = str(int(value)) if key == "layer_overhead" else f"{value:g}"

            def sub(m: re.Match, v: str = value_text) -> str:  # keep a trailing comment in its column
                line = f"{m.group(1)} {v}"
                if not m.group(3):
                    return line
                column = len(m.group(0)) - len(m.group(3).lstrip())
                return line.ljust(max(column, len(line) + 1)) + m.group(3).lstrip()

            body = re.sub(rf"^(  {key}:)\s*([0-9.eE+-]+)(\s*#.*)?$", sub, body, count=1, flags=re.M)
        text = text[:start.end()] + body + text[start.end() + (end.start() if end else len(text)):]
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith(("# Cycle coefficients", "# Cost model coeff"))), None)
    if start is not None:
        end = start + 1
        while end < len(lines) and lines[end].startswith("#"):
            end += 1
        lines[start:end] = [_comment(result, today)]
    path.write_text("".join(lines))


def print_result(r: dict, console: Console) -> None:
    """One table per fitted section: coefficients before and after, errors per network and on the held-out one."""
    for section, f in r["fits"].items():
        table = Table(title=f"{r['target']} {section}: ({r['codegen']}, fitted to {f['fitted_to']}): {r['layers']} "
                      f"layers of {len(r['networks'])} networks")
        table.add_column("coefficient")
        table.add_column("before", justify="right")
        table.add_column("fitted", justify="right")
        for c in f["fitted"]:
            table.add_row(c, f"{f['before'][c]:g}", f"{f['fitted'][c]:g}")
        eb, ea = f["error_before"], f["error_after"]
        table.add_row("layer error mean / max", f"{100 * eb['layer_mean']:.0f}% / {100 * eb['layer_max']:.0f}%",
                      f"{100 * ea['layer_mean']:.0f}% / {100 * ea['layer_max']:.0f}%")
        table.add_row("network error mean / max", f"{100 * eb['network_mean']:.1f}% / {100 * eb['network_max']:.1f}%",
                      f"{100 * ea['network_mean']:.1f}% / {100 * ea['network_max']:.1f}%")
        for n, e in f["network_errors"].items():
            table.add_row(f"  {n}", "", f"{100 * e:+.1f}%")
        table.add_row("held-out network (not fitted)", f"{100 * f['held_out']['before']:+.1f}%",
                      f"{100 * f['held_out']['relative_error']:+.1f}%")
        console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="*", default=list(TARGETS))
    parser.add_argument("--codegen", default="c", choices=("c", "llvm"))
    parser.add_argument("--refit", type=Path, help="fit again from the measurements of a previous results file "
                        "(no QEMU run)")
    parser.add_argument("--write-yaml", action="store_true", help="put the fitted coefficients into hw_targets/*.yaml")
    args = parser.parse_args()
    log = Console(width=160, stderr=True)
    start = time.perf_counter()
    results = []
    if args.refit:
        try:
            previous = json.loads(args.refit.read_text())
            data = [{k: r[k] for k in ("target", "codegen", "bit_exact", "measurements")} for r in previous["results"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"error: {args.refit}: not a calibration results file with measurements ({exc})", file=sys.stderr)
            return 2
        results = [analyse(d, load_target(d["target"])) for d in data]
        args.targets = [r["target"] for r in results]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            for t in args.targets:
                target = load_target(t)
                results.append(analyse(collect(target, args.codegen, Path(tmp), log), target))
    console = Console(width=160)
    for r in results:
        print_result(r, console)
    today = date.today().isoformat()
    command = "python bench/calibrate_mcu.py" + ("" if args.targets == list(TARGETS) else " --targets " + " ".join(args.targets))
    name = "calibration.json" if args.targets == list(TARGETS) else f"calibration-{'-'.join(args.targets)}.json"
    out = {"date": today, "command": command, "seconds": round(time.perf_counter() - start, 1), "min_weight": MIN_WEIGHT,
           "network_weight": NETWORK_WEIGHT, "results": results}
    if not args.refit:
        (ROOT / "results").mkdir(exist_ok=True)
        (ROOT / "results" / name).write_text(json.dumps(out, indent=1) + "\n")
    if args.write_yaml:
        for r in results:
            write_yaml(r, today)
    return 0 if all(r["bit_exact"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

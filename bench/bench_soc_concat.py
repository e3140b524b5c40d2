"""Concatenations on the RISC-V SoC with its accelerator: the firmware gathering the concatenated tensors against the
core running their producers.

A concatenation is not an accelerator op. The SoC's firmware feeds a core part one tensor, so a concatenation of
accelerator tensors used to take its producers (convolutions) onto the core; now the firmware copies each tensor
into its channels of one buffer and the producers stay on the accelerator. Both plans are built and run on the
SoC's RTL in one benchmark run, for the float import benchmark's Inception block and ShuffleNetV2 (trained for a few
seconds on sklearn's digits, exported to ONNX, quantized by ONNX Runtime in QDQ form): cycles of one inference (the
last input), where the layers ran, bit-exactness against the integer reference.

Run: ``.venv/bin/python bench/bench_soc_concat.py`` -> a table, bench/results/soc_concat.json (about 5 minutes).
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_float_import import Inception, ShuffleNetV2, export, quantized, trained  # noqa: E402

from tinycompile.backends.soc import accelerator_of  # noqa: E402
from tinycompile.frontends import load_model  # noqa: E402
from tinycompile.quant import reference  # noqa: E402
from tinycompile.soc.system import plan_system, run_system  # noqa: E402
from tinycompile.targets import load_target  # noqa: E402
from tinycompile.tasks import load_task  # noqa: E402

ARRAY, VECTORS = 8, 4


def run_plan(graph, x: np.ndarray, gather: bool, folder: Path) -> dict:
    """One plan of ``graph`` on the SoC's RTL: cycles of the last input, placement, bit-exactness."""
    target = load_target("soc-vexriscv")
    cfg, mem = accelerator_of(target, ARRAY)
    plan = plan_system(graph, cfg, mem, gather=gather)
    run, _ = run_system(plan, graph, x, target, folder, mem)
    want = reference.run(graph, x).reshape(len(x), -1)
    on_core = [i for i, where in plan.placement.items() if where == "core"]
    return {"cycles": run.totals[-1], "bit_exact": run.outputs is not None and np.array_equal(run.outputs, want),
            "core_layers": on_core, "core_ops": [graph.ops[i].op for i in on_core]}


def main() -> int:
    task = load_task("digits")
    xtr, ytr = task.x_train.astype(np.float32), task.y_train.astype(np.int64)
    nets = {"Inception (concat)": Inception, "ShuffleNetV2 (split, shuffle)": ShuffleNetV2}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, make in nets.items():
            print(f"{name}: training, exporting, running both plans ...", file=sys.stderr, flush=True)
            torch.manual_seed(0)
            paths = export(trained(make(), xtr, ytr), torch.from_numpy(xtr[:1]), folder, name.split()[0].lower())
            graph = load_model(quantized(paths["onnx"], xtr[:256], folder / f"{name.split()[0]}_qdq.onnx")).graph
            x = graph.quantize_input(task.x_test[:VECTORS].astype(np.float32))
            plans = {gather: run_plan(graph, x, gather, folder / f"{name.split()[0]}-{gather}") for gather in (True, False)}
            rows.append({"model": name, "gathered": plans[True], "producers_on_core": plans[False],
                         "speedup": plans[False]["cycles"] / plans[True]["cycles"]})
    table = Table(title=f"Concatenations on the SoC (VexRiscv + {ARRAY}x{ARRAY} accelerator, RTL), QDQ on digits")
    for col in ("network", "plan", "cycles", "bit-exact", "layers on the core", "speed-up"):
        table.add_column(col, justify="right" if col in ("cycles", "speed-up") else "left")
    for r in rows:
        for key, label in (("producers_on_core", "producers on the core (before)"), ("gathered", "gathered by the firmware")):
            p = r[key]
            table.add_row(r["model"], label, f"{p['cycles']:,}", str(p["bit_exact"]),
                          ", ".join(f"{i} {op}" for i, op in zip(p["core_layers"], p["core_ops"])),
                          f"{r['speedup']:.1f}x" if key == "gathered" else "")
    Console(width=170).print(table)
    out = ROOT / "bench" / "results" / "soc_concat.json"
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps({"date": str(date.today()), "command": "python bench/bench_soc_concat.py",
                                   "array": ARRAY, "vectors": VECTORS, "rows": rows}, indent=1) + "\n")
    tmp_out.replace(out)
    return 0 if all(r[k]["bit_exact"] for r in rows for k in ("gathered", "producers_on_core")) else 1


if __name__ == "__main__":
    sys.exit(main())

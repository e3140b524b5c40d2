"""The MLPerf Tiny int8 reference models, imported from their .tflite files, built for every target and checked bit for
bit against TFLite's reference kernels; instructions or cycles, arena and flash beside the published figures and
TFLite Micro's arena for the same model.

Run: ``.venv/bin/python bench/bench_import.py --models DIR`` -> a table, bench/results/import.json. ``DIR`` holds the
model files (not shipped with the project: MLPerf Tiny's ``benchmark/training/*/trained_models/``, Apache-2.0):
``kws_ref_model.tflite``, ``pretrainedResnet_quant.tflite``, ``vww_96_int8.tflite``, ``ad01_int8.tflite``,
``str_ww_ref_model.tflite``, whichever are present. Default ``DIR``: ``$TINYCOMPILE_MODELS`` or ``bench/models/``.

Models written here always run beside them: a MobileNetV3-style network as Keras's converter writes it (hard swish,
squeeze-and-excitation gates, hard sigmoids of constant ADD and MUL; tests/tflite_models.py, random weights), the
ops none of the MLPerf Tiny models use.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent
MCU_TARGETS = ("cortex-m4", "cortex-m7", "cortex-m55", "rv32imc")
# model file -> (name, targets it runs on here, inputs)
MODELS = {
    "kws_ref_model.tflite": ("KWS DS-CNN", (*MCU_TARGETS, "fpga"), 64),
    "pretrainedResnet_quant.tflite": ("IC ResNet-8", ("cortex-m4", "fpga"), 16),
    "vww_96_int8.tflite": ("VWW MobileNetV1 0.25", ("cortex-m4", "fpga"), 16),
    "ad01_int8.tflite": ("AD FC autoencoder", ("cortex-m4", "fpga"), 16),
    "str_ww_ref_model.tflite": ("streaming wake word", ("cortex-m4",), 16),
}
# Written by this benchmark (into a temporary folder): file -> (name, targets, inputs)
# At 96x96 the test inputs overflow cortex-m55's 512 KB of emulated flash, the arena rv32imc's 32 KB of SRAM, and the
# tensors the SoC's 256 KB of accelerator memory: the smaller sizes run there (the SoC's core layers need 32x32 to fit
# its 128 KB of RAM).
GENERATED = {
    "mobilenet_v3_like_96.tflite": ("MobileNetV3-style 96x96 (generated)", ("cortex-m4", "cortex-m7", "fpga"), 16),
    "mobilenet_v3_like_48.tflite": ("MobileNetV3-style 48x48 (generated)", ("cortex-m55", "rv32imc"), 16),
    "mobilenet_v3_like_32.tflite": ("MobileNetV3-style 32x32 (generated)", ("soc-vexriscv",), 16),
}
# Published MLPerf Tiny closed-division results (tiny_results v0.5-v1.3 logs), cycles = latency x clock on silicon.
PUBLISHED = {
    ("KWS DS-CNN", "cortex-m4"): ("ST X-CUBE-AI 9.0, 43.19 ms @ 120 MHz", 5_180_000),
    ("KWS DS-CNN", "cortex-m7"): ("ST, 11.32 ms @ 280 MHz", 3_170_000),
    ("KWS DS-CNN", "cortex-m55"): ("TFLM + CMSIS-NN on a Helium M85, 3.47 ms @ 480 MHz", 1_660_000),
    ("IC ResNet-8", "cortex-m4"): ("ST, 165.1 ms @ 120 MHz", 19_800_000),
    ("VWW MobileNetV1 0.25", "cortex-m4"): ("ST, 88.9 ms @ 120 MHz", 10_700_000),
}


def build(model: Path, target: str, inputs: int, work: Path) -> dict:
    """One `tinycompile build` of a model file, as a user runs it; its report.json (or the failure)."""
    out = work / f"{model.stem}-{target}"
    cmd = [sys.executable, "-m", "tinycompile.cli", "build", str(model), "--target", target, "-o", str(out),
           "--vectors", str(inputs)]
    cmd += ["--array", "8"] if target in ("fpga", "soc-vexriscv") else ["--codegen", "llvm"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT.parent)
    seconds = time.perf_counter() - start
    report_path = out / "report.json"
    if not report_path.is_file():
        return {"error": (proc.stderr.strip().splitlines() or ["no report"])[-1], "seconds": seconds}
    report = json.loads(report_path.read_text())
    return {"report": report, "exit_code": proc.returncode, "seconds": seconds}


def write_generated(folder: Path) -> None:
    """The models of ``GENERATED``, written with the test suite's TFLite writer."""
    sys.path.insert(0, str(ROOT.parent / "tests"))
    from tflite_models import mobilenet_v3_like

    for size in (96, 48, 32):
        builder, out = mobilenet_v3_like(seed=0, size=size, width=16)
        builder.save(folder / f"mobilenet_v3_like_{size}.tflite", [out])


def summarize(name: str, target: str, result: dict) -> dict:
    """The row of the table: verdicts, counts, memory, the anchors."""
    row = {"model": name, "target": target, "seconds": round(result["seconds"], 1)}
    if "error" in result:
        return {**row, "error": result["error"]}
    r = result["report"]
    oracles = r.get("oracles", {})
    ref = oracles.get("tflite_reference", {})
    micro = oracles.get("tflite_micro", {})
    row.update(exit_code=result["exit_code"], bit_exact_vs_integer_reference=r["bit_exact"],
               bit_exact_vs_tflite_reference=ref.get("bit_exact"), inputs=ref.get("inputs"),
               tflm_arena_bytes=micro.get("arena_bytes"),
               tflm_mismatched_inputs_vs_reference=micro.get("mismatched_inputs_vs_reference"))  # fmt: skip
    lat, mem, backend = r["latency"], r["memory"], r["backend"]
    row.update({r["unit"]: lat["measured"], "predicted": lat["predicted"], "latency_ms": lat["measured_ms"],
                "energy_uj": r["energy"]["measured_uj"], "arena_bytes": mem["arena_bytes"], "flash_bytes": mem["flash_bytes"],
                "host_layers": [x["index"] for x in r["layers"] if str(x["ran_on"]).startswith("host")]})
    if backend.get("kind") == "soc":  # the accelerator's and the core's share of the SoC's cycles
        accel = backend["accelerator"]
        row.update(accelerator_cycles=accel["accelerator_cycles"], core_layer_cycles=accel["core_layer_cycles"],
                   mac_efficiency=accel["mac_efficiency"])
    elif r["unit"] == "cycles":
        row.update(mac_efficiency=backend["total"]["mac_efficiency"])
    else:
        row.update(instructions_per_mac=backend["instructions_per_mac"])
    anchor = PUBLISHED.get((name, target))
    if anchor:
        row.update(published=anchor[0], published_cycles=anchor[1])
    return row


def table(rows: list[dict]) -> Table:
    t = Table(title="int8 models imported from .tflite (bit-exact vs TFLite's reference kernels)")
    for col in ("model", "target", "vs TFLite ref", "instructions / cycles", "arena B (TFLM)", "flash B", "published (cycles)"):
        t.add_column(col, justify="left" if col in ("model", "target", "vs TFLite ref") else "right")
    for r in rows:
        if "error" in r:
            t.add_row(r["model"], r["target"], f"[red]{r['error'][:60]}[/]", "", "", "", "")
            continue
        verdict = "bit-exact" if r["bit_exact_vs_tflite_reference"] and r["bit_exact_vs_integer_reference"] else "[red]DIFFERS[/]"
        count = f"{r['cycles']:,.0f} cyc" if "cycles" in r else f"{r['instructions']:,.0f} instr"
        ours = f"{r['arena_bytes']:,}" if r.get("arena_bytes") is not None else "-"
        arena = f"{ours} ({r['tflm_arena_bytes']:,})" if r.get("tflm_arena_bytes") else ours
        pub = f"{r['published_cycles']:,}" if r.get("published_cycles") else ""
        t.add_row(r["model"], r["target"], f"{verdict} ({r['inputs']})", count, arena, f"{r.get('flash_bytes', '-')}", pub)
    return t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="the folder of model files (default $TINYCOMPILE_MODELS or bench/models)")
    parser.add_argument("--only", help="build only this model file (e.g. kws_ref_model.tflite)")
    args = parser.parse_args()
    models = args.models or Path(os.environ.get("TINYCOMPILE_MODELS", ROOT / "models"))
    if args.models and not any((models / file).is_file() for file in MODELS):
        print(f"bench_import: {models} holds none of {', '.join(MODELS)} (see the docstring)", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_generated(Path(tmp))
        for file, (name, targets, inputs) in {**MODELS, **GENERATED}.items():
            path = (Path(tmp) if file in GENERATED else models) / file
            if not path.is_file() or (args.only and file != args.only):
                continue
            for target in targets:
                print(f"{name} on {target} ...", file=sys.stderr, flush=True)
                rows.append(summarize(name, target, build(path, target, inputs, Path(tmp))))
    Console(width=160).print(table(rows))
    out = ROOT / "results" / "import.json"
    out.parent.mkdir(exist_ok=True)
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps({"date": str(date.today()), "command": "python bench/bench_import.py --models DIR",
                                   "rows": rows}, indent=1) + "\n")
    tmp_out.replace(out)
    failed = [r for r in rows if "error" in r or not (r["bit_exact_vs_tflite_reference"] and r["bit_exact_vs_integer_reference"])]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

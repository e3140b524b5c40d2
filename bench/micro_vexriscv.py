"""The SoC core's timing table against its RTL: cycles of short instruction patterns on the VexRiscv SoC (mcycle,
1,024 copies each, the empty loop subtracted) beside the soc-vexriscv target's ``timing:`` model's price of the same
patterns (tinycompile/soc/microbench.py lists them: one per rule of the table).

Run: ``.venv/bin/python bench/micro_vexriscv.py`` (~1 M simulated cycles, ~30 s) -> a table,
bench/results/micro_vexriscv.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tinycompile.mcu.timing import TimingModel
from tinycompile.soc.microbench import PATTERNS, measure, model_cycles
from tinycompile.targets import load_target

ROOT = Path(__file__).resolve().parent


def main() -> int:
    """Measure every pattern on the RTL, price it with the model, print and save both."""
    target = load_target("soc-vexriscv")
    model = TimingModel.from_section(target.raw["timing"], target.path)
    with tempfile.TemporaryDirectory() as tmp:
        measured = measure(target, Path(tmp))
    table = Table(title="VexRiscv SoC (RTL): cycles per pattern, measured and modelled")
    for col in ("pattern", "instructions", "RTL", "model", "tolerance"):
        table.add_column(col, justify="left" if col in ("pattern", "instructions") else "right")
    rows = []
    for p in PATTERNS:
        m = model_cycles(model, p)
        rows.append({"pattern": p.name, "body": list(p.body), "rtl_cycles": round(measured[p.name], 3),
                     "model_cycles": m, "tolerance": p.tolerance})
        table.add_row(p.name, "; ".join(p.body[:4]) + (" ..." if len(p.body) > 4 else ""), f"{measured[p.name]:.2f}",
                      f"{m:g}", f"{p.tolerance:g}")
    Console(width=140).print(table)
    off = [r["pattern"] for r in rows if abs(r["rtl_cycles"] - r["model_cycles"]) > r["tolerance"]]
    print(f"patterns beyond their tolerance: {', '.join(off) or 'none'}")
    out = {"date": date.today().isoformat(), "command": "python bench/micro_vexriscv.py", "patterns": rows}
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "micro_vexriscv.json").write_text(json.dumps(out, indent=1) + "\n")
    return 1 if off else 0


if __name__ == "__main__":
    sys.exit(main())

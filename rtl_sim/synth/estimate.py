"""Synthesis estimates for the accelerator: yosys synth_ice40 / synth_ecp5, nextpnr-ice40 for Fmax.

Usage: ``python rtl_sim/synth/estimate.py [--n 4 8] [--out rtl_sim/synth/estimate.json]``.
Synthesises tc_accel with small "FPGA" scratchpads (the simulation defaults would not fit any
iCE40), prints a table (rich if available) and writes JSON. Fmax comes from nextpnr-ice40 (UP5K,
``--timing-allow-fail``) when the design fits, else it is reported as missing.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path

RTL = Path(__file__).resolve().parents[1] / "rtl"
ORDER = ["tc_fifo", "tc_ram_1r1w", "tc_mac_array", "tc_requant", "tc_agu", "tc_mem_arb", "tc_load",
         "tc_compute", "tc_postproc", "tc_store", "tc_fetch", "tc_accel"]
# Scratchpads sized for a small FPGA: 4 KB inputs, 2 KB weights (N=8), 4 KB accumulators.
FPGA_PARAMS = {"InpDepth": 512, "WgtTiles": 32, "AccDepth": 128, "OutDepth": 128, "ParamSets": 8,
               "QueueDepth": 4}


def _yosys(n: int, target: str, workdir: Path, timeout: int) -> tuple[dict[str, int], Path]:
    """Run yosys for one target; return cell counts and the netlist JSON path."""
    params = " ".join(f"-set {k} {v}" for k, v in {"N": n, **FPGA_PARAMS}.items())
    netlist = workdir / f"{target}_n{n}.json"
    synth = {"ice40": f"synth_ice40 -dsp -top tc_accel -json {netlist}",
             "ecp5": f"synth_ecp5 -top tc_accel -json {netlist}"}[target]
    script = "\n".join([
        "read_verilog -sv " + " ".join(str(RTL / f"{m}.sv") for m in ORDER),
        f"chparam {params} tc_accel",
        synth,
        "tee -o " + str(workdir / f"{target}_n{n}.stat") + " stat",
    ])
    (workdir / "s.ys").write_text(script)
    subprocess.run(["yosys", "-q", "-s", str(workdir / "s.ys")], check=True, timeout=timeout,
                   capture_output=True)
    text = (workdir / f"{target}_n{n}.stat").read_text()
    cells: dict[str, int] = {}
    for m in re.finditer(r"^\s+(\S+)\s+(\d+)\s*$", text, re.M):
        cells[m.group(1)] = int(m.group(2))
    return cells, netlist


def _nextpnr(netlist: Path, timeout: int) -> float | None:
    """Place and route on an iCE40 UP5K; return Fmax in MHz, or None if it does not fit."""
    try:
        res = subprocess.run(["nextpnr-ice40", "--up5k", "--package", "sg48", "--json", str(netlist),
                              "--timing-allow-fail", "--freq", "12"], capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    found = re.findall(r"Max frequency for clock[^:]*: ([\d.]+) MHz", res.stderr)
    return float(found[-1]) if found and res.returncode == 0 else None


def array_fmax(n: int, timeout: int = 900) -> dict[str, object]:
    """The whole design does not fit any iCE40, so place the MAC array alone on an HX8K for an Fmax."""
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        net = wd / "arr.json"
        harness = Path(__file__).resolve().parent / "tc_array_harness.sv"
        (wd / "a.ys").write_text(f"read_verilog -sv {RTL / 'tc_mac_array.sv'} {harness}\n"
                                 f"chparam -set N {n} tc_array_harness\n"
                                 f"synth_ice40 -top tc_array_harness -json {net}\n"
                                 f"tee -o {wd / 'a.stat'} stat\n")
        subprocess.run(["yosys", "-q", "-s", str(wd / "a.ys")], check=True, timeout=timeout, capture_output=True)
        luts = [int(m.group(1)) for m in re.finditer(r"SB_LUT4\s+(\d+)", (wd / "a.stat").read_text())]
        try:
            res = subprocess.run(["nextpnr-ice40", "--hx8k", "--package", "ct256", "--json", str(net),
                                  "--timing-allow-fail", "--freq", "12"], capture_output=True, text=True,
                                 timeout=timeout)
            found = re.findall(r"Max frequency for clock[^:]*: ([\d.]+) MHz", res.stderr)
            fmax = float(found[-1]) if found and res.returncode == 0 else None
        except subprocess.TimeoutExpired:
            fmax = None
    return {"n": n, "luts": luts[-1] if luts else None, "fmax_mhz": fmax}


def estimate(n: int, timeout: int = 1800) -> dict[str, object]:
    """Synthesise one array size for iCE40 and ECP5; return the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        ice, ice_net = _yosys(n, "ice40", wd, timeout)
        ecp, _ = _yosys(n, "ecp5", wd, timeout)
        ice_luts = ice.get("SB_LUT4", 0)
        fmax = _nextpnr(ice_net, timeout) if ice_luts <= 5280 and ice.get("SB_MAC16", 0) <= 8 else None
    return {
        "n": n,
        "params": FPGA_PARAMS,
        "ice40": {"luts": ice_luts, "ffs": sum(v for k, v in ice.items() if k.startswith("SB_DFF")),
                  "dsp": ice.get("SB_MAC16", 0), "bram": ice.get("SB_RAM40_4K", 0),
                  "carry": ice.get("SB_CARRY", 0),
                  "fmax_mhz": fmax, "fits_up5k": fmax is not None},
        "ecp5": {"luts": ecp.get("LUT4", 0), "ffs": ecp.get("TRELLIS_FF", 0),
                 "mult18": ecp.get("MULT18X18D", 0), "bram": ecp.get("DP16KD", 0),
                 "lutram": ecp.get("TRELLIS_DPR16X4", 0), "ccu2": ecp.get("CCU2C", 0)},
    }


def _arr(r: dict[str, object]) -> str:
    a = r.get("ice40_hx8k_mac_array_only")
    if not a:
        return "-"
    fm = f"{a['fmax_mhz']:.1f} MHz" if a["fmax_mhz"] else "no fit"
    return f"{a['luts']} LUT, {fm}"


def print_table(rows: list[dict[str, object]]) -> None:
    """Print the estimates (rich table if available)."""
    head = ["N", "iCE40 LUT4", "iCE40 FF", "SB_MAC16", "SB_RAM40", "UP5K Fmax", "ECP5 LUT4",
            "ECP5 FF", "MULT18", "DP16KD", "HX8K array-only"]
    body = []
    for r in rows:
        i, e = r["ice40"], r["ecp5"]
        fm = f"{i['fmax_mhz']:.1f} MHz" if i["fmax_mhz"] else "does not fit"
        body.append([str(r["n"]), str(i["luts"]), str(i["ffs"]), str(i["dsp"]), str(i["bram"]), fm,
                     str(e["luts"]), str(e["ffs"]), str(e["mult18"]), str(e["bram"]), _arr(r)])
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title="tc_accel synthesis (yosys 0.23; FPGA scratchpads " + json.dumps(FPGA_PARAMS) + ")")
        for h in head:
            t.add_column(h)
        for b in body:
            t.add_row(*b)
        Console().print(t)
    except ImportError:
        print(" | ".join(head))
        for b in body:
            print(" | ".join(b))


def main() -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "estimate.json"))
    args = ap.parse_args()
    rows = [estimate(n) for n in args.n]
    for r in rows:
        r["ice40_hx8k_mac_array_only"] = array_fmax(int(r["n"]))
    Path(args.out).write_text(json.dumps(rows, indent=2))
    print_table(rows)


if __name__ == "__main__":
    main()

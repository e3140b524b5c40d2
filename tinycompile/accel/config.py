"""The accelerator's configuration, from one place: the ``accelerator:`` section of ``hw_targets/fpga.yaml``.

The array size (``array``), the scratchpads (``input_buffer_kb``, ``weight_buffer_kb``, ``acc_buffer_kb``,
``output_buffer_kb``, ``param_sets``) and the input scratchpad's read ports (``window_rows``) are read from that file
(or a user's target file) and nowhere else. One type,
:class:`AccelConfig`, carries them to the program generator, the cost model, the ISA model and, through
:meth:`AccelConfig.rtl_parameters`, the ``tc_accel`` parameters every simulation, lint run and synthesis is built with
(the RTL has no defaults of its own), so a program always runs on the scratchpad sizes it was cut for. Scratchpads
are given in bytes so every array size gets the same memory. The synthesis estimates use smaller scratchpads that
fit an FPGA's block RAM (``synthesis:`` in the same section).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tinycompile.accel.isa import ACC_LANE_BYTES

SIZE_KEYS = ("input_buffer_kb", "weight_buffer_kb", "acc_buffer_kb", "output_buffer_kb", "param_sets")
ARRAYS = (4, 8, 16)  # array sizes the RTL elaborates (lint clean, tested)


@dataclass(frozen=True)
class AccelConfig:
    """Sizes of one accelerator configuration (must equal the RTL parameters the program runs on).

    Frozen and hashable: the cost model caches layer timings per (geometry, configuration).
    """

    n: int  # the array is n x n; the memory bus and every scratchpad word is n bytes
    inp_depth: int  # INP words
    wgt_tiles: int  # WGT tiles of n x n bytes
    acc_depth: int  # ACC rows of n int32
    out_depth: int  # OUT words
    param_sets: int  # PARAM sets of 3 rows of n int32
    inp_ports: int = 1  # INP read ports: kernel rows one window-mode pass sums side by side (``window_ports``)

    @classmethod
    def for_array(cls, n: int, accelerator: Mapping[str, Any] | None = None) -> AccelConfig:
        """Sizes for an ``n`` x ``n`` array from a target's ``accelerator:`` section (bytes kept equal across N; keys
        it leaves out, or all with None, are the shipped fpga target's)."""
        a = {**shipped_accelerator(), **(accelerator or {})}
        return cls(
            n=n,
            inp_depth=int(float(a["input_buffer_kb"]) * 1024) // n,  # N int8 per word
            wgt_tiles=int(float(a["weight_buffer_kb"]) * 1024) // (n * n),  # N x N int8 per tile
            acc_depth=int(float(a["acc_buffer_kb"]) * 1024) // (ACC_LANE_BYTES * n),  # N int32 per row
            out_depth=int(float(a["output_buffer_kb"]) * 1024) // n,
            param_sets=int(a["param_sets"]),
            inp_ports=window_ports(n, int(a["window_rows"])),
        )

    def rtl_parameters(self) -> dict[str, int]:
        """The ``tc_accel`` parameters of this configuration (names as in the RTL)."""
        return {"N": self.n, "InpDepth": self.inp_depth, "WgtTiles": self.wgt_tiles, "AccDepth": self.acc_depth,
                "OutDepth": self.out_depth, "ParamSets": self.param_sets, "InpPorts": self.inp_ports}


def window_ports(n: int, window_rows: int) -> int:
    """INP read ports of an ``n`` x ``n`` array: ``window_rows`` at most, and no more 3-tap kernel rows than fit side
    by side in its ``n`` rows (each port is a copy of INP, so one that no 3x3 window can use is not built)."""
    return max(1, min(window_rows, n // 3))


@lru_cache(maxsize=1)
def shipped_accelerator() -> dict[str, Any]:
    """The ``accelerator:`` section of the shipped ``hw_targets/fpga.yaml``."""
    from tinycompile.targets import load_target

    section = dict(load_target("fpga").accelerator)
    missing = [k for k in ("array", "window_rows", *SIZE_KEYS) if k not in section]
    if missing:
        raise ValueError(f"hw_targets/fpga.yaml: accelerator: lacks {', '.join(missing)}")
    return section


def default_array() -> int:
    """The array size of the shipped fpga target."""
    return int(shipped_accelerator()["array"])


def synthesis_parameters(n: int) -> dict[str, int]:
    """The ``tc_accel`` parameters (besides ``N``) the synthesis estimates of an ``n`` x ``n`` array use: scratchpads
    small enough for an FPGA's block RAM, the unit queue depth and the simulated configuration's INP read ports."""
    acc = shipped_accelerator()
    section = acc.get("synthesis")
    if not isinstance(section, dict):
        raise ValueError("hw_targets/fpga.yaml: accelerator: lacks the synthesis: mapping")
    return {**{str(k): int(v) for k, v in section.items()}, "InpPorts": window_ports(n, int(acc["window_rows"]))}

"""The one description of an accelerator configuration: the ``tc_accel`` parameters a program is generated for.

The program generator, the cost model, the ISA model and the RTL test bench all take this type, so a program is
always run on the scratchpad sizes it was cut for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinycompile.accel.isa import ACC_BYTES, ACC_LANE_BYTES, INP_BYTES, OUT_BYTES, PARAM_SETS, WGT_BYTES

ARRAYS = (4, 8, 16)  # array sizes the RTL elaborates


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

    @classmethod
    def for_array(cls, n: int, accelerator: dict[str, Any] | None = None) -> AccelConfig:
        """Sizes for an ``n`` x ``n`` array from a target's ``accelerator:`` section (bytes kept equal across N;
        without one, the RTL's defaults: 32 KB of inputs, weights and accumulators, 8 KB of outputs, 64 sets)."""
        a = accelerator or {}
        kib = {key: float(a.get(key, default / 1024)) * 1024 for key, default in (
            ("input_buffer_kb", INP_BYTES), ("weight_buffer_kb", WGT_BYTES), ("acc_buffer_kb", ACC_BYTES),
            ("output_buffer_kb", OUT_BYTES))}
        return cls(
            n=n,
            inp_depth=int(kib["input_buffer_kb"]) // n,
            wgt_tiles=int(kib["weight_buffer_kb"]) // (n * n),
            acc_depth=int(kib["acc_buffer_kb"]) // (ACC_LANE_BYTES * n),
            out_depth=int(kib["output_buffer_kb"]) // n,
            param_sets=int(a.get("param_sets", PARAM_SETS)),
        )

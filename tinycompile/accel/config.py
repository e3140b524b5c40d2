"""The accelerator's sizes, from one place: the ``accelerator:`` section of ``hw_targets/fpga.yaml``.

The array size (``array``) and the scratchpads (``input_buffer_kb``, ``weight_buffer_kb``, ``acc_buffer_kb``,
``output_buffer_kb``, ``param_sets``) are read from that file and nowhere else: the compiler's
:class:`~tinycompile.fpga.plan.AccelParams`, the RTL runner's :class:`~tinycompile.accel.kernels.AccelConfig` and,
through :func:`rtl_parameters`, the ``tc_accel`` parameters every simulation, lint run and synthesis is built with
(the RTL has no defaults of its own). Scratchpads are given in bytes so every array size gets the same memory.
The synthesis estimates use smaller scratchpads that fit an FPGA's block RAM (``synthesis:`` in the same section).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

SIZE_KEYS = ("input_buffer_kb", "weight_buffer_kb", "acc_buffer_kb", "output_buffer_kb", "param_sets")
ARRAYS = (4, 8, 16)  # array sizes the RTL elaborates (lint clean, tested)


@lru_cache(maxsize=1)
def shipped_accelerator() -> dict[str, Any]:
    """The ``accelerator:`` section of the shipped ``hw_targets/fpga.yaml``."""
    from tinycompile.targets import load_target

    section = dict(load_target("fpga").accelerator)
    missing = [k for k in ("array", *SIZE_KEYS) if k not in section]
    if missing:
        raise ValueError(f"hw_targets/fpga.yaml: accelerator: lacks {', '.join(missing)}")
    return section


def default_array() -> int:
    """The array size of the shipped fpga target."""
    return int(shipped_accelerator()["array"])


def scratchpad_depths(n: int, accelerator: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Scratchpad depths for an ``n`` x ``n`` array, as ``AccelConfig`` / ``AccelParams`` fields.

    ``accelerator`` is a target's ``accelerator:`` section (``--target my.yaml``); keys it leaves out are the shipped
    fpga target's."""
    a = {**shipped_accelerator(), **(accelerator or {})}
    return dict(
        inp_depth=int(float(a["input_buffer_kb"]) * 1024) // n,  # N int8 per word
        wgt_tiles=int(float(a["weight_buffer_kb"]) * 1024) // (n * n),  # N x N int8 per tile
        acc_depth=int(float(a["acc_buffer_kb"]) * 1024) // (4 * n),  # N int32 per row
        out_depth=int(float(a["output_buffer_kb"]) * 1024) // n,
        param_sets=int(a["param_sets"]),
    )


def rtl_parameters(n: int, inp_depth: int, wgt_tiles: int, acc_depth: int, out_depth: int,
                   param_sets: int) -> dict[str, int]:
    """The ``tc_accel`` parameters of one configuration (names as in the RTL)."""
    return {"N": n, "InpDepth": inp_depth, "WgtTiles": wgt_tiles, "AccDepth": acc_depth, "OutDepth": out_depth,
            "ParamSets": param_sets}


def synthesis_parameters() -> dict[str, int]:
    """The ``tc_accel`` parameters (besides ``N``) the synthesis estimates use: scratchpads small enough for an FPGA's
    block RAM, and the unit queue depth."""
    section = shipped_accelerator().get("synthesis")
    if not isinstance(section, dict):
        raise ValueError("hw_targets/fpga.yaml: accelerator: lacks the synthesis: mapping")
    return {str(k): int(v) for k, v in section.items()}

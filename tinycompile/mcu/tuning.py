"""Per-core schedule choices of the MCU back end: what a target YAML's ``build.schedule:`` section may set.

The schedules (``schedules``) are the same for every core but for these few knobs, whose best value depends on the
core's pipeline (measured with the ``timing:`` tables on DS-CNN, bench/RESULTS_mcu.md). A target without the
section gets the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from tinycompile.errors import UserError
from tinycompile.mcu.microkernels import LOAD_ORDERS

DWCONV_CHANNELS = (4, 8)
DWCONV_PHASES = ("loop", "unrolled")


@dataclass(frozen=True)
class ScheduleChoices:
    """Knobs of the DSP schedules with LLVM (C builds take the defaults). ``dwconv_channels``: channels per
    depthwise register tile (four per ``SMLA_MUL4``; eight loads each tap's input once per two intrinsics, fewer
    loads but more live registers).
    ``pointwise_loads``: the loads of the pointwise register tile (``microkernels``): ``pairs`` (LDRD) or single
    weight loads ``interleaved`` with the multiply-accumulates (a dual-issue core).
    ``dwconv_phases``: the depthwise conv over row pairs runs its even and its odd output rows in a ``loop`` of two,
    or ``unrolled`` (LLVM then allocates registers and if-converts differently per core)."""

    dwconv_channels: int = 4
    pointwise_loads: str = "pairs"
    dwconv_phases: str = "loop"


DEFAULT = ScheduleChoices()


def choices_from(section: Any, where: str) -> ScheduleChoices:
    """The choices of a YAML ``build.schedule`` mapping (absent: the defaults); ``where`` names the file in errors."""
    if section is None:
        return DEFAULT
    if not isinstance(section, dict):
        raise UserError(f"{where}: build.schedule must be a mapping, e.g. {{dwconv_channels: 8}}")
    known = {f.name for f in fields(ScheduleChoices)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise UserError(f"{where}: unknown key(s) in build.schedule: {', '.join(map(str, unknown))}; known: {', '.join(sorted(known))}")
    channels = section.get("dwconv_channels", DEFAULT.dwconv_channels)
    if isinstance(channels, bool) or channels not in DWCONV_CHANNELS:
        raise UserError(f"{where}: build.schedule.dwconv_channels must be one of {', '.join(map(str, DWCONV_CHANNELS))}, but got {channels!r}")
    loads = section.get("pointwise_loads", DEFAULT.pointwise_loads)
    if loads not in LOAD_ORDERS:
        raise UserError(f"{where}: build.schedule.pointwise_loads must be one of {', '.join(LOAD_ORDERS)}, "
                        f"but got {loads!r}")
    phases = section.get("dwconv_phases", DEFAULT.dwconv_phases)
    if phases not in DWCONV_PHASES:
        raise UserError(f"{where}: build.schedule.dwconv_phases must be one of {', '.join(DWCONV_PHASES)}, "
                        f"but got {phases!r}")
    return ScheduleChoices(dwconv_channels=int(channels), pointwise_loads=str(loads), dwconv_phases=str(phases))

"""How the MCU back end lays out a layer's constants in flash: shared by its kernels and by the search's cost model.

Pure Python (no TVM, no numpy), so ``tinycompile.cost`` can predict flash exactly the way a build stores it: on Arm
cores with the DSP extension, conv weights are packed as int16 groups of four taps along a reduction axis rounded up
to a multiple of four, and depthwise weights as int16 when the channels are a multiple of four; everything else is
int8. Each weighted layer also carries per-channel int32 requantization tables.
"""

from __future__ import annotations

from math import prod

DSP_CPUS = ("cortex-m4", "cortex-m7", "cortex-m33", "cortex-m35p", "cortex-m55")
TABLE_BYTES_PER_CHANNEL = (12, 16)  # int32 (bias, multiplier, shift), or the fast form's one (C, 4) int32 table


def uses_dsp(llvm_target: dict | None) -> bool:
    """Whether the LLVM target is an Arm core with the DSP extension."""
    return bool(llvm_target) and str(llvm_target.get("mcpu", "")) in DSP_CPUS


def _up4(v: int) -> int:
    return -(-v // 4) * 4


def dot_axis(op: str, cin: int, kernel: tuple[int, int]) -> str | None:
    """Which reduction axis a packed 4-way int8 dot product runs along: input channels (rounded up to a multiple
    of four when that adds at most a third: 3 -> 4, 6 -> 8, 9 -> 12), kernel columns for one input channel (rounded
    up likewise), none (measured on M4: 2 -> 4 channels, twice the MACs, is slower than the portable loop)."""
    if op != "conv":
        return None
    if cin == 1:
        return "kw" if 3 * _up4(kernel[1]) <= 4 * kernel[1] else None
    return "ci" if 3 * _up4(cin) <= 4 * cin else None


def weight_bytes(op: str, cin: int, cout: int, kernel: tuple[int, int], dsp: bool) -> int:
    """Bytes of a conv / dwconv / dense weight as the kernel reads it (int8, or the DSP schedules' int16 packing)."""
    kh, kw = kernel
    if op == "dense":
        return cin * cout
    if op == "dwconv":
        return kh * kw * cout * (2 if dsp and cout % 4 == 0 else 1)
    axis = dot_axis(op, cin, kernel) if dsp else None
    if axis == "ci":
        return 2 * cout * kh * kw * _up4(cin)
    if axis == "kw":
        return 2 * cout * kh * _up4(kw)
    return prod((cout, kh, kw, cin))


def constant_bytes(op: str, cin: int, cout: int, kernel: tuple[int, int], dsp: bool) -> int:
    """Flash bytes of a weighted layer's constants: its weight and, at most, its requantization tables."""
    return weight_bytes(op, cin, cout, kernel, dsp) + cout * max(TABLE_BYTES_PER_CHANNEL)

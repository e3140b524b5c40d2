"""How the MCU back end lays out a layer's constants in flash: shared by its kernels and by the search's cost model.

Pure Python (no TVM, no numpy), so ``tinycompile.cost`` can predict flash exactly the way a build stores it: on Arm
cores with the DSP extension, conv weights are packed as int16 groups of four taps along a reduction axis rounded up
to a multiple of four, and depthwise weights as int16 when the channels are a multiple of four (in pairs of kernel
rows where the layer runs over row pairs, ``row_pairs``); everything else is int8. Each weighted layer also carries
per-channel int32 requantization tables.
"""

from __future__ import annotations

from math import prod

DSP_CPUS = ("cortex-m4", "cortex-m7", "cortex-m33", "cortex-m35p", "cortex-m55", "cortex-m85")
MVE_CPUS = ("cortex-m55", "cortex-m85")  # Armv8.1-M with the integer M-profile vector extension (Helium)
SIMD = ("dsp", "mve")  # the values of a target's build.simd
MVE_LANES = 16  # int8 lanes of a Helium vector
TABLE_BYTES_PER_CHANNEL = (12, 16)  # int32 (bias, multiplier, shift), or the fast form's one (C, 4) int32 table


def uses_dsp(llvm_target: dict | None) -> bool:
    """Whether the LLVM target is an Arm core with the DSP extension."""
    return bool(llvm_target) and str(llvm_target.get("mcpu", "")) in DSP_CPUS


def simd_kind(llvm_target: dict | None, simd: str | None = None) -> str | None:
    """The SIMD schedules a build uses: ``simd`` (the target's ``build.simd``, checked by ``check_simd``) where set,
    else ``"dsp"`` on Arm cores with the DSP extension, else None (the portable schedules)."""
    if simd is not None:
        return simd
    return "dsp" if uses_dsp(llvm_target) else None


def check_simd(llvm_target: dict | None, simd: object) -> str | None:
    """The reason a target's ``build.simd`` cannot be used on its core, or None when it can."""
    cpu = str((llvm_target or {}).get("mcpu", ""))
    if simd not in SIMD:
        return f"build.simd must be one of {', '.join(SIMD)}, but got {simd!r}"
    if simd == "mve" and cpu not in MVE_CPUS:
        return f"build.simd mve needs a core with Helium ({', '.join(MVE_CPUS)}), but build.llvm_target.mcpu is {cpu or 'unset'}"
    if cpu not in DSP_CPUS:
        return f"build.simd {simd} needs an Arm core with the DSP extension ({', '.join(DSP_CPUS)}), but build.llvm_target.mcpu is {cpu or 'unset'}"
    return None


def mve_conv(op: str, cin: int, kernel: tuple[int, int]) -> bool:
    """Whether a conv's Helium schedule reads its weight as it is (int8): input channels in whole vectors, or one
    input channel and windows of whole half vectors (eight taps)."""
    return op == "conv" and (cin % MVE_LANES == 0 or (cin == 1 and kernel[0] * kernel[1] % (MVE_LANES // 2) == 0))


def mve_dwconv(op: str, channels: int) -> bool:
    """Whether a depthwise conv's Helium schedule reads its weight as it is (int8, channels in whole vectors)."""
    return op == "dwconv" and channels % MVE_LANES == 0


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


MAX_PAIR_GROUPS = 64  # groups of four taps the pixel-pair tile unrolls (its code size)
PAIR_INPUT_MAX = 2048  # bytes: the largest padded (or channel-rounded) input a pixel-pair conv copies whole


def pair_groups(cin: int, kernel: tuple[int, int]) -> int:
    """Groups of four taps in one output's reduction when it runs along ``dot_axis`` (0: no axis packs)."""
    axis = dot_axis("conv", cin, kernel)
    kh, kw = kernel
    return kh * kw * _up4(cin) // 4 if axis == "ci" else kh * _up4(kw) // 4 if axis == "kw" else 0


def pixel_pairs(op: str, cin: int, cout: int, kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, ...], out_hw: tuple[int, int] | None = None) -> bool:
    """Whether a conv on a DSP core runs as the GEMM over pixel pairs of ``microkernels``' register tile: a packed
    dot axis (``dot_axis``) of 2 to ``MAX_PAIR_GROUPS`` groups of four taps (TVM drops a loop of one group, which
    the tile's description keeps), output channels a multiple of four, and, unless the layer is unpadded on
    input channels in fours (it reads its input as it is), a copy of the input padded and rounded up along the
    dot axis within ``PAIR_INPUT_MAX`` bytes (``out_hw``: the output's rows and columns)."""
    if op != "conv" or cout % 4 or not 2 <= pair_groups(cin, kernel) <= MAX_PAIR_GROUPS:
        return False
    if cin > 1 and cin % 4 == 0 and not any(padding):
        return True
    if out_hw is None:
        return False
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_hw
    rows, cols = (ho - 1) * sh + kh, (wo - 1) * sw + kw
    copied = rows * (cols + _up4(kw) - kw) if cin == 1 else rows * cols * _up4(cin)
    return copied <= PAIR_INPUT_MAX


ROW_PAIR_PLANE_MAX = 2048  # bytes of the row-pair plane of four channels a depthwise kernel copies its input into


def row_pair_rows(kh: int, sh: int, ho: int) -> int:
    """Rows of pairs in a depthwise layer's row-pair plane: output row ``h`` (of ``ho`` rounded up to even) reads the
    ``kh // 2 + 1`` pairs from padded row ``sh h`` rounded down to even."""
    return (sh * (ho + ho % 2 - 1)) // 2 + kh // 2 + 1


def row_pairs(op: str, channels: int, kernel: tuple[int, int], stride: tuple[int, int],
              out_hw: tuple[int, int] | None) -> bool:
    """Whether a depthwise conv on a DSP core runs over row pairs (``te_ops._dwconv_row_pairs``): channels in
    fours, three kernel rows or more (fewer give one useful product per SMLAD, as the halfword multiplies of the
    other schedule do), and the padded input of four channels as pairs of halfwords within ``ROW_PAIR_PLANE_MAX``
    bytes."""
    if op != "dwconv" or channels % 4 or kernel[0] < 3 or out_hw is None:
        return False
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_hw
    return 16 * row_pair_rows(kh, sh, ho) * ((wo - 1) * sw + kw) <= ROW_PAIR_PLANE_MAX


def kernel_path(op: str, cin: int, cout: int, kernel: tuple[int, int], simd: str | None,
                stride: tuple[int, int] = (1, 1), padding: tuple[int, ...] = (0, 0, 0, 0),
                out_hw: tuple[int, int] | None = None) -> str:
    """Which kind of loop a conv or depthwise layer runs on a core whose build uses ``simd`` (a ``simd_kind``), by
    the tests its schedules use: ``mve`` (Helium), ``pairs`` (the DSP extension's pixel-pair GEMM), ``rowpairs``
    (its depthwise over row pairs; ``out_hw``: the output's rows and columns), ``dsp`` (its other dot products),
    ``portable`` (a conv neither takes on a SIMD core) or ``scalar`` (a core without SIMD, and every other op)."""
    if simd is None or op not in ("conv", "dwconv"):
        return "scalar"
    if simd == "mve" and (mve_conv(op, cin, kernel) or mve_dwconv(op, cout)):
        return "mve"
    if pixel_pairs(op, cin, cout, kernel, stride, padding, out_hw):
        return "pairs"
    if row_pairs(op, cout, kernel, stride, out_hw):
        return "rowpairs"
    if op == "conv" and dot_axis(op, cin, kernel) is None:
        return "portable"
    return "dsp"


def row_pair_weight_shape(channels: int, kernel: tuple[int, int], stride: tuple[int, int]) -> tuple[int, ...]:
    """The int16 weight of a depthwise conv over row pairs: ``(C, phases, kh // 2 + 1, kw, 2)``, a phase for each
    parity of an output row's first padded row (one when the stride is even)."""
    return (channels, 2 if stride[0] % 2 else 1, kernel[0] // 2 + 1, kernel[1], 2)


def weight_bytes(op: str, cin: int, cout: int, kernel: tuple[int, int], dsp: bool | str | None,
                 stride: tuple[int, int] = (1, 1), out_hw: tuple[int, int] | None = None) -> int:
    """Bytes of a conv / dwconv / dense weight as the kernel reads it (int8, or the DSP schedules' int16 packing);
    ``dsp``: a ``simd_kind`` (True: "dsp"); ``stride`` and ``out_hw`` (rows, columns): a depthwise layer's."""
    kh, kw = kernel
    if op == "dense" or (dsp == "mve" and mve_conv(op, cin, kernel)):
        return cin * cout * kh * kw
    if dsp == "mve" and mve_dwconv(op, cout):
        return kh * kw * cout
    if dsp and row_pairs(op, cout, kernel, stride, out_hw):
        return 2 * prod(row_pair_weight_shape(cout, kernel, stride))
    if op == "dwconv":
        return kh * kw * cout * (2 if dsp and cout % 4 == 0 else 1)
    axis = dot_axis(op, cin, kernel) if dsp else None
    if axis == "ci":
        return 2 * cout * kh * kw * _up4(cin)
    if axis == "kw":
        return 2 * cout * kh * _up4(kw)
    return prod((cout, kh, kw, cin))


def constant_bytes(op: str, cin: int, cout: int, kernel: tuple[int, int], dsp: bool | str | None,
                   stride: tuple[int, int] = (1, 1), out_hw: tuple[int, int] | None = None) -> int:
    """Flash bytes of a weighted layer's constants: its weight and, at most, its requantization tables."""
    return weight_bytes(op, cin, cout, kernel, dsp, stride, out_hw) + cout * max(TABLE_BYTES_PER_CHANNEL)

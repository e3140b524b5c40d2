"""A strided slice of an activation as a ``slice`` layer's fields, for both importers (TFLite's STRIDED_SLICE /
SLICE / SPLIT and the Relax walker's strided_slice / split / flip)."""

from __future__ import annotations

NO_CUT = (0, 0, 1)  # an axis kept whole: nothing cut before or after, step 1


def slice_fields(ranges: dict[str, tuple[int, int, int]], sizes: dict[str, int]
                 ) -> tuple[dict[str, tuple[int, int, int]], range | None]:
    """Per axis letter (N, H, W, C) a Python slice ``(begin, end, step)`` of an axis of ``sizes[letter]`` -> the rows
    and columns cut (``{"H": (before, after, step), "W": ...}``, the rows after the last one kept counted as cut, so
    every way of writing a slice gives one form) and the channels kept (None: all). ValueError for an empty slice, a
    slice of the batch axis or a backwards step along H or W (a mirror image)."""
    cut = {"H": NO_CUT, "W": NO_CUT}
    channels = None
    for letter, (begin, end, step) in ranges.items():
        size = sizes[letter]
        kept = range(*slice(begin, end, step).indices(size)) if step else range(0)
        if not kept:
            raise ValueError(f"an empty slice {begin}:{end}:{step} of the {letter} axis is not supported")
        if kept == range(size):
            continue
        if letter == "N":
            raise ValueError("a slice of the batch axis is not supported")
        if letter == "C":  # any step, backwards too (a flip of the channels)
            channels = kept
        elif kept.step < 0:
            raise ValueError(f"a slice with step {kept.step} of the {letter} axis (a mirror image) is not supported")
        else:
            cut[letter] = (kept[0], size - kept[-1] - 1, kept.step)
    return cut, channels

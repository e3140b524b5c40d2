"""Training-time augmentation of ``(N, C, H, W)`` batches along their time axis, the longer of H and W (an MFCC
image's frames, a 1-D signal's samples; H on ties): a random shift with zero fill (zero is the normalised mean) and a
random masked band, drawn per sample. Used to train a stronger teacher and to make the fixed augmented views students
are distilled on."""

from __future__ import annotations

import numpy as np


def shift_and_mask(x: np.ndarray, rng: np.random.Generator, shift: float = 0.1, mask: float = 0.1) -> np.ndarray:
    """``x`` with each sample shifted along its time axis by up to ``shift`` of its length (either way) and up to
    ``mask`` of it zeroed in one band; a new array, ``x`` untouched."""
    if x.shape[3] > x.shape[2]:
        return shift_and_mask(x.swapaxes(2, 3), rng, shift, mask).swapaxes(2, 3).copy()
    n, _, height, _ = x.shape
    max_shift, max_mask = int(round(shift * height)), int(round(mask * height))
    rows = np.arange(height)
    source = rows[None, :] - rng.integers(-max_shift, max_shift + 1, size=n)[:, None]  # (N, H): the row each reads
    keep = (source >= 0) & (source < height)
    widths = rng.integers(0, max_mask + 1, size=n)[:, None]
    starts = rng.integers(0, height, size=n)[:, None]
    keep &= ~((rows[None, :] >= starts) & (rows[None, :] < starts + widths))
    out = np.take_along_axis(x, np.clip(source, 0, height - 1)[:, None, :, None], axis=2)
    return (out * keep[:, None, :, None]).astype(x.dtype, copy=False)


def views(x: np.ndarray, count: int, seed: int, shift: float = 0.1, mask: float = 0.1) -> np.ndarray:
    """``count`` views of ``x`` stacked ``(count, N, C, H, W)``: the first is ``x`` itself, the others augmented by
    :func:`shift_and_mask` (fixed by ``seed``, so a teacher's logits on them can be computed once)."""
    rng = np.random.default_rng(seed)
    return np.stack([x] + [shift_and_mask(x, rng, shift, mask) for _ in range(count - 1)])

"""Augmentation for training and distillation: a shift along the time axis with zero fill and one masked band."""

from __future__ import annotations

import numpy as np
import pytest

from tinycompile.augment import shift_and_mask, views


def shifted(row: np.ndarray, by: int) -> np.ndarray:
    """``row`` moved ``by`` places later, zeros coming in."""
    out = np.zeros_like(row)
    if by >= 0:
        out[by:] = row[: len(row) - by]
    else:
        out[:by] = row[-by:]
    return out


@pytest.mark.parametrize("shape, axis", [((64, 1, 49, 10), 2), ((64, 1, 1, 40), 3)])
def test_each_sample_is_shifted_along_its_longer_axis(shape: tuple[int, ...], axis: int) -> None:
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    out = shift_and_mask(x, np.random.default_rng(1), shift=0.1, mask=0.0)
    assert out.shape == x.shape and out.dtype == x.dtype
    length = shape[axis]
    limit = round(0.1 * length)
    moved = 0
    for a, b in zip(np.moveaxis(x, axis, -1).reshape(len(x), -1, length),
                    np.moveaxis(out, axis, -1).reshape(len(x), -1, length)):
        matches = [s for s in range(-limit, limit + 1) if all(np.array_equal(shifted(r, s), o) for r, o in zip(a, b))]
        assert len(matches) == 1
        moved += matches[0] != 0
    assert moved > len(x) // 2  # most samples really move


def test_the_mask_zeroes_one_band_and_nothing_else() -> None:
    x = np.random.default_rng(0).normal(size=(32, 1, 49, 10)).astype(np.float32) + 10  # no zeros of its own
    out = shift_and_mask(x, np.random.default_rng(2), shift=0.0, mask=0.2)
    for a, b in zip(x, out):
        zero_rows = np.flatnonzero((b == 0).all(axis=(0, 2)))
        assert len(zero_rows) <= round(0.2 * 49)
        if len(zero_rows):
            assert np.array_equal(zero_rows, np.arange(zero_rows[0], zero_rows[-1] + 1))  # one consecutive band
        kept = np.setdiff1d(np.arange(49), zero_rows)
        assert np.array_equal(a[:, kept], b[:, kept])
    assert (out == 0).any()


def test_views_start_with_the_data_and_are_fixed_by_their_seed() -> None:
    x = np.random.default_rng(0).normal(size=(16, 1, 20, 4)).astype(np.float32)
    v = views(x, 4, seed=3)
    assert v.shape == (4, *x.shape)
    assert np.array_equal(v[0], x)
    assert np.array_equal(v, views(x, 4, seed=3))
    assert not np.array_equal(v[1], v[2]) and not np.array_equal(v[1], x)

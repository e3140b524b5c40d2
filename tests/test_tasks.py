"""Tasks: the built-in data sets have their standard shapes and splits; a user's .npz is loaded or refused clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinycompile.errors import UserError
from tinycompile.tasks import load_task, resize_task


def test_mnist1d_is_the_standard_split(mnist1d) -> None:
    assert mnist1d.input_shape == (1, 1, 40) and mnist1d.num_classes == 10
    assert len(mnist1d.x_train) + len(mnist1d.x_val) == 4000 and len(mnist1d.x_test) == 1000
    assert 350 <= len(mnist1d.x_val) <= 450
    assert set(np.unique(mnist1d.y_val)) == set(range(10))  # stratified
    assert abs(float(mnist1d.x_train.mean())) < 1e-3 and abs(float(mnist1d.x_train.std()) - 1) < 1e-3


def test_digits_split_is_fixed(digits) -> None:
    again = load_task("digits")
    assert digits.input_shape == (1, 8, 8)
    assert len(digits.x_train) + len(digits.x_val) + len(digits.x_test) == 1797
    assert np.array_equal(digits.x_test, again.x_test) and np.array_equal(digits.y_val, again.y_val)


def test_validation_never_overlaps_training(digits) -> None:
    train = {row.tobytes() for row in digits.x_train}
    assert not any(row.tobytes() in train for row in digits.x_val)


def write_npz(path: Path, **arrays: np.ndarray) -> str:
    np.savez(path, **arrays)
    return str(path)


def test_user_npz_in_three_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for shape, expected in [((60, 12), (1, 1, 12)), ((60, 3, 12), (3, 1, 12)), ((60, 2, 5, 5), (2, 5, 5))]:
        path = write_npz(
            tmp_path / "t.npz",
            x_train=rng.normal(size=shape),
            y_train=np.arange(60) % 3,
            x_test=rng.normal(size=(10, *shape[1:])),
            y_test=np.arange(10) % 3,
        )
        task = load_task(path)
        assert task.input_shape == expected and task.num_classes == 3 and task.name == "t"


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.zeros((4, 3))}, "missing array(s) y_train, x_test, y_test"),
        ({"x_train": np.zeros((4, 3)), "y_train": np.zeros(5, int), "x_test": np.zeros((2, 3)), "y_test": np.zeros(2, int)},
         "x_train has 4 samples but y_train has 5"),
        ({"x_train": np.zeros((4, 3)), "y_train": np.zeros(4), "x_test": np.zeros((2, 3)), "y_test": np.zeros(2, int)},
         "y_train must be a 1-D integer array"),
        ({"x_train": np.zeros((4, 3)), "y_train": np.array([0, 1, -1, 0]), "x_test": np.zeros((2, 3)), "y_test": np.zeros(2, int)},
         "class indices >= 0"),
        ({"x_train": np.zeros((4, 3)), "y_train": np.zeros(4, int), "x_test": np.zeros((2, 4)), "y_test": np.zeros(2, int)},
         "x_train samples are (1, 1, 3) but x_test samples are (1, 1, 4)"),
        ({"x_train": np.zeros(4), "y_train": np.zeros(4, int), "x_test": np.zeros((2, 4)), "y_test": np.zeros(2, int)},
         "x_train must be (N, L), (N, C, L) or (N, C, H, W)"),
        ({"x_train": np.full((4, 3), np.nan), "y_train": np.zeros(4, int), "x_test": np.zeros((2, 3)), "y_test": np.zeros(2, int)},
         "NaN or infinite"),
        ({"x_train": np.zeros((4, 0)), "y_train": np.arange(4) % 2, "x_test": np.zeros((2, 0)), "y_test": np.arange(2)},
         "x_train samples must hold features, but have shape (0,)"),
        ({"x_train": np.ones((4, 3)), "y_train": np.full(4, 2), "x_test": np.zeros((2, 3)), "y_test": np.full(2, 2)},
         "y_train holds a single class (2); a classifier needs at least 2"),
        ({"x_train": np.arange(12.0).reshape(4, 3) * 1e299, "y_train": np.arange(4) % 2, "x_test": np.zeros((2, 3)),
          "y_test": np.arange(2)}, "x values reach 1.1e+300, which overflows normalising them to float32"),
        ({"x_train": np.zeros((4, 3)), "y_train": np.array([0, 1, 0, 2**64 - 1], np.uint64), "x_test": np.zeros((2, 3)),
          "y_test": np.arange(2)}, "y_train must hold class indices below 1000, but has 18446744073709551615"),
        ({"x_train": np.zeros((4, 3)), "y_train": np.array([0, 1, 2, 3]), "x_test": np.zeros((2, 3)), "y_test": np.arange(2)},
         "y_train has 1 sample of class 0; every class needs at least 2"),
    ],
)
def test_bad_npz_is_refused_with_the_reason(tmp_path: Path, arrays, message: str) -> None:
    with pytest.raises(UserError) as err:
        load_task(write_npz(tmp_path / "bad.npz", **arrays))
    assert message in str(err.value)


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(UserError, match="not a readable .npz"):
        load_task(str(tmp_path / "junk.npz"))
    good = tmp_path / "good.npz"
    np.savez(good, x_train=np.zeros((40, 3)), y_train=np.arange(40) % 2, x_test=np.zeros((4, 3)), y_test=np.arange(4) % 2)
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:-200])  # truncated: the central directory is gone
    with pytest.raises(UserError, match="cut.npz: not a readable .npz file"):
        load_task(str(tmp_path / "cut.npz"))
    with pytest.raises(UserError, match="does not exist"):
        load_task(str(tmp_path / "absent.npz"))


@pytest.mark.parametrize("side", [4, 12, 16])
def test_images_resize_bilinearly_like_torch(digits, side: int) -> None:
    import torch

    resized = load_task("digits", resolution=side)
    assert resized.input_shape == (1, side, side) and resized.num_classes == 10
    for split in ("x_train", "x_val", "x_test"):  # every split alike, the labels untouched
        x = getattr(digits, split)
        want = torch.nn.functional.interpolate(torch.from_numpy(x), size=(side, side), mode="bilinear", align_corners=False)
        assert getattr(resized, split).dtype == np.float32
        assert np.abs(getattr(resized, split) - want.numpy()).max() < 1e-5
    assert np.array_equal(resized.y_test, digits.y_test) and np.array_equal(resized.y_val, digits.y_val)
    assert np.array_equal(load_task("digits", resolution=side).x_test, resized.x_test)  # deterministic


def test_resizing_to_the_own_size_changes_nothing_and_signals_are_refused(digits, mnist1d) -> None:
    assert resize_task(digits, 8) is digits
    with pytest.raises(UserError, match=r"mnist1d: its samples are 1-D signals \(1, 1, 40\); only images can be resized"):
        resize_task(mnist1d, 16)

"""Tasks (data sets): MNIST-1D (generated procedurally), sklearn's 8x8 digits, the BasicMotions sensor recordings
(shipped inside sktime), a keyword-spotting task rendered here with espeak-ng (:mod:`tinycompile.kws`), or a user's
``.npz``.

Every task gives float32 arrays shaped ``(N, C, H, W)`` (1-D signals as ``H = 1``), normalised with the training
split's mean and standard deviation, and int64 labels. A validation split is carved from the training data; the
test split is only for final reporting. A task of images may be resized to a square side (:func:`resize_task`), the
same way for every split, when a network was searched at another input resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tinycompile.errors import UserError
from tinycompile.fileio import read_npz

BUILTIN_TASKS = ("mnist1d", "digits", "basicmotions", "kws-espeak")
VALIDATION_FRACTION = 0.1
MAX_RESOLUTION = 256  # the largest side images are resized to (a search space's net.resolution)
MAX_CLASSES = 1000  # a classifier head on a microcontroller; also keeps a stray huge label from sizing a layer


@dataclass(frozen=True)
class Task:
    """A classification data set split into train / validation / test."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    mean: float
    std: float
    classes: tuple[str, ...] = ()  # the name of each label, where the task has names

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one sample."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)


def load_task(name: str, seed: int = 0, resolution: int | None = None) -> Task:
    """Load ``mnist1d``, ``digits``, ``basicmotions``, ``kws-espeak`` (or ``kws-espeak:N``, N clips per class) or a
    path to an ``.npz`` with ``x_train, y_train, x_test, y_test``; with ``resolution``, its images resized to that side
    (:func:`resize_task`). ``seed`` draws the validation split, never the data."""
    return at_resolution(_load(name, seed), resolution)


def at_resolution(task: Task, resolution: int | None) -> Task:
    """``task`` with its images resized to ``resolution`` (a spec's ``meta.resolution``), or as it is for None."""
    return task if resolution is None else resize_task(task, resolution)


def resize_task(task: Task, side: int) -> Task:
    """``task`` with every image of every split resized to ``side`` x ``side``: bilinear with half-pixel centres
    (torch's ``interpolate(mode="bilinear", align_corners=False)``), computed in float64, so deterministic."""
    _, h, w = task.input_shape
    if h == 1:
        raise UserError(f"{task.name}: its samples are 1-D signals {task.input_shape}; only images can be resized")
    if (h, w) == (side, side):
        return task
    rows, cols = _bilinear(h, side), _bilinear(w, side)

    def resize(x: np.ndarray) -> np.ndarray:
        return np.einsum("ih,nchw,jw->ncij", rows, x.astype(np.float64), cols).astype(np.float32)

    return replace(task, x_train=resize(task.x_train), x_val=resize(task.x_val), x_test=resize(task.x_test))


def _bilinear(size: int, out: int) -> np.ndarray:
    """The ``(out, size)`` matrix of linear interpolation along one axis: output ``i`` samples the input at
    ``(i + 0.5) * size / out - 0.5``, clamped to the edge pixels."""
    src = np.clip((np.arange(out) + 0.5) * size / out - 0.5, 0, size - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, size - 1)
    frac = src - lo
    matrix = np.zeros((out, size))
    np.add.at(matrix, (np.arange(out), lo), 1 - frac)
    np.add.at(matrix, (np.arange(out), hi), frac)
    return matrix


def _load(name: str, seed: int) -> Task:
    classes: tuple[str, ...] = ()
    if name == "mnist1d":
        x_train, y_train, x_test, y_test = _mnist1d()
    elif name == "digits":
        x_train, y_train, x_test, y_test = _digits()
    elif name == "basicmotions":
        x_train, y_train, x_test, y_test, classes = _basic_motions()
    elif name == "kws-espeak" or name.startswith("kws-espeak:"):
        x_train, y_train, x_test, y_test, classes = _kws(name)
    elif name.endswith(".npz"):
        x_train, y_train, x_test, y_test = _npz(Path(name))
    else:
        raise UserError(f"unknown task {name!r}; choose one of {', '.join(BUILTIN_TASKS)} or give a path to an .npz file")
    _check_classes(name, y_train)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    train_idx, val_idx = _stratified_split(y_train, VALIDATION_FRACTION, seed)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused below, in one line
        mean, std = float(x_train[train_idx].mean()), float(x_train[train_idx].std()) or 1.0

        def norm(x: np.ndarray) -> np.ndarray:
            return ((x - mean) / std).astype(np.float32)

        fit, val, test = norm(x_train[train_idx]), norm(x_train[val_idx]), norm(x_test)
    if not np.isfinite([mean, std]).all() or not all(np.isfinite(x).all() for x in (fit, val, test)):
        peak = max(float(np.abs(x_train).max()), float(np.abs(x_test).max()))
        raise UserError(f"{name}: x values reach {peak:.3g}, which overflows normalising them to float32 (mean 0, "
                        "standard deviation 1); rescale the data")
    return Task(
        name=Path(name).stem if name.endswith(".npz") else name,
        x_train=fit,
        y_train=y_train[train_idx],
        x_val=val,
        y_val=y_train[val_idx],
        x_test=test,
        y_test=y_test,
        num_classes=num_classes,
        mean=mean,
        std=std,
        classes=classes,
    )


def _check_classes(name: str, y_train: np.ndarray) -> None:
    """UserError unless there are two classes at least and each can give one sample to validation and keep one."""
    labels, counts = np.unique(y_train, return_counts=True)
    if len(labels) < 2:
        raise UserError(f"{name}: y_train holds a single class ({labels[0]}); a classifier needs at least 2")
    if counts.min() < 2:
        label = labels[counts.argmin()]
        raise UserError(f"{name}: y_train has 1 sample of class {label}; every class needs at least 2 (one is held out "
                        "for validation), so add samples or drop the class")


def _mnist1d() -> tuple[np.ndarray, ...]:
    # The package's own procedural generator with its default arguments (seed 42): the standard 4000/1000 split.
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())
    return (
        data["x"][:, None, None, :],
        data["y"].astype(np.int64),
        data["x_test"][:, None, None, :],
        data["y_test"].astype(np.int64),
    )


def _digits() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.images[:, None, :, :] / 16.0
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    return x_train, y_train, x_test, y_test


def _basic_motions() -> tuple:
    """UEA's BasicMotions as sktime ships it (inside the wheel: nothing is downloaded): a smart watch's 3-axis
    accelerometer and gyroscope at 10 Hz, 10 s per recording, (6, 100) per sample; standing, walking, running and
    badminton, 40 recordings to train and 40 to test. Labels are the activities in alphabetical order."""
    from sktime.datasets import load_basic_motions

    x_train, y_train = load_basic_motions(split="train", return_type="numpy3D")
    x_test, y_test = load_basic_motions(split="test", return_type="numpy3D")
    classes = tuple(str(c) for c in np.unique(y_train))
    index = {c: i for i, c in enumerate(classes)}

    def labels(y: np.ndarray) -> np.ndarray:
        return np.array([index[str(c)] for c in y], dtype=np.int64)

    return x_train[:, :, None, :], labels(y_train), x_test[:, :, None, :], labels(y_test), classes


def _kws(name: str) -> tuple:
    """The keyword-spotting task rendered with espeak-ng (:mod:`tinycompile.kws`), from its cache after the first
    load: MFCC images ``(1, 49, 10)``, twelve classes."""
    from tinycompile import kws

    config = kws.parse_name(name)
    arrays = kws.load_kws(config)
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], config.classes


def _npz(path: Path) -> tuple[np.ndarray, ...]:
    if not path.is_file():
        raise UserError(f"task file {path} does not exist")
    arrays = read_npz(path)
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise UserError(f"{path}: missing array(s) {', '.join(missing)}; a task .npz needs x_train, y_train, x_test, y_test")
    out = []
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype.kind not in "iuf":
            raise UserError(f"{path}: x_{split} must be numeric, but has dtype {x.dtype}")
        if not 2 <= x.ndim <= 4:
            raise UserError(f"{path}: x_{split} must be (N, L), (N, C, L) or (N, C, H, W), but has shape {x.shape}")
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise UserError(f"{path}: y_{split} must be a 1-D integer array, but has shape {y.shape} dtype {y.dtype}")
        if len(y) != len(x):
            raise UserError(f"{path}: x_{split} has {len(x)} samples but y_{split} has {len(y)}")
        if len(y) == 0 or y.min() < 0:
            raise UserError(f"{path}: y_{split} must hold class indices >= 0 and not be empty")
        if int(y.max()) >= MAX_CLASSES:  # compared before the int64 cast, which would wrap a large uint64 negative
            raise UserError(f"{path}: y_{split} must hold class indices below {MAX_CLASSES}, but has {int(y.max())}")
        if x.size == 0:
            raise UserError(f"{path}: x_{split} samples must hold features, but have shape {x.shape[1:]}")
        if not np.isfinite(x).all():
            raise UserError(f"{path}: x_{split} holds NaN or infinite values")
        x = x.astype(np.float64)
        x = x[:, None, None, :] if x.ndim == 2 else x[:, :, None, :] if x.ndim == 3 else x
        out += [x, y.astype(np.int64)]
    if out[0].shape[1:] != out[2].shape[1:]:
        raise UserError(f"{path}: x_train samples are {out[0].shape[1:]} but x_test samples are {out[2].shape[1:]}")
    if out[3].max() > out[1].max():
        raise UserError(f"{path}: y_test has label {out[3].max()} that never occurs in y_train (max {out[1].max()})")
    return tuple(out)


def _stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        val.append(idx[: max(1, int(round(len(idx) * fraction)))])
    val_idx = np.sort(np.concatenate(val))
    train_idx = np.setdiff1d(np.arange(len(y)), val_idx)
    return train_idx, val_idx

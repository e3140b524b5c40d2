"""The built-in tasks that look like TinyML: BasicMotions (sensor time series shipped inside sktime, loaded offline)
and kws-espeak (keywords rendered here with espeak-ng into MFCC images: shapes, determinism, the cache)."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from tinycompile import kws
from tinycompile.errors import UserError
from tinycompile.tasks import load_task

TINY = kws.KwsConfig(clips_per_class=5, keywords=("yes", "no"), seed=0)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("the task tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "tinycompile" / "tasks"


def test_basicmotions_loads_offline_with_its_shapes_and_classes(offline: None) -> None:
    task = load_task("basicmotions")
    assert task.input_shape == (6, 1, 100)  # 3-axis accelerometer + gyroscope, 100 steps: a 1-D signal of 6 channels
    assert task.classes == ("badminton", "running", "standing", "walking") and task.num_classes == 4
    assert len(task.x_train) + len(task.x_val) == 40 and len(task.x_test) == 40
    assert set(np.unique(task.y_val)) == set(range(4)) and set(np.unique(task.y_test)) == set(range(4))
    again = load_task("basicmotions")
    assert np.array_equal(task.x_val, again.x_val) and np.array_equal(task.x_test, again.x_test)
    assert abs(float(task.x_train.mean())) < 1e-3 and task.x_train.dtype == np.float32


def test_kws_tiny_set_has_mfcc_images_and_is_the_same_every_time(cache: Path, offline: None) -> None:
    first = kws.load_kws(TINY, progress=False)
    assert first["x_train"].shape == (16, 1, 49, 10) and first["x_test"].shape == (4, 1, 49, 10)
    assert first["x_train"].dtype == np.float32 and np.isfinite(first["x_train"]).all()
    assert np.array_equal(np.bincount(first["y_train"]), [4, 4, 4, 4])  # yes, no, silence, unknown
    assert np.array_equal(np.bincount(first["y_test"]), [1, 1, 1, 1])
    # Rendered again from nothing: the same arrays, bit for bit.
    assert all(np.array_equal(v, kws.generate(TINY, progress=False)[k]) for k, v in first.items())
    other = kws.generate(kws.KwsConfig(clips_per_class=5, keywords=("yes", "no"), seed=1), progress=False)
    assert not np.array_equal(other["x_train"], first["x_train"])


def test_kws_cache_is_reused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = kws.load_kws(TINY, progress=False)
    (cached,) = cache.glob("kws-espeak-*.npz")
    assert not list(cache.glob("*.tmp"))

    def no_render(*_args, **_kwargs):
        raise AssertionError("the cached task was rendered again")

    monkeypatch.setattr(kws, "generate", no_render)
    again = kws.load_kws(TINY, progress=False)
    assert all(np.array_equal(v, again[k]) for k, v in first.items())
    cached.write_bytes(b"damaged")  # a damaged cache is made again, not trusted
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache.parent.parent))
    assert np.array_equal(kws.load_kws(TINY, progress=False)["x_test"], first["x_test"])


def test_kws_task_by_name(cache: Path) -> None:
    task = load_task("kws-espeak:5")
    assert task.name == "kws-espeak:5" and task.input_shape == (1, 49, 10) and task.num_classes == 12
    assert task.classes[:2] == ("down", "go") and task.classes[-2:] == ("_silence_", "_unknown_")
    assert len(task.x_train) + len(task.x_val) == 48 and len(task.x_test) == 12


def test_kws_speakers_of_the_test_split_are_not_in_training(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, set[str]] = {"train": set(), "test": set()}
    real = kws.speak

    def spy(word, voice, speed, pitch, espeak):
        seen["test" if spy.split == "test" else "train"].add(voice)
        return real(word, voice, speed, pitch, espeak)

    def render(config, label, index, speakers, espeak):
        spy.split = "test" if index < 1 else "train"
        return real_render(config, label, index, speakers, espeak)

    real_render = kws.render
    monkeypatch.setattr(kws, "speak", spy)
    monkeypatch.setattr(kws, "render", render)
    monkeypatch.setattr(kws.os, "cpu_count", lambda: 1)  # one thread: spy.split is the clip's own
    kws.generate(kws.KwsConfig(clips_per_class=5, keywords=("yes", "no", "up", "down")), progress=False)
    assert seen["train"] and seen["test"] and not seen["train"] & seen["test"]


def test_kws_without_espeak_is_one_line_naming_the_package(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kws.shutil, "which", lambda _: None)
    with pytest.raises(UserError, match=r"needs the espeak-ng program: install it with `apt-get install espeak-ng`"):
        load_task("kws-espeak:5")


@pytest.mark.parametrize("name", ["kws-espeak:", "kws-espeak:2", "kws-espeak:x", "kws-espeak:-5"])
def test_kws_bad_sizes_are_refused(name: str) -> None:
    with pytest.raises(UserError, match="clips per class"):
        load_task(name)

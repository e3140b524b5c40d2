"""The distillation benchmark's choices: students within the teacher's MACs / ratio, and an ensemble's logits."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

from tinycompile.arch import ArchSpec, Layer
from tinycompile.model import SpecNet
from test_teacher import shaped_task

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_kws.py"


def bench():
    """bench/bench_kws.py as a module (bench/ is no package)."""
    spec = importlib.util.spec_from_file_location("bench_kws", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_kws", module)
    spec.loader.exec_module(module)
    return module


def test_students_have_at_least_ratio_times_fewer_macs() -> None:
    teacher_macs = 5_329_536  # two DS-CNN 64x4 networks on the keyword task's MFCCs
    students = bench().pick_students(shaped_task((1, 49, 10), 12), "cnn2d", teacher_macs, [20, 10], seed=0)
    macs = [sum(s.macs()) for s in students]
    assert len(students) == 2
    assert macs[0] * 10 <= teacher_macs and macs[1] * 20 <= teacher_macs
    assert macs[0] > macs[1]  # largest first
    assert macs[1] * 40 > teacher_macs  # not needlessly small: the rule fills its cap


def test_an_ensemble_teaches_its_members_average() -> None:
    spec = ArchSpec((1, 4, 4), 3, (Layer("flatten", (-1,)), Layer("dense", (0,), channels=3)))
    torch.manual_seed(0)
    members = [SpecNet(spec), SpecNet(spec)]
    x = np.random.default_rng(0).normal(size=(2, 5, 1, 4, 4)).astype(np.float32)  # two views of five samples
    got = bench().logits_of(members, x)
    with torch.no_grad():
        want = [(m(torch.from_numpy(x.reshape(10, 1, 4, 4))).numpy()).reshape(2, 5, 3) for m in members]
    assert got.shape == (2, 5, 3)
    np.testing.assert_allclose(got, (want[0] + want[1]) / 2, rtol=1e-6)


def test_ds_cnn_students_are_the_widest_within_the_cap() -> None:
    task = shaped_task((1, 49, 10), 12)
    teacher_macs = 5_329_536
    students = bench().pick_ds_cnn_students(task, 4, teacher_macs, [20, 10])
    macs = [sum(s.macs()) for s in students]
    assert [s.meta["name"] for s in students] == ["ds-cnn-24x4", "ds-cnn-15x4"]
    assert macs[0] * 10 <= teacher_macs and macs[1] * 20 <= teacher_macs
    for spec, ratio in zip(students, (10, 20)):  # one channel more would break the cap
        wider = bench().ds_cnn(task.input_shape, 12, channels=int(spec.meta["name"].split("-")[2].split("x")[0]) + 1)
        assert sum(wider.macs()) * ratio > teacher_macs

"""Training: a short schedule learns the task, distillation really follows the teacher's soft outputs, and the device
is chosen as asked (CUDA refused where there is none)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from tinycompile.arch import ArchSpec, Layer
from tinycompile.device import resolve_device
from tinycompile.errors import UserError
from tinycompile.train import evaluate, train

SMALL_2D = ArchSpec(
    (1, 8, 8),
    10,
    (
        Layer("conv", (-1,), channels=16, kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
        Layer("maxpool", (0,), kernel=(2, 2), stride=(2, 2)),
        Layer("flatten", (1,)),
        Layer("dense", (2,), channels=10),
    ),
)


def test_a_small_cnn_learns_digits(digits) -> None:
    model, metrics = train(SMALL_2D, digits, epochs=15, seed=0)
    assert metrics["val_acc"] >= 0.93 and metrics["test_acc"] >= 0.93
    assert metrics["test_acc"] == evaluate(model, digits.x_test, digits.y_test)
    assert metrics["distilled"] is False


def test_distillation_follows_the_teacher(digits) -> None:
    # A teacher that confidently calls every digit its successor: a student trained on its soft outputs alone
    # learns the shifted labelling, which the true labels never show it (a plain student scores ~0 on it; early
    # stopping still selects by true-label validation accuracy, so the bar is well above chance, not near 1).
    shifted = (digits.y_train + 1) % 10
    teacher = np.full((len(shifted), 10), -5.0, dtype=np.float32)
    teacher[np.arange(len(shifted)), shifted] = 5.0
    model, metrics = train(SMALL_2D, digits, epochs=15, seed=0, teacher_logits=teacher, distill_weight=1.0)
    assert metrics["distilled"] is True
    assert evaluate(model, digits.x_test, (digits.y_test + 1) % 10) >= 0.5
    plain, _ = train(SMALL_2D, digits, epochs=3, seed=0)
    assert evaluate(plain, digits.x_test, (digits.y_test + 1) % 10) < 0.1


def test_training_on_the_cpu_records_it_and_returns_cpu_weights(digits) -> None:
    model, metrics = train(SMALL_2D, digits, epochs=1, seed=0, device="cpu")
    assert metrics["device"] == "cpu"
    assert all(t.device.type == "cpu" for t in model.state_dict().values())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: --device cuda is allowed here")
def test_cuda_without_cuda_is_one_line(digits) -> None:
    with pytest.raises(UserError, match="^--device cuda: CUDA is not available on this machine .*; use --device cpu or auto$"):
        train(SMALL_2D, digits, epochs=1, device="cuda")


def test_auto_is_cuda_only_where_torch_sees_a_gpu() -> None:
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(UserError, match="unknown device 'tpu'; choose one of auto, cpu, cuda"):
        resolve_device("tpu")


def test_per_view_teacher_logits_teach_on_their_views(digits) -> None:
    # Two views: the digits as they are, taught "each digit is its successor", and mirrored, taught "the one after
    # that". A student that follows each view's own logits answers differently for the two (validation labels
    # shifted too, so early stopping keeps what the teacher taught).
    def confident(labels: np.ndarray) -> np.ndarray:
        logits = np.full((len(labels), 10), -5.0, dtype=np.float32)
        logits[np.arange(len(labels)), labels] = 5.0
        return logits

    task = replace(digits, y_val=(digits.y_val + 1) % 10)
    mirror = digits.x_train[:, :, :, ::-1].copy()
    teacher = np.stack([confident((digits.y_train + 1) % 10), confident((digits.y_train + 2) % 10)])
    model, metrics = train(SMALL_2D, task, epochs=15, seed=0, teacher_logits=teacher,
                           train_views=np.stack([digits.x_train, mirror]), distill_weight=1.0)
    assert metrics["distilled"] is True
    assert evaluate(model, digits.x_test, (digits.y_test + 1) % 10) >= 0.7
    # 0.68 here; near 0 if the mirrored view were taught the first view's logits
    assert evaluate(model, digits.x_test[:, :, :, ::-1].copy(), (digits.y_test + 2) % 10) >= 0.5


def test_augmented_training_with_label_smoothing_still_learns_digits(digits) -> None:
    _, metrics = train(SMALL_2D, digits, epochs=15, seed=0, augment=True, label_smoothing=0.1)
    assert metrics["test_acc"] >= 0.9


def test_logits_per_view_need_as_many_views(digits) -> None:
    logits = np.zeros((2, len(digits.x_train), 10), np.float32)
    with pytest.raises(ValueError, match="teacher logits per view need train_views of as many views"):
        train(SMALL_2D, digits, epochs=1, teacher_logits=logits)
    with pytest.raises(ValueError, match="give one of them"):
        train(SMALL_2D, digits, epochs=1, augment=True, train_views=digits.x_train[None])

"""Training: a short schedule learns the task, and distillation really follows the teacher's soft outputs."""

from __future__ import annotations

import numpy as np

from tinycompile.arch import ArchSpec, Layer
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

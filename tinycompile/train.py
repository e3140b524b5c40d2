"""Training: a short schedule (AdamW, one-cycle learning rate) with early stopping on validation accuracy, on the CPU
or a CUDA GPU (:mod:`tinycompile.device`); the trained model always comes back on the CPU."""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from tinycompile.arch import ArchSpec
from tinycompile.augment import shift_and_mask
from tinycompile.device import resolve_device
from tinycompile.model import SpecNet
from tinycompile.tasks import Task


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on float inputs ``x`` (N, C, H, W) and labels ``y``, on the model's device."""
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            logits = model(torch.from_numpy(x[i : i + batch_size]).to(device))
            correct += int((logits.argmax(1).cpu().numpy() == y[i : i + batch_size]).sum())
    return correct / max(len(x), 1)


def train(
    spec: ArchSpec,
    task: Task,
    *,
    epochs: int = 40,
    batch_size: int = 64,
    lr: float = 0.01,
    weight_decay: float = 1e-4,
    patience: int = 12,
    seed: int = 0,
    teacher_logits: np.ndarray | None = None,
    distill_weight: float = 0.5,
    temperature: float = 4.0,
    device: str = "auto",
    init_state: dict[str, torch.Tensor] | None = None,
    label_smoothing: float = 0.0,
    augment: bool = False,
    train_views: np.ndarray | None = None,
) -> tuple[SpecNet, dict[str, Any]]:
    """Train a fresh model of ``spec`` on ``device`` (auto, cpu, cuda); return the weights of its best validation
    epoch, on the CPU (they load on any machine), and the metrics. With ``init_state`` (a state dict of the spec's
    network, e.g. weights inherited from a supernet), training starts from those weights: fine-tuning.

    With ``teacher_logits`` (a teacher's logits on ``task.x_train``), the loss mixes cross-entropy with Hinton's
    distillation term (KL divergence of the softened outputs, scaled by ``temperature**2``).

    ``augment`` shifts and masks every epoch's training inputs afresh (:mod:`tinycompile.augment`). ``train_views``
    (``(K, N, C, H, W)``, e.g. :func:`tinycompile.augment.views`) are fixed inputs instead: epoch e trains on view
    ``(e - 1) % K``, and ``teacher_logits`` may then be ``(K, N, classes)``, the teacher's logits on each view.
    """
    if train_views is not None and augment:
        raise ValueError("train: augment draws new inputs every epoch; train_views are fixed ones: give one of them")
    if teacher_logits is not None and teacher_logits.ndim == 3 and (
            train_views is None or len(train_views) != len(teacher_logits)):
        raise ValueError("train: teacher logits per view need train_views of as many views")
    dev = torch.device(resolve_device(device))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SpecNet(spec)
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = -(-len(task.x_train) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    # The whole training split moves to the device once: tiny tasks fit, and per-batch copies would dominate.
    all_x = torch.from_numpy(task.x_train if train_views is None else train_views).to(dev)
    y_train = torch.from_numpy(task.y_train).to(dev)
    soft_all = None
    if teacher_logits is not None:
        soft_all = torch.softmax(torch.from_numpy(teacher_logits).float().to(dev) / temperature, dim=-1)
    augment_rng = np.random.default_rng([seed, 1])  # its own stream: the sample order stays that of plain training
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    best_acc, best_state, best_epoch = -1.0, copy.deepcopy(model.state_dict()), 0
    start = time.perf_counter()
    epoch = 0
    for epoch in range(1, epochs + 1):
        model.train()
        view = (epoch - 1) % len(all_x) if train_views is not None else None
        x_train = all_x if view is None else all_x[view]
        if augment:
            x_train = torch.from_numpy(shift_and_mask(task.x_train, augment_rng)).to(dev)
        soft_targets = soft_all if soft_all is None or soft_all.ndim == 2 else soft_all[view]
        order = torch.from_numpy(rng.permutation(len(x_train))).to(dev)  # numpy's order: the same on every device
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            logits = model(x_train[idx])
            loss = loss_fn(logits, y_train[idx])
            if soft_targets is not None:
                soft = nn.functional.kl_div(
                    nn.functional.log_softmax(logits / temperature, dim=1), soft_targets[idx], reduction="batchmean"
                )
                loss = (1 - distill_weight) * loss + distill_weight * temperature**2 * soft
            loss.backward()
            opt.step()
            sched.step()
        acc = evaluate(model, task.x_val, task.y_val)
        if acc > best_acc:
            best_acc, best_state, best_epoch = acc, copy.deepcopy(model.state_dict()), epoch
        elif epoch - best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    metrics = {
        "val_acc": best_acc,
        "test_acc": evaluate(model, task.x_test, task.y_test),
        "epochs": epoch,
        "best_epoch": best_epoch,
        "train_seconds": round(time.perf_counter() - start, 2),
        "distilled": teacher_logits is not None,
        "device": dev.type,
    }
    return model.cpu(), metrics

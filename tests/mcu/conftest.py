"""MCU back-end fixtures: small fixed networks trained once per session, quantized and lowered once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from tinycompile.arch import ArchSpec, Layer
from tinycompile.mcu.library import Compiled, compile_graph
from tinycompile.model import SpecNet
from tinycompile.quant.graph import QuantGraph
from tinycompile.quant.quantize import quantize
from tinycompile.tasks import Task, load_task

L = Layer
VECTORS = 16

# Small on purpose (tests train in seconds) but covering every op: conv, dwconv, add, maxpool, avgpool, gap, flatten, dense.
SPECS = {
    "mnist1d": ArchSpec(
        (1, 1, 40),
        10,
        (
            L("conv", (-1,), channels=12, kernel=(1, 5), stride=(1, 2), padding=(0, 0, 2, 2), relu=True),
            L("dwconv", (0,), kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
            L("conv", (1,), channels=12, kernel=(1, 1)),
            L("add", (2, 0), relu=True),
            L("maxpool", (3,), kernel=(1, 2), stride=(1, 2)),
            L("conv", (4,), channels=16, kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
            L("avgpool", (5,), kernel=(1, 2), stride=(1, 2)),
            L("flatten", (6,)),
            L("dense", (7,), channels=10),
        ),
        {"task": "mnist1d"},
    ),
    "digits": ArchSpec(
        (1, 8, 8),
        10,
        (
            L("conv", (-1,), channels=8, kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
            L("maxpool", (0,), kernel=(2, 2), stride=(2, 2)),
            L("dwconv", (1,), kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
            L("conv", (2,), channels=16, kernel=(1, 1), relu=True),
            L("gap", (3,)),
            L("dense", (4,), channels=10),
        ),
        {"task": "digits"},
    ),
}
EPOCHS = {"mnist1d": 12, "digits": 8}


@dataclass
class Prepared:
    """A trained model of one task, its QuantGraph, the test vectors and the lowered kernels."""

    spec: ArchSpec
    task: Task
    model: SpecNet
    graph: QuantGraph
    vectors: np.ndarray
    compiled: Compiled
    float_acc: float


def _prepare(name: str) -> Prepared:
    from tinycompile.train import evaluate, train

    torch.set_num_threads(2)
    task = load_task(name)
    spec = SPECS[name]
    model, _ = train(spec, task, epochs=EPOCHS[name], seed=0)
    graph = quantize(spec, model, task.x_train)
    vectors = graph.quantize_input(task.x_test[:VECTORS])
    return Prepared(spec, task, model, graph, vectors, compile_graph(graph), evaluate(model, task.x_test, task.y_test))


@pytest.fixture(scope="session")
def prepared_mnist1d() -> Prepared:
    return _prepare("mnist1d")


@pytest.fixture(scope="session")
def prepared_digits() -> Prepared:
    return _prepare("digits")


@pytest.fixture(scope="session")
def prepared(request: pytest.FixtureRequest) -> dict[str, Prepared]:
    """Both tasks, prepared lazily."""
    return {"mnist1d": request.getfixturevalue("prepared_mnist1d"), "digits": request.getfixturevalue("prepared_digits")}

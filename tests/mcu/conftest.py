"""MCU back-end fixtures: small fixed networks trained once per session, quantized and lowered once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from tinycompile.arch import ArchSpec
from tinycompile.mcu.library import Compiled, compile_graph
from tinycompile.model import SpecNet
from tinycompile.quant.graph import QuantGraph
from tinycompile.quant.quantize import quantize
from tinycompile.tasks import Task, load_task

from nets import SPECS  # tests/ is on sys.path: tests/conftest.py lives there

VECTORS = 16
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

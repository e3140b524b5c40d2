"""Fixtures shared by the foundation's tests: loaded tasks, cached per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinycompile.tasks import Task, load_task


@pytest.fixture(scope="session")
def mnist1d() -> Task:
    return load_task("mnist1d")


@pytest.fixture(scope="session")
def digits() -> Task:
    return load_task("digits")


@pytest.fixture(scope="session")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits trial trained for one epoch (a build's verdict does not depend on accuracy)."""
    from nets import SPECS

    from tinycompile.train import train
    from tinycompile.trial import save_trial

    folder = tmp_path_factory.mktemp("trial") / "digits"
    model, metrics = train(SPECS["digits"], load_task("digits"), epochs=1, seed=0)
    save_trial(folder, SPECS["digits"], model, metrics)
    return folder

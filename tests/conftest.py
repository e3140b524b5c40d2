"""Fixtures shared by the foundation's tests: loaded tasks (cached per session) and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinycompile.tasks import Task, load_task

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mnist1d() -> Task:
    return load_task("mnist1d")


@pytest.fixture(scope="session")
def digits() -> Task:
    return load_task("digits")


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``tinycompile`` as a user would, in a fresh process."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "tinycompile.cli", *args],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )

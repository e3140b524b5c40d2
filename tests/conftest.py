"""Fixtures shared by the foundation's tests: loaded tasks, cached per session."""

from __future__ import annotations

import pytest

from tinycompile.tasks import Task, load_task


@pytest.fixture(scope="session")
def mnist1d() -> Task:
    return load_task("mnist1d")


@pytest.fixture(scope="session")
def digits() -> Task:
    return load_task("digits")

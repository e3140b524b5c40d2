"""Atomic writes: a file is either absent or complete, never half-written (an interrupted run leaves no debris)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    write_text(path, json.dumps(data, indent=1, default=_jsonable) + "\n")


def write_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Let ``writer`` fill a temporary file, then move it onto ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)


IO_NPZ = "io.npz"


def write_io(folder: str | Path, inputs: Any, outputs: Any) -> None:
    """Record what a build ran: ``io.npz`` with ``inputs`` (int8, as the graph reads them) and ``outputs`` (as the
    target produced them), one row per input, so anyone can check the build against another oracle."""
    import numpy as np

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object keeps numpy from appending its own suffix
            np.savez(f, inputs=np.asarray(inputs), outputs=np.asarray(outputs))

    write_with(Path(folder) / IO_NPZ, save)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")

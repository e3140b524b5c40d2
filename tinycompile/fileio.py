"""Atomic writes: a file or a whole folder is either absent or complete, never half-written (an interrupted run
leaves no debris), and output folders are locked so that two runs never write one at once."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tinycompile.errors import UserError


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


def check_out_dir(path: str | Path, flag: str) -> Path:
    """``path`` as an output folder: a UserError unless it is (or can be made) a folder that this process can write
    in, with its siblings (atomic folders and locks live beside it). Checked before any work starts."""
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists())  # "." or "/" at worst
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies under {existing}, which is a file"
        raise UserError(f"{flag} {path} {where}; give a folder (new or existing)")
    parent = next((p for p in path.parents if p.exists()), existing)
    for folder in {existing, parent}:
        try:  # os.access would answer yes to root even on a read-only file system: try it for real
            os.rmdir(tempfile.mkdtemp(prefix=".tinycompile-probe-", dir=folder))
        except OSError as exc:
            raise UserError(f"{flag} {path}: cannot write in {folder} ({exc.strerror}); give a folder you can write") from None
    return path


@contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (``flock`` on ``.<name>.lock`` beside it) while a run writes it; a
    UserError at once if another run holds it. The lock file stays: removing it would race a waiting locker."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = folder.parent / f".{folder.name}.lock"
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{folder} is being written by another tinycompile run (it holds {lock}); wait for it to "
                            "finish or write to another folder") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def atomic_folder(folder: str | Path) -> Iterator[Path]:
    """Yield a new empty folder beside ``folder``; if the block completes, it replaces ``folder`` whole, else (an
    exception, Ctrl-C included) it is deleted and ``folder`` stays as it was. Hold :func:`folder_lock` around it."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{folder.name}.tmp-"
    for stale in glob.glob(glob.escape(str(folder.parent / prefix)) + "*"):  # a run killed by SIGKILL; ours: we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=folder.parent))
    try:
        yield tmp
        _replace_folder(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the half-built folder, or the old one the new one replaced


def _replace_folder(new: Path, folder: Path) -> None:
    """Put ``new`` at ``folder``; the old ``folder`` (if any) ends up at ``new``'s path for the caller to delete."""
    if not folder.exists():
        os.rename(new, folder)
        return
    if _exchange(new, folder):
        return
    # No atomic exchange on this file system: two renames, with a window in which ``folder`` is absent.
    old = new.with_name(new.name + ".old")
    os.rename(folder, old)
    os.rename(new, folder)
    os.rename(old, new)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


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


def read_npz(path: str | Path) -> dict[str, Any]:
    """Every array of an ``.npz`` file, read in full (so a truncated member fails here, not later); a one-line
    UserError when the file is missing, truncated or not an .npz at all."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as exc:  # noqa: BLE001 - numpy and zipfile raise many types for a truncated or foreign file
        raise UserError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")

"""`tinycompile build` is atomic and locked: the output folder holds one whole build, the old or the new one.

A build writes a temporary folder beside ``-o`` and moves it into place once it has a verdict (pass or fail); an
interrupted or crashed build leaves the old folder untouched and no debris; a second build into a folder being
written is refused with one line.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import ROOT
from tinycompile.cli import main
from tinycompile.backends import Backend, BuildResult, flow
from tinycompile.quant import reference


def old_build(out: Path) -> dict[str, str]:
    """An existing build folder with a bit-exact verdict; returns its snapshot."""
    for name, text in {"quant/quant_graph.json": "{}", "lib/model.c": "/* old */", "firmware/main.c": "/* old */",
                       "report.json": json.dumps({"bit_exact": True, "trial": "old"})}.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    return snapshot(out)


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def debris(parent: Path) -> list[str]:
    """What a build may have left beside its output folder (its lock file is not debris: it is the lock)."""
    return sorted(p.name for p in parent.iterdir() if ".tmp" in p.name)


def test_ctrl_c_during_a_rebuild_leaves_the_old_folder_whole(trial: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = old_build(out)
    cmd = [sys.executable, "-m", "tinycompile.cli", "build", str(trial), "--target", "cortex-m4", "-o", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    # The new trial's quant/ written (into the temporary folder, or, before builds were atomic, over the old one).
    while time.time() < deadline and proc.poll() is None:
        if list(tmp_path.glob(".out.tmp-*/quant/quant_graph.json")) or snapshot(out) != before:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the build ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert err.strip().splitlines()[-1].endswith(f"build interrupted; {out} was left as it was"), err
    assert "Traceback" not in err
    assert snapshot(out) == before
    assert debris(tmp_path) == []


def test_a_crashed_build_leaves_the_old_folder_whole(trial: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tinycompile.mcu import backend

    def crash(*args, **kwargs):
        raise RuntimeError("the compiler crashed")

    monkeypatch.setattr(backend, "build_and_run", crash)  # after quant/ was written
    out = tmp_path / "out"
    before = old_build(out)
    with pytest.raises(RuntimeError, match="the compiler crashed"):
        main(["build", str(trial), "--target", "cortex-m4", "-o", str(out)])
    assert snapshot(out) == before
    assert debris(tmp_path) == []


def test_a_second_build_into_a_locked_folder_is_refused(trial: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    before = old_build(out)
    with open(tmp_path / ".out.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # what a build in progress holds (flock locks are per open file)
        assert main(["build", str(trial), "--target", "cortex-m4", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{out} is being written by another tinycompile run" in err, err
    assert snapshot(out) == before


class FakeBackend(Backend):
    """Writes a small build and returns the reference's outputs, or wrong ones (the landing depends on the verdict
    alone, not on what was built)."""

    kind = "mcu"

    def __init__(self, ok: bool) -> None:
        self.ok = ok

    def build(self, work, target, options, out):  # type: ignore[no-untyped-def]
        (out / "lib").mkdir(exist_ok=True)
        (out / "lib" / "model.c").write_text("/* new */")
        outputs = reference.run(work.graph, work.inputs).reshape(len(work.inputs), *work.graph.output_shape)
        if not self.ok:
            outputs = outputs.copy()
            outputs[0].flat[0] ^= 1
        return BuildResult(outputs, "instructions", [], 1.0, 1.0, {}, {"fake": True})


@pytest.mark.parametrize(("ok", "code"), [(True, 0), (False, 1)])
def test_a_build_with_a_verdict_replaces_the_folder_whole(trial: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          ok: bool, code: int) -> None:
    monkeypatch.setattr(flow, "get_backend", lambda kind: FakeBackend(ok))
    out = tmp_path / "out"
    old_build(out)
    (tmp_path / ".out.tmp-killed").mkdir()  # left by a build killed with SIGKILL: cleaned by the next one
    assert main(["build", str(trial), "--target", "cortex-m4", "-o", str(out)]) == code
    assert sorted(snapshot(out)) == ["lib/model.c", "report.json"]  # nothing of the old build is left beside it
    report = json.loads((out / "report.json").read_text())
    assert report["bit_exact"] is ok and report["backend"]["fake"] and report["mismatched_inputs"] == (0 if ok else 1)
    assert debris(tmp_path) == []


def test_a_folder_that_is_not_a_build_is_never_replaced(trial: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """-o naming a project folder by mistake: one line, exit 2, and every file kept (a build replaces its folder)."""
    monkeypatch.setattr(flow, "get_backend", lambda kind: FakeBackend(True))
    out = tmp_path / "project"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["build", str(trial), "--target", "cortex-m4", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "holds files but no report.json, so it is not a previous build" in err, err
    assert snapshot(out) == {"notes.txt": hashlib.sha256(b"mine").hexdigest()}
    assert debris(tmp_path) == []


def test_an_interrupt_a_library_wraps_is_still_an_interrupt(trial: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C inside TVM reaches Python as a RuntimeError (its FFI wraps the KeyboardInterrupt): still the one line."""
    import os

    class WrappingBackend(FakeBackend):
        def build(self, work, target, options, out):  # type: ignore[no-untyped-def]
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            except KeyboardInterrupt:
                raise RuntimeError("an error in a pass") from None

    monkeypatch.setattr(flow, "get_backend", lambda kind: WrappingBackend(True))
    out = tmp_path / "out"
    before = old_build(out)
    handler = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN where the suite runs in the background
    assert main(["build", str(trial), "--target", "cortex-m4", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1].endswith(f"build interrupted; {out} was left as it was"), err
    assert snapshot(out) == before and debris(tmp_path) == []
    assert signal.getsignal(signal.SIGINT) is handler  # the build's handler is gone, the one before it back

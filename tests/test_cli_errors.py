"""Bad input gets one clear line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from support import run_cli

SEARCH = ["search", "--trials", "1", "--epochs", "1"]


def bad_target(tmp: Path) -> str:
    path = tmp / "chip.yaml"
    good = (Path(__file__).parent.parent / "hw_targets" / "cortex-m4.yaml").read_text()
    path.write_text(good.replace("clock_mhz: 120", "clock_mhz: fast"))
    return str(path)


def bad_npz(tmp: Path) -> str:
    path = tmp / "data.npz"
    np.savez(path, x_train=np.zeros((4, 3)), y_train=np.zeros(4, int))
    return str(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "imagenet", "--space", "cnn1d", "--target", "cortex-m4"], "unknown task 'imagenet'"),
        (["--task", "mnist1d", "--space", "transformer", "--target", "cortex-m4"], "unknown search space 'transformer'"),
        (["--task", "mnist1d", "--space", "cnn1d", "--target", "z80"], "unknown target 'z80'"),
        (["--task", "mnist1d", "--space", "cnn1d", "--target", bad_target], "key 'clock_mhz' must be a number"),
        (["--task", bad_npz, "--space", "mlp", "--target", "cortex-m4"], "missing array(s) x_test, y_test"),
        (["--task", "mnist1d", "--space", "cnn1d", "--target", "cortex-m4", "--sram-kb", "1"], "no candidate of space 'cnn1d' fits"),
        (["--task", "mnist1d", "--space", "cnn1d", "--target", "rv32imc", "--flash-kb", "512"], "exceeds the 128 KB of flash"),
        (["--task", "digits", "--space", "cnn1d", "--target", "cortex-m4"], "takes 1-D signals"),
        (["--task", "mnist1d", "--space", "cnn1d", "--target", "cortex-m4", "--storage", "redis://x"], "--storage must be"),
    ],
)
def test_search_input_errors(tmp_path: Path, args, message: str) -> None:
    args = [a(tmp_path) if callable(a) else a for a in args]
    result = run_cli(*SEARCH, "--out", str(tmp_path / "runs"), *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_argparse_errors_are_one_line_too() -> None:
    result = run_cli("search", "--task", "mnist1d")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "required" in result.stderr


def test_report_on_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    result = run_cli("report", str(tmp_path))
    assert result.returncode == 2 and "is not a run folder" in result.stderr

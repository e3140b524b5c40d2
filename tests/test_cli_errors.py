"""Bad input gets one clear line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from support import run_cli
from tinycompile.cli import main

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


def npz_task(tmp: Path, **changes: np.ndarray) -> str:
    """A small valid task file with some arrays replaced."""
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.normal(size=(40, 12)), "y_train": np.arange(40) % 4, "x_test": rng.normal(size=(8, 12)),
              "y_test": np.arange(8) % 4, **changes}
    path = tmp / "task.npz"
    np.savez(path, **arrays)
    return str(path)


def truncated_npz(tmp: Path) -> str:
    path = Path(npz_task(tmp))
    path.write_bytes(path.read_bytes()[:300])
    return str(path)


def latin1_space(tmp: Path) -> str:
    path = tmp / "space.yaml"
    path.write_bytes((Path(__file__).parent.parent / "search_spaces" / "mlp.yaml").read_bytes() + "# caf\xe9\n".encode("latin-1"))
    return str(path)


def a_file(tmp: Path) -> str:
    (tmp / "file").write_text("not a folder")
    return str(tmp / "file" / "runs")


def unwritable(tmp: Path) -> str:
    if os.geteuid() == 0:  # root writes through file modes: take a file system that refuses everyone
        return "/sys/tinycompile-runs"
    (tmp / "ro").mkdir(mode=0o500)
    return str(tmp / "ro" / "runs")


MLP = ["--space", "mlp", "--target", "cortex-m4"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "digits", *MLP, "--sram-kb", "nan"], "--sram-kb must be a finite number > 0, but got nan"),
        (["--task", "digits", *MLP, "--flash-kb=-inf"], "--flash-kb must be a finite number > 0, but got -inf"),
        (["--task", "digits", *MLP, "--latency-ms", "nan"], "--latency-ms must be a finite number > 0, but got nan"),
        (["--task", truncated_npz, *MLP], "task.npz: not a readable .npz file (BadZipFile"),
        (["--task", "digits", "--space", latin1_space, "--target", "cortex-m4"], "space.yaml: not UTF-8 text (byte 0xe9"),
        (["--task", lambda t: npz_task(t, y_train=np.arange(40) % 40), *MLP], "1 sample of class 0; every class needs at least 2"),
        (["--task", lambda t: npz_task(t, y_train=np.zeros(40, int), y_test=np.zeros(8, int)), *MLP],
         "y_train holds a single class (0)"),
        (["--task", lambda t: npz_task(t, x_train=np.zeros((40, 0)), x_test=np.zeros((8, 0))), *MLP],
         "x_train samples must hold features, but have shape (0,)"),
        (["--task", lambda t: npz_task(t, x_train=np.full((40, 12), 1e300)), *MLP], "x values reach 1e+300, which overflows"),
        (["--task", lambda t: npz_task(t, y_train=np.arange(40, dtype=np.uint64) % 4 + np.uint64(2**63)), *MLP],
         "y_train must hold class indices below 1000, but has 9223372036854775811"),
        (["--task", "digits", *MLP, "--time-limit", "0"], "--time-limit must be a finite number of seconds > 0, but got 0"),
        (["--task", "digits", *MLP, "--time-limit", "nan"], "--time-limit must be a finite number of seconds > 0"),
        (["--task", "digits", *MLP, "--strategy", "supernet", "--time-limit", "9", "--finetune-share", "1"],
         "--finetune-share must be between 0 and 1 (exclusive), but got 1"),
        (["--task", "digits", *MLP, "--time-limit", "9", "--finetune-share", "0.7"],
         "--finetune-share shares a time limit between trials and fine-tuning; it needs --strategy supernet"),
        (["--task", "digits", *MLP, "--out", a_file], "runs lies under"),
        (["--task", "digits", *MLP, "--out", unwritable], "cannot write in"),
    ],
)
def test_search_refuses_bad_numbers_files_and_data(tmp_path: Path, capsys: pytest.CaptureFixture[str], args, message: str) -> None:
    args = [a(tmp_path) if callable(a) else a for a in args]
    out = [] if "--out" in args else ["--out", str(tmp_path / "runs")]
    assert main([*SEARCH, *out, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_build_refuses_an_output_folder_it_cannot_make(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("not a folder")
    for out, message in [(tmp_path / "file", "is a file; give a folder"), (tmp_path / "file" / "b", "lies under"),
                         (Path(unwritable(tmp_path)) / "b", "cannot write in")]:
        assert main(["build", str(tmp_path / "trial"), "--target", "cortex-m4", "-o", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"-o {out}" in err and message in err, err
    assert (tmp_path / "file").read_text() == "not a folder"

"""`tinycompile simulate` on a build folder that was altered after the build: never a traceback, never a stale pass.

The old verdict goes first. An image the accelerator stops on is a failing report naming the accelerator's own
error code and PC (exit 1); a folder whose files cannot be what a build wrote is one line on stderr (exit 2) and
no report at all.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tinycompile.cli import main

INSTR = 32  # bytes per accelerator instruction


@pytest.fixture(scope="module")
def built(trials: dict[str, Path], fpga_target, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small bit-exact build (digits, N=4) that each test copies and damages."""
    from tinycompile.backends.flow import build_trial

    folder = tmp_path_factory.mktemp("damaged") / "build"
    assert build_trial(trials["digits"], fpga_target, folder, {"array": 4}, 16)["bit_exact"]
    assert json.loads((folder / "report.json").read_text())["bit_exact"] is True
    return folder


def copy_of(built: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "build"
    shutil.copytree(built, folder)
    return folder


def edit_image(folder: Path, edit: Callable[[bytearray, int], None]) -> None:
    data = bytearray((folder / "image.bin").read_bytes())
    edit(data, json.loads((folder / "build.json").read_text())["prog_addr"])
    (folder / "image.bin").write_bytes(bytes(data))


def simulate_damaged(built: Path, tmp_path: Path, edit: Callable[[bytearray, int], None]) -> dict:
    """Simulate a copy of the build with its image edited: it must fail (exit 1, not bit-exact); its report."""
    folder = copy_of(built, tmp_path)
    edit_image(folder, edit)
    assert main(["simulate", str(folder)]) == 1
    report = json.loads((folder / "report.json").read_text())
    assert report["bit_exact"] is False
    return report


def illegal_opcode(data: bytearray, prog: int) -> None:
    data[prog + 3 * INSTR] = (data[prog + 3 * INSTR] & 0xF0) | 0xF  # opcode 15 in instruction 3


def random_bit_flips(data: bytearray, prog: int) -> None:
    for bit in np.random.default_rng(1).integers(prog * 8, len(data) * 8, 40):
        data[bit // 8] ^= 1 << (bit % 8)


def test_an_image_the_accelerator_stops_on_fails_with_its_error_and_pc(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = simulate_damaged(built, tmp_path, illegal_opcode)
    error = report["error"]
    assert error["error_code"] == 1 and error["error"] == "illegal opcode" and error["pc"] > 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"error {error['error_code']} ({error['error']})" in lines[0] and f"at pc {error['pc']:#x}" in lines[0]
    assert "(instruction 3)" in lines[0]


def test_random_bit_flips_in_the_program_fail_the_verdict(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Random damage either stops the accelerator or lets it finish with wrong outputs, depending on the fields hit:
    # both fail the verdict and say why (the error and PC, or how many inputs differ), neither is a traceback.
    report = simulate_damaged(built, tmp_path, random_bit_flips)
    out = capsys.readouterr().out
    if "error" in report:
        assert report["error"]["error_code"] != 0 and f"at pc {report['error']['pc']:#x}" in out
    else:
        assert report["mismatched_inputs"] > 0 and f"{report['mismatched_inputs']} inputs differ" in out


def truncate(name: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])

    return damage


def write(name: str, content: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(content)


def manifest_edit(**changes) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        doc = json.loads((folder / "build.json").read_text())
        doc.update(changes)
        (folder / "build.json").write_text(json.dumps(doc))

    return damage


def inputs_as(array: np.ndarray) -> Callable[[Path], None]:
    return lambda folder: np.save(folder / "inputs.npy", array)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (truncate("image.bin"), "image.bin must hold 8192 bytes"),
        (write("build.json", "{garbage"), "build.json is not readable JSON"),
        (write("build.json", "[1, 2]"), "build.json must hold a JSON object, but holds list"),
        (manifest_edit(layers=3), "build.json and image.bin disagree"),
        (manifest_edit(prog_addr=-64), "prog_addr must start whole instructions"),
        (manifest_edit(params={"n": 5}), "build.json and image.bin disagree"),
        (truncate("inputs.npy"), "inputs.npy is not a readable .npy file"),
        (inputs_as(np.zeros((16, 8, 8, 1), np.float32)), "inputs.npy must hold int8 inputs shaped (N >= 1, 8, 8, 1)"),
        (inputs_as(np.zeros((0, 8, 8, 1), np.int8)), "inputs.npy must hold int8 inputs"),
        (truncate("quant/quant_tensors.npz"), "quant_tensors.npz: not a readable .npz file"),
        (truncate("quant/quant_graph.json"), "quant_graph.json: not a readable QuantGraph"),
    ],
)
def test_a_damaged_folder_is_one_line_exit_2_and_no_verdict(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage, message: str
) -> None:
    folder = copy_of(built, tmp_path)
    damage(folder)
    assert main(["simulate", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "damaged build folder" in err and message in err, err
    assert not (folder / "report.json").exists()  # the old bit-exact verdict is gone, and no new one was written


def test_quant_tensors_that_disagree_with_the_graph_are_refused(built: Path, tmp_path: Path, capsys) -> None:
    folder = copy_of(built, tmp_path)
    path = folder / "quant" / "quant_tensors.npz"
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["op0.weight"] = arrays["op0.weight"][:1]
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    assert main(["simulate", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "tensor op0.weight must be int8" in err, err
    assert not (folder / "report.json").exists()


def test_a_folder_being_written_is_refused(built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A build (or another simulate) holds the folder's lock: one line, exit 2, and its verdict is not ours to touch."""
    folder = copy_of(built, tmp_path)
    with open(tmp_path / ".build.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert main(["simulate", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is being written by another tinycompile run" in err, err
    assert json.loads((folder / "report.json").read_text())["bit_exact"] is True

"""The command line: `tinycompile build --target fpga` and `tinycompile simulate <build folder>`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinycompile.cli import main


def test_build_command_targets_fpga(trials: dict[str, Path], tmp_path: Path) -> None:
    """`tinycompile build <trial> --target fpga -o <folder>` exits 0 and leaves a bit-exact report."""
    out = tmp_path / "fpga"
    assert main(["build", str(trials["digits"]), "--target", "fpga", "-o", str(out), "--vectors", "16"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["bit_exact"] and report["inputs"] == 16 and report["backend"]["array"] == 8
    assert report["graph"]["source"]["trial"] == str(trials["digits"]) and report["energy"]["measured_uj"] > 0
    assert (out / "build.json").is_file() and (out / "rtl.log").is_file()


def test_simulate_reruns_a_build(builds: dict) -> None:
    """`tinycompile simulate` re-runs the saved image and inputs and rewrites the same figures."""
    _, before, folder = builds[("mnist1d", 4)]
    (folder / "report.json").unlink()
    assert main(["simulate", str(folder)]) == 0
    after = json.loads((folder / "report.json").read_text())
    assert after["bit_exact"] and after["latency"]["measured"] == before["latency"]["measured"]
    assert [r["measured"] for r in after["layers"]] == [r["measured"] for r in before["layers"]]
    assert after["graph"]["source"]["trial"] == before["graph"]["source"]["trial"]


def test_simulate_refuses_a_folder_that_is_not_a_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One line on stderr and exit code 2."""
    assert main(["simulate", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is not a build folder that can be re-run" in err

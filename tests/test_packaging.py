"""A plain `pip install .` carries the search spaces and hardware targets inside the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from support import ROOT


def test_wheel_ships_the_yaml_folders(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("tinycompile-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("search_spaces", "hw_targets"):
        shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith(f"tinycompile/{folder}/")}
        assert shipped == {p.name for p in (ROOT / folder).glob("*.yaml")}
    assert "tinycompile/cli.py" in names

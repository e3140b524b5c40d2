"""A plain `pip install .` carries the search spaces, the hardware targets and the accelerator's RTL inside the package,
and an installed wheel, away from the checkout, builds a trial for the fpga target."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support import ROOT

from tinycompile.resources import rtl_build_dir


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel .` builds from this checkout (offline: the venv's setuptools)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (found,) = out.glob("tinycompile-*.whl")
    return found


def test_wheel_ships_the_data_folders(wheel: Path) -> None:
    """Every YAML of search_spaces/ and hw_targets/, and the RTL the simulation needs, are in the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("search_spaces", "hw_targets"):
        shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith(f"tinycompile/{folder}/")}
        assert shipped == {p.name for p in (ROOT / folder).glob("*.yaml")}
    assert "tinycompile/cli.py" in names
    rtl = ROOT / "rtl_sim"
    wanted = [*rtl.glob("rtl/*.sv"), *rtl.glob("tb/*.sv"), rtl / "synth" / "estimate.json", rtl / "ISA.md"]
    missing = [str(p.relative_to(ROOT)) for p in wanted if f"tinycompile/{p.relative_to(ROOT)}" not in names]
    assert not missing and any(n.endswith("rtl/tc_pkg.sv") for n in names), missing
    assert not [n for n in names if "/build/" in n or "/out/" in n], "Verilator or synthesis outputs were packed"


def _venv_with_wheel(wheel: Path, venv: Path) -> Path:
    """A fresh venv holding only the wheel; its dependencies are this interpreter's (a .pth line adds their
    site-packages folder: not the checkout, and not the editable install's import hook, which only a site folder's
    own .pth files would run). Returns the venv's python."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    # Installed before the .pth exists, so pip sees no other tinycompile and touches nothing outside the venv.
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True)
    (own,) = [Path(p) for p in json.loads(subprocess.run(
        [str(python), "-c", "import json, site; print(json.dumps(site.getsitepackages()))"],
        check=True, capture_output=True, text=True).stdout)]
    deps = [str(Path(p).resolve()) for p in site.getsitepackages() if Path(p).is_dir()]
    (own / "zz_tinycompile_test_deps.pth").write_text("\n".join(deps) + "\n")
    return python


@pytest.mark.slow
def test_installed_wheel_builds_for_fpga(wheel: Path, tmp_path: Path) -> None:
    """`tinycompile build <trial> --target fpga` from a venv holding the wheel, run outside the checkout, finds the RTL
    inside the installed package and is bit-exact on it. The Verilator model is taken from this checkout's build
    cache when the RTL tests made it (the cache is keyed by the sources' contents, so only the same Verilog reuses
    it); otherwise the installed package builds it (minutes)."""
    from nets import SPECS

    from tinycompile.tasks import load_task
    from tinycompile.train import train
    from tinycompile.trial import save_trial

    python = _venv_with_wheel(wheel, tmp_path / "venv")
    model, metrics = train(SPECS["digits"], load_task("digits"), epochs=2, patience=2, seed=0)
    save_trial(tmp_path / "trial", SPECS["digits"], model, metrics)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PYTHONWARNINGS="ignore", TINYCOMPILE_RTL_BUILD=str(rtl_build_dir()))
    where = subprocess.run(
        [str(python), "-c", "import tinycompile, tinycompile.resources as r; print(tinycompile.__file__); "
         "print(r.rtl_dir())"], cwd=tmp_path, env=env, check=True, capture_output=True, text=True).stdout.split()
    assert all(Path(p).is_relative_to(tmp_path / "venv") for p in where), where

    res = subprocess.run([str(tmp_path / "venv" / "bin" / "tinycompile"), "build", str(tmp_path / "trial"), "--target",
                          "fpga", "-o", str(tmp_path / "out"), "--vectors", "16"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["bit_exact"] and report["backend"]["array"] == 8 and report["inputs"] == 16
    assert report["backend"]["synthesis"] != "not measured"  # estimate.json ships too

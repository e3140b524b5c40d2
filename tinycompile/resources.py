"""Where the shipped folders (``search_spaces/``, ``hw_targets/``, ``rtl_sim/``) live: in the installed package, or the
checkout; and where the RTL simulator may write its builds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from tinycompile.errors import UserError

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder ``name``: shipped inside the package (a wheel install) or at the top of the source tree."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the {name}/ folder beside {_PACKAGE}; reinstall tinycompile")


def rtl_dir() -> Path:
    """The accelerator's folder ``rtl_sim/``: Verilog (``rtl/``, the test bench ``tb/``), ``ISA.md`` and the synthesis
    figures (``synth/estimate.json``). Every part of tinycompile that needs the RTL finds it here."""
    return data_dir("rtl_sim")


def rtl_build_dir() -> Path:
    """Where Verilator models are built and cached: ``$TINYCOMPILE_RTL_BUILD`` if set; ``rtl_sim/build`` in a checkout
    (as the developers' scripts expect); otherwise a per-user cache, since an installed package's folder may be
    read-only and is not the place for build products."""
    if os.environ.get("TINYCOMPILE_RTL_BUILD"):
        return Path(os.environ["TINYCOMPILE_RTL_BUILD"])
    rtl = rtl_dir()
    if rtl.parent != _PACKAGE:
        return rtl / "build"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tinycompile" / "rtl-build"


def yaml_files(name: str) -> dict[str, Path]:
    """``{stem: path}`` of the YAML files in the folder ``name``."""
    return {p.stem: p for p in sorted(data_dir(name).glob("*.yaml"))}


def find_yaml(folder: str, name_or_path: str, what: str) -> Path:
    """A YAML file given by its name in ``folder`` (``cortex-m4``) or by its path; ``what`` names it in errors."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    files = yaml_files(folder)
    if name_or_path not in files:
        raise UserError(f"unknown {what} {name_or_path!r}; choose one of {', '.join(files)} or give a YAML file")
    return files[name_or_path]


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file, or ``UserError`` naming the file."""
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                        "save it as UTF-8") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: must be a mapping of keys to values")
    return data

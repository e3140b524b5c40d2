"""Where the declarative folders (``search_spaces/``, ``hw_targets/``) live: in the installed package, or the checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder ``name``: shipped inside the package (a wheel install) or at the top of the source tree."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the {name}/ folder beside {_PACKAGE}; reinstall tinycompile")


def yaml_files(name: str) -> dict[str, Path]:
    """``{stem: path}`` of the YAML files in the folder ``name``."""
    return {p.stem: p for p in sorted(data_dir(name).glob("*.yaml"))}

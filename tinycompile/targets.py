"""Hardware targets: one YAML per chip in ``hw_targets/``; adding a chip needs no Python.

This module checks what every target file has (name, kind, clock, memories, runtime, energy); the back end of the
file's ``kind`` checks its own sections (:meth:`tinycompile.backends.Backend.check_target`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinycompile.errors import UserError
from tinycompile.resources import find_yaml, read_yaml_mapping, yaml_files


@dataclass(frozen=True)
class Target:
    """A chip: clock, memories, cost-model coefficients and (for MCUs) how to build and run code for it."""

    name: str
    kind: str
    chip: str
    source: str
    clock_mhz: float
    sram_kb: float
    flash_kb: float
    runtime: dict[str, int]
    cycles: dict[str, float]  # the cost model's coefficients, where the back end of this kind uses them
    energy: dict[str, float]
    build: dict[str, Any]
    accelerator: dict[str, Any]
    path: Path
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # the whole file: sections of other back ends
    # The same formula's coefficients fitted to instruction counts (MCU: QEMU's), where the file has them
    instructions: dict[str, float] = field(default_factory=dict)


def available_targets() -> list[str]:
    """Names of the targets in ``hw_targets/``."""
    return list(yaml_files("hw_targets"))


def load_target(name_or_path: str) -> Target:
    """Load a target by name (``cortex-m4``) or by the path of a YAML file; raise ``UserError`` if it is bad."""
    return _parse(find_yaml("hw_targets", name_or_path, "target"))


def _parse(path: Path) -> Target:
    from tinycompile.backends import get_backend, kinds

    data = read_yaml_mapping(path)

    def need(key: str, kind: type | tuple[type, ...]) -> Any:
        return require(data, key, kind, path)

    kind = need("kind", str)
    if kind not in kinds():
        raise UserError(f"{path}: key 'kind' must be one of {', '.join(kinds())}, but got {kind!r}")
    energy = need("energy", dict)
    require(energy, "active_mw", (int, float), path, "energy.")
    cycles = need("cycles", dict) if "cycles" in data else {}
    instructions = need("instructions", dict) if "instructions" in data else {}
    for section, name in ((energy, "energy."), (cycles, "cycles."), (instructions, "instructions.")):
        for key in section:
            require(section, key, (int, float), path, name)
    runtime = need("runtime", dict)
    for key in ("sram_bytes", "code_bytes", "code_bytes_per_layer"):
        require(runtime, key, int, path, "runtime.")
    for key in ("clock_mhz", "sram_kb", "flash_kb"):
        if need(key, (int, float)) == 0:
            raise UserError(f"{path}: key '{key}' must be > 0")
    for key in ("build", "accelerator"):
        if data.get(key) is not None:
            need(key, dict)
    target = Target(
        name=need("name", str),
        kind=kind,
        chip=str(data.get("chip", "")),
        source=str(data.get("source", "")),
        clock_mhz=float(data["clock_mhz"]),
        sram_kb=float(data["sram_kb"]),
        flash_kb=float(data["flash_kb"]),
        runtime=dict(runtime),
        cycles={k: float(v) for k, v in cycles.items()},
        energy={k: float(v) for k, v in energy.items()},
        build=dict(data.get("build") or {}),
        accelerator=dict(data.get("accelerator") or {}),
        path=path,
        raw=data,
        instructions={k: float(v) for k, v in instructions.items()},
    )
    get_backend(kind).check_target(target)
    return target


def require(where: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path, prefix: str = "") -> Any:
    """``where[key]``, checked to be of ``kind`` and, if a number, >= 0; a UserError naming ``path`` and the key."""
    if key not in where:
        raise UserError(f"{path}: missing key '{prefix}{key}'")
    value = where[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UserError(f"{path}: key '{prefix}{key}' must be {_kind_name(kind)}, but got {value!r}")
    if isinstance(value, (int, float)) and value < 0:
        raise UserError(f"{path}: key '{prefix}{key}' must be >= 0, but got {value!r}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if set(kinds) == {int, float}:
        return "a number"
    names = {int: "an integer", float: "a number", str: "a string", dict: "a mapping", list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)

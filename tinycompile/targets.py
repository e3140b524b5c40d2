"""Hardware targets: one YAML per chip in ``hw_targets/``; adding a chip needs no Python."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinycompile.errors import UserError
from tinycompile.resources import find_yaml, read_yaml_mapping, yaml_files

KINDS = ("mcu", "fpga")
CYCLE_KEYS = ("conv", "dwconv", "dense", "pool", "gap", "add", "per_output", "layer_overhead")


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
    cycles: dict[str, float]
    energy: dict[str, float]
    build: dict[str, Any]
    accelerator: dict[str, Any]
    path: Path


def available_targets() -> list[str]:
    """Names of the targets in ``hw_targets/``."""
    return list(yaml_files("hw_targets"))


def load_target(name_or_path: str) -> Target:
    """Load a target by name (``cortex-m4``) or by the path of a YAML file; raise ``UserError`` if it is bad."""
    return _parse(find_yaml("hw_targets", name_or_path, "target"))


def _parse(path: Path) -> Target:
    data = read_yaml_mapping(path)

    def need(key: str, kind: type | tuple[type, ...], where: dict[str, Any] = data, prefix: str = "") -> Any:
        if key not in where:
            raise UserError(f"{path}: missing key '{prefix}{key}'")
        value = where[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise UserError(f"{path}: key '{prefix}{key}' must be {_kind_name(kind)}, but got {value!r}")
        if isinstance(value, (int, float)) and value < 0:
            raise UserError(f"{path}: key '{prefix}{key}' must be >= 0, but got {value!r}")
        return value

    kind = need("kind", str)
    if kind not in KINDS:
        raise UserError(f"{path}: key 'kind' must be one of {', '.join(KINDS)}, but got {kind!r}")
    cycles = need("cycles", dict)
    for key in CYCLE_KEYS:
        need(key, (int, float), cycles, "cycles.")
    energy = need("energy", dict)
    need("active_mw", (int, float), energy, "energy.")
    runtime = need("runtime", dict)
    for key in ("sram_bytes", "code_bytes", "code_bytes_per_layer"):
        need(key, int, runtime, "runtime.")
    accelerator = data.get("accelerator", {}) or {}
    if kind == "fpga":
        for key in ("array", "bus_bytes_per_cycle"):
            need(key, int, accelerator, "accelerator.")
    for key in ("clock_mhz", "sram_kb", "flash_kb"):
        if need(key, (int, float)) == 0:
            raise UserError(f"{path}: key '{key}' must be > 0")
    return Target(
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
        build=dict(data.get("build", {}) or {}),
        accelerator=dict(accelerator),
        path=path,
    )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if set(kinds) == {int, float}:
        return "a number"
    names = {int: "an integer", float: "a number", str: "a string", dict: "a mapping", list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)

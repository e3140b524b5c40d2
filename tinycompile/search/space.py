"""Search spaces: a YAML per family of networks in ``search_spaces/``, and the mapping of choices to an ArchSpec.

A space lists, for every key, the values the search may choose. Choices are a flat dict (``"stem.kernel"``,
``"block2.channels"``, ...) so every candidate is a point in one fixed space: all blocks get choices, the first
``blocks.count`` are used. A fixed space suits NSGA-II's crossover and TPE alike.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinycompile.arch import ArchSpec, Layer, Shape, same_padding
from tinycompile.errors import UserError
from tinycompile.resources import find_yaml, read_yaml_mapping, yaml_files

INPUTS = ("1d", "2d", "any")
_INT = "int"
# section -> key -> allowed values (a tuple) or the kind of value
SCHEMA: dict[str, dict[str, dict[str, Any]]] = {
    "cnn": {
        "stem": {"channels": _INT, "kernel": _INT, "stride": _INT},
        "blocks": {
            "count": _INT,
            "type": ("conv", "dwsep"),
            "channels": _INT,
            "kernel": _INT,
            "stride": _INT,
            "pool": ("none", "max", "avg"),
            "residual": (False, True),
        },
        "head": {"reduce": ("flatten", "gap"), "hidden": _INT},
    },
    "mlp": {"blocks": {"count": _INT, "units": _INT}},
}
ZERO_ALLOWED = {("head", "hidden")}  # 0 means "no hidden layer"
# Largest value of each integer key: tiny networks are a few blocks deep; the bounds also keep the budget probe (which
# builds thousands of candidates before the search starts) and every candidate's cost model fast.
MAX_VALUE = {"count": 32, "channels": 4096, "units": 4096, "hidden": 4096, "kernel": 64, "stride": 16}


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: its name, input kind and the allowed values of every key."""

    name: str
    input: str
    choices: dict[str, list[Any]]  # "section.key" -> allowed values
    path: Path

    @property
    def family(self) -> str:
        """``cnn`` or ``mlp``."""
        return "mlp" if self.input == "any" else "cnn"

    @property
    def max_blocks(self) -> int:
        """The largest block count the space allows."""
        return max(self.choices["blocks.count"])

    def parameters(self) -> dict[str, list[Any]]:
        """Every independent choice of a candidate: stem/head keys once, block keys once per block."""
        params: dict[str, list[Any]] = {}
        for key, values in self.choices.items():
            section, name = key.split(".")
            if section == "blocks" and name != "count":
                for i in range(self.max_blocks):
                    params[f"block{i}.{name}"] = values
            else:
                params[key] = values
        return params

    def random_choices(self, rng: random.Random) -> dict[str, Any]:
        """A uniformly random candidate (used to check a budget is reachable)."""
        return {key: rng.choice(values) for key, values in self.parameters().items()}

    def check_input(self, input_shape: Shape) -> None:
        """Raise ``UserError`` if this space cannot take inputs of ``input_shape``."""
        if self.input == "1d" and input_shape[1] != 1:
            raise UserError(
                f"search space {self.name!r} takes 1-D signals, but the task gives {input_shape} inputs; use cnn2d or mlp"
            )
        if self.input == "2d" and input_shape[1] == 1:
            raise UserError(f"search space {self.name!r} takes 2-D images, but the task gives 1-D signals {input_shape}; use cnn1d")

    def build(self, choices: dict[str, Any], input_shape: Shape, num_classes: int) -> ArchSpec:
        """The ArchSpec of one candidate."""
        builder = _CnnBuilder(self, input_shape) if self.family == "cnn" else _MlpBuilder(input_shape)
        layers = builder.layers(choices)
        layers.append(Layer("dense", (len(layers) - 1,), channels=num_classes))
        meta = {"space": self.name, "choices": choices}
        return ArchSpec(input_shape, num_classes, tuple(layers), meta)


def available_spaces() -> list[str]:
    """Names of the spaces in ``search_spaces/``."""
    return list(yaml_files("search_spaces"))


def load_space(name_or_path: str) -> SearchSpace:
    """Load a space by name (``cnn1d``) or YAML path; raise ``UserError`` naming the file and key if it is bad."""
    path = find_yaml("search_spaces", name_or_path, "search space")
    data = read_yaml_mapping(path)
    kind = data.get("input")
    if kind not in INPUTS:
        raise UserError(f"{path}: key 'input' must be one of {', '.join(INPUTS)}, but got {kind!r}")
    schema = SCHEMA["mlp" if kind == "any" else "cnn"]
    unknown = set(data) - {"name", "input", *schema}
    if unknown:
        raise UserError(f"{path}: unknown key {sorted(unknown)[0]!r}; allowed: name, input, {', '.join(schema)}")
    choices: dict[str, list[Any]] = {}
    for section, keys in schema.items():
        body = data.get(section)
        if not isinstance(body, dict):
            raise UserError(f"{path}: missing section '{section}' (a mapping with keys {', '.join(keys)})")
        extra = set(body) - set(keys)
        if extra:
            raise UserError(f"{path}: unknown key '{section}.{sorted(extra)[0]}'; allowed: {', '.join(keys)}")
        for key, allowed in keys.items():
            choices[f"{section}.{key}"] = _check_values(path, section, key, body.get(key), allowed)
    return SearchSpace(str(data.get("name", path.stem)), kind, choices, path)


def _check_values(path: Path, section: str, key: str, values: Any, allowed: Any) -> list[Any]:
    where = f"{path}: key '{section}.{key}'"
    if not isinstance(values, list) or not values:
        raise UserError(f"{where} must be a non-empty list of values to choose from, but got {values!r}")
    if allowed == _INT:
        low = 0 if (section, key) in ZERO_ALLOWED else 1
        bad = [v for v in values if not isinstance(v, int) or isinstance(v, bool) or v < low]
        if bad:
            raise UserError(f"{where} must list integers >= {low}, but got {bad[0]!r}")
        high = MAX_VALUE[key]
        if max(values) > high:
            raise UserError(f"{where} must list integers <= {high} (tiny networks; the search probes thousands of "
                            f"candidates), but got {max(values)}")
    else:
        bad = [v for v in values if v not in allowed or type(v) is not type(allowed[0])]
        if bad:
            raise UserError(f"{where} allows {', '.join(map(str, allowed))}, but got {bad[0]!r}")
    return list(values)


class _MlpBuilder:
    def __init__(self, input_shape: Shape) -> None:
        self.input_shape = input_shape

    def layers(self, choices: dict[str, Any]) -> list[Layer]:
        layers = [Layer("flatten", (-1,))]
        for i in range(choices["blocks.count"]):
            layers.append(Layer("dense", (len(layers) - 1,), channels=choices[f"block{i}.units"], relu=True))
        return layers


class _CnnBuilder:
    """Lays out stem, blocks and head, keeping every stride and pool legal for the shrinking feature map."""

    def __init__(self, space: SearchSpace, input_shape: Shape) -> None:
        self.two_d = space.input == "2d"
        self.layers_: list[Layer] = []
        self.shape = input_shape

    def layers(self, choices: dict[str, Any]) -> list[Layer]:
        self._conv("conv", -1, choices["stem.channels"], choices["stem.kernel"], choices["stem.stride"], relu=True)
        blocks: list[dict[str, Any]] = [{} for _ in range(choices["blocks.count"])]
        for key, value in choices.items():  # one pass over the choices: linear in the space's size
            section, name = key.split(".", 1)
            if section.startswith("block") and section != "blocks" and int(section[5:]) < len(blocks):
                blocks[int(section[5:])][name] = value
        for block in blocks:
            self._block(block)
        last = len(self.layers_) - 1
        reduce = choices["head.reduce"]
        self.layers_.append(Layer(reduce, (last,)))
        if choices["head.hidden"]:
            self.layers_.append(Layer("dense", (last + 1,), channels=choices["head.hidden"], relu=True))
        return self.layers_

    def _block(self, c: dict[str, Any]) -> None:
        block_input = len(self.layers_) - 1
        in_shape = self.shape
        stride = c["stride"] if self._spatial() >= 2 * c["stride"] else 1
        residual = c["residual"] and stride == 1 and c["channels"] == in_shape[0]
        if c["type"] == "conv":
            self._conv("conv", block_input, c["channels"], c["kernel"], stride, relu=not residual)
        else:
            self._conv("dwconv", block_input, in_shape[0], c["kernel"], stride, relu=True)
            self._conv("conv", len(self.layers_) - 1, c["channels"], 1, 1, relu=not residual)
        if residual:
            self.layers_.append(Layer("add", (block_input, len(self.layers_) - 1), relu=True))
        if c["pool"] != "none" and self._spatial() >= 2:
            k = (2, 2) if self.two_d else (1, 2)
            self._append(Layer(f"{c['pool']}pool", (len(self.layers_) - 1,), kernel=k, stride=k))

    def _conv(self, op: str, src: int, channels: int, kernel: int, stride: int, relu: bool) -> None:
        _, h, w = self.shape
        if self.two_d:
            kh = kw = kernel
            sh = sw = stride
        else:
            kh, kw, sh, sw = 1, kernel, 1, stride
        pad = (*same_padding(h, kh, sh), *same_padding(w, kw, sw))
        self._append(Layer(op, (src,), channels=channels if op == "conv" else 0, kernel=(kh, kw), stride=(sh, sw), padding=pad, relu=relu))

    def _append(self, layer: Layer) -> None:
        self.layers_.append(layer)
        c, h, w = self.shape
        kh, kw = layer.kernel
        sh, sw = layer.stride
        pt, pb, pl, pr = layer.padding
        channels = layer.channels if layer.op == "conv" else c
        self.shape = (channels, (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1)

    def _spatial(self) -> int:
        _, h, w = self.shape
        return min(h, w) if self.two_d else w

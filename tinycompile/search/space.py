"""Search spaces: a YAML per family of networks in ``search_spaces/``, and the mapping of choices to an ArchSpec.

A space lists, for every key, the values the search may choose. Choices are a flat dict (``"stem.kernel"``,
``"block2.channels"``, ...) so every candidate is a point in one fixed space: all blocks get choices, the first
``blocks.count`` are used. A fixed space suits NSGA-II's crossover and TPE alike.

Families (the YAML's ``family``; default ``mlp`` for ``input: any``, else ``cnn``): ``cnn`` (stem, blocks, head),
``mlp`` (dense blocks) and ``mbconv`` (MCUNet's inverted-residual stages, :mod:`tinycompile.search.mbconv`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinycompile.arch import ArchSpec, Layer, Shape
from tinycompile.errors import UserError
from tinycompile.resources import find_yaml, read_yaml_mapping, yaml_files
from tinycompile.search import mbconv
from tinycompile.search.layout import LayerStack
from tinycompile.tasks import MAX_RESOLUTION

INPUTS = ("1d", "2d", "any")
_INT, _NUMBER = "int", "number"
# family -> section -> key -> allowed values (a tuple) or the kind of value
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
    "mbconv": {
        "net": {"width": _NUMBER, "resolution": _INT},
        "stem": {"channels": _INT, "kernel": _INT, "stride": _INT},
        "stages": {"depth": _INT, "channels": _INT, "stride": _INT},
        "blocks": {"expansion": _INT, "kernel": _INT},
        "head": {"reduce": ("flatten", "gap"), "hidden": _INT},
    },
}
LIST_SECTIONS = {"stages"}  # a list of mappings, one per stage, each with the section's keys
IMAGE_ONLY = {("net", "resolution")}  # optional, and only for 2-D spaces: the side images are resized to
ZERO_ALLOWED = {("head", "hidden")}  # 0 means "no hidden layer"
# Largest value of each number key: tiny networks are a few blocks deep; the bounds also keep the budget probe (which
# builds thousands of candidates before the search starts) and every candidate's cost model fast.
MAX_VALUE = {"count": 32, "channels": 4096, "units": 4096, "hidden": 4096, "kernel": 64, "stride": 16, "depth": 32,
             "expansion": 8, "resolution": MAX_RESOLUTION, "width": 4}
# Families whose spaces a weight-sharing supernet covers (`search --strategy supernet`, tinycompile.search.supernet)
SUPERNET_FAMILIES = ("cnn", "mbconv", "mlp")
MAX_BLOCKS = 32  # an mbconv space's stages at their largest depths, added up (as blocks.count bounds the cnn family)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: its name, input kind and the allowed values of every key."""

    name: str
    input: str
    choices: dict[str, list[Any]]  # "section.key" -> allowed values
    path: Path
    family: str  # cnn, mlp or mbconv

    @property
    def max_blocks(self) -> int:
        """The largest block count the space allows."""
        return mbconv.max_blocks(self.choices) if self.family == "mbconv" else max(self.choices["blocks.count"])

    def parameters(self) -> dict[str, list[Any]]:
        """Every independent choice of a candidate: stem/head keys once, block keys once per block."""
        if self.family == "mbconv":
            return mbconv.parameters(self.choices)
        params: dict[str, list[Any]] = {}
        for key, values in self.choices.items():
            section, name = key.split(".")
            if section == "blocks" and name != "count":
                for i in range(self.max_blocks):
                    params[f"block{i}.{name}"] = values
            else:
                params[key] = values
        return params

    def scale_choices(self) -> list[str]:
        """The keys that choose where a network down-samples (a stride or a pool with more than one value): a
        weight-sharing supernet serves such a space poorly, since its shared weights must then work at every scale
        (on MNIST-1D, candidates inherited 0.82 validation accuracy in a space that chooses them per block, 0.93 in
        ``cnn1d-shared``, which fixes them)."""
        return [key for key, values in self.choices.items()
                if key.rsplit(".", 1)[-1] in ("stride", "pool") and len(set(values)) > 1]

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
        """The ArchSpec of one candidate (on images resized to ``net.resolution`` where the space chooses it)."""
        return self.build_with_slots(choices, input_shape, num_classes)[0]

    def build_with_slots(self, choices: dict[str, Any], input_shape: Shape,
                         num_classes: int) -> tuple[ArchSpec, tuple[str | None, ...]]:
        """:meth:`build`, and for each layer the name of its place in the space (``stem``, ``block1.conv``,
        ``stage0.block1.dw``, ``head.hidden``, ``classifier``; None for layers without weights): the same name in
        every candidate, the key of a weight-sharing supernet's shared weights."""
        meta: dict[str, Any] = {"space": self.name, "choices": choices}
        if "net.resolution" in choices:  # meta.resolution tells training and `build` to resize the task's images
            side = choices["net.resolution"]
            input_shape = (input_shape[0], side, side)
            meta["resolution"] = side
        two_d = self.input == "2d"
        builder: LayerStack | _MlpBuilder
        if self.family == "mbconv":
            builder = mbconv.MbconvBuilder(input_shape, two_d)
        elif self.family == "cnn":
            builder = _CnnBuilder(input_shape, two_d)
        else:
            builder = _MlpBuilder(input_shape)
        layers = builder.layers(choices)
        layers.append(Layer("dense", (len(layers) - 1,), channels=num_classes))
        slots = tuple(builder.slots.get(i) for i in range(len(layers) - 1)) + ("classifier",)
        return ArchSpec(input_shape, num_classes, tuple(layers), meta), slots


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
    family = data.get("family", "mlp" if kind == "any" else "cnn")
    if not isinstance(family, str) or family not in SCHEMA:
        raise UserError(f"{path}: key 'family' must be one of {', '.join(SCHEMA)}, but got {family!r}")
    if (family == "mlp") != (kind == "any"):
        takes = "any" if family == "mlp" else "1d or 2d"
        raise UserError(f"{path}: family {family} takes input {takes}, but got input {kind}")
    schema = SCHEMA[family]
    unknown = set(data) - {"name", "input", "family", *schema}
    if unknown:
        raise UserError(f"{path}: unknown key {sorted(unknown)[0]!r}; allowed: name, input, family, {', '.join(schema)}")
    choices: dict[str, list[Any]] = {}
    for section, keys in schema.items():
        if section in LIST_SECTIONS:
            choices.update(_list_section(path, section, keys, data.get(section), kind))
        else:
            choices.update(_section(path, section, section, section, keys, data.get(section), kind))
    if family == "mbconv" and mbconv.max_blocks(choices) > MAX_BLOCKS:
        raise UserError(f"{path}: the stages' largest depths add up to {mbconv.max_blocks(choices)} blocks; at most "
                        f"{MAX_BLOCKS} (tiny networks; the search probes thousands of candidates)")
    return SearchSpace(str(data.get("name", path.stem)), kind, choices, path, family)


def _section(path: Path, section: str, label: str, prefix: str, keys: dict[str, Any], body: Any,
             kind: str) -> dict[str, list[Any]]:
    """The choices of one mapping (``label`` names it in errors, ``prefix`` in the choices' keys)."""
    if not isinstance(body, dict):
        raise UserError(f"{path}: missing section '{label}' (a mapping with keys {', '.join(keys)})")
    extra = set(body) - set(keys)
    if extra:
        raise UserError(f"{path}: unknown key '{label}.{sorted(extra)[0]}'; allowed: {', '.join(keys)}")
    choices: dict[str, list[Any]] = {}
    for key, allowed in keys.items():
        if (section, key) in IMAGE_ONLY:
            if key not in body:
                continue
            if kind != "2d":
                raise UserError(f"{path}: key '{label}.{key}' resizes 2-D images, but this space takes input {kind}; "
                                "remove it")
        choices[f"{prefix}.{key}"] = _check_values(path, f"{label}.{key}", (section, key), body.get(key), allowed)
    return choices


def _list_section(path: Path, section: str, keys: dict[str, Any], body: Any, kind: str) -> dict[str, list[Any]]:
    """The choices of a list of mappings (``stages``): entry ``i``'s keys become ``stage{i}.<key>``."""
    if not isinstance(body, list) or not body:
        raise UserError(f"{path}: missing section '{section}' (a non-empty list of mappings with keys {', '.join(keys)})")
    choices: dict[str, list[Any]] = {}
    for i, entry in enumerate(body):
        choices.update(_section(path, section, f"{section}[{i}]", f"{section[:-1]}{i}", keys, entry, kind))
    return choices


def _check_values(path: Path, label: str, key: tuple[str, str], values: Any, allowed: Any) -> list[Any]:
    where = f"{path}: key '{label}'"
    if not isinstance(values, list) or not values:
        raise UserError(f"{where} must be a non-empty list of values to choose from, but got {values!r}")
    if allowed in (_INT, _NUMBER):
        if allowed == _INT:
            low = 0 if key in ZERO_ALLOWED else 1
            what, expect = "integers", f"integers >= {low}"
            bad = [v for v in values if not isinstance(v, int) or isinstance(v, bool) or v < low]
        else:  # a ratio: any finite number above 0 (nan compares false with everything, so it is named here)
            what, expect = "numbers", "numbers > 0"
            bad = [v for v in values if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v < math.inf]
        if bad:
            raise UserError(f"{where} must list {expect}, but got {bad[0]!r}")
        high = MAX_VALUE[key[1]]
        if max(values) > high:
            raise UserError(f"{where} must list {what} <= {high} (tiny networks; the search probes thousands of "
                            f"candidates), but got {max(values)}")
    else:
        bad = [v for v in values if v not in allowed or type(v) is not type(allowed[0])]
        if bad:
            raise UserError(f"{where} allows {', '.join(map(str, allowed))}, but got {bad[0]!r}")
    return list(values)


class _MlpBuilder:
    def __init__(self, input_shape: Shape) -> None:
        self.input_shape = input_shape
        self.slots: dict[int, str] = {}

    def layers(self, choices: dict[str, Any]) -> list[Layer]:
        layers = [Layer("flatten", (-1,))]
        for i in range(choices["blocks.count"]):
            self.slots[len(layers)] = f"block{i}.dense"
            layers.append(Layer("dense", (len(layers) - 1,), channels=choices[f"block{i}.units"], relu=True))
        return layers


class _CnnBuilder(LayerStack):
    """Lays out stem, blocks and head, keeping every stride and pool legal for the shrinking feature map."""

    def layers(self, choices: dict[str, Any]) -> list[Layer]:
        self.conv("conv", -1, choices["stem.channels"], choices["stem.kernel"], choices["stem.stride"], relu=True,
                  slot="stem")
        blocks: list[dict[str, Any]] = [{} for _ in range(choices["blocks.count"])]
        for key, value in choices.items():  # one pass over the choices: linear in the space's size
            section, name = key.split(".", 1)
            if section.startswith("block") and section != "blocks" and int(section[5:]) < len(blocks):
                blocks[int(section[5:])][name] = value
        for i, block in enumerate(blocks):
            self._block(block, f"block{i}")
        reduce = choices["head.reduce"]
        self.layers_.append(Layer(reduce, (self.last,)))
        if choices["head.hidden"]:
            self.dense(choices["head.hidden"], relu=True, slot="head.hidden")
        return self.layers_

    def _block(self, c: dict[str, Any], name: str) -> None:
        block_input = self.last
        in_shape = self.shape
        stride = self.legal_stride(c["stride"])
        residual = c["residual"] and stride == 1 and c["channels"] == in_shape[0]
        if c["type"] == "conv":
            self.conv("conv", block_input, c["channels"], c["kernel"], stride, relu=not residual, slot=f"{name}.conv")
        else:
            self.conv("dwconv", block_input, in_shape[0], c["kernel"], stride, relu=True, slot=f"{name}.dw")
            self.conv("conv", self.last, c["channels"], 1, 1, relu=not residual, slot=f"{name}.pw")
        if residual:
            self.layers_.append(Layer("add", (block_input, self.last), relu=True))
        if c["pool"] != "none" and self.spatial() >= 2:
            k = (2, 2) if self.two_d else (1, 2)
            self.append(Layer(f"{c['pool']}pool", (self.last,), kernel=k, stride=k))

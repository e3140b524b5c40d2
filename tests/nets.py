"""The small fixed networks the back-end tests train, random graphs of them, and a sampled MBConv network (a plain
module: several conftest.py share one run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tinycompile.arch import ArchSpec, Layer
from tinycompile.model import SpecNet
from tinycompile.quant.graph import QuantGraph
from tinycompile.quant.quantize import quantize

L = Layer

# Small on purpose (tests train in seconds) but covering every op: conv, dwconv, add, maxpool, avgpool, gap, flatten, dense.
SPECS = {
    "mnist1d": ArchSpec(
        (1, 1, 40),
        10,
        (
            L("conv", (-1,), channels=12, kernel=(1, 5), stride=(1, 2), padding=(0, 0, 2, 2), relu=True),
            L("dwconv", (0,), kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
            L("conv", (1,), channels=12, kernel=(1, 1)),
            L("add", (2, 0), relu=True),
            L("maxpool", (3,), kernel=(1, 2), stride=(1, 2)),
            L("conv", (4,), channels=16, kernel=(1, 3), padding=(0, 0, 1, 1), relu=True),
            L("avgpool", (5,), kernel=(1, 2), stride=(1, 2)),
            L("flatten", (6,)),
            L("dense", (7,), channels=10),
        ),
        {"task": "mnist1d"},
    ),
    "digits": ArchSpec(
        (1, 8, 8),
        10,
        (
            L("conv", (-1,), channels=8, kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
            L("maxpool", (0,), kernel=(2, 2), stride=(2, 2)),
            L("dwconv", (1,), kernel=(3, 3), padding=(1, 1, 1, 1), relu=True),
            L("conv", (2,), channels=16, kernel=(1, 1), relu=True),
            L("gap", (3,)),
            L("dense", (4,), channels=10),
        ),
        {"task": "digits"},
    ),
}


def random_graph(spec: ArchSpec, seed: int = 0) -> QuantGraph:
    """A QuantGraph of ``spec`` with random weights and random calibration data (shapes are what matter)."""
    torch.manual_seed(seed)
    model = SpecNet(spec)
    model.eval()
    calib = np.random.default_rng(seed).standard_normal((32, *spec.input_shape)).astype(np.float32)
    return quantize(spec, model, calib)


def sampled_mbconv(seed: int = 0, max_macs: int = 400_000) -> ArchSpec:
    """The first candidate of the shipped mbconv2d space (on digits) that has every part of an MBConv network worth
    building: an expansion above 1, a 5x5 or 7x7 depthwise kernel, a residual add and a stride of 2; few MACs."""
    import random

    from tinycompile.search.space import load_space

    space = load_space("mbconv2d")
    rng = random.Random(seed)
    while True:
        spec = space.build(space.random_choices(rng), (1, 8, 8), 10)
        layers = spec.layers
        depthwise = [layer for layer in layers if layer.op == "dwconv"]
        expands = any(a.op == "conv" and a.kernel == (1, 1) and b.op == "dwconv" for a, b in zip(layers, layers[1:]))
        if (expands and any(layer.op == "add" for layer in layers) and any(d.kernel[0] >= 5 for d in depthwise)
                and any(d.stride == (2, 2) for d in depthwise) and sum(spec.macs()) <= max_macs):
            spec.meta["task"] = "digits"
            return spec


def mbconv_trial(folder: Path) -> Path:
    """A trial folder of :func:`sampled_mbconv` trained for two epochs on digits at its resolution (bit-exactness, not
    accuracy, is what the builds check)."""
    from tinycompile.tasks import load_task
    from tinycompile.train import train
    from tinycompile.trial import save_trial

    spec = sampled_mbconv()
    model, metrics = train(spec, load_task("digits", resolution=spec.meta["resolution"]), epochs=2, seed=0, device="cpu")
    save_trial(folder, spec, model, metrics)
    return folder


def mbconv_blocks(spec: ArchSpec) -> list[dict]:
    """The inverted-residual blocks of an mbconv candidate, read back from its layers (asserting their structure)."""
    shapes = spec.shapes()
    layers = spec.layers
    blocks, i = [], 1  # layer 0 is the stem
    while layers[i].op in ("conv", "dwconv"):
        block_input, in_channels, expansion = i - 1, shapes[i - 1][0], 1
        if layers[i].op == "conv":  # the 1x1 expansion
            expand = layers[i]
            assert expand.kernel == (1, 1) and expand.relu and expand.inputs == (block_input,)
            expansion = expand.channels // in_channels
            assert expand.channels == in_channels * expansion and expansion > 1
            i += 1
        depthwise, project = layers[i], layers[i + 1]
        assert depthwise.op == "dwconv" and depthwise.relu and depthwise.inputs == (i - 1,)
        assert project.op == "conv" and project.kernel == (1, 1) and not project.relu and project.inputs == (i,)
        i += 2
        residual = layers[i].op == "add"
        if residual:
            assert layers[i].inputs == (block_input, i - 1) and not layers[i].relu
            i += 1
        blocks.append({"expansion": expansion, "kernel": max(depthwise.kernel), "stride": max(depthwise.stride),
                       "channels": project.channels, "in_channels": in_channels, "residual": residual})
    return blocks


def repeated_blocks() -> ArchSpec:
    """Two identical depthwise-separable blocks (same shapes and parameters) between other ops."""
    layers = [L("conv", (-1,), channels=8, kernel=(3, 3), padding=(1, 1, 1, 1), relu=True)]
    for _ in range(2):
        layers.append(L("dwconv", (len(layers) - 1,), kernel=(3, 3), padding=(1, 1, 1, 1), relu=True))
        layers.append(L("conv", (len(layers) - 1,), channels=8, relu=True))
    layers += [L("maxpool", (len(layers) - 1,), kernel=(2, 2), stride=(2, 2)), L("flatten", (len(layers),)),
               L("dense", (len(layers) + 1,), channels=5)]
    return ArchSpec((1, 6, 6), 5, tuple(layers))

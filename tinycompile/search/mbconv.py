"""The MBConv family, MCUNet's space: a stem conv, stages of inverted-residual blocks, then a global pool (or flatten),
an optional hidden dense layer and the classifier.

A block widens its input with a 1x1 conv by the expansion ratio (skipped at ratio 1), filters every channel with a
depthwise k x k conv (the stage's stride in its first block only), and projects to the stage's channels with a 1x1 conv
without ReLU: a linear bottleneck, since a ReLU on the narrow output would zero information the add still needs. A
residual add joins the block's input and output where the stride is 1 and the channels match. Plain ReLU, not ReLU6:
the int8 quantizer clamps every activation to its calibrated range anyway.

Choices: ``net.width`` (scales every channel count), ``net.resolution`` (2-D only: images are resized to that side),
``stem.*``, per stage ``stage{s}.depth|channels|stride``, per block ``stage{s}.block{b}.expansion|kernel`` (every
block the stage's largest depth allows gets its own, as in the other families: one fixed space) and ``head.*``.
"""

from __future__ import annotations

from typing import Any

from tinycompile.arch import Layer
from tinycompile.search.layout import LayerStack

CHANNEL_STEP = 8  # channel counts stay multiples of 8: the MCU kernels' SIMD lanes and the accelerator's array divide it
BLOCK_KEYS = ("expansion", "kernel")


def scale_channels(channels: int, width: float) -> int:
    """``channels * width`` rounded to the nearest multiple of 8 (halves up), at least 8."""
    return max(CHANNEL_STEP, int(channels * width / CHANNEL_STEP + 0.5) * CHANNEL_STEP)


def stage_count(choices: dict[str, Any]) -> int:
    """How many stages a space's choices (or a candidate's) describe."""
    return sum(1 for key in choices if key.startswith("stage") and key.endswith(".depth"))


def max_blocks(choices: dict[str, list[Any]]) -> int:
    """The most blocks a candidate of the space can have: every stage at its largest depth."""
    return sum(max(choices[f"stage{s}.depth"]) for s in range(stage_count(choices)))


def parameters(choices: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Every independent choice of a candidate: the space's keys once, ``blocks.*`` once per possible block."""
    params = {key: values for key, values in choices.items() if not key.startswith("blocks.")}
    for s in range(stage_count(choices)):
        for b in range(max(choices[f"stage{s}.depth"])):
            for name in BLOCK_KEYS:
                params[f"stage{s}.block{b}.{name}"] = choices[f"blocks.{name}"]
    return params


class MbconvBuilder(LayerStack):
    """Lays out one candidate of the family (see the module's docstring)."""

    def layers(self, choices: dict[str, Any]) -> list[Layer]:
        """The layers of a candidate, up to (not including) the classifier."""
        width = choices["net.width"]
        stem = scale_channels(choices["stem.channels"], width)
        self.conv("conv", -1, stem, choices["stem.kernel"], self.legal_stride(choices["stem.stride"]), relu=True,
                  slot="stem")
        for s in range(stage_count(choices)):
            channels = scale_channels(choices[f"stage{s}.channels"], width)
            for b in range(choices[f"stage{s}.depth"]):
                stride = choices[f"stage{s}.stride"] if b == 0 else 1
                self.block(channels, choices[f"stage{s}.block{b}.expansion"], choices[f"stage{s}.block{b}.kernel"], stride,
                           f"stage{s}.block{b}")
        self.layers_.append(Layer(choices["head.reduce"], (self.last,)))
        if choices["head.hidden"]:
            self.dense(choices["head.hidden"], relu=True, slot="head.hidden")
        return self.layers_

    def block(self, channels: int, expansion: int, kernel: int, stride: int, name: str = "block") -> None:
        """One inverted-residual block from the current map to ``channels`` channels (its layers named ``name.*``)."""
        block_input, in_channels = self.last, self.shape[0]
        stride = self.legal_stride(stride)
        if expansion > 1:
            self.conv("conv", block_input, in_channels * expansion, 1, 1, relu=True, slot=f"{name}.expand")
        self.conv("dwconv", self.last, 0, kernel, stride, relu=True, slot=f"{name}.dw")
        self.conv("conv", self.last, channels, 1, 1, relu=False, slot=f"{name}.project")
        if stride == 1 and channels == in_channels:
            self.append(Layer("add", (block_input, self.last)))
